from __future__ import annotations

import abc
import random
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import optuna
import torch

from optuna_nas.errors import ArchitectureError, _short_repr

Choice = None | bool | int | float | str
"""A value a decision can take: the types Optuna's categorical distribution accepts."""

Condition = Callable[[Mapping[str, Choice]], bool]


@dataclass(frozen=True)
class Decision:
    """One named choice of a search space.

    Args:
        name: The decision's name, unique in its space. The Optuna param is the space's
            prefix followed by this name.
        choices: The values the decision can take, in a fixed order.
        condition: For a conditional decision, a predicate over the values of the decisions
            before it; the decision is made only where it returns ``True``. ``None`` means
            the decision is always made.
        anchor: For a skip-connection decision of NAS-RL's macro space, ``(i, j)``: whether
            layer ``i`` reads layer ``j`` (choices ``(False, True)``). The controller
            decides it with the paper's anchor-point attention; other samplers see an
            ordinary categorical.
    """

    name: str
    choices: tuple[Choice, ...]
    condition: Condition | None = field(default=None, compare=False)
    anchor: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        # Accept any sequence, but keep a tuple so the decision stays hashable and immutable.
        object.__setattr__(self, "choices", tuple(self.choices))
        if not self.choices:
            raise ArchitectureError(f"Decision {self.name!r} has no choices.")
        if len(set(self.choices)) != len(self.choices):
            raise ArchitectureError(f"Decision {self.name!r} has repeated choices.")
        if self.anchor is not None and self.choices != (False, True):
            raise ArchitectureError(
                f"Anchor decision {self.name!r} must have the choices (False, True)."
            )

    def is_active(self, values: Mapping[str, Choice]) -> bool:
        """Whether this decision is made, given the values of the decisions before it."""
        return self.condition is None or bool(self.condition(values))


@dataclass(frozen=True)
class Architecture:
    """An immutable, hashable architecture of one search space.

    Its string form (``str(arch)``) is canonical: two architectures are equal exactly when
    their spaces and strings are equal. Values are read with ``arch["decision name"]``.

    Args:
        space: The name of the space the architecture belongs to.
        values: ``(decision name, value)`` pairs of the decisions made, in space order.
        string: The canonical string form.
    """

    space: str
    values: tuple[tuple[str, Choice], ...]
    string: str = field(compare=False)

    def __str__(self) -> str:
        return self.string

    def __repr__(self) -> str:
        return f"Architecture({self.space!r}, {self.string!r})"

    def __getitem__(self, name: str) -> Choice:
        for key, value in self.values:
            if key == name:
                return value
        raise KeyError(name)

    def as_dict(self) -> dict[str, Choice]:
        """The decisions made, by name."""
        return dict(self.values)


RandomLike = int | None | random.Random | np.random.Generator


def _as_random(rng: RandomLike) -> random.Random:
    if isinstance(rng, random.Random):
        return rng
    if isinstance(rng, np.random.Generator):
        return random.Random(int(rng.integers(2**63)))
    return random.Random(rng)


