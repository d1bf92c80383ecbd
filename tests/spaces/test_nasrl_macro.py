"""NAS-RL's macro (convolutional) space: decisions, strings, the searched depth and its
schedule."""

from __future__ import annotations

import optuna
import pytest

from optuna_nas.errors import ArchitectureError
from optuna_nas.nn._nasrl_macro import MacroLayerSpec
from optuna_nas.spaces import (
    DepthSchedule,
    NasRLMacroSpace,
    nasrl_depth_schedule,
)

EXAMPLE = "3x3x36|5x5x48<0|1x7x24<0,1"


# ---- decisions ------------------------------------------------------------------------
def test_fixed_depth_decisions() -> None:
    space = NasRLMacroSpace()
    names = [d.name for d in space.decisions]
    assert len(names) == 6 * 3 + 15  # three per layer, one anchor per pair of layers
    assert names[:4] == [
        "layer0/filter_height",
        "layer0/filter_width",
        "layer0/filters",
        "layer1/filter_height",
    ]
    # A layer's anchors follow its other decisions, one per earlier layer.
    assert names[names.index("layer2/filters") + 1 : names.index("layer3/filter_height")] == [
        "layer2/skip0",
        "layer2/skip1",
    ]
    for decision in space.decisions:
        assert decision.condition is None
        if "/skip" in decision.name:
            i, j = decision.anchor  # type: ignore[misc]
            assert decision.name == f"layer{i}/skip{j}" and j < i
            assert decision.choices == (False, True)
        else:
            assert decision.anchor is None
    assert space.decisions[0].choices == (1, 3, 5, 7)
    assert space.decisions[2].choices == (24, 36, 48, 64)


def test_searched_depth_gates_deeper_layers() -> None:
    space = NasRLMacroSpace(max_layers=10, strides=True)
    first = space.decisions[0]
    assert first.name == "num_layers" and first.choices == (6, 8, 10)
    by_name = {d.name: d for d in space.decisions}
    assert by_name["layer3/stride"].choices == (1, 2)
    assert by_name["layer5/skip4"].condition is None  # below the smallest depth
    gated = by_name["layer7/skip2"]
    assert gated.anchor == (7, 2)
    assert not gated.is_active({"num_layers": 6})
    assert gated.is_active({"num_layers": 8})
    assert not gated.is_active({})  # no depth yet: nothing deeper is made
    arch = space.parse("|".join(["3x3x24/1"] * 8))
    assert arch["num_layers"] == 8
    assert "layer8/filters" not in arch.as_dict()
    assert len(space.layer_specs(arch)) == 8


def test_constructor_validation() -> None:
    with pytest.raises(ArchitectureError, match="not both"):
        NasRLMacroSpace(layers=6, max_layers=8)
    with pytest.raises(ArchitectureError, match="positive integer"):
        NasRLMacroSpace(layers=0)
    with pytest.raises(ArchitectureError, match="multiple of layer_step"):
        NasRLMacroSpace(max_layers=9)
    with pytest.raises(ArchitectureError, match="multiple of layer_step"):
        NasRLMacroSpace(max_layers=6)
    with pytest.raises(ArchitectureError, match="positive integers"):
        NasRLMacroSpace(max_layers=8, layer_step=0)
    assert NasRLMacroSpace(min_layers=1, max_layers=4, layer_step=1).depth_choices == (
        1, 2, 3, 4,
    )
    assert "max_layers=8" in repr(NasRLMacroSpace(max_layers=8))


# ---- strings --------------------------------------------------------------------------
def test_example_string() -> None:
    space = NasRLMacroSpace(layers=3)
    arch = space.parse(EXAMPLE)
    assert str(arch) == EXAMPLE
    assert arch["layer1/skip0"] is True
    assert arch["layer2/skip0"] is True and arch["layer2/skip1"] is True
    assert space.layer_specs(arch) == [
        MacroLayerSpec(3, 3, 36, 1, ()),
        MacroLayerSpec(5, 5, 48, 1, (0,)),
        MacroLayerSpec(1, 7, 24, 1, (0, 1)),
    ]
    no_skips = space.parse("7x1x64|1x1x24|3x5x48")
    assert [s.inputs for s in space.layer_specs(no_skips)] == [(), (), ()]
    assert space.parse("  " + EXAMPLE + "\n") == arch


def test_strided_string() -> None:
    space = NasRLMacroSpace(min_layers=2, max_layers=4, strides=True)
    arch = space.parse("3x3x36/2|5x5x48/1<0")
    assert arch.as_dict()["layer0/stride"] == 2
    assert str(arch) == "3x3x36/2|5x5x48/1<0"
    assert [s.stride for s in space.layer_specs(arch)] == [2, 1]


@pytest.mark.parametrize("kwargs", [{}, {"max_layers": 10, "strides": True}, {"layers": 2}])
def test_round_trips(kwargs: dict[str, int | bool]) -> None:
    space = NasRLMacroSpace(**kwargs)  # type: ignore[arg-type]
    for seed in range(40):
        arch = space.sample(seed)
        assert space.parse(str(arch)) == arch
        assert space.from_params(space.to_params(arch)) == arch
        assert space.format(arch.as_dict()) == str(arch)


