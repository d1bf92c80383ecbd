"""DARTS: differentiable architecture search over a weighted supernet, as an Optuna trial.

Paper: Liu et al., "DARTS: Differentiable Architecture Search", ICLR 2019,
https://arxiv.org/abs/1806.09055.
"""

from __future__ import annotations

from optuna_nas.darts._derive import derive
from optuna_nas.darts._recurrent import (
    RecurrentDartsResult,
    derive_recurrent,
    evaluate_perplexity,
    search_recurrent,
    train_language_model,
)
from optuna_nas.darts._result import DartsResult
from optuna_nas.darts._search import DartsSearch, search
from optuna_nas.darts._trial import enqueue_retraining

__all__ = [
    "DartsResult",
    "DartsSearch",
    "RecurrentDartsResult",
    "derive",
    "derive_recurrent",
    "enqueue_retraining",
    "evaluate_perplexity",
    "search",
    "search_recurrent",
    "train_language_model",
]
