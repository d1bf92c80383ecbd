"""Architecture samplers for Optuna studies, and a registry of named sampler factories."""

from __future__ import annotations

from optuna_nas.samplers._controller import ControllerSampler
from optuna_nas.samplers._registry import (
    SamplerFactory,
    UnknownSamplerError,
    list_samplers,
    make_sampler,
    register_sampler,
    sampler_needs_space,
    unregister_sampler,
)

__all__ = [
    "ControllerSampler",
    "SamplerFactory",
    "UnknownSamplerError",
    "list_samplers",
    "make_sampler",
    "register_sampler",
    "sampler_needs_space",
    "unregister_sampler",
]
