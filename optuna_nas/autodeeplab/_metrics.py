"""Mean intersection-over-union from a confusion matrix, with an ignored label.

The standard segmentation metric of PASCAL VOC and Cityscapes: per class,
``IoU = TP / (TP + FP + FN)`` over every pixel of the data set (not averaged per image),
then the mean over classes. Pixels whose target is the ignore index (255: VOC's object
borders, Cityscapes' void classes) count for nothing.

Paper: Everingham et al., "The PASCAL Visual Object Classes (VOC) Challenge", IJCV 2010,
https://doi.org/10.1007/s11263-009-0275-4.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch.utils.data import Dataset

__all__ = ["ConfusionMatrix", "constant_baseline", "mean_iou"]

IGNORE_INDEX = 255


class ConfusionMatrix:
    """Pixel counts by (target class, predicted class), accumulated over batches.

    Classes that appear in neither the targets nor the predictions have no IoU (NaN) and
    are left out of the mean, as in the VOC and Cityscapes evaluation code.

    Paper: Everingham et al., "The PASCAL VOC Challenge", IJCV 2010,
    https://doi.org/10.1007/s11263-009-0275-4.

    Args:
        num_classes: Number of classes; labels are ``0 .. num_classes - 1``.
        ignore_index: The target label of pixels that are not scored.
    """

    def __init__(self, num_classes: int, *, ignore_index: int = IGNORE_INDEX) -> None:
        if num_classes < 1:
            raise ValueError(f"num_classes must be at least 1, got {num_classes}.")
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.matrix = torch.zeros(num_classes, num_classes, dtype=torch.int64)

    def update(self, prediction: torch.Tensor, target: torch.Tensor) -> None:
        """Add a batch.

        Args:
            prediction: Predicted labels of the target's shape, or logits with the classes
                in dimension 1 (``N x C x H x W`` for ``N x H x W`` targets).
            target: Target labels; ``ignore_index`` marks unscored pixels.

        Raises:
            ValueError: The shapes differ, or a label is outside ``0 .. num_classes - 1``.
        """
        if prediction.dim() == target.dim() + 1:
            prediction = prediction.argmax(dim=1)
        if prediction.shape != target.shape:
            raise ValueError(
                f"Predictions of shape {tuple(prediction.shape)} do not match targets of shape "
                f"{tuple(target.shape)}; upsample the logits to the mask's size."
            )
        target = target.reshape(-1).to(torch.int64).cpu()
        prediction = prediction.reshape(-1).to(torch.int64).cpu()
        scored = target != self.ignore_index
        target, prediction = target[scored], prediction[scored]
        n = self.num_classes
        if target.numel() and (int(target.min()) < 0 or int(target.max()) >= n):
            bad = int(target[(target < 0) | (target >= n)][0])
            raise ValueError(
                f"A target holds label {bad}, outside 0..{n - 1} and not the ignore index "
                f"{self.ignore_index}; map the data set's labels to train ids (Cityscapes' "
                "labelIds need load_cityscapes's mapping) or raise num_classes."
            )
        if prediction.numel() and (int(prediction.min()) < 0 or int(prediction.max()) >= n):
            raise ValueError(f"A prediction is outside the classes 0..{n - 1}.")
        self.matrix += torch.bincount(target * n + prediction, minlength=n * n).reshape(n, n)

    def iou(self) -> list[float]:
        """Each class's intersection over union; NaN for a class absent from targets and
        predictions."""
        matrix = self.matrix.double()
        true_positive = matrix.diag()
        union = matrix.sum(0) + matrix.sum(1) - true_positive
        return [
            float(tp / u) if u > 0 else float("nan")
            for tp, u in zip(true_positive.tolist(), union.tolist(), strict=True)
        ]

    def mean_iou(self) -> float:
        """The mean IoU over the classes that appear (in targets or predictions).

        Raises:
            ValueError: No scored pixel was added.
        """
        present = [value for value in self.iou() if value == value]  # NaN != NaN
        if not present:
            raise ValueError("No scored pixel: every target pixel was the ignore index.")
        return sum(present) / len(present)

    def pixel_accuracy(self) -> float:
        """The share of scored pixels predicted right."""
        total = int(self.matrix.sum())
        if total == 0:
            raise ValueError("No scored pixel: every target pixel was the ignore index.")
        return int(self.matrix.diag().sum()) / total


def mean_iou(
    prediction: torch.Tensor,
    target: torch.Tensor,
    num_classes: int,
    *,
    ignore_index: int = IGNORE_INDEX,
) -> float:
    """The mean IoU of predictions against targets, every pixel pooled.

    Paper: Everingham et al., "The PASCAL VOC Challenge", IJCV 2010,
    https://doi.org/10.1007/s11263-009-0275-4.

    Args:
        prediction: Predicted labels, or logits with the classes in dimension 1.
        target: Target labels of the same shape (without the class dimension).
        num_classes: Number of classes.
        ignore_index: The target label of unscored pixels.
    """
    matrix = ConfusionMatrix(num_classes, ignore_index=ignore_index)
    matrix.update(prediction, target)
    return matrix.mean_iou()


def _masks(dataset: Dataset[Any]) -> Iterable[torch.Tensor]:
    for index in range(len(dataset)):  # type: ignore[arg-type]
        _, mask = dataset[index]
        yield torch.as_tensor(mask)


def constant_baseline(
    train: Dataset[Any],
    evaluate_on: Dataset[Any],
    num_classes: int,
    *,
    ignore_index: int = IGNORE_INDEX,
) -> tuple[int, float]:
    """The mean IoU of predicting the training set's most frequent class everywhere.

    The floor a segmentation network must clear: it scores ``frequency / classes_present``
    with no model at all.

    Paper: Everingham et al., "The PASCAL VOC Challenge", IJCV 2010,
    https://doi.org/10.1007/s11263-009-0275-4.

    Args:
        train: Yields ``(image, mask)`` pairs; its most frequent scored label is predicted.
        evaluate_on: Yields ``(image, mask)`` pairs to score the constant prediction on.
        num_classes: Number of classes.
        ignore_index: The mask label of unscored pixels.

    Returns:
        The predicted class and its mean IoU on ``evaluate_on``.
    """
    counts = torch.zeros(num_classes, dtype=torch.int64)
    for mask in _masks(train):
        labels = mask.reshape(-1).to(torch.int64)
        labels = labels[(labels != ignore_index) & (labels >= 0) & (labels < num_classes)]
        counts += torch.bincount(labels, minlength=num_classes)
    majority = int(counts.argmax())
    matrix = ConfusionMatrix(num_classes, ignore_index=ignore_index)
    for mask in _masks(evaluate_on):
        matrix.update(torch.full_like(mask, majority), mask)
    return majority, matrix.mean_iou()
