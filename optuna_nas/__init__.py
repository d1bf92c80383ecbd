"""optuna_nas: Neural Architecture Search as a first-class citizen of Optuna."""

from __future__ import annotations

from optuna_nas import nn, spaces
from optuna_nas.errors import (
    ArchitectureError,
    DatasetError,
    NasError,
    NonFiniteLossError,
    TableError,
)
from optuna_nas.spaces import Architecture, Decision, SearchSpace

__version__ = "0.1.0"

__all__ = [
    "Architecture",
    "ArchitectureError",
    "DatasetError",
    "Decision",
    "NasError",
    "NonFiniteLossError",
    "SearchSpace",
    "TableError",
    "nn",
    "spaces",
]
