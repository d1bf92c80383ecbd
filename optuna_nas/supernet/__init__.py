"""Weight sharing: the supernet, the single-path objective, and their checkpoints."""

from __future__ import annotations

from optuna_nas.supernet._objective import WeightSharingObjective
from optuna_nas.supernet._supernet import Supernet

__all__ = ["Supernet", "WeightSharingObjective"]
