"""Hardware-aware NAS: accuracy against measured CPU latency, two objectives, on digits.

The controller searches NAS-Bench-201 cells in a study with
``directions=["maximize", "minimize"]``: each trial trains its network briefly and returns
the validation accuracy and the latency that ``train(costs=...)`` measured on this CPU.
A parameter budget known before training (``arch_constraints``) keeps the controller
from ever proposing a network over it. The Pareto front is printed at the end.

Run:  python examples/hardware_aware.py --trials 16
Then: optuna-dashboard sqlite:///hardware_aware.db --artifact-dir hardware_aware_artifacts
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from typing import Any

import optuna
from optuna.artifacts import FileSystemArtifactStore

import optuna_nas as nas

NETWORK = dict(channels=4, cells_per_stage=1, in_channels=1, num_classes=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--max-params", type=int, default=6000)
    parser.add_argument("--storage", default="sqlite:///hardware_aware.db")
    parser.add_argument("--artifacts", default="hardware_aware_artifacts")
    args = parser.parse_args()

    space = nas.spaces.NasBench201Space()
    data = nas.load_digits(seed=0)  # scikit-learn's bundled 8x8 digits, nothing downloaded
    store = FileSystemArtifactStore(args.artifacts)

    def too_big(params: Mapping[str, Any]) -> list[float]:
        # Known before training: the parameter count of the network these params build.
        model = space.build(space.from_params(params), **NETWORK)
        return [nas.count_parameters(model) - args.max_params]

    def objective(trial: optuna.Trial) -> tuple[float, float]:
        arch = space.suggest(trial)
        nas.dashboard.log_architecture(trial, space, arch, artifact_store=store)
        nas.seed_everything(trial.number)
        model = space.build(arch, **NETWORK)
        # A multi-objective study has no trial.report: train keeps each epoch's accuracy
        # in the user attr epoch_values, and stores params, flops and latency_s first.
        accuracy = nas.train(
            model, data, epochs=args.epochs, trial=trial, costs=("params", "flops", "latency")
        )
        return accuracy, float(trial.user_attrs["latency_s"])

    os.makedirs(args.artifacts, exist_ok=True)
    study = optuna.create_study(
        study_name="hardware_aware",
        storage=args.storage,
        directions=["maximize", "minimize"],
        sampler=nas.ControllerSampler(space, seed=0, arch_constraints=too_big),
        load_if_exists=True,
    )
    study.set_metric_names(["valid accuracy", "latency (s)"])
    study.optimize(objective, n_trials=args.trials, catch=(nas.NonFiniteLossError,))
    print("Pareto front (valid accuracy, CPU latency):")
    for trial in sorted(study.best_trials, key=lambda t: t.values[1]):
        arch = space.from_params(trial.params)
        print(
            f"  trial {trial.number:3d}  accuracy {trial.values[0]:.4f}  "
            f"latency {trial.values[1] * 1e3:.3f} ms  params {trial.user_attrs['params']}  "
            f"{arch}"
        )
    print(
        f"See the front and each trial's cell: optuna-dashboard {args.storage} "
        f"--artifact-dir {args.artifacts}"
    )


if __name__ == "__main__":
    main()
