"""Architecture pictures for optuna-dashboard.

:func:`draw_architecture` renders an architecture as a small PNG: a NAS-Bench-201 cell or a
pair of DARTS / NASNet cells as a graph with the ops on its edges, and any other space as a
table of its decisions. :func:`log_architecture` stores that picture as an artifact of a
running trial, so that optuna-dashboard shows it on the trial's page::

    store = optuna.artifacts.FileSystemArtifactStore("artifacts")

    def objective(trial: optuna.Trial) -> float:
        arch = space.suggest(trial)
        log_architecture(trial, space, arch, artifact_store=store)
        ...

    # optuna-dashboard sqlite:///db.sqlite3 --artifact-dir artifacts

:func:`draw_alpha_history` and :func:`log_alpha_history` do the same for DARTS' op weights
over the epochs of a search. :func:`make_dashboard_server` serves optuna-dashboard for a
storage, on localhost unless told otherwise (``optuna-nas dashboard``).
"""

from __future__ import annotations

import io
import math
import os
import tempfile
import wsgiref.simple_server
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import optuna
import torch
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg, RendererAgg
from matplotlib.figure import Figure
from matplotlib.patches import Circle, FancyArrowPatch, Rectangle
from matplotlib.path import Path
from matplotlib.transforms import Bbox

from optuna_nas.spaces._base import Architecture, SearchSpace
from optuna_nas.spaces._darts import DartsCells
from optuna_nas.spaces._nasbench201 import NasBench201Space

if TYPE_CHECKING:
    from optuna.artifacts._protocol import ArtifactStore

__all__ = [
    "draw_alpha_history",
    "draw_architecture",
    "log_alpha_history",
    "log_architecture",
    "make_dashboard_server",
]

_DPI = 100

#: Edge colour of each known op: one hue per family, darker for larger kernels.
_OP_COLOURS: dict[str, str] = {
    "none": "#9e9e9e",
    "skip_connect": "#2b6cb0",
    "avg_pool_3x3": "#2f855a",
    "max_pool_3x3": "#dd6b20",
    "max_pool_5x5": "#b7541a",
    "max_pool_7x7": "#8a3c12",
    "sep_conv_3x3": "#c53030",
    "sep_conv_5x5": "#9b2c2c",
    "sep_conv_7x7": "#742a2a",
    "dil_conv_3x3": "#6b46c1",
    "dil_conv_5x5": "#44337a",
    "conv_1x1": "#8d6e63",
    "nor_conv_1x1": "#8d6e63",
    "conv_3x3": "#b83280",
    "nor_conv_3x3": "#b83280",
    "conv_1x3_3x1": "#0987a0",
    "conv_1x7_7x1": "#086f83",
}
#: Colours of ops outside the table above, chosen by a stable hash of the op name.
_EXTRA_COLOURS = ("#2c7a7b", "#975a16", "#553c9a", "#97266d", "#276749", "#2a4365")

_INPUT_FILL = "#cfe8fc"
_BLOCK_FILL = "#f4f4f4"
_OUTPUT_FILL = "#ffd98e"
_INK = "#263238"
_MUTED = "#616161"


def draw_architecture(
    space: SearchSpace,
    arch: Architecture,
    path: str | os.PathLike[str] | None = None,
) -> bytes:
    """Draw an architecture as a small PNG picture.

    A :class:`~optuna_nas.spaces.NasBench201Space` architecture is drawn as its cell: nodes
    0 to 3 with the op of each of the six edges on the edge (``none`` edges dashed and
    grey). A :class:`~optuna_nas.spaces.DartsCells` or
    :class:`~optuna_nas.spaces.NasNetCells` architecture is drawn as its normal and
    reduction cells side by side: the inputs ``c_{k-2}`` and ``c_{k-1}``, the blocks with
    the ops of their two inputs on the edges (and each block's combine where the space
    chooses it), and the output ``c_{k}`` fed by the concatenated blocks. Any other space
    is drawn as a table of its decisions and their values. Edges are coloured by op with a
    fixed palette, so one op has one colour in every picture.

    Args:
        space: The search space of the architecture.
        arch: An architecture of ``space``.
        path: Where to also write the picture, if given.

    Returns:
        The picture, PNG-encoded.

    Raises:
        ArchitectureError: ``arch`` is not an architecture of ``space``.
    """
    space._check_space(arch)
    fig = Figure(dpi=_DPI, facecolor="white")
    FigureCanvasAgg(fig)
    if isinstance(space, NasBench201Space):
        _draw_nasbench201(fig, space, arch)
    elif isinstance(space, DartsCells):
        _draw_darts(fig, space, arch)
    else:
        _draw_table(fig, space, arch)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=_DPI, facecolor="white", metadata={"Software": None})
    picture = buffer.getvalue()
    if path is not None:
        with open(path, "wb") as file:
            file.write(picture)
    return picture


