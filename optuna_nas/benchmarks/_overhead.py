"""Sampler overhead: the wall time per trial that a sampler and a storage add to a study.

The objective does nothing but ``NasBench201Space().suggest(trial)`` and a synthetic score
(microseconds), so the time of a trial is the time Optuna, the sampler and the storage
spend on it: ``study.ask()`` (trial creation, ``before_trial``), the six architecture
suggestions (inference of the search space, ``sample_relative``/``sample_independent``,
where a model-based sampler fits and samples its model), and ``study.tell()``
(``after_trial``, writing the result). Each trial is timed on its own, in an ask-and-tell
loop, and the figure is the mean over a window of trials: the first tenth (trials 1-100
of 1,000) and the last (trials 900-1000), which shows how the cost grows with the history.

``python -m optuna_nas.benchmarks overhead [--trials 1000] [--json FILE]`` runs it for
RandomSampler, TPESampler (Optuna's defaults) and ControllerSampler (default preset), in
memory and on SQLite (a fresh temporary file with SQLite's default settings), in one
process, one after the other.
"""

from __future__ import annotations

import datetime
import os
import platform
import statistics
import tempfile
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna

from optuna_nas.samplers._registry import check_sampler_names, make_sampler
from optuna_nas.spaces import Architecture, NasBench201Space

__all__ = [
    "OP_SCORES",
    "OverheadResult",
    "STORAGES",
    "SAMPLERS",
    "format_overhead_header",
    "format_overhead_row",
    "format_overhead_table",
    "machine_info",
    "measure_overhead",
    "overhead_document",
    "overhead_windows",
    "run_overhead",
    "synthetic_score",
]

SAMPLERS: tuple[str, ...] = ("random", "tpe", "controller")
"""The samplers the overhead command measures by default (registered names)."""

DEFINE_BY_RUN: tuple[str, ...] = ("controller",)
"""The samplers also measured on the define-by-run objective (no space object)."""

STORAGES: tuple[str, ...] = ("memory", "sqlite")
"""``memory``: Optuna's in-memory storage; ``sqlite``: an RDB storage on a temporary file."""

OP_SCORES: Mapping[str, float] = {
    "none": 0.0,
    "skip_connect": 1.0,
    "avg_pool_3x3": 1.5,
    "nor_conv_1x1": 2.5,
    "nor_conv_3x3": 3.0,
}
"""The per-edge score of each op in :func:`synthetic_score`."""


def synthetic_score(arch: Architecture) -> float:
    """A cheap, deterministic score of a NAS-Bench-201 cell with a learnable structure.

    The sum over the six edges of :data:`OP_SCORES` (convolutions best, as in the real
    benchmark) plus a fixed pseudo-random term in [0, 1) from the architecture string, so
    that architectures differ and the samplers have something to learn.

    Args:
        arch: A NAS-Bench-201 architecture.

    Returns:
        The score, in [0, 19).
    """
    base = sum(OP_SCORES[str(value)] for _, value in arch.values)
    noise = zlib.crc32(arch.string.encode("utf-8")) / 2**32
    return base + noise


