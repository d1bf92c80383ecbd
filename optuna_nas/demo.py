"""The main job: a resumable NAS study on the bundled digits data (``optuna-nas demo``)."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import optuna
from optuna.artifacts import FileSystemArtifactStore
from optuna.trial import TrialState

from optuna_nas.data import ImageData, load_digits
from optuna_nas.errors import NasError, NonFiniteLossError
from optuna_nas.spaces import Architecture, DartsCells
from optuna_nas.training import evaluate, seed_everything, train

__all__ = ["DemoSummary", "make_demo_objective", "run_demo"]


@dataclass(frozen=True)
class DemoSummary:
    """What the demo found.

    Args:
        architecture: The best trial's architecture.
        lr: The best trial's learning rate.
        valid_accuracy: Its validation accuracy.
        test_accuracy: Its test accuracy.
        n_complete: Trials that ran every epoch.
        n_pruned: Trials ASHA stopped early.
        n_failed: Trials that failed.
        dashboard_command: The command that opens the study in optuna-dashboard.
    """

    architecture: Architecture
    lr: float
    valid_accuracy: float
    test_accuracy: float
    n_complete: int
    n_pruned: int
    n_failed: int
    dashboard_command: str

    def report(self) -> str:
        """A few lines for the terminal."""
        return "\n".join(
            [
                f"Trials: {self.n_complete} complete, {self.n_pruned} pruned by ASHA, "
                f"{self.n_failed} failed.",
                f"Best architecture: {self.architecture}",
                f"Best learning rate: {self.lr:.4g}",
                f"Validation accuracy: {100 * self.valid_accuracy:.2f}%",
                f"Test accuracy: {100 * self.test_accuracy:.2f}%",
                "See every trial and its architecture picture with:",
                f"  {self.dashboard_command}",
            ]
        )


def make_demo_objective(
    space: DartsCells,
    data: ImageData,
    *,
    epochs: int,
    channels: int,
    layers: int,
    artifact_store: FileSystemArtifactStore | None = None,
) -> Callable[[optuna.Trial], float]:
    """The demo's objective: an architecture and a learning rate per trial.

    Args:
        space: The cell space searched.
        data: The data (train, valid, test splits).
        epochs: Epochs of a trial that is not pruned.
        channels: Channels of the built networks.
        layers: Cells of the built networks.
        artifact_store: Where the architecture pictures go, or ``None`` for no pictures.
    """

    def objective(trial: optuna.Trial) -> float:
        arch = space.suggest(trial)
        lr = trial.suggest_float("lr", 0.01, 0.2, log=True)
        accuracy: float | None = None
        try:
            seed_everything(trial.number)
            model = space.build(
                arch,
                channels=channels,
                layers=layers,
                in_channels=data.in_channels,
                num_classes=data.num_classes,
            )
            accuracy = train(model, data, epochs=epochs, lr=lr, trial=trial, seed=trial.number)
            if data.test is not None:
                trial.set_user_attr("test_accuracy", evaluate(model, data.test))
        finally:
            # After training, so that the picture's title has the value; pruned and failed
            # trials get theirs too, without one.
            if artifact_store is not None:
                from optuna_nas.dashboard import log_architecture

                log_architecture(trial, space, arch, artifact_store=artifact_store,
                                 value=accuracy)
        return accuracy

    return objective


def run_demo(
    *,
    db: Path,
    artifact_dir: Path,
    study_name: str = "optuna_nas_demo",
    n_trials: int = 24,
    epochs: int = 8,
    seed: int = 0,
    channels: int = 8,
    layers: int = 3,
    show_progress_bar: bool = True,
) -> DemoSummary:
    """Run (or resume) the demo study until it holds ``n_trials`` finished trials.

    Args:
        db: The SQLite file of the study.
        artifact_dir: The folder of the architecture pictures.
        study_name: The study's name.
        n_trials: Finished trials the study should reach.
        epochs: Epochs of a trial that is not pruned.
        seed: Seed of the sampler and the data split.
        channels: Channels of the built networks.
        layers: Cells of the built networks.
        show_progress_bar: Whether to show Optuna's progress bar.
    """
    db.parent.mkdir(parents=True, exist_ok=True)
    artifact_dir.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{db}"
    # Heartbeats let a rerun fail the trials that a killed run left RUNNING.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        storage = optuna.storages.RDBStorage(url, heartbeat_interval=10, grace_period=30)
    study = optuna.create_study(
        study_name=study_name,
        storage=storage,
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3),
        load_if_exists=True,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(["valid accuracy"])  # the dashboard's plots name it
    space = DartsCells()
    data = load_digits(seed=seed)
    store = FileSystemArtifactStore(str(artifact_dir))
    finished = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
    remaining = n_trials - len(study.get_trials(deepcopy=False, states=finished))
    if remaining > 0:
        study.optimize(
            make_demo_objective(
                space, data, epochs=epochs, channels=channels, layers=layers,
                artifact_store=store,
            ),
            n_trials=remaining,
            catch=(NonFiniteLossError,),
            show_progress_bar=show_progress_bar,
        )
    trials = study.get_trials(deepcopy=False)
    if not any(t.state == TrialState.COMPLETE for t in trials):
        raise NasError(
            f"No trial of study {study_name!r} in {db} ran every epoch (all were pruned or "
            "failed); run the demo again with more --trials."
        )
    best = study.best_trial
    return DemoSummary(
        architecture=space.from_params(best.params),
        lr=float(best.params["lr"]),
        valid_accuracy=float(best.value or 0.0),
        test_accuracy=float(best.user_attrs["test_accuracy"]),
        n_complete=sum(t.state == TrialState.COMPLETE for t in trials),
        n_pruned=sum(t.state == TrialState.PRUNED for t in trials),
        n_failed=sum(t.state == TrialState.FAIL for t in trials),
        dashboard_command=f"optuna-dashboard {url} --artifact-dir {artifact_dir}",
    )
