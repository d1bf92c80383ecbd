"""A study's own params as the controller's decisions: define-by-run, learned from trials.

Each param name with its distribution is one decision, its choices the distribution's
values (a categorical's choices, an int's or a stepped float's grid) or, for a range too
fine to enumerate, ``_BINS`` equal bins of it (on the log scale for ``log=True``), a value
drawn uniformly inside the chosen bin. Numeric decisions are ordinal: the controller's
surrogate sees neighbouring choices as alike. Decisions come in the order the objective
first suggested them; one that only some trials suggest is conditional, its condition
learned from the trials (see :meth:`LearnedParams.conditions`).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
    distribution_to_json,
)

from optuna_nas.spaces._base import Decision

#: A grid of up to this many values is enumerated; a finer range is split into _BINS bins.
_MAX_GRID = 32
_BINS = 16


@dataclass(frozen=True)
class ParamDecision:
    """One param of the study (a name and a distribution) as a decision of ``size``
    choices, numbered from 0."""

    name: str  # the decision's name: the param's, with "#k" for its k-th distribution
    param: str
    distribution: BaseDistribution
    size: int
    ordinal: bool
    grid: bool  # every value of the distribution is a choice of its own
    # Of a binned range with a step (ints, stepped floats): each bin's first and last grid
    # point (as step counts from ``low``); bins holding no grid point are left out.
    points: tuple[tuple[int, int], ...] = ()

    @classmethod
    def of(cls, name: str, param: str, distribution: BaseDistribution) -> ParamDecision:
        if isinstance(distribution, CategoricalDistribution):
            return cls(name, param, distribution, len(distribution.choices), False, True)
        if isinstance(distribution, IntDistribution | FloatDistribution):
            count = _grid_points(distribution)
            if count is not None and count <= _MAX_GRID:
                return cls(name, param, distribution, count, count > 2, True)
            if count is None:
                return cls(name, param, distribution, _BINS, True, False)
            points = _binned_points(distribution, count)
            return cls(name, param, distribution, len(points), True, False, points)
        raise TypeError(f"Unsupported distribution {distribution!r} of param {param!r}.")

    @property
    def key(self) -> tuple[str, str]:
        return self.param, distribution_to_json(self.distribution)

    def index(self, value: Any) -> int:
        """The choice a value of the param falls in, or -1 if it is not in the
        distribution."""
        dist = self.distribution
        if isinstance(dist, CategoricalDistribution):
            # Typed comparison: 1, 1.0 and True are different choices.
            return next(
                (i for i, c in enumerate(dist.choices) if type(c) is type(value) and c == value),
                -1,
            )
        assert isinstance(dist, IntDistribution | FloatDistribution)
        if isinstance(value, bool) or not isinstance(value, int | float):
            return -1
        if not (math.isfinite(value) and dist.low <= value <= dist.high):
            return -1
        if dist.low == dist.high:
            return 0
        if self.grid or self.points:
            point = round((value - dist.low) / _step(dist))
            if self.grid:
                return min(self.size - 1, max(0, point))
            starts = [first for first, _ in self.points]
            return max(0, bisect.bisect_right(starts, point) - 1)
        low, high = _scaled(dist, dist.low), _scaled(dist, dist.high)
        position = (_scaled(dist, value) - low) / (high - low) * self.size
        return min(self.size - 1, max(0, math.floor(position)))

    def describe(self, index: int) -> str:
        """A choice as a message shows it: the value, or the bin's range."""
        dist = self.distribution
        if isinstance(dist, CategoricalDistribution):
            return repr(dist.choices[index])
        assert isinstance(dist, IntDistribution | FloatDistribution)
        if self.grid:
            low = dist.low + index * _step(dist)
            return repr(int(round(low)) if isinstance(dist, IntDistribution) else low)
        if self.points:
            first, last = self.points[index]
            return f"in [{dist.low + first * _step(dist):g}, {dist.low + last * _step(dist):g}]"
        low, high = _scaled(dist, dist.low), _scaled(dist, dist.high)
        edges = [low + k / self.size * (high - low) for k in (index, index + 1)]
        a, b = (math.exp(e) if dist.log else e for e in edges)
        return f"in [{a:.4g}, {b:.4g}]"

    def value(self, index: int, generator: torch.Generator) -> Any:
        """A value of the param in choice ``index``: the choice itself, or a value drawn
        inside the bin (uniformly on the distribution's scale, or among its grid points)."""
        dist = self.distribution
        if isinstance(dist, CategoricalDistribution):
            return dist.choices[index]
        assert isinstance(dist, IntDistribution | FloatDistribution)
        if self.grid or self.points:
            if self.grid:
                point = index
            else:
                first, last = self.points[index]
                point = first + int(torch.randint(last - first + 1, (1,), generator=generator))
            raw: float = dist.low + point * _step(dist)
        else:
            low, high = _scaled(dist, dist.low), _scaled(dist, dist.high)
            # Clear of the bin's edges, where rounding could tip the value into the next.
            u = 0.001 + 0.998 * float(torch.rand(1, generator=generator, dtype=torch.float64))
            scaled = low + (index + u) / self.size * (high - low)
            raw = math.exp(scaled) if dist.log else scaled
        raw = min(dist.high, max(dist.low, raw))
        if isinstance(dist, IntDistribution):
            return int(round(raw))
        return float(raw)


def _step(dist: IntDistribution | FloatDistribution) -> float:
    return 1 if dist.step is None else dist.step


