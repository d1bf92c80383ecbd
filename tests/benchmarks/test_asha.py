"""The ASHA benchmark: ``python -m optuna_nas.benchmarks asha``, at a tiny size."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from torch.utils.data import Subset

from optuna_nas.benchmarks.__main__ import main
from optuna_nas.benchmarks._asha import (
    AshaArm,
    AshaBenchmark,
    AshaRun,
    run_asha_arm,
    run_asha_benchmark,
)
from optuna_nas.data import ImageData, load_digits

TINY = {"channels": 4, "cells_per_stage": 1}


def _run(arm: str, seed: int, test: float, epochs: int, best: int = 0) -> AshaRun:
    return AshaRun(arm, seed, best, "arch", 0.9, test, epochs, 1, 0, 0, wall_s=1.0)


def test_figures_of_the_arms() -> None:
    asha = AshaArm(
        "asha", (_run("asha", 0, 0.90, 10, best=2), _run("asha", 1, 0.96, 20, best=3))
    )
    full = AshaArm("full", (_run("full", 0, 0.92, 40), _run("full", 1, 0.96, 80, best=3)))
    result = AshaBenchmark(asha, full, {"n_trials": 5})
    assert asha.mean == pytest.approx(0.93)
    assert asha.std == pytest.approx(0.03)
    assert asha.std_sample == pytest.approx(0.03 * 2**0.5)
    assert (asha.epochs, full.epochs) == (30, 120)
    assert result.epoch_ratio == pytest.approx(0.25)
    assert result.differences == pytest.approx([-0.02, 0.0])
    lines = result.lines()
    assert lines[0].startswith("asha: best test accuracy 93.00 ± 3.00 %  epochs 30")
    assert lines[2] == "epochs asha/full: 0.250"
    assert "kept the full arm's best trial in 1 of 2 seeds" in lines[3]
    document = result.as_dict()
    assert document["n_trials"] == 5
    assert document["arms"]["full"]["epochs"] == 120
    assert len(document["arms"]["asha"]["runs"]) == 2


@pytest.fixture(scope="module")
def data() -> ImageData:
    """A slice of the digits data, so a trial takes a fraction of a second."""
    full = load_digits(seed=0)
    assert full.test is not None
    return ImageData(
        Subset(full.train, range(128)), Subset(full.valid, range(64)),
        Subset(full.test, range(64)), 10, 1, 8, name="slice",
    )


def test_run_asha_arm_scores_the_best_complete_trial(data: ImageData) -> None:
    run = run_asha_arm("asha", 1, data, n_trials=5, max_epochs=3, network_options=TINY)
    assert (run.arm, run.seed) == ("asha", 1)
    assert run.n_complete + run.n_pruned + run.n_failed == 5
    assert run.n_complete >= 1 and run.n_pruned >= 1
    assert run.epochs == 3 * run.n_complete + 2 * run.n_pruned
    assert 0.0 <= run.best_test_accuracy <= 1.0
    assert "~0|" in run.best_architecture
    with pytest.raises(ValueError, match="Unknown arm 'half'"):
        run_asha_arm("half", 0, data)
    with pytest.raises(ValueError, match="no test split"):
        run_asha_arm("full", 0, ImageData(data.train, data.valid, None, 10, 1, 8))


def test_run_asha_benchmark_runs_both_arms_per_seed(data: ImageData) -> None:
    seen: list[tuple[str, int]] = []
    result = run_asha_benchmark(
        seeds=[4], n_trials=2, max_epochs=2, network_options=TINY, data=data,
        progress=lambda run: seen.append((run.arm, run.seed)),
    )
    assert seen == [("asha", 4), ("full", 4)]
    assert result.full.epochs == 4
    assert result.asha.epochs <= result.full.epochs
    assert result.settings["seeds"] == [4]
    assert result.settings["data"] == "slice"
    with pytest.raises(ValueError, match="at least one seed"):
        run_asha_benchmark(seeds=[])
    with pytest.raises(ValueError, match="must be below max_epochs"):
        run_asha_benchmark(seeds=1, min_resource=4, max_epochs=4)


def test_cli_prints_the_figures_and_writes_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "asha.json"
    status = main(
        ["asha", "--seeds", "1", "--trials", "1", "--max-epochs", "2", "--json", str(out)]
    )
    printed = capsys.readouterr().out.splitlines()
    assert status == 0
    assert printed[0].startswith("seed 0 asha: best test ")
    assert printed[1].startswith("seed 0 full: best test ")
    assert printed[2].startswith("asha: best test accuracy ")
    assert printed[3].startswith("full: best test accuracy ")
    assert "epochs 2 (2.0 per seed)" in printed[3]  # One trial: ASHA cannot stop it.
    assert printed[4].startswith("epochs asha/full: ")
    document = json.loads(out.read_text(encoding="utf-8"))
    assert document["benchmark"] == "asha"
    for key in (
        "seeds", "n_trials", "max_epochs", "min_resource", "reduction_factor", "arms",
        "epoch_ratio", "paired_difference", "network_options", "torch_threads", "device",
    ):
        assert key in document, key
    assert document["seeds"] == [0]
    assert (document["n_trials"], document["max_epochs"]) == (1, 2)
    assert set(document["arms"]) == {"asha", "full"}
    full = document["arms"]["full"]
    assert full["epochs"] == document["arms"]["asha"]["epochs"] == 2
    for key in ("mean_test_accuracy", "std_test_accuracy", "std_sample_test_accuracy", "runs"):
        assert key in full, key
    assert document["epoch_ratio"] == pytest.approx(
        document["arms"]["asha"]["epochs"] / full["epochs"]
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--max-epochs", "2", "--min-resource", "2"], "must be below max_epochs"),
        (["--reduction-factor", "1"], "reduction_factor must be an integer of at least 2"),
        (["--json", "/no/such/folder/asha.json"], "its folder does not exist"),
    ],
)
def test_cli_user_errors_are_one_line(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["asha", "--seeds", "1", "--trials", "1", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err
    assert err.count("\n") == 1
