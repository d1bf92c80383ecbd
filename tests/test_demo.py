"""The demo objective, the resumable demo study and the ``optuna-nas`` command line, on
tiny networks (4 channels, one cell, one epoch) and real SQLite files."""

from __future__ import annotations

import math
from pathlib import Path

import optuna
import pytest
from optuna.artifacts import FileSystemArtifactStore
from optuna.trial import TrialState
from torch.utils.data import TensorDataset

from optuna_nas import cli, demo
from optuna_nas.data import ImageData, load_digits
from optuna_nas.demo import DemoSummary, make_demo_objective, run_demo
from optuna_nas.errors import DatasetError
from optuna_nas.spaces import Architecture, DartsCells

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TINY = {"epochs": 1, "channels": 4, "layers": 1}


def _pngs(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file() and p.read_bytes()[:8] == PNG_MAGIC]


@pytest.fixture(scope="module")
def small_digits() -> ImageData:
    """A few dozen digits per split."""
    full = load_digits(seed=0)

    def head(split: object, n: int) -> TensorDataset:
        images, labels = split.tensors  # type: ignore[attr-defined]
        return TensorDataset(images[:n], labels[:n])

    return ImageData(
        head(full.train, 60), head(full.valid, 30), head(full.test, 30), 10, 1, 8, "digits"
    )


def test_demo_objective_in_a_sqlite_study(tmp_path: Path, small_digits: ImageData) -> None:
    space = DartsCells()
    store = FileSystemArtifactStore(str(tmp_path / "artifacts"))
    (tmp_path / "artifacts").mkdir()
    objective = make_demo_objective(
        space, small_digits, epochs=2, channels=4, layers=1, artifact_store=store
    )
    study = optuna.create_study(
        storage=f"sqlite:///{tmp_path / 'objective.db'}",
        direction="maximize",
        sampler=optuna.samplers.RandomSampler(seed=0),
    )
    study.optimize(objective, n_trials=2)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 2
    for trial in study.trials:
        assert 0.01 <= trial.params["lr"] <= 0.2
        arch = space.from_params(trial.params)
        assert trial.user_attrs["arch"] == str(arch)
        assert trial.user_attrs["params"] > 0 and trial.user_attrs["flops"] > 0
        assert 0.0 <= trial.user_attrs["test_accuracy"] <= 1.0
        assert sorted(trial.intermediate_values) == [0, 1]
        assert trial.value == trial.intermediate_values[1]
    assert len(_pngs(tmp_path / "artifacts")) == 2


def test_demo_objective_without_a_test_split_or_pictures(small_digits: ImageData) -> None:
    data = ImageData(small_digits.train, small_digits.valid, None, 10, 1, 8)
    objective = make_demo_objective(DartsCells(), data, epochs=1, channels=4, layers=1)
    study = optuna.create_study(direction="maximize")
    study.optimize(objective, n_trials=1)
    trial = study.trials[0]
    assert trial.state == TrialState.COMPLETE
    assert "test_accuracy" not in trial.user_attrs
    assert "arch" not in trial.user_attrs


def _trials(db: Path, study_name: str = "optuna_nas_demo") -> list[optuna.trial.FrozenTrial]:
    study = optuna.load_study(study_name=study_name, storage=f"sqlite:///{db}")
    return study.get_trials(deepcopy=False)