def log_architecture(
    trial: optuna.Trial,
    space: SearchSpace,
    arch: Architecture,
    *,
    artifact_store: ArtifactStore,
) -> str:
    """Record an architecture on a running trial, with its picture for optuna-dashboard.

    Sets the trial's user attrs ``arch`` (the architecture's string form) and
    ``arch_space`` (the space's name), and uploads :func:`draw_architecture`'s picture as
    an ``image/png`` artifact of the trial. optuna-dashboard, started with the same artifact
    store (e.g. ``optuna-dashboard sqlite:///db.sqlite3 --artifact-dir DIR`` for a
    :class:`~optuna.artifacts.FileSystemArtifactStore` on ``DIR``), shows the picture on
    the trial's page.

    Args:
        trial: The running trial, e.g. the one ``study.optimize`` passes to the objective.
        space: The search space of the architecture.
        arch: An architecture of ``space``, e.g. ``space.suggest(trial)``.
        artifact_store: The artifact store to upload the picture to.

    Returns:
        The artifact id of the picture.

    Raises:
        ArchitectureError: ``arch`` is not an architecture of ``space``.
    """
    picture = draw_architecture(space, arch)
    trial.set_user_attr("arch", str(arch))
    trial.set_user_attr("arch_space", space.name)
    return _upload_png(trial, picture, f"architecture-trial-{trial.number}.png", artifact_store)


def draw_alpha_history(
    history: Sequence[Mapping[str, torch.Tensor | npt.NDArray[np.floating[Any]]]],
    edges: Mapping[str, Sequence[str]],
    ops: Sequence[str],
    path: str | os.PathLike[str] | None = None,
) -> bytes:
    """Draw DARTS' op weights over the epochs as a small PNG picture.

    One small panel per edge of each cell kind, titled ``kind edge``, with one line per op
    (the op's weight after each epoch, epoch 0 being the initialisation), coloured with the
    same fixed palette as the architecture pictures. The panels share one y axis, so edges
    compare at a glance; ``none`` is dashed.

    Paper: Liu et al., "DARTS: Differentiable Architecture Search", ICLR 2019,
    https://arxiv.org/abs/1806.09055.

    Args:
        history: Per epoch, per cell kind, an ``(edges, ops)`` array of op weights, e.g.
            ``DartsResult.alpha_history``.
        edges: The edge names of each cell kind, in row order.
        ops: The op names, in column order.
        path: Where to also write the picture, if given.

    Returns:
        The picture, PNG-encoded.

    Raises:
        ValueError: The history is empty or its arrays do not fit ``edges`` and ``ops``.
    """
    if not history:
        raise ValueError("The alpha history is empty; record at least the initial weights.")
    series: dict[str, npt.NDArray[np.float64]] = {}
    for kind, names in edges.items():
        shape = (len(names), len(ops))
        arrays = []
        for entry in history:
            value = entry.get(kind)
            array = None
            if isinstance(value, torch.Tensor):
                array = value.detach().to("cpu", torch.float64).numpy()
            elif value is not None:
                array = np.asarray(value, dtype=np.float64)
            if array is None or array.shape != shape:
                raise ValueError(
                    f"Each alpha-history entry needs a {shape} array for cell kind {kind!r} "
                    f"({len(names)} edges, {len(ops)} ops), got "
                    f"{None if array is None else array.shape}."
                )
            arrays.append(array)
        series[kind] = np.stack(arrays)  # (epochs + 1, edges, ops)
    panels = [(kind, e, name) for kind, names in edges.items() for e, name in enumerate(names)]
    columns = min(len(panels), 7)
    rows = math.ceil(len(panels) / columns)
    fig = Figure(figsize=(1.45 * columns + 0.4, 1.4 * rows + 1.0), dpi=_DPI, facecolor="white")
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(rows, columns, left=0.06, right=0.99, bottom=0.16 / rows + 0.1,
                            top=1 - 0.35 / (rows + 0.7), hspace=0.55, wspace=0.12)
    low = min(float(s.min()) for s in series.values())
    high = max(float(s.max()) for s in series.values())
    margin = 0.05 * (high - low) or 0.01
    epochs = np.arange(len(history))
    axes = None
    for index, (kind, e, name) in enumerate(panels):
        ax = fig.add_subplot(grid[index // columns, index % columns], sharey=axes)
        axes = axes or ax
        for k, op in enumerate(ops):
            ax.plot(epochs, series[kind][:, e, k], color=_op_colour(op), lw=1.3,
                    linestyle="--" if op == "none" else "-", label=op)
        ax.set_title(f"{kind} {name}", fontsize=7, color=_INK, pad=2)
        ax.set_ylim(low - margin, high + margin)
        ax.tick_params(labelsize=6, length=2, pad=1)
        if index % columns:
            ax.tick_params(labelleft=False)
        if len(history) > 1:
            ax.set_xlim(0, len(history) - 1)
    handles, labels = fig.axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(ops), 8), fontsize=7,
               frameon=False)
    fig.suptitle("op weights (softmax of alphas) by epoch", x=0.01, ha="left", fontsize=10,
                 weight="bold", color=_INK)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=_DPI, facecolor="white", metadata={"Software": None})
    picture = buffer.getvalue()
    if path is not None:
        with open(path, "wb") as file:
            file.write(picture)
    return picture


