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
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import networkx as nx
import numpy as np
import numpy.typing as npt
import optuna
import torch
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Circle, Rectangle

from optuna_nas.spaces._base import Architecture, SearchSpace
from optuna_nas.spaces._darts import DartsCells
from optuna_nas.spaces._nasbench201 import NasBench201Space

if TYPE_CHECKING:
    from optuna.artifacts._protocol import ArtifactStore

__all__ = [
    "describe_architecture",
    "draw_alpha_history",
    "draw_architecture",
    "log_alpha_history",
    "log_architecture",
    "make_dashboard_server",
]

_DPI = 100  # of the op-weights chart
#: Of the architecture pictures: sharp when opened from the trial page at full size.
_PICTURE_DPI = 160

# Colour-blind-safe hues: Okabe & Ito's palette (https://jfly.uni-koeln.de/color/) and Paul
# Tol's muted one (https://personal.sron.nl/~pault/), chosen so that the ops of each op set
# differ under normal vision and under simulated protan-, deuter- and tritanopia.
_OP_COLOURS: dict[str, str] = {
    "none": "#bbbbbb",  # Tol's grey, dashed
    "skip_connect": "#000000",  # Okabe-Ito black
    "avg_pool_3x3": "#cc6677",  # Tol rose
    "max_pool_3x3": "#332288",  # Tol indigo
    "max_pool_5x5": "#aa4499",  # Tol purple
    "max_pool_7x7": "#999933",  # Tol olive
    "sep_conv_3x3": "#d55e00",  # Okabe-Ito vermillion
    "sep_conv_5x5": "#882255",  # Tol wine
    "sep_conv_7x7": "#cc79a7",  # Okabe-Ito reddish purple
    "dil_conv_3x3": "#88ccee",  # Tol cyan
    "dil_conv_5x5": "#0072b2",  # Okabe-Ito blue
    "conv_1x1": "#e69f00",  # Okabe-Ito orange
    "nor_conv_1x1": "#e69f00",  # NAS-Bench-201's name of the same op
    "conv_3x3": "#117733",  # Tol green
    "nor_conv_3x3": "#117733",
    "conv_1x3_3x1": "#56b4e9",  # Okabe-Ito sky blue
    "conv_1x7_7x1": "#ddcc77",  # Tol sand
}
#: Colours of ops outside the table above, chosen by a stable hash of the op name.
_EXTRA_COLOURS = ("#009e73", "#44aa99", "#f0e442", "#0072b2", "#882255", "#999933")

_INPUT_FILL = "#cfe8fc"
_BLOCK_FILL = "#f4f4f4"
_OUTPUT_FILL = "#ffd98e"
_INK = "#263238"
_MUTED = "#616161"
_CONCAT = "#9e9e9e"  # the output's concatenation, no op


def draw_architecture(
    space: SearchSpace,
    arch: Architecture,
    path: str | os.PathLike[str] | None = None,
    *,
    title: str | None = None,
) -> bytes:
    """Draw an architecture as a PNG picture.

    A :class:`~optuna_nas.spaces.NasBench201Space` architecture is drawn as its cell: nodes
    0 to 3 with the op of each of the six edges on the edge (``none`` edges dashed and
    grey). A :class:`~optuna_nas.spaces.DartsCells` or
    :class:`~optuna_nas.spaces.NasNetCells` architecture is drawn as its normal cell above
    its reduction cell: the inputs 0 (``c_{k-2}``) and 1 (``c_{k-1}``), the blocks ``n2``,
    ``n3``, ... named as in the params, with the ops of their two inputs on the edges (and
    each block's combine where the space chooses it), and the output ``c_{k}`` fed by the
    concatenated blocks. The cells are laid out in layers by networkx, each layer ordered to
    reduce crossings. Any other space is drawn as a table of its decisions and their values.
    Ops are coloured with a fixed colour-blind-safe palette, so one op has one colour in
    every picture and the ops of one space are told apart.

    Args:
        space: The search space of the architecture.
        arch: An architecture of ``space``.
        path: Where to also write the picture, if given.
        title: The picture's heading, e.g. ``"trial 3 · valid accuracy 0.9123"``; the
            space's name by default (it then comes under the heading).

    Returns:
        The picture, PNG-encoded.

    Raises:
        ArchitectureError: ``arch`` is not an architecture of ``space``.
    """
    fig = _architecture_figure(space, arch, title)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=_PICTURE_DPI, facecolor="white",
                metadata={"Software": None})
    picture = buffer.getvalue()
    if path is not None:
        with open(path, "wb") as file:
            file.write(picture)
    return picture


