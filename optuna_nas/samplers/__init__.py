"""Architecture samplers for Optuna studies."""

from __future__ import annotations

from optuna_nas.samplers._controller import ControllerSampler

__all__ = ["ControllerSampler"]