@pytest.mark.parametrize(
    ("string", "problem"),
    [
        ("3x3x36|5x5x48<0", "it has 2 layer(s), this space has 3"),
        ("3x3x36|5x5x48<0|1x7x24<0,1|3x3x36", "it has 4 layer(s)"),
        ("3x3x36|5x5x48<1|1x7x24", "reads only earlier layers"),
        ("3x3x36|5x5x48<0|1x7x24<1,0", "out of order or twice"),
        ("3x3x36|5x5x48<0|1x7x24<0,0", "out of order or twice"),
        ("3x3x36<0|5x5x48|1x7x24", "reads only earlier layers"),
        ("2x3x36|5x5x48|1x7x24", "filter height 2"),
        ("3x9x36|5x5x48|1x7x24", "filter width 9"),
        ("3x3x40|5x5x48|1x7x24", "filter count 40"),
        ("3x3x36/2|5x5x48|1x7x24", "searches none"),
        ("3x3|5x5x48|1x7x24", "layer 0 reads '3x3'"),
        ("3x3x36|5x5x48<|1x7x24", "layer 1 reads '5x5x48<'"),
        ("3x3x36||1x7x24", "layer 1 reads ''"),
        ("3x3x36|5x5x48<0|1x7x24<0,1|", "layer 3 reads ''"),
        ("3x3x36 |5x5x48|1x7x24", "layer 0 reads '3x3x36 '"),
        ("3X3X36|5x5x48|1x7x24", "layer 0 reads"),
        ("3x3x36,5x5x48,1x7x24", "layer 0 reads"),
    ],
)
def test_bad_strings(string: str, problem: str) -> None:
    with pytest.raises(ArchitectureError) as info:
        NasRLMacroSpace(layers=3).parse(string)
    message = str(info.value)
    assert problem in message
    assert "e.g. '3x3x36|5x5x48<0|1x7x24<0,1'" in message


@pytest.mark.parametrize(
    ("string", "problem"),
    [
        ("3x3x36|5x5x48/1", "layer 0 ('3x3x36') has no stride"),
        ("3x3x36/3|5x5x48/1", "stride 3"),
        ("3x3x36/1|5x5x48/1|1x1x24/1", "it has 3 layer(s), this space has 2 or 4"),
    ],
)
def test_bad_strided_strings(string: str, problem: str) -> None:
    with pytest.raises(ArchitectureError, match="e.g. '3x3x36/1|") as info:
        NasRLMacroSpace(min_layers=2, max_layers=4, strides=True).parse(string)
    assert problem in str(info.value)


# ---- depth schedule -------------------------------------------------------------------
def test_paper_depth_schedule() -> None:
    schedule = nasrl_depth_schedule()
    assert schedule == DepthSchedule(6, 2, 1600)
    assert [schedule(n)["num_layers"] for n in (0, 1, 1599, 1600, 3199, 3200, 16000)] == [
        6, 6, 6, 8, 8, 10, 26,
    ]
    assert schedule(1600) == {"num_layers": 8}
    capped = nasrl_depth_schedule(start=2, step=1, every=3, stop=4)
    assert [capped(n)["num_layers"] for n in range(12)] == [2, 2, 2, 3, 3, 3] + [4] * 6
    with pytest.raises(ValueError, match="negative"):
        schedule(-1)
    with pytest.raises(ValueError, match="every >= 1"):
        nasrl_depth_schedule(every=0)
    with pytest.raises(ValueError, match="below start"):
        nasrl_depth_schedule(stop=4)


def test_space_depth_schedule_stays_in_the_choices() -> None:
    space = NasRLMacroSpace(max_layers=12)
    schedule = space.depth_schedule(every=10)
    assert schedule == DepthSchedule(6, 2, 10, 12)
    depths = [schedule(n)["num_layers"] for n in range(0, 100, 5)]
    assert depths[0] == 6 and depths[-1] == 12 and depths == sorted(depths)
    assert set(depths) == set(space.depth_choices)
    with pytest.raises(ArchitectureError, match="fixed depth"):
        NasRLMacroSpace(layers=6).depth_schedule()


def test_forced_depth_in_a_study() -> None:
    # What a sampler does with the schedule: fix num_layers, sample the rest.
    space = NasRLMacroSpace(min_layers=2, max_layers=6)
    schedule = space.depth_schedule(every=2)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for n in range(6):
        forced = {space.param_name(k): v for k, v in schedule(n).items()}
        study.enqueue_trial(forced)
    depths = []

    def objective(trial: optuna.Trial) -> float:
        arch = space.suggest(trial)
        depths.append(len(space.layer_specs(arch)))
        return 0.0

    study.optimize(objective, n_trials=6)
    assert depths == [2, 2, 4, 4, 6, 6]
    for trial, depth in zip(study.trials, depths, strict=True):
        assert sum(k.endswith("/filters") for k in trial.params) == depth
