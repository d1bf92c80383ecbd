"""Operations and the networks built from architectures."""

from __future__ import annotations

from optuna_nas.nn._darts import CellNetwork, Genotype
from optuna_nas.nn._darts_recurrent import (
    DartsRecurrentCell,
    MixedRecurrentCell,
    RecurrentGenotype,
    RecurrentLanguageModel,
)
from optuna_nas.nn._nasbench201 import NasBench201Network
from optuna_nas.nn._ops import (
    OP_SETS,
    canonical_op_name,
    create_op,
    get_op_set,
    list_ops,
    register_op,
)

__all__ = [
    "OP_SETS",
    "CellNetwork",
    "DartsRecurrentCell",
    "Genotype",
    "MixedRecurrentCell",
    "NasBench201Network",
    "RecurrentGenotype",
    "RecurrentLanguageModel",
    "canonical_op_name",
    "create_op",
    "get_op_set",
    "list_ops",
    "register_op",
]