class SearchSpace(abc.ABC):
    """Base class of search spaces: an ordered list of named decisions.

    A subclass lists its decisions (:attr:`decisions`), writes and reads its string form
    (:meth:`format` and :meth:`_parse_values`), and builds a network (:meth:`build`). The
    base class turns the decisions into Optuna params, validates values and round-trips
    architectures.

    Args:
        prefix: The prefix of the space's Optuna param names. Two spaces in one trial need
            different prefixes.
    """

    #: A short name for the space, stored in every :class:`Architecture`.
    name: str = "space"

    def __init__(self, *, prefix: str = "arch/") -> None:
        self.prefix = prefix

    @property
    @abc.abstractmethod
    def decisions(self) -> Sequence[Decision]:
        """Every decision of the space, in the order they are made."""

    @abc.abstractmethod
    def format(self, values: Mapping[str, Choice]) -> str:
        """The canonical string of a complete, valid set of values."""

    @abc.abstractmethod
    def _parse_values(self, string: str) -> dict[str, Choice]:
        """Decision values read from a string; raise ArchitectureError if malformed."""

    @abc.abstractmethod
    def build(self, arch: Architecture, **network_options: Any) -> torch.nn.Module:
        """Build the network of an architecture.

        Args:
            arch: An architecture of this space.
            network_options: Options of the network (``channels``, ``num_classes``, ...).
        """

    def _check_values(self, values: Mapping[str, Choice]) -> None:  # noqa: B027
        """Constraints across decisions, beyond each value being one of its choices.

        Does nothing by default; a subclass overrides it to raise ArchitectureError.
        """

    # ----------------------------------------------------------------------------------
    def active_decisions(self, values: Mapping[str, Choice]) -> Iterator[Decision]:
        """The decisions made for the given values, in order.

        A decision's condition sees only the values of decisions before it.
        """
        seen: dict[str, Choice] = {}
        for decision in self.decisions:
            if decision.is_active(seen):
                yield decision
                if decision.name in values:
                    seen[decision.name] = values[decision.name]

    def param_name(self, decision: Decision | str) -> str:
        """The Optuna param name of a decision."""
        name = decision if isinstance(decision, str) else decision.name
        return self.prefix + name

    def distribution(self, decision: Decision) -> optuna.distributions.CategoricalDistribution:
        """The Optuna distribution of a decision."""
        return optuna.distributions.CategoricalDistribution(decision.choices)

    def suggest(self, trial: optuna.Trial) -> Architecture:
        """Suggest an architecture in a trial, one categorical param per decision.

        Args:
            trial: The trial; any Optuna sampler can search the params.

        Returns:
            The architecture, also recoverable with ``space.from_params(trial.params)``.
        """
        values: dict[str, Choice] = {}
        for decision in self.decisions:
            if decision.is_active(values):
                values[decision.name] = trial.suggest_categorical(
                    self.param_name(decision), decision.choices
                )
        return self._make(values)

    def from_values(self, values: Mapping[str, Choice]) -> Architecture:
        """Validate decision values (keyed by decision name) into an architecture.

        Raises:
            ArchitectureError: ``values`` is not a mapping, or a value is missing, unknown
                or not one of its choices.
        """
        if not isinstance(values, Mapping):
            raise ArchitectureError(
                f"{self.name}: expected a mapping of decision names to values, got "
                f"{type(values).__name__}; e.g. {{{self.decisions[0].name!r}: "
                f"{self.decisions[0].choices[0]!r}, ...}}."
            )
        expected = {d.name for d in self.decisions}
        # Keys of any type may come in: sort by repr, since strings and ints don't compare.
        unknown = sorted(set(values) - expected, key=_short_repr)
        if unknown:
            raise ArchitectureError(
                f"{self.name}: unknown decision(s) {_short_repr(unknown, 200)}; this space's "
                f"decisions are {self._names_hint()}. Was the study created with a different "
                "search space?"
            )
        made: dict[str, Choice] = {}
        for decision in self.decisions:
            if not decision.is_active(made):
                if decision.name in values:
                    raise ArchitectureError(
                        f"{self.name}: decision {decision.name!r} is given but is inactive "
                        "for the values before it."
                    )
                continue
            if decision.name not in values:
                raise ArchitectureError(
                    f"{self.name}: decision {decision.name!r} is missing; give one of "
                    f"{list(decision.choices)}."
                )
            value = values[decision.name]
            if not _is_choice(value, decision.choices):
                raise ArchitectureError(
                    f"{self.name}: {_short_repr(value)} is not a choice of decision "
                    f"{decision.name!r}; choose one of {list(decision.choices)}."
                )
            made[decision.name] = value
        return self._make(made)

    def from_params(self, params: Mapping[str, Any]) -> Architecture:
        """Rebuild an architecture from Optuna params (e.g. ``trial.params``).

        Params without this space's prefix (ordinary hyperparameters) are ignored.

        Raises:
            ArchitectureError: ``params`` is not a mapping, or an architecture param is
                missing, unknown or invalid.
        """
        if not isinstance(params, Mapping):
            raise ArchitectureError(
                f"{self.name}: expected a mapping of Optuna params (e.g. trial.params), got "
                f"{type(params).__name__}."
            )
        values = {
            key[len(self.prefix) :]: value
            for key, value in params.items()
            if isinstance(key, str) and key.startswith(self.prefix)
        }
        if not values:
            raise ArchitectureError(
                f"{self.name}: no param starts with {self.prefix!r}; was the architecture "
                "suggested with space.suggest(trial)?"
            )
        return self.from_values(values)

    def to_params(self, arch: Architecture) -> dict[str, Choice]:
        """The Optuna params of an architecture, e.g. for ``study.enqueue_trial``."""
        self._check_space(arch)
        return {self.param_name(name): value for name, value in arch.values}

    def parse(self, string: str) -> Architecture:
        """Parse an architecture from its string form.

        Raises:
            ArchitectureError: The string is malformed or names an unknown op.
        """
        if not isinstance(string, str):
            raise ArchitectureError(
                f"{self.name}: expected an architecture string, got {type(string).__name__}."
            )
        return self.from_values(self._parse_values(string.strip()))

    def sample(self, rng: RandomLike = None) -> Architecture:
        """Draw an architecture, each active decision uniformly among its choices.

        Args:
            rng: A seed, a :class:`random.Random` or a :class:`numpy.random.Generator`.
        """
        generator = _as_random(rng)
        values: dict[str, Choice] = {}
        for decision in self.decisions:
            if decision.is_active(values):
                values[decision.name] = decision.choices[
                    generator.randrange(len(decision.choices))
                ]
        return self._make(values)

    def _make(self, values: Mapping[str, Choice]) -> Architecture:
        self._check_values(values)
        ordered = tuple((d.name, values[d.name]) for d in self.decisions if d.name in values)
        return Architecture(self.name, ordered, self.format(dict(ordered)))

    def _check_space(self, arch: Architecture) -> None:
        if not isinstance(arch, Architecture) or arch.space != self.name:
            raise ArchitectureError(
                f"{_short_repr(arch)} is not an architecture of the {self.name} space; build "
                "it with this space's suggest(), parse() or from_params()."
            )
        # The name alone does not tell configurations apart (DartsCells(steps=2) and
        # DartsCells(steps=4) share it): the values must be a complete, valid set here.
        try:
            remade = self.from_values(arch.as_dict())
        except ArchitectureError as error:
            raise ArchitectureError(
                f"{arch!r} was made by a {self.name} space of another configuration: {error}"
            ) from None
        if remade.values != arch.values:
            raise ArchitectureError(
                f"{arch!r} was made by a {self.name} space of another configuration: its "
                "decisions are not in this space's order."
            )

    def _names_hint(self) -> str:
        names = [d.name for d in self.decisions]
        shown = ", ".join(names[:6])
        return f"[{shown}{', ...' if len(names) > 6 else ''}]"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(prefix={self.prefix!r})"


def _is_choice(value: Any, choices: tuple[Choice, ...]) -> bool:
    # Compare with types: 1 == True and 1 == 1.0 in Python, but not as architecture values.
    return any(type(value) is type(c) and value == c for c in choices)
