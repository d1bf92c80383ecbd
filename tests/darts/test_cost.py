"""Cost-aware DARTS (FBNet / ProxylessNAS cost term): the per-op tables are measured at the
supernet's real edge shapes and normalised, bad tables and weights get clear errors,
cost_weight=0 is plain DARTS, the cost gradient is added in both orders, and on digits a
larger weight derives cheaper cells."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import fields
from typing import Any

import optuna
import pytest
import torch
from torch import nn

import optuna_nas as nas
from optuna_nas.benchmarks.__main__ import main
from optuna_nas.benchmarks._darts_cost import CostRow, format_rows
from optuna_nas.darts import (
    DartsResult,
    DartsSearch,
    OpCostTable,
    architecture_flops,
    op_cost_table,
    search,
)
from optuna_nas.darts._cost import edge_shapes
from optuna_nas.spaces import DartsCells, NasBench201Space

from .test_search import TINY_NB201, batch, random_data

NB201 = NasBench201Space()
FREE = {"none": 0.0, "skip_connect": 0.0, "avg_pool_3x3": 0.0}


# ---- the tables ------------------------------------------------------------------------
def test_flops_table_of_nasbench201_is_each_ops_flops_at_each_stage_normalised() -> None:
    table = op_cost_table(NB201, "flops", channels=4, cells_per_stage=2, image_size=8)
    assert table.measure == "flops" and table.unit == "FLOPs" and table.ops == NB201.ops
    raw = table.raw["cell"]
    assert raw.shape == (6, 5) and raw.dtype == torch.float64
    # A 1x1 convolution: 2 * C * C * H * W per cell; stages (4, 8x8), (8, 4x4), (16, 2x2).
    conv1 = 2 * sum(c * c * s * s for c, s in ((4, 8), (8, 4), (16, 2)))
    per_op = dict(zip(NB201.ops, raw[0].tolist(), strict=True))
    assert per_op == {"none": 0, "skip_connect": 0, "avg_pool_3x3": 0,
                      "nor_conv_1x1": 2 * conv1, "nor_conv_3x3": 2 * 9 * conv1}
    assert bool((raw == raw[0]).all())  # every edge has the same shapes
    # Normalised by the most expensive choice on every mixed op: 6 edges of 3x3 convs.
    assert table.scale == 6 * per_op["nor_conv_3x3"]
    torch.testing.assert_close(table.table["cell"], raw / table.scale)
    worst = NB201.from_values({f"{t}<-{f}": "nor_conv_3x3"
                               for t, f in ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))})
    assert table.arch_cost(NB201, worst) == pytest.approx(1.0)
    uniform = {"cell": torch.full((6, 5), 0.2, dtype=torch.float64)}
    assert float(table.expected(uniform)) == pytest.approx(0.2 * 10 / 9)


def test_darts_cells_table_prices_the_reduction_cells_stride_two_skip() -> None:
    space = DartsCells(steps=2)
    table = op_cost_table(space, "flops", channels=4, layers=3, image_size=8)
    ops = list(space.ops)
    normal, reduce = table.raw["normal"], table.raw["reduce"]
    for name in ("none", "max_pool_3x3", "avg_pool_3x3", "skip_connect"):
        assert bool((normal[:, ops.index(name)] == 0).all())
    # Edges from the cell's inputs have stride 2: skip_connect is FactorizedReduce there.
    skip = reduce[:, ops.index("skip_connect")].tolist()
    assert all(v > 0 for v in skip[:4]) and skip[4] == 0  # edge n3<-2 has stride 1
    assert bool((normal[:, ops.index("sep_conv_5x5")] > normal[:, ops.index("sep_conv_3x3")])
                .all())
    assert table.scale == pytest.approx(sum(float(t.max(1).values.sum())
                                            for t in table.raw.values()))


@pytest.mark.parametrize("space", [NasBench201Space(), DartsCells(steps=2)],
                         ids=["nasbench201", "darts"])
def test_edge_shapes_are_those_the_supernet_computes(space: Any) -> None:
    """The analytic shapes equal the inputs a forward pass gives each edge's pool op."""
    options = {"channels": 4, **({"cells_per_stage": 2} if isinstance(space, NasBench201Space)
                                 else {"layers": 4})}
    s = DartsSearch(space, num_classes=3, in_channels=1, **options)
    seen: dict[str, list[list[tuple[int, int, int, int]]]] = {
        k: [[] for _ in v] for k, v in s.supernet.edges.items()}
    hooks = []
    for name, module in s.supernet.named_modules():
        if name.endswith(".ops.avg_pool_3x3"):
            cell = s.supernet.get_submodule(name.split(".edges.")[0])
            kind = "cell" if not hasattr(cell, "reduction") else (
                "reduce" if cell.reduction else "normal")
            edge = name.split(".edges.")[1].split(".")[0]
            row = int(edge) if kind == "cell" else s.supernet.edges[kind].index(edge)
            stride = 2 if kind == "reduce" and int(edge.split("<-")[1]) < 2 else 1

            def hook(_m: nn.Module, inputs: tuple[torch.Tensor, ...], kind: str = kind,
                     row: int = row, stride: int = stride) -> None:
                c, h, w = inputs[0].shape[1:]
                seen[kind][row].append((c, stride, h, w))

            hooks.append(module.register_forward_pre_hook(hook))
    s.supernet(torch.zeros(2, 1, 8, 8), weights=s.op_weights(detach=True))
    for h in hooks:
        h.remove()
    assert seen == edge_shapes(space, options, (8, 8))


