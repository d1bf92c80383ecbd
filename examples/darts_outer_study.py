"""DARTS inside Optuna trials: an outer study tunes DARTS' own hyperparameters with ASHA.

Each trial of the outer study runs one DARTS search (optuna_nas.darts.search) on the
digits data at tiny size, with its arch_lr, weight_lr, epochs and order suggested by TPE.
The search reports the supernet's validation accuracy every epoch, so
SuccessiveHalvingPruner (ASHA) stops poor settings early; every trial keeps its derived
cell as the user attr ``arch`` and two pictures (the derived cell, the op weights over the
epochs) as artifacts. The best trial's cell is then enqueued into a retraining study with
one call (optuna_nas.darts.enqueue_retraining) and trained from scratch.

Run (under 5 minutes on 2 CPU cores; see docs/darts.md for a measured run):
      python examples/darts_outer_study.py
Then look at every trial's derived cell and op weights with the printed command:
      optuna-dashboard sqlite:///darts_outer.db --artifact-dir darts_outer_artifacts
The DARTS cell space instead of NAS-Bench-201 (slower):
      python examples/darts_outer_study.py --space darts --trials 8
"""

from __future__ import annotations

import argparse
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import optuna
import torch
from optuna.artifacts import FileSystemArtifactStore
from optuna.trial import TrialState

import optuna_nas as nas
from optuna_nas.data import ImageData
from optuna_nas.spaces import DartsCells, NasBench201Space, SearchSpace


@dataclass(frozen=True)
class Outcome:
    """What the example found."""

    study: optuna.Study
    retrain: optuna.Study
    best: optuna.trial.FrozenTrial
    test_accuracy: float
    dashboard_command: str
    seconds: float


def make_space(name: str) -> tuple[SearchSpace, dict[str, int]]:
    """The searched space and the size of its networks (tiny: 1 cell per stage or 3 cells)."""
    if name == "nasbench201":
        return NasBench201Space(), {"cells_per_stage": 1}
    return DartsCells(steps=2), {"layers": 3}


def darts_objective(
    space: SearchSpace,
    sizing: dict[str, int],
    data: ImageData,
    args: argparse.Namespace,
    store: FileSystemArtifactStore,
) -> Callable[[optuna.Trial], float]:
    """One DARTS search per trial, with DARTS' hyperparameters suggested by the trial."""

    def objective(trial: optuna.Trial) -> float:
        result = nas.darts.search(
            space,
            data,
            trial=trial,
            epochs=trial.suggest_int("epochs", 2, args.max_epochs),
            order=trial.suggest_categorical("order", ["first", "second"]),
            arch_lr=trial.suggest_float("arch_lr", 1e-4, 3e-2, log=True),
            weight_lr=trial.suggest_float("weight_lr", 0.01, 0.2, log=True),
            channels=args.channels,
            batch_size=args.batch_size,
            seed=args.seed,
            artifact_store=store,
            **sizing,  # type: ignore[arg-type]
        )
        return result.valid_accuracy

    return objective


def retrain_objective(
    space: SearchSpace, sizing: dict[str, int], data: ImageData, args: argparse.Namespace
) -> Callable[[optuna.Trial], float]:
    """Train an enqueued architecture from scratch (space.suggest returns the enqueued one)."""

    def objective(trial: optuna.Trial) -> float:
        arch = space.suggest(trial)
        nas.seed_everything(args.seed)
        model = space.build(arch, channels=args.channels, in_channels=data.in_channels,
                            num_classes=data.num_classes, **sizing)
        accuracy = nas.train(model, data, epochs=args.retrain_epochs, lr=0.05, trial=trial,
                             seed=args.seed)
        assert data.test is not None
        trial.set_user_attr("test_accuracy", nas.evaluate(model, data.test))
        return accuracy

    return objective


