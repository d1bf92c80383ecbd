"""The weight-sharing supernet: every architecture of a cell space in one set of weights."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from optuna_nas.errors import ArchitectureError
from optuna_nas.nn._nasbench201 import EDGES, ResidualReduction
from optuna_nas.nn._ops import DilConv, FactorizedReduce, ReLUConvBN, SepConv, create_op
from optuna_nas.spaces._base import Architecture, SearchSpace
from optuna_nas.spaces._darts import DartsCells
from optuna_nas.spaces._nasbench201 import NasBench201Space

__all__ = ["Supernet"]

Weights = Mapping[str, torch.Tensor]


def _relu_tail(op: nn.Module) -> nn.Module | None:
    # The part of an op after its leading ReLU: the ReLU of an input is computed once and
    # shared by every op that starts with one (the reference code recomputes it per op).
    if isinstance(op, (ReLUConvBN, DilConv)):
        return nn.Sequential(*list(op.children())[1:])
    if isinstance(op, SepConv):
        first, second = op.children()
        return nn.Sequential(*list(first.children())[1:], second)
    return None


def _no_running_stats(module: nn.Module) -> None:
    # Shared weights are evaluated with each architecture's own batch statistics: running
    # statistics mixed over architectures describe none of them.
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.track_running_stats = False
            m.running_mean = None
            m.running_var = None
            m.num_batches_tracked = None


class _Edge(nn.Module):
    """Every op of one edge, by name, with the ReLU-sharing tails kept aside."""

    tails: dict[str, nn.Module | None]

    def __init__(self, ops: Sequence[str], channels: int, stride: int, affine: bool,
                 pool_bn: bool) -> None:
        super().__init__()
        modules: dict[str, nn.Module] = {}
        for name in ops:
            op = create_op(name, channels, stride, affine)
            if pool_bn and "pool" in name:
                op = nn.Sequential(op, nn.BatchNorm2d(channels, affine=False))
            modules[name] = op
        self.ops = nn.ModuleDict(modules)
        # Plain attribute, not a submodule: the tails share the ops' parameters.
        self.__dict__["tails"] = {name: _relu_tail(op) for name, op in modules.items()}

    def run(self, name: str, x: torch.Tensor, relu: _ReluCache) -> torch.Tensor:
        tail = self.tails[name]
        if tail is not None:
            out: torch.Tensor = tail(relu(x))
            return out
        out = self.ops[name](x)
        return out

    def mixed(self, weights: torch.Tensor, x: torch.Tensor, relu: _ReluCache) -> torch.Tensor:
        total: torch.Tensor | None = None
        for k, name in enumerate(self.ops):
            if name == "none":
                continue  # w * 0: adds nothing, and its gradient w.r.t. w is 0
            term = weights[k] * self.run(name, x, relu)
            total = term if total is None else total + term
        if total is None:
            return self.ops["none"](x) * weights.sum()  # type: ignore[no-any-return]
        return total


class _ReluCache:
    """ReLU of each input tensor, computed once per forward pass."""

    def __init__(self) -> None:
        self._cache: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        hit = self._cache.get(id(x))
        if hit is not None and hit[0] is x:
            return hit[1]
        out = torch.relu(x)
        self._cache[id(x)] = (x, out)
        return out


class _NasBench201Cell(nn.Module):
    def __init__(self, ops: Sequence[str], channels: int, affine: bool) -> None:
        super().__init__()
        self.edges = nn.ModuleList(_Edge(ops, channels, 1, affine, False) for _ in EDGES)

    def forward(self, x: torch.Tensor, path: Sequence[str] | None,
                weights: torch.Tensor | None) -> torch.Tensor:
        relu = _ReluCache()
        nodes = [x]
        for j in range(1, 4):
            total: torch.Tensor | None = None
            for e, (to, frm) in enumerate(EDGES):
                if to != j:
                    continue
                edge: _Edge = self.edges[e]  # type: ignore[assignment]
                if path is not None:
                    if path[e] == "none":
                        continue  # the child network adds x * 0: nothing to compute
                    out = edge.run(path[e], nodes[frm], relu)
                else:
                    assert weights is not None
                    out = edge.mixed(weights[e], nodes[frm], relu)
                total = out if total is None else total + out
            nodes.append(total if total is not None else torch.zeros_like(x))
        return nodes[-1]


class _NasBench201Body(nn.Module):
    def __init__(self, space: NasBench201Space, *, channels: int = 16, cells_per_stage: int = 5,
                 num_classes: int = 10, in_channels: int = 3, affine: bool = False) -> None:
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
            layers.extend(_NasBench201Cell(space.ops, c, affine) for _ in range(cells_per_stage))
        self.cells = nn.ModuleList(layers)
        self.head = nn.Sequential(nn.BatchNorm2d(c), nn.ReLU(inplace=True))
        self.classifier = nn.Linear(c, num_classes)
        self.edge_names = {"cell": [f"{to}<-{frm}" for to, frm in EDGES]}

    def path(self, space: SearchSpace, arch: Architecture) -> list[str]:
        assert isinstance(space, NasBench201Space)
        return space.edge_ops(arch)

    def forward(self, x: torch.Tensor, path: Any, weights: Weights | None) -> torch.Tensor:
        x = self.stem(x)
        for cell in self.cells:
            if isinstance(cell, _NasBench201Cell):
                x = cell(x, path, None if weights is None else weights["cell"])
            else:
                x = cell(x)
        x = self.head(x)
        logits: torch.Tensor = self.classifier(torch.flatten(x.mean((2, 3), keepdim=True), 1))
        return logits

    def path_modules(self, path: Sequence[str]) -> Iterator[nn.Module]:
        yield from (self.stem, self.head, self.classifier)
        for cell in self.cells:
            if isinstance(cell, _NasBench201Cell):
                for e, name in enumerate(path):
                    edge: _Edge = cell.edges[e]  # type: ignore[assignment]
                    yield edge.ops[name]
            else:
                yield cell


_CellPath = tuple[list[tuple[str, int]], list[str], list[int]]  # ops, combines, concat


class _SuperCell(nn.Module):
    """DARTS' search cell: every op on every edge ``node <- state``; optional merges."""

    def __init__(self, space: DartsCells, c_prev_prev: int, c_prev: int, channels: int,
                 reduction: bool, reduction_prev: bool, affine: bool) -> None:
        super().__init__()
        self.reduction = reduction
        self.steps = space.steps
        self.preprocess0: nn.Module = (
            FactorizedReduce(c_prev_prev, channels, affine)
            if reduction_prev
            else ReLUConvBN(c_prev_prev, channels, 1, 1, 0, affine=affine)
        )
        self.preprocess1 = ReLUConvBN(c_prev, channels, 1, 1, 0, affine=affine)
        self.edges = nn.ModuleDict()
        for k in range(self.steps):
            for j in range(k + 2):
                stride = 2 if reduction and j < 2 else 1
                self.edges[f"n{k + 2}<-{j}"] = _Edge(space.ops, channels, stride, affine, True)
        self.merges = nn.ModuleList(
            ReLUConvBN(2 * channels, channels, 1, 1, 0, affine=affine) for _ in range(self.steps)
        ) if space.combine else None

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, path: _CellPath | None,
                weights: torch.Tensor | None) -> torch.Tensor:
        relu = _ReluCache()
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        e = 0
        for k in range(self.steps):
            node = f"n{k + 2}"
            if path is not None:
                ops, combines, _ = path
                branches = []
                for name, j in ops[2 * k : 2 * k + 2]:
                    edge: _Edge = self.edges[f"{node}<-{j}"]  # type: ignore[assignment]
                    branches.append(edge.run(name, states[j], relu))
                if combines[k] == "concat":
                    assert self.merges is not None
                    states.append(self.merges[k](torch.cat(branches, dim=1)))
                else:
                    states.append(branches[0] + branches[1])
            else:
                assert weights is not None
                total: torch.Tensor | None = None
                for j in range(k + 2):
                    edge = self.edges[f"{node}<-{j}"]  # type: ignore[assignment]
                    out = edge.mixed(weights[e], states[j], relu)
                    total = out if total is None else total + out
                    e += 1
                assert total is not None
                states.append(total)
        outputs = states[2:]
        if path is not None and len(path[2]) < self.steps:
            # NASNet concatenates only the unused blocks; the used ones' channels are zeros,
            # so the next cell's 1x1 preprocessing sees them as ENAS' sliced weights do.
            keep = set(path[2])
            outputs = [s if i + 2 in keep else torch.zeros_like(s) for i, s in enumerate(outputs)]
        return torch.cat(outputs, dim=1)