def _architecture_figure(space: SearchSpace, arch: Architecture, title: str | None) -> Figure:
    space._check_space(arch)
    fig = Figure(dpi=_PICTURE_DPI, facecolor="white")
    FigureCanvasAgg(fig)
    kind = f"{type(space).__name__} ({space.name})"
    heading, subheading = (title, kind) if title else (kind, "")
    if isinstance(space, NasBench201Space):
        cells = [("", _nasbench201_graph(space, arch))]
        _draw_cells(fig, cells, heading, subheading or "NAS-Bench-201 cell",
                    footer=_shorten(str(arch), 140))
    elif isinstance(space, DartsCells):
        _draw_cells(fig, _darts_graphs(space, arch), heading, subheading)
    else:
        _draw_table(fig, heading, subheading, arch)
    return fig


def log_architecture(
    trial: optuna.Trial,
    space: SearchSpace,
    arch: Architecture,
    *,
    artifact_store: ArtifactStore,
    value: float | Sequence[float] | None = None,
) -> str:
    """Record an architecture on a running trial, with its picture for optuna-dashboard.

    Sets the trial's user attrs ``arch`` (the architecture's string form, which
    ``space.parse`` reads back) and ``arch_space`` (the space's name), writes a readable
    multi-line form of the architecture into the trial's note (optuna-dashboard's
    ``save_note``), and uploads :func:`draw_architecture`'s picture as an ``image/png``
    artifact of the trial, titled ``trial N`` and, given a value, ``trial N · name value``
    with the study's first metric name (``study.set_metric_names``; ``value`` without one).

    In a multi-objective study it works the same (nothing here reports to the trial);
    give ``value`` as the trial's values, one per objective, and the title names each with
    its metric name (``trial N · valid accuracy 0.91 · params 1.2e+04``; ``value 0``,
    ``value 1``, ... without names). optuna-dashboard draws the Pareto front itself.
    optuna-dashboard, started with the same artifact store (e.g. ``optuna-dashboard
    sqlite:///db.sqlite3 --artifact-dir DIR`` for a
    :class:`~optuna.artifacts.FileSystemArtifactStore` on ``DIR``), shows both on the
    trial's page.

    Args:
        trial: The running trial, e.g. the one ``study.optimize`` passes to the objective.
        space: The search space of the architecture.
        arch: An architecture of ``space``, e.g. ``space.suggest(trial)``.
        artifact_store: The artifact store to upload the picture to.
        value: The trial's value so far, for the picture's title, e.g. its accuracy when
            logged after training, or its values in a multi-objective study; ``None`` (or
            a value that is not finite) leaves it out.

    Returns:
        The artifact id of the picture.

    Raises:
        ArchitectureError: ``arch`` is not an architecture of ``space``.
    """
    import optuna_dashboard

    names = trial.study.metric_names
    picture = draw_architecture(space, arch, title=_picture_title(trial.number, value, names))
    trial.set_user_attr("arch", str(arch))
    trial.set_user_attr("arch_space", space.name)
    optuna_dashboard.save_note(trial, describe_architecture(space, arch))
    return _upload_png(trial, picture, f"architecture-trial-{trial.number}.png", artifact_store)