def run(args: argparse.Namespace) -> Outcome:
    """Run (or resume) the outer study, then retrain its best derived cell."""
    start = time.perf_counter()
    db, artifact_dir = Path(args.db), Path(args.artifact_dir)
    db.parent.mkdir(parents=True, exist_ok=True)
    artifact_dir.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{db}"
    store = FileSystemArtifactStore(str(artifact_dir))
    space, sizing = make_space(args.space)
    data = nas.load_digits(seed=args.seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study = optuna.create_study(
            study_name=f"darts_outer_{args.space}",
            storage=url,
            direction="maximize",
            sampler=optuna.samplers.TPESampler(seed=args.seed, n_startup_trials=4),
            pruner=optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3),
            load_if_exists=True,
        )
        study.set_metric_names(["valid accuracy"])  # what optuna-dashboard's plots call it
    finished = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
    remaining = args.trials - len(study.get_trials(deepcopy=False, states=finished))
    if remaining > 0:
        study.optimize(
            darts_objective(space, sizing, data, args, store),
            n_trials=remaining,
            catch=(nas.NonFiniteLossError,),
        )
    best = study.best_trial
    retrain = optuna.create_study(
        study_name=f"darts_retrain_{args.space}", storage=url, direction="maximize",
        load_if_exists=True,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        retrain.set_metric_names(["valid accuracy"])
    # One call puts the best trial's derived cell into the retraining study.
    nas.darts.enqueue_retraining(retrain, best, space=space, skip_if_exists=True)
    waiting = retrain.get_trials(deepcopy=False, states=(TrialState.WAITING,))
    if waiting:
        retrain.optimize(retrain_objective(space, sizing, data, args), n_trials=len(waiting))
    done = [t for t in retrain.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if t.params == space.to_params(space.parse(best.user_attrs["arch"]))]
    return Outcome(
        study=study,
        retrain=retrain,
        best=best,
        test_accuracy=float(done[-1].user_attrs["test_accuracy"]) if done else float("nan"),
        dashboard_command=f"optuna-dashboard {url} --artifact-dir {artifact_dir}",
        seconds=time.perf_counter() - start,
    )


def report(outcome: Outcome) -> str:
    """The example's result as printed lines."""
    trials = outcome.study.get_trials(deepcopy=False)
    states = {s: sum(t.state == s for t in trials) for s in TrialState}
    best = outcome.best
    lines = [
        f"outer study: {states[TrialState.COMPLETE]} complete, {states[TrialState.PRUNED]} "
        f"pruned by ASHA, {states[TrialState.FAIL]} failed",
        "  trial  state     epochs order   arch_lr  weight_lr  supernet  derived cell",
    ]
    for t in trials:
        p, nan = t.params, float("nan")
        value = t.value if t.value is not None else nan
        lines.append(
            f"  {t.number:5d}  {t.state.name:8s}  {p.get('epochs', 0):6d} "
            f"{p.get('order', '?'):6s} {p.get('arch_lr', nan):8.2e}  "
            f"{p.get('weight_lr', nan):9.3f}  {value:8.4f}  {t.user_attrs.get('arch', '-')}"
        )
    lines += [
        f"best trial {best.number}: supernet validation accuracy {best.value:.4f}, derived "
        f"cell on the shared weights {best.user_attrs['darts_derived_accuracy']:.4f}",
        f"  derived architecture: {best.user_attrs['arch']}",
        f"  retrained from scratch: test accuracy {outcome.test_accuracy:.4f}",
        f"total {outcome.seconds:.0f} s. See every trial's derived cell and op weights with:",
        f"  {outcome.dashboard_command}",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> Outcome:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--space", choices=["nasbench201", "darts"], default="nasbench201")
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--max-epochs", type=int, default=8)
    parser.add_argument("--channels", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--retrain-epochs", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--db", default="darts_outer.db", help="SQLite file of the studies")
    parser.add_argument("--artifact-dir", default="darts_outer_artifacts",
                        help="folder of the trials' pictures")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # tiny tensors: one thread is fastest and repeats exactly
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    outcome = run(args)
    print(report(outcome))
    return outcome


if __name__ == "__main__":
    main()
