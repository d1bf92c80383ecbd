"""FCNet (HPOLib) as a tabular benchmark of joint architecture and hyperparameter search.

The protocol of ``../shared/benchmarks/fcnet/README.md``: a define-by-run objective suggests
the nine params itself (no space object); an evaluation returns the ``val_loss`` of one
training seed drawn at random; the incumbent (the best value observed) is scored by its
regret ``val_loss_mean - min(val_loss_mean)``; over the seeds, the log10 of the mean regret
and the share of seeds whose incumbent is the optimum, at each number of evaluations asked.

Paper: Klein & Hutter, "Tabular Benchmarks for Joint Architecture and Hyperparameter
Optimization", 2019, https://arxiv.org/abs/1905.04970.
"""

from __future__ import annotations

import csv
import itertools
import math
import os
import random
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna

from optuna_nas.errors import TableError, _short_repr
from optuna_nas.samplers._registry import make_sampler

__all__ = ["FCNetObjective", "FCNetSummary", "FCNetTable", "run_fcnet"]

#: The configuration's columns, in the order the objective suggests them.
PARAM_COLUMNS: tuple[str, ...] = (
    "activation_fn_1",
    "activation_fn_2",
    "n_units_1",
    "n_units_2",
    "dropout_1",
    "dropout_2",
    "init_lr",
    "lr_schedule",
    "batch_size",
)
#: Suggested as categoricals; the others, numeric, as ``suggest_int`` over their index.
_CATEGORICAL = frozenset({"activation_fn_1", "activation_fn_2", "lr_schedule"})
SEED_COLUMNS: tuple[str, ...] = tuple(f"val_loss_seed{k}" for k in range(4))
_COLUMNS = (*PARAM_COLUMNS, *SEED_COLUMNS, "val_loss_mean")


class FCNetTable:
    """An FCNet table: the four seeds' validation losses of every configuration.

    Build it with :meth:`load`. :attr:`values` holds each param's values in the order the
    objective indexes them (numeric ones ascending).

    Args:
        values: Each param column's values.
        losses: Configuration (a tuple of values in :data:`PARAM_COLUMNS` order) ->
            (the per-seed losses, their mean).
        path: Where the table was read from, for messages.
    """

    def __init__(
        self,
        values: dict[str, tuple[Any, ...]],
        losses: dict[tuple[Any, ...], tuple[tuple[float, ...], float]],
        path: Path | None = None,
    ) -> None:
        self.values = values
        self.losses = losses
        self.path = path
        self.best_loss = min(mean for _, mean in losses.values())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> FCNetTable:
        """Read and check an FCNet CSV table (the schema of
        ``../shared/benchmarks/fcnet/README.md``).

        Raises:
            TableError: The file is missing or unreadable, a column is missing, a value is
                not a finite number, a configuration is repeated, or one of the grid's
                configurations (every combination of the columns' values) has no row.
        """
        expected = (
            "an FCNet CSV table with columns " + ", ".join(_COLUMNS)
            + " (see ../shared/benchmarks/fcnet/README.md)"
        )
        file = Path(path)
        if not file.is_file():
            what = "is a directory" if file.is_dir() else "does not exist"
            raise TableError(f"Table file {str(file)!r} {what}; expected {expected}.")
        raw: list[tuple[tuple[str, ...], tuple[float, ...], float]] = []
        try:
            with file.open(newline="", encoding="utf-8-sig") as handle:
                reader = csv.DictReader(handle)
                header = reader.fieldnames or []
                missing = [c for c in _COLUMNS if c not in header]
                if missing:
                    raise TableError(
                        f"Table file {str(file)!r} lacks column(s) {', '.join(missing)}; "
                        f"expected {expected} (found: {_short_repr(', '.join(header), 300)})."
                    )
                for number, record in enumerate(reader, start=1):
                    config = tuple(record[c] or "" for c in PARAM_COLUMNS)
                    numbers = []
                    for column in (*SEED_COLUMNS, "val_loss_mean"):
                        try:
                            value = float(record[column] or "nan")
                        except ValueError:
                            value = math.nan
                        if not math.isfinite(value):
                            raise TableError(
                                f"Row {number} (line {reader.line_num}) of {str(file)!r}: "
                                f"column {column} is {_short_repr(record[column])}, not a "
                                "finite number."
                            )
                        numbers.append(value)
                    raw.append((config, tuple(numbers[:4]), numbers[4]))
        except UnicodeDecodeError as error:
            raise TableError(f"Table file {str(file)!r} is not UTF-8 text ({error}).") from None
        except OSError as error:
            raise TableError(f"Cannot read table file {str(file)!r}: {error}.") from None
        if not raw:
            raise TableError(f"Table file {str(file)!r} has no rows; expected {expected}.")
        values: dict[str, tuple[Any, ...]] = {}
        for k, column in enumerate(PARAM_COLUMNS):
            seen = {config[k] for config, _, _ in raw}
            if column in _CATEGORICAL:
                values[column] = tuple(sorted(seen))
            else:
                try:
                    values[column] = tuple(sorted(float(v) for v in seen))
                except ValueError:
                    raise TableError(
                        f"Column {column} of {str(file)!r} holds a value that is not a number "
                        f"({_short_repr(sorted(seen))})."
                    ) from None
        losses: dict[tuple[Any, ...], tuple[tuple[float, ...], float]] = {}
        for config, seeds, mean in raw:
            key = _key(config)
            if key in losses:
                raise TableError(
                    f"Table file {str(file)!r} holds configuration {config} twice."
                )
            losses[key] = (seeds, mean)
        if len(losses) != math.prod(len(v) for v in values.values()):
            for combination in itertools.product(*values.values()):
                if combination not in losses:
                    named = ", ".join(
                        f"{c}={v}" for c, v in zip(PARAM_COLUMNS, combination, strict=True)
                    )
                    raise TableError(
                        f"Table file {str(file)!r} has no row for the configuration {named}: "
                        "an FCNet table holds every combination of its columns' values."
                    )
        return cls(values, losses, file)

    def loss(self, config: Sequence[Any], seed: int) -> float:
        """One training seed's validation loss of a configuration."""
        return self.losses[tuple(config)][0][seed]

    def mean_loss(self, config: Sequence[Any]) -> float:
        """The mean validation loss of a configuration over its four seeds."""
        return self.losses[tuple(config)][1]


