"""The user's objective, and the space, sampler, pruner and direction(s) next to it."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import secrets
import sys
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import optuna

from optuna_nas.errors import WorkerError
from optuna_nas.samplers import UnknownSamplerError, make_sampler, sampler_needs_space
from optuna_nas.spaces import SearchSpace

PRUNERS = ("none", "median", "asha", "hyperband")
"""Pruner names the command line knows."""

_DIRECTIONS = ("maximize", "minimize")


def _check_directions(directions: object, where: str) -> tuple[str, ...]:
    """``directions`` as a tuple of ``"maximize"`` / ``"minimize"``, one per objective.

    Args:
        directions: A sequence of direction names, e.g. ``["maximize", "minimize"]``.
        where: Who gave them, for the error message.

    Raises:
        WorkerError: Not a non-empty sequence of ``"maximize"`` and ``"minimize"``.
    """
    if (
        isinstance(directions, str)
        or not isinstance(directions, Sequence)
        or not directions
        or any(d not in _DIRECTIONS for d in directions)
    ):
        raise WorkerError(
            f"{where} gives directions={directions!r}; give one 'maximize' or 'minimize' "
            "per objective, e.g. ['maximize', 'minimize']."
        )
    return tuple(str(d) for d in directions)


@dataclass(frozen=True)
class WorkerObjective:
    """A user's objective, loaded from ``module:function``, and the module's settings.

    Args:
        spec: The ``module:function`` string it was loaded from.
        function: ``function(trial)``, or ``function(trial, device)`` when it has a
            parameter named ``device`` (then it receives a :class:`torch.device`).
        space: The module's ``space``, if it defines one.
        sampler: The module's ``sampler``: a sampler, a factory, or ``None``.
        pruner: The module's ``pruner``: a pruner, a factory, or ``None``.
        direction: The module's ``direction``, if it defines one.
        directions: The module's ``directions`` (one per objective of a multi-objective
            study), if it defines them.
    """

    spec: str
    function: Callable[..., Any]
    space: SearchSpace | None = None
    sampler: Any = None
    pruner: Any = None
    direction: str | None = None
    directions: tuple[str, ...] | None = None

    @property
    def takes_device(self) -> bool:
        """Whether the function has a ``device`` parameter."""
        try:
            return "device" in inspect.signature(self.function).parameters
        except (TypeError, ValueError):
            return False


def load_objective(spec: str) -> WorkerObjective:
    """Import a user's objective from ``module:function`` or ``path/to/file.py:function``.

    A module name is looked up from the current folder first, as ``python -m`` does.

    Args:
        spec: Where the objective is.

    Returns:
        The objective with the module's ``space``, ``sampler``, ``pruner`` and
        ``direction`` or ``directions``.

    Raises:
        WorkerError: The spec is malformed, the module or the function does not exist, or
            importing the module failed.
    """
    module_name, colon, name = spec.rpartition(":")
    if not colon or not module_name or not name.isidentifier():
        raise WorkerError(
            f"Objective {spec!r} is not of the form module:function; e.g. "
            "my_search:objective, or path/to/search.py:objective."
        )
    module = _import_module(module_name)
    function = getattr(module, name, None)
    if function is None:
        defined = sorted(
            k
            for k, v in vars(module).items()
            if callable(v)
            and not k.startswith("_")
            and getattr(v, "__module__", "") == module.__name__
        )
        raise WorkerError(
            f"Module {module_name!r} defines no {name!r}; its functions are {defined}."
        )
    if not callable(function):
        raise WorkerError(f"{spec!r} is a {type(function).__name__}, not a function.")
    space = getattr(module, "space", None)
    if space is not None and not isinstance(space, SearchSpace):
        raise WorkerError(
            f"Module {module_name!r} defines `space` as a {type(space).__name__}; make it an "
            "optuna_nas SearchSpace (e.g. NasBench201Space()) or rename it."
        )
    direction = getattr(module, "direction", None)
    if direction is not None and direction not in ("maximize", "minimize"):
        raise WorkerError(
            f"Module {module_name!r} defines direction={direction!r}; use 'maximize' or "
            "'minimize'."
        )
    directions = getattr(module, "directions", None)
    if directions is not None:
        if direction is not None:
            raise WorkerError(
                f"Module {module_name!r} defines both direction and directions; keep "
                "directions for a multi-objective study, direction for a single objective."
            )
        directions = _check_directions(directions, f"Module {module_name!r}")
    return WorkerObjective(
        spec=spec,
        function=function,
        space=space,
        sampler=getattr(module, "sampler", None),
        pruner=getattr(module, "pruner", None),
        direction=direction,
        directions=directions,
    )


def _import_module(module_name: str) -> ModuleType:
    is_file = module_name.endswith(".py") or os.sep in module_name or "/" in module_name
    try:
        if is_file:
            path = Path(module_name).expanduser().resolve()
            if not path.is_file():
                raise WorkerError(
                    f"The objective's file {module_name!r} does not exist (looked at {path})."
                )
            # Its neighbours import as they would when the file runs as a script.
            if str(path.parent) not in sys.path:
                sys.path.insert(0, str(path.parent))
            spec = importlib.util.spec_from_file_location(path.stem, path)
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            sys.modules[path.stem] = module
            spec.loader.exec_module(module)
            return module
        if "" not in sys.path and os.getcwd() not in sys.path:
            sys.path.insert(0, os.getcwd())
        return importlib.import_module(module_name)
    except WorkerError:
        raise
    except ModuleNotFoundError as error:
        missing = error.name or ""
        if not is_file and (module_name == missing or module_name.startswith(missing + ".")):
            raise WorkerError(
                f"No module named {module_name!r} (looked in {os.getcwd()} and sys.path); run "
                "the worker from the folder that holds it, or give its file: "
                "path/to/file.py:function."
            ) from None
        raise WorkerError(
            f"Importing the objective's module {module_name!r} failed: it imports "
            f"{missing!r}, which is not installed."
        ) from None
    except Exception as error:  # noqa: BLE001 - the user's module raised while importing
        where = traceback.extract_tb(error.__traceback__)[-1]
        raise WorkerError(
            f"Importing the objective's module {module_name!r} raised "
            f"{type(error).__name__}: {error} (at {where.filename}:{where.lineno})."
        ) from None


def make_worker_sampler(
    objective: WorkerObjective, name: str | None, seed: int | None
) -> optuna.samplers.BaseSampler | None:
    """The worker's sampler: named on the command line, else the module's, else ``None``.

    Args:
        objective: The loaded objective (its module's ``space`` and ``sampler``).
        name: A registered sampler name (``random``, ``tpe``, ``controller``, ...), or
            ``None``.
        seed: The worker's seed; ``None`` draws one.

    Returns:
        The sampler, or ``None`` for Optuna's default.

    Raises:
        WorkerError: The name is unknown, needs a ``space`` the module does not define,
            or the module's ``sampler`` is not a sampler.
    """
    if name is not None:
        try:
            if objective.space is None and sampler_needs_space(name):
                raise WorkerError(
                    f"Sampler {name!r} searches an architecture space: define `space = ...` "
                    f"(e.g. NasBench201Space()) in the objective's module {objective.spec!r}."
                )
            return make_sampler(
                name, seed if seed is not None else secrets.randbelow(2**31), objective.space
            )
        except UnknownSamplerError as error:
            raise WorkerError(str(error)) from None
    value = objective.sampler
    if value is None or isinstance(value, optuna.samplers.BaseSampler):
        return value
    if callable(value):
        made = _call_with_optional(value, seed)
        if isinstance(made, optuna.samplers.BaseSampler):
            return made
        value = made
    raise WorkerError(
        f"The `sampler` next to {objective.spec!r} gives a {type(value).__name__}; define an "
        "Optuna sampler or a function sampler(seed) returning one."
    )


def make_pruner(objective: WorkerObjective, name: str | None) -> optuna.pruners.BasePruner | None:
    """The worker's pruner: named on the command line, else the module's, else ``None``.

    Args:
        objective: The loaded objective (its module's ``pruner``).
        name: One of :data:`PRUNERS`, or ``None``. ``asha`` is Optuna's
            SuccessiveHalvingPruner, ``none`` turns pruning off. A multi-objective study
            takes none: the launcher refuses one there.

    Returns:
        The pruner, or ``None`` for Optuna's default.

    Raises:
        WorkerError: The name is unknown, or the module's ``pruner`` is not a pruner.
    """
    if name is not None:
        made: dict[str, Callable[[], optuna.pruners.BasePruner]] = {
            "none": optuna.pruners.NopPruner,
            "median": optuna.pruners.MedianPruner,
            "asha": optuna.pruners.SuccessiveHalvingPruner,
            "hyperband": optuna.pruners.HyperbandPruner,
        }
        if name not in made:
            raise WorkerError(f"Unknown pruner {name!r}; choose one of {', '.join(PRUNERS)}.")
        return made[name]()
    value = objective.pruner
    if value is None or isinstance(value, optuna.pruners.BasePruner):
        return value
    if callable(value):
        value = value()
        if isinstance(value, optuna.pruners.BasePruner):
            return value
    raise WorkerError(
        f"The `pruner` next to {objective.spec!r} gives a {type(value).__name__}; define an "
        "Optuna pruner or a function pruner() returning one."
    )


def _call_with_optional(factory: Callable[..., Any], seed: int | None) -> Any:
    try:
        takes_seed = bool(inspect.signature(factory).parameters)
    except (TypeError, ValueError):
        takes_seed = True
    return factory(seed) if takes_seed else factory()


def _check_pruner(
    pruner: optuna.pruners.BasePruner | None, study: optuna.Study, where: str
) -> None:
    """Refuse a pruner for a multi-objective study, where it could never prune.

    Optuna has no ``trial.report`` or ``should_prune`` in a multi-objective study (they
    raise ``NotImplementedError``), so a pruner there means a mistake; ``None`` and
    :class:`optuna.pruners.NopPruner` are fine.

    Args:
        pruner: The worker's pruner, or ``None`` for none given.
        study: The study the workers run.
        where: Where the pruner came from, for the message (``--pruner asha``).

    Raises:
        WorkerError: A pruner in a study of several directions.
    """
    if len(study.directions) < 2 or pruner is None:
        return
    if isinstance(pruner, optuna.pruners.NopPruner):
        return
    raise WorkerError(
        f"The study {study.study_name!r} has {len(study.directions)} objectives, and Optuna "
        f"prunes single-objective studies only (trial.report and should_prune raise in a "
        f"multi-objective study), so {where} ({type(pruner).__name__}) could never stop a "
        "trial: drop it, or pass --pruner none. optuna_nas.train keeps each epoch's "
        "accuracy in the user attr epoch_values there and never prunes."
    )
