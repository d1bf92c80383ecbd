"""The recurrent cell of NAS-RL's recurrent search space (Zoph & Le 2016), and a sequence
classifier that runs it.

The cell is a full binary tree over ``base`` leaves. Leaf ``k`` combines ``W_k x_t`` and
``U_k h_{t-1}``; every inner node combines its two children's outputs; each node applies
its combine (add or elementwise multiply) and then its activation. The root's output is
``h_t``. The memory cell enters at one node: that node's output ``a`` becomes
``inject_activation(inject_combine(a, c_{t-1}))`` before its parent reads it; and ``c_t``
is the output of one node before its activation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "ACTIVATIONS",
    "COMBINES",
    "NasRLCell",
    "NasRLSequenceClassifier",
    "RecurrentCellSpec",
    "tree_children",
]

COMBINES: tuple[str, ...] = ("add", "elem_mult")
ACTIVATIONS: tuple[str, ...] = ("identity", "tanh", "relu", "sigmoid")

_COMBINE: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "add": torch.add,
    "elem_mult": torch.mul,
}
_ACTIVATION: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "identity": lambda x: x,
    "tanh": torch.tanh,
    "relu": F.relu,
    "sigmoid": torch.sigmoid,
}


def tree_children(base: int) -> tuple[tuple[int, int] | None, ...]:
    """The children of each node of the tree with ``base`` leaves, ``None`` for a leaf.

    Nodes are numbered level by level from the leaves: leaves ``0 .. base-1``, then their
    parents (node ``base + m`` combines nodes ``2m`` and ``2m + 1``), up to the root
    ``2 * base - 2``. For base 2 this is the paper's Figure 5: leaves 0 and 1, node 2.

    Args:
        base: The number of leaves, a power of two (8 in the paper).
    """
    if base < 2 or base & (base - 1):
        raise ValueError(f"The base must be a power of two of at least 2, got {base}.")
    children: list[tuple[int, int] | None] = [None] * base
    children += [(2 * m, 2 * m + 1) for m in range(base - 1)]
    return tuple(children)


@dataclass(frozen=True)
class RecurrentCellSpec:
    """A NAS-RL recurrent cell: the tree's labels and where the memory cell connects.

    Paper: Zoph & Le, "Neural Architecture Search with Reinforcement Learning", ICLR 2017,
    https://arxiv.org/abs/1611.01578.

    Args:
        nodes: ``(combine, activation)`` per tree node, in :func:`tree_children`'s order
            (``2 * base - 1`` nodes).
        inject_combine: How ``c_{t-1}`` is combined with the output of ``inject_at``.
        inject_activation: The activation applied after that combine.
        cell_from: The node whose output before its activation becomes ``c_t``.
        inject_at: The node whose output ``c_{t-1}`` is injected into.
    """

    nodes: tuple[tuple[str, str], ...]
    inject_combine: str
    inject_activation: str
    cell_from: int
    inject_at: int

    def __post_init__(self) -> None:
        children = tree_children((len(self.nodes) + 1) // 2)  # validates the base
        if len(children) != len(self.nodes):
            raise ValueError(f"A tree has 2 * base - 1 nodes, got {len(self.nodes)}.")
        for combine, activation in (*self.nodes, (self.inject_combine, self.inject_activation)):
            if combine not in COMBINES or activation not in ACTIVATIONS:
                raise ValueError(
                    f"Unknown combine or activation ({combine!r}, {activation!r}); combines "
                    f"are {list(COMBINES)}, activations {list(ACTIVATIONS)}."
                )
        for what, node in (("cell_from", self.cell_from), ("inject_at", self.inject_at)):
            if not 0 <= node < len(self.nodes):
                raise ValueError(f"{what} must be a node in [0, {len(self.nodes)}), got {node}.")

    @property
    def base(self) -> int:
        """The number of leaves."""
        return (len(self.nodes) + 1) // 2


class NasRLCell(nn.Module):
    """A recurrent cell found in NAS-RL's tree search space.

    Takes ``x_t`` of shape ``(batch, input_size)`` and the state ``(h_{t-1}, c_{t-1})``, each
    ``(batch, hidden_size)``, and returns ``(h_t, c_t)``. Only the leaves have weights: leaf
    ``k`` reads ``W_k x_t + b_k`` and ``U_k h_{t-1}``; inner nodes have none, as in the
    paper.

    Paper: Zoph & Le, "Neural Architecture Search with Reinforcement Learning", ICLR 2017,
    https://arxiv.org/abs/1611.01578 (section 3.4, Figure 5).

    Args:
        spec: The cell's architecture.
        input_size: Features of ``x_t``.
        hidden_size: Features of ``h`` and ``c``.
    """

    def __init__(self, spec: RecurrentCellSpec, input_size: int, hidden_size: int) -> None:
        super().__init__()
        if input_size < 1 or hidden_size < 1:
            raise ValueError(
                f"input_size and hidden_size must be positive, got {input_size}, {hidden_size}."
            )
        self.spec = spec
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.children_of = tree_children(spec.base)
        self.input_proj = nn.Linear(input_size, spec.base * hidden_size)
        self.hidden_proj = nn.Linear(hidden_size, spec.base * hidden_size, bias=False)

    def forward(
        self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        h, c = state
        xs = self.input_proj(x).chunk(self.spec.base, dim=-1)
        hs = self.hidden_proj(h).chunk(self.spec.base, dim=-1)
        outputs: list[torch.Tensor] = []
        new_c: torch.Tensor | None = None
        for k, ((combine, activation), children) in enumerate(
            zip(self.spec.nodes, self.children_of, strict=True)
        ):
            left, right = (xs[k], hs[k]) if children is None else (
                outputs[children[0]], outputs[children[1]]
            )
            pre = _COMBINE[combine](left, right)
            if k == self.spec.cell_from:
                new_c = pre
            out = _ACTIVATION[activation](pre)
            if k == self.spec.inject_at:
                out = _ACTIVATION[self.spec.inject_activation](
                    _COMBINE[self.spec.inject_combine](out, c)
                )
            outputs.append(out)
        assert new_c is not None
        return outputs[-1], new_c


class NasRLSequenceClassifier(nn.Module):
    """A sequence classifier: a :class:`NasRLCell` over the time steps, then a linear layer
    on the last ``h``.

    Takes sequences ``(batch, time, input_size)`` or images ``(batch, channels, height,
    width)``. An image is read row by row, top to bottom: each row is one time step of
    ``channels * row_width`` features (rows of another width are first resized to
    ``row_width`` columns by adaptive average pooling). So scikit-learn's 8x8 digits
    (:func:`optuna_nas.data.load_digits`) are 8 steps of 8 pixels, and
    :func:`optuna_nas.train` trains the model on them as on any image model. The state
    starts at zero.

    Paper: Zoph & Le, "Neural Architecture Search with Reinforcement Learning", ICLR 2017,
    https://arxiv.org/abs/1611.01578.

    Args:
        spec: The cell's architecture.
        input_size: Features per time step; by default ``in_channels * row_width``.
        hidden_size: Features of the cell's ``h`` and ``c``.
        num_classes: Output classes.
        in_channels: Channels of image inputs.
        row_width: Columns per image row read as one time step.
    """

    def __init__(
        self,
        spec: RecurrentCellSpec,
        *,
        input_size: int | None = None,
        hidden_size: int = 32,
        num_classes: int = 10,
        in_channels: int = 1,
        row_width: int = 8,
    ) -> None:
        super().__init__()
        if in_channels < 1 or row_width < 1:
            raise ValueError(
                f"in_channels and row_width must be positive, got {in_channels}, {row_width}."
            )
        self.in_channels = in_channels
        self.row_width = row_width
        self.input_size = in_channels * row_width if input_size is None else input_size
        self.cell = NasRLCell(spec, self.input_size, hidden_size)
        self.classifier = nn.Linear(hidden_size, num_classes)

    def image_rows(self, images: torch.Tensor) -> torch.Tensor:
        """Images ``(B, C, H, W)`` as sequences ``(B, H, C * row_width)``, top row first."""
        batch, channels, height, width = images.shape
        if channels != self.in_channels or channels * self.row_width != self.input_size:
            raise ValueError(
                f"Images of {channels} channel(s) do not fit this model (in_channels="
                f"{self.in_channels}, row_width={self.row_width}, input_size="
                f"{self.input_size}); build it with in_channels={channels}."
            )
        rows = images.permute(0, 2, 1, 3)  # (B, H, C, W)
        if width != self.row_width:
            rows = F.adaptive_avg_pool1d(
                rows.reshape(batch * height, channels, width), self.row_width
            )
        return rows.reshape(batch, height, channels * self.row_width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 4:
            x = self.image_rows(x)
        if x.dim() != 3 or x.shape[2] != self.input_size or x.shape[1] < 1:
            raise ValueError(
                f"Expected sequences (batch, time >= 1, {self.input_size}) or images (batch, "
                f"{self.in_channels}, height, width), got shape {tuple(x.shape)}."
            )
        h = x.new_zeros(x.shape[0], self.cell.hidden_size)
        c = h
        for t in range(x.shape[1]):
            h, c = self.cell(x[:, t], (h, c))
        logits: torch.Tensor = self.classifier(h)
        return logits