class _CellBody(nn.Module):
    def __init__(self, space: DartsCells, *, channels: int = 16, layers: int = 8,
                 num_classes: int = 10, in_channels: int = 3, stem_multiplier: int = 3,
                 affine: bool = False) -> None:
        super().__init__()
        if layers < 1 or channels < 2:
            raise ValueError(f"Need layers >= 1 and channels >= 2, got {layers}, {channels}.")
        c_stem = stem_multiplier * channels
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, c_stem, 3, padding=1, bias=False), nn.BatchNorm2d(c_stem)
        )
        c_prev_prev, c_prev, c_curr = c_stem, c_stem, channels
        reduction_prev = False
        reductions = {layers // 3, 2 * layers // 3}
        self.cells = nn.ModuleList()
        for i in range(layers):
            reduction = i in reductions
            if reduction:
                c_curr *= 2
            self.cells.append(_SuperCell(space, c_prev_prev, c_prev, c_curr, reduction,
                                         reduction_prev, affine))
            reduction_prev = reduction
            c_prev_prev, c_prev = c_prev, space.steps * c_curr
        self.classifier = nn.Linear(c_prev, num_classes)
        names = [f"n{k + 2}<-{j}" for k in range(space.steps) for j in range(k + 2)]
        self.edge_names = {"normal": names, "reduce": list(names)}

    def path(self, space: SearchSpace, arch: Architecture) -> dict[str, _CellPath]:
        assert isinstance(space, DartsCells)
        g = space.genotype(arch)
        steps = space.steps
        return {
            "normal": (g.normal, g.normal_combine or ["add"] * steps, g.normal_concat),
            "reduce": (g.reduce, g.reduce_combine or ["add"] * steps, g.reduce_concat),
        }

    def forward(self, x: torch.Tensor, path: Any, weights: Weights | None) -> torch.Tensor:
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            kind = "reduce" if cell.reduction else "normal"
            s0, s1 = s1, cell(
                s0, s1, None if path is None else path[kind],
                None if weights is None else weights[kind],
            )
        logits: torch.Tensor = self.classifier(torch.flatten(s1.mean((2, 3)), 1))
        return logits

    def path_modules(self, path: Mapping[str, _CellPath]) -> Iterator[nn.Module]:
        yield from (self.stem, self.classifier)
        for module in self.cells:
            cell: _SuperCell = module  # type: ignore[assignment]
            yield from (cell.preprocess0, cell.preprocess1)
            ops, combines, _ = path["reduce" if cell.reduction else "normal"]
            for k in range(cell.steps):
                for name, j in ops[2 * k : 2 * k + 2]:
                    edge: _Edge = cell.edges[f"n{k + 2}<-{j}"]  # type: ignore[assignment]
                    yield edge.ops[name]
                if combines[k] == "concat":
                    assert cell.merges is not None
                    yield cell.merges[k]


class Supernet(nn.Module):
    """One set of shared weights covering every architecture of a cell space.

    Every edge of every cell holds every op of the space. ``supernet(x, arch)`` runs one
    architecture and computes only the ops it uses (single path: the memory and time of one
    child network, as in the weight-sharing reference code; the ReLU of a state is computed
    once for all ops that start with one). ``supernet(x, weights=...)`` runs the continuous
    relaxation instead: each edge outputs the sum of its ops weighted by ``weights[cell][e]``
    (DARTS' mixed op; the weights are given, e.g. a softmax of architecture parameters).
    Batch norms of the cells use batch statistics only (``track_running_stats=False``) and
    are not affine by default, as in DARTS' search network; pool ops are followed by a
    non-affine batch norm in the DARTS / NASNet spaces.

    For the NASNet space (concatenating only the unused blocks, and an ``add``/``concat``
    combine per block) a cell's output always has ``steps * channels`` channels; the used
    blocks' channels are zeros, and each block has its own shared ``concat`` merge. The
    weighted mode sums a block's inputs, concatenates every block and ignores the combine.

    Papers: Li & Talwalkar, "Random Search and Reproducibility for Neural Architecture
    Search", UAI 2019, https://arxiv.org/abs/1902.07638; Pham et al., "Efficient Neural
    Architecture Search via Parameter Sharing", ICML 2018, https://arxiv.org/abs/1802.03268;
    Liu et al., "DARTS", ICLR 2019, https://arxiv.org/abs/1806.09055.

    Args:
        space: A :class:`~optuna_nas.spaces.NasBench201Space`,
            :class:`~optuna_nas.spaces.DartsCells` or :class:`~optuna_nas.spaces.NasNetCells`.
        network_options: The skeleton's options. NAS-Bench-201: ``channels`` (16),
            ``cells_per_stage`` (5), ``num_classes`` (10), ``in_channels`` (3). DARTS and
            NASNet: ``channels`` (16), ``layers`` (8), ``num_classes`` (10),
            ``in_channels`` (3), ``stem_multiplier`` (3). Both: ``affine`` (False).
    """

    def __init__(self, space: SearchSpace, **network_options: Any) -> None:
        super().__init__()
        self.space = space
        self.network_options = dict(network_options)
        try:
            if isinstance(space, NasBench201Space):
                self.body: _NasBench201Body | _CellBody = _NasBench201Body(
                    space, **network_options
                )
            elif isinstance(space, DartsCells):
                self.body = _CellBody(space, **network_options)
            else:
                raise ArchitectureError(
                    f"Supernet supports NasBench201Space, DartsCells and NasNetCells, not "
                    f"{type(space).__name__}; train architectures of that space one by one "
                    "with space.build()."
                )
        except TypeError as error:
            raise TypeError(f"Bad network option for a {space.name} supernet: {error}") from None
        _no_running_stats(self.body)
        self._paths: dict[Architecture, Any] = {}

    @property
    def edges(self) -> dict[str, list[str]]:
        """Edge names per cell kind: ``{"cell": [...]}`` or ``{"normal": ..., "reduce": ...}``.

        The weights of the weighted mode are ``(len(edges[kind]), len(ops))`` per kind.
        """
        return {k: list(v) for k, v in self.body.edge_names.items()}

    @property
    def ops(self) -> tuple[str, ...]:
        """The op names of every edge, in the order of the weights' last dimension."""
        return tuple(self.space.ops)  # type: ignore[attr-defined]

    def weight_shapes(self) -> dict[str, tuple[int, int]]:
        """The shape of the weights of each cell kind in the weighted mode."""
        return {k: (len(v), len(self.ops)) for k, v in self.body.edge_names.items()}

    def _path(self, arch: Architecture) -> Any:
        path = self._paths.get(arch)
        if path is None:
            self.space._check_space(arch)
            path = self.body.path(self.space, arch)
            if len(self._paths) > 4096:
                self._paths.clear()
            self._paths[arch] = path
        return path

    def forward(
        self, x: torch.Tensor, arch: Architecture | None = None, *, weights: Weights | None = None
    ) -> torch.Tensor:
        """Logits of one architecture (single path) or of the weighted relaxation.

        Args:
            x: A batch of images.
            arch: The architecture to run; only its ops are computed.
            weights: Instead of ``arch``: per cell kind, a ``(edges, ops)`` tensor of op
                weights (see :meth:`weight_shapes`).
        """
        if (arch is None) == (weights is None):
            raise ValueError("Give the supernet exactly one of arch or weights.")
        if weights is not None:
            shapes = self.weight_shapes()
            if set(weights) != set(shapes) or any(
                tuple(weights[k].shape) != shapes[k] for k in shapes
            ):
                got = {k: tuple(v.shape) for k, v in weights.items()}
                raise ValueError(f"Weights must have the shapes {shapes}, got {got}.")
            out: torch.Tensor = self.body(x, None, weights)
            return out
        assert arch is not None
        out = self.body(x, self._path(arch), None)
        return out

    def path_parameters(self, arch: Architecture) -> Iterator[nn.Parameter]:
        """The parameters that a forward pass of ``arch`` uses (each once)."""
        seen: set[int] = set()
        for module in self.body.path_modules(self._path(arch)):
            for p in module.parameters():
                if id(p) not in seen:
                    seen.add(id(p))
                    yield p