def describe_architecture(space: SearchSpace, arch: Architecture) -> str:
    """A readable multi-line (Markdown) form of an architecture, e.g. for a trial's note.

    A cell space lists each node with the ops that feed it, named as in the params and the
    picture (``n3 = sep_conv_3x3(0) + skip_connect(n2)``); any other space lists its
    decisions and their values.

    Args:
        space: The search space of the architecture.
        arch: An architecture of ``space``.

    Returns:
        The Markdown text.

    Raises:
        ArchitectureError: ``arch`` is not an architecture of ``space``.
    """
    space._check_space(arch)
    lines = [f"**Architecture** ({type(space).__name__}, space `{space.name}`)", ""]
    if isinstance(space, NasBench201Space):
        cells = [("cell", _nasbench201_graph(space, arch))]
    elif isinstance(space, DartsCells):
        cells = _darts_graphs(space, arch)
    else:
        lines += [f"- `{name}` = `{value}`" for name, value in arch.values]
        return "\n".join(lines) + "\n"
    for title, graph in cells:
        lines.append(f"*{title}*")
        lines.append("")
        for node, data in graph.nodes(data=True):
            sources = [(u, op) for u, _, op in graph.in_edges(node, data="op")]
            if not sources:
                continue
            name = "output" if node == "out" else f"node {node}" if node.isdigit() else node
            if node == "out":
                terms = [f"`{u}`" for u, _ in sources]
                joined = "concat(" + ", ".join(terms) + ")"
            else:
                terms = [f"`{op}({u})`" for u, op in sources]
                combine = data.get("combine") or "sum"
                joined = " + ".join(terms) if combine in ("sum", "add") else (
                    f"{combine}(" + ", ".join(terms) + ")")
            lines.append(f"- **{name}** = {joined}")
        lines.append("")
    return "\n".join(lines)


def _picture_title(
    number: int,
    value: float | Sequence[float] | None,
    metric: str | Sequence[str] | None,
) -> str:
    # One value (the first metric's name), or one per objective (each with its name).
    title = f"trial {number}"
    if value is None:
        return title
    metrics = [metric] if isinstance(metric, str) else list(metric or [])
    if isinstance(value, int | float):
        if math.isfinite(value):
            title += f" · {metrics[0] if metrics else 'value'} {value:.4g}"
        return title
    values = list(value)
    for index, item in enumerate(values):
        if not math.isfinite(item):
            continue
        name = metrics[index] if index < len(metrics) else (
            "value" if len(values) == 1 else f"value {index}")
        title += f" · {name} {item:.4g}"
    return title


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


_RADIUS = 0.3  # of a node, in units of the distance between two nodes of a layer
_LAYER_GAP = 2.5  # between layers, in the same units: room for a label between them
_INCH = 0.68  # inches per unit
_BOW = 0.3  # how far an edge that skips layers bows round them (matplotlib's arc3 rad)
_PARALLEL_BOW = 0.2  # how far two edges between the same nodes bow apart


def _nasbench201_graph(space: NasBench201Space, arch: Architecture) -> nx.MultiDiGraph:
    # Nodes 0 to 3, as the params name them (``arch/2<-1`` is the edge from node 1 to 2).
    graph = nx.MultiDiGraph()
    for i in range(4):
        fill = _INPUT_FILL if i == 0 else _OUTPUT_FILL if i == 3 else _BLOCK_FILL
        caption = "input" if i == 0 else "output" if i == 3 else ""
        graph.add_node(str(i), label=str(i), caption=caption, fill=fill)
    for decision, op in zip(space.decisions, space.edge_ops(arch), strict=True):
        target, source = decision.name.split("<-")
        graph.add_edge(source, target, op=op)
    return graph


