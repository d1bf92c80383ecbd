"""The decoded Auto-DeepLab network, and the parts it shares with the search supernet.

Levels 0, 1, 2, 3 are downsampling rates 4, 8, 16, 32. The stem's three convolutions
(strides 2, 1, 2) bring the image to rate 4; each of the ``L`` layers is one cell at one
level, at most one level away from the layer before; an ASPP head reads the last cell.

Paper: Liu et al., "Auto-DeepLab: Hierarchical Neural Architecture Search for Semantic Image
Segmentation", CVPR 2019, https://arxiv.org/abs/1901.02985.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional

from optuna_nas.autodeeplab._aspp import ASPP, scaled_rates
from optuna_nas.errors import ArchitectureError, _short_repr
from optuna_nas.nn._ops import (
    FactorizedReduce,
    ReLUConvBN,
    canonical_op_name,
    create_op,
    list_ops,
)

__all__ = ["AutoDeepLabNetwork", "check_cell", "check_path", "level_rate"]


def level_rate(level: int) -> int:
    """The downsampling rate of a level: 4, 8, 16, 32 for levels 0, 1, 2, 3."""
    return 4 << level


def check_path(path: Sequence[int], levels: int = 4) -> list[int]:
    """Validate a network-level path (the level of each layer) and return it as a list.

    Raises:
        ArchitectureError: A level is out of range, the first layer is not at rate 4 or 8,
            or a layer moves more than one level.
    """
    path = list(path)
    rates = ", ".join(str(level_rate(s)) for s in range(levels))
    if not path:
        raise ArchitectureError("The path needs at least one layer.")
    for layer, level in enumerate(path):
        if type(level) is not int or not 0 <= level < levels:
            raise ArchitectureError(
                f"Layer {layer} is at level {_short_repr(level)}; levels are 0..{levels - 1} "
                f"(downsampling rates {rates})."
            )
        previous = 0 if layer == 0 else path[layer - 1]
        if abs(level - previous) > 1:
            where = "the stem" if layer == 0 else f"layer {layer - 1}"
            raise ArchitectureError(
                f"Layer {layer} moves from rate {level_rate(previous)} ({where}) to rate "
                f"{level_rate(level)}: each layer keeps the rate, halves it or doubles it "
                "(at most one level per layer)."
            )
    return path


def check_cell(
    cell: Sequence[tuple[str, int]],
    ops: Sequence[str],
    blocks: int | None = None,
) -> list[tuple[str, int]]:
    """Validate a cell (two ``(op, input)`` pairs per block) and return its canonical form.

    Each block reads two distinct states among the two cell inputs (0, 1) and the blocks
    before it; its pair is ordered by input index, as DARTS' genotypes are.

    Raises:
        ArchitectureError: The cell is malformed, has the wrong number of blocks, names an
            op outside ``ops`` or reads a state it cannot.
    """
    pairs = list(cell) if isinstance(cell, (list, tuple)) else None
    if pairs is None or not all(
        isinstance(p, (tuple, list)) and len(p) == 2 and isinstance(p[0], str)
        and type(p[1]) is int
        for p in pairs
    ):
        raise ArchitectureError(
            "A cell must be a list of (op name, input index) pairs, two per block, like "
            f"[('sep_conv_3x3', 0), ('skip_connect', 1), ...]; got {_short_repr(cell)}."
        )
    if not pairs or len(pairs) % 2 or (blocks is not None and len(pairs) != 2 * blocks):
        need = f"{2 * blocks}" if blocks is not None else "an even number of"
        raise ArchitectureError(
            f"The cell has {len(pairs)} (op, input) pairs; it needs {need} (two per block)."
        )
    canonical: list[tuple[str, int]] = []
    for k in range(len(pairs) // 2):
        block = [(canonical_op_name(op), index) for op, index in pairs[2 * k : 2 * k + 2]]
        for op, index in block:
            if op not in ops:
                raise ArchitectureError(
                    f"Unknown op {_short_repr(op)} in block {k} of the cell; the ops are "
                    f"{list(ops)}."
                )
            if not 0 <= index < k + 2:
                raise ArchitectureError(
                    f"Block {k} of the cell reads state {index}; it can read states "
                    f"0..{k + 1} (the two cell inputs and the blocks before it)."
                )
        if block[0][1] == block[1][1]:
            raise ArchitectureError(
                f"Block {k} of the cell reads state {block[0][1]} twice; a block reads two "
                "distinct states, as in DARTS."
            )
        canonical += sorted(block, key=lambda pair: pair[1])
    return canonical


def resize(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Bilinear resize to ``size`` (height, width); ``x`` itself when it already fits."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return functional.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)


def level_sizes(rate4_size: Sequence[int], levels: int) -> list[tuple[int, int]]:
    """Feature sizes of each level, from the stem's rate-4 output (each halving rounds up,
    as a stride-2 convolution does)."""
    sizes = [(int(rate4_size[0]), int(rate4_size[1]))]
    for _ in range(1, levels):
        h, w = sizes[-1]
        sizes.append((math.ceil(h / 2), math.ceil(w / 2)))
    return sizes


class Stem(nn.Module):
    """Three 3x3 convolutions with strides 2, 1, 2, each with batch norm and ReLU.

    Returns the rate-2 features (the first layer's second input) and the rate-4 features.

    Args:
        in_channels: Image channels.
        mid_channels: Channels of the first two convolutions.
        out_channels: Channels of the rate-4 output.
    """

    def __init__(self, in_channels: int, mid_channels: int, out_channels: int) -> None:
        super().__init__()

        def conv(c_in: int, c_out: int, stride: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False),
                                 nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))

        self.conv0 = conv(in_channels, mid_channels, 2)
        self.conv1 = conv(mid_channels, mid_channels, 1)
        self.conv2 = conv(mid_channels, out_channels, 2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        half = self.conv1(self.conv0(x))
        return half, self.conv2(half)


class Resample(nn.Module):
    """Bring the previous layer's output to this layer's level and channels.

    ``move`` is the level change: +1 halves the resolution with a factorized reduce (two
    offset stride-2 1x1 convolutions), 0 keeps it with a 1x1 ReLU-conv-BN, -1 doubles it
    by bilinear upsampling followed by a 1x1 ReLU-conv-BN.

    Args:
        c_in: Channels of the previous output.
        c_out: Channels of the cell's blocks at this level.
        move: -1, 0 or +1.
        affine: Whether batch norms learn a scale and shift.
    """

    def __init__(self, c_in: int, c_out: int, move: int, affine: bool = True) -> None:
        super().__init__()
        if move not in (-1, 0, 1):
            raise ValueError(f"move must be -1, 0 or 1, got {move}.")
        self.move = move
        self.op: nn.Module = (
            FactorizedReduce(c_in, c_out, affine)
            if move == 1
            else ReLUConvBN(c_in, c_out, 1, 1, 0, affine=affine)
        )

    def forward(self, x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
        if self.move == -1:
            x = resize(x, size)
        out: torch.Tensor = self.op(x)
        return out


def block_channels(filter_multiplier: int, level: int) -> int:
    """Channels of each block of a cell at ``level``: ``F * rate / 4``."""
    return filter_multiplier << level


class DecodedCell(nn.Module):
    """One cell of a decoded network: fixed ops on fixed inputs, blocks concatenated.

    Args:
        cell: Two ``(op, input)`` pairs per block (see :class:`AutoDeepLabNetwork`).
        c_prev_prev: Channels of the output two layers back.
        c_prev: Channels of the previous output.
        channels: Channels of each block.
        move: The level change from the previous layer (-1, 0 or +1).
    """

    def __init__(self, cell: Sequence[tuple[str, int]], c_prev_prev: int, c_prev: int,
                 channels: int, move: int) -> None:
        super().__init__()
        self.preprocess0 = ReLUConvBN(c_prev_prev, channels, 1, 1, 0)
        self.preprocess1 = Resample(c_prev, channels, move)
        self.inputs = [index for _, index in cell]
        self.ops = nn.ModuleList(create_op(name, channels) for name, _ in cell)

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
        states = [self.preprocess0(resize(s0, size)), self.preprocess1(s1, size)]
        for a in range(0, len(self.ops), 2):
            states.append(self.ops[a](states[self.inputs[a]])
                          + self.ops[a + 1](states[self.inputs[a + 1]]))
        return torch.cat(states[2:], dim=1)


class AutoDeepLabNetwork(nn.Module):
    """A decoded Auto-DeepLab network: stem, one cell per layer along the path, ASPP.

    The cell at layer ``l`` reads the outputs of layers ``l - 1`` (resampled by the move:
    see :class:`Resample`) and ``l - 2`` (bilinearly resized to this level, then a 1x1
    ReLU-conv-BN); the stem's rate-2 and rate-4 outputs stand in for layers -2 and -1.
    A cell at rate ``s`` has blocks of ``F * s / 4`` channels and outputs their
    concatenation, ``B * F * s / 4`` channels. The ASPP head reads the last cell with its
    rates scaled to that cell's rate, and its logits are upsampled to the image.

    Paper: Liu et al., "Auto-DeepLab", CVPR 2019, https://arxiv.org/abs/1901.02985.

    Args:
        path: The level (0..3) of each layer.
        cell: Two ``(op, input)`` pairs per block; inputs 0 and 1 are the outputs of
            layers ``l - 2`` and ``l - 1``, input ``k + 2`` is block ``k``.
        num_classes: Output classes.
        filter_multiplier: ``F`` (20 in Auto-DeepLab-S, 48 in -L).
        in_channels: Image channels.
        aspp_rates: The ASPP's atrous rates at output stride 16 (scaled to the last level).
        aspp_channels: Channels of the ASPP's branches.
        levels: Number of levels (4: rates 4 to 32).
    """

    def __init__(
        self,
        path: Sequence[int],
        cell: Sequence[tuple[str, int]],
        *,
        num_classes: int,
        filter_multiplier: int = 20,
        in_channels: int = 3,
        aspp_rates: Sequence[float] = (6, 12, 18),
        aspp_channels: int = 256,
        levels: int = 4,
    ) -> None:
        super().__init__()
        self.path = check_path(path, levels)
        cell = check_cell(cell, list_ops())
        if filter_multiplier < 1 or num_classes < 1:
            raise ValueError("filter_multiplier and num_classes must be at least 1, got "
                             f"{filter_multiplier} and {num_classes}.")
        blocks = len(cell) // 2
        self.levels = levels
        stem_mid = max(1, blocks * filter_multiplier // 2)
        self.stem = Stem(in_channels, stem_mid, blocks * filter_multiplier)
        channels = {-1: stem_mid}  # level -1: the stem's rate-2 output
        channels.update({s: blocks * block_channels(filter_multiplier, s) for s in range(levels)})
        state_levels = [-1, 0]
        self.cells = nn.ModuleList()
        for level in self.path:
            self.cells.append(DecodedCell(
                cell, channels[state_levels[-2]], channels[state_levels[-1]],
                block_channels(filter_multiplier, level), level - state_levels[-1],
            ))
            state_levels.append(level)
        last = self.path[-1]
        self.aspp = ASPP(channels[last], num_classes,
                         rates=scaled_rates(aspp_rates, level_rate(last)), channels=aspp_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        half, quarter = self.stem(x)
        sizes = level_sizes(quarter.shape[-2:], self.levels)
        s0, s1 = half, quarter
        for level, cell in zip(self.path, self.cells, strict=True):
            s0, s1 = s1, cell(s0, s1, sizes[level])
        return resize(self.aspp(s1), x.shape[-2:])
