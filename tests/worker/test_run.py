"""One worker in this process: the trial count, failures, storage errors, stale trials."""

from __future__ import annotations

import io
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from optuna_nas.errors import ArchitectureError, NasError
from optuna_nas.samplers import ControllerSampler
from optuna_nas.spaces import NasBench201Space
from optuna_nas.worker import _run as worker_run
from optuna_nas.worker import (
    load_objective,
    make_pruner,
    make_worker_sampler,
    open_storage,
    run_worker,
)
from tests._postgres import postgres_study_name, postgres_url, storage  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]


def _sqlite_study(tmp_path: Path, name: str = "s") -> optuna.Study:
    rdb = open_storage(f"sqlite:///{tmp_path / 'study.db'}", heartbeat_interval=1,
                       grace_period=2)
    return optuna.create_study(
        study_name=name, storage=rdb, direction="maximize",
        sampler=optuna.samplers.RandomSampler(seed=0),
    )


def test_run_worker_reaches_the_count_and_reports_progress(tmp_path: Path) -> None:
    study = _sqlite_study(tmp_path)
    space = NasBench201Space()
    out = io.StringIO()

    def objective(trial: optuna.Trial, device: object) -> float:
        assert str(device) == "cpu"
        arch = space.suggest(trial)
        return float(sum(op == "nor_conv_3x3" for _, op in arch.values))

    report = run_worker(study, objective, n_trials=5, device="cpu", label="w", out=out,
                        handle_signals=False)
    assert report.complete == 5 and report.ok
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) == 5
    lines = out.getvalue().splitlines()
    assert len(lines) == 5 and lines[-1].startswith("[w] trial 4 complete, value ")
    assert "study: 5/5 finished, best" in lines[-1]
    # A second run finds the count reached and runs nothing.
    assert run_worker(study, objective, n_trials=5, handle_signals=False, out=out).complete == 0


def test_a_broken_objective_fails_trials_then_the_worker_gives_up(tmp_path: Path) -> None:
    study = _sqlite_study(tmp_path)
    out = io.StringIO()

    def objective(trial: optuna.Trial) -> float:
        NasBench201Space().parse("|nor_conv_9x9~0|")
        return 1.0

    report = run_worker(study, objective, n_trials=10, max_failures=3, out=out,
                        handle_signals=False)
    assert report.failed == 3 and not report.ok and "gave up" in report.reason
    # A package error is a sentence, not a traceback.
    assert "failed: ArchitectureError:" in out.getvalue()
    assert "Traceback" not in out.getvalue()
    assert [t.state for t in study.trials] == [TrialState.FAIL] * 3

    def buggy(trial: optuna.Trial) -> float:
        return [][1]  # type: ignore[no-any-return]

    out = io.StringIO()
    run_worker(study, buggy, n_trials=10, max_failures=1, out=out, handle_signals=False)
    # A bug in the user's code keeps its traceback: that is the useful sentence.
    assert "Traceback" in out.getvalue() and "IndexError" in out.getvalue()


# The tests make a "dead" trial with study.ask(); Optuna warns that heartbeats are meant
# for optimize(), which is what the worker then uses.
_ASK_WITH_HEARTBEAT = "ignore:Heartbeat of storage is supposed to be used with Study.optimize"


def test_a_storage_error_pauses_the_worker_instead_of_killing_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    study = _sqlite_study(tmp_path)
    real = study.optimize
    calls = []

    def flaky(*args: object, **kwargs: object) -> None:
        calls.append(1)
        if len(calls) == 2:
            raise optuna.exceptions.StorageInternalError("database is locked")
        real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(study, "optimize", flaky)
    monkeypatch.setattr(worker_run, "_STORAGE_ATTEMPTS", 1)
    out = io.StringIO()
    report = run_worker(study, lambda t: 1.0, n_trials=3, out=out, handle_signals=False)
    assert report.complete == 3 and report.ok
    assert "storage error (database is locked); trying again in 2 s" in out.getvalue()

    def broken(*args: object, **kwargs: object) -> None:
        raise optuna.exceptions.StorageInternalError("server closed the connection")

    monkeypatch.setattr(study, "optimize", broken)
    report = run_worker(study, lambda t: 1.0, n_trials=5, out=out, handle_signals=False)
    assert not report.ok and "the storage failed 1 times in a row" in report.reason