def test_run_demo_summarises_and_resumes(tmp_path: Path) -> None:
    db, artifacts = tmp_path / "studies" / "demo.db", tmp_path / "pictures"
    summary = run_demo(db=db, artifact_dir=artifacts, n_trials=2, show_progress_bar=False, **TINY)
    assert isinstance(summary, DemoSummary)
    assert isinstance(summary.architecture, Architecture)
    assert summary.n_complete + summary.n_pruned + summary.n_failed == 2
    assert summary.n_complete >= 1
    assert 0.01 <= summary.lr <= 0.2
    assert 0.0 <= summary.valid_accuracy <= 1.0
    assert 0.0 <= summary.test_accuracy <= 1.0
    assert summary.dashboard_command == (
        f"optuna-dashboard sqlite:///{db} --artifact-dir {artifacts}"
    )
    report = summary.report()
    assert summary.dashboard_command in report and str(summary.architecture) in report
    assert db.is_file()
    assert len(_pngs(artifacts)) == 2

    trials = _trials(db)
    best = max((t for t in trials if t.state == TrialState.COMPLETE), key=lambda t: t.value or 0.0)
    assert math.isclose(summary.valid_accuracy, best.value or 0.0)
    assert summary.test_accuracy == best.user_attrs["test_accuracy"]
    assert str(summary.architecture) == best.user_attrs["arch"]

    # Resuming with the same target runs nothing more.
    again = run_demo(db=db, artifact_dir=artifacts, n_trials=2, show_progress_bar=False, **TINY)
    assert len(_trials(db)) == 2
    assert again.architecture == summary.architecture
    # A larger target adds only the missing trials.
    more = run_demo(db=db, artifact_dir=artifacts, n_trials=3, show_progress_bar=False, **TINY)
    trials = _trials(db)
    assert [t.number for t in trials] == [0, 1, 2]
    assert all(t.state.is_finished() for t in trials)
    assert more.n_complete + more.n_pruned + more.n_failed == 3
    assert len(_pngs(artifacts)) == 3


def test_cli_demo_runs_and_prints_the_dashboard_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "d.db"
    argv = ["demo", "--db", str(db), "--trials", "2", "--epochs", "1", "--channels", "4",
            "--layers", "1", "--no-progress-bar"]  # fmt: skip
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    artifacts = tmp_path / "d_artifacts"  # beside the database by default
    assert f"optuna-dashboard sqlite:///{db.resolve()} --artifact-dir {artifacts}" in out
    assert "Best architecture:" in out and "Trials: " in out
    assert len(_trials(db)) == 2
    assert len(_pngs(artifacts)) == 2


def test_cli_passes_its_options_to_run_demo(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    seen: dict[str, object] = {}

    def fake_run_demo(**kwargs: object) -> DemoSummary:
        seen.update(kwargs)
        return DemoSummary(
            DartsCells().sample(0), 0.05, 0.5, 0.4, 1, 0, 0, "optuna-dashboard fake"
        )

    monkeypatch.setattr(demo, "run_demo", fake_run_demo)
    argv = ["demo", "--db", str(tmp_path / "x.db"), "--artifacts", str(tmp_path / "pics"),
            "--study-name", "mine", "--trials", "5", "--epochs", "3", "--seed", "7",
            "--channels", "6", "--layers", "2"]  # fmt: skip
    assert cli.main(argv) == 0
    assert seen == {
        "db": (tmp_path / "x.db").resolve(),
        "artifact_dir": (tmp_path / "pics").resolve(),
        "study_name": "mine",
        "n_trials": 5,
        "epochs": 3,
        "seed": 7,
        "channels": 6,
        "layers": 2,
        "show_progress_bar": True,
    }
    assert "optuna-dashboard fake" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv",
    [[], ["nonsense"], ["demo", "--trials", "two"], ["demo", "--epochs"], ["demo", "--bogus"]],
)
def test_cli_bad_arguments_exit_with_code_2(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    assert info.value.code == 2
    assert "usage: optuna-nas" in capsys.readouterr().err


def test_cli_reports_package_errors_and_interrupts(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(**_: object) -> DemoSummary:
        raise DatasetError("the data is not there")

    def interrupted(**_: object) -> DemoSummary:
        raise KeyboardInterrupt

    monkeypatch.setattr(demo, "run_demo", broken)
    assert cli.main(["demo"]) == 2
    assert "optuna-nas demo: the data is not there" in capsys.readouterr().err
    monkeypatch.setattr(demo, "run_demo", interrupted)
    assert cli.main(["demo"]) == 130
    assert "run the same command again to resume" in capsys.readouterr().err
