"""The three-stage pipeline: the example runs end to end and repeats its numbers, seeds are
recorded on the studies, a rerun on the same storage resumes instead of training again."""

from __future__ import annotations

import runpy
import time
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from optuna_nas import load_digits
from optuna_nas.pipeline import evaluate_stage, retrain_stage, run_pipeline
from optuna_nas.spaces import DartsCells, NasBench201Space

EXAMPLE = Path(__file__).parents[1] / "examples" / "weight_sharing_pipeline.py"
TINY_ARGS = ["--search-trials", "20", "--steps-per-trial", "3", "--top-k", "2",
             "--retrain-epochs", "1", "--evaluate-epochs", "1", "--seeds", "0", "1",
             "--channels", "4"]


def test_the_example_runs_end_to_end_and_repeats_its_numbers(
    capsys: pytest.CaptureFixture[str],
) -> None:
    main: Any = runpy.run_path(str(EXAMPLE))["main"]
    start = time.perf_counter()
    main(TINY_ARGS)
    first = capsys.readouterr().out
    main(TINY_ARGS)
    second = capsys.readouterr().out
    assert time.perf_counter() - start < 300
    assert "stage 3" in first and "test accuracy" in first
    assert first == second


def test_seeds_are_recorded_and_a_rerun_resumes(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'pipeline.db'}"
    data = load_digits(seed=0)
    options: dict[str, Any] = dict(
        search_trials=8, steps_per_trial=2, top_k=2, retrain_epochs=1, evaluate_epochs=1,
        seeds=(3, 4), seed=7, supernet_options={"channels": 4, "cells_per_stage": 1},
        network_options={"channels": 4, "cells_per_stage": 1}, storage=storage,
        checkpoint=tmp_path / "supernet.pt",
    )
    first = run_pipeline(NasBench201Space(), data, **options)
    assert first.search.user_attrs["seed"] == 7
    assert {t.user_attrs["seed"] for t in first.search.trials} == {7}
    assert {t.user_attrs["seed"] for t in first.retrain.trials} == {7}
    assert sorted(t.user_attrs["seed"] for t in first.evaluation.trials) == [3, 4]
    assert first.evaluation.user_attrs["seeds"] == [3, 4]
    assert len(first.retrain.trials) == 2 and first.best in [a for a, _ in first.candidates]
    second = run_pipeline(NasBench201Space(), data, **options)
    assert len(second.search.trials) == 8
    assert len(second.retrain.trials) == 2 and len(second.evaluation.trials) == 2
    assert second.candidates == first.candidates
    assert second.test_accuracies == first.test_accuracies
    with pytest.raises(ValueError, match="seed 7"):
        run_pipeline(NasBench201Space(), data, **{**options, "seed": 8})


def test_retrain_and_evaluate_stages_on_the_darts_space() -> None:
    space = DartsCells(steps=2)
    data = load_digits(seed=0)
    archs = [space.sample(k) for k in range(2)]
    net = {"channels": 4, "layers": 2}
    study = retrain_stage(space, data, archs, epochs=1, network_options=net, seed=1)
    assert [space.from_params(t.params) for t in study.trials] == archs
    assert all(t.state == TrialState.COMPLETE for t in study.trials)
    evaluation, accuracies = evaluate_stage(space, data, archs[0], seeds=[0, 1], epochs=1,
                                            network_options=net)
    assert len(accuracies) == 2 and all(0.0 <= a <= 1.0 for a in accuracies)
    assert isinstance(evaluation, optuna.Study)
    with pytest.raises(ValueError, match="distinct"):
        evaluate_stage(space, data, archs[0], seeds=[1, 1], epochs=1)
    with pytest.raises(ValueError, match="at least one"):
        retrain_stage(space, data, [], epochs=1)
