"""Random search with and without ASHA on digits: ``python -m optuna_nas.benchmarks asha``.

For each seed both arms run :func:`~optuna_nas.asha.random_search_asha` with the same seed
and the same number of trials: ``asha`` (successive halving prunes) and ``full`` (every
trial trains for ``max_epochs``). Each arm scores the test accuracy of its best trial (best
by validation accuracy among the trials that ran every epoch) and counts the epochs it
trained. Paper: Li & Talwalkar, "Random Search and Reproducibility for Neural Architecture
Search", UAI 2019, https://arxiv.org/abs/1902.07638.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.trial import TrialState

from optuna_nas.asha import random_search_asha, total_epochs
from optuna_nas.data import ImageData, load_digits
from optuna_nas.errors import NasError
from optuna_nas.spaces import NasBench201Space

__all__ = [
    "ARMS",
    "ZERO_COST_ARM",
    "DEFAULT_MAX_EPOCHS",
    "DEFAULT_TRIALS",
    "NETWORK_OPTIONS",
    "AshaArm",
    "AshaBenchmark",
    "AshaRun",
    "run_asha_arm",
    "run_asha_benchmark",
]

ARMS: tuple[str, ...] = ("asha", "full")
"""The two arms: ASHA pruning, and every trial at full budget."""

ZERO_COST_ARM = "zero-cost-asha"
"""ASHA behind a zero-cost pruner, which stops low-scoring trials before their first epoch."""

DEFAULT_TRIALS = 24
"""Trials per arm and seed."""

DEFAULT_MAX_EPOCHS = 16
"""Epochs of a trial that is never stopped."""

NETWORK_OPTIONS: Mapping[str, Any] = {"channels": 8, "cells_per_stage": 1}
"""The NAS-Bench-201 skeleton, shrunk for 8x8 digits: 8 channels, one cell per stage."""

DATA_SEED = 0
"""Seed of the digits split, the same for every seed and arm."""

DEVICE = "cpu"
"""The benchmark trains on the CPU, so its figures repeat on any machine."""


@dataclass(frozen=True)
class AshaRun:
    """One arm's search with one seed.

    Args:
        arm: ``"asha"`` or ``"full"``.
        seed: The search's seed.
        best_trial: Number of the best trial (by validation accuracy, among the trials that
            ran every epoch).
        best_architecture: Its architecture string.
        best_valid_accuracy: Its validation accuracy (a fraction).
        best_test_accuracy: Its test accuracy (a fraction): the score.
        epochs: Epochs the search trained, summed over its trials.
        n_complete: Trials that ran every epoch.
        n_pruned: Trials ASHA stopped.
        n_failed: Trials whose training diverged.
        wall_s: Wall-clock seconds of the search.
    """

    arm: str
    seed: int
    best_trial: int
    best_architecture: str
    best_valid_accuracy: float
    best_test_accuracy: float
    epochs: int
    n_complete: int
    n_pruned: int
    n_failed: int
    wall_s: float = field(default=0.0, compare=False)

    def line(self) -> str:
        """The line the CLI prints as the run finishes."""
        return (
            f"seed {self.seed} {self.arm}: best test {100 * self.best_test_accuracy:.2f}% "
            f"(trial {self.best_trial}, valid {100 * self.best_valid_accuracy:.2f}%), "
            f"{self.epochs} epochs, {self.n_complete} complete / {self.n_pruned} pruned / "
            f"{self.n_failed} failed, {self.wall_s:.0f} s"
        )

    def as_dict(self) -> dict[str, Any]:
        """The run as JSON-ready values."""
        return {
            "arm": self.arm,
            "seed": self.seed,
            "best_trial": self.best_trial,
            "best_architecture": self.best_architecture,
            "best_valid_accuracy": self.best_valid_accuracy,
            "best_test_accuracy": self.best_test_accuracy,
            "epochs": self.epochs,
            "n_complete": self.n_complete,
            "n_pruned": self.n_pruned,
            "n_failed": self.n_failed,
            "wall_s": self.wall_s,
        }


@dataclass(frozen=True)
class AshaArm:
    """The runs of one arm over the seeds.

    ``std`` is the population standard deviation (``ddof=0``); ``std_sample`` the sample
    one (``ddof=1``).

    Args:
        arm: ``"asha"`` or ``"full"``.
        runs: One run per seed.
    """

    arm: str
    runs: tuple[AshaRun, ...]

    @property
    def scores(self) -> list[float]:
        """The runs' best test accuracies, in seed order."""
        return [run.best_test_accuracy for run in self.runs]

    @property
    def mean(self) -> float:
        """Mean best test accuracy."""
        return statistics.fmean(self.scores)

    @property
    def std(self) -> float:
        """Population standard deviation of the best test accuracy."""
        return statistics.pstdev(self.scores)

    @property
    def std_sample(self) -> float:
        """Sample standard deviation of the best test accuracy (0 for one run)."""
        return statistics.stdev(self.scores) if len(self.runs) > 1 else 0.0

    @property
    def epochs(self) -> int:
        """Epochs trained over every seed."""
        return sum(run.epochs for run in self.runs)

    @property
    def wall_s(self) -> float:
        """Wall-clock seconds over every seed."""
        return sum(run.wall_s for run in self.runs)

    def line(self) -> str:
        """The arm's summary line: mean ± std best test accuracy and total epochs."""
        return (
            f"{self.arm}: best test accuracy {100 * self.mean:.2f} ± {100 * self.std:.2f} %  "
            f"epochs {self.epochs} ({self.epochs / len(self.runs):.1f} per seed)  "
            f"wall {self.wall_s:.0f} s"
        )

    def as_dict(self) -> dict[str, Any]:
        """The figures and the per-seed runs as JSON-ready values."""
        return {
            "arm": self.arm,
            "seeds": len(self.runs),
            "mean_test_accuracy": self.mean,
            "std_test_accuracy": self.std,
            "std_sample_test_accuracy": self.std_sample,
            "epochs": self.epochs,
            "wall_s": self.wall_s,
            "runs": [run.as_dict() for run in self.runs],
        }