def test_latency_table_is_measured_on_the_device_and_free_ops_cost_nothing() -> None:
    table = op_cost_table(NB201, "latency", channels=4, cells_per_stage=1, image_size=8,
                          device="cpu", latency_run_time=0.01)
    assert table.measure == "latency" and table.unit == "s" and table.device == "cpu"
    per_op = dict(zip(NB201.ops, table.raw["cell"][0].tolist(), strict=True))
    assert per_op["none"] == 0 and per_op["skip_connect"] == 0
    assert all(0 < per_op[op] < 0.1 for op in ("nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"))
    assert float(table.table["cell"].max(1).values.sum()) == pytest.approx(1.0)


def test_mapping_table_gives_each_op_its_cost_on_every_edge() -> None:
    costs = {**FREE, "nor_conv_1x1": 1.0, "identity": 0.0, "nor_conv_3x3": 4}
    del costs["skip_connect"]  # given by its alias instead
    table = op_cost_table(NB201, costs, cells_per_stage=2)
    assert table.measure == "mapping"
    # Two cells share every edge's alphas in each of the three stages: 6 instances.
    assert table.raw["cell"][2].tolist() == [0, 0, 6.0, 24.0, 0]
    assert table.scale == 6 * 24.0
    assert table.table["cell"][0].tolist() == [0, 0, 1 / 24, 1 / 6, 0]


# ---- bad input -------------------------------------------------------------------------
BAD_COSTS: list[tuple[object, type[Exception], str]] = [
    ("params", ValueError, "op_costs must be 'flops', 'latency' or a mapping"),
    (3.0, TypeError, "op_costs must be 'flops', 'latency', a mapping"),
    ({**FREE, "nor_conv_1x1": 1, "nor_conv_3x3": 2, "conv_5x5": 3}, ValueError,
     r"names op\(s\) 'conv_5x5' that the nasbench201 space does not have; its ops are"),
    ({**FREE, "nor_conv_1x1": 1}, ValueError,
     r"no cost for op\(s\) \['nor_conv_3x3'\] .* give a cost for every one of"),
    ({**FREE, "nor_conv_1x1": -1, "nor_conv_3x3": 2}, ValueError,
     r"op_costs\['nor_conv_1x1'\] must be a non-negative finite number, got -1"),
    ({**FREE, "nor_conv_1x1": math.nan, "nor_conv_3x3": 2}, ValueError,
     r"op_costs\['nor_conv_1x1'\] must be a non-negative finite number, got nan"),
    ({**FREE, "nor_conv_1x1": math.inf, "nor_conv_3x3": 2}, ValueError, "got inf"),
    ({**FREE, "nor_conv_1x1": True, "nor_conv_3x3": 2}, ValueError, "got True"),
    ({**FREE, "nor_conv_1x1": "1", "nor_conv_3x3": 2}, ValueError, "got '1'"),
    ({**FREE, "identity": 0, "nor_conv_1x1": 1, "nor_conv_3x3": 2}, ValueError,
     "gives 'skip_connect' twice"),
    ({**FREE, "nor_conv_1x1": 0, "nor_conv_3x3": 0}, ValueError,
     "costs 0 in op_costs, so the cost term would be constant"),
]


