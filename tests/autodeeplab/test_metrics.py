"""Mean IoU on hand-computed cases: the confusion matrix, the ignore index, absent
classes, logits, the constant baseline, and clear errors."""

from __future__ import annotations

import math

import pytest
import torch
from torch.utils.data import TensorDataset

from optuna_nas.autodeeplab import ConfusionMatrix, constant_baseline, mean_iou


def test_a_hand_computed_case() -> None:
    target = torch.tensor([[0, 0, 1, 1], [2, 2, 2, 255]])
    prediction = torch.tensor([[0, 1, 1, 1], [2, 2, 0, 1]])
    matrix = ConfusionMatrix(3)
    matrix.update(prediction, target)
    assert matrix.matrix.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 2]]
    # IoU: class 0: 1 / (2 + 2 - 1); class 1: 2 / (2 + 3 - 2); class 2: 2 / (3 + 2 - 2).
    assert matrix.iou() == pytest.approx([1 / 3, 2 / 3, 2 / 3])
    assert matrix.mean_iou() == pytest.approx(5 / 9)
    assert matrix.pixel_accuracy() == pytest.approx(5 / 7)  # the 255 pixel is not scored
    assert mean_iou(prediction, target, 3) == pytest.approx(5 / 9)


def test_perfect_and_absent_classes() -> None:
    target = torch.tensor([0, 0, 2, 2])
    assert mean_iou(target, target, 4) == 1.0  # classes 1 and 3 are absent: left out
    matrix = ConfusionMatrix(4)
    matrix.update(target, target)
    iou = matrix.iou()
    assert math.isnan(iou[1]) and math.isnan(iou[3])
    # A class only predicted (never in the target) counts, with IoU 0.
    assert mean_iou(torch.tensor([0, 0, 2, 1]), target, 4) == pytest.approx((1 + 0 + 0.5) / 3)


def test_accumulates_over_batches_like_one_batch() -> None:
    generator = torch.Generator().manual_seed(0)
    target = torch.randint(0, 5, (6, 7, 9), generator=generator)
    target[target == 4] = 255
    prediction = torch.randint(0, 4, (6, 7, 9), generator=generator)
    matrix = ConfusionMatrix(4)
    for i in range(6):
        matrix.update(prediction[i], target[i])
    assert matrix.mean_iou() == pytest.approx(mean_iou(prediction, target, 4))


def test_logits_are_argmaxed() -> None:
    target = torch.tensor([[[0, 1], [1, 0]]])
    logits = torch.nn.functional.one_hot(target, 2).permute(0, 3, 1, 2).float()
    assert mean_iou(logits, target, 2) == 1.0


def test_errors_name_the_problem() -> None:
    with pytest.raises(ValueError, match="label 19, outside 0..18"):
        mean_iou(torch.zeros(3, dtype=torch.long), torch.tensor([0, 19, 255]), 19)
    with pytest.raises(ValueError, match="upsample"):
        mean_iou(torch.zeros(2, 4), torch.zeros(2, 3, dtype=torch.long), 2)
    with pytest.raises(ValueError, match="No scored pixel"):
        mean_iou(torch.zeros(3, dtype=torch.long), torch.full((3,), 255), 2)


def test_constant_baseline_predicts_the_majority() -> None:
    masks = torch.tensor([[[0, 0], [0, 1]], [[0, 0], [2, 255]]])
    train = TensorDataset(torch.zeros(2, 1, 2, 2), masks)
    majority, miou = constant_baseline(train, train, 3)
    assert majority == 0
    # Class 0: 5 pixels, all predicted 0, 7 scored pixels predicted 0 -> 5/7; others 0.
    assert miou == pytest.approx((5 / 7) / 3)