@pytest.mark.filterwarnings(_ASK_WITH_HEARTBEAT)
def test_a_stale_trial_is_retried_once_with_the_same_params(tmp_path: Path) -> None:
    study = _sqlite_study(tmp_path)
    space = NasBench201Space()
    # A trial left RUNNING by a worker that died: it has a heartbeat, then none.
    dead = study.ask()
    arch = space.suggest(dead)
    study._storage.record_heartbeat(dead._trial_id)  # type: ignore[attr-defined]
    time.sleep(3.2)
    seen: list[str] = []

    def objective(trial: optuna.Trial) -> float:
        seen.append(str(space.suggest(trial)))
        return 1.0

    report = run_worker(study, objective, n_trials=3, handle_signals=False, out=io.StringIO())
    assert report.complete == 3
    trials = study.get_trials()
    assert trials[0].state == TrialState.FAIL
    retries = [t for t in trials if t.system_attrs.get("failed_trial") == dead.number]
    assert len(retries) == 1 and retries[0].state == TrialState.COMPLETE
    assert space.from_params(retries[0].params) == arch and seen[0] == str(arch)


@pytest.mark.filterwarnings(_ASK_WITH_HEARTBEAT)
def test_controller_learns_a_retried_trial_once_and_the_failed_one_never(
    tmp_path: Path,
) -> None:
    space = NasBench201Space()
    sampler = ControllerSampler(space, seed=0)
    rdb = open_storage(f"sqlite:///{tmp_path / 'c.db'}", heartbeat_interval=1, grace_period=2)
    study = optuna.create_study(storage=rdb, direction="maximize", sampler=sampler)
    study.optimize(lambda t: float(len(str(space.suggest(t)))), n_trials=3)
    dead = study.ask()
    space.suggest(dead)
    study._storage.record_heartbeat(dead._trial_id)  # type: ignore[attr-defined]
    time.sleep(3.2)

    def objective(trial: optuna.Trial) -> float:
        return float(len(str(space.suggest(trial))))

    run_worker(study, objective, n_trials=8, handle_signals=False, out=io.StringIO())
    sampler._learn(study)
    learned = [s.number for s in sampler._samples]
    assert len(learned) == len(set(learned)) == 8
    assert dead.number not in learned
    retry = next(t for t in study.trials if t.system_attrs.get("failed_trial") == dead.number)
    assert retry.number in learned


def test_an_architecture_error_from_the_sampler_is_a_sentence(tmp_path: Path) -> None:
    # A study resumed with another search space: the controller names the problem.
    study = _sqlite_study(tmp_path)
    study.enqueue_trial({"arch/1<-0": "conv_9x9"}, skip_if_exists=False)
    study.add_trial(
        optuna.trial.create_trial(
            params={"arch/x": "a"},
            distributions={"arch/x": optuna.distributions.CategoricalDistribution(["a"])},
            value=1.0,
        )
    )
    space = NasBench201Space()
    study.sampler = ControllerSampler(space, seed=0)
    out = io.StringIO()

    def objective(trial: optuna.Trial) -> float:
        return float(len(str(space.suggest(trial))))

    report = run_worker(study, objective, n_trials=3, max_failures=2, out=out,
                        handle_signals=False)
    assert not report.ok
    assert "different search space" in out.getvalue()
    assert issubclass(ArchitectureError, NasError)


def test_the_example_objective_trains_in_a_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPTUNA_NAS_EXAMPLE_EPOCHS", "1")
    objective = load_objective(f"{ROOT / 'examples' / 'worker_objective.py'}:objective")
    assert objective.takes_device and objective.direction == "maximize"
    rdb = open_storage(f"sqlite:///{tmp_path / 'example.db'}", heartbeat_interval=5)
    study = optuna.create_study(
        storage=rdb, direction="maximize", sampler=make_worker_sampler(objective, None, 0),
        pruner=make_pruner(objective, None),
    )
    report = run_worker(study, objective, n_trials=2, device="cpu", handle_signals=False,
                        out=io.StringIO())
    assert report.complete == 2
    for trial in study.trials:
        assert trial.user_attrs["device"] == "cpu" and trial.user_attrs["seconds_per_epoch"] > 0
        assert 0.0 <= trial.value <= 1.0  # type: ignore[operator]
