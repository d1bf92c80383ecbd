"""Architecture pictures, their upload as trial artifacts, and optuna-dashboard showing them.

The last tests start a real optuna-dashboard server on a free loopback port and read the
trial page with headless Chromium. Outside CI they skip when Chromium is not installed; in
CI (``CI=true``) a missing Chromium fails them.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib.colors as mcolors
import numpy as np
import optuna
import optuna_dashboard._note
import pytest
import torch
from PIL import Image

from optuna_nas import ArchitectureError
from optuna_nas.dashboard import (
    _INPUT_FILL,
    _OP_COLOURS,
    _OUTPUT_FILL,
    _architecture_figure,
    _op_colour,
    _picture_title,
    describe_architecture,
    draw_architecture,
    log_architecture,
)
from optuna_nas.nn import OP_SETS, list_ops
from optuna_nas.spaces import (
    Architecture,
    Choice,
    DartsCells,
    Decision,
    NasBench201Space,
    NasNetCells,
    SearchSpace,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class ToySpace(SearchSpace):
    """A small custom space, with a conditional decision, drawn as a table."""

    name = "toy"

    def __init__(self) -> None:
        super().__init__(prefix="toy/")
        self._decisions = (
            Decision("depth", (1, 2, 3)),
            Decision("width", (16, 32, 64)),
            Decision("op", ("sep_conv_3x3", "skip_connect", "my_custom_op")),
            Decision("dropout", (0.0, 0.25), condition=lambda v: v.get("depth") != 1),
            Decision("batch_norm", (True, False)),
        )

    @property
    def decisions(self) -> Sequence[Decision]:
        return self._decisions

    def format(self, values: Mapping[str, Choice]) -> str:
        return ";".join(f"{key}={value}" for key, value in values.items())

    def _parse_values(self, string: str) -> dict[str, Choice]:
        raise ArchitectureError("ToySpace does not parse strings.")

    def build(self, arch: Architecture, **network_options: Any) -> torch.nn.Module:
        return torch.nn.Identity()


SPACES: dict[str, Callable[[], SearchSpace]] = {
    "nasbench201": NasBench201Space,
    "darts": DartsCells,
    "nasnet": NasNetCells,
    "nasnet_no_combine": lambda: NasNetCells(combine=False),
    "toy": ToySpace,
}


def _image(picture: bytes) -> Image.Image:
    return Image.open(io.BytesIO(picture)).convert("RGB")


def _pixels(image: Image.Image) -> np.ndarray:
    """The image's RGB pixels, shape (height, width, 3)."""
    pixels: np.ndarray = np.asarray(image.convert("RGB"), dtype=np.uint8)
    return pixels


def _mask(image: Image.Image, colour: tuple[int, int, int]) -> np.ndarray:
    """Where the image has exactly this colour."""
    return np.all(_pixels(image) == np.array(colour, dtype=np.uint8), axis=-1)


def _count(image: Image.Image, colour: tuple[int, int, int]) -> int:
    return int(_mask(image, colour).sum())


def _centre(image: Image.Image, colour: tuple[int, int, int]) -> tuple[float, float]:
    ys, xs = np.nonzero(_mask(image, colour))
    assert len(xs), colour
    return float(xs.mean()), float(ys.mean())


def _rgb(colour: str) -> tuple[int, int, int]:
    r, g, b = mcolors.to_rgb(colour)
    return round(r * 255), round(g * 255), round(b * 255)


# ---- drawing --------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(SPACES))
def test_draw_returns_a_small_png(name: str) -> None:
    space = SPACES[name]()
    for seed in range(2):
        picture = draw_architecture(space, space.sample(seed))
        assert picture.startswith(PNG_MAGIC)
        image = _image(picture)
        # Sharp enough to read when opened at full size, not a poster.
        assert 300 <= image.width <= 1600 and 150 <= image.height <= 1600
        # Not blank: plenty of ink beside the white background.
        assert (image.width * image.height - _count(image, (255, 255, 255))) > 5_000


def test_draw_is_deterministic_and_writes_path(tmp_path: Path) -> None:
    space = DartsCells()
    arch = space.sample(3)
    target = tmp_path / "arch.png"
    picture = draw_architecture(space, arch, target)
    assert target.read_bytes() == picture
    assert draw_architecture(space, arch) == picture
    assert draw_architecture(space, space.sample(4)) != picture


