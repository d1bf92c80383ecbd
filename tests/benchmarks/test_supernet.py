"""The supernet step benchmark: ``python -m optuna_nas.benchmarks supernet``, at a tiny size.

The peer side runs where xautodl is installed (``pip install --no-deps xautodl==1.0.0``) and
is left out otherwise; a missing peer is simulated by hiding the module.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from optuna_nas.benchmarks.__main__ import main
from optuna_nas.benchmarks._supernet import (
    PEER_INSTALL,
    PeerMissingError,
    SideRun,
    SideSummary,
    StepConfig,
    SupernetBenchmark,
    measure_side,
    peer_available,
    run_supernet_benchmark,
)
from optuna_nas.spaces import NasBench201Space

PEER = peer_available()
TINY = StepConfig(
    steps=2, warmup=1, batch_size=8, channels=4, cells_per_stage=1, image_size=16, threads=1
)
TINY_ARGS = [
    "--steps", "2", "--warmup", "1", "--batch-size", "8", "--channels", "4",
    "--cells-per-stage", "1", "--image-size", "16", "--threads", "1", "--rounds", "1",
]
KEYS = ("ours_ms", "peer_ms", "time_ratio", "ours_peak_mb", "peer_peak_mb", "memory_ratio")
CHILD_KEYS = ("child_ms", "child_peak_mb", "memory_vs_child")


def _run(side: str, r: int, ms: tuple[float, ...], peak: float) -> SideRun:
    return SideRun(side, r, ms, peak, 700.0, "test", 1, 100, 1.0)


def test_figures_use_the_best_round_time_and_the_highest_peak() -> None:
    ours = SideSummary(
        "ours", (_run("ours", 0, (3.0, 5.0), 10.0), _run("ours", 1, (2.0, 4.0), 12.0))
    )
    peer = SideSummary(
        "peer", (_run("peer", 0, (6.0, 6.0), 20.0), _run("peer", 1, (8.0, 4.0), 18.0))
    )
    child = SideSummary("child", (_run("child", 0, (1.0, 2.0, 6.0), 10.0),))
    result = SupernetBenchmark(TINY, 2, ("a",), {"ours": ours, "peer": peer, "child": child})
    figures = result.figures()
    assert figures["ours_ms"] == pytest.approx(3.0)  # round 2: mean 3 beats round 1's 4
    assert ours.median_ms == pytest.approx(3.0)
    assert figures["peer_ms"] == pytest.approx(6.0)
    assert figures["time_ratio"] == pytest.approx(0.5)
    assert (figures["ours_peak_mb"], figures["peer_peak_mb"]) == (12.0, 20.0)
    assert figures["memory_ratio"] == pytest.approx(0.6)
    assert figures["child_ms"] == pytest.approx(3.0)
    assert figures["memory_vs_child"] == pytest.approx(1.2)
    lines = result.lines()
    assert lines[1].split()[:3] == ["ours", "(single", "path)"]
    assert lines[-3].endswith("0.500") and lines[-1].endswith("1.200")

    alone = SupernetBenchmark(TINY, 2, ("a",), {"ours": ours, "child": child})
    assert alone.figures()["peer_ms"] is None and alone.figures()["time_ratio"] is None
    assert alone.lines()[-3].endswith("n/a")
    document = alone.as_dict()
    assert set(KEYS + CHILD_KEYS) <= set(document)
    assert len(document["runs"]["ours"]) == 2


def test_config_checks_and_architectures() -> None:
    with pytest.raises(ValueError, match="device"):
        StepConfig(device="tpu")
    with pytest.raises(ValueError, match="steps"):
        StepConfig(steps=0)
    with pytest.raises(ValueError, match="warmup"):
        StepConfig(warmup=-1)
    archs = TINY.architectures()
    assert len(archs) == 3 and archs == TINY.architectures()
    space = NasBench201Space()
    assert [space.parse(a).string for a in archs] == archs
    assert StepConfig(seed=1).architectures() != StepConfig(seed=2).architectures()
    with pytest.raises(ValueError, match="expected 3 architectures"):
        measure_side("ours", TINY, archs[:2])


@pytest.mark.skipif(not PEER, reason=f"xautodl is not installed ({PEER_INSTALL})")
def test_architecture_strings_are_the_peers() -> None:
    from xautodl.models import CellStructure

    for arch in StepConfig(steps=20).architectures():
        assert CellStructure.str2structure(arch).tostr() == arch


def test_library_run_at_a_tiny_size() -> None:
    # The peer runs in the CLI test below; here ours and the child, to keep the time down
    # (each run is a fresh process: a few seconds of imports).
    seen: list[SideRun] = []
    result = run_supernet_benchmark(TINY, rounds=1, peer=False, progress=seen.append)
    assert [run.side for run in seen] == ["ours", "child"]
    for run in seen:
        assert len(run.step_ms) == TINY.steps
        assert all(ms > 0 for ms in run.step_ms)
        assert run.peak_mb > 0 and run.threads == 1 and run.parameters > 0
    figures = result.figures()
    for key in KEYS + CHILD_KEYS:
        value = figures[key]
        if key in ("ours_ms", "ours_peak_mb", *CHILD_KEYS):
            assert value is not None and value > 0, key
        else:
            assert value is None, key
    assert result.peer_version is None
    # Ours holds every op of every edge, a child one op per edge.
    assert seen[0].parameters > seen[1].parameters


def test_cli_prints_the_table_and_writes_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "supernet.json"
    argv = ["supernet", *TINY_ARGS, "--json", str(out)] + ([] if PEER else ["--skip-peer"])
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "time ratio ours/peer:" in printed and "memory ratio ours/child:" in printed
    document = json.loads(out.read_text(encoding="utf-8"))
    assert document["benchmark"] == "supernet"
    assert set(KEYS + CHILD_KEYS) <= set(document)
    for key in KEYS + CHILD_KEYS:
        if PEER or key in ("ours_ms", "ours_peak_mb", *CHILD_KEYS):
            assert document[key] > 0, key
        else:
            assert document[key] is None, key
    assert document["config"]["channels"] == 4 and document["rounds"] == 1
    assert document["peer"]["version"] == ("1.0.0" if PEER else None)
    assert len(document["architectures"]) == 3
    assert document["runs"]["ours"][0]["step_ms"][0] > 0


def test_cli_says_how_to_install_a_missing_peer(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "xautodl", None)  # import xautodl now fails
    assert not peer_available()
    assert main(["supernet", *TINY_ARGS]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "xautodl" in err and PEER_INSTALL in err
    with pytest.raises(PeerMissingError, match="--no-deps xautodl==1.0.0"):
        run_supernet_benchmark(TINY)
    with pytest.raises(PeerMissingError):
        measure_side("peer", TINY)


def test_cli_user_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "no" / "such" / "out.json"
    assert main(["supernet", *TINY_ARGS, "--skip-peer", "--json", str(missing)]) == 2
    assert "does not exist" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert main(["supernet", *TINY_ARGS, "--skip-peer", "--device", "cuda"]) == 2
        assert capsys.readouterr().err.strip() == (
            "error: --device cuda, but torch sees no CUDA device."
        )
    with pytest.raises(SystemExit) as exit_info:
        main(["supernet", "--warmup", "-1"])
    assert exit_info.value.code == 2
