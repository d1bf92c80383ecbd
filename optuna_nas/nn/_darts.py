"""Cell networks of the DARTS / NASNet family (Zoph et al. 2018; Liu et al. 2019)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import nn

from optuna_nas.nn._ops import FactorizedReduce, ReLUConvBN, create_op


class Genotype(NamedTuple):
    """A pair of cells as plain values, in DARTS' form.

    ``normal`` and ``reduce`` list two ``(op, input)`` pairs per block; inputs 0 and 1 are
    the two previous cells' outputs and input ``k + 2`` is block ``k``. ``*_concat`` lists
    the states concatenated into the cell output. ``*_combine`` gives each block's combine
    (``"add"`` or ``"concat"``); empty means every block adds.
    """

    normal: list[tuple[str, int]]
    normal_concat: list[int]
    reduce: list[tuple[str, int]]
    reduce_concat: list[int]
    normal_combine: list[str] = []
    reduce_combine: list[str] = []


def drop_path(x: torch.Tensor, drop_prob: float) -> torch.Tensor:
    """Zero whole samples of a branch with probability ``drop_prob``, rescaling the rest."""
    if drop_prob <= 0.0:
        return x
    keep = 1.0 - drop_prob
    mask = torch.empty(x.size(0), 1, 1, 1, device=x.device, dtype=x.dtype).bernoulli_(keep)
    return x / keep * mask


class Cell(nn.Module):
    """One cell: preprocess the two inputs, run the blocks, concatenate the chosen states."""

    def __init__(
        self,
        ops: Sequence[tuple[str, int]],
        concat: Sequence[int],
        combine: Sequence[str],
        c_prev_prev: int,
        c_prev: int,
        channels: int,
        reduction: bool,
        reduction_prev: bool,
    ) -> None:
        super().__init__()
        self.reduction = reduction
        self.preprocess0: nn.Module = (
            FactorizedReduce(c_prev_prev, channels)
            if reduction_prev
            else ReLUConvBN(c_prev_prev, channels, 1, 1, 0)
        )
        self.preprocess1 = ReLUConvBN(c_prev, channels, 1, 1, 0)
        self.inputs = [index for _, index in ops]
        self.ops = nn.ModuleList(
            create_op(name, channels, 2 if reduction and index < 2 else 1)
            for name, index in ops
        )
        self.combine = list(combine) or ["add"] * (len(ops) // 2)
        self.merges = nn.ModuleDict(
            {
                str(k): ReLUConvBN(2 * channels, channels, 1, 1, 0)
                for k, how in enumerate(self.combine)
                if how == "concat"
            }
        )
        self.concat = list(concat)
        self.multiplier = len(self.concat)

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, drop_prob: float) -> torch.Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        for k in range(len(self.ops) // 2):
            branches = []
            for i in (2 * k, 2 * k + 1):
                op = self.ops[i]
                h = op(states[self.inputs[i]])
                if self.training and not isinstance(op, nn.Identity):
                    h = drop_path(h, drop_prob)
                branches.append(h)
            if self.combine[k] == "concat":
                states.append(self.merges[str(k)](torch.cat(branches, dim=1)))
            else:
                states.append(branches[0] + branches[1])
        return torch.cat([states[i] for i in self.concat], dim=1)


class AuxiliaryHead(nn.Module):
    """DARTS' auxiliary classifier at two thirds of the depth (adaptive pooling to 2x2)."""

    def __init__(self, channels: int, num_classes: int) -> None:
        super().__init__()
        self.features = nn.Sequential(
            # Not in place: the head reads the main path's state, which must stay unchanged
            # (an in-place ReLU would also rectify the features the classifier sees when the
            # head sits on the last cell, so train and eval logits would differ).
            nn.ReLU(inplace=False),
            nn.AdaptiveAvgPool2d(2),
            nn.Conv2d(channels, 128, 1, bias=False),
            nn.BatchNorm2d(128),
            nn.ReLU(inplace=True),
            nn.Conv2d(128, 768, 2, bias=False),
            nn.BatchNorm2d(768),
            nn.ReLU(inplace=True),
        )
        self.classifier = nn.Linear(768, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.classifier(torch.flatten(self.features(x), 1))
        return logits


class CellNetwork(nn.Module):
    """Cells stacked with reductions at 1/3 and 2/3 of the depth (DARTS' NetworkCIFAR).

    In training mode with ``auxiliary=True`` the forward pass returns ``(logits,
    aux_logits)``; :func:`optuna_nas.train` weighs the auxiliary loss. Set
    ``drop_path_prob`` to drop paths (the training loop schedules it).

    Args:
        genotype: The normal and reduction cells.
        channels: Channels of the first cells (36 in DARTS' evaluation network).
        layers: Number of cells (20 in DARTS' evaluation network).
        num_classes: Output classes.
        in_channels: Input image channels.
        auxiliary: Whether to add the auxiliary head.
        stem_multiplier: The stem's channels are ``stem_multiplier * channels``.
    """

    def __init__(
        self,
        genotype: Genotype,
        *,
        channels: int = 16,
        layers: int = 8,
        num_classes: int = 10,
        in_channels: int = 3,
        auxiliary: bool = False,
        stem_multiplier: int = 3,
    ) -> None:
        super().__init__()
        if layers < 1 or channels < 1:
            raise ValueError(f"Need layers >= 1 and channels >= 1, got {layers}, {channels}.")
        self.drop_path_prob = 0.0
        c_stem = stem_multiplier * channels
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, c_stem, 3, padding=1, bias=False), nn.BatchNorm2d(c_stem)
        )
        c_prev_prev, c_prev, c_curr = c_stem, c_stem, channels
        reduction_prev = False
        reductions = {layers // 3, 2 * layers // 3}
        self.cells = nn.ModuleList()
        self.aux_index = 2 * layers // 3
        c_aux = c_prev
        for i in range(layers):
            reduction = i in reductions
            if reduction:
                c_curr *= 2
            ops, concat, combine = (
                (genotype.reduce, genotype.reduce_concat, genotype.reduce_combine)
                if reduction
                else (genotype.normal, genotype.normal_concat, genotype.normal_combine)
            )
            cell = Cell(ops, concat, combine, c_prev_prev, c_prev, c_curr, reduction,
                        reduction_prev)
            self.cells.append(cell)
            reduction_prev = reduction
            c_prev_prev, c_prev = c_prev, cell.multiplier * c_curr
            if i == self.aux_index:
                c_aux = c_prev
        self.auxiliary_head = AuxiliaryHead(c_aux, num_classes) if auxiliary else None
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_prev, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        s0 = s1 = self.stem(x)
        aux_logits = None
        for i, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1, self.drop_path_prob)
            if i == self.aux_index and self.auxiliary_head is not None and self.training:
                aux_logits = self.auxiliary_head(s1)
        logits: torch.Tensor = self.classifier(torch.flatten(self.pool(s1), 1))
        if aux_logits is not None:
            return logits, aux_logits
        return logits