@pytest.mark.parametrize(("op_costs", "error", "match"), BAD_COSTS,
                         ids=[f"costs{i}" for i in range(len(BAD_COSTS))])
def test_bad_op_costs_get_a_clear_error(op_costs: Any, error: type[Exception],
                                        match: str) -> None:
    with pytest.raises(error, match=match):
        search(NB201, random_data(), epochs=1, batch_size=8, cost_weight=0.5, op_costs=op_costs,
               **TINY_NB201)


def test_a_table_of_free_ops_is_refused() -> None:
    space = DartsCells(steps=1, ops=("none", "avg_pool_3x3", "max_pool_3x3"))
    with pytest.raises(ValueError, match=r"costs 0 in flops, so the cost term would be constant"):
        op_cost_table(space, "flops", channels=4, layers=3, image_size=8)


@pytest.mark.parametrize("weight", [-0.1, math.nan, math.inf, True, "1"])
def test_bad_cost_weights_get_a_clear_error(weight: Any) -> None:
    with pytest.raises(ValueError, match="cost_weight must be a non-negative finite number "
                                         r"\(0 turns the cost term off\)"):
        DartsSearch(NB201, cost_weight=weight, **TINY_NB201)


def test_a_table_of_another_supernet_and_a_missing_image_size_get_a_clear_error() -> None:
    table = op_cost_table(DartsCells(steps=1), "flops", channels=4, layers=3, image_size=8)
    with pytest.raises(ValueError, match="build it with op_cost_table"):
        DartsSearch(NB201, cost_weight=1.0, op_costs=table, **TINY_NB201)
    with pytest.raises(TypeError, match="already an OpCostTable"):
        op_cost_table(DartsCells(steps=1), table)  # type: ignore[arg-type]
    s = DartsSearch(NB201, cost_weight=1.0, **TINY_NB201)
    with pytest.raises(ValueError, match="pass image_size="):
        s.measure_costs()
    with pytest.raises(ValueError, match="derived_flops needs the images' size"):
        s.derived_flops()
    with pytest.raises(ValueError, match="image_size must be"):
        DartsSearch(NB201, image_size=(8,), **TINY_NB201)  # type: ignore[arg-type]


# ---- the search ------------------------------------------------------------------------
def _same(a: DartsResult, b: DartsResult) -> None:
    for f in fields(DartsResult):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if f.name == "seconds":
            continue
        if f.name == "alphas":
            assert all(torch.equal(x[k], y[k]) for k in x)
        elif f.name == "alpha_history":
            assert all(torch.equal(p[k], q[k]) for p, q in zip(x, y, strict=True) for k in p)
        else:
            assert x == y, f.name


@pytest.mark.parametrize("order", ["first", "second"])
def test_cost_weight_zero_is_plain_darts(order: str) -> None:
    """Weight 0 measures nothing and gives the very result of a search without the
    keywords, whatever op_costs says."""
    data = random_data()
    options: dict[str, Any] = {"epochs": 2, "batch_size": 8, "order": order, **TINY_NB201}
    plain = search(NB201, data, **options)
    state = torch.get_rng_state()
    zero = search(NB201, data, cost_weight=0.0, op_costs="latency", **options)
    assert torch.equal(torch.get_rng_state(), state)
    _same(plain, zero)
    assert zero.cost_weight == 0 and zero.expected_cost is None and zero.cost_table is None
    assert plain.derived_flops == architecture_flops(
        NB201, plain.architecture, image_size=8, channels=4, cells_per_stage=1, in_channels=1,
        num_classes=3)
    assert DartsSearch(NB201, cost_weight=0, image_size=8, **TINY_NB201).cost_table is None


