"""The zero-cost benchmark: the shipped proxy table, its writer, the correlations, screening."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import optuna
import pytest
import torch

from optuna_nas import zero_cost
from optuna_nas.benchmarks import (
    PROXY_TABLE_PATH,
    NasBench201Objective,
    NasBench201Row,
    NasBench201Table,
    ProxyTable,
    TableScreen,
    run_zero_cost,
    write_proxy_table,
)
from optuna_nas.benchmarks.__main__ import main
from optuna_nas.benchmarks._zero_cost import (
    kendall,
    nasbench201_network,
    proxy_scores,
    spearman,
)
from optuna_nas.errors import TableError
from optuna_nas.samplers import ControllerSampler, list_samplers, make_sampler
from optuna_nas.samplers._controller import PROPOSAL_KEY
from optuna_nas.spaces import NasBench201Space
from tests._shared import NASBENCH201_TABLE

SPACE = NasBench201Space()


@pytest.fixture(scope="module")
def table(nasbench201_table: NasBench201Table) -> NasBench201Table:
    return nasbench201_table


def _small_table(n: int, seed: int = 0) -> NasBench201Table:
    rng = random.Random(seed)
    ops = SPACE.decisions[0].choices
    rows, seen = [], set()
    while len(rows) < n:
        edges = [rng.choice(ops) for _ in range(6)]
        arch = SPACE.from_values({d.name: e for d, e in zip(SPACE.decisions, edges, strict=True)})
        if str(arch) in seen:
            continue
        seen.add(str(arch))
        accuracy = 80.0 + 2.0 * edges.count("nor_conv_3x3") + rng.random()
        rows.append(NasBench201Row(arch, accuracy, 100.0, accuracy, accuracy, 0.5, 0.01))
    return NasBench201Table(rows)


# --- the shipped table ----------------------------------------------------------------------


def test_shipped_table_covers_the_benchmark(table: NasBench201Table) -> None:
    proxies = ProxyTable.load()
    assert proxies.path == PROXY_TABLE_PATH
    assert set(proxies.proxies) >= {"synflow", "params", "flops"}
    assert set(proxies) == {str(row.arch) for row in table}
    # params agrees with the benchmark's own parameter count, which params_mb rounds to
    # 6 significant digits.
    for row in table.rows[:200]:
        assert proxies[str(row.arch)]["params"] == pytest.approx(row.params_mb * 1e6, rel=5e-6)


def test_shipped_rows_recompute() -> None:
    proxies = ProxyTable.load()
    archs = random.Random(1).sample(sorted(proxies), 4)
    for arch in archs:
        again = proxy_scores(arch, proxies.proxies, seed=proxies.seed)
        for proxy, value in proxies[arch].items():
            assert again[proxy] == pytest.approx(value, rel=1e-9), (arch, proxy)


# --- writing and reading --------------------------------------------------------------------


def test_write_resumes_and_rewrites_a_cut_line(tmp_path: Path) -> None:
    small = _small_table(4)
    out = tmp_path / "proxies.csv"
    assert write_proxy_table(small, out, proxies=("params", "synflow"), limit=2) == 2
    text = out.read_text()
    out.write_text(text[:-7])  # A writer killed in the middle of the second row.
    assert write_proxy_table(small, out, proxies=("params", "synflow")) == 3
    loaded = ProxyTable.load(out)
    assert list(loaded) == [str(r.arch) for r in small]
    for arch, values in loaded.items():
        assert dict(values) == pytest.approx(proxy_scores(arch, ("params", "synflow")))
    assert write_proxy_table(small, out, proxies=("params", "synflow")) == 0


def test_write_refuses_another_layout(tmp_path: Path) -> None:
    small = _small_table(2)
    out = tmp_path / "proxies.csv"
    write_proxy_table(small, out, proxies=("params",), limit=1)
    with pytest.raises(TableError, match="holds columns"):
        write_proxy_table(small, out, proxies=("params", "flops"))
    with pytest.raises(TableError, match="seed"):
        write_proxy_table(small, out, proxies=("params",), seed=3)
    with pytest.raises(TableError, match="need images"):
        write_proxy_table(small, tmp_path / "other.csv", proxies=("snip",))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("arch,seed\n", "columns"),
        ("arch,seed,nonsense\nx,0,1\n", "not zero-cost proxies"),
        ("arch,seed,params\nx,0,nan\n", "not a finite number"),
        ("arch,seed,params\nx,0,1\ny,1,2\n", "mixes seeds"),
        ("arch,seed,params\n", "no rows"),
    ],
)
def test_load_names_the_problem(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "proxies.csv"
    path.write_text(text)
    with pytest.raises(TableError, match=message):
        ProxyTable.load(path)


def test_load_missing_file_and_missing_rows(tmp_path: Path) -> None:
    with pytest.raises(TableError, match="does not exist"):
        ProxyTable.load(tmp_path / "nope.csv")
    path = tmp_path / "proxies.csv"
    path.write_text("arch,seed,params\nx,0,1\n")
    loaded = ProxyTable.load(path)
    with pytest.raises(TableError, match="no row for 'y'"):
        loaded["y"]
    with pytest.raises(TableError, match="no 'synflow' column"):
        loaded.column("synflow")


# --- correlations ---------------------------------------------------------------------------


def test_rank_correlations() -> None:
    x = [1.0, 2.0, 3.0, 4.0, 5.0]
    assert spearman(x, [10, 20, 30, 40, 50]) == pytest.approx(1.0)
    assert spearman(x, [5, 4, 3, 2, 1]) == pytest.approx(-1.0)
    assert kendall(x, [10, 20, 30, 40, 50]) == pytest.approx(1.0)
    # One swapped pair of ten: tau = (9 - 1) / 10.
    assert kendall(x, [1, 2, 3, 5, 4]) == pytest.approx(0.8)
    # Spearman with ties: ranks (0.5, 0.5, 2), Pearson of the ranks with (0, 1, 2).
    assert spearman([1.0, 1.0, 2.0], [0.0, 1.0, 2.0]) == pytest.approx(math.sqrt(3) / 2)
    # tau-b with a tie in x: 2 concordant, 0 discordant, 1 tied pair.
    assert kendall([1.0, 1.0, 2.0], [0.0, 1.0, 2.0]) == pytest.approx(2 / math.sqrt(2 * 3))
    assert math.isnan(spearman([1.0, 1.0], [1.0, 2.0]))


def test_run_zero_cost_reports_every_proxy(table: NasBench201Table) -> None:
    report = run_zero_cost(table, archs=6, proxies=["params", "synflow", "naswot"],
                           batch_size=4, seed=0)
    assert [c.proxy for c in report.correlations] == ["params", "synflow", "naswot"]
    assert "synthetic" in report.data
    document = report.as_dict()
    assert set(document["correlations"]) == {"params", "synflow", "naswot"}
    for c in report.correlations:
        assert len(report.scores[c.proxy]) + c.failures == 6
    assert len(report.scores["params"]) == len(report.scores["synflow"]) == 6
    arch = next(iter(report.scores["synflow"]))
    model = nasbench201_network(arch, seed=0)
    expected = zero_cost.score(model, torch.zeros(1, 3, 32, 32), torch.zeros(1).long())
    assert report.scores["synflow"][arch] == pytest.approx(expected, rel=1e-12)
    with pytest.raises(TableError, match="archs must be"):
        run_zero_cost(table, archs=0)


def test_command_prints_the_correlations(
    table: NasBench201Table, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "report.json"
    assert main(["zero-cost", "--table", str(NASBENCH201_TABLE), "--archs", "4",
                 "--proxies", "params,flops", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "synthetic" in printed and "(baseline)" in printed and "flops" in printed
    assert out.is_file()
    assert main(["zero-cost", "--table", str(tmp_path / "missing.csv")]) == 2
    with pytest.raises(SystemExit):
        main(["zero-cost", "--table", str(NASBENCH201_TABLE), "--proxies", "bogus"])


def test_missing_cifar_folder_is_a_sentence(table: NasBench201Table, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["zero-cost", "--table", str(NASBENCH201_TABLE), "--archs", "2",
                 "--proxies", "snip", "--data", str(tmp_path)]) == 2
    assert "CIFAR-10 was not found" in capsys.readouterr().err


# --- screening in the runner ----------------------------------------------------------------


def test_screening_samplers_are_registered() -> None:
    assert {"controller-synflow", "controller-params", "controller-flops"} <= set(
        list_samplers())


def test_table_screen_reads_the_table(table: NasBench201Table) -> None:
    screen = TableScreen("params")
    row = table.rows[3]
    assert screen(row.arch) == pytest.approx(row.params_mb * 1e6, rel=5e-6)


def test_objective_charges_each_screened_candidate(table: NasBench201Table) -> None:
    sampler = make_sampler("controller-params", 0, table.space)
    assert isinstance(sampler, ControllerSampler)
    objective = NasBench201Objective(table, budget_s=3000.0, screen_cost_s=2.5)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(objective, n_trials=12)
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    screened = [t.system_attrs[PROPOSAL_KEY]["screened"] for t in done]
    assert screened[0] == sampler.screen_candidates  # the warm-up screens its candidates
    assert sum(screened) > 0
    search = sum(t.user_attrs["search_cost_s"] for t in done)
    assert objective.spent_s == pytest.approx(search + 2.5 * sum(screened))
    free = NasBench201Objective(table, budget_s=3000.0, screen_cost_s=0.0)
    study = optuna.create_study(direction="maximize",
                                sampler=make_sampler("controller-params", 0, table.space))
    study.optimize(free, n_trials=12)
    assert free.spent_s == pytest.approx(search)
    with pytest.raises(ValueError, match="screen_cost_s"):
        NasBench201Objective(table, screen_cost_s=-1.0)


def test_table_command_writes_and_resumes(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    small = tmp_path / "small.csv"
    lines = NASBENCH201_TABLE.read_text().splitlines()[:4]
    small.write_text("\n".join(lines) + "\n")
    out = tmp_path / "proxies.csv"
    args = ["zero-cost-table", "--table", str(small), "--out", str(out)]
    assert main([*args, "--limit", "2"]) == 0
    assert "2 rows written now, 2 of 3 in all" in capsys.readouterr().out
    assert main(args) == 0
    assert "1 rows written now, 3 of 3 in all" in capsys.readouterr().out
    assert main([*args, "--seed", "1"]) == 2
    assert "pass --seed 0" in capsys.readouterr().err


def test_zero_cost_asha_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "asha.json"
    assert main(["zero-cost-asha", "--seeds", "1", "--trials", "6", "--max-epochs", "2",
                 "--startup-trials", "2", "--percentile", "50", "--proxy", "params",
                 "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "seed 0 asha:" in printed and "seed 0 zero-cost-asha:" in printed
    document = json.loads(out.read_text())
    assert document["epoch_ratio"] < 1.0
    assert set(document["arms"]) == {"asha", "zero-cost-asha"}