def _darts_graphs(space: DartsCells, arch: Architecture) -> list[tuple[str, nx.MultiDiGraph]]:
    genotype = space.genotype(arch)
    cells = (
        ("normal cell", genotype.normal, genotype.normal_concat, genotype.normal_combine),
        ("reduction cell", genotype.reduce, genotype.reduce_concat, genotype.reduce_combine),
    )
    graphs = []
    for title, ops, concat, combine in cells:
        # Named as the params name them: inputs 0 and 1 (``c_{k-2}``, ``c_{k-1}``) and the
        # blocks n2, n3, ... (``normal/n3/inputs`` = ``0,2`` reads input 0 and block n2).
        graph = nx.MultiDiGraph()
        graph.add_node("0", label="0", caption="$c_{k-2}$", fill=_INPUT_FILL)
        graph.add_node("1", label="1", caption="$c_{k-1}$", fill=_INPUT_FILL)
        for k in range(space.steps):
            caption = combine[k] if combine else ""
            graph.add_node(_state(k + 2), label=_state(k + 2), caption=caption, combine=caption,
                           fill=_BLOCK_FILL)
        graph.add_node("out", label="$c_{k}$", caption="output", fill=_OUTPUT_FILL)
        for k in range(space.steps):
            for op, source in ops[2 * k : 2 * k + 2]:
                graph.add_edge(_state(source), _state(k + 2), op=op)
        for state in concat:
            graph.add_edge(_state(state), "out", op="")
        graphs.append((title, graph))
    return graphs


def _state(index: int) -> str:
    return str(index) if index < 2 else f"n{index}"


def _layout(graph: nx.MultiDiGraph) -> dict[str, tuple[float, float]]:
    """Node positions from networkx's layered layout, each layer ordered to reduce crossings.

    The layers are ``topological_generations``; within each, the nodes go in the order of
    the mean height of their predecessors (a barycentre pass down the layers, Sugiyama et
    al. 1981); ``multipartite_layout`` places them, one unit apart within a layer.
    """
    layers: list[list[str]] = []
    height: dict[str, float] = {}
    for generation in nx.topological_generations(graph):
        layer = sorted(generation, key=lambda n: (
            np.mean([height[p] for p in graph.predecessors(n)] or [0.0]), n))
        height |= {n: i - (len(layer) - 1) / 2 for i, n in enumerate(layer)}
        layers.append(layer)
    placed = nx.multipartite_layout(graph, subset_key=dict(enumerate(layers)), scale=1)
    # multipartite_layout scales the grid into [-1, 1]: back to one unit between the nodes
    # of a layer, whose heights it keeps in proportion.
    spread = max(height.values()) - min(height.values())
    ys = [float(y) for _, y in placed.values()]
    unit = (max(ys) - min(ys)) / spread if spread else 1.0
    x0 = float(placed[layers[0][0]][0])
    step = (float(placed[layers[-1][0]][0]) - x0) / max(len(layers) - 1, 1) or 1.0
    return {n: ((float(x) - x0) / step * _LAYER_GAP, float(y) / unit if spread else 0.0)
            for n, (x, y) in placed.items()}


def _bows(graph: nx.MultiDiGraph, pos: Mapping[str, tuple[float, float]]) -> dict[
        tuple[str, str, int], float]:
    """Each edge's bow (arc3 rad): an edge that skips layers bows round the nodes between,
    away from the middle of the picture; two edges between the same nodes bow apart."""
    bows = {}
    for u, v, k in graph.edges(keys=True):
        (xu, yu), (xv, yv) = pos[u], pos[v]
        if graph.number_of_edges(u, v) > 1:
            bows[(u, v, k)] = _PARALLEL_BOW * (1 if k % 2 else -1)
        elif xv - xu > _LAYER_GAP * 1.5:
            middle = (yu + yv) / 2
            upward = middle > 0 or (middle == 0 and int(u.lstrip("n") or 0) % 2 == 0)
            bows[(u, v, k)] = -_BOW if upward else _BOW  # arc3 bows right of travel for rad > 0
        else:
            bows[(u, v, k)] = 0.0
    return bows