def log_alpha_history(
    trial: optuna.Trial,
    history: Sequence[Mapping[str, torch.Tensor | npt.NDArray[np.floating[Any]]]],
    edges: Mapping[str, Sequence[str]],
    ops: Sequence[str],
    *,
    artifact_store: ArtifactStore,
) -> str:
    """Upload :func:`draw_alpha_history`'s picture as an ``image/png`` artifact of a trial.

    Paper: Liu et al., "DARTS: Differentiable Architecture Search", ICLR 2019,
    https://arxiv.org/abs/1806.09055.

    Args:
        trial: The running trial.
        history: Per epoch, per cell kind, an ``(edges, ops)`` array of op weights.
        edges: The edge names of each cell kind, in row order.
        ops: The op names, in column order.
        artifact_store: The artifact store to upload the picture to.

    Returns:
        The artifact id of the picture.
    """
    picture = draw_alpha_history(history, edges, ops)
    return _upload_png(trial, picture, f"alphas-trial-{trial.number}.png", artifact_store)


def _upload_png(
    trial: optuna.Trial, picture: bytes, filename: str, artifact_store: ArtifactStore
) -> str:
    # Optuna uploads from a file; the file's name is the one the dashboard shows.
    with tempfile.TemporaryDirectory(prefix="optuna-nas-") as directory:
        file_path = os.path.join(directory, filename)
        with open(file_path, "wb") as file:
            file.write(picture)
        return optuna.artifacts.upload_artifact(
            artifact_store=artifact_store,
            file_path=file_path,
            study_or_trial=trial,
            mimetype="image/png",
        )


# ---- graphs ---------------------------------------------------------------------------
def _op_colour(op: str) -> str:
    colour = _OP_COLOURS.get(op)
    if colour is None:
        colour = _EXTRA_COLOURS[zlib.crc32(op.encode()) % len(_EXTRA_COLOURS)]
    return colour


@dataclass(frozen=True)
class _Node:
    xy: tuple[float, float]
    label: str
    fill: str
    radius: float = 0.3
    caption: str = ""


@dataclass(frozen=True)
class _Edge:
    source: str
    target: str
    op: str = ""
    rad: float = 0.0


