"""Constraint values, as Optuna stores them: one checker for every entry point that takes
``constraints_func`` or ``arch_constraints``."""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping

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
