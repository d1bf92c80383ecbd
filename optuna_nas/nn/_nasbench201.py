"""The NAS-Bench-201 network skeleton (Dong & Yang 2020)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from optuna_nas.nn._ops import ReLUConvBN, create_op

# Edges of a NAS-Bench-201 cell in the benchmark's order: (to node, from node).
EDGES: tuple[tuple[int, int], ...] = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))


class NasBench201Cell(nn.Module):
    """A 4-node cell; node j sums op_{j<-i}(node i) over every earlier node i."""

    def __init__(self, ops: Sequence[str], channels: int) -> None:
        super().__init__()
        if len(ops) != len(EDGES):
            raise ValueError(f"A NAS-Bench-201 cell has {len(EDGES)} edges, got {len(ops)} ops.")
        self.edge_ops = nn.ModuleList(create_op(op, channels, 1) for op in ops)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes = [x]
        for j in range(1, 4):
            total = None
            for (to, frm), op in zip(EDGES, self.edge_ops, strict=True):
                if to == j:
                    out = op(nodes[frm])
                    total = out if total is None else total + out
            assert total is not None
            nodes.append(total)
        return nodes[-1]


class ResidualReduction(nn.Module):
    """The benchmark's reduction block: a stride-2 residual basic block doubling channels."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, 2, 1)
        self.conv_b = ReLUConvBN(c_out, c_out, 3, 1, 1)
        self.shortcut = nn.Sequential(
            nn.AvgPool2d(2, stride=2, padding=0), nn.Conv2d(c_in, c_out, 1, bias=False)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.shortcut(x) + self.conv_b(self.conv_a(x))
        return out


class NasBench201Network(nn.Module):
    """Stem, three stages of ``cells_per_stage`` cells, residual reductions between them.

    Args:
        ops: The six edge ops of the cell, in the benchmark's edge order.
        channels: Channels of the first stage (16 in the benchmark); doubled per stage.
        cells_per_stage: Cells per stage (5 in the benchmark).
        num_classes: Output classes.
        in_channels: Input image channels.
    """

    def __init__(
        self,
        ops: Sequence[str],
        *,
        channels: int = 16,
        cells_per_stage: int = 5,
        num_classes: int = 10,
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels)
        )
        layers: list[nn.Module] = []
        c = channels
        for stage in range(3):
            if stage > 0:
                layers.append(ResidualReduction(c, 2 * c))
                c *= 2
            layers.extend(NasBench201Cell(ops, c) for _ in range(cells_per_stage))
        self.cells = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.BatchNorm2d(c), nn.ReLU(inplace=True))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.head(self.cells(self.stem(x)))
        logits: torch.Tensor = self.classifier(torch.flatten(self.pool(x), 1))
        return logits
