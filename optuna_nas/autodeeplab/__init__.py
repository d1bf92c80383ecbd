"""Auto-DeepLab: hierarchical architecture search for semantic segmentation.

The space holds a DARTS cell and a network-level path over ``L`` layers at downsampling
rates 4 to 32; the search learns the cell's alphas and the transitions' betas jointly and
decodes the path with Viterbi; the decoded network ends in an ASPP head.

Paper: Liu et al., "Auto-DeepLab: Hierarchical Neural Architecture Search for Semantic Image
Segmentation", CVPR 2019, https://arxiv.org/abs/1901.02985.
"""

from __future__ import annotations

from optuna_nas.autodeeplab._aspp import ASPP
from optuna_nas.autodeeplab._data import (
    SHAPES,
    SegmentationData,
    load_cityscapes,
    load_voc,
    synthetic_segmentation,
)
from optuna_nas.autodeeplab._decode import decode, derive_cell
from optuna_nas.autodeeplab._metrics import ConfusionMatrix, constant_baseline, mean_iou
from optuna_nas.autodeeplab._network import AutoDeepLabNetwork
from optuna_nas.autodeeplab._search import SearchResult, search
from optuna_nas.autodeeplab._space import AutoDeepLabSpace
from optuna_nas.autodeeplab._supernet import MOVES, AutoDeepLabSupernet
from optuna_nas.autodeeplab._train import evaluate_miou, train_segmentation
from optuna_nas.autodeeplab._viterbi import brute_force_path, path_probability, viterbi

__all__ = [
    "ASPP",
    "MOVES",
    "SHAPES",
    "AutoDeepLabNetwork",
    "AutoDeepLabSpace",
    "AutoDeepLabSupernet",
    "ConfusionMatrix",
    "SearchResult",
    "SegmentationData",
    "brute_force_path",
    "constant_baseline",
    "decode",
    "derive_cell",
    "evaluate_miou",
    "load_cityscapes",
    "load_voc",
    "mean_iou",
    "path_probability",
    "search",
    "synthetic_segmentation",
    "train_segmentation",
    "viterbi",
]
