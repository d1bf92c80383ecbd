"""Search spaces: architectures as ordinary Optuna params."""

from __future__ import annotations

from optuna_nas.spaces._base import Architecture, Choice, Decision, SearchSpace
from optuna_nas.spaces._darts import DartsCells, NasNetCells
from optuna_nas.spaces._nasbench201 import NasBench201Space
from optuna_nas.spaces._published import list_published_cells, published_cell

__all__ = [
    "Architecture",
    "Choice",
    "DartsCells",
    "Decision",
    "NasBench201Space",
    "NasNetCells",
    "SearchSpace",
    "list_published_cells",
    "published_cell",
]