class _Graph:
    """Nodes and arrows on an equal-aspect axes, with edge labels placed clear of others."""

    def __init__(self, ax: Axes, nodes: dict[str, _Node]) -> None:
        self.ax = ax
        self.nodes = nodes
        self.circles: dict[str, Circle] = {}
        canvas = ax.figure.canvas
        assert isinstance(canvas, FigureCanvasAgg)
        get_renderer: Callable[[], RendererAgg] = canvas.get_renderer  # untyped upstream
        self.renderer = get_renderer()
        self.boxes: list[Bbox] = []
        self.curves: list[tuple[_Edge, npt.NDArray[np.float64]]] = []
        ax.apply_aspect()

    def draw_nodes(self) -> None:
        """Draw every node as a circle with its label (and caption) inside."""
        for key, node in self.nodes.items():
            circle = Circle(
                node.xy, node.radius, facecolor=node.fill, edgecolor=_INK, lw=1.2, zorder=3
            )
            self.ax.add_patch(circle)
            self.circles[key] = circle
            self.boxes.append(circle.get_window_extent(self.renderer))
            x, y = node.xy
            if node.caption:
                shift = node.radius * 0.3
                self.ax.text(
                    x,
                    y + shift,
                    node.label,
                    ha="center",
                    va="center",
                    fontsize=9,
                    color=_INK,
                    zorder=4,
                )
                self.ax.text(
                    x,
                    y - node.radius * 0.45,
                    node.caption,
                    ha="center",
                    va="center",
                    fontsize=6,
                    style="italic",
                    color=_MUTED,
                    zorder=4,
                )
            else:
                self.ax.text(
                    x, y, node.label, ha="center", va="center", fontsize=9, color=_INK, zorder=4
                )

    def route(self, source: str, target: str, op: str, bends: Sequence[float]) -> _Edge:
        """The edge with the first bend (arc3's rad) whose curve misses every other node."""
        others = [n for key, n in self.nodes.items() if key not in (source, target)]
        for rad in bends:
            edge = _Edge(source, target, op, rad)
            points = [self._point(edge, step / 20) for step in range(1, 20)]
            if all(
                math.hypot(x - node.xy[0], y - node.xy[1]) > node.radius + 0.12
                for node in others
                for x, y in points
            ):
                return edge
        return _Edge(source, target, op, bends[-1])

    def draw_edge(self, edge: _Edge) -> None:
        """Draw an edge, coloured by its op (plain grey without one); no label yet."""
        if edge.op:
            colour = _op_colour(edge.op)
            style, width = ("--", 1.1) if edge.op == "none" else ("-", 1.8)
        else:
            colour, style, width = "#9e9e9e", "-", 1.0
        # The part of arc3's curve between the two circles, as one quadratic Bezier piece.
        source, target = self.nodes[edge.source], self.nodes[edge.target]
        a = self._leave(edge, source, 0.0, 0.5)
        b = self._leave(edge, target, 1.0, 0.5)
        controls = [
            self._blossom(edge, a, a),
            self._blossom(edge, a, b),
            self._blossom(edge, b, b),
        ]
        path = Path(controls, [Path.MOVETO, Path.CURVE3, Path.CURVE3])
        self.ax.add_patch(
            FancyArrowPatch(
                path=path,
                arrowstyle="-|>",
                mutation_scale=11,
                color=colour,
                lw=width,
                linestyle=style,
                zorder=2,
            )
        )
        ts = np.linspace(a, b, 40)
        points = np.array([self._point(edge, float(t)) for t in ts])
        self.curves.append((edge, self.ax.transData.transform(points)))

    def label_edges(self, edges: Sequence[_Edge], *, prefer: float = 0.6) -> None:
        """Write each edge's op on it, where it covers the fewest labels, nodes and lines.

        Args:
            edges: The edges to label, in order; the earlier ones get the better places.
            prefer: Where along an edge a label goes, all else being equal (0 to 1).
        """
        for edge in edges:
            colour = _op_colour(edge.op)
            text = self.ax.text(
                0,
                0,
                edge.op,
                ha="center",
                va="center",
                fontsize=7,
                color=colour,
                zorder=5,
                bbox={
                    "boxstyle": "round,pad=0.2",
                    "facecolor": "white",
                    "edgecolor": colour,
                    "lw": 0.8,
                },
            )
            others = [points for other, points in self.curves if other is not edge]
            lines = np.concatenate(others) if others else np.empty((0, 2))
            best: tuple[float, tuple[float, float], Bbox] | None = None
            for step in range(3, 18):
                t = step / 20
                point = self._point(edge, t)
                text.set_position(point)
                box = text.get_window_extent(self.renderer).expanded(1.12, 1.5)
                crossed = (
                    (lines[:, 0] >= box.x0)
                    & (lines[:, 0] <= box.x1)
                    & (lines[:, 1] >= box.y0)
                    & (lines[:, 1] <= box.y1)
                )
                cost = sum(_overlap(box, other) for other in self.boxes)
                cost += 40.0 * float(np.count_nonzero(crossed)) + 60.0 * abs(t - prefer)
                if best is None or cost < best[0]:
                    best = (cost, point, box)
            assert best is not None
            text.set_position(best[1])
            self.boxes.append(best[2])

    def _leave(self, edge: _Edge, node: _Node, inside: float, outside: float) -> float:
        # Bisect for where the curve crosses the node's circle (plus a small gap).
        radius = node.radius + 0.03
        for _ in range(30):
            middle = (inside + outside) / 2
            x, y = self._point(edge, middle)
            if math.hypot(x - node.xy[0], y - node.xy[1]) < radius:
                inside = middle
            else:
                outside = middle
        return (inside + outside) / 2

    def _control(self, edge: _Edge) -> tuple[float, float]:
        # arc3's control point, in data units (the axes has an equal aspect).
        (x0, y0), (x2, y2) = self.nodes[edge.source].xy, self.nodes[edge.target].xy
        return (x0 + x2) / 2 + edge.rad * (y2 - y0), (y0 + y2) / 2 - edge.rad * (x2 - x0)

    def _blossom(self, edge: _Edge, u: float, v: float) -> tuple[float, float]:
        # The quadratic curve's polar form: (f(a, a), f(a, b), f(b, b)) are the control
        # points of its piece between a and b.
        (x0, y0), (x2, y2) = self.nodes[edge.source].xy, self.nodes[edge.target].xy
        cx, cy = self._control(edge)
        w0, w1, w2 = (1 - u) * (1 - v), u * (1 - v) + v * (1 - u), u * v
        return w0 * x0 + w1 * cx + w2 * x2, w0 * y0 + w1 * cy + w2 * y2

    def _point(self, edge: _Edge, t: float) -> tuple[float, float]:
        return self._blossom(edge, t, t)


