from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import optuna
import pytest

from optuna_nas.benchmarks.__main__ import main
from optuna_nas.benchmarks._fcnet import (
    ARCH_COLUMNS,
    PARAM_COLUMNS,
    SEED_COLUMNS,
    FCNetArchSpace,
    FCNetObjective,
    FCNetSummary,
    FCNetTable,
    run_fcnet,
)
from optuna_nas.errors import TableError
from tests._shared import FCNET_TABLE

BEST = ("relu", "tanh", 256.0, 512.0, 0.0, 0.0, 0.0005, "cosine", 16.0)


@pytest.fixture(scope="module")
def table() -> FCNetTable:
    return FCNetTable.load(FCNET_TABLE)


def test_the_shared_table_matches_its_readme(table: FCNetTable) -> None:
    assert len(table.losses) == 62_208
    assert table.best_loss == pytest.approx(0.00019159916)
    assert table.mean_loss(BEST) == table.best_loss
    assert table.values["n_units_1"] == (16.0, 32.0, 64.0, 128.0, 256.0, 512.0)
    assert table.values["lr_schedule"] == ("const", "cosine")


def _tiny_table(path: Path, *, drop: int | None = None, columns: tuple[str, ...] = ()) -> Path:
    # A 2 x 2 grid over two columns; the others take one value.
    header = [*PARAM_COLUMNS, *SEED_COLUMNS, "val_loss_mean"]
    header = [c for c in header if c not in columns]
    rows = []
    for act in ("relu", "tanh"):
        for units in ("16", "32"):
            values = dict.fromkeys(PARAM_COLUMNS, "1")
            values |= {"activation_fn_1": act, "activation_fn_2": "relu", "n_units_1": units,
                       "lr_schedule": "cosine"}
            loss = 0.1 if act == "relu" else 0.2
            values |= dict.fromkeys(SEED_COLUMNS, str(loss)) | {"val_loss_mean": str(loss)}
            rows.append([values[c] for c in header])
    if drop is not None:
        del rows[drop]
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def test_the_loader_reads_any_table_of_the_schema(tmp_path: Path) -> None:
    table = FCNetTable.load(_tiny_table(tmp_path / "t.csv"))
    assert len(table.losses) == 4 and table.best_loss == 0.1


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p / "missing.csv", "does not exist"),
        (lambda p: p, "is a directory"),
        (lambda p: _tiny_table(p / "t.csv", columns=("init_lr",)), "lacks column.*init_lr"),
        (lambda p: _tiny_table(p / "t.csv", drop=1), "no row for the configuration"),
    ],
)
def test_bad_tables_are_clear_errors(tmp_path: Path, make: object, message: str) -> None:
    with pytest.raises(TableError, match=message):
        FCNetTable.load(make(tmp_path))  # type: ignore[operator]


def test_a_non_number_is_named(tmp_path: Path) -> None:
    path = _tiny_table(tmp_path / "t.csv")
    path.write_text(path.read_text().replace("0.2", "oops", 1))
    with pytest.raises(TableError, match="val_loss_seed0 is 'oops'"):
        FCNetTable.load(path)


def test_the_objective_is_define_by_run_and_scores_the_incumbent(table: FCNetTable) -> None:
    objective = FCNetObjective(table, seed=0)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    study.enqueue_trial({"activation_fn_1": "relu", "activation_fn_2": "tanh", "n_units_1": 4,
                         "n_units_2": 5, "dropout_1": 0, "dropout_2": 0, "init_lr": 0,
                         "lr_schedule": "cosine", "batch_size": 1})
    study.optimize(objective, n_trials=5)
    assert list(study.trials[1].params) == list(PARAM_COLUMNS)
    assert isinstance(study.trials[1].distributions["n_units_1"],
                      optuna.distributions.IntDistribution)
    # The optimum, enqueued first: one seed's loss, and regret 0 from then on.
    assert study.trials[0].value in table.losses[BEST][0]
    assert objective.regrets[0] == 0.0
    assert all(r >= 0 for r in objective.regrets)


def test_the_space_mode_suggests_the_architecture_through_a_space(table: FCNetTable) -> None:
    space = FCNetArchSpace(table.values)
    arch = space.sample(0)
    assert space.parse(str(arch)) == arch
    objective = FCNetObjective(table, seed=0, space=space)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(objective, n_trials=3)
    assert {f"arch/{c}" for c in ARCH_COLUMNS} <= set(study.trials[0].params)
    network = space.build(arch, in_features=10)
    assert network(__import__("torch").zeros(2, 10)).shape == (2, 1)


def test_the_summary_is_the_log_of_the_mean_regret() -> None:
    summary = FCNetSummary("x", ((1e-3, 0.0), (1e-3, 2e-4)))
    assert summary.at(1)["log10_mean_regret"] == pytest.approx(-3.0)
    assert summary.at(2) == {"log10_mean_regret": pytest.approx(math.log10(1e-4)),
                             "mean_regret": pytest.approx(1e-4), "optimum_share": 0.5}


def test_run_and_cli_write_the_nasbench201_runners_shape(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "fcnet.json"
    status = main(["fcnet", "--table", str(FCNET_TABLE), "--trials", "30", "--seeds", "2",
                   "--samplers", "random,controller", "--json", str(out)])
    assert status == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("random: 25: ") and lines[1].startswith("controller: 25: ")
    document = json.loads(out.read_text())
    for name in ("random", "controller"):
        entry = document["samplers"][name]
        assert {"25", "30"} <= set(entry)
        assert set(entry["30"]) >= {"log10_mean_regret", "optimum_share"}
    again = run_fcnet(FCNetTable.load(FCNET_TABLE), "random", seeds=2, trials=30)
    assert again.at(30)["log10_mean_regret"] == document["samplers"]["random"]["30"][
        "log10_mean_regret"]


def test_the_cli_names_a_missing_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fcnet", "--table", "nope.csv", "--seeds", "1"]) == 2
    assert "nope.csv" in capsys.readouterr().err
