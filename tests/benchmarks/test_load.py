"""The load benchmark: real worker processes on one study, and its lost/duplicate counts."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest

from optuna_nas.benchmarks import _load
from optuna_nas.benchmarks.__main__ import main


def test_two_workers_lose_and_duplicate_nothing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'load.db'}"
    result = _load.run_load(url, workers=2, trials=12, trial_seconds=0.05, log=tmp_path / "log")
    assert result.complete >= 12 and result.lost == 0 and result.duplicated == 0
    assert result.trials_per_s > 0 and 0 < result.sampler_share < 1
    assert result.best_value <= 22.5
    # The study is deleted afterwards; the workers' lines are in the log.
    assert optuna.get_all_study_names(url) == []
    assert "[cpu#1]" in (tmp_path / "log").read_text()


def test_the_measure_counts_lost_and_duplicated_trials() -> None:
    study = optuna.create_study(direction="maximize")
    for token in ["1:0", "1:1", "1:1", None]:
        study.add_trial(
            optuna.trial.create_trial(value=1.0, user_attrs={"token": token} if token else {})
        )
    study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL))
    stats = [_load._ProcessStats(sampler_s=1.0, calls=5, first_start=0.0, last_end=4.0)]
    result = _load._measure(study, stats, workers=1, trials=4, trial_seconds=0.0, launched=0.0)
    # 5 calls, 2 distinct tokens on COMPLETE trials: 3 lost, plus the failed trial; one
    # token held twice and one trial without a token are duplicates.
    assert (result.lost, result.duplicated) == (4, 2)
    assert result.sampler_share == pytest.approx(0.25)


def test_the_command_line_writes_its_figures(tmp_path: Path) -> None:
    out = tmp_path / "load.json"
    code = main(["load", "--storage", f"sqlite:///{tmp_path / 'cli.db'}", "--workers", "1",
                 "--trials", "3", "--trial-seconds", "0", "--json", str(out)])
    assert code == 0
    document = json.loads(out.read_text())
    assert [run["workers"] for run in document["runs"]] == [1]
    assert document["runs"][0]["lost"] == 0
    with pytest.raises(SystemExit):
        main(["load", "--workers", "0"])
