"""Atrous spatial pyramid pooling (DeepLab's segmentation head)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["ASPP", "scaled_rates"]


def scaled_rates(rates_at_16: Sequence[float], rate: int) -> tuple[int, ...]:
    """Atrous rates for features at downsampling ``rate``, given the rates at output stride 16.

    DeepLab's rates widen as the features get finer: (6, 12, 18) at output stride 16 are
    (12, 24, 36) at 8. Auto-DeepLab's search heads use one rate, 96 / rate (24, 12, 6, 3 at
    rates 4, 8, 16, 32), which is 6 at output stride 16. Those rates suit crops of about
    500 pixels; small images want fractions (0.25 at output stride 16 is 1 at rate 4).
    Rates are rounded, at least 1, and distinct.

    Args:
        rates_at_16: The atrous rates at output stride 16.
        rate: The downsampling rate of the features the head reads.
    """
    if not rates_at_16 or any(r <= 0 for r in rates_at_16):
        raise ValueError(f"Atrous rates must be positive, got {list(rates_at_16)}.")
    return tuple(sorted({max(1, round(r * 16 / rate)) for r in rates_at_16}))


def _conv_bn_relu(c_in: int, c_out: int, kernel: int, dilation: int = 1) -> nn.Sequential:
    padding = dilation * (kernel // 2)
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel, padding=padding, dilation=dilation, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling, then a 1x1 classifier: per-pixel class logits.

    Parallel branches read the same features: a 1x1 convolution, a 3x3 convolution per
    atrous rate and (optionally) the image-level average, broadcast back. Their
    concatenation is projected to ``channels`` and classified. The logits keep the
    features' resolution; the networks upsample them to the image.

    Paper: Chen et al., "Rethinking Atrous Convolution for Semantic Image Segmentation"
    (DeepLabv3), 2017, https://arxiv.org/abs/1706.05587.

    Args:
        in_channels: Channels of the features.
        num_classes: Output classes.
        rates: The atrous rates of the 3x3 branches.
        channels: Channels of each branch and of the projection.
        image_pooling: Whether to add the image-level branch.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        *,
        rates: Sequence[int] = (6, 12, 18),
        channels: int = 256,
        image_pooling: bool = True,
    ) -> None:
        super().__init__()
        if any(r < 1 for r in rates):
            raise ValueError(f"Atrous rates must be at least 1, got {list(rates)}.")
        self.branches = nn.ModuleList(
            [_conv_bn_relu(in_channels, channels, 1)]
            + [_conv_bn_relu(in_channels, channels, 3, r) for r in rates]
        )
        # No batch norm on the pooled branch: it sees one value per channel and image, which
        # batch norm cannot normalise in a batch of one.
        self.pooling = (
            nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(in_channels, channels, 1),
                          nn.ReLU(inplace=True))
            if image_pooling
            else None
        )
        n_branches = len(self.branches) + (1 if image_pooling else 0)
        self.project = _conv_bn_relu(n_branches * channels, channels, 1)
        self.classifier = nn.Conv2d(channels, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs = [branch(x) for branch in self.branches]
        if self.pooling is not None:
            pooled = self.pooling(x)
            outputs.append(pooled.expand(-1, -1, x.shape[2], x.shape[3]))
        logits: torch.Tensor = self.classifier(self.project(torch.cat(outputs, dim=1)))
        return logits