@dataclass(frozen=True)
class AshaBenchmark:
    """Both arms over the same seeds, with their settings.

    Args:
        asha: The ASHA arm.
        full: The full-budget arm.
        settings: The searches' settings (trials, epochs, ASHA's parameters, network).
    """

    asha: AshaArm
    full: AshaArm
    settings: Mapping[str, Any]

    @property
    def epoch_ratio(self) -> float:
        """Epochs of the ASHA arm over those of the full-budget arm."""
        return self.asha.epochs / self.full.epochs

    @property
    def differences(self) -> list[float]:
        """Per seed, ASHA's best test accuracy minus the full arm's (fractions)."""
        return [a - f for a, f in zip(self.asha.scores, self.full.scores, strict=True)]

    def lines(self) -> list[str]:
        """The summary the CLI prints after the per-seed lines."""
        diffs = self.differences
        same = sum(
            a.best_trial == f.best_trial
            for a, f in zip(self.asha.runs, self.full.runs, strict=True)
        )
        return [
            self.asha.line(),
            self.full.line(),
            f"epochs asha/full: {self.epoch_ratio:.3f}",
            f"asha - full best test accuracy: {100 * statistics.fmean(diffs):+.2f} ± "
            f"{100 * statistics.pstdev(diffs):.2f} points (paired by seed); asha kept the "
            f"full arm's best trial in {same} of {len(diffs)} seeds",
        ]

    def as_dict(self) -> dict[str, Any]:
        """Every figure and setting as JSON-ready values."""
        diffs = self.differences
        return {
            "benchmark": "asha",
            **self.settings,
            "std": "population (ddof=0); std_sample has ddof=1",
            "arms": {"asha": self.asha.as_dict(), "full": self.full.as_dict()},
            "epoch_ratio": self.epoch_ratio,
            "paired_difference": {
                "per_seed": diffs,
                "mean": statistics.fmean(diffs),
                "std": statistics.pstdev(diffs),
            },
        }