def _bounds(
    pos: Mapping[str, tuple[float, float]], bows: Mapping[tuple[str, str, int], float]
) -> tuple[float, float, float, float]:
    points = list(pos.values())
    for (u, v, _), rad in bows.items():
        # A quadratic curve reaches halfway from its chord's middle to its control point.
        (xu, yu), (xv, yv) = pos[u], pos[v]
        dx, dy = xv - xu, yv - yu
        points.append(((xu + xv) / 2 + rad * dy / 2, (yu + yv) / 2 - rad * dx / 2))
    xs, ys = [x for x, _ in points], [y for _, y in points]
    margin = _RADIUS + 0.15
    return min(xs) - margin, max(xs) + margin, min(ys) - margin, max(ys) + margin


def _draw_graph(
    ax: Axes,
    graph: nx.MultiDiGraph,
    pos: Mapping[str, tuple[float, float]],
    bows: Mapping[tuple[str, str, int], float],
) -> None:
    """Nodes as labelled discs; edges drawn by networkx, coloured and labelled by op."""
    for node, data in graph.nodes(data=True):
        x, y = pos[node]
        ax.add_patch(Circle((x, y), _RADIUS, facecolor=data["fill"], edgecolor=_INK, lw=1.2,
                            zorder=3, gid=f"node {node}"))
        caption = data["caption"]
        ax.text(x, y + (0.08 if caption else 0.0), data["label"], ha="center", va="center",
                fontsize=9, color=_INK, zorder=4, gid=f"label {node}")
        if caption:
            ax.text(x, y - 0.13, caption, ha="center", va="center", fontsize=6.5,
                    style="italic", color=_MUTED, zorder=4)
    # networkx keeps arrows clear of a node by its marker size, in points squared.
    node_size = (2 * _RADIUS * _INCH * 72) ** 2
    arrived: dict[str, int] = {}
    for u, v, k, op in graph.edges(keys=True, data="op"):
        if op:
            colour = _op_colour(op)
            style, width = ("--", 1.2) if op == "none" else ("-", 2.0)
        else:  # the output's concatenation
            colour, style, width = _CONCAT, "-", 1.0
        edge = nx.DiGraph([(u, v)])
        connection = f"arc3,rad={bows[(u, v, k)]}"
        (arrow,) = nx.draw_networkx_edges(
            edge, pos, ax=ax, edge_color=colour, style=style, width=width, arrows=True,
            arrowstyle="-|>", arrowsize=11, node_size=node_size, connectionstyle=connection,
            hide_ticks=False)
        arrow.set_gid(f"edge {u} {v} {op}")
        arrow.set_zorder(2)
        if op:
            # Past the middle, where edges into one node have not yet met (networkx counts
            # label_pos from the source); every other edge into one node further back, so
            # that two labels arriving side by side do not sit on each other.
            rank = arrived[v] = arrived.get(v, -1) + 1
            (label,) = nx.draw_networkx_edge_labels(
                edge, pos, ax=ax, edge_labels={(u, v): op}, label_pos=0.55 - 0.17 * (rank % 2),
                font_size=7.5, font_color=_INK, rotate=False, node_size=node_size,
                connectionstyle=connection, hide_ticks=False,
                bbox={"boxstyle": "round,pad=0.2", "facecolor": "white", "edgecolor": colour,
                      "lw": 1.3}).values()
            label.set_zorder(5)


