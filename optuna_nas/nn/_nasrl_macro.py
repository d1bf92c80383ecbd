"""The convolutional network of NAS-RL's macro search space (Zoph & Le 2016).

Each layer is a ``filter_height x filter_width`` convolution with 'same' padding, batch
norm and ReLU. A layer reads the earlier layers its skip connections select, concatenated
along depth; a layer that reads none reads the image. Every layer that no later layer
reads feeds the classifier.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["MacroLayerSpec", "MacroLayer", "NasRLMacroNetwork", "pad_to_largest"]


@dataclass(frozen=True)
class MacroLayerSpec:
    """One layer of a NAS-RL macro network.

    Paper: Zoph & Le, "Neural Architecture Search with Reinforcement Learning", ICLR 2017,
    https://arxiv.org/abs/1611.01578.

    Args:
        filter_height: Height of the convolution's filters (odd).
        filter_width: Width of the convolution's filters (odd).
        filters: Number of filters (output channels) before ``channel_scale``.
        stride: Stride of the convolution in both directions.
        inputs: The earlier layers (by index) whose outputs this layer reads, in increasing
            order; empty when the layer reads the image.
    """

    filter_height: int
    filter_width: int
    filters: int
    stride: int = 1
    inputs: tuple[int, ...] = ()


class MacroLayer(nn.Module):
    """A NAS-RL macro layer: convolution ('same' padding, no bias), batch norm and ReLU.

    Paper: Zoph & Le, "Neural Architecture Search with Reinforcement Learning", ICLR 2017,
    https://arxiv.org/abs/1611.01578.

    Args:
        in_channels: Channels of the (concatenated) input.
        out_channels: Filters of the convolution.
        kernel: ``(height, width)`` of the filters; both odd.
        stride: Stride in both directions.
    """

    def __init__(
        self, in_channels: int, out_channels: int, kernel: tuple[int, int], stride: int
    ) -> None:
        super().__init__()
        height, width = kernel
        if height % 2 == 0 or width % 2 == 0:
            raise ValueError(f"Filter sizes must be odd for 'same' padding, got {kernel}.")
        self.conv = nn.Conv2d(
            in_channels,
            out_channels,
            (height, width),
            stride=stride,
            padding=(height // 2, width // 2),
            bias=False,
        )
        self.bn = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = F.relu(self.bn(self.conv(x)))
        return out


def pad_to_largest(maps: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Zero-pad feature maps to the largest height and width among them.

    As in the paper, smaller maps are padded with zeros; the padding is split evenly
    between the two sides, the odd row or column going to the bottom or the right.

    Args:
        maps: Tensors of shape ``(batch, channels, height, width)``.
    """
    height = max(int(m.shape[2]) for m in maps)
    width = max(int(m.shape[3]) for m in maps)
    padded = []
    for m in maps:
        dh, dw = height - int(m.shape[2]), width - int(m.shape[3])
        if dh or dw:
            m = F.pad(m, (dw // 2, dw - dw // 2, dh // 2, dh - dh // 2))
        padded.append(m)
    return padded


class NasRLMacroNetwork(nn.Module):
    """A NAS-RL convolutional network: layers joined by the chosen skip connections.

    Paper: Zoph & Le, "Neural Architecture Search with Reinforcement Learning", ICLR 2017,
    https://arxiv.org/abs/1611.01578 (section 3.3).

    Inputs of a layer are brought to one spatial size by zero-padding the smaller maps (the
    paper's rule; they differ only where strides are searched) and concatenated along
    depth. The classifier global-average-pools every layer that no later layer reads and
    concatenates the pooled vectors (pooling each map by itself, so no padding dilutes the
    averages), followed by a linear layer.

    The graph is recorded on the module: :attr:`layer_inputs` (the layers each layer reads,
    ``()`` for the image), :attr:`classifier_inputs` (the layers the classifier reads) and
    :attr:`layer_channels` (each layer's output channels).

    Args:
        layers: The layers, in order; a layer may read only earlier ones.
        num_classes: Output classes.
        in_channels: Image channels.
        channel_scale: Factor applied to every layer's filter count (rounded, at least 1),
            e.g. 0.125 for tiny test networks.
    """

    def __init__(
        self,
        layers: Sequence[MacroLayerSpec],
        *,
        num_classes: int = 10,
        in_channels: int = 3,
        channel_scale: float = 1.0,
    ) -> None:
        super().__init__()
        if not layers:
            raise ValueError("A NAS-RL macro network needs at least one layer.")
        if channel_scale <= 0:
            raise ValueError(f"channel_scale must be positive, got {channel_scale}.")
        channels: list[int] = []
        modules: list[MacroLayer] = []
        for i, spec in enumerate(layers):
            if any(not 0 <= j < i for j in spec.inputs) or len(set(spec.inputs)) != len(
                spec.inputs
            ):
                raise ValueError(
                    f"Layer {i} may read only distinct earlier layers, got {spec.inputs}."
                )
            if spec.stride < 1 or spec.filters < 1:
                raise ValueError(f"Layer {i} has an invalid stride or filter count: {spec}.")
            c_in = sum(channels[j] for j in spec.inputs) if spec.inputs else in_channels
            c_out = max(1, round(spec.filters * channel_scale))
            modules.append(
                MacroLayer(c_in, c_out, (spec.filter_height, spec.filter_width), spec.stride)
            )
            channels.append(c_out)
        read = {j for spec in layers for j in spec.inputs}
        self.specs: tuple[MacroLayerSpec, ...] = tuple(layers)
        self.layer_inputs: tuple[tuple[int, ...], ...] = tuple(
            tuple(spec.inputs) for spec in layers
        )
        self.classifier_inputs: tuple[int, ...] = tuple(
            i for i in range(len(layers)) if i not in read
        )
        self.layer_channels: tuple[int, ...] = tuple(channels)
        self.in_channels = in_channels
        self.layers = nn.ModuleList(modules)
        self.classifier = nn.Linear(sum(channels[i] for i in self.classifier_inputs), num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs: list[torch.Tensor] = []
        for layer, inputs in zip(self.layers, self.layer_inputs, strict=True):
            if not inputs:
                layer_input = x
            elif len(inputs) == 1:
                layer_input = outputs[inputs[0]]
            else:
                layer_input = torch.cat(pad_to_largest([outputs[j] for j in inputs]), dim=1)
            outputs.append(layer(layer_input))
        pooled = [outputs[i].mean(dim=(2, 3)) for i in self.classifier_inputs]
        logits: torch.Tensor = self.classifier(torch.cat(pooled, dim=1))
        return logits
