from __future__ import annotations

import math

import pytest
import torch
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from optuna_nas.samplers._params import LearnedParams, ParamDecision, ValueIn, learn_conditions
from optuna_nas.spaces import Decision

DISTRIBUTIONS: dict[str, BaseDistribution] = {
    "categorical": CategoricalDistribution(["a", 1, 2.5, None, True]),
    "int": IntDistribution(1, 7, step=2),
    "int-wide": IntDistribution(0, 10_000),
    "int-log": IntDistribution(8, 512, log=True),
    "float": FloatDistribution(-1.0, 3.0),
    "float-log": FloatDistribution(1e-5, 1e-1, log=True),
    "float-step": FloatDistribution(0.0, 1.0, step=0.25),
    "float-fine-step": FloatDistribution(0.0, 100.0, step=0.01),
    "single-int": IntDistribution(3, 3),
    "single-float": FloatDistribution(2.0, 2.0),
}


@pytest.mark.parametrize("name", list(DISTRIBUTIONS))
def test_every_value_drawn_is_inside_the_distribution_and_maps_back(name: str) -> None:
    distribution = DISTRIBUTIONS[name]
    decision = ParamDecision.of(name, name, distribution)
    generator = torch.Generator().manual_seed(0)
    for index in range(decision.size):
        for _ in range(20):
            value = decision.value(index, generator)
            assert distribution._contains(distribution.to_internal_repr(value)), value
            assert decision.index(value) == index
    assert decision.index("not a value") == -1


def test_grids_are_enumerated_and_fine_ranges_binned() -> None:
    assert ParamDecision.of("k", "k", DISTRIBUTIONS["int"]).size == 4
    assert ParamDecision.of("k", "k", DISTRIBUTIONS["float-step"]).grid
    for name in ("int-wide", "float", "float-log", "float-fine-step"):
        decision = ParamDecision.of(name, name, DISTRIBUTIONS[name])
        assert not decision.grid and decision.ordinal and decision.size == 16
    # Log bins: each covers the same ratio.
    decision = ParamDecision.of("lr", "lr", DISTRIBUTIONS["float-log"])
    assert decision.index(1e-5) == 0 and decision.index(1e-1) == 15
    assert decision.index(math.sqrt(1e-5 * 1e-1) * 1.0001) == 8
    assert not ParamDecision.of("c", "c", DISTRIBUTIONS["categorical"]).ordinal


def test_params_are_ordered_as_suggested_and_a_changed_distribution_is_a_new_decision() -> None:
    learned = LearnedParams(lambda name: name != "skip")
    op = CategoricalDistribution(["conv", "pool"])
    lr = FloatDistribution(1e-4, 1e-1, log=True)
    assert learned.observe({"op": op, "skip": op, "lr": lr}) == []
    assert [d.name for d in learned.decisions] == ["op", "lr"]
    assert learned.observe({"op": op, "lr": lr}) is None
    # A param first seen later goes after the param suggested before it.
    assert learned.observe({"op": op, "kernel": IntDistribution(1, 7, step=2), "lr": lr}) == [
        0, 2]
    assert [d.name for d in learned.decisions] == ["op", "kernel", "lr"]
    wider = FloatDistribution(1e-5, 1e-1, log=True)
    learned.observe({"op": op, "lr": wider})
    # Right after "op", which this trial suggested before it.
    assert [d.name for d in learned.decisions] == ["op", "lr#1", "kernel", "lr"]
    assert learned.find("lr", lr) == 3 and learned.find("lr", wider) == 1
    assert learned.latest("lr") == 1
    assert learned.row({"op": "pool", "lr": 1e-5}, {"op": op, "lr": wider}) == [1, 0, -1, -1]


def test_conditions_are_learned_from_the_rows() -> None:
    decisions = [
        Decision("op", ("conv", "pool", "id")),
        Decision("kernel", (0, 1, 2, 3)),
        Decision("n", (0, 1, 2)),
        Decision("w1", (0, 1)),
        Decision("lr", (0, 1)),
    ]
    rows = [
        [0, 2, 0, -1, 1],
        [1, -1, 1, 0, 0],
        [2, -1, 2, 1, 1],
        [0, 1, 2, 0, 0],
        [1, -1, 0, -1, 1],
    ]
    found = learn_conditions(rows, decisions, range(5))
    assert found[0] is None and found[4] is None
    assert found[1] == ValueIn("op", frozenset({"conv"}), frozenset({"conv", "pool", "id"}))
    assert found[3] == ValueIn("n", frozenset({1, 2}), frozenset({0, 1, 2}))
    kernel = found[1]
    assert kernel is not None
    assert kernel({"op": "conv"}) and not kernel({"op": "pool"}) and not kernel({})


def test_describe_shows_values_and_bins() -> None:
    categorical = ParamDecision.of("op", "op", CategoricalDistribution(["a", "b"]))
    assert categorical.describe(1) == "'b'"
    grid = ParamDecision.of("n", "n", IntDistribution(2, 8, step=2))
    assert [grid.describe(i) for i in range(grid.size)] == ["2", "4", "6", "8"]
    binned = ParamDecision.of("lr", "lr", FloatDistribution(1e-4, 1.0, log=True))
    assert binned.describe(0) == "in [0.0001, 0.0001778]"
    assert binned.describe(binned.size - 1).endswith(", 1]")
    wide = ParamDecision.of("k", "k", IntDistribution(0, 1000))
    assert wide.describe(0).startswith("in [0, ")
