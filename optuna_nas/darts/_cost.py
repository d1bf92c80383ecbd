"""The cost term of a cost-aware DARTS search: per-op cost tables and their expectation.

FBNet and ProxylessNAS add the expected cost of the network to the architecture's loss:
each mixed op's expected cost is ``sum(softmax(alpha) * cost(op))``, a differentiable
function of the alphas, and the sum over every mixed op of the supernet, times a weight,
is added to the validation loss. This module builds the per-op cost table of a supernet
(FLOPs or latency measured on the actual shape of every edge, or a given cost per op),
normalises it, and evaluates the expected cost.

Papers: Wu et al., "FBNet: Hardware-Aware Efficient ConvNet Design via Differentiable
Neural Architecture Search", CVPR 2019, https://arxiv.org/abs/1812.03443; Cai et al.,
"ProxylessNAS: Direct Neural Architecture Search on Target Task and Hardware", ICLR 2019,
https://arxiv.org/abs/1812.00332.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from optuna_nas.darts._derive import alpha_shapes
from optuna_nas.errors import ArchitectureError
from optuna_nas.nn._ops import canonical_op_name, create_op
from optuna_nas.spaces._base import Architecture, SearchSpace
from optuna_nas.spaces._darts import DartsCells
from optuna_nas.spaces._nasbench201 import NasBench201Space
from optuna_nas.training import count_flops, measure_latency

__all__ = [
    "COST_MEASURES",
    "OpCostTable",
    "architecture_flops",
    "check_cost_weight",
    "check_op_costs",
    "check_table",
    "edge_shapes",
    "op_cost_table",
]

#: The measured cost tables: FLOPs (device-independent) or latency on the search's device.
COST_MEASURES = ("flops", "latency")

#: Seconds of timed passes per distinct (op, shape) when measuring a latency table.
LATENCY_RUN_TIME = 0.05

OpCosts = str | Mapping[str, float]
#: One instance of an edge: (channels, stride, height, width) of its input.
EdgeShape = tuple[int, int, int, int]


def check_cost_weight(cost_weight: object) -> float:
    """``cost_weight`` as a float, or a clear error if it is not a finite number >= 0.

    Args:
        cost_weight: The weight of the expected cost in the architecture's loss.

    Raises:
        ValueError: It is negative, NaN, infinite or not a number.
    """
    ok = (isinstance(cost_weight, (int, float)) and not isinstance(cost_weight, bool)
          and math.isfinite(cost_weight) and cost_weight >= 0)
    if not ok:
        raise ValueError(
            f"cost_weight must be a non-negative finite number (0 turns the cost term off), "
            f"got {cost_weight!r}."
        )
    return float(cost_weight)  # type: ignore[arg-type]


@dataclass(frozen=True)
class OpCostTable:
    """The cost of every op on every edge of a DARTS supernet, normalised.

    ``raw[kind][e, o]`` is the cost of op ``o`` on edge ``e`` of the cell kind, summed over
    every cell of that kind in the supernet (the alphas of an edge are shared by all its
    cells), in ``unit``. ``scale`` is the sum over every edge of its most expensive op's
    raw cost: the cost of the most expensive choice on every mixed op. ``table = raw /
    scale`` is what the search uses, so the expected cost lies in [0, 1] whatever the
    units and the size of the network, and ``cost_weight`` means the same for FLOPs,
    latency and a given mapping: the loss of making every mixed op its most expensive op.

    Args:
        measure: ``"flops"``, ``"latency"`` or ``"mapping"`` (costs given per op name).
        raw: Per cell kind an ``(edges, ops)`` float64 tensor of costs in ``unit``.
        table: ``raw / scale``.
        scale: The normaliser, in ``unit``.
        unit: ``"FLOPs"``, ``"s"`` or ``"cost"``.
        ops: The op names, in the tables' column order.
        device: Where a latency table was measured (``None`` for the others).
    """

    measure: str
    raw: dict[str, torch.Tensor]
    table: dict[str, torch.Tensor]
    scale: float
    unit: str
    ops: tuple[str, ...]
    device: str | None = None

    def expected(self, weights: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """The expected normalised cost of op weights: ``sum(weights * table)`` over every
        edge and cell kind (differentiable in ``weights``).

        Args:
            weights: Per cell kind, the ``(edges, ops)`` op weights (softmax of the alphas).
        """
        total: torch.Tensor | None = None
        for kind, table in self.table.items():
            w = weights[kind]
            term = (w * table.to(w.device, w.dtype)).sum()
            total = term if total is None else total + term
        assert total is not None
        return total

    def arch_cost(self, space: SearchSpace, arch: Architecture) -> float:
        """The normalised cost of one architecture: its op on each kept edge.

        In the DARTS / NASNet cells only the two kept inputs of each block count, so it is
        at most the cost of the most expensive derivable cell, below 1.

        Args:
            space: The searched space.
            arch: An architecture of it.
        """
        index = {op: k for k, op in enumerate(self.ops)}
        total = 0.0
        if isinstance(space, NasBench201Space):
            for e, op in enumerate(space.edge_ops(arch)):
                total += float(self.table["cell"][e, index[op]])
            return total
        assert isinstance(space, DartsCells)
        g = space.genotype(arch)
        for kind, cell in (("normal", g.normal), ("reduce", g.reduce)):
            start = 0
            for k in range(space.steps):
                for op, j in cell[2 * k : 2 * k + 2]:
                    total += float(self.table[kind][start + j, index[op]])
                start += k + 2
        return total


def _halve(n: int) -> int:
    # The output size of every stride-2 op of the spaces (k x k with padding k // 2, the
    # 1x1 stride-2 convolutions of FactorizedReduce, Zero's [::2]).
    return (n - 1) // 2 + 1


def edge_shapes(
    space: SearchSpace, options: Mapping[str, Any], image_size: tuple[int, int]
) -> dict[str, list[list[EdgeShape]]]:
    """The input shape of every instance of every edge of a DARTS supernet.

    Args:
        space: A :class:`~optuna_nas.spaces.NasBench201Space`,
            :class:`~optuna_nas.spaces.DartsCells` or :class:`~optuna_nas.spaces.NasNetCells`.
        options: The supernet's ``channels`` and ``cells_per_stage`` (NAS-Bench-201) or
            ``layers`` (DARTS / NASNet cells).
        image_size: The input images' ``(height, width)``.

    Returns:
        Per cell kind and edge (in the alphas' row order), one ``(channels, stride, height,
        width)`` per cell of that kind, in network order.
    """
    shapes = alpha_shapes(space)
    found: dict[str, list[list[EdgeShape]]] = {
        kind: [[] for _ in range(edges)] for kind, (edges, _) in shapes.items()
    }
    h, w = image_size
    c = int(options["channels"])
    if isinstance(space, NasBench201Space):
        for stage in range(3):
            if stage > 0:  # the residual reduction: stride-2 3x3, channels doubled
                c, h, w = 2 * c, _halve(h), _halve(w)
            for _ in range(int(options["cells_per_stage"])):
                for instances in found["cell"]:
                    instances.append((c, 1, h, w))
        return found
    assert isinstance(space, DartsCells)
    layers = int(options["layers"])
    reductions = {layers // 3, 2 * layers // 3}
    for i in range(layers):
        reduction = i in reductions
        kind = "reduce" if reduction else "normal"
        if reduction:
            c *= 2
        out_h, out_w = (_halve(h), _halve(w)) if reduction else (h, w)
        e = 0
        for k in range(space.steps):
            for j in range(k + 2):
                # Both cell inputs are preprocessed to the previous cell's output size; in a
                # reduction cell their edges have stride 2, the blocks' edges stride 1.
                if reduction and j < 2:
                    found[kind][e].append((c, 2, h, w))
                else:
                    found[kind][e].append((c, 1, out_h, out_w))
                e += 1
        h, w = out_h, out_w
    return found


def _mapping_costs(space: SearchSpace, op_costs: Mapping[str, float]) -> dict[str, float]:
    ops: tuple[str, ...] = space.ops  # type: ignore[attr-defined]
    costs: dict[str, float] = {}
    unknown: list[str] = []
    for name, value in op_costs.items():
        key = canonical_op_name(name) if isinstance(name, str) else name
        if key not in ops:
            unknown.append(repr(name))
            continue
        if key in costs:
            raise ValueError(
                f"op_costs gives {key!r} twice (under an alias too); give each op once."
            )
        ok = (isinstance(value, (int, float)) and not isinstance(value, bool)
              and math.isfinite(value) and value >= 0)
        if not ok:
            raise ValueError(
                f"op_costs[{name!r}] must be a non-negative finite number, got {value!r}; "
                "give each op's cost, 0 for a free op such as 'none'."
            )
        costs[key] = float(value)
    if unknown:
        raise ValueError(
            f"op_costs names op(s) {', '.join(unknown)} that the {space.name} space does not "
            f"have; its ops are {list(ops)}. Fix the names or leave those entries out."
        )
    missing = [op for op in ops if op not in costs]
    if missing:
        raise ValueError(
            f"op_costs has no cost for op(s) {missing} of the {space.name} space; give a cost "
            f"for every one of {list(ops)} (0 for a free op such as 'none')."
        )
    return costs


def check_op_costs(space: SearchSpace, op_costs: object) -> None:
    """Reject a bad ``op_costs`` before anything is measured.

    Args:
        space: The searched space.
        op_costs: ``"flops"``, ``"latency"``, a mapping from op name to cost, or an
            :class:`OpCostTable` of this space's supernet.

    Raises:
        ValueError: An unknown measure, or a mapping that misses, adds or misprices ops.
        TypeError: Anything else.
    """
    if isinstance(op_costs, str):
        if op_costs not in COST_MEASURES:
            raise ValueError(
                f"op_costs must be 'flops', 'latency' or a mapping from op name to cost, got "
                f"{op_costs!r}."
            )
    elif isinstance(op_costs, Mapping):
        _mapping_costs(space, op_costs)
    elif not isinstance(op_costs, OpCostTable):
        raise TypeError(
            f"op_costs must be 'flops', 'latency', a mapping from op name to cost or an "
            f"OpCostTable, got {type(op_costs).__name__}."
        )


def _op_module(name: str, shape: EdgeShape) -> nn.Module:
    c, stride, _, _ = shape
    # Built from a forked generator: measuring the costs leaves the caller's RNG alone.
    with torch.random.fork_rng(devices=[]):
        return create_op(name, c, stride)


def _measure(
    measure: str, name: str, shape: EdgeShape, device: torch.device, run_time: float
) -> float:
    if name == "none":
        return 0.0  # nothing is computed: the supernet and the derived cell skip it
    module = _op_module(name, shape)
    c, _, h, w = shape
    if measure == "flops":
        return float(count_flops(module, (c, h, w)))
    if isinstance(module, nn.Identity):
        return 0.0  # a stride-1 skip connection computes nothing
    return measure_latency(module, (c, h, w), device=device, warmup=2, min_run_time=run_time)


def op_cost_table(
    space: SearchSpace,
    op_costs: OpCosts = "flops",
    *,
    channels: int = 16,
    layers: int | None = None,
    cells_per_stage: int | None = None,
    image_size: int | tuple[int, int] = 32,
    device: str | torch.device = "cpu",
    latency_run_time: float = LATENCY_RUN_TIME,
) -> OpCostTable:
    """The normalised per-op cost table of a DARTS supernet.

    * ``"flops"``: every op of the space is built at the channels, stride and input
      resolution of every edge of the supernet (each distinct shape once) and its FLOPs
      counted with :func:`~optuna_nas.count_flops` (one image; a multiply-add counts two;
      PyTorch's counter counts convolutions and matrix products, so ``none``, a stride-1
      ``skip_connect`` and the pools cost 0).
    * ``"latency"``: the same ops timed with :func:`~optuna_nas.measure_latency` on
      ``device`` (batch 1, one CPU thread on the CPU, ``latency_run_time`` seconds of
      timed passes per distinct shape); ``none`` and a stride-1 ``skip_connect`` cost 0.
    * a mapping ``{op name: cost}``: that cost on every edge of every cell, whatever its
      shape; every op of the space needs a non-negative finite cost.

    The costs of an edge are summed over the cells that share its alphas and normalised
    by the most expensive choice on every mixed op (see :class:`OpCostTable`).

    Papers: Wu et al., "FBNet", CVPR 2019, https://arxiv.org/abs/1812.03443; Cai et al.,
    "ProxylessNAS", ICLR 2019, https://arxiv.org/abs/1812.00332.

    Args:
        space: A :class:`~optuna_nas.spaces.NasBench201Space`,
            :class:`~optuna_nas.spaces.DartsCells` or :class:`~optuna_nas.spaces.NasNetCells`.
        op_costs: ``"flops"``, ``"latency"`` or a mapping from op name to cost.
        channels: Channels of the first cells (C), as in :class:`DartsSearch`.
        layers: Cells of a DARTS / NASNet supernet (8).
        cells_per_stage: Cells per stage of a NAS-Bench-201 supernet (5).
        image_size: The input images' side, or ``(height, width)``.
        device: Where a latency table is measured.
        latency_run_time: Seconds of timed passes per distinct (op, shape) for latency.

    Returns:
        The table.

    Raises:
        ValueError: A bad ``op_costs`` (named in the message), or every op costs 0, so the
            cost term would be constant.
    """
    check_op_costs(space, op_costs)
    if isinstance(op_costs, OpCostTable):
        raise TypeError("op_costs is already an OpCostTable; pass it to DartsSearch as it is.")
    options: dict[str, Any] = {"channels": channels}
    if isinstance(space, NasBench201Space):
        options["cells_per_stage"] = 5 if cells_per_stage is None else cells_per_stage
    else:
        options["layers"] = 8 if layers is None else layers
    size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    if len(size) != 2 or not all(isinstance(s, int) and s >= 1 for s in size):
        raise ValueError(f"image_size must be a positive side or (height, width), got "
                         f"{image_size!r}.")
    shapes = edge_shapes(space, options, (size[0], size[1]))
    ops: tuple[str, ...] = space.ops  # type: ignore[attr-defined]
    dev = torch.device(device)
    if isinstance(op_costs, str):
        cache: dict[tuple[str, EdgeShape], float] = {}

        def cost(name: str, shape: EdgeShape) -> float:
            key = (name, shape)
            if key not in cache:
                cache[key] = _measure(op_costs, name, shape, dev, latency_run_time)
            return cache[key]

        measure, unit = op_costs, ("FLOPs" if op_costs == "flops" else "s")
    else:
        given = _mapping_costs(space, op_costs)

        def cost(name: str, shape: EdgeShape) -> float:
            return given[name]

        measure, unit = "mapping", "cost"
    raw = {
        kind: torch.tensor([[sum(cost(op, s) for s in instances) for op in ops]
                            for instances in edges], dtype=torch.float64)
        for kind, edges in shapes.items()
    }
    scale = float(sum(float(t.max(dim=1).values.sum()) for t in raw.values()))
    if not scale > 0:
        what = "in op_costs" if measure == "mapping" else f"in {measure}"
        raise ValueError(
            f"Every op of the {space.name} space ({list(ops)}) costs 0 {what}, so the cost "
            "term would be constant; give the expensive ops positive costs (a mapping) or "
            "use cost_weight=0."
        )
    return OpCostTable(
        measure=measure,
        raw=raw,
        table={kind: t / scale for kind, t in raw.items()},
        scale=scale,
        unit=unit,
        ops=ops,
        device=str(dev) if measure == "latency" else None,
    )


def check_table(space: SearchSpace, table: OpCostTable) -> None:
    """Reject an :class:`OpCostTable` made for another space or supernet shape.

    Raises:
        ValueError: Its ops or its shapes are not those of ``space``'s alphas.
    """
    shapes = alpha_shapes(space)
    got = {kind: tuple(t.shape) for kind, t in table.table.items()}
    ops: tuple[str, ...] = space.ops  # type: ignore[attr-defined]
    if got != shapes or table.ops != ops:
        raise ValueError(
            f"The OpCostTable has shapes {got} and ops {list(table.ops)}, but this "
            f"{space.name} space has {shapes} and {list(ops)}; build it with "
            "op_cost_table(space, ...) for this space."
        )


def architecture_flops(
    space: SearchSpace,
    arch: Architecture,
    *,
    image_size: int | tuple[int, int],
    **network_options: Any,
) -> int:
    """FLOPs of one forward pass of an architecture's network on one image.

    The network is ``space.build(arch, **network_options)``, built from a forked generator
    (the caller's RNG is left alone), counted with :func:`~optuna_nas.count_flops` on the
    CPU.

    Args:
        space: The space of ``arch``.
        arch: An architecture.
        image_size: The images' side, or ``(height, width)``.
        network_options: ``space.build``'s options, e.g. ``channels``, ``in_channels``.

    Raises:
        ArchitectureError: ``arch`` is not of ``space``.
    """
    space._check_space(arch)
    h, w = (image_size, image_size) if isinstance(image_size, int) else image_size
    with torch.random.fork_rng(devices=[]):
        model = space.build(arch, **network_options)
    in_channels = int(network_options.get("in_channels", 3))
    try:
        return count_flops(model, (in_channels, h, w))
    except RuntimeError as error:  # e.g. an image too small for the network
        raise ArchitectureError(f"Could not count the FLOPs of {arch}: {error}") from None
