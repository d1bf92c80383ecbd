"""optuna_nas: Neural Architecture Search as a first-class citizen of Optuna."""

from __future__ import annotations

from optuna_nas import (
    autodeeplab,
    darts,
    dashboard,
    nn,
    pipeline,
    samplers,
    spaces,
    supernet,
    text,
    zero_cost,
)
from optuna_nas.asha import random_search_asha
from optuna_nas.data import ImageData, load_cifar10, load_digits, load_image_folder
from optuna_nas.errors import (
    ArchitectureError,
    DatasetError,
    NasError,
    NonFiniteLossError,
    TableError,
    WorkerError,
    ZeroCostError,
)
from optuna_nas.samplers import ControllerSampler
from optuna_nas.spaces import Architecture, Decision, SearchSpace
from optuna_nas.supernet import Supernet, WeightSharingObjective
from optuna_nas.training import (
    count_flops,
    count_parameters,
    evaluate,
    measure_latency,
    seed_everything,
    train,
)

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
    "Supernet",
    "WeightSharingObjective",
    "WorkerError",
    "ZeroCostError",
    "ImageData",
    "TableError",
    "autodeeplab",
    "count_flops",
    "count_parameters",
    "dashboard",
    "darts",
    "evaluate",
    "load_cifar10",
    "load_digits",
    "load_image_folder",
    "measure_latency",
    "nn",
    "pipeline",
    "random_search_asha",
    "samplers",
    "seed_everything",
    "spaces",
    "supernet",
    "text",
    "train",
    "zero_cost",
]
