"""Zero-cost proxies on digits: prune before training, and screen the controller's proposals.

One study searches NAS-Bench-201 cells with the controller. Its candidates are screened
by SynFlow before one is proposed (``screen=ProxyScreen(...)``), and each trial scores its
untrained network once (``zero_cost.report``), so that ``ZeroCostPruner`` stops a
low-scoring network before its first epoch; after that ASHA (the wrapped pruner) decides.

Run:  python examples/zero_cost.py --trials 16
Then: optuna-dashboard sqlite:///zero_cost.db
"""

from __future__ import annotations

import argparse

import optuna
import torch

import optuna_nas as nas
from optuna_nas import zero_cost

NETWORK = dict(channels=8, cells_per_stage=1, in_channels=1, num_classes=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--storage", default="sqlite:///zero_cost.db")
    args = parser.parse_args()

    space = nas.spaces.NasBench201Space()
    data = nas.load_digits(seed=0)  # scikit-learn's bundled 8x8 digits, nothing downloaded
    # One minibatch of training images, the same for every trial: the scores compare.
    loader = torch.utils.data.DataLoader(data.train, batch_size=64)
    batch = next(iter(loader))

    def objective(trial: optuna.Trial) -> float:
        arch = space.suggest(trial)
        nas.seed_everything(trial.number)
        model = space.build(arch, **NETWORK)
        zero_cost.report(trial, model, batch, proxy="synflow")
        if trial.should_prune():  # a low SynFlow score: no epoch is spent on it
            raise optuna.TrialPruned()
        return nas.train(model, data, epochs=args.epochs, trial=trial)

    screen = zero_cost.ProxyScreen(space, proxy="synflow", input_shape=(1, 8, 8), **NETWORK)
    study = optuna.create_study(
        study_name="zero_cost",
        storage=args.storage,
        direction="maximize",
        sampler=nas.ControllerSampler(space, seed=0, screen=screen),
        pruner=zero_cost.ZeroCostPruner(
            percentile=25.0, wrapped=optuna.pruners.SuccessiveHalvingPruner()
        ),
        load_if_exists=True,
    )
    study.set_metric_names(["valid accuracy"])
    study.optimize(objective, n_trials=args.trials, catch=(nas.NonFiniteLossError,))
    states = [t.state for t in study.trials]
    at_init = sum(
        t.state == optuna.trial.TrialState.PRUNED and not t.intermediate_values
        for t in study.trials
    )
    print(f"{len(states)} trials: {at_init} pruned at initialisation, "
          f"{states.count(optuna.trial.TrialState.PRUNED) - at_init} by ASHA")
    best = study.best_trial
    print(f"best: trial {best.number}, valid accuracy {best.value:.4f}, "
          f"synflow {best.user_attrs['zero_cost_score']:.3g}, {space.from_params(best.params)}")


if __name__ == "__main__":
    main()
