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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import torch
from torch import nn

from optuna_nas.errors import ArchitectureError, TableError, _short_repr
from optuna_nas.samplers._registry import make_sampler
from optuna_nas.spaces import Architecture, Choice, Decision, SearchSpace

__all__ = ["FCNetArchSpace", "FCNetObjective", "FCNetSummary", "FCNetTable", "run_fcnet"]

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


#: The architecture's columns (the rest are training hyperparameters).
ARCH_COLUMNS: tuple[str, ...] = PARAM_COLUMNS[:6]


class FCNetArchSpace(SearchSpace):
    """FCNet's architecture as a space object: per layer an activation, a width and a
    dropout, written ``relu-tanh/256-512/0.0-0.3``. For the benchmark's ``--space`` mode,
    which compares joint search (the controller models the training hyperparameters too)
    with delegating those to TPE.

    Args:
        values: The table's values of each architecture column.
        prefix: The params' prefix.
    """

    name = "fcnet"

    def __init__(self, values: dict[str, tuple[Any, ...]], *, prefix: str = "arch/") -> None:
        super().__init__(prefix=prefix)
        self._decisions = tuple(Decision(c, values[c]) for c in ARCH_COLUMNS)

    @property
    def decisions(self) -> tuple[Decision, ...]:
        return self._decisions

    def format(self, values: Mapping[str, Choice]) -> str:
        return "/".join(
            f"{values[f'{kind}_1']}-{values[f'{kind}_2']}"
            for kind in ("activation_fn", "n_units", "dropout")
        )

    def _parse_values(self, string: str) -> dict[str, Choice]:
        parts = [p.split("-") for p in string.strip().split("/")]
        if len(parts) != 3 or any(len(p) != 2 for p in parts):
            raise ArchitectureError(
                f"fcnet: {_short_repr(string)} is not of the form ACT-ACT/UNITS-UNITS/DROP-DROP, "
                "e.g. "
                "'relu-tanh/256-512/0.0-0.3'."
            )
        values: dict[str, Choice] = {}
        for kind, (first, second) in zip(("activation_fn", "n_units", "dropout"), parts,
                                         strict=True):
            for layer, text in ((1, first), (2, second)):
                try:
                    values[f"{kind}_{layer}"] = text if kind == "activation_fn" else float(text)
                except ValueError:
                    raise ArchitectureError(
                        f"fcnet: {_short_repr(text)} is not a number of units or a dropout."
                    ) from None
        return values

    def build(self, arch: Architecture, **network_options: Any) -> torch.nn.Module:
        """The two-layer network: ``in_features`` (required) to one output."""
        in_features = int(network_options["in_features"])
        layers: list[nn.Module] = []
        width = in_features
        for layer in (1, 2):
            units = int(float(str(arch[f"n_units_{layer}"])))
            activation = nn.ReLU() if arch[f"activation_fn_{layer}"] == "relu" else nn.Tanh()
            layers += [nn.Linear(width, units), activation,
                       nn.Dropout(float(str(arch[f"dropout_{layer}"])))]
            width = units
        layers.append(nn.Linear(width, int(network_options.get("out_features", 1))))
        return nn.Sequential(*layers)


class FCNetObjective:
    """The FCNet protocol as a define-by-run Optuna objective (the study minimizes).

    It suggests the nine params in the table's column order, the activations and the
    schedule with ``suggest_categorical`` and the numeric ones with ``suggest_int`` over
    their index, and returns the ``val_loss`` of one of the four training seeds, drawn at
    random. :attr:`regrets` records the incumbent's regret after each evaluation.

    Given a ``space`` (:class:`FCNetArchSpace`), the architecture's six params come from
    ``space.suggest(trial)`` instead, and the training hyperparameters stay plain calls.

    Args:
        table: The benchmark table.
        seed: Seed of the training-seed draws.
        space: The architecture's space object, or ``None`` for define-by-run.
    """

    def __init__(
        self, table: FCNetTable, seed: int, space: FCNetArchSpace | None = None
    ) -> None:
        self.table = table
        self.space = space
        self._random = random.Random(seed)
        self._best: float | None = None
        self.incumbent: tuple[Any, ...] | None = None
        self.regrets: list[float] = []

    def __call__(self, trial: optuna.Trial) -> float:
        config: list[Any] = []
        columns = PARAM_COLUMNS
        if self.space is not None:
            arch = self.space.suggest(trial)
            config = [arch[c] for c in ARCH_COLUMNS]
            columns = PARAM_COLUMNS[len(ARCH_COLUMNS) :]
        for column in columns:
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
    table: FCNetTable,
    sampler: str,
    seeds: int | Sequence[int] = 100,
    trials: int = 100,
    *,
    space: bool = False,
) -> FCNetSummary:
    """Run the protocol with one registered sampler over several seeds.

    Run ``k`` uses seed ``k`` for the sampler (``make_sampler(sampler, k)``, no space) and
    for the training-seed draws, in a new in-memory study.

    Args:
        table: The benchmark table.
        sampler: A registered sampler name.
        seeds: The number of seeds (``N`` gives ``0..N-1``) or the seeds themselves.
        trials: Evaluations per run.
        space: Suggest the architecture through :class:`FCNetArchSpace`, which the sampler
            gets too.
    """
    seed_list = list(range(seeds)) if isinstance(seeds, int) else [int(s) for s in seeds]
    if not seed_list:
        raise ValueError("Give at least one seed.")
    start = time.perf_counter()
    regrets = []
    arch_space = FCNetArchSpace(table.values) if space else None
    for seed in seed_list:
        made = make_sampler(sampler, seed, arch_space)
        study = optuna.create_study(direction="minimize", sampler=made)
        objective = FCNetObjective(table, seed, arch_space)
        study.optimize(objective, n_trials=trials)
        regrets.append(tuple(objective.regrets))
    return FCNetSummary(sampler, tuple(regrets), time.perf_counter() - start)
