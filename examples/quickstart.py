"""A first NAS study: DARTS cells and a learning rate, searched together in one Optuna study.

Run:  python examples/quickstart.py --trials 10
Then: optuna-dashboard sqlite:///quickstart.db --artifact-dir quickstart_artifacts
"""

from __future__ import annotations

import argparse
import os

import optuna
from optuna.artifacts import FileSystemArtifactStore

import optuna_nas as nas


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--storage", default="sqlite:///quickstart.db")
    parser.add_argument("--artifacts", default="quickstart_artifacts")
    args = parser.parse_args()

    space = nas.spaces.DartsCells(steps=4)  # normal + reduction cells, DARTS' 8 ops
    data = nas.load_digits(seed=0)  # scikit-learn's bundled 8x8 digits, nothing downloaded
    store = FileSystemArtifactStore(args.artifacts)

    def objective(trial: optuna.Trial) -> float:
        arch = space.suggest(trial)  # each decision is an ordinary categorical param
        lr = trial.suggest_float("lr", 1e-2, 0.2, log=True)  # plain HPO in the same trial
        nas.dashboard.log_architecture(trial, space, arch, artifact_store=store)
        nas.seed_everything(trial.number)
        model = space.build(arch, channels=8, layers=3, in_channels=1, num_classes=10)
        return nas.train(model, data, epochs=args.epochs, lr=lr, trial=trial)

    os.makedirs(args.artifacts, exist_ok=True)
    study = optuna.create_study(
        study_name="quickstart",
        storage=args.storage,
        direction="maximize",
        pruner=optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3),
        load_if_exists=True,
    )
    study.set_metric_names(["valid accuracy"])  # what optuna-dashboard's plots call it
    study.optimize(objective, n_trials=args.trials, catch=(nas.NonFiniteLossError,))
    best = space.from_params(study.best_params)  # an Architecture value
    print(f"best validation accuracy {study.best_value:.4f}\nbest architecture {best}")


if __name__ == "__main__":
    main()