def test_edges_are_coloured_by_op() -> None:
    space = NasBench201Space()
    for op in ("skip_connect", "nor_conv_3x3", "avg_pool_3x3"):
        arch = space.from_values({d.name: op for d in space.decisions})
        image = _image(draw_architecture(space, arch))
        assert _count(image, _rgb(_OP_COLOURS[op])) > 200, op
        others = {"skip_connect", "nor_conv_3x3", "avg_pool_3x3"} - {op}
        assert all(_count(image, _rgb(_OP_COLOURS[o])) == 0 for o in others)


def _drawn_graph(space: SearchSpace, arch: Architecture) -> list[tuple[set[str], set[str]]]:
    """Per cell drawn, its nodes and its edges (``source target op``), from the figure."""
    fig = _architecture_figure(space, arch, None)
    cells = []
    for ax in fig.axes:
        gids = [p.get_gid() or "" for p in ax.patches]
        nodes = {g.removeprefix("node ") for g in gids if g.startswith("node ")}
        edges = {g.removeprefix("edge ") for g in gids if g.startswith("edge ")}
        labels = {t.get_gid(): t.get_text() for t in ax.texts if t.get_gid()}
        assert all(labels[f"label {n}"] for n in nodes)
        cells.append((nodes, edges))
    return cells


@pytest.mark.parametrize("seed", range(3))
def test_nasbench201_picture_draws_the_architectures_cell(seed: int) -> None:
    space = NasBench201Space()
    arch = space.sample(seed)
    # Nodes named as in the params: "arch/2<-1" is the edge from node 1 to node 2.
    expected = {
        f"{name.split('<-')[1]} {name.split('<-')[0]} {op}"
        for name, op in zip((d.name for d in space.decisions), space.edge_ops(arch), strict=True)
    }
    assert _drawn_graph(space, arch) == [({"0", "1", "2", "3"}, expected)]


@pytest.mark.parametrize("name", ["darts", "nasnet", "nasnet_no_combine"])
def test_cell_pictures_draw_the_architectures_cells(name: str) -> None:
    space = SPACES[name]()
    assert isinstance(space, DartsCells)
    for seed in range(3):
        arch = space.sample(seed)
        params = space.to_params(arch)
        drawn = _drawn_graph(space, arch)
        genotype = space.genotype(arch)
        assert len(drawn) == 2
        for (nodes, edges), cell, concat in zip(
            drawn, ("normal", "reduce"), (genotype.normal_concat, genotype.reduce_concat),
            strict=True,
        ):
            blocks = [f"n{k + 2}" for k in range(space.steps)]
            assert nodes == {"0", "1", "out", *blocks}
            expected = set()
            for block in blocks:
                # The block's two inputs and ops, read from the params by their names.
                key = f"arch/{cell}/{block}"
                if f"{key}/inputs" in params:
                    inputs = [int(i) for i in str(params[f"{key}/inputs"]).split(",")]
                else:
                    inputs = [int(params[f"{key}/in1"]), int(params[f"{key}/in2"])]
                for source, b in zip(inputs, (1, 2), strict=True):
                    state = str(source) if source < 2 else f"n{source}"
                    expected.add(f"{state} {block} {params[f'{key}/op{b}']}")
            expected |= {f"n{state} out " for state in concat}
            assert edges == expected


def test_picture_titles_and_described_architectures() -> None:
    assert _picture_title(3, None, None) == "trial 3"
    assert _picture_title(3, 0.912345, "valid accuracy") == "trial 3 · valid accuracy 0.9123"
    assert _picture_title(3, 0.5, None) == "trial 3 · value 0.5"
    assert _picture_title(3, float("nan"), "valid accuracy") == "trial 3"
    space = DartsCells()
    text = describe_architecture(space, space.sample(0))
    genotype = space.genotype(space.sample(0))
    (op1, i), (op2, j) = genotype.normal[0], genotype.normal[1]
    assert f"- **n2** = `{op1}({i})` + `{op2}({j})`" in text
    assert "*reduction cell*" in text and "- **output** = concat(" in text
    assert all(len(line) < 100 for line in text.splitlines())
    toy = ToySpace()
    assert "- `depth` = `" in describe_architecture(toy, toy.sample(0))