def _key(config: Sequence[str]) -> tuple[Any, ...]:
    return tuple(
        v if c in _CATEGORICAL else float(v) for c, v in zip(PARAM_COLUMNS, config, strict=True)
    )


class FCNetObjective:
    """The FCNet protocol as a define-by-run Optuna objective (the study minimizes).

    It suggests the nine params in the table's column order, the activations and the
    schedule with ``suggest_categorical`` and the numeric ones with ``suggest_int`` over
    their index, and returns the ``val_loss`` of one of the four training seeds, drawn at
    random. :attr:`regrets` records the incumbent's regret after each evaluation.

    Args:
        table: The benchmark table.
        seed: Seed of the training-seed draws.
    """

    def __init__(self, table: FCNetTable, seed: int) -> None:
        self.table = table
        self._random = random.Random(seed)
        self._best: float | None = None
        self.incumbent: tuple[Any, ...] | None = None
        self.regrets: list[float] = []

    def __call__(self, trial: optuna.Trial) -> float:
        config: list[Any] = []
        for column in PARAM_COLUMNS:
            choices = self.table.values[column]
            if column in _CATEGORICAL:
                config.append(trial.suggest_categorical(column, choices))
            else:
                config.append(choices[trial.suggest_int(column, 0, len(choices) - 1)])
        loss = self.table.loss(config, self._random.randrange(4))
        if self._best is None or loss < self._best:
            self._best, self.incumbent = loss, tuple(config)
        assert self.incumbent is not None
        self.regrets.append(self.table.mean_loss(self.incumbent) - self.table.best_loss)
        return loss


@dataclass(frozen=True)
class FCNetSummary:
    """One sampler's runs: the incumbent's regret after each evaluation, per seed.

    Args:
        sampler: The sampler's registered name.
        regrets: Per seed, the regret after evaluation 1, 2, ...
        wall_s: Wall-clock seconds the runs took.
    """

    sampler: str
    regrets: tuple[tuple[float, ...], ...]
    wall_s: float = field(default=0.0, compare=False)

    def at(self, evaluations: int) -> dict[str, float]:
        """``log10_mean_regret`` and ``optimum_share`` after that many evaluations."""
        final = [r[evaluations - 1] for r in self.regrets]
        mean = statistics.fmean(final)
        return {
            "log10_mean_regret": math.log10(mean) if mean > 0 else -math.inf,
            "mean_regret": mean,
            "optimum_share": sum(r == 0 for r in final) / len(final),
        }

    def as_dict(self, checkpoints: Sequence[int]) -> dict[str, Any]:
        return {
            "sampler": self.sampler,
            "seeds": len(self.regrets),
            "wall_s": self.wall_s,
            **{str(n): self.at(n) for n in checkpoints},
        }

    def line(self, checkpoints: Sequence[int]) -> str:
        parts = []
        for n in checkpoints:
            figures = self.at(n)
            parts.append(
                f"{n}: {figures['log10_mean_regret']:.2f} "
                f"({100 * figures['optimum_share']:.0f}% optimum)"
            )
        return f"{self.sampler}: " + "  ".join(parts) + f"  [{self.wall_s:.0f} s]"


def run_fcnet(
    table: FCNetTable, sampler: str, seeds: int | Sequence[int] = 100, trials: int = 100
) -> FCNetSummary:
    """Run the protocol with one registered sampler over several seeds.

    Run ``k`` uses seed ``k`` for the sampler (``make_sampler(sampler, k)``, no space) and
    for the training-seed draws, in a new in-memory study.

    Args:
        table: The benchmark table.
        sampler: A registered sampler name.
        seeds: The number of seeds (``N`` gives ``0..N-1``) or the seeds themselves.
        trials: Evaluations per run.
    """
    seed_list = list(range(seeds)) if isinstance(seeds, int) else [int(s) for s in seeds]
    if not seed_list:
        raise ValueError("Give at least one seed.")
    start = time.perf_counter()
    regrets = []
    for seed in seed_list:
        study = optuna.create_study(direction="minimize", sampler=make_sampler(sampler, seed))
        objective = FCNetObjective(table, seed)
        study.optimize(objective, n_trials=trials)
        regrets.append(tuple(objective.regrets))
    return FCNetSummary(sampler, tuple(regrets), time.perf_counter() - start)
