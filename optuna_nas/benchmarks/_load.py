"""Load benchmark: many ``optuna-nas worker`` processes on one study in a shared storage.

``python -m optuna_nas.benchmarks load --storage URL --workers 8 --trials 500`` starts
``optuna-nas worker --devices cpu,...`` (one process per worker) on a fresh study, with
this module's :func:`objective` and a timed :class:`~optuna_nas.samplers.ControllerSampler`,
and reports:

- trials per second, from the first trial's start to the last trial's end (the start-up of
  the processes, a few seconds of imports, is reported apart);
- lost trials (an objective call that returned but whose trial is not COMPLETE, or a trial
  left unfinished) and duplicated ones (one call recorded by two trials, or two calls by
  one trial): both must be 0;
- the sampler's share of the workers' wall time.

The objective is cheap: it scores a NAS-Bench-201 cell by a weighted sum of its ops (the
same ranking as the distributed tests), and then holds the worker for ``trial_seconds``
without using the CPU, standing for a training step that a GPU runs while the worker's
CPU waits. With ``trial_seconds=0`` the figures are those of the storage and the sampler
alone.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.study import Study
from optuna.trial import FrozenTrial, TrialState

from optuna_nas.errors import NasError
from optuna_nas.samplers import ControllerSampler
from optuna_nas.spaces import NasBench201Space
from optuna_nas.worker import STORAGE_ENV, open_storage, redact_url

__all__ = [
    "LoadResult",
    "format_load_header",
    "format_load_row", "objective",
    "run_load",
    "sampler",
    "space",
]

STATS_ENV = "OPTUNA_NAS_LOAD_STATS"
SECONDS_ENV = "OPTUNA_NAS_LOAD_TRIAL_SECONDS"

space = NasBench201Space()
direction = "maximize"

_OP_SCORES = {
    "none": 0.0,
    "skip_connect": 1.0,
    "avg_pool_3x3": 1.5,
    "nor_conv_1x1": 2.5,
    "nor_conv_3x3": 3.0,
}
_EDGE_WEIGHTS = {"1<-0": 1.0, "2<-0": 1.1, "2<-1": 1.2, "3<-0": 1.3, "3<-1": 1.4, "3<-2": 1.5}


@dataclass
class _ProcessStats:
    sampler_s: float = 0.0
    calls: int = 0
    first_start: float | None = None
    last_end: float | None = None


_stats = _ProcessStats()
_counter = itertools.count()


@contextlib.contextmanager
def _timed() -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    finally:
        _stats.sampler_s += time.perf_counter() - started


class _TimedControllerSampler(ControllerSampler):
    """A ControllerSampler that adds up the time spent in its hooks."""

    def infer_relative_search_space(
        self, study: Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        with _timed():
            return super().infer_relative_search_space(study, trial)

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        with _timed():
            return super().sample_relative(study, trial, search_space)

    def sample_independent(
        self,
        study: Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        with _timed():
            return super().sample_independent(study, trial, param_name, param_distribution)

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        if _stats.first_start is None:
            _stats.first_start = time.time()
        with _timed():
            super().before_trial(study, trial)

    def after_trial(
        self,
        study: Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        with _timed():
            super().after_trial(study, trial, state, values)
        _stats.last_end = time.time()


def _write_stats() -> None:
    # Only a process that ran trials has figures (the launcher imports this module too).
    folder = os.environ.get(STATS_ENV)
    if folder and _stats.first_start is not None:
        path = Path(folder) / f"{os.getpid()}.json"
        path.write_text(json.dumps(asdict(_stats)), encoding="utf-8")


atexit.register(_write_stats)


def sampler(seed: int | None) -> ControllerSampler:
    """The worker's ControllerSampler, timed; its figures are written when the process ends."""
    return _TimedControllerSampler(space, seed=seed)


def objective(trial: optuna.Trial) -> float:
    """Score a NAS-Bench-201 cell by its ops, then hold the worker ``trial_seconds``."""
    arch = space.suggest(trial)
    # One token per call: a trial holding another's token, or a token held twice, is a
    # duplicate; a call whose token no COMPLETE trial holds is lost.
    trial.set_user_attr("token", f"{os.getpid()}:{next(_counter)}")
    seconds = float(os.environ.get(SECONDS_ENV, "0"))
    if seconds > 0:
        time.sleep(seconds)
    _stats.calls += 1
    return sum(_EDGE_WEIGHTS[name] * _OP_SCORES[str(op)] for name, op in arch.values)


@dataclass(frozen=True)
class LoadResult:
    """The figures of one load run.

    Args:
        workers: Worker processes.
        trials: The trial count the study was to reach.
        trial_seconds: How long each objective call held its worker.
        complete: COMPLETE trials in the study.
        lost: Calls without a COMPLETE trial, plus trials left unfinished.
        duplicated: Tokens held by more than one trial, plus trials without a token.
        extra: Trials past the count (workers that started the last trials together).
        span_s: From the first trial's start to the last trial's end.
        startup_s: From the launch to the first trial's start.
        trials_per_s: ``complete / span_s``.
        sampler_share: The sampler's seconds over the workers' busy seconds.
        best_value: The best score found (22.5 is the best cell).
    """

    workers: int
    trials: int
    trial_seconds: float
    complete: int
    lost: int
    duplicated: int
    extra: int
    span_s: float
    startup_s: float
    trials_per_s: float
    sampler_share: float
    best_value: float


