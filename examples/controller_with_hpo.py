"""NAS and ordinary tuning in one trial: the controller learns the cells and the learning rate.

Run:  python examples/controller_with_hpo.py --trials 20
Several workers on one study (each its own process, any machine that reaches the database):
      python examples/controller_with_hpo.py --storage postgresql://user@host/db --trials 50
"""

from __future__ import annotations

import argparse

import optuna

import optuna_nas as nas


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--storage", default="sqlite:///controller.db")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    space = nas.spaces.DartsCells(steps=2)
    data = nas.load_digits(seed=0)

    def objective(trial: optuna.Trial) -> float:
        arch = space.suggest(trial)  # served by the controller, decision by decision
        lr = trial.suggest_float("lr", 1e-2, 0.2, log=True)  # by the same policy (joint=True)
        nas.seed_everything(trial.number)
        model = space.build(arch, channels=8, layers=2, in_channels=1, num_classes=10)
        return nas.train(model, data, epochs=args.epochs, lr=lr, trial=trial)

    study = optuna.create_study(
        study_name="controller_with_hpo",
        storage=args.storage,
        direction="maximize",
        # joint=False would hand lr to a base sampler (TPE) that sees nothing of the cells.
        sampler=nas.ControllerSampler(space, seed=args.seed),
        pruner=optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3),
        load_if_exists=True,
    )
    study.set_metric_names(["valid accuracy"])  # what optuna-dashboard's plots call it
    study.optimize(objective, n_trials=args.trials, catch=(nas.NonFiniteLossError,))
    print(f"best {study.best_value:.4f} with lr {study.best_params['lr']:.4g}")
    print(space.from_params(study.best_params))


if __name__ == "__main__":
    main()
