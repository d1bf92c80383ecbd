"""The sampler-overhead benchmark: ``python -m optuna_nas.benchmarks overhead``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from optuna_nas.benchmarks import UnknownSamplerError
from optuna_nas.benchmarks.__main__ import main
from optuna_nas.benchmarks._overhead import (
    OverheadResult,
    format_overhead_table,
    measure_overhead,
    overhead_windows,
    run_overhead,
    synthetic_score,
)
from optuna_nas.spaces import NasBench201Space

BEST_CELL = (
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|"
    "+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
)
EMPTY_CELL = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"


def test_windows_scale_with_the_number_of_trials() -> None:
    assert overhead_windows(1000) == ((1, 100), (900, 1000))
    assert overhead_windows(30) == ((1, 3), (27, 30))
    assert overhead_windows(5) == ((1, 1), (4, 5))
    assert overhead_windows(1) == ((1, 1), (1, 1))
    with pytest.raises(ValueError, match="at least 1"):
        overhead_windows(0)


def test_synthetic_score_is_deterministic_and_prefers_convolutions() -> None:
    space = NasBench201Space()
    best, empty = space.parse(BEST_CELL), space.parse(EMPTY_CELL)
    assert synthetic_score(best) == synthetic_score(space.parse(BEST_CELL))
    assert 18.0 <= synthetic_score(best) < 19.0
    assert 0.0 <= synthetic_score(empty) < 1.0


def test_result_figures_use_the_windows() -> None:
    result = OverheadResult("random", "memory", tuple(float(k) for k in range(1, 31)), 0.5)
    assert result.trials == 30
    assert result.first_ms == pytest.approx(2.0)  # trials 1-3
    assert result.last_ms == pytest.approx(28.5)  # trials 27-30
    assert result.first_median_ms == 2.0
    assert result.last_median_ms == 28.5
    document = result.as_dict()
    assert document["first_window"] == [1, 3]
    assert document["last_window"] == [27, 30]
    assert len(document["per_trial_ms"]) == 30
    assert "per_trial_ms" not in result.as_dict(per_trial=False)


def test_measure_overhead_times_every_trial() -> None:
    result = measure_overhead("tpe", "memory", trials=12, seed=1)
    assert (result.sampler, result.storage, result.trials) == ("tpe", "memory", 12)
    assert all(ms > 0 for ms in result.per_trial_ms)
    assert result.wall_s * 1000 >= sum(result.per_trial_ms)


def test_run_overhead_checks_its_arguments() -> None:
    with pytest.raises(UnknownSamplerError, match="no-such-sampler"):
        run_overhead(trials=3, samplers=["no-such-sampler"])
    with pytest.raises(ValueError, match="Unknown storage"):
        run_overhead(trials=3, samplers=["random"], storages=["redis"])
    with pytest.raises(ValueError, match="at least 1"):
        measure_overhead("random", trials=0)


def test_cli_prints_the_table_and_writes_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "overhead.json"
    status = main(
        [
            "overhead",
            "--trials",
            "30",
            "--storages",
            "memory",
            "--torch-threads",
            "1",
            "--json",
            str(out),
        ]
    )
    assert status == 0
    lines = capsys.readouterr().out.splitlines()
    assert "trials 1-3" in lines[1] and "trials 27-30" in lines[1]
    # The sampler's column is 26 characters wide: "controller (define-by-run)".
    rows = [[line[:26].strip(), *line[26:].split()] for line in lines[2:]]
    assert [(row[0], row[1]) for row in rows] == [
        ("random", "memory"),
        ("tpe", "memory"),
        ("controller", "memory"),
        ("controller (define-by-run)", "memory"),
    ]
    for row in rows:
        assert all(float(cell) >= 0 for cell in row[2:])

    document = json.loads(out.read_text(encoding="utf-8"))
    assert document["benchmark"] == "overhead"
    assert document["trials"] == 30
    assert document["first_window"] == [1, 3]
    assert document["last_window"] == [27, 30]
    assert document["machine"]["cpu_count"] >= 1
    assert document["machine"]["torch_threads"] == 1
    assert {"date", "python", "optuna", "torch"} <= set(document["machine"])
    results = document["results"]
    assert [(r["sampler"], r["storage"]) for r in results] == [
        ("random", "memory"),
        ("tpe", "memory"),
        ("controller", "memory"),
        ("controller (define-by-run)", "memory"),
    ]
    for result, row in zip(results, rows, strict=True):
        assert result["trials"] == 30
        assert len(result["per_trial_ms"]) == 30
        for key in ("first_ms", "last_ms", "first_median_ms", "last_median_ms", "mean_ms"):
            assert result[key] > 0
        assert float(row[2]) == pytest.approx(result["first_ms"], abs=0.006)
        assert float(row[3]) == pytest.approx(result["last_ms"], abs=0.006)


def test_cli_on_sqlite(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["overhead", "--trials", "6", "--samplers", "random,controller", "--storages", "sqlite",
            "--define-by-run", "none"]
    status = main(argv)
    assert status == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[:2] for line in lines[2:]] == [
        ["random", "sqlite"],
        ["controller", "sqlite"],
    ]


def test_cli_reports_unknown_samplers(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["overhead", "--samplers", "random,nope"]) == 2
    assert "Unknown sampler 'nope'" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        ["overhead", "--trials", "0"],
        ["overhead", "--storages", "redis"],
        ["overhead", "--torch-threads", "0"],
    ],
)
def test_cli_rejects_bad_arguments(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2


def test_format_overhead_table_lists_every_result() -> None:
    results = [
        OverheadResult("random", "memory", (1.0,) * 10, 0.01),
        OverheadResult("tpe", "sqlite", (2.0,) * 10, 0.02),
    ]
    table = format_overhead_table(results).splitlines()
    assert len(table) == 4
    assert table[2].split() == ["random", "memory", "1.00", "1.00", "0.0"]
    assert table[3].split() == ["tpe", "sqlite", "2.00", "2.00", "0.0"]