def overhead_windows(trials: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """The first and last windows of trials, 1-based and inclusive.

    ``(1, trials/10)`` and ``(0.9 * trials, trials)``, rounded: ``(1, 100)`` and
    ``(900, 1000)`` for 1,000 trials, ``(1, 3)`` and ``(27, 30)`` for 30.

    Args:
        trials: The number of trials of a run (at least 1).

    Returns:
        ``((first_start, first_stop), (last_start, last_stop))``.

    Raises:
        ValueError: ``trials`` is below 1.
    """
    if trials < 1:
        raise ValueError(f"trials must be at least 1, got {trials}.")
    tenth = max(1, round(trials / 10))
    return (1, tenth), (max(1, trials - tenth), trials)


@dataclass(frozen=True)
class OverheadResult:
    """The per-trial wall times of one sampler on one storage.

    Args:
        sampler: The sampler's registered name.
        storage: ``"memory"`` or ``"sqlite"``.
        per_trial_ms: The wall time of each trial, in milliseconds, in trial order.
        wall_s: Wall-clock seconds of the whole run, study creation included.
    """

    sampler: str
    storage: str
    per_trial_ms: tuple[float, ...]
    wall_s: float

    @property
    def trials(self) -> int:
        """The number of trials."""
        return len(self.per_trial_ms)

    @property
    def windows(self) -> tuple[tuple[int, int], tuple[int, int]]:
        """The first and last windows (see :func:`overhead_windows`)."""
        return overhead_windows(self.trials)

    def _window(self, which: int) -> list[float]:
        start, stop = self.windows[which]
        return list(self.per_trial_ms[start - 1 : stop])

    @property
    def first_ms(self) -> float:
        """Mean milliseconds per trial over the first window."""
        return statistics.fmean(self._window(0))

    @property
    def last_ms(self) -> float:
        """Mean milliseconds per trial over the last window."""
        return statistics.fmean(self._window(1))

    @property
    def first_median_ms(self) -> float:
        """Median milliseconds per trial over the first window."""
        return statistics.median(self._window(0))

    @property
    def last_median_ms(self) -> float:
        """Median milliseconds per trial over the last window."""
        return statistics.median(self._window(1))

    @property
    def mean_ms(self) -> float:
        """Mean milliseconds per trial over all trials."""
        return statistics.fmean(self.per_trial_ms)

    def as_dict(self, *, per_trial: bool = True) -> dict[str, Any]:
        """The figures as JSON-ready values.

        Args:
            per_trial: Include every trial's time (``per_trial_ms``).
        """
        (first_start, first_stop), (last_start, last_stop) = self.windows
        document: dict[str, Any] = {
            "sampler": self.sampler,
            "storage": self.storage,
            "trials": self.trials,
            "first_window": [first_start, first_stop],
            "last_window": [last_start, last_stop],
            "first_ms": self.first_ms,
            "last_ms": self.last_ms,
            "first_median_ms": self.first_median_ms,
            "last_median_ms": self.last_median_ms,
            "mean_ms": self.mean_ms,
            "wall_s": self.wall_s,
        }
        if per_trial:
            document["per_trial_ms"] = [round(ms, 4) for ms in self.per_trial_ms]
        return document


def _make_storage(kind: str, directory: Path) -> optuna.storages.BaseStorage:
    if kind == "memory":
        return optuna.storages.InMemoryStorage()
    if kind == "sqlite":
        return optuna.storages.RDBStorage(f"sqlite:///{directory / 'overhead.sqlite3'}")
    raise ValueError(f"Unknown storage {kind!r}; choose from {', '.join(STORAGES)}.")


def measure_overhead(
    sampler: str,
    storage: str = "memory",
    *,
    trials: int = 1000,
    seed: int = 0,
    define_by_run: bool = False,
) -> OverheadResult:
    """Time every trial of one sampler on one storage with the trivial objective.

    A new study (maximize :func:`synthetic_score`) on a new storage: in memory, or on a
    new SQLite file in a temporary directory that is removed afterwards. Each trial is
    ``study.ask()``, ``NasBench201Space().suggest(trial)``, the score and ``study.tell()``,
    timed with :func:`time.perf_counter`.

    Args:
        sampler: A registered sampler name (``make_sampler(sampler, seed, space)``).
        storage: ``"memory"`` or ``"sqlite"``.
        trials: Number of trials.
        seed: The sampler's seed.
        define_by_run: The objective asks for the six edges with plain
            ``suggest_categorical`` calls and the sampler gets no space; the result is
            named ``"NAME (define-by-run)"``.

    Returns:
        The per-trial times.

    Raises:
        ValueError: ``trials`` is below 1 or ``storage`` is unknown.
        UnknownSamplerError: ``sampler`` is not registered.
    """
    if trials < 1:
        raise ValueError(f"trials must be at least 1, got {trials}.")
    if storage not in STORAGES:
        raise ValueError(f"Unknown storage {storage!r}; choose from {', '.join(STORAGES)}.")
    space = NasBench201Space()
    chosen = make_sampler(sampler, seed, None if define_by_run else space)

    def suggest(trial: optuna.Trial) -> Architecture:
        if not define_by_run:
            return space.suggest(trial)
        return space.from_values(
            {d.name: trial.suggest_categorical(d.name, d.choices) for d in space.decisions}
        )

    per_trial: list[float] = []
    with tempfile.TemporaryDirectory(prefix="optuna-nas-overhead-") as directory:
        started = time.perf_counter()
        backend = _make_storage(storage, Path(directory))
        try:
            study = optuna.create_study(
                storage=backend, sampler=chosen, direction="maximize"
            )
            clock = time.perf_counter
            for _ in range(trials):
                begin = clock()
                trial = study.ask()
                value = synthetic_score(suggest(trial))
                study.tell(trial, value)
                per_trial.append((clock() - begin) * 1000.0)
        finally:
            if isinstance(backend, optuna.storages.RDBStorage):
                backend.engine.dispose()
        wall = time.perf_counter() - started
    name = f"{sampler} (define-by-run)" if define_by_run else sampler
    return OverheadResult(name, storage, tuple(per_trial), wall)


def run_overhead(
    *,
    trials: int = 1000,
    samplers: Sequence[str] = SAMPLERS,
    storages: Sequence[str] = STORAGES,
    seed: int = 0,
    progress: Callable[[OverheadResult], None] | None = None,
    define_by_run: Sequence[str] = DEFINE_BY_RUN,
) -> list[OverheadResult]:
    """Measure every sampler on every storage, one after the other, in this process.

    Args:
        trials: Trials per sampler and storage.
        samplers: Registered sampler names.
        storages: Storage kinds, from :data:`STORAGES`.
        seed: The samplers' seed.
        progress: Called with each result as soon as it is measured.
        define_by_run: Samplers also measured on the define-by-run objective, with no
            space.

    Returns:
        One result per storage and sampler, storage by storage.

    Raises:
        ValueError: ``trials`` is below 1 or a storage is unknown.
        UnknownSamplerError: A sampler name is not registered.
    """
    if trials < 1:
        raise ValueError(f"trials must be at least 1, got {trials}.")
    check_sampler_names([*samplers, *define_by_run])
    for storage in storages:
        if storage not in STORAGES:
            raise ValueError(f"Unknown storage {storage!r}; choose from {', '.join(STORAGES)}.")
    results: list[OverheadResult] = []
    for storage in storages:
        runs = [(s, False) for s in samplers] + [(s, True) for s in define_by_run]
        for sampler, plain in runs:
            result = measure_overhead(
                sampler, storage, trials=trials, seed=seed, define_by_run=plain
            )
            results.append(result)
            if progress is not None:
                progress(result)
    return results


def _header(trials: int) -> tuple[str, str]:
    (f1, f2), (l1, l2) = overhead_windows(trials)
    return f"trials {f1}-{f2}", f"trials {l1}-{l2}"


def format_overhead_row(result: OverheadResult) -> str:
    """One row of :func:`format_overhead_table`."""
    return (
        f"{result.sampler:<26} {result.storage:<8} {result.first_ms:>14.2f} "
        f"{result.last_ms:>16.2f} {result.wall_s:>8.1f}"
    )


def format_overhead_header(trials: int) -> str:
    """The two header lines of :func:`format_overhead_table`."""
    first, last = _header(trials)
    return (
        f"{'':<26} {'':<8} {'ms/trial':>14} {'ms/trial':>16} {'total':>8}\n"
        f"{'sampler':<26} {'storage':<8} {first:>14} {last:>16} {'s':>8}"
    )


def format_overhead_table(results: Sequence[OverheadResult]) -> str:
    """The printed table: mean milliseconds per trial over the two windows, per run.

    Args:
        results: Results of runs with the same number of trials.

    Returns:
        The table, without a final newline.
    """
    if not results:
        return format_overhead_header(1000)
    lines = [format_overhead_header(results[0].trials)]
    lines.extend(format_overhead_row(result) for result in results)
    return "\n".join(lines)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict[str, Any]:
    """What the figures depend on: CPU count, platform, versions and the date (UTC)."""
    import numpy
    import torch

    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "cpu_count": os.cpu_count(),
        "processor": _cpu_model(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "optuna": optuna.__version__,
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "torch_threads": torch.get_num_threads(),
    }


def overhead_document(
    results: Sequence[OverheadResult], *, trials: int, seed: int = 0
) -> dict[str, Any]:
    """The JSON document of the overhead command.

    Args:
        results: The measured runs.
        trials: Trials per run.
        seed: The samplers' seed.

    Returns:
        ``benchmark``, ``trials``, ``seed``, ``space``, ``objective``, ``unit``, the
        windows, ``machine`` (:func:`machine_info`) and ``results`` (one
        :meth:`OverheadResult.as_dict` per run, per-trial times included).
    """
    (first_start, first_stop), (last_start, last_stop) = overhead_windows(trials)
    return {
        "benchmark": "overhead",
        "trials": trials,
        "seed": seed,
        "space": "nasbench201",
        "objective": "NasBench201Space().suggest(trial), synthetic_score; ask and tell",
        "unit": "milliseconds per trial: wall time of ask, suggest, score and tell",
        "first_window": [first_start, first_stop],
        "last_window": [last_start, last_stop],
        "machine": machine_info(),
        "results": [result.as_dict() for result in results],
    }