@pytest.mark.parametrize("order", ["first", "second"])
def test_the_cost_gradient_is_added_to_the_architecture_gradient(order: str) -> None:
    """d/da [w * sum(softmax(a) * c)] = w * p * (c - sum(p * c)) per edge, on top of the
    plain (first- or second-order) gradient of the same iteration."""
    options: dict[str, Any] = {"num_classes": 3, "in_channels": 1, "order": order,
                               "dtype": torch.float64, **TINY_NB201}
    costs = {**FREE, "nor_conv_1x1": 1.0, "nor_conv_3x3": 3.0}
    plain = DartsSearch(NB201, **options)
    costly = DartsSearch(NB201, cost_weight=2.5, op_costs=costs, **options)
    assert costly.cost_table is not None  # a mapping needs no images
    train, valid = batch(0), batch(1)
    train = (train[0].double(), train[1])
    valid = (valid[0].double(), valid[1])
    g0, loss0 = plain.arch_gradient(train, valid)
    g1, loss1 = costly.arch_gradient(train, valid)
    assert torch.equal(loss0, loss1)  # the returned loss is the validation loss alone
    p = torch.softmax(costly.alphas["cell"].detach(), -1)
    c = costly.cost_table.table["cell"]
    analytic = 2.5 * p * (c - (p * c).sum(1, keepdim=True))
    torch.testing.assert_close(g1["cell"] - g0["cell"], analytic)


def test_a_second_order_search_of_darts_cells_takes_a_given_latency_table() -> None:
    space = DartsCells(steps=1)
    table = op_cost_table(space, "latency", channels=2, layers=3, image_size=8,
                          latency_run_time=0.005)
    result = search(space, random_data(), epochs=1, order="second", batch_size=8, channels=2,
                    layers=3, cost_weight=1.0, op_costs=table)
    assert result.cost_table is table and result.expected_cost is not None
    assert result.derived_flops == architecture_flops(
        space, result.architecture, image_size=8, channels=2, layers=3, in_channels=1,
        num_classes=3)
    assert 0 < table.arch_cost(space, result.architecture) < 1


def test_lazy_table_comes_from_the_first_batch() -> None:
    s = DartsSearch(NB201, num_classes=3, in_channels=1, cost_weight=1.0, **TINY_NB201)
    assert s.cost_table is None
    s.step(batch(0), batch(1))
    assert s.cost_table is not None and s.image_size == (8, 8)
    expected = op_cost_table(NB201, channels=4, cells_per_stage=1, image_size=8)
    assert torch.equal(s.cost_table.raw["cell"], expected.raw["cell"])
    assert 0 < s.expected_cost() < 1
    assert s.derived_flops() > 0


def test_a_cost_aware_trial_records_its_expected_cost_and_flops() -> None:
    study = optuna.create_study(direction="maximize")
    found: list[DartsResult] = []

    def objective(trial: optuna.Trial) -> float:
        found.append(search(NB201, random_data(), trial=trial, epochs=2, batch_size=8,
                            arch_lr=0.05, cost_weight=1.0, **TINY_NB201))
        return found[-1].valid_accuracy

    study.optimize(objective, n_trials=1)
    (result,) = found
    attrs = study.trials[0].user_attrs
    assert attrs["darts_cost_weight"] == 1.0
    assert attrs["darts_expected_cost"] == result.expected_cost
    assert attrs["darts_derived_flops"] == result.derived_flops
    assert result.cost_table is not None and result.cost_table.measure == "flops"
    start = float(result.cost_table.expected(result.alpha_history[0]))
    assert result.expected_cost is not None and result.expected_cost < start


