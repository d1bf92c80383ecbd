"""Operations and the networks built from architectures."""

from __future__ import annotations

from optuna_nas.nn._darts import CellNetwork, Genotype
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
    "Genotype",
    "NasBench201Network",
    "canonical_op_name",
    "create_op",
    "get_op_set",
    "list_ops",
    "register_op",
]
