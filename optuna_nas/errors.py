"""Errors raised by optuna_nas.

Every error a user can trigger with bad input derives from :class:`NasError`, so a caller
can catch the package's own errors in one place. Each also derives from the builtin that
fits (``ValueError``, ``FileNotFoundError``, ...) so generic handlers keep working.
"""

from __future__ import annotations

__all__ = [
    "ArchitectureError",
    "DatasetError",
    "NasError",
    "NonFiniteLossError",
    "TableError",
    "WorkerError",
    "ZeroCostError",
]


class NasError(Exception):
    """Base class of every error raised by optuna_nas."""


class ArchitectureError(NasError, ValueError):
    """An architecture string, parameter set or value does not fit its search space."""


class DatasetError(NasError, ValueError):
    """A dataset folder is missing or laid out differently from what the loader expects."""


class TableError(NasError, ValueError):
    """A benchmark table is missing, or its columns or rows are malformed."""


class NonFiniteLossError(NasError, RuntimeError):
    """The training loss became NaN or infinite.

    Pass ``catch=(NonFiniteLossError,)`` to :meth:`optuna.study.Study.optimize` so that a
    diverged trial is recorded as FAILED and the study goes on.
    """


class WorkerError(NasError, ValueError):
    """A worker's storage, study, objective, sampler, pruner or devices are given wrongly."""


def _short_repr(value: object, limit: int = 80) -> str:
    """``repr(value)`` for an error message: at most about ``limit`` characters.

    Input that is junk can be anything: an int of over 4,300 digits, whose ``repr`` raises
    ``ValueError``, or a megabyte string, which would bury the message.
    """
    try:
        text = repr(value)
    except ValueError:  # An int too long for decimal conversion, maybe inside a container.
        return f"<a {type(value).__name__} too large to print>"
    if len(text) > limit:
        text = f"{text[: limit - 3]}... ({len(text):,} characters)"
    return text


class ZeroCostError(NasError, ValueError):
    """A zero-cost proxy cannot score a network: bad inputs, or a non-finite score."""
