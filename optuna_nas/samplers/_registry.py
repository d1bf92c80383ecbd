"""A registry of named Optuna samplers, for the benchmark runners, the worker and the CLI.

A benchmark run or a worker needs a fresh sampler per seed, so the registry holds
*factories*, not sampler objects. A factory takes the run's seed and, if it asks for it, the
search space of the benchmark or the objective, which lets samplers that must know the
architecture space (a controller or an evolutionary sampler, say) be registered as easily as
Optuna's own::

    register_sampler("random", lambda seed: optuna.samplers.RandomSampler(seed=seed))
    register_sampler("controller", lambda seed, space: ControllerSampler(space, seed=seed))
"""

from __future__ import annotations

import inspect
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import optuna

from optuna_nas.errors import NasError
from optuna_nas.samplers._controller import ControllerSampler
from optuna_nas.spaces import SearchSpace

__all__ = [
    "SamplerFactory",
    "UnknownSamplerError",
    "check_sampler_names",
    "list_samplers",
    "make_sampler",
    "register_sampler",
    "sampler_needs_space",
    "unregister_sampler",
]

SamplerFactory = Callable[..., optuna.samplers.BaseSampler]
"""``factory(seed)`` or ``factory(seed, space)``, returning a new Optuna sampler."""


class UnknownSamplerError(NasError, ValueError):
    """A sampler name is not registered, or a registration is invalid."""


_SpaceMode = Literal["none", "keyword", "positional"]


@dataclass(frozen=True)
class _Entry:
    factory: SamplerFactory
    space_mode: _SpaceMode
    space_optional: bool  # the factory's space has a default: it serves define-by-run too


_REGISTRY: dict[str, _Entry] = {}
_LOCK = threading.Lock()


def _space_mode(factory: SamplerFactory) -> _SpaceMode:
    """How a factory takes the space: not at all, as ``space=...`` or positionally."""
    try:
        parameters = inspect.signature(factory).parameters
    except (TypeError, ValueError):  # Some builtins have no signature: give the seed only.
        return "none"
    if "space" in parameters and parameters["space"].kind is not inspect.Parameter.VAR_KEYWORD:
        if parameters["space"].kind is not inspect.Parameter.POSITIONAL_ONLY:
            return "keyword"
        return "positional"
    kinds = [p.kind for p in parameters.values()]
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    if inspect.Parameter.VAR_POSITIONAL in kinds or sum(k in positional for k in kinds) >= 2:
        return "positional"
    return "none"


def _space_optional(factory: SamplerFactory) -> bool:
    try:
        parameters = list(inspect.signature(factory).parameters.values())
    except (TypeError, ValueError):
        return False
    space = next((p for p in parameters if p.name == "space"), None)
    if space is None and len(parameters) >= 2:
        space = parameters[1]
    return space is not None and space.default is not inspect.Parameter.empty


def register_sampler(name: str, factory: SamplerFactory, *, overwrite: bool = False) -> None:
    """Register a sampler factory under a name, for the runners and the CLI.

    The factory is called once per run. It receives the run's seed (an ``int``) as its
    first argument and, when it takes a second positional argument or a parameter named
    ``space``, the benchmark's :class:`~optuna_nas.spaces.SearchSpace` as well (passed
    as ``space=...`` to a factory with a ``space`` parameter, positionally otherwise).

    Args:
        name: The name given on the command line (``--samplers NAME,...``). Letters,
            digits, ``-``, ``_`` and ``.`` only, so that comma-separated lists parse.
        factory: ``factory(seed)`` or ``factory(seed, space)``, returning a new
            :class:`optuna.samplers.BaseSampler` seeded with ``seed``.
        overwrite: Replace an existing registration of ``name`` instead of failing.

    Raises:
        UnknownSamplerError: The name is invalid or taken (and ``overwrite`` is false), or
            the factory is not callable.
    """
    if not name or not all(c.isalnum() or c in "-_." for c in name):
        raise UnknownSamplerError(
            f"Invalid sampler name {name!r}: use letters, digits, '-', '_' and '.' only."
        )
    if not callable(factory):
        raise UnknownSamplerError(f"The factory of sampler {name!r} is not callable.")
    with _LOCK:
        if name in _REGISTRY and not overwrite:
            raise UnknownSamplerError(
                f"A sampler named {name!r} is already registered; pass overwrite=True to "
                "replace it."
            )
        _REGISTRY[name] = _Entry(factory, _space_mode(factory), _space_optional(factory))


