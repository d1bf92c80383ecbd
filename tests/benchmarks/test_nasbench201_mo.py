"""The multi-objective and constrained NAS-Bench-201 protocols (``nasbench201-mo``)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from optuna_nas.benchmarks import (
    FrontScore,
    NasBench201Table,
    run_nasbench201_constrained,
    run_nasbench201_mo,
)
from optuna_nas.benchmarks.__main__ import main
from optuna_nas.benchmarks._nasbench201_mo import hypervolume_2d, pareto_front
from tests._shared import NASBENCH201_TABLE


@pytest.fixture(scope="module")
def table() -> NasBench201Table:
    return NasBench201Table.load(NASBENCH201_TABLE)


def test_pareto_front_and_hypervolume_by_hand() -> None:
    points = [(0.5, 0.5), (0.2, 0.8), (0.6, 0.6), (0.8, 0.1), (0.5, 0.5)]
    assert pareto_front(points) == [0, 1, 3, 4]  # (0.6, 0.6) is dominated; equal ones kept
    # Three steps under (1, 1): 0.8 * 0.2 + 0.5 * 0.3 + 0.2 * 0.4.
    assert hypervolume_2d(points) == pytest.approx(0.16 + 0.15 + 0.08)
    assert hypervolume_2d([(1.0, 0.0), (0.0, 1.0)]) == 0.0  # on the reference: nothing
    # Brute force on random sets: the front alone gives the same area.
    rng = random.Random(0)
    for _ in range(50):
        cloud = [(rng.random(), rng.random()) for _ in range(20)]
        front = [cloud[i] for i in pareto_front(cloud)]
        assert hypervolume_2d(front) == pytest.approx(hypervolume_2d(cloud))
        for i, p in enumerate(cloud):
            dominated = any(
                q[0] <= p[0] and q[1] <= p[1] and q != p for q in cloud
            )
            assert (i in pareto_front(cloud)) == (not dominated)


def test_the_limits_are_the_issues_figures(table: NasBench201Table) -> None:
    assert FrontScore(table, "latency_s").limit == pytest.approx(0.9558, abs=1e-4)
    assert FrontScore(table, "params_mb").limit == pytest.approx(0.9892, abs=2e-4)
    with pytest.raises(ValueError, match="cost must be one of"):
        FrontScore(table, "final_test_acc")


def test_multi_objective_runs_score_below_the_limit(table: NasBench201Table) -> None:
    summaries = run_nasbench201_mo(table, "random", 3, (3000.0, 12000.0), cost="latency_s")
    limit = FrontScore(table, "latency_s").limit
    small, full = summaries[3000.0], summaries[12000.0]
    for a, b in zip(small.runs, full.runs, strict=True):
        assert 0 < a.score <= b.score <= limit
        assert a.evaluations < b.evaluations
    entry = full.as_dict()
    assert set(entry["hypervolume"]) == {"mean", "std"}


def test_constrained_controller_never_evaluates_an_infeasible_cell(
    table: NasBench201Table,
) -> None:
    limit = sorted(table.column("params_mb"))[len(table) // 2]
    controller = run_nasbench201_constrained(
        table, "controller", 2, (12000.0,), max_params_mb=limit
    )[12000.0]
    assert controller.infeasible == 0
    randomly = run_nasbench201_constrained(
        table, "random", 2, (12000.0,), max_params_mb=limit
    )[12000.0]
    assert randomly.infeasible > 0
    for run in (*controller.runs, *randomly.runs):
        assert table[run.answer[0]].params_mb <= limit


def test_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "mo.json"
    base = ["nasbench201-mo", "--table", str(NASBENCH201_TABLE), "--seeds", "2"]
    assert main([*base, "--samplers", "random,nsga2", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "limit (the whole table) 0.9558" in printed and "nsga2:" in printed
    document = json.loads(out.read_text())
    assert set(document["samplers"]) == {"random", "nsga2"}
    assert "mean" in document["samplers"]["nsga2"]["hypervolume"]
    assert main([*base, "--samplers", "random", "--max-params-mb", "median"]) == 0
    assert "7970 of 15625 architectures feasible" in capsys.readouterr().out
    assert main([*base, "--samplers", "cmaes", "--max-params-mb", "median"]) == 2
    assert "constrained mode runs the samplers" in capsys.readouterr().err
    assert main([*base, "--samplers", "random", "--max-params-mb", "-1"]) == 2
    assert "positive number or 'median'" in capsys.readouterr().err