# ---- colours ----------------------------------------------------------------------------
_CVD = {  # Machado, Oliveira & Fernandes 2009, severity 1
    "normal": np.eye(3),
    "protan": np.array([[0.152286, 1.052583, -0.204868], [0.114503, 0.786281, 0.099216],
                        [-0.003882, -0.048116, 1.051998]]),
    "deutan": np.array([[0.367322, 0.860646, -0.227968], [0.280085, 0.672501, 0.047413],
                        [-0.011820, 0.042940, 0.968881]]),
    "tritan": np.array([[1.255528, -0.076749, -0.178779], [-0.078411, 0.930809, 0.147602],
                        [0.004733, 0.691367, 0.303900]]),
}


def _lab(colour: str, vision: str) -> np.ndarray:
    """CIELAB of a colour as a viewer with that vision sees it."""
    rgb = np.array(mcolors.to_rgb(colour))
    linear = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    linear = np.clip(_CVD[vision] @ linear, 0, 1)
    xyz = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722],
                    [0.0193, 0.1192, 0.9505]]) @ linear / np.array([0.9505, 1.0, 1.089])
    f = np.where(xyz > 0.008856, np.cbrt(xyz), 7.787 * xyz + 16 / 116)
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


OP_GROUPS = {
    **{f"op set {name}": ops for name, ops in OP_SETS.items()},
    **{f"space {name}": tuple(sorted({
        str(v) for d in make().decisions for v in d.choices if str(v) in list_ops()
    })) for name, make in SPACES.items()},
}


@pytest.mark.parametrize("group", [g for g in OP_GROUPS if OP_GROUPS[g]])
def test_the_ops_of_each_space_have_distinct_colour_blind_safe_colours(group: str) -> None:
    ops = OP_GROUPS[group]
    colours = [_op_colour(op) for op in ops]
    assert len({c.lower() for c in colours}) == len(ops), dict(zip(ops, colours, strict=True))
    # Told apart under normal vision and simulated protan-, deuter- and tritanopia: a
    # CIELAB difference of at least 9 between any two (2.3 is a just-noticeable one).
    for vision in _CVD:
        for a in range(len(ops)):
            for b in range(a):
                gap = float(np.linalg.norm(_lab(colours[a], vision) - _lab(colours[b], vision)))
                assert gap >= 9, (vision, ops[a], ops[b], round(gap, 1))


def test_every_registered_op_has_a_colour_of_its_own_in_the_table() -> None:
    assert set(list_ops()) <= set(_OP_COLOURS)


def test_draw_leaves_pyplot_alone() -> None:
    import matplotlib
    import matplotlib.pyplot as plt

    backend, figures = matplotlib.get_backend(), plt.get_fignums()
    space = NasNetCells()
    draw_architecture(space, space.sample(0))
    assert plt.get_fignums() == figures
    assert matplotlib.get_backend() == backend


def test_draw_rejects_an_architecture_of_another_space() -> None:
    with pytest.raises(ArchitectureError):
        draw_architecture(DartsCells(), NasBench201Space().sample(0))


# ---- logging to a study ---------------------------------------------------------------
@dataclass
class LoggedStudy:
    storage_url: str
    artifact_dir: Path
    study: optuna.Study
    space: SearchSpace
    artifact_ids: list[str]


def _logged_study(
    directory: Path, space: SearchSpace, n_trials: int = 2, metric: str | None = None
) -> LoggedStudy:
    artifact_dir = directory / "artifacts"
    artifact_dir.mkdir()
    store = optuna.artifacts.FileSystemArtifactStore(str(artifact_dir))
    storage_url = f"sqlite:///{directory / 'study.sqlite3'}"
    study = optuna.create_study(
        storage=storage_url, study_name="nas", sampler=optuna.samplers.RandomSampler(seed=0)
    )
    if metric is not None:  # as the demo, the pipeline and the examples name theirs
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names([metric])
    ids: list[str] = []

    def objective(trial: optuna.Trial) -> float:
        arch = space.suggest(trial)
        ids.append(log_architecture(trial, space, arch, artifact_store=store))
        return float(len(str(arch)))

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study.optimize(objective, n_trials=n_trials)
    return LoggedStudy(storage_url, artifact_dir, study, space, ids)


