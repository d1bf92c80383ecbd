"""The outer-study example (DARTS inside trials, ASHA outside) end to end at a tiny size,
and optuna-dashboard serving each of its trials' derived-cell pictures: over HTTP, and on
the trial pages as headless Chromium renders them (skipped without Chromium outside CI, as
in tests/test_dashboard.py)."""

from __future__ import annotations

import contextlib
import io
import re
import runpy
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from optuna_nas.dashboard import draw_architecture
from optuna_nas.spaces import NasBench201Space
from tests.test_dashboard import _get, _run_chromium, serve_dashboard

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "darts_outer_study.py"


@dataclass
class Run:
    directory: Path
    outcome: Any  # the example's Outcome
    printed: str
    study: optuna.Study
    store_dir: Path
    seconds: float


@pytest.fixture(scope="module")
def example_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    directory = tmp_path_factory.mktemp("darts-outer")
    args = ["--trials", "3", "--max-epochs", "2", "--channels", "4", "--batch-size", "128",
            "--retrain-epochs", "1", "--db", str(directory / "studies.db"),
            "--artifact-dir", str(directory / "artifacts")]
    main: Any = runpy.run_path(str(EXAMPLE))["main"]
    capture = io.StringIO()
    start = time.perf_counter()
    with contextlib.redirect_stdout(capture):
        outcome = main(args)
    seconds = time.perf_counter() - start
    study = optuna.load_study(study_name="darts_outer_nasbench201",
                              storage=f"sqlite:///{directory / 'studies.db'}")
    yield Run(directory, outcome, capture.getvalue(), study, directory / "artifacts", seconds)


def cell_artifact(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> str:
    metas = optuna.artifacts.get_all_artifact_meta(trial, storage=study._storage)
    (cell,) = [m for m in metas if m.filename == f"architecture-trial-{trial.number}.png"]
    assert cell.mimetype == "image/png"
    return cell.artifact_id


def test_the_example_runs_end_to_end(example_run: Run) -> None:
    study = example_run.study
    trials = study.trials
    assert example_run.seconds < 120
    assert len(trials) == 3
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
    assert {"arch_lr", "weight_lr", "epochs", "order"} <= set(trials[0].params)
    space = NasBench201Space()
    best = study.best_trial
    printed = example_run.printed
    assert f"derived architecture: {best.user_attrs['arch']}" in printed
    assert example_run.outcome.best.number == best.number
    assert example_run.outcome.dashboard_command in printed
    assert example_run.outcome.dashboard_command.startswith("optuna-dashboard sqlite:///")
    # The best cell went into the retraining study with one call and was trained there.
    retrain = optuna.load_study(study_name="darts_retrain_nasbench201",
                                storage=f"sqlite:///{example_run.directory / 'studies.db'}")
    (retrained,) = retrain.trials
    assert retrained.state == TrialState.COMPLETE
    assert space.from_params(retrained.params) == space.parse(best.user_attrs["arch"])
    assert 0 <= retrained.user_attrs["test_accuracy"] <= 1


def test_the_dashboard_shows_each_trials_derived_cell(example_run: Run, tmp_path: Path) -> None:
    study, space = example_run.study, NasBench201Space()
    storage = f"sqlite:///{example_run.directory / 'studies.db'}"
    with serve_dashboard(storage, example_run.store_dir,
                         example_run.directory / "dashboard.log") as url:
        for trial in study.trials:
            artifact = cell_artifact(study, trial)
            src = f"/artifacts/{study._study_id}/{trial._trial_id}/{artifact}"
            status, mimetype, body = _get(url + src)
            assert status == 200 and mimetype == "image/png"
            title = f"trial {trial.number} · valid accuracy {trial.value:.4g}"
            arch = space.parse(trial.user_attrs["arch"])
            assert body == draw_architecture(space, arch, title=title)
        # The trial pages, rendered by a browser, show each trial's cell picture.
        for trial in study.trials:
            src = (f"/artifacts/{study._study_id}/{trial._trial_id}/"
                   f"{cell_artifact(study, trial)}")
            page = f"{url}/dashboard/studies/{study._study_id}/trials?numbers={trial.number}"
            images: list[str] = []
            for _ in range(3):  # the page renders from a few API calls; retry a slow load
                dom = _run_chromium(tmp_path, "--dump-dom", page).decode()
                images = re.findall(r"<img\b[^>]*>", dom)
                if any(f'src="{src}"' in tag for tag in images):
                    break
            assert any(f'src="{src}"' in tag for tag in images), (trial.number, images)
