from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest

from optuna_nas import samplers
from optuna_nas.benchmarks import (
    NUMERIC_COLUMNS,
    NasBench201Objective,
    NasBench201Table,
    UnknownSamplerError,
    list_samplers,
    make_sampler,
    register_sampler,
    run_nasbench201,
    unregister_sampler,
)
from optuna_nas.benchmarks.__main__ import main
from optuna_nas.errors import ArchitectureError, TableError
from optuna_nas.spaces import NasBench201Space, SearchSpace
from tests._shared import NASBENCH201_TABLE

TABLE_PATH = NASBENCH201_TABLE
COLUMNS = ("arch", *NUMERIC_COLUMNS)
ARCH_A = (
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|"
    "+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
)
ARCH_B = (
    "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|"
    "+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|"
)


@pytest.fixture(scope="module")
def table(nasbench201_table: NasBench201Table) -> NasBench201Table:
    return nasbench201_table


@pytest.fixture(autouse=True)
def _quiet_optuna() -> Iterator[None]:
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    yield
    optuna.logging.set_verbosity(verbosity)


def _write(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def _row(arch: str, cost: str = "100.0") -> list[str]:
    return [arch, "80.0", cost, "93.0", "90.0", "0.5", "0.01"]


# --- table ----------------------------------------------------------------------------
def test_table_facts(table: NasBench201Table) -> None:
    assert len(table) == 15625
    best = table.best("final_test_acc")
    assert best.final_test_acc == pytest.approx(94.3733)
    scores = table.column("final_test_acc")
    assert sum(scores) / len(scores) == pytest.approx(87.06, abs=0.005)
    assert table.best("valid_acc_200ep").valid_acc_200ep == pytest.approx(91.6067)


def test_table_lookup_by_arch_or_string(table: NasBench201Table) -> None:
    space = NasBench201Space()
    arch = space.parse(ARCH_A)
    row = table[arch]
    assert row is table[ARCH_A] is table["  " + ARCH_A + " "]
    assert row.final_test_acc == pytest.approx(93.66)
    assert row.search_valid_acc == pytest.approx(82.834)
    assert arch in table and ARCH_A in table and 3 not in table
    with pytest.raises(ArchitectureError):
        table["|nor_conv_3x3~0|"]


def test_small_table_loads_and_misses(tmp_path: Path) -> None:
    path = _write(tmp_path / "t.csv", [*COLUMNS, "extra"], [[*_row(ARCH_A), "x"]])
    small = NasBench201Table.load(path)
    assert len(small) == 1 and small[ARCH_A].params_mb == 0.5
    assert small.get(ARCH_B) is None
    with pytest.raises(KeyError):
        small[ARCH_B]


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.csv"
    with pytest.raises(TableError, match="nope.csv.*does not exist.*expected.*arch"):
        NasBench201Table.load(path)


def test_missing_columns(tmp_path: Path) -> None:
    header = [c for c in COLUMNS if c not in ("search_cost_s", "latency_s")]
    path = _write(tmp_path / "t.csv", header, [])
    with pytest.raises(TableError) as info:
        NasBench201Table.load(path)
    message = str(info.value)
    assert "search_cost_s, latency_s" in message
    assert "expected columns: " + ", ".join(COLUMNS) in message


def test_malformed_arch(tmp_path: Path) -> None:
    path = _write(tmp_path / "t.csv", list(COLUMNS), [_row(ARCH_A), _row("|nor_conv_3x3~0|+|")])
    with pytest.raises(
        TableError, match=r"Row 2 \(line 3\).*bad architecture '\|nor_conv_3x3~0\|\+\|'"
    ):
        NasBench201Table.load(path)


def test_unknown_op(tmp_path: Path) -> None:
    bad = ARCH_B.replace("avg_pool_3x3", "max_pool_3x3")
    path = _write(
        tmp_path / "t.csv",
        list(COLUMNS),
        [_row(ARCH_A), _row(ARCH_A.replace("3x3~0|+", "1x1~0|+")), _row(bad)],
    )
    with pytest.raises(TableError, match=r"Row 3 .*max_pool_3x3"):
        NasBench201Table.load(path)


def test_duplicate_arch(tmp_path: Path) -> None:
    path = _write(tmp_path / "t.csv", list(COLUMNS), [_row(ARCH_A), _row(ARCH_B), _row(ARCH_A)])
    with pytest.raises(TableError, match="Row 3.*duplicate architecture"):
        NasBench201Table.load(path)


@pytest.mark.parametrize("cost", ["abc", "", "nan", "-1"])
def test_bad_numbers(tmp_path: Path, cost: str) -> None:
    path = _write(tmp_path / "t.csv", list(COLUMNS), [_row(ARCH_A, cost=cost)])
    with pytest.raises(TableError, match="Row 1.*search_cost_s"):
        NasBench201Table.load(path)


def test_empty_and_ragged_tables(tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(TableError, match="empty"):
        NasBench201Table.load(empty)
    header_only = _write(tmp_path / "h.csv", list(COLUMNS), [])
    with pytest.raises(TableError, match="no rows"):
        NasBench201Table.load(header_only)
    short = _write(tmp_path / "s.csv", list(COLUMNS), [_row(ARCH_A)[:3]])
    with pytest.raises(TableError, match="fewer fields"):
        NasBench201Table.load(short)


# --- budget protocol --------------------------------------------------------------------
def test_budget_protocol(table: NasBench201Table) -> None:
    objective = NasBench201Objective(table, budget_s=3000)
    study = optuna.create_study(
        direction="maximize", sampler=optuna.samplers.RandomSampler(seed=3)
    )
    study.optimize(objective)
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    pruned = [t for t in trials if t.state == optuna.trial.TrialState.PRUNED]
    # Every trial but the last one counts; the last one would have exceeded the budget.
    assert len(pruned) == 1 and trials[-1].state == optuna.trial.TrialState.PRUNED
    assert pruned[0].value is None
    assert objective.evaluations == len(complete) > 0
    charged = sum(t.user_attrs["search_cost_s"] for t in complete)
    assert charged == pytest.approx(objective.spent_s)
    assert objective.spent_s <= 3000
    last_cost = table[_arch_of(pruned[0])].search_cost_s
    assert objective.spent_s + last_cost > 3000
    # The answer is the best search_valid_acc seen; user attrs carry the hidden columns.
    best = max(complete, key=lambda t: t.value or 0.0)
    assert objective.best is not None
    assert objective.best.search_valid_acc == best.value
    assert objective.best.final_test_acc == best.user_attrs["final_test_acc"]
    assert set(best.user_attrs) >= {"arch", "final_test_acc", "valid_acc_200ep", "spent_s"}
    # Once exhausted, every later trial is pruned at once.
    study.optimize(objective, n_trials=2)
    assert objective.evaluations == len(complete)


def _arch_of(trial: optuna.trial.FrozenTrial) -> str:
    return str(NasBench201Space().from_params(trial.params))


def test_budget_protocol_ask_tell(table: NasBench201Table) -> None:
    objective = NasBench201Objective(table, budget_s=1000)
    study = optuna.create_study(direction="maximize")
    while not objective.exhausted:
        trial = study.ask()
        try:
            study.tell(trial, objective(trial))
        except optuna.TrialPruned:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
    assert 0 < objective.spent_s <= 1000
    assert objective.evaluations == len(
        study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    )


def test_objective_rejects_bad_budget(table: NasBench201Table) -> None:
    with pytest.raises(ValueError):
        NasBench201Objective(table, budget_s=0)


def test_run_is_deterministic(table: NasBench201Table) -> None:
    first = run_nasbench201(table, "random", seeds=[5, 6], budget_s=2000)
    second = run_nasbench201(table, "random", seeds=[5, 6], budget_s=2000)
    assert first.runs == second.runs
    assert [run.seed for run in first.runs] == [5, 6]
    assert all(run.spent_s <= 2000 for run in first.runs)


# --- samplers and CLI --------------------------------------------------------------------
def test_registry_is_re_exported_from_the_samplers() -> None:
    # The registry lives in optuna_nas.samplers; the benchmarks keep their old names.
    assert make_sampler is samplers.make_sampler
    assert register_sampler is samplers.register_sampler
    assert unregister_sampler is samplers.unregister_sampler
    assert list_samplers is samplers.list_samplers
    assert UnknownSamplerError is samplers.UnknownSamplerError


def test_cli_unknown_sampler(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["nasbench201", "--table", str(TABLE_PATH), "--samplers", "random,nope"])
    assert status == 2
    err = capsys.readouterr().err
    assert "Unknown sampler 'nope'" in err and "random" in err and "Traceback" not in err


def test_cli_bad_table_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["nasbench201", "--table", str(tmp_path / "x.csv"), "--seeds", "1"])
    assert status == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "x.csv" in err and len(err.splitlines()) == 1


def test_cli_runs_and_writes_json(
    table: NasBench201Table, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out.json"
    argv = ["nasbench201", "--table", str(TABLE_PATH), "--budget", "12000", "--seeds", "3"]
    status = main([*argv, "--samplers", "random,tpe", "--json", str(out)])
    assert status == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines] == ["random", "tpe"]
    for line in lines:
        assert line.count(" ± ") == 1 and "  evals " in line
    document = json.loads(out.read_text())
    assert set(document) >= {"benchmark", "table", "budget_s", "seeds", "std", "samplers"}
    random_result = document["samplers"]["random"]
    assert set(random_result) >= {"mean", "std", "std_sample", "mean_evals", "wall_s", "runs"}
    assert lines[0] == (
        f"random: {random_result['mean']:.2f} ± {random_result['std']:.2f}  "
        f"evals {random_result['mean_evals']:.1f}"
    )
    runs = random_result["runs"]
    assert [run["seed"] for run in runs] == [0, 1, 2]
    for run in runs:
        assert set(run) >= {"seed", "final_test_acc", "search_valid_acc", "evals", "arch"}
        assert table[run["arch"]].final_test_acc == run["final_test_acc"]
        assert run["spent_s"] <= 12000


def test_custom_sampler_by_name(
    table: NasBench201Table, capsys: pytest.CaptureFixture[str]
) -> None:
    seen: list[tuple[int, SearchSpace]] = []

    def factory(seed: int, space: SearchSpace) -> optuna.samplers.BaseSampler:
        seen.append((seed, space))
        return optuna.samplers.RandomSampler(seed=seed + 1000)

    register_sampler("test-custom", factory)
    try:
        with pytest.raises(UnknownSamplerError, match="already registered"):
            register_sampler("test-custom", factory)
        assert "test-custom" in list_samplers()
        argv = ["nasbench201", "--table", str(TABLE_PATH), "--seeds", "2"]
        assert main([*argv, "--budget", "1500", "--samplers", "test-custom"]) == 0
        assert capsys.readouterr().out.startswith("test-custom: ")
        assert [seed for seed, _ in seen] == [0, 1]
        assert all(
            space is table.space or isinstance(space, NasBench201Space) for _, space in seen
        )
    finally:
        unregister_sampler("test-custom")
    assert "test-custom" not in list_samplers()


def test_budgets_from_one_search_are_the_runs_of_each_budget(table: NasBench201Table) -> None:
    from optuna_nas.benchmarks._nasbench201 import run_nasbench201_budgets

    both = run_nasbench201_budgets(table, "random", seeds=3, budgets_s=[12000, 3000])
    assert sorted(both) == [3000.0, 12000.0]
    for budget, summary in both.items():
        alone = run_nasbench201(table, "random", seeds=3, budget_s=budget)
        assert summary.runs == alone.runs
    assert both[3000.0].mean_evaluations < both[12000.0].mean_evaluations


def test_define_by_run_asks_six_plain_categoricals(table: NasBench201Table) -> None:
    objective = NasBench201Objective(table, 2000, define_by_run=True)
    study = optuna.create_study(direction="maximize",
                                sampler=make_sampler("controller", 0))
    study.optimize(objective)
    first = study.trials[0]
    assert list(first.params) == [d.name for d in table.space.decisions]
    assert all(isinstance(d, optuna.distributions.CategoricalDistribution)
               for d in first.distributions.values())
    assert objective.best is not None and objective.evaluations >= 5


def test_cli_budget_lists_and_define_by_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "r.json"
    status = main(["nasbench201", "--table", str(NASBENCH201_TABLE), "--budget", "3000,6000",
                   "--seeds", "2", "--samplers", "random,controller", "--define-by-run",
                   "--json", str(out)])
    assert status == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[:2] for line in lines] == [
        ["[3000", "s]"], ["[6000", "s]"], ["[3000", "s]"], ["[6000", "s]"]]
    document = json.loads(out.read_text())
    assert document["define_by_run"] is True and document["budget_s"] == [3000.0, 6000.0]
    for name in ("random", "controller"):
        entry = document["samplers"][name]
        assert entry["3000"]["budget_s"] == 3000.0 and entry["6000"]["mean"] == entry["mean"]