def _overlap(a: Bbox, b: Bbox) -> float:
    width = min(a.x1, b.x1) - max(a.x0, b.x0)
    height = min(a.y1, b.y1) - max(a.y0, b.y0)
    return width * height if width > 0 and height > 0 else 0.0


def _graph_axes(
    fig: Figure, rect: Sequence[float], xlim: tuple[float, float], ylim: tuple[float, float]
) -> Axes:
    ax = fig.add_axes((rect[0], rect[1], rect[2], rect[3]))
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    ax.set_aspect("equal", adjustable="box")
    ax.set_axis_off()
    return ax


def _draw_nasbench201(fig: Figure, space: NasBench201Space, arch: Architecture) -> None:
    fig.set_size_inches(8.0, 3.6)
    ops = space.edge_ops(arch)
    gap = 1.7
    ax = _graph_axes(fig, (0.02, 0.1, 0.96, 0.8), (-0.55, 3 * gap + 0.55), (-1.25, 1.75))
    nodes = {
        str(i): _Node(
            (i * gap, 0.0),
            str(i),
            _INPUT_FILL if i == 0 else _OUTPUT_FILL if i == 3 else _BLOCK_FILL,
            radius=0.33,
            caption="input" if i == 0 else "output" if i == 3 else "",
        )
        for i in range(4)
    }
    # Edges in the benchmark's order (1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2); the longer ones
    # arc above or below the row of nodes.
    rads = {(1, 0): 0.0, (2, 0): -0.5, (2, 1): 0.0, (3, 0): -0.55, (3, 1): 0.5, (3, 2): 0.0}
    edges = [
        _Edge(str(source), str(target), op, rads[(target, source)])
        for (target, source), op in zip(rads, ops, strict=True)
    ]
    graph = _Graph(ax, nodes)
    graph.draw_nodes()
    for edge in edges:
        graph.draw_edge(edge)
    graph.label_edges(edges, prefer=0.5)
    fig.text(0.015, 0.955, "NAS-Bench-201 cell", fontsize=11, weight="bold", color=_INK, va="top")
    fig.text(
        0.5,
        0.025,
        _shorten(str(arch), 140),
        ha="center",
        va="bottom",
        fontsize=7,
        family="monospace",
        color=_MUTED,
    )


