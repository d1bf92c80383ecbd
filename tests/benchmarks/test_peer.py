"""The per-side process harness the peer speed benchmarks (supernet, darts) share.

The process tests run a tiny stand-in worker module (written to a temporary folder on the
PYTHONPATH), so they cover the harness without building any network.
"""

from __future__ import annotations

import textwrap
from dataclasses import asdict, dataclass
from pathlib import Path

import pytest
import torch

from optuna_nas.benchmarks import _peer
from optuna_nas.benchmarks._peer import (
    Harness,
    PeerBenchmarkError,
    PeerMissingError,
    SideProcess,
    StepConfig,
)

TINY = StepConfig(steps=1, warmup=0, batch_size=2, channels=2, cells_per_stage=1, image_size=8)

# Behaves as its spec's ``behave`` says: a result, a benchmark error, or a missing peer.
FAKE_WORKER = '''
import sys

from optuna_nas.benchmarks._peer import PeerBenchmarkError, worker_main


def worker(spec):
    if spec["behave"] == "fail":
        raise PeerBenchmarkError("out of memory")
    if spec["behave"] == "no peer":
        import xautodl_is_not_here as xautodl  # noqa: F401
    return {
        "side": spec["side"], "step_ms": [1.5, 2.5], "peak_mb": 3.0, "baseline_mb": 4.0,
        "memory_method": "fake", "threads": 2, "extra": 7,
    }


if __name__ == "__main__":
    sys.exit(worker_main(sys.argv[1:], "fake_peer_worker", worker))
'''


class FakeError(PeerBenchmarkError):
    """The stand-in benchmark's error."""


@pytest.fixture
def fake_harness(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Harness:
    (tmp_path / "fake_peer_worker.py").write_text(textwrap.dedent(FAKE_WORKER), "utf-8")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))  # The harness puts the package first.
    monkeypatch.setattr(_peer, "peer_available", lambda: True)
    return Harness("fake_peer_worker", ("ours", "peer"), FakeError)


def test_measure_returns_the_record_fields_and_the_document(fake_harness: Harness) -> None:
    fields, document = fake_harness.measure("ours", {"side": "ours", "behave": "ok"},
                                            round_index=3)
    wall_s = fields.pop("wall_s")
    assert wall_s > 0
    assert fields == {
        "side": "ours", "round": 3, "step_ms": (1.5, 2.5), "peak_mb": 3.0,
        "baseline_mb": 4.0, "memory_method": "fake", "threads": 2,
    }
    assert document["extra"] == 7


def test_measure_turns_failures_into_the_benchmarks_errors(fake_harness: Harness) -> None:
    with pytest.raises(FakeError, match="^the ours process failed: error: out of memory$"):
        fake_harness.measure("ours", {"side": "ours", "behave": "fail"})
    # The peer's import failing in the worker is the missing peer, not a crash.
    with pytest.raises(PeerMissingError):
        fake_harness.measure("peer", {"side": "peer", "behave": "no peer"})
    with pytest.raises(ValueError, match="side must be one of"):
        fake_harness.measure("child", {"side": "child", "behave": "ok"})


def test_measure_checks_for_the_peer_before_starting_a_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_peer, "peer_available", lambda: False)
    harness = Harness("no_such_module_anywhere", ("ours", "peer"), FakeError)
    with pytest.raises(PeerMissingError, match="--skip-peer"):
        harness.measure("peer", {"side": "peer"})


def test_rounds_rotate_the_order_and_leave_the_peer_out_on_request(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_peer, "peer_available", lambda: True)
    harness = Harness("unused", ("ours", "peer", "child"), FakeError)
    order: list[tuple[str, int]] = []
    seen: list[tuple[str, int]] = []

    def measure(side: str, round_index: int) -> tuple[str, int]:
        order.append((side, round_index))
        return side, round_index

    runs, machine = harness.run_rounds(measure, rounds=3, peer=True, progress=seen.append)
    assert [side for side, _ in order] == [
        "ours", "peer", "child", "peer", "child", "ours", "child", "ours", "peer",
    ]
    assert seen == order
    assert runs["peer"] == (("peer", 0), ("peer", 1), ("peer", 2))
    assert {"python", "torch", "cpu_count", "load_average_start"} <= set(machine)

    runs, _ = harness.run_rounds(measure, rounds=2, peer=False)
    assert list(runs) == ["ours", "child"]
    assert runs["ours"] == (("ours", 0), ("ours", 1))  # Round 2 starts with the child.
    with pytest.raises(ValueError, match="rounds"):
        harness.run_rounds(measure, rounds=0, peer=False)
    monkeypatch.setattr(_peer, "peer_available", lambda: False)
    with pytest.raises(PeerMissingError):
        harness.run_rounds(measure, rounds=1, peer=True)


@dataclass(frozen=True)
class _Run:
    side: str
    round: int
    step_ms: tuple[float, ...]
    peak_mb: float
    threads: int
    wall_s: float


def test_reports_share_their_lines_and_records() -> None:
    run = _Run("peer", 1, (1.0, 2.0), 12.34, 4, 9.6)
    assert _peer.run_document(run, mean_ms=1.5) == {
        "side": "peer", "round": 1, "step_ms": [1.0, 2.0], "peak_mb": 12.34, "threads": 4,
        "wall_s": 9.6, "mean_ms": 1.5,
    }
    assert _peer.run_line(run, "mean 1.5 ms") == (
        "round 2 peer   mean 1.5 ms  peak     12.3 MiB  (4 threads, 10 s)"
    )
    figures = _peer.headline_figures(2.0, 4.0, 3.0, None)
    assert figures["time_ratio"] == 0.5 and figures["memory_ratio"] is None
    assert _peer.ratio(1.0, 0.0) is None
    assert _peer.ratio_lines(
        figures, ("time ratio ours/peer", "time_ratio"), ("memory ratio ours/peer", "memory_ratio")
    ) == ["time ratio ours/peer:      0.500", "memory ratio ours/peer:    n/a"]


def test_side_process_draws_seeded_batches_and_measures_memory() -> None:
    process = SideProcess({"side": "ours", "config": asdict(TINY)})
    (x1, y1), (x2, _) = process.batches(2)
    (again, _), _ = process.batches(2)
    assert x1.shape == (2, 3, 8, 8) and y1.shape == (2,) and int(y1.max()) < TINY.num_classes
    assert torch.equal(x1, again) and not torch.equal(x1, x2)
    process.start_memory()
    value, ms = process.timed(lambda: torch.ones(64, 64).sum())
    assert float(value) == 64 * 64 and ms >= 0
    result = process.result(step_ms=[ms])
    assert result["side"] == "ours" and result["step_ms"] == [ms]
    assert result["peak_mb"] >= 0 and result["baseline_mb"] > 0
    assert result["memory_method"] and result["threads"] == torch.get_num_threads()


def test_worker_main_usage(capsys: pytest.CaptureFixture[str]) -> None:
    assert _peer.worker_main([], "some.module", lambda spec: {}) == 2
    assert "usage: python -m some.module SPEC_JSON" in capsys.readouterr().err

    def failing(spec: object) -> dict[str, object]:
        raise FakeError("no room")

    assert _peer.worker_main(["{}"], "some.module", failing) == 1
    assert capsys.readouterr().err == "error: no room\n"
    assert _peer.worker_main(['{"a": 1}'], "some.module", lambda spec: dict(spec)) == 0
    assert capsys.readouterr().out == 'PEER-WORKER-RESULT {"a": 1}\n'
