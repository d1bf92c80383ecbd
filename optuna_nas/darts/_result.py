"""The outcome of a DARTS search."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from optuna_nas.darts._cost import OpCostTable
from optuna_nas.spaces._base import Architecture, SearchSpace

__all__ = ["DartsResult"]


@dataclass(frozen=True)
class DartsResult:
    """What a DARTS search found.

    Args:
        architecture: The derived architecture, of the searched space.
        space: The searched space.
        valid_accuracy: The weighted supernet's accuracy on ``data.valid`` after the last
            epoch (what DARTS reports and the trial was reported).
        derived_accuracy: The derived architecture's accuracy on ``data.valid`` with the
            supernet's shared weights (before any retraining).
        accuracy_history: ``valid_accuracy`` after each epoch.
        alpha_history: The op weights (softmax of the alphas) per cell kind, an
            ``(edges, ops)`` tensor: entry 0 at initialisation, entry ``e`` after epoch
            ``e``.
        alphas: The final alphas (logits); ``derive(space, alphas)`` gives
            ``architecture``.
        edges: The edge names of each cell kind, in the alphas' row order.
        ops: The op names, in the alphas' column order.
        order: ``"first"`` or ``"second"``.
        epochs: Epochs run.
        seconds: Wall-clock time of the search.
        cost_weight: The cost term's weight (0: plain DARTS).
        expected_cost: With a cost term, the supernet's expected normalised cost at the
            final alphas (0 to 1, see :class:`~optuna_nas.darts.OpCostTable`); else
            ``None``.
        derived_flops: FLOPs of the derived architecture's network (one image of the
            data's size, the searched width), by :func:`~optuna_nas.count_flops`.
        cost_table: The per-op cost table of a cost-aware search, else ``None``.
    """

    architecture: Architecture
    space: SearchSpace
    valid_accuracy: float
    derived_accuracy: float
    accuracy_history: list[float]
    alpha_history: list[dict[str, torch.Tensor]]
    alphas: dict[str, torch.Tensor]
    edges: dict[str, list[str]]
    ops: tuple[str, ...]
    order: str
    epochs: int
    seconds: float
    cost_weight: float = 0.0
    expected_cost: float | None = None
    derived_flops: int | None = None
    cost_table: OpCostTable | None = None

    @property
    def genotype(self) -> str:
        """The derived architecture's string (DARTS' genotype form for cell spaces)."""
        return str(self.architecture)