def _draw_darts(fig: Figure, space: DartsCells, arch: Architecture) -> None:
    genotype = space.genotype(arch)
    steps = space.steps
    fig.set_size_inches(9.2, 4.6)
    cells = (
        ("normal cell", genotype.normal, genotype.normal_concat, genotype.normal_combine),
        ("reduction cell", genotype.reduce, genotype.reduce_concat, genotype.reduce_combine),
    )
    half = 2.0
    ys = [half - k * 2 * half / max(steps - 1, 1) for k in range(steps)]
    for index, (title, ops, concat, combine) in enumerate(cells):
        ax = _graph_axes(
            fig, (0.01 + index * 0.5, 0.01, 0.48, 0.87), (-0.5, 4.9), (-half - 0.4, half + 0.4)
        )
        nodes = {
            "0": _Node((0.0, 1.2), "$c_{k-2}$", _INPUT_FILL, radius=0.38),
            "1": _Node((0.0, -1.2), "$c_{k-1}$", _INPUT_FILL, radius=0.38),
            "out": _Node((4.45, 0.0), "$c_{k}$", _OUTPUT_FILL, radius=0.38),
        }
        for k in range(steps):
            nodes[str(k + 2)] = _Node(
                (2.2 + 0.85 * (k % 2), ys[k]),
                str(k),
                _BLOCK_FILL,
                radius=min(0.3, 0.85 * half / max(steps - 1, 1)),
                caption=combine[k] if space.combine and combine else "",
            )
        graph = _Graph(ax, nodes)
        edges: list[_Edge] = []
        for k in range(steps):
            (op1, i), (op2, j) = ops[2 * k], ops[2 * k + 1]
            for op, source, side in ((op1, i, 1.0), (op2, j, -1.0)):
                # Straight where the line misses every other node, else the least arc
                # that does; two edges between the same nodes bend apart.
                bends = (0.0, -0.3, 0.3, -0.5, 0.5) if i != j else (0.2, 0.35, 0.5)
                edge = graph.route(str(source), str(k + 2), op, [b * side for b in bends])
                edges.append(edge)
        graph.draw_nodes()
        for state in concat:
            graph.draw_edge(graph.route(str(state), "out", "", (0.0, 0.25, -0.25, 0.45)))
        for edge in edges:
            graph.draw_edge(edge)
        # The shorter edges first: they have the least room for a label.
        graph.label_edges(sorted(edges, key=lambda e: _length(nodes, e)))
        ax.set_title(title, loc="left", fontsize=10, color=_INK, pad=2)
    fig.text(
        0.01,
        0.985,
        f"{type(space).__name__} ({space.name})",
        fontsize=11,
        weight="bold",
        color=_INK,
        va="top",
    )


def _length(nodes: dict[str, _Node], edge: _Edge) -> float:
    (x0, y0), (x1, y1) = nodes[edge.source].xy, nodes[edge.target].xy
    return math.hypot(x1 - x0, y1 - y0)


# ---- tables ---------------------------------------------------------------------------
_ROWS_PER_COLUMN = 18
_MAX_COLUMNS = 2
_COLUMN_WIDTH = 3.3  # inches
_ROW_HEIGHT = 0.24  # inches