def _draw_cells(
    fig: Figure,
    cells: Sequence[tuple[str, nx.MultiDiGraph]],
    heading: str,
    subheading: str,
    footer: str = "",
) -> None:
    """The cells one below the other, each laid out by networkx, under a heading."""
    laid = []
    for title, graph in cells:
        pos = _layout(graph)
        bows = _bows(graph, pos)
        laid.append((title, graph, pos, bows, _bounds(pos, bows)))
    width = max(x1 - x0 for _, _, _, _, (x0, x1, _, _) in laid) * _INCH + 0.3
    top, foot, title_height = 0.62, 0.3 if footer else 0.1, 0.28
    bands = [(y1 - y0) * _INCH + (title_height if title else 0.0)
             for title, _, _, _, (_, _, y0, y1) in laid]
    height = top + sum(bands) + foot
    fig.set_size_inches(max(width, 6.0), height)
    width = max(width, 6.0)
    y = height - top
    for (title, graph, pos, bows, (x0, x1, y0, y1)), band in zip(laid, bands, strict=True):
        if title:
            fig.text(0.12 / width, (y - 0.04) / height, title, fontsize=10, color=_INK,
                     va="top", weight="bold")
        y -= band
        w, h = (x1 - x0) * _INCH, (y1 - y0) * _INCH
        ax = fig.add_axes(((width - w) / 2 / width, y / height, w / width, h / height))
        ax.set_xlim(x0, x1)
        ax.set_ylim(y0, y1)
        ax.set_aspect("equal")
        ax.set_axis_off()
        _draw_graph(ax, graph, pos, bows)
    fig.text(0.12 / width, 1 - 0.08 / height, heading, fontsize=12, weight="bold", color=_INK,
             va="top")
    fig.text(0.12 / width, 1 - 0.36 / height, subheading, fontsize=8.5, color=_MUTED, va="top")
    if footer:
        fig.text(0.5, 0.06 / height, footer, ha="center", va="bottom", fontsize=7,
                 family="monospace", color=_MUTED)


# ---- tables ---------------------------------------------------------------------------
_ROWS_PER_COLUMN = 18
_MAX_COLUMNS = 2
_COLUMN_WIDTH = 3.3  # inches
_ROW_HEIGHT = 0.24  # inches


def _draw_table(fig: Figure, heading: str, subheading: str, arch: Architecture) -> None:
    rows = [(name, str(value)) for name, value in arch.values]
    capacity = _ROWS_PER_COLUMN * _MAX_COLUMNS
    if len(rows) > capacity:
        hidden = len(rows) - capacity + 1
        rows = rows[: capacity - 1] + [("...", f"{hidden} more decisions")]
    columns = max(1, math.ceil(len(rows) / _ROWS_PER_COLUMN))
    per_column = min(len(rows), _ROWS_PER_COLUMN) or 1
    width = (_COLUMN_WIDTH + 0.2) * columns + 0.2
    top_margin = 0.7 if subheading else 0.5
    height = _ROW_HEIGHT * (per_column + 1) + top_margin + 0.25
    fig.set_size_inches(max(width, 3.7), height)
    ax = fig.add_axes((0.0, 0.0, 1.0, 1.0))
    ax.set_xlim(0, max(width, 3.7))
    ax.set_ylim(0, height)
    ax.set_axis_off()
    ax.text(0.2, height - 0.12, heading, fontsize=11, weight="bold", color=_INK, va="top")
    if subheading:
        ax.text(0.2, height - 0.4, subheading, fontsize=8.5, color=_MUTED, va="top")
    if not rows:
        ax.text(0.2, height - 0.6, "(no decisions)", fontsize=9, color=_MUTED, va="center")
    for column in range(columns):
        chunk = rows[column * _ROWS_PER_COLUMN : (column + 1) * _ROWS_PER_COLUMN]
        left, top = 0.2 + (_COLUMN_WIDTH + 0.2) * column, height - top_margin
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
            if known:  # the op's colour as a swatch: light hues make poor text
                ax.add_patch(
                    Rectangle((value_x, y + 0.06), 0.1, _ROW_HEIGHT - 0.12,
                              facecolor=_OP_COLOURS[value], edgecolor="none")
                )
            ax.text(
                value_x + 0.16,
                y + _ROW_HEIGHT / 2,
                _shorten(value, 20),
                fontsize=8,
                family="monospace",
                color=_INK,
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