def test_an_outer_multi_objective_study_over_cost_weight_gives_a_front() -> None:
    """The docs' outer study, tiny: accuracy up, FLOPs down, epochs kept in epoch_values."""
    study = optuna.create_study(directions=["maximize", "minimize"],
                                sampler=optuna.samplers.RandomSampler(seed=0))
    data = random_data()

    def objective(trial: optuna.Trial) -> tuple[float, float]:
        result = search(NB201, data, trial=trial, epochs=2, batch_size=8, arch_lr=0.05,
                        cost_weight=trial.suggest_float("cost_weight", 0.0, 3.0), **TINY_NB201)
        assert result.derived_flops is not None
        return result.valid_accuracy, float(result.derived_flops)

    study.optimize(objective, n_trials=2)
    assert all(len(t.user_attrs["epoch_values"]) == 2 for t in study.trials)
    assert study.best_trials


# ---- the acceptance run: digits, NAS-Bench-201 cells, tiny width -----------------------
def test_larger_cost_weights_derive_cheaper_cells_on_digits() -> None:
    """cost_weight 0, 0.3 and 3, same seed: the derived cells' FLOPs do not increase, the
    largest weight's are lower than weight 0's and so is its CPU latency (by a wide
    margin: measured 0.31x; asserted below 0.8x). docs/darts.md: seeds 0 to 3 all did."""
    data = nas.load_digits(seed=0)
    sizing = {"channels": 4, "cells_per_stage": 1}
    rows = []
    for weight in (0.0, 0.3, 3.0):
        result = search(NB201, data, epochs=6, arch_lr=1e-2, weight_lr=0.05, seed=0,
                        cost_weight=weight, device="cpu", **sizing)
        model = NB201.build(result.architecture, in_channels=1, num_classes=10, **sizing)
        latency = min(nas.measure_latency(model, (1, 8, 8), min_run_time=0.05)
                      for _ in range(3))
        assert result.derived_flops == nas.count_flops(model, (1, 8, 8))
        rows.append((weight, result.derived_flops, latency, result.valid_accuracy,
                     result.derived_accuracy, result.genotype))
    for w, f, lat, acc, derived, cell in rows:  # shown with pytest -s (or -rP)
        print(f"weight {w:g}: FLOPs {f}, latency {lat * 1e6:.0f} us, supernet accuracy "
              f"{acc:.3f}, derived cell on the shared weights {derived:.3f}, {cell}")
    flops = [r[1] for r in rows]
    assert flops == sorted(flops, reverse=True) and flops[-1] < flops[0], rows
    assert rows[-1][2] < 0.8 * rows[0][2], rows
    assert rows[0][3] > 0.5  # the plain search learned digits
    convs = [Counter(op for op in r[5].replace("|", " ").split() if "conv" in op) for r in rows]
    assert sum(convs[0].values()) > sum(convs[-1].values())


# ---- the figures' command --------------------------------------------------------------
def test_darts_cost_command_prints_a_row_per_weight(capsys: Any, tmp_path: Any) -> None:
    out = tmp_path / "rows.json"
    assert main(["darts-cost", "--weights", "0,2", "--epochs", "1", "--retrain-epochs", "1",
                 "--channels", "4", "--json", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("darts-cost: NAS-Bench-201 cells on digits, 4 channels")
    assert lines[1].split()[:3] == ["weight", "FLOPs", "params"]
    assert [line.split()[0] for line in lines[2:4]] == ["0", "2"]
    assert lines[-1].startswith("total ")
    import json

    rows = [CostRow(**r) for r in json.loads(out.read_text())]
    assert [r.cost_weight for r in rows] == [0.0, 2.0]
    assert rows[0].expected_cost is None and rows[1].expected_cost is not None
    assert all(0 <= r.test_accuracy <= 1 and r.flops > 0 and r.latency_ms > 0 for r in rows)
    assert format_rows(rows).splitlines()[1:] == lines[2:4]


@pytest.mark.parametrize("weights", ["-1", "a,b", ""])
def test_darts_cost_command_rejects_bad_weights(weights: str, capsys: Any) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["darts-cost", "--weights", weights])
    assert exit_.value.code == 2
    assert "non-negative cost weights" in capsys.readouterr().err


def test_op_cost_table_is_exported() -> None:
    assert nas.darts.OpCostTable is OpCostTable
