"""The DARTS search-iteration benchmark: ``python -m optuna_nas.benchmarks darts``, tiny size.

The peer side runs where xautodl is installed (``pip install --no-deps xautodl==1.0.0``) and
is left out otherwise; a missing peer is simulated by hiding the module.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path

import pytest
import torch

from optuna_nas.benchmarks.__main__ import main
from optuna_nas.benchmarks._darts import (
    PEER_INSTALL,
    DartsBenchmark,
    DartsRun,
    PeerMissingError,
    darts_config,
    measure_darts_side,
    peer_available,
    run_darts_benchmark,
)

PEER = peer_available()
TINY = darts_config(
    steps=2, warmup=1, batch_size=8, channels=4, cells_per_stage=1, image_size=16, threads=1
)
TINY_ARGS = [
    "--steps", "2", "--warmup", "1", "--batch-size", "8", "--channels", "4",
    "--cells-per-stage", "1", "--image-size", "16", "--threads", "1",
]
KEYS = ("ours_ms", "peer_ms", "time_ratio", "ours_peak_mb", "peer_peak_mb", "memory_ratio")


def _run(side: str, r: int, ms: tuple[float, ...], peak: float, weights: int) -> DartsRun:
    arch = tuple(m / 4 for m in ms)
    rest = tuple(m - a for m, a in zip(ms, arch, strict=True))
    return DartsRun(side, r, ms, arch, rest, peak, 700.0, "test", 1, weights, 30, 1.0)


def test_figures_ratios_and_the_parameter_check() -> None:
    ours = (_run("ours", 0, (3.0, 5.0), 10.0, 1000), _run("ours", 1, (2.0, 4.0), 12.0, 1000))
    peer = (_run("peer", 0, (6.0, 6.0), 20.0, 1005),)
    result = DartsBenchmark(TINY, 2, {"ours": ours, "peer": peer})
    figures = result.figures()
    assert figures["ours_ms"] == pytest.approx(3.0)  # round 2's mean beats round 1's
    assert figures["peer_ms"] == pytest.approx(6.0)
    assert figures["time_ratio"] == pytest.approx(0.5)
    assert (figures["ours_peak_mb"], figures["peer_peak_mb"]) == (12.0, 20.0)
    assert figures["memory_ratio"] == pytest.approx(0.6)
    assert result.parameter_difference() == pytest.approx(5 / 1035)
    lines = result.lines()
    assert lines[1].split()[:2] == ["ours", "(DartsSearch)"]
    assert "within 1%" in lines[-3]
    assert lines[-2].endswith("0.500") and lines[-1].endswith("0.600")
    document = result.as_dict()
    assert set(KEYS) <= set(document) and document["parameters_match"] is True
    assert document["ours_parameters"] == 1030 and len(document["runs"]["ours"]) == 2
    assert document["runs"]["ours"][1]["mean_arch_ms"] == pytest.approx(0.75)

    unlike = DartsBenchmark(TINY, 1, {"ours": ours, "peer": (_run("peer", 0, (6.0,), 9, 2000),)})
    assert "MORE THAN 1%" in unlike.lines()[-3]
    assert unlike.as_dict()["parameters_match"] is False

    alone = DartsBenchmark(TINY, 1, {"ours": ours})
    assert alone.figures()["peer_ms"] is None and alone.figures()["time_ratio"] is None
    assert alone.parameter_difference() is None
    assert alone.lines()[-2].endswith("n/a")


def test_library_run_at_a_tiny_size() -> None:
    # Each side is a fresh process (a few seconds of imports): the library runs ours and the
    # peer one iteration each, the CLI test below both sides again.
    seen: list[DartsRun] = []
    config = darts_config(**{**asdict(TINY), "steps": 1, "warmup": 0})
    result = run_darts_benchmark(config, peer=PEER, progress=seen.append)
    assert [run.side for run in seen] == (["ours", "peer"] if PEER else ["ours"])
    for run in seen:
        assert len(run.step_ms) == len(run.arch_ms) == len(run.weight_ms) == 1
        assert all(ms > 0 for ms in run.step_ms + run.arch_ms + run.weight_ms)
        assert run.peak_mb > 0 and run.threads == 1 and run.weights > 0
        assert run.alphas == 6 * 5  # six edges, five ops
    figures = result.figures()
    for key in KEYS:
        if PEER or key in ("ours_ms", "ours_peak_mb"):
            assert figures[key] is not None and figures[key] > 0, key  # type: ignore[operator]
        else:
            assert figures[key] is None, key
    if PEER:
        difference = result.parameter_difference()
        assert difference is not None and difference < 0.02
        assert result.peer_version == "1.0.0"


def test_cli_prints_the_table_and_writes_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "darts.json"
    argv = ["darts", *TINY_ARGS, "--json", str(out)] + ([] if PEER else ["--skip-peer"])
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "time ratio ours/peer:" in printed and "memory ratio ours/peer:" in printed
    document = json.loads(out.read_text(encoding="utf-8"))
    assert document["benchmark"] == "darts"
    for key in KEYS:
        if PEER or key in ("ours_ms", "ours_peak_mb"):
            assert document[key] > 0, key
        else:
            assert document[key] is None, key
    assert document["config"]["channels"] == 4 and document["rounds"] == 1
    assert document["weight_optimizer"]["lr"] == 0.025
    assert document["arch_optimizer"]["betas"] == [0.5, 0.999]
    assert document["peer"]["version"] == ("1.0.0" if PEER else None)
    assert document["peer"]["network"].startswith("DARTS-V1")
    assert document["runs"]["ours"][0]["step_ms"][0] > 0
    if PEER:
        assert "parameter difference:" in printed


def test_cli_says_how_to_install_a_missing_peer(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "xautodl", None)  # import xautodl now fails
    assert not peer_available()
    assert main(["darts", *TINY_ARGS]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "xautodl" in err and PEER_INSTALL in err
    with pytest.raises(PeerMissingError, match="--no-deps xautodl==1.0.0"):
        run_darts_benchmark(TINY)
    with pytest.raises(PeerMissingError):
        measure_darts_side("peer", TINY)


def test_cli_user_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "no" / "such" / "out.json"
    assert main(["darts", *TINY_ARGS, "--skip-peer", "--json", str(missing)]) == 2
    assert "does not exist" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert main(["darts", *TINY_ARGS, "--skip-peer", "--device", "cuda"]) == 2
        assert capsys.readouterr().err.strip() == (
            "error: --device cuda, but torch sees no CUDA device."
        )
    with pytest.raises(SystemExit) as exit_info:
        main(["darts", "--steps", "0"])
    assert exit_info.value.code == 2
    with pytest.raises(ValueError, match="side"):
        measure_darts_side("child", TINY)
    with pytest.raises(ValueError, match="rounds"):
        run_darts_benchmark(TINY, rounds=0)
