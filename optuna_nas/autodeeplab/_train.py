"""Training a segmentation network, reporting mean IoU to an Optuna trial every epoch."""

from __future__ import annotations

from typing import Any

import optuna
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from optuna_nas.autodeeplab._data import SegmentationData
from optuna_nas.autodeeplab._metrics import ConfusionMatrix
from optuna_nas.training import _fit, _resolve_device, _Task

__all__ = ["evaluate_miou", "train_segmentation"]


def evaluate_miou(
    model: nn.Module,
    dataset: Dataset[Any],
    num_classes: int,
    *,
    ignore_index: int = 255,
    batch_size: int = 32,
    device: str | torch.device | None = None,
) -> float:
    """The mean IoU of a model's per-pixel argmax on a dataset, every pixel pooled.

    Paper: Everingham et al., "The PASCAL VOC Challenge", IJCV 2010,
    https://doi.org/10.1007/s11263-009-0275-4.

    Args:
        model: Returns ``N x C x H x W`` logits at the masks' size; it is put in eval mode.
        dataset: Yields ``(image, mask)`` pairs.
        num_classes: Number of classes.
        ignore_index: The mask label of unscored pixels.
        batch_size: Evaluation batch size.
        device: Where to run; by default CUDA when available, else the CPU.
    """
    dev = _resolve_device(device)
    model.to(dev).eval()
    matrix = ConfusionMatrix(num_classes, ignore_index=ignore_index)
    with torch.no_grad():
        for images, masks in DataLoader(dataset, batch_size=batch_size):
            matrix.update(model(images.to(dev)).argmax(dim=1).cpu(), masks)
    return matrix.mean_iou()


def train_segmentation(
    model: nn.Module, data: SegmentationData, *, epochs: int, trial: optuna.Trial | None = None,
    lr: float = 0.05, lr_min: float = 0.0, momentum: float = 0.9, weight_decay: float = 1e-4,
    batch_size: int = 16, grad_clip: float | None = 5.0, seed: int = 0,
    device: str | torch.device | None = None, num_workers: int = 0,
) -> float:
    """Train a segmentation network and report its validation mean IoU after every epoch.

    Per-pixel cross entropy that skips ``data.ignore_index``, SGD with momentum and a
    cosine learning rate, gradient-norm clipping. With a trial, each epoch's validation
    mean IoU is reported with ``trial.report(miou, epoch)`` and :class:`optuna.TrialPruned`
    is raised when the study's pruner says so; the parameter count and FLOPs are stored
    as the trial's user attrs ``params`` and ``flops``. On the CPU the same seed repeats
    exactly (seed the model's initialisation before building it).

    Paper: Liu et al., "Auto-DeepLab", CVPR 2019, https://arxiv.org/abs/1901.02985 (the
    networks it decodes); Chen et al., "DeepLab", TPAMI 2018, https://arxiv.org/abs/1606.00915
    (the per-pixel loss).

    Args:
        model: The network, e.g. ``AutoDeepLabSpace.build(arch, ...)``.
        data: The splits; ``data.valid`` is what is reported.
        epochs: Training epochs.
        trial: The Optuna trial to report to, or ``None``.
        lr, lr_min, momentum, weight_decay, batch_size, grad_clip: The recipe, as in
            :func:`optuna_nas.training.train` (its loop trains here too): the initial and
            final learning rates of the cosine schedule, SGD's momentum and L2 weight
            decay, the minibatch size, and the max gradient norm (``None``: no clipping).
        seed: Seed of the data order.
        device: Where to train; by default CUDA when available, else the CPU.
        num_workers: DataLoader worker processes.

    Returns:
        The validation mean IoU after the last epoch.

    Raises:
        optuna.TrialPruned: The trial's pruner stopped the training.
        NonFiniteLossError: The loss became NaN or infinite.
    """
    criterion = nn.CrossEntropyLoss(ignore_index=data.ignore_index)
    task = _Task(
        loss=criterion,
        metric=lambda dev: evaluate_miou(
            model, data.valid, data.num_classes, ignore_index=data.ignore_index, device=dev
        ),
        metric_name="mean IoU",
        # Segmentation has always trained in full precision and without the weights check.
        check_weights=False,
    )
    return _fit(
        model, data.train, task, epochs=epochs, trial=trial, lr=lr, lr_min=lr_min,
        momentum=momentum, weight_decay=weight_decay, batch_size=batch_size, grad_clip=grad_clip,
        drop_path_rate=0.0, seed=seed, device=device, amp=False, num_workers=num_workers,
    )
