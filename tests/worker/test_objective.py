"""Loading ``module:function`` objectives and the settings next to them."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from optuna_nas.errors import WorkerError
from optuna_nas.samplers import ControllerSampler
from optuna_nas.spaces import NasBench201Space
from optuna_nas.worker import (
    load_objective,
    make_pruner,
    make_worker_sampler,
)
from tests._postgres import postgres_study_name, postgres_url, storage  # noqa: F401

OBJECTIVES = "tests.worker._objectives"


def test_load_objective_reads_the_module_settings() -> None:
    objective = load_objective(f"{OBJECTIVES}:objective")
    assert isinstance(objective.space, NasBench201Space)
    assert objective.direction == "maximize"
    assert not objective.takes_device
    sampler = make_worker_sampler(objective, None, 3)
    assert isinstance(sampler, ControllerSampler)
    assert isinstance(make_worker_sampler(objective, "random", 3), optuna.samplers.RandomSampler)
    assert isinstance(make_worker_sampler(objective, "controller", 3), ControllerSampler)
    assert make_pruner(objective, None) is None
    assert isinstance(make_pruner(objective, "asha"), optuna.pruners.SuccessiveHalvingPruner)
    assert isinstance(make_pruner(objective, "none"), optuna.pruners.NopPruner)


def test_load_objective_from_a_file_with_a_device_parameter(tmp_path: Path) -> None:
    file = tmp_path / "search.py"
    file.write_text(
        "import optuna\n"
        "pruner = optuna.pruners.MedianPruner\n"
        "def objective(trial, device):\n"
        "    return 1.0\n"
    )
    objective = load_objective(f"{file}:objective")
    assert objective.takes_device
    assert isinstance(make_pruner(objective, None), optuna.pruners.MedianPruner)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("no_colon", "not of the form module:function"),
        ("tests.worker._objectives:", "not of the form module:function"),
        ("no_such_module_xyz:objective", "No module named 'no_such_module_xyz'"),
        ("tests.worker._objectives:missing", "defines no 'missing'; its functions are"),
        ("tests.worker._objectives:direction", "is a str, not a function"),
        ("/no/such/file.py:objective", "does not exist"),
    ],
)
def test_load_objective_errors_are_sentences(spec: str, message: str) -> None:
    with pytest.raises(WorkerError, match=message):
        load_objective(spec)


def test_a_module_that_fails_to_import_is_named_with_its_line(tmp_path: Path) -> None:
    (tmp_path / "broken.py").write_text("x = 1\nraise RuntimeError('no GPU here')\n")
    with pytest.raises(WorkerError, match=r"RuntimeError: no GPU here \(at .*broken.py:2\)"):
        load_objective(f"{tmp_path / 'broken.py'}:objective")
    (tmp_path / "needs.py").write_text("import not_installed_pkg_xyz\n")
    with pytest.raises(WorkerError, match="imports 'not_installed_pkg_xyz'"):
        load_objective(f"{tmp_path / 'needs.py'}:objective")


def test_bad_module_settings_and_names(tmp_path: Path) -> None:
    (tmp_path / "odd.py").write_text(
        "space = 'nasbench201'\ndef objective(trial):\n    return 1.0\n"
    )
    with pytest.raises(WorkerError, match="defines `space` as a str"):
        load_objective(f"{tmp_path / 'odd.py'}:objective")
    (tmp_path / "plain.py").write_text(
        "sampler = 3\npruner = 'median'\ndef objective(trial):\n    return 1.0\n"
    )
    plain = load_objective(f"{tmp_path / 'plain.py'}:objective")
    # A define-by-run module: the controller learns its params from the trials.
    assert isinstance(make_worker_sampler(plain, "controller", 0), ControllerSampler)
    with pytest.raises(WorkerError, match="Unknown sampler 'cmaes-nas'"):
        make_worker_sampler(plain, "cmaes-nas", 0)
    with pytest.raises(WorkerError, match="gives a int"):
        make_worker_sampler(plain, None, 0)
    with pytest.raises(WorkerError, match="gives a str"):
        make_pruner(plain, None)
    with pytest.raises(WorkerError, match="Unknown pruner 'sha'"):
        make_pruner(plain, "sha")
