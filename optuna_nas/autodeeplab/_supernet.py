"""Auto-DeepLab's search supernet: a trellis of mixed cells over layers and levels.

Paper: Liu et al., "Auto-DeepLab: Hierarchical Neural Architecture Search for Semantic Image
Segmentation", CVPR 2019, https://arxiv.org/abs/1901.02985 (Sec. 3 and 4).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from optuna_nas.autodeeplab._aspp import ASPP, scaled_rates
from optuna_nas.autodeeplab._network import (
    Resample,
    Stem,
    block_channels,
    level_rate,
    level_sizes,
    resize,
)
from optuna_nas.nn._ops import ReLUConvBN, get_op_set
from optuna_nas.supernet._supernet import _Edge, _no_running_stats, _ReluCache

__all__ = ["MOVES", "AutoDeepLabSupernet"]

#: The level changes of a transition, in the order of the betas' last dimension: to the
#: finer level (the rate halves), the same level, the coarser level (the rate doubles).
MOVES = (-1, 0, 1)


def reachable_levels(layer: int, levels: int) -> range:
    """The levels layer ``layer`` can be at: the stem is at level 0, each layer moves one.

    Layer -2 is the stem's rate-2 output (level -1) and layer -1 its rate-4 output.
    """
    if layer == -2:
        return range(-1, 0)
    return range(0, min(layer + 2, levels))


def _edge_index(block: int, state: int) -> int:
    # Edges are ordered block by block, each block's by input state (as DARTS orders them).
    return block * (block + 3) // 2 + state


class _Node(nn.Module):
    """The cell at one (layer, level): shared ops, one preprocessing per incoming move.

    Eq. (6) of the paper: ``H = sum over moves m of beta_m * Cell(H^{l-1}_{s - m},
    H^{l-2}_s)``, every term with the same cell weights and alphas. The edges that read
    ``H^{l-2}_s`` (state 0) give the same result in every term, so they are computed once.
    """

    def __init__(self, ops: Sequence[str], blocks: int, channels: int, c_prev_prev: int,
                 incoming: dict[int, int], affine: bool) -> None:
        super().__init__()
        self.blocks = blocks
        self.preprocess0 = ReLUConvBN(c_prev_prev, channels, 1, 1, 0, affine=affine)
        self.preprocess1 = nn.ModuleDict(
            {str(move): Resample(c_in, channels, move, affine) for move, c_in in incoming.items()}
        )
        self.edges = nn.ModuleList(
            _Edge(ops, channels, 1, affine, True) for k in range(blocks) for _ in range(k + 2)
        )

    def forward(self, s0: torch.Tensor, inputs: Sequence[tuple[int, torch.Tensor, torch.Tensor]],
                size: Sequence[int], weights: torch.Tensor) -> torch.Tensor:
        relu = _ReluCache()
        s0 = self.preprocess0(resize(s0, size))
        from_s0 = []
        for k in range(self.blocks):
            edge: _Edge = self.edges[_edge_index(k, 0)]  # type: ignore[assignment]
            from_s0.append(edge.mixed(weights[_edge_index(k, 0)], s0, relu))
        total: torch.Tensor | None = None
        for move, x, beta in inputs:
            states = [s0, self.preprocess1[str(move)](x, size)]
            for k in range(self.blocks):
                node = from_s0[k]
                for j in range(1, k + 2):
                    e = _edge_index(k, j)
                    edge = self.edges[e]  # type: ignore[assignment]
                    node = node + edge.mixed(weights[e], states[j], relu)
                states.append(node)
            term = beta * torch.cat(states[2:], dim=1)
            total = term if total is None else total + term
        assert total is not None
        return total


class AutoDeepLabSupernet(nn.Module):
    """The continuous relaxation of Auto-DeepLab's hierarchical space.

    Every (layer, level) the stem can reach holds a cell whose edges mix every op with the
    softmax of the shared alphas (one cell for the whole network, as in the paper). A node
    sums the cells run on each incoming transition, weighted by the betas: Eq. (6). The
    betas are normalised over the moves *leaving* a node (finer, same, coarser; two at the
    ends), Eq. (7): ``beta^l_{s->s/2} + beta^l_{s->s} + beta^l_{s->2s} = 1``, implemented as a
    softmax, so they are the transition probabilities Viterbi decodes. The last layer has an
    ASPP head per level (one atrous rate, 96 / rate by default), and their logits are
    upsampled to the image and summed. Every batch norm uses batch statistics only (running
    averages over a changing mixture describe no architecture), and the cells' are not
    affine unless ``affine=True``, as in DARTS' search network.

    Paper: Liu et al., "Auto-DeepLab", CVPR 2019, https://arxiv.org/abs/1901.02985.

    Args:
        num_classes: Output classes.
        layers: ``L``, the number of layers after the stem (12 in the paper).
        blocks: ``B``, blocks per cell (5).
        filter_multiplier: ``F`` (8 in the search); a cell at rate ``s`` has blocks of
            ``F * s / 4`` channels and outputs ``B * F * s / 4``.
        in_channels: Image channels.
        ops: An op set name or a list of op names (DARTS' 8 ops, as in the paper).
        levels: Number of levels (4: rates 4, 8, 16, 32).
        aspp_rates: The heads' atrous rates at output stride 16, scaled to each level.
        affine: Whether the cells' batch norms learn a scale and shift.
    """

    def __init__(
        self,
        num_classes: int,
        *,
        layers: int = 12,
        blocks: int = 5,
        filter_multiplier: int = 8,
        in_channels: int = 3,
        ops: str | Sequence[str] = "darts",
        levels: int = 4,
        aspp_rates: Sequence[float] = (6,),
        affine: bool = False,
    ) -> None:
        super().__init__()
        for name, value in (("layers", layers), ("blocks", blocks), ("levels", levels),
                            ("filter_multiplier", filter_multiplier),
                            ("num_classes", num_classes)):
            if type(value) is not int or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}.")
        self.ops = get_op_set(ops if isinstance(ops, str) else list(ops))
        self.layers, self.blocks, self.levels = layers, blocks, levels
        self.filter_multiplier = filter_multiplier
        stem_mid = max(1, blocks * filter_multiplier // 2)
        self.stem = Stem(in_channels, stem_mid, blocks * filter_multiplier)
        channels = {-1: stem_mid}
        channels.update({s: blocks * block_channels(filter_multiplier, s) for s in range(levels)})
        self.nodes = nn.ModuleDict()
        for layer in range(layers):
            for level in reachable_levels(layer, levels):
                incoming = {
                    level - source: channels[source]
                    for source in reachable_levels(layer - 1, levels)
                    if abs(level - source) <= 1
                }
                self.nodes[f"{layer}_{level}"] = _Node(
                    self.ops, blocks, block_channels(filter_multiplier, level),
                    channels[self.prev_prev_level(layer, level)], incoming, affine,
                )
        self.heads = nn.ModuleList(
            ASPP(channels[s], num_classes, rates=scaled_rates(aspp_rates, level_rate(s)),
                 channels=channels[s], image_pooling=False)
            for s in reachable_levels(layers - 1, levels)
        )
        n_edges = blocks * (blocks + 3) // 2
        self.alphas = nn.Parameter(1e-3 * torch.randn(n_edges, len(self.ops)))
        self.betas = nn.Parameter(1e-3 * torch.randn(layers, levels, len(MOVES)))
        valid = torch.zeros(layers, levels, len(MOVES), dtype=torch.bool)
        for layer in range(layers):
            for source in reachable_levels(layer - 1, levels):
                for m, move in enumerate(MOVES):
                    valid[layer, source, m] = 0 <= source + move < levels
        self.register_buffer("valid_moves", valid, persistent=False)
        _no_running_stats(self)

    def prev_prev_level(self, layer: int, level: int) -> int:
        """The level of the cell's second input, ``H^{l-2}_s`` of Eq. (6).

        The same level two layers back; where the trellis has no node there yet (early
        layers), the deepest level it has, resized to this level.
        """
        available = reachable_levels(layer - 2, self.levels)
        return level if level in available else available[-1]

    def arch_parameters(self) -> list[nn.Parameter]:
        """The architecture parameters: the cell's alphas and the network's betas."""
        return [self.alphas, self.betas]

    def weight_parameters(self) -> list[nn.Parameter]:
        """Every parameter but the architecture parameters."""
        arch = {id(p) for p in self.arch_parameters()}
        return [p for p in self.parameters() if id(p) not in arch]

    def op_weights(self) -> torch.Tensor:
        """The softmax of the alphas: ``(edges, ops)``, edges block by block."""
        return torch.softmax(self.alphas, dim=-1)

    def transition_probabilities(self) -> torch.Tensor:
        """The betas normalised over each node's outgoing moves: ``(layers, levels, 3)``.

        Entry ``[l, p, m]`` is the probability of moving from level ``p`` at layer
        ``l - 1`` (the stem for ``l = 0``) by ``MOVES[m]``; moves off the trellis, and
        sources the stem cannot reach, are 0.
        """
        valid: torch.Tensor = self.valid_moves  # type: ignore[assignment]
        logits = self.betas.masked_fill(~valid, float("-inf"))
        probs = torch.softmax(logits, dim=-1)
        # A source with no valid move (unreachable) is all -inf: its softmax is NaN.
        return torch.where(valid, probs, torch.zeros_like(probs))

    def transition_matrix(self) -> torch.Tensor:
        """The transition probabilities as ``(layers, levels, levels)`` matrices for
        :func:`~optuna_nas.autodeeplab.viterbi`: entry ``[l, p, q]`` moves from ``p`` to ``q``."""
        probs = self.transition_probabilities()
        matrix = probs.new_zeros(self.layers, self.levels, self.levels)
        for m, move in enumerate(MOVES):
            for source in range(self.levels):
                if 0 <= source + move < self.levels:
                    matrix[:, source, source + move] = probs[:, source, m]
        return matrix

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Per-pixel class logits at the image's size."""
        half, quarter = self.stem(x)
        sizes = level_sizes(quarter.shape[-2:], self.levels)
        weights = self.op_weights()
        probs = self.transition_probabilities()
        older: dict[int, torch.Tensor] = {-1: half}
        previous: dict[int, torch.Tensor] = {0: quarter}
        for layer in range(self.layers):
            current: dict[int, torch.Tensor] = {}
            for level in reachable_levels(layer, self.levels):
                inputs = [
                    (level - source, previous[source],
                     probs[layer, source, MOVES.index(level - source)])
                    for source in sorted(previous)
                    if abs(level - source) <= 1
                ]
                node: _Node = self.nodes[f"{layer}_{level}"]  # type: ignore[assignment]
                current[level] = node(older[self.prev_prev_level(layer, level)], inputs,
                                      sizes[level], weights)
            older, previous = previous, current
        logits: torch.Tensor | None = None
        for level, head in zip(sorted(previous), self.heads, strict=True):
            out = resize(head(previous[level]), x.shape[-2:])
            logits = out if logits is None else logits + out
        assert logits is not None
        return logits
