"""DARTS' derivation rules: from architecture parameters to a discrete architecture."""

from __future__ import annotations

from collections.abc import Mapping

import torch

from optuna_nas.errors import ArchitectureError
from optuna_nas.nn._nasbench201 import EDGES
from optuna_nas.spaces._base import Architecture, Choice, SearchSpace
from optuna_nas.spaces._darts import CELL_TYPES, DartsCells
from optuna_nas.spaces._nasbench201 import NasBench201Space

__all__ = ["alpha_shapes", "derive"]


def alpha_shapes(space: SearchSpace) -> dict[str, tuple[int, int]]:
    """The ``(edges, ops)`` shape of the architecture parameters of each cell kind.

    The same shapes as :meth:`optuna_nas.supernet.Supernet.weight_shapes`, without building
    a network: ``{"cell": (6, 5)}`` for NAS-Bench-201, ``{"normal": (E, O), "reduce": (E,
    O)}`` for DARTS / NASNet cells, where block ``k`` has an edge from each of the ``k + 2``
    states before it.

    Args:
        space: A :class:`~optuna_nas.spaces.NasBench201Space`,
            :class:`~optuna_nas.spaces.DartsCells` or :class:`~optuna_nas.spaces.NasNetCells`.

    Raises:
        ArchitectureError: The space is none of these.
    """
    if isinstance(space, NasBench201Space):
        return {"cell": (len(EDGES), len(space.ops))}
    if isinstance(space, DartsCells):
        edges = sum(k + 2 for k in range(space.steps))
        return {kind: (edges, len(space.ops)) for kind in CELL_TYPES}
    raise ArchitectureError(
        f"DARTS searches NasBench201Space, DartsCells and NasNetCells, not "
        f"{type(space).__name__}; search that space with a sampler (space.suggest) instead."
    )


def derive(
    space: SearchSpace,
    alphas: Mapping[str, torch.Tensor],
    *,
    allow_none: bool | None = None,
) -> Architecture:
    """The discrete architecture that DARTS derives from its architecture parameters.

    Each edge's op weights are the softmax of its parameters, as in DARTS' code.

    * DARTS / NASNet cells: each block keeps its two strongest predecessors, ranked by
      their strongest op other than ``none``, and on each of them that op (DARTS'
      ``genotype()``). In the NASNet space (a combine per block, the unused blocks
      concatenated) every block gets ``combine="add"``, the combine that the weighted
      supernet sums with; the concatenated blocks follow from the inputs, as the space
      defines them.
    * NAS-Bench-201: the strongest op on every edge, ``none`` included, as xautodl's DARTS
      derives it (``allow_none=False`` excludes it).

    Ties go to the earlier op and the earlier predecessor.

    Paper: Liu et al., "DARTS: Differentiable Architecture Search", ICLR 2019,
    https://arxiv.org/abs/1806.09055.

    Args:
        space: The searched space.
        alphas: The architecture parameters (logits), per cell kind an ``(edges, ops)``
            tensor (see :func:`alpha_shapes`); e.g. ``DartsSearch.alphas``. Op weights
            already softmaxed work as ``torch.log(weights)``.
        allow_none: Whether ``none`` can be derived. By default it can in NAS-Bench-201 and
            cannot in the DARTS / NASNet cells.

    Returns:
        An architecture of ``space``.

    Raises:
        ArchitectureError: The space is not searched by DARTS, the alphas do not fit it, or
            no op other than ``none`` is left to choose.
    """
    shapes = alpha_shapes(space)
    got = {kind: tuple(a.shape) for kind, a in alphas.items()}
    if got != shapes:
        raise ArchitectureError(
            f"The alphas must have the shapes {shapes} for this {space.name} space (edges, "
            f"ops), got {got}; were they searched in another space?"
        )
    ops: tuple[str, ...] = space.ops  # type: ignore[attr-defined]
    if allow_none is None:
        allow_none = isinstance(space, NasBench201Space)
    allowed = [k for k, op in enumerate(ops) if allow_none or op != "none"]
    if not allowed:
        raise ArchitectureError(
            f"The space's only op is 'none'; nothing can be derived from ops {list(ops)}."
        )
    weights = {
        kind: torch.softmax(a.detach().to("cpu", torch.float64), dim=-1)[:, allowed]
        for kind, a in alphas.items()
    }
    if any(not bool(torch.isfinite(w).all()) for w in weights.values()):
        raise ArchitectureError(
            "The alphas hold NaN or infinite values; the search diverged (lower arch_lr or "
            "weight_lr)."
        )
    names = [ops[k] for k in allowed]
    if isinstance(space, NasBench201Space):
        strongest = weights["cell"].argmax(dim=1).tolist()
        values: dict[str, Choice] = {
            f"{to}<-{frm}": names[b] for (to, frm), b in zip(EDGES, strongest, strict=True)
        }
        return space.from_values(values)
    assert isinstance(space, DartsCells)
    values = {}
    for kind in CELL_TYPES:
        strength, best = weights[kind].max(dim=1)
        start = 0
        for k in range(space.steps):
            node = f"{kind}/n{k + 2}"
            states = range(k + 2)
            # Stable sort: among equally strong predecessors the earlier one wins.
            top = sorted(states, key=lambda j: -float(strength[start + j]))[:2]
            chosen = [(names[int(best[start + j])], j) for j in sorted(top)]
            (op1, i), (op2, j) = chosen
            if space.distinct_inputs:
                values[f"{node}/inputs"] = f"{i},{j}"
            else:
                values[f"{node}/in1"], values[f"{node}/in2"] = i, j
            values[f"{node}/op1"], values[f"{node}/op2"] = op1, op2
            if space.combine:
                values[f"{node}/combine"] = "add"
            start += k + 2
    return space.from_values(values)
