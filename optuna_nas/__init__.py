"""optuna_nas: Neural Architecture Search as a first-class citizen of Optuna."""

from __future__ import annotations

from optuna_nas import dashboard, nn, samplers, spaces
from optuna_nas.data import ImageData, load_cifar10, load_digits, load_image_folder
from optuna_nas.errors import (
    ArchitectureError,
    DatasetError,
    NasError,
    NonFiniteLossError,
    TableError,
)
from optuna_nas.samplers import ControllerSampler
from optuna_nas.spaces import Architecture, Decision, SearchSpace
from optuna_nas.training import count_flops, count_parameters, evaluate, seed_everything, train

__version__ = "0.1.0"

__all__ = [
    "Architecture",
    "ArchitectureError",
    "ControllerSampler",
    "DatasetError",
    "Decision",
    "NasError",
    "NonFiniteLossError",
    "SearchSpace",
    "ImageData",
    "TableError",
    "count_flops",
    "count_parameters",
    "dashboard",
    "evaluate",
    "load_cifar10",
    "load_digits",
    "load_image_folder",
    "nn",
    "samplers",
    "seed_everything",
    "spaces",
    "train",
]