def _draw_table(fig: Figure, space: SearchSpace, arch: Architecture) -> None:
    rows = [(name, str(value)) for name, value in arch.values]
    capacity = _ROWS_PER_COLUMN * _MAX_COLUMNS
    if len(rows) > capacity:
        hidden = len(rows) - capacity + 1
        rows = rows[: capacity - 1] + [("...", f"{hidden} more decisions")]
    columns = max(1, math.ceil(len(rows) / _ROWS_PER_COLUMN))
    per_column = min(len(rows), _ROWS_PER_COLUMN) or 1
    width = (_COLUMN_WIDTH + 0.2) * columns + 0.2
    height = _ROW_HEIGHT * (per_column + 1) + 0.75
    fig.set_size_inches(max(width, 3.7), height)
    ax = fig.add_axes((0.0, 0.0, 1.0, 1.0))
    ax.set_xlim(0, max(width, 3.7))
    ax.set_ylim(0, height)
    ax.set_axis_off()
    ax.text(
        0.2,
        height - 0.12,
        f"{type(space).__name__} ({space.name})",
        fontsize=11,
        weight="bold",
        color=_INK,
        va="top",
    )
    if not rows:
        ax.text(0.2, height - 0.6, "(no decisions)", fontsize=9, color=_MUTED, va="center")
    for column in range(columns):
        chunk = rows[column * _ROWS_PER_COLUMN : (column + 1) * _ROWS_PER_COLUMN]
        left, top = 0.2 + (_COLUMN_WIDTH + 0.2) * column, height - 0.5
        value_x = left + 1.8
        ax.add_patch(
            Rectangle(
                (left, top - _ROW_HEIGHT),
                _COLUMN_WIDTH,
                _ROW_HEIGHT,
                facecolor="#37474f",
                edgecolor="none",
            )
        )
        for x, header in ((left + 0.08, "decision"), (value_x, "value")):
            ax.text(
                x,
                top - _ROW_HEIGHT / 2,
                header,
                fontsize=8.5,
                weight="bold",
                color="white",
                va="center",
            )
        for number, (name, value) in enumerate(chunk, start=1):
            y = top - _ROW_HEIGHT * (number + 1)
            fill = "#eceff1" if number % 2 == 0 else "white"
            ax.add_patch(
                Rectangle((left, y), _COLUMN_WIDTH, _ROW_HEIGHT, facecolor=fill, edgecolor="none")
            )
            ax.text(
                left + 0.08,
                y + _ROW_HEIGHT / 2,
                _shorten(name, 24),
                fontsize=8,
                family="monospace",
                color=_INK,
                va="center",
            )
            known = value in _OP_COLOURS
            ax.text(
                value_x,
                y + _ROW_HEIGHT / 2,
                _shorten(value, 21),
                fontsize=8,
                family="monospace",
                color=_OP_COLOURS[value] if known else _INK,
                va="center",
                weight="bold" if known else "normal",
            )


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


class _QuietHandler(wsgiref.simple_server.WSGIRequestHandler):
    # The dashboard polls every few seconds; a line per request would bury the workers'.
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


def make_dashboard_server(
    storage: str | optuna.storages.BaseStorage,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    artifact_dir: str | os.PathLike[str] | None = None,
) -> wsgiref.simple_server.WSGIServer:
    """An optuna-dashboard server for a storage, bound but not yet serving.

    Call ``serve_forever()`` on it (in a thread, to keep going), and ``shutdown()`` to stop.
    It binds to localhost by default: the dashboard has no login, so anyone who reaches the
    port can read and edit the studies. Bind to another address only behind an SSH tunnel or
    an authenticating proxy.

    Args:
        storage: The storage or its URL.
        host: The address to bind to.
        port: The port; 0 picks a free one (read it from ``server.server_port``).
        artifact_dir: The folder of a :class:`~optuna.artifacts.FileSystemArtifactStore`
            whose pictures the trial pages show.

    Returns:
        The server.
    """
    import optuna_dashboard

    store = None
    if artifact_dir is not None:
        store = optuna.artifacts.FileSystemArtifactStore(os.fspath(artifact_dir))
    app = optuna_dashboard.wsgi(storage, artifact_store=store)
    return wsgiref.simple_server.make_server(host, port, app, handler_class=_QuietHandler)
