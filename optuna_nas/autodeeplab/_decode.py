"""From architecture parameters to an architecture: the cell as in DARTS, the path by Viterbi."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from optuna_nas.autodeeplab._space import AutoDeepLabSpace
from optuna_nas.autodeeplab._viterbi import viterbi
from optuna_nas.spaces._base import Architecture

__all__ = ["decode", "derive_cell"]


def derive_cell(weights: torch.Tensor, ops: Sequence[str], blocks: int) -> list[tuple[str, int]]:
    """DARTS' discretisation of a cell's op weights.

    Each block keeps the two input states whose strongest op other than ``none`` weighs
    most, and on each of them the op of largest weight other than ``none``.

    Paper: Liu et al., "DARTS: Differentiable Architecture Search", ICLR 2019,
    https://arxiv.org/abs/1806.09055 (Sec. 2.4).

    Args:
        weights: ``(edges, ops)`` op weights (e.g. the softmax of the alphas), edges block
            by block and, within a block, by input state (``B * (B + 3) / 2`` edges).
        ops: The op names, in the order of the weights' last dimension.
        blocks: Blocks per cell.

    Returns:
        Two ``(op, input)`` pairs per block, each block's ordered by input.
    """
    n_edges = blocks * (blocks + 3) // 2
    if tuple(weights.shape) != (n_edges, len(ops)):
        raise ValueError(
            f"weights must have the shape ({n_edges}, {len(ops)}) for {blocks} blocks and "
            f"{len(ops)} ops, got {tuple(weights.shape)}."
        )
    keep = [k for k, name in enumerate(ops) if name != "none"]
    if not keep:
        raise ValueError("The op set has no op but 'none'; there is nothing to derive.")
    w = weights.detach().cpu().double()[:, keep]
    cell: list[tuple[str, int]] = []
    start = 0
    for k in range(blocks):
        block = w[start : start + k + 2]
        strongest = block.max(dim=1).values
        # Stable order on ties: the lower input state first.
        inputs = sorted(range(k + 2), key=lambda j: (-float(strongest[j]), j))[:2]
        for j in sorted(inputs):
            cell.append((ops[keep[int(block[j].argmax())]], j))
        start += k + 2
    return cell


def decode(
    space: AutoDeepLabSpace, op_weights: torch.Tensor, transition_matrix: torch.Tensor
) -> Architecture:
    """Auto-DeepLab's decoding: the cell as in DARTS, the path of maximum probability.

    Paper: Liu et al., "Auto-DeepLab", CVPR 2019, https://arxiv.org/abs/1901.02985
    (Sec. 4.2).

    Args:
        space: The space the architecture belongs to.
        op_weights: ``(edges, ops)``: the softmax of the alphas.
        transition_matrix: ``(layers, levels, levels)`` transition probabilities (the
            normalised betas).
    """
    cell = derive_cell(op_weights, space.ops, space.blocks)
    return space.make(viterbi(transition_matrix), cell)
