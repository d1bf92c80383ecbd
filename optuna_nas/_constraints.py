"""Constraint values, as Optuna stores them: one checker for every entry point that takes
``constraints_func`` or ``arch_constraints``."""

from __future__ import annotations

import logging
import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import optuna

from optuna_nas.spaces._base import Architecture, SearchSpace

_logger = logging.getLogger("optuna_nas.asha")

#: ``arch_constraints(params) -> values``: constraints known before training.
ArchConstraints = Callable[[dict[str, Any]], Sequence[float]]

#: The trial system attr of a trial's constraint values: the key Optuna's own samplers write
#: with ``constraints_func`` and read back as ``trial.constraints``.
CONSTRAINTS_KEY = "constraints"


def callable_name(function: object) -> str:
    """A callable's name for messages."""
    return str(getattr(function, "__qualname__", None) or repr(function))


def constraint_values(source: str, output: object, context: str = "") -> list[float]:
    """``output`` of a constraints callable as a list of finite floats.

    Args:
        source: What returned it, for messages (``"arch_constraints (my_limit)"``).
        output: The callable's return value.
        context: Where it was called, appended to messages (``" for {params}"``).

    Raises:
        ValueError: It is not a non-empty sequence of finite numbers; the message names
            the callable and the fix.
    """
    fix = (
        "return a sequence of finite numbers, one per constraint, feasible where all <= 0; "
        "e.g. [count / 1e6 - 1.0]"
    )
    if isinstance(output, str | bytes | Mapping) or not hasattr(output, "__iter__"):
        raise ValueError(
            f"{source} returned a {type(output).__name__} ({output!r:.80}){context}; {fix}."
        )
    values = list(output)
    if not values:
        raise ValueError(f"{source} returned no values{context}; {fix}.")
    checked: list[float] = []
    for value in values:
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise ValueError(
                f"{source} returned {values!r:.120}{context}, and {value!r:.40} is a "
                f"{type(value).__name__}, not a number; {fix}."
            )
        number = float(value)
        if not math.isfinite(number):
            raise ValueError(f"{source} returned {values!r:.120}{context}, not finite; {fix}.")
        checked.append(number)
    return checked


# ---- constraints known before training ---------------------------------------------------
def check_arch_constraints(arch_constraints: object) -> None:
    if arch_constraints is not None and not callable(arch_constraints):
        raise ValueError(
            f"arch_constraints must be a function params -> sequence of floats (feasible "
            f"where all <= 0), or None; got {type(arch_constraints).__name__}."
        )


def arch_constraint_values(
    arch_constraints: ArchConstraints, params: dict[str, Any]
) -> list[float]:
    """``arch_constraints(params)`` as a list of finite floats, or a ValueError naming it."""
    return constraint_values(
        f"arch_constraints ({callable_name(arch_constraints)})",
        arch_constraints(dict(params)),
        f" for {params}",
    )


def feasible(values: Sequence[float]) -> bool:
    return all(v <= 0.0 for v in values)


def record_constraints(
    trial: optuna.Trial, space: SearchSpace, arch: Architecture, arch_constraints: ArchConstraints
) -> None:
    """Store the architecture's constraint values on the trial (system attr
    ``constraints``, as Optuna's samplers read them); prune an infeasible one before it
    trains."""
    values = arch_constraint_values(arch_constraints, space.to_params(arch))
    trial.storage.set_trial_system_attr(trial._trial_id, CONSTRAINTS_KEY, values)
    if not feasible(values):
        message = (
            f"The architecture {arch} violates arch_constraints (values {values}; feasible "
            "where all <= 0): pruned before training."
        )
        trial.set_user_attr("pruned_reason", message)
        _logger.info("Trial %d: %s", trial.number, message)
        raise optuna.TrialPruned(message)
