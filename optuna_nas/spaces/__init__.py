"""Search spaces: architectures as ordinary Optuna params."""

from __future__ import annotations

from optuna_nas.spaces._base import Architecture, Choice, Decision, SearchSpace
from optuna_nas.spaces._darts import DartsCells, NasNetCells
from optuna_nas.spaces._darts_recurrent import (
    DartsRecurrentSpace,
    list_published_recurrent_cells,
    published_recurrent_cell,
)
from optuna_nas.spaces._nasbench201 import NasBench201Space
from optuna_nas.spaces._nasrl_macro import DepthSchedule, NasRLMacroSpace, nasrl_depth_schedule
from optuna_nas.spaces._nasrl_recurrent import NasRLRecurrentSpace
from optuna_nas.spaces._published import list_published_cells, published_cell

__all__ = [
    "Architecture",
    "Choice",
    "DartsCells",
    "DartsRecurrentSpace",
    "Decision",
    "DepthSchedule",
    "NasBench201Space",
    "NasNetCells",
    "NasRLMacroSpace",
    "NasRLRecurrentSpace",
    "SearchSpace",
    "list_published_cells",
    "list_published_recurrent_cells",
    "nasrl_depth_schedule",
    "published_cell",
    "published_recurrent_cell",
]