def test_log_architecture_in_a_study(tmp_path: Path) -> None:
    logged = _logged_study(tmp_path, NasNetCells())
    study, space = logged.study, logged.space
    assert len(logged.artifact_ids) == 2
    for trial, artifact_id in zip(study.trials, logged.artifact_ids, strict=True):
        assert trial.state == optuna.trial.TrialState.COMPLETE
        arch = space.from_params(trial.params)
        assert trial.user_attrs == {"arch": str(arch), "arch_space": "nasnet"}
        # The readable form is the trial's note, beside the parsable string.
        assert optuna_dashboard._note.get_note_from_system_attrs(
            study._storage.get_study_system_attrs(study._study_id), trial._trial_id
        )["body"] == describe_architecture(space, arch)
        metas = optuna.artifacts.get_all_artifact_meta(trial, storage=study._storage)
        assert [(m.artifact_id, m.mimetype) for m in metas] == [(artifact_id, "image/png")]
        assert metas[0].filename == f"architecture-trial-{trial.number}.png"
        stored = (logged.artifact_dir / artifact_id).read_bytes()
        assert stored == draw_architecture(space, arch, title=f"trial {trial.number}")


# ---- optuna-dashboard -----------------------------------------------------------------
def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get(url: str, timeout: float = 10.0) -> tuple[int, str, bytes]:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.status, response.headers.get("Content-Type", ""), response.read()


@dataclass
class Dashboard:
    url: str
    logged: LoggedStudy


@contextlib.contextmanager
def serve_dashboard(storage_url: str, artifact_dir: Path, log_path: Path) -> Iterator[str]:
    """optuna-dashboard's public entry point, in its own process, with a file-system
    artifact store; yields its URL once it answers."""
    port = _free_port()
    script = textwrap.dedent(
        f"""
        import optuna, optuna_dashboard
        store = optuna.artifacts.FileSystemArtifactStore({str(artifact_dir)!r})
        optuna_dashboard.run_server({storage_url!r}, host="127.0.0.1", port={port},
                                    artifact_store=store)
        """
    )
    log = log_path.open("wb")
    server = subprocess.Popen([sys.executable, "-c", script], stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 40
        while True:
            if server.poll() is not None:
                pytest.fail(f"optuna-dashboard exited: {log_path.read_text()}")
            try:
                if _get(url + "/api/meta", timeout=2)[0] == 200:
                    break
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                pytest.fail("optuna-dashboard did not answer within 40 s")
            time.sleep(0.2)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dashboard]:
    directory = tmp_path_factory.mktemp("dashboard")
    logged = _logged_study(directory, NasBench201Space(), n_trials=1, metric="valid accuracy")
    with serve_dashboard(
        logged.storage_url, logged.artifact_dir, directory / "dashboard.log"
    ) as url:
        yield Dashboard(url, logged)


def _artifact_path(dashboard: Dashboard) -> str:
    # The URL optuna-dashboard's trial page loads a trial artifact from
    # (optuna_dashboard/artifact/_backend.py, get_artifact_path).
    study = dashboard.logged.study
    trial = study.trials[0]
    return f"/artifacts/{study._study_id}/{trial._trial_id}/{dashboard.logged.artifact_ids[0]}"


def _trial_page(dashboard: Dashboard) -> str:
    # The frontend's route for a study's trial list, with one trial selected.
    study = dashboard.logged.study
    return f"{dashboard.url}/dashboard/studies/{study._study_id}/trials?numbers=0"


def test_dashboard_serves_the_picture(dashboard: Dashboard) -> None:
    logged = dashboard.logged
    trial = logged.study.trials[0]
    status, mimetype, body = _get(dashboard.url + _artifact_path(dashboard))
    assert status == 200 and mimetype == "image/png"
    assert body == (logged.artifact_dir / logged.artifact_ids[0]).read_bytes()
    arch = logged.space.from_params(trial.params)
    assert body == draw_architecture(logged.space, arch, title=f"trial {trial.number}")


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    if os.environ.get("CI") == "true":
        pytest.fail("Chromium is required in CI: install Debian's chromium package.")
    pytest.skip("Chromium is not installed (apt-get install chromium)")


