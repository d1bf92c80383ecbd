"""DARTS: differentiable architecture search over a weighted supernet, as an Optuna trial.

Paper: Liu et al., "DARTS: Differentiable Architecture Search", ICLR 2019,
https://arxiv.org/abs/1806.09055. The cost term (``cost_weight``, ``op_costs``, and
:func:`op_cost_table`) follows Wu et al., "FBNet", CVPR 2019,
https://arxiv.org/abs/1812.03443 and Cai et al., "ProxylessNAS", ICLR 2019,
https://arxiv.org/abs/1812.00332.
"""

from __future__ import annotations

from optuna_nas.darts._cost import OpCostTable, architecture_flops, op_cost_table
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
    "OpCostTable",
    "RecurrentDartsResult",
    "architecture_flops",
    "derive",
    "derive_recurrent",
    "enqueue_retraining",
    "evaluate_perplexity",
    "op_cost_table",
    "search",
    "search_recurrent",
    "train_language_model",
]