def run_load(
    storage_url: str,
    *,
    workers: int,
    trials: int,
    trial_seconds: float = 0.0,
    seed: int = 0,
    keep_study: bool = False,
    log: Path | None = None,
) -> LoadResult:
    """Run ``trials`` trials of a fresh study with ``workers`` worker processes.

    Args:
        storage_url: The storage (PostgreSQL for real load; SQLite works, but locks).
        workers: How many worker processes (``--devices cpu`` repeated).
        trials: The study's trial count.
        trial_seconds: How long each objective call holds its worker.
        seed: Worker ``i``'s sampler seed is ``seed + i``.
        keep_study: Keep the study in the storage afterwards (it is deleted by default).
        log: A file for the workers' output (discarded by default).

    Returns:
        The figures.

    Raises:
        NasError: The storage cannot be opened, or the workers failed.
    """
    name = f"optuna-nas-load-{workers}w-{uuid.uuid4().hex[:8]}"
    rdb = open_storage(storage_url, heartbeat_interval=None)
    optuna.create_study(study_name=name, storage=rdb, direction="maximize")
    env = {**os.environ, STORAGE_ENV: storage_url, SECONDS_ENV: repr(trial_seconds)}
    env.setdefault("OMP_NUM_THREADS", "1")
    try:
        with tempfile.TemporaryDirectory() as folder:
            env[STATS_ENV] = folder
            command = [
                sys.executable, "-m", "optuna_nas.cli", "worker",
                "--study-name", name,
                "--objective", "optuna_nas.benchmarks._load:objective",
                "--devices", ",".join(["cpu"] * workers),
                "--trials", str(trials),
                "--seed", str(seed),
                "--max-failures", "1",
            ]
            launched = time.time()
            with open(log or os.devnull, "a", encoding="utf-8") as output:
                code = subprocess.run(
                    command, env=env, stdout=output, stderr=subprocess.STDOUT, check=False
                ).returncode
            if code != 0:
                raise NasError(
                    f"The load run's workers exited with status {code}"
                    + (f"; their output is in {log}." if log else "; rerun with --log FILE.")
                )
            stats = [
                _ProcessStats(**json.loads(p.read_text(encoding="utf-8")))
                for p in Path(folder).glob("*.json")
            ]
        study = optuna.load_study(study_name=name, storage=rdb)
        result = _measure(study, stats, workers, trials, trial_seconds, launched)
    finally:
        if not keep_study:
            optuna.delete_study(study_name=name, storage=rdb)
        rdb.engine.dispose()
    return result


def _measure(
    study: Study,
    stats: list[_ProcessStats],
    workers: int,
    trials: int,
    trial_seconds: float,
    launched: float,
) -> LoadResult:
    all_trials = study.get_trials(deepcopy=False)
    complete = [t for t in all_trials if t.state == TrialState.COMPLETE]
    tokens = Counter(t.user_attrs.get("token") for t in complete)
    duplicated = sum(n - 1 for token, n in tokens.items() if token is not None and n > 1)
    duplicated += tokens.get(None, 0)
    unfinished = sum(t.state != TrialState.COMPLETE for t in all_trials)
    calls = sum(s.calls for s in stats)
    lost = max(0, calls - len(set(tokens) - {None})) + unfinished
    starts = [t.datetime_start.timestamp() for t in complete if t.datetime_start]
    ends = [t.datetime_complete.timestamp() for t in complete if t.datetime_complete]
    span = max(ends) - min(starts) if starts and ends else float("nan")
    busy = sum(
        s.last_end - s.first_start
        for s in stats
        if s.first_start is not None and s.last_end is not None
    )
    return LoadResult(
        workers=workers,
        trials=trials,
        trial_seconds=trial_seconds,
        complete=len(complete),
        lost=lost,
        duplicated=duplicated,
        extra=max(0, len(complete) - trials),
        span_s=span,
        startup_s=(min(starts) - launched) if starts else float("nan"),
        trials_per_s=len(complete) / span if span > 0 else float("nan"),
        sampler_share=sum(s.sampler_s for s in stats) / busy if busy > 0 else float("nan"),
        best_value=max((t.value for t in complete if t.value is not None), default=float("nan")),
    )


def format_load_header(storage_url: str) -> str:
    """The table's header."""
    return (
        f"storage {redact_url(storage_url)}\n"
        f"{'workers':>7} {'trials':>6} {'hold s':>6} {'complete':>8} {'lost':>4} "
        f"{'dup':>4} {'extra':>5} {'span s':>7} {'trials/s':>8} {'sampler':>7} "
        f"{'start s':>7} {'best':>5}"
    )


def format_load_row(result: LoadResult) -> str:
    """One run as a table row."""
    return (
        f"{result.workers:>7} {result.trials:>6} {result.trial_seconds:>6.2f} "
        f"{result.complete:>8} {result.lost:>4} {result.duplicated:>4} {result.extra:>5} "
        f"{result.span_s:>7.1f} {result.trials_per_s:>8.2f} {result.sampler_share:>7.1%} "
        f"{result.startup_s:>7.1f} {result.best_value:>5.1f}"
    )