def _run_chromium(tmp_path: Path, *args: str) -> bytes:
    profile = tmp_path / f"profile-{time.monotonic_ns()}"
    command = [
        _chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        "--window-size=1400,1200",
        "--virtual-time-budget=15000",
        *args,
    ]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        out, _ = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        pytest.fail(f"Chromium took over 60 s: {command}")
    finally:
        # Chromium's helper processes are in the session it was started in.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    return out


def test_dashboard_trial_page_has_the_picture(dashboard: Dashboard, tmp_path: Path) -> None:
    src = _artifact_path(dashboard)
    logged = dashboard.logged
    space = logged.space
    assert isinstance(space, NasBench201Space)
    ops = space.edge_ops(space.from_params(logged.study.trials[0].params))
    # The note's readable form, as optuna-dashboard renders its Markdown: node 3's line.
    note = re.compile(
        r"<strong>node 3</strong> = "
        + r" \+ ".join(rf"<code[^>]*>{re.escape(op)}\({i}\)</code>"
                       for i, op in enumerate(ops[3:]))
    )
    images: list[str] = []
    dom = ""
    for _ in range(3):  # the page renders from a few API calls; retry a slow first load
        dom = _run_chromium(tmp_path, "--dump-dom", _trial_page(dashboard)).decode()
        images = re.findall(r"<img\b[^>]*>", dom)
        if any(f'src="{src}"' in tag for tag in images) and note.search(dom):
            break
    assert any(f'src="{src}"' in tag for tag in images), images
    assert note.search(dom), dom[-3000:]


def test_dashboard_plots_name_the_objective(dashboard: Dashboard, tmp_path: Path) -> None:
    # The study's page plots the history of the values under the metric's name.
    page = f"{dashboard.url}/dashboard/studies/{dashboard.logged.study._study_id}"
    dom = ""
    for _ in range(3):
        dom = _run_chromium(tmp_path, "--dump-dom", page).decode()
        if "valid accuracy" in dom:
            break
    assert "valid accuracy" in dom and "Objective 0" not in dom


def test_dashboard_screenshot_shows_the_picture(dashboard: Dashboard, tmp_path: Path) -> None:
    logged = dashboard.logged
    picture = _image((logged.artifact_dir / logged.artifact_ids[0]).read_bytes())
    # Markers: the fills of the picture's input node (left) and output node (right), two
    # solid discs of colours that optuna-dashboard's own page does not use.
    left, right = markers = [_rgb(_INPUT_FILL), _rgb(_OUTPUT_FILL)]
    assert all(_count(picture, c) > 1_000 for c in markers)
    assert _centre(picture, left)[0] < _centre(picture, right)[0]

    shot_path = tmp_path / "trial-page.png"
    for _ in range(3):
        shot_path.unlink(missing_ok=True)
        _run_chromium(tmp_path, f"--screenshot={shot_path}", _trial_page(dashboard))
        if shot_path.exists() and all(_count(Image.open(shot_path), c) >= 40 for c in markers):
            break
    shot = Image.open(shot_path).convert("RGB")
    assert shot.size == (1400, 1200)
    # Both markers appear (the dashboard shows the picture as a thumbnail, so they cover
    # fewer pixels than in the picture, but keep their exact colour inside the nodes),
    # in the same order as in the picture, and close together as in one thumbnail.
    for colour in markers:
        assert _count(shot, colour) >= 40, (colour, _count(shot, colour))
    (lx, ly), (rx, ry) = _centre(shot, left), _centre(shot, right)
    assert lx < rx and abs(ly - ry) < 20
    # No stray pixel of either colour elsewhere on the page: together they span no more
    # than they do in the picture itself.
    assert _span(shot, markers) <= _span(picture, markers)


def _span(image: Image.Image, colours: Sequence[tuple[int, int, int]]) -> tuple[int, int]:
    ys, xs = np.nonzero(np.logical_or.reduce([_mask(image, c) for c in colours]))
    return int(xs.max() - xs.min()), int(ys.max() - ys.min())