def unregister_sampler(name: str) -> None:
    """Remove a registered sampler.

    Args:
        name: A registered name.

    Raises:
        UnknownSamplerError: No sampler has that name.
    """
    with _LOCK:
        if name not in _REGISTRY:
            raise _unknown(name)
        del _REGISTRY[name]


def list_samplers() -> list[str]:
    """The registered sampler names, sorted."""
    with _LOCK:
        return sorted(_REGISTRY)


def make_sampler(
    name: str, seed: int, space: SearchSpace | None = None
) -> optuna.samplers.BaseSampler:
    """Build a new sampler from its registered factory.

    Args:
        name: A registered sampler name (see :func:`list_samplers`).
        seed: The run's seed.
        space: The search space of the benchmark; handed to factories that take one.

    Returns:
        The factory's sampler.

    Raises:
        UnknownSamplerError: The name is not registered, or the factory needs a space and
            none was given, or it did not return an Optuna sampler.
    """
    with _LOCK:
        entry = _REGISTRY.get(name)
    if entry is None:
        raise _unknown(name)
    sampler: Any
    if entry.space_mode == "none" or (space is None and entry.space_optional):
        sampler = entry.factory(seed)
    elif space is None:
        raise UnknownSamplerError(
            f"Sampler {name!r} needs the search space, and this objective declares none "
            "(define-by-run); pass space=, or choose a sampler that learns the params from "
            "the trials (random, tpe, controller)."
        )
    elif entry.space_mode == "keyword":
        sampler = entry.factory(seed, space=space)
    else:
        sampler = entry.factory(seed, space)
    if not isinstance(sampler, optuna.samplers.BaseSampler):
        raise UnknownSamplerError(
            f"The factory of sampler {name!r} returned {type(sampler).__name__}, not an "
            "optuna.samplers.BaseSampler."
        )
    return sampler


def sampler_needs_space(name: str) -> bool:
    """Whether a registered sampler's factory needs the search space (takes it, with no
    default for define-by-run objectives).

    Raises:
        UnknownSamplerError: The name is not registered.
    """
    with _LOCK:
        entry = _REGISTRY.get(name)
    if entry is None:
        raise _unknown(name)
    return entry.space_mode != "none" and not entry.space_optional


def check_sampler_names(names: list[str]) -> None:
    """Raise :class:`UnknownSamplerError` for the first name that is not registered."""
    known = list_samplers()
    for name in names:
        if name not in known:
            raise _unknown(name)


def _unknown(name: str) -> UnknownSamplerError:
    return UnknownSamplerError(
        f"Unknown sampler {name!r}; known samplers: {', '.join(list_samplers())}."
    )


def _random(seed: int) -> optuna.samplers.BaseSampler:
    return optuna.samplers.RandomSampler(seed=seed)


def _tpe(seed: int) -> optuna.samplers.BaseSampler:
    return optuna.samplers.TPESampler(seed=seed)


def _tpe_independent(seed: int) -> optuna.samplers.BaseSampler:
    return optuna.samplers.TPESampler(seed=seed, multivariate=False)


def _nsga2(seed: int) -> optuna.samplers.BaseSampler:
    return optuna.samplers.NSGAIISampler(seed=seed)


def _nsga3(seed: int) -> optuna.samplers.BaseSampler:
    with warnings.catch_warnings():  # experimental in Optuna, and named so by choice here
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.NSGAIIISampler(seed=seed)


register_sampler("random", _random)
register_sampler("tpe", _tpe)
register_sampler("tpe-independent", _tpe_independent)
register_sampler("nsga2", _nsga2)
register_sampler("nsga3", _nsga3)


def _controller(seed: int, space: SearchSpace | None = None) -> optuna.samplers.BaseSampler:
    return ControllerSampler(space, seed=seed)


def _nas_rl(seed: int, space: SearchSpace | None = None) -> optuna.samplers.BaseSampler:
    return ControllerSampler(space, seed=seed, preset="nas-rl")


def _controller_delegated(seed: int, space: SearchSpace) -> optuna.samplers.BaseSampler:
    # The space's params by the controller, every other param by its base sampler (TPE).
    return ControllerSampler(space, seed=seed, joint=False)


register_sampler("controller", _controller)
register_sampler("controller-delegated", _controller_delegated)
register_sampler("nas-rl", _nas_rl)