def run_asha_arm(
    arm: str,
    seed: int,
    data: ImageData,
    *,
    n_trials: int = DEFAULT_TRIALS,
    max_epochs: int = DEFAULT_MAX_EPOCHS,
    min_resource: int = 1,
    reduction_factor: int = 4,
    network_options: Mapping[str, Any] = NETWORK_OPTIONS,
    zero_cost: str = "synflow",
    zero_cost_percentile: float = 25.0,
    zero_cost_startup_trials: int = 5,
) -> AshaRun:
    """Run one arm's search with one seed on the NAS-Bench-201 space, on the CPU.

    Args:
        arm: ``"asha"``, ``"full"``, or ``"zero-cost-asha"``: ASHA wrapped in a
            :class:`~optuna_nas.zero_cost.ZeroCostPruner` that prunes at initialisation
            by the proxy ``zero_cost``.
        seed: The search's seed.
        data: The splits; the test split is required.
        n_trials: Trials of the search.
        max_epochs: Epochs of a trial that is never stopped.
        min_resource: ASHA's minimum resource (epochs).
        reduction_factor: ASHA's reduction factor.
        network_options: Options of ``NasBench201Space.build``.
        zero_cost: The ``zero-cost-asha`` arm's proxy.
        zero_cost_percentile: Its pruner's percentile.
        zero_cost_startup_trials: Its pruner's ``n_startup_trials``.

    Raises:
        ValueError: The arm is unknown, an argument is out of range, or the data has no
            test split.
        NasError: No trial ran every epoch.
    """
    if arm not in (*ARMS, ZERO_COST_ARM):
        raise ValueError(f"Unknown arm {arm!r}; choose one of {[*ARMS, ZERO_COST_ARM]}.")
    if data.test is None:
        raise ValueError(f"The {data.name} data has no test split; the benchmark scores on it.")
    start = time.perf_counter()
    study = random_search_asha(
        NasBench201Space(),
        data,
        n_trials=n_trials,
        max_epochs=max_epochs,
        asha=arm != "full",
        min_resource=min_resource,
        reduction_factor=reduction_factor,
        seed=seed,
        network_options=network_options,
        device=DEVICE,
        zero_cost=zero_cost if arm == ZERO_COST_ARM else None,
        zero_cost_percentile=zero_cost_percentile,
        zero_cost_startup_trials=zero_cost_startup_trials,
    )
    wall_s = time.perf_counter() - start
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    if not complete:
        raise NasError(
            f"No trial of the {arm} arm with seed {seed} ran every epoch (all were pruned or "
            "failed); run more trials or lower the learning rate."
        )
    best = study.best_trial
    return AshaRun(
        arm=arm,
        seed=seed,
        best_trial=best.number,
        best_architecture=str(best.user_attrs["architecture"]),
        best_valid_accuracy=float(best.value or 0.0),
        best_test_accuracy=float(best.user_attrs["test_accuracy"]),
        epochs=total_epochs(trials),
        n_complete=len(complete),
        n_pruned=sum(t.state == TrialState.PRUNED for t in trials),
        n_failed=sum(t.state == TrialState.FAIL for t in trials),
        wall_s=wall_s,
    )


def run_asha_benchmark(
    *,
    seeds: int | Sequence[int] = 5,
    n_trials: int = DEFAULT_TRIALS,
    max_epochs: int = DEFAULT_MAX_EPOCHS,
    min_resource: int = 1,
    reduction_factor: int = 4,
    network_options: Mapping[str, Any] = NETWORK_OPTIONS,
    data: ImageData | None = None,
    progress: Callable[[AshaRun], None] | None = None,
) -> AshaBenchmark:
    """Run both arms for every seed on the digits data.

    Seed ``k`` runs the ASHA arm, then the full-budget arm, each a new in-memory study
    with ``RandomSampler(seed=k)``: both draw the same architectures and train trial ``j``
    identically up to the epoch ASHA stops it. The digits split is the same throughout
    (:data:`DATA_SEED`). Optuna's log level and torch's thread count are not changed here;
    the CLI sets them.

    Args:
        seeds: The number of seeds (``N`` gives ``0..N-1``) or the seeds themselves.
        n_trials: Trials per arm and seed.
        max_epochs: Epochs of a trial that is never stopped.
        min_resource: ASHA's minimum resource (epochs).
        reduction_factor: ASHA's reduction factor.
        network_options: Options of ``NasBench201Space.build``.
        data: The splits; ``None`` (the benchmark) loads the digits split with
            :data:`DATA_SEED`.
        progress: Called with each run as it finishes.

    Raises:
        ValueError: No seeds, or an argument is out of range (checked before any training).
    """
    seed_list = list(range(seeds)) if isinstance(seeds, int) else [int(s) for s in seeds]
    if not seed_list:
        raise ValueError("Give at least one seed (seeds=1 or more).")
    if min_resource >= max_epochs:
        raise ValueError(
            f"min_resource ({min_resource}) must be below max_epochs ({max_epochs}), or ASHA "
            "can never stop a trial; lower min_resource or raise max_epochs."
        )
    data_name = f"digits (load_digits(seed={DATA_SEED}))" if data is None else data.name
    if data is None:
        data = load_digits(seed=DATA_SEED)
    runs: dict[str, list[AshaRun]] = {arm: [] for arm in ARMS}
    for seed in seed_list:
        for arm in ARMS:
            run = run_asha_arm(
                arm,
                seed,
                data,
                n_trials=n_trials,
                max_epochs=max_epochs,
                min_resource=min_resource,
                reduction_factor=reduction_factor,
                network_options=network_options,
            )
            runs[arm].append(run)
            if progress is not None:
                progress(run)
    settings = {
        "data": data_name,
        "space": "NasBench201Space",
        "network_options": dict(network_options),
        "sampler": "RandomSampler(seed=k)",
        "seeds": seed_list,
        "n_trials": n_trials,
        "max_epochs": max_epochs,
        "min_resource": min_resource,
        "reduction_factor": reduction_factor,
        "device": DEVICE,
        "optuna": optuna.__version__,
    }
    return AshaBenchmark(
        AshaArm("asha", tuple(runs["asha"])), AshaArm("full", tuple(runs["full"])), settings
    )