def _binned_points(
    dist: IntDistribution | FloatDistribution, count: int
) -> tuple[tuple[int, int], ...]:
    # The grid points of each of _BINS equal bins of the (log) range, by where each bin's
    # edges fall on the grid.
    low, high = _scaled(dist, dist.low), _scaled(dist, dist.high)
    step = _step(dist)

    def first_point_from(edge: float) -> int:
        value = math.exp(edge) if dist.log else edge
        return max(0, math.ceil((value - dist.low) / step - 1e-9))

    starts = [first_point_from(low + k / _BINS * (high - low)) for k in range(_BINS)]
    ends = [*(s - 1 for s in starts[1:]), count - 1]
    return tuple((a, b) for a, b in zip(starts, ends, strict=True) if a <= b)


def _grid_points(dist: IntDistribution | FloatDistribution) -> int | None:
    if isinstance(dist, IntDistribution):
        return (dist.high - dist.low) // dist.step + 1
    if dist.step is None:
        return None if dist.high > dist.low else 1
    return int(round((dist.high - dist.low) / dist.step)) + 1


def _scaled(dist: IntDistribution | FloatDistribution, value: float) -> float:
    return math.log(value) if dist.log else float(value)


@dataclass(frozen=True)
class ValueIn:
    """A learned condition: the decision is made where ``parent``'s choice is in ``choices``
    (or has not been seen with it yet)."""

    parent: str
    choices: frozenset[Any]
    seen: frozenset[Any]

    def __call__(self, values: Mapping[str, Any]) -> bool:
        choice = values.get(self.parent)
        if choice is None:
            return False
        return choice in self.choices or choice not in self.seen


class LearnedParams:
    """The decisions of a define-by-run study, in the order the objective suggests them.

    A param seen for the first time goes right after the param the trial suggested before
    it. A param suggested with another distribution than before (a changed range, say) is
    a new decision: Optuna's storage refuses a changed categorical, and a changed numeric
    range has other choices, so what was learned of the old one does not carry over.

    Args:
        owns: Which params are modelled (``param_name -> bool``).
    """

    def __init__(self, owns: Callable[[str], bool]) -> None:
        self.owns = owns
        self.decisions: list[ParamDecision] = []
        self._by_key: dict[tuple[str, str], int] = {}
        self._latest: dict[str, tuple[str, str]] = {}

    def find(self, param: str, distribution: BaseDistribution) -> int | None:
        """The index of a param's decision with this distribution, if the study has one."""
        return self._by_key.get((param, distribution_to_json(distribution)))

    def latest(self, param: str) -> int | None:
        """The index of the decision of a param's latest distribution (for fixed params)."""
        key = self._latest.get(param)
        return None if key is None else self._by_key.get(key)

    def observe(self, distributions: Mapping[str, BaseDistribution]) -> list[int] | None:
        """Take in a trial's params (``name -> distribution``, in suggestion order).

        Returns:
            ``None`` if no decision was added; else each earlier decision's new position.
        """
        order = list(self.decisions)
        keys = [d.key for d in order]
        previous = -1  # the position of the trial's previous modelled param
        added = False
        for name, distribution in distributions.items():
            if not self.owns(name):
                continue
            key = (name, distribution_to_json(distribution))
            if key in keys:
                previous = keys.index(key)
            else:
                versions = sum(d.param == name for d in order)
                label = name if versions == 0 else f"{name}#{versions}"
                previous += 1
                order.insert(previous, ParamDecision.of(label, name, distribution))
                keys.insert(previous, key)
                added = True
            self._latest[name] = key
        if not added:
            return None
        old_positions = [keys.index(d.key) for d in self.decisions]
        self.decisions = order
        self._by_key = {key: i for i, key in enumerate(keys)}
        return old_positions

    def row(
        self, params: Mapping[str, Any], distributions: Mapping[str, BaseDistribution]
    ) -> list[int]:
        """A trial's choice per decision, -1 where it did not suggest the param."""
        row = [-1] * len(self.decisions)
        for name, value in params.items():
            index = self.find(name, distributions[name]) if name in distributions else None
            if index is not None:
                row[index] = self.decisions[index].index(value)
        return row


def learn_conditions(
    rows: Sequence[Sequence[int]], decisions: Sequence[Decision], columns: Iterable[int]
) -> dict[int, ValueIn | None]:
    """The conditions of some decisions, learned from the trials' rows.

    A decision that some trials did not make is conditional on the earlier decision
    whose choice tells, in every trial so far, whether it was made (the one of fewest
    choices seen; the earliest on ties): ``if op == "conv": trial.suggest_int("kernel",
    ...)`` makes ``kernel`` conditional on ``op``. Where no earlier decision tells, the
    decision has no condition: it is proposed always, and the objective asks for it or not.

    Args:
        rows: The trials' choices per decision, -1 where not made.
        decisions: The controller's decisions, whose choices the condition names.
        columns: The decisions to learn a condition for.
    """
    found: dict[int, ValueIn | None] = {}
    for column in columns:
        found[column] = None
        if all(r[column] >= 0 for r in rows):
            continue
        fewest = math.inf
        for parent in range(column):
            made: dict[int, bool] = {}
            if any(made.setdefault(r[parent], r[column] >= 0) != (r[column] >= 0)
                   for r in rows) or made.get(-1, False):
                continue
            seen = [c for c in made if c >= 0]
            if len(seen) < fewest:
                fewest = len(seen)
                choices = decisions[parent].choices
                found[column] = ValueIn(
                    decisions[parent].name,
                    frozenset(choices[c] for c in seen if made[c]),
                    frozenset(choices[c] for c in seen),
                )
    return found
