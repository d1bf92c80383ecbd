"""One worker process: trials until the study holds its count, clean stops, retries."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
import traceback
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import FrameType
from typing import Any, TextIO

import optuna
import sqlalchemy.exc
from optuna.exceptions import UpdateFinishedTrialError
from optuna.study._multi_objective import _get_pareto_front_trials_by_trials
from optuna.trial import FrozenTrial, TrialState

from optuna_nas.errors import NasError, WorkerError
from optuna_nas.worker._devices import current_device
from optuna_nas.worker._objective import WorkerObjective
from optuna_nas.worker._storage import _first_line, _retry_callback

_DONE = (TrialState.COMPLETE, TrialState.PRUNED)
_STORAGE_ATTEMPTS = 5
_STORAGE_ERRORS = (sqlalchemy.exc.SQLAlchemyError, optuna.exceptions.StorageInternalError)
_OPEN = (TrialState.RUNNING, TrialState.WAITING)


class _StopRequested(KeyboardInterrupt):
    """Raised inside the objective when the worker is asked to stop."""


@dataclass
class _Stopper:
    # SIGINT/SIGTERM set `requested`. Inside the objective they also raise, so that Optuna
    # fails the trial; elsewhere (inside a storage call) raising could leave a transaction
    # half done, so the loop stops at its next check instead. A second signal always raises.
    requested: bool = False
    in_objective: bool = False
    signals: int = 0

    def handle(self, signum: int, frame: FrameType | None) -> None:
        self.signals += 1
        self.requested = True
        if self.in_objective or self.signals > 1:
            raise _StopRequested(signal.Signals(signum).name)

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield  # Python delivers signals to the main thread only: nothing to handle here.
            return
        previous = {s: signal.signal(s, self.handle) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)

    def sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self.requested and time.monotonic() < deadline:
            time.sleep(min(0.1, seconds))


@dataclass
class WorkerReport:
    """What one worker process did.

    Args:
        label: The worker's name in the terminal (``cpu#0``, ``cuda:1``).
        complete: Trials it completed.
        pruned: Trials it pruned.
        failed: Trials that failed (the objective raised or returned no number).
        interrupted: Trials a stop signal interrupted; each was re-queued.
        reason: Why it stopped.
    """

    label: str
    complete: int = 0
    pruned: int = 0
    failed: int = 0
    interrupted: int = 0
    reason: str = ""

    @property
    def ok(self) -> bool:
        """Whether it stopped for a normal reason (not repeated failures)."""
        return not self.reason.startswith("gave up")

    def line(self) -> str:
        """A one-line summary."""
        return (
            f"[{self.label}] stopped: {self.reason}. Ran {self.complete} complete, "
            f"{self.pruned} pruned, {self.failed} failed, {self.interrupted} interrupted "
            "trial(s)."
        )


@dataclass
class _Counts:
    done: int = 0
    running: int = 0
    waiting: int = 0
    best: FrozenTrial | None = None
    front: int | None = None  # trials on the Pareto front, in a multi-objective study


def _counts(study: optuna.Study) -> _Counts:
    # One read of the study per trial: Optuna's storage cache serves the finished trials
    # from memory, so the counts and the best trial cost a query for the unfinished ones.
    # A multi-objective study has no best trial: its Pareto front is counted instead.
    counts = _Counts()
    maximize = study.directions[0] == optuna.study.StudyDirection.MAXIMIZE
    single = len(study.directions) == 1
    complete: list[FrozenTrial] = []
    for t in study._storage.get_all_trials(
        study._study_id, deepcopy=False, states=(*_DONE, *_OPEN)
    ):
        if t.state in _DONE:
            counts.done += 1
            if not single and t.state == TrialState.COMPLETE and t.values:
                complete.append(t)
            if single and t.state == TrialState.COMPLETE and t.values:
                if (
                    counts.best is None
                    or (maximize and t.values[0] > counts.best.values[0])
                    or (not maximize and t.values[0] < counts.best.values[0])
                ):
                    counts.best = t
        elif t.state == TrialState.RUNNING:
            counts.running += 1
        else:
            counts.waiting += 1
    if complete:
        counts.front = len(_get_pareto_front_trials_by_trials(complete, study.directions))
    return counts


def _fail_stale_trials(study: optuna.Study) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


def _requeue(study: optuna.Study, trial_id: int) -> int | None:
    """Fail an interrupted trial if it is still running, and queue its params again."""
    storage = study._storage
    trial = storage.get_trial(trial_id)
    if trial.state == TrialState.RUNNING:
        with contextlib.suppress(UpdateFinishedTrialError):
            storage.set_trial_state_values(trial_id, TrialState.FAIL)
        trial = storage.get_trial(trial_id)
    if trial.state != TrialState.FAIL:
        return None  # it finished after all
    # The same callback as a heartbeat-stale trial, without a limit: an interruption is not
    # the trial's fault.
    _retry_callback(None)(study, trial)
    return trial.number


def _format_values(trial: FrozenTrial) -> str:
    values = trial.values or []
    return ", ".join(f"{v:.6g}" for v in values)


def run_worker(
    study: optuna.Study,
    objective: WorkerObjective | Callable[..., Any],
    *,
    n_trials: int | None = None,
    device: str | None = None,
    label: str = "worker",
    timeout: float | None = None,
    max_failures: int = 5,
    poll_interval: float = 1.0,
    handle_signals: bool = True,
    parent_pid: int | None = None,
    out: TextIO | None = None,
) -> WorkerReport:
    """Run trials of a study until it holds ``n_trials`` finished trials, or a stop.

    Several workers, on one machine or many, run the same study through its storage.
    Finished means COMPLETE or PRUNED: a failed trial does not count, so a study whose
    worker was killed still reaches its count (the killed trial is retried once it is
    stale). While the study's last trials run elsewhere, a worker waits for them, and
    retries one that goes stale.

    Args:
        study: The study, loaded with this worker's sampler and pruner.
        objective: The objective (``function(trial)`` or ``function(trial, device)``).
        n_trials: Finished trials the study should hold; ``None`` runs until stopped.
        device: The device handed to an objective that takes one; this worker's own
            by default (:func:`current_device`).
        label: The worker's name in progress lines.
        timeout: Seconds after which no new trial starts.
        max_failures: Consecutive failed trials after which the worker gives up.
        poll_interval: Seconds between checks while waiting for other workers' trials.
        handle_signals: Stop cleanly on SIGINT/SIGTERM (in the main thread; elsewhere
            nothing is installed).
        parent_pid: Stop when the launcher with this pid has gone.
        out: Where progress lines go; standard output by default.

    Returns:
        What the worker did and why it stopped.
    """
    if not isinstance(objective, WorkerObjective):
        objective = WorkerObjective(spec=getattr(objective, "__name__", "objective"),
                                    function=objective)
    if max_failures < 1:
        raise WorkerError(f"max_failures must be at least 1, got {max_failures}.")
    stream = out if out is not None else sys.stdout
    report = WorkerReport(label=label)
    stopper = _Stopper()
    started = time.monotonic()
    failures_in_a_row = 0
    current: dict[str, Any] = {}
    target = "∞" if n_trials is None else str(n_trials)
    handed_device = current_device() if device is None else device
    if objective.takes_device and isinstance(handed_device, str):
        import torch

        handed_device = torch.device(handed_device)

    def say(text: str) -> None:
        print(f"[{label}] {text}", file=stream, flush=True)

    def wrapped(trial: optuna.Trial) -> Any:
        current["id"], current["error"] = trial._trial_id, None
        if stopper.requested:
            raise _StopRequested("stop requested before the trial started")
        stopper.in_objective = True
        try:
            if objective.takes_device:
                return objective.function(trial, device=handed_device)
            return objective.function(trial)
        except Exception as error:
            current["error"] = error
            raise
        finally:
            stopper.in_objective = False

    def progress(study: optuna.Study, trial: FrozenTrial) -> None:
        retry = trial.system_attrs.get("failed_trial")
        note = f" (retry of trial {retry})" if retry is not None else ""
        seconds = trial.duration.total_seconds() if trial.duration else 0.0
        if trial.state == TrialState.COMPLETE:
            what = f"complete, value {_format_values(trial)}"
        elif trial.state == TrialState.PRUNED:
            step = max(trial.intermediate_values, default=None)
            what = "pruned" + (f" at step {step}" if step is not None else "")
        else:
            error = current.get("error")
            if error is None:
                what = "failed: the objective returned no finite number"
            elif isinstance(error, NasError):
                what = f"failed: {type(error).__name__}: {error}"
            elif isinstance(error, NotImplementedError) and len(study.directions) > 1:
                # trial.report or should_prune in a multi-objective study.
                what = (
                    f"failed: {type(error).__name__}: {error} In a multi-objective study "
                    "Optuna has no trial.report or should_prune: drop them from the "
                    "objective (optuna_nas.train keeps each epoch in the user attr "
                    "epoch_values there instead)."
                )
            else:
                # A bug in the user's objective: its traceback is the useful sentence.
                stream.write("".join(traceback.format_exception(error)))
                what = f"failed: {type(error).__name__}: {error}"
        counts = _counts(study)
        current["counts"], current["state"] = counts, trial.state
        best = ""
        if counts.best is not None:
            best = f", best {counts.best.values[0]:.6g} (trial {counts.best.number})"
        elif counts.front is not None:
            best = f", {counts.front} on the Pareto front"
        say(
            f"trial {trial.number}{note} {what} in {seconds:.1f} s | study: "
            f"{counts.done}/{target} finished{best}"
        )

    def step() -> str | None:
        # One turn of the loop: wait, or run one trial. Returns why to stop, if it is time.
        nonlocal failures_in_a_row
        if n_trials is not None:
            # The counts the last trial's progress line read, else a fresh read.
            counts = current.get("counts") or _counts(study)
            if counts.done >= n_trials:
                return f"the study holds {counts.done} finished trials"
            if counts.waiting == 0 and counts.done + counts.running >= n_trials:
                # The last trials run elsewhere: wait, and retry any that goes stale.
                current.clear()
                _fail_stale_trials(study)
                stopper.sleep(poll_interval)
                return None
        current.clear()
        try:
            study.optimize(wrapped, n_trials=1, catch=(Exception,), callbacks=[progress])
        except _StopRequested:
            report.interrupted += 1
            number = _requeue(study, current["id"]) if "id" in current else None
            if number is not None:
                say(f"trial {number} interrupted; failed and queued again with its params")
            return "asked to stop"
        if current.get("id") is None:
            return None
        state = current.get("state") or study._storage.get_trial(current["id"]).state
        if state == TrialState.COMPLETE:
            report.complete += 1
            failures_in_a_row = 0
        elif state == TrialState.PRUNED:
            report.pruned += 1
            failures_in_a_row = 0
        else:
            report.failed += 1
            failures_in_a_row += 1
            if failures_in_a_row >= max_failures:
                return (
                    f"gave up after {failures_in_a_row} failed trials in a row; the "
                    "objective looks broken: fix it (see the errors above) and start the "
                    "worker again"
                )
        return None

    storage_errors = 0
    with stopper.installed() if handle_signals else contextlib.nullcontext():
        while not report.reason:
            if stopper.requested:
                report.reason = "asked to stop"
            elif parent_pid is not None and os.getppid() != parent_pid:
                report.reason = "its launcher has exited"
            elif timeout is not None and time.monotonic() - started >= timeout:
                report.reason = f"timeout of {timeout:g} s"
            else:
                try:
                    report.reason = step() or ""
                    storage_errors = 0
                except _STORAGE_ERRORS as error:
                    # A busy or restarting database: wait and go on. A trial it cut off
                    # stays RUNNING until its heartbeat is stale, then is retried.
                    storage_errors += 1
                    if storage_errors > _STORAGE_ATTEMPTS:
                        report.reason = (
                            f"gave up: the storage failed {_STORAGE_ATTEMPTS} times in a row "
                            f"({_first_line(error)})"
                        )
                        break
                    pause = min(30.0, 2.0**storage_errors)
                    say(f"storage error ({_first_line(error)}); trying again in {pause:g} s")
                    current.clear()
                    stopper.sleep(pause)
    return report

