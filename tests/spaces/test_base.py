"""The search-space API on every registered space: round trips, Optuna studies, sampling,
errors, and a conditional space."""

from __future__ import annotations

import copy
import dataclasses
import inspect
import math
import random
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import optuna
import pytest

import optuna_nas.spaces as spaces_module
from optuna_nas.errors import ArchitectureError, NasError
from optuna_nas.spaces import (
    Architecture,
    DartsCells,
    Decision,
    NasBench201Space,
    NasNetCells,
    SearchSpace,
)
from tests.conftest import SPACE_FACTORIES, ToyConditionalSpace, make_study

SEEDS = range(6)


def _arch_params(space: SearchSpace, params: dict[str, object]) -> dict[str, object]:
    return {k: v for k, v in params.items() if k.startswith(space.prefix)}


def _active_param_names(space: SearchSpace, arch: Architecture) -> set[str]:
    return {space.param_name(d) for d in space.active_decisions(arch.as_dict())}


# ---- coverage of the registry of spaces -----------------------------------------------
def test_every_exported_space_is_covered() -> None:
    exported = {
        obj
        for obj in vars(spaces_module).values()
        if inspect.isclass(obj) and issubclass(obj, SearchSpace) and not inspect.isabstract(obj)
    }
    covered = {type(factory()) for factory in SPACE_FACTORIES.values()}
    assert exported, "optuna_nas.spaces exports no concrete space"
    missing = sorted(cls.__name__ for cls in exported - covered)
    assert not missing, f"add a factory for {missing} to tests/conftest.py SPACE_FACTORIES"


# ---- round trips ----------------------------------------------------------------------
@pytest.mark.parametrize("seed", SEEDS)
def test_string_round_trip(space: SearchSpace, seed: int) -> None:
    arch = space.sample(seed)
    parsed = space.parse(str(arch))
    assert parsed == arch
    assert str(parsed) == str(arch)
    assert hash(parsed) == hash(arch)
    assert space.parse(f"  {arch}\n") == arch  # surrounding whitespace is not part of it
    assert repr(arch) == f"Architecture({space.name!r}, {str(arch)!r})"


@pytest.mark.parametrize("seed", SEEDS)
def test_params_round_trip(space: SearchSpace, seed: int) -> None:
    arch = space.sample(seed)
    params = space.to_params(arch)
    assert all(key.startswith("arch/") for key in params)
    assert set(params) == _active_param_names(space, arch)
    assert space.from_params(params) == arch
    # Ordinary hyperparameters next to the architecture are ignored.
    assert space.from_params({**params, "lr": 0.01, "optimizer": "sgd"}) == arch
    assert space.from_values(arch.as_dict()) == arch


def test_prefix(space: SearchSpace) -> None:
    other = copy.copy(space)
    other.prefix = "cell/"
    arch = space.sample(1)
    params = other.to_params(arch)
    assert params and all(key.startswith("cell/") for key in params)
    assert other.from_params(params) == arch
    with pytest.raises(ArchitectureError, match="no param starts with 'arch/'"):
        space.from_params(params)


def test_two_spaces_in_one_trial() -> None:
    nb201 = NasBench201Space(prefix="nb/")
    cells = DartsCells(steps=2, prefix="cells/")

    def objective(trial: optuna.Trial) -> float:
        a, b = nb201.suggest(trial), cells.suggest(trial)
        trial.set_user_attr("a", str(a))
        trial.set_user_attr("b", str(b))
        return 0.0

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(objective, n_trials=3)
    for trial in study.trials:
        assert str(nb201.from_params(trial.params)) == trial.user_attrs["a"]
        assert str(cells.from_params(trial.params)) == trial.user_attrs["b"]


# ---- studies --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("sampler", "storage"),
    [
        ("random", "memory"),
        ("tpe", "memory"),
        ("tpe-group", "memory"),
        ("random", "sqlite"),
        ("tpe", "sqlite"),
    ],
)
def test_suggest_in_study(space: SearchSpace, sampler: str, storage: str, tmp_path: Path) -> None:
    study = make_study(sampler, storage, tmp_path)
    enqueued = space.sample(11)
    study.enqueue_trial(space.to_params(enqueued))
    returned: dict[int, Architecture] = {}

    def objective(trial: optuna.Trial) -> float:
        arch = space.suggest(trial)
        assert isinstance(arch, Architecture)
        returned[trial.number] = arch
        lr = trial.suggest_float("lr", 1e-3, 1e-1, log=True)
        trial.set_user_attr("arch", str(arch))
        return (hash(str(arch)) % 1000) / 1000 + lr

    n_trials = 6 if storage == "memory" else 3  # SQLite: a write per param
    study.optimize(objective, n_trials=n_trials)
    trials = study.trials
    assert len(trials) == n_trials
    assert space.from_params(trials[0].params) == enqueued
    for trial in trials:
        assert trial.state == optuna.trial.TrialState.COMPLETE
        arch = space.from_params(trial.params)
        assert arch == returned[trial.number]
        assert str(arch) == trial.user_attrs["arch"]
        arch_params = _arch_params(space, trial.params)
        # Only the architecture's (active) decisions, all categorical, plus the lr.
        assert set(arch_params) == _active_param_names(space, arch)
        assert set(trial.params) - set(arch_params) == {"lr"}
        for name in arch_params:
            assert isinstance(
                trial.distributions[name], optuna.distributions.CategoricalDistribution
            )
    if storage == "sqlite":
        # A fresh handle on the same storage (another worker) rebuilds the same archs.
        reloaded = optuna.load_study(
            study_name=study.study_name, storage=f"sqlite:///{tmp_path / 'study.db'}"
        )
        assert [space.from_params(t.params) for t in reloaded.trials] == [
            space.from_params(t.params) for t in trials
        ]


def test_enqueue_trial(space: SearchSpace, tmp_path: Path) -> None:
    study = make_study("tpe", "memory", tmp_path)
    wanted = [space.sample(seed) for seed in (12, 13, 12)]
    for arch in wanted:
        study.enqueue_trial(space.to_params(arch), skip_if_exists=False)
    got: list[Architecture] = []

    def objective(trial: optuna.Trial) -> float:
        got.append(space.suggest(trial))
        trial.suggest_float("lr", 1e-3, 1e-1, log=True)
        return 0.0

    study.optimize(objective, n_trials=3)
    assert got == wanted
    assert [space.from_params(t.params) for t in study.trials] == wanted


def test_best_params_rebuild_best_arch(space: SearchSpace) -> None:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    archs: dict[int, Architecture] = {}

    def objective(trial: optuna.Trial) -> float:
        archs[trial.number] = space.suggest(trial)
        return float(trial.number % 3)

    study.optimize(objective, n_trials=5)
    assert space.from_params(study.best_params) == archs[study.best_trial.number]


# ---- Architecture values --------------------------------------------------------------
def test_architecture_is_hashable_and_immutable(space: SearchSpace) -> None:
    arch = space.sample(0)
    same = space.parse(str(arch))
    assert arch == same and arch is not same
    assert len({arch, same}) == 1
    assert {arch: 1}[same] == 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        arch.values = ()  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        arch.string = "x"  # type: ignore[misc]
    assert isinstance(arch.values, tuple)
    assert all(isinstance(pair, tuple) for pair in arch.values)
    # as_dict hands out a copy.
    values = arch.as_dict()
    first = next(iter(values))
    values[first] = "changed"
    assert arch[first] != "changed"
    assert arch[first] == dict(arch.values)[first]
    with pytest.raises(KeyError):
        arch["no such decision"]
    # Decisions are made in the space's order.
    order = [d.name for d in space.decisions]
    names = [name for name, _ in arch.values]
    assert names == sorted(names, key=order.index)


def test_different_architectures_differ(space: SearchSpace) -> None:
    archs = {space.sample(seed) for seed in range(30)}
    strings = {str(a) for a in archs}
    assert len(archs) == len(strings) > 5


# ---- sampling -------------------------------------------------------------------------
def test_sample_is_repeatable(space: SearchSpace) -> None:
    for seed in SEEDS:
        assert space.sample(seed) == space.sample(seed)
        assert space.sample(random.Random(seed)) == space.sample(random.Random(seed))
        assert space.sample(np.random.default_rng(seed)) == space.sample(
            np.random.default_rng(seed)
        )
    rng_a, rng_b = random.Random(7), random.Random(7)
    assert [space.sample(rng_a) for _ in range(5)] == [space.sample(rng_b) for _ in range(5)]
    assert len({space.sample(seed) for seed in range(10)}) > 1


def _chi2_bound(df: int) -> float:
    # Far in the tail (roughly p < 1e-6): a fair sampler never fails, a biased one does.
    return df + 7.0 * math.sqrt(2.0 * df) + 10.0


def test_sample_is_roughly_uniform(space: SearchSpace) -> None:
    rng = random.Random(1234)
    samples = [space.sample(rng).as_dict() for _ in range(800)]
    checked = 0
    for decision in space.decisions:
        seen = [values[decision.name] for values in samples if decision.name in values]
        if len(seen) < 20 * len(decision.choices):
            continue
        counts = Counter(seen)
        assert set(counts) <= set(decision.choices)
        expected = len(seen) / len(decision.choices)
        stat = sum((counts[c] - expected) ** 2 / expected for c in decision.choices)
        df = len(decision.choices) - 1
        assert stat < _chi2_bound(df), (decision.name, counts)
        checked += 1
    assert checked >= 1


def test_chi_square_check_can_fail() -> None:
    # The bound above rejects a sampler that favours one choice.
    counts = [300, 125, 125, 125, 125]
    expected = sum(counts) / len(counts)
    stat = sum((c - expected) ** 2 / expected for c in counts)
    assert stat > _chi2_bound(len(counts) - 1)


# ---- errors ---------------------------------------------------------------------------
def test_errors_are_package_errors_and_value_errors() -> None:
    assert issubclass(ArchitectureError, NasError)
    assert issubclass(ArchitectureError, ValueError)


@pytest.mark.parametrize("bad", [None, 123, 1.5, b"bytes", ["a"], {"a": 1}])
def test_parse_rejects_non_strings(space: SearchSpace, bad: object) -> None:
    with pytest.raises(ArchitectureError, match="expected an architecture string, got"):
        space.parse(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", ["", "   ", "garbage", "|||", "Genotype()", "(", "\x00"])
def test_parse_rejects_garbage(space: SearchSpace, bad: str) -> None:
    with pytest.raises(ArchitectureError):
        space.parse(bad)


def test_from_params_with_unknown_keys_names_the_other_space() -> None:
    nb201, darts = NasBench201Space(), DartsCells()
    params = nb201.to_params(nb201.sample(0))
    with pytest.raises(ArchitectureError, match="unknown decision") as info:
        darts.from_params(params)
    message = str(info.value)
    assert "1<-0" in message and "different search space" in message
    with pytest.raises(ArchitectureError, match="unknown decision"):
        nb201.from_params(darts.to_params(darts.sample(0)))


@pytest.mark.parametrize("other", list(SPACE_FACTORIES))
def test_from_params_of_another_space_fails(space: SearchSpace, other: str) -> None:
    other_space = SPACE_FACTORIES[other]()
    arch = other_space.sample(5)
    params = other_space.to_params(arch)
    try:
        rebuilt = space.from_params(params)
    except ArchitectureError:
        return
    # Only a space that accepts exactly the same params may rebuild them, identically.
    assert space.to_params(rebuilt) == params
    assert str(rebuilt) == str(arch)


def test_from_params_missing_key(space: SearchSpace) -> None:
    params = space.to_params(space.sample(2))
    dropped = sorted(params)[-1]
    del params[dropped]
    with pytest.raises(ArchitectureError, match="missing") as info:
        space.from_params(params)
    assert repr(dropped[len("arch/") :]) in str(info.value)


def test_from_params_invalid_value(space: SearchSpace) -> None:
    params = space.to_params(space.sample(2))
    key = sorted(params)[0]
    params[key] = "bogus_value"
    with pytest.raises(ArchitectureError, match="'bogus_value' is not a choice") as info:
        space.from_params(params)
    assert repr(key[len("arch/") :]) in str(info.value)


@pytest.mark.parametrize("params", [{}, {"lr": 0.1}, {"other/x": 1}])
def test_from_params_without_arch_params(space: SearchSpace, params: dict[str, object]) -> None:
    with pytest.raises(ArchitectureError, match="no param starts with 'arch/'"):
        space.from_params(params)


def test_from_values_is_type_strict() -> None:
    space = NasNetCells(steps=1)
    arch = space.sample(0)
    values = arch.as_dict()
    values["normal/n2/in1"] = float(values["normal/n2/in1"])  # type: ignore[arg-type]
    with pytest.raises(ArchitectureError, match="is not a choice"):
        space.from_values(values)
    values["normal/n2/in1"] = str(int(values["normal/n2/in1"]))  # type: ignore[arg-type]
    with pytest.raises(ArchitectureError, match="is not a choice"):
        space.from_values(values)


def test_architecture_of_another_space_is_rejected(space: SearchSpace) -> None:
    foreign = Architecture("some-other-space", (("x", 1),), "x")
    with pytest.raises(ArchitectureError, match="is not an architecture of the"):
        space.to_params(foreign)
    with pytest.raises(ArchitectureError, match="is not an architecture of the"):
        space.build(foreign)
    with pytest.raises(ArchitectureError):
        space.to_params(str(space.sample(0)))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("make_space", "make_other"),
    [
        (DartsCells, lambda: DartsCells(steps=2)),  # a subset of the decisions
        (lambda: DartsCells(steps=2), DartsCells),  # a superset
        (lambda: NasNetCells(ops="enas"), NasNetCells),  # the same decisions, more ops
    ],
    ids=["fewer-steps", "more-steps", "more-ops"],
)
def test_architecture_of_another_configuration_is_rejected(
    make_space: Callable[[], SearchSpace], make_other: Callable[[], SearchSpace]
) -> None:
    space, other = make_space(), make_other()
    arch = next(a for a in (other.sample(seed) for seed in range(100)) if not _fits(space, a))
    with pytest.raises(ArchitectureError, match="another configuration"):
        space.to_params(arch)
    with pytest.raises(ArchitectureError, match="another configuration"):
        space.build(arch, channels=4, layers=3)


def _fits(space: SearchSpace, arch: Architecture) -> bool:
    try:
        space.from_values(arch.as_dict())
    except ArchitectureError:
        return False
    return True


# ---- decisions ------------------------------------------------------------------------
def test_decision_validation() -> None:
    with pytest.raises(ArchitectureError, match="'d' has no choices"):
        Decision("d", ())
    with pytest.raises(ArchitectureError, match="'d' has repeated choices"):
        Decision("d", ("a", "b", "a"))
    listed = Decision("d", ["a", "b"])  # type: ignore[arg-type]
    assert listed.choices == ("a", "b")
    assert hash(listed) == hash(Decision("d", ("a", "b")))
    with pytest.raises(dataclasses.FrozenInstanceError):
        listed.name = "e"  # type: ignore[misc]


def test_space_decision_names_are_unique(space: SearchSpace) -> None:
    names = [d.name for d in space.decisions]
    assert len(names) == len(set(names))
    assert all(isinstance(d.choices, tuple) and d.choices for d in space.decisions)


# ---- a conditional space --------------------------------------------------------------
def test_conditional_suggest_records_only_active_params() -> None:
    space = ToyConditionalSpace()
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(lambda t: float(len(str(space.suggest(t)))), n_trials=40)
    sizes = Counter()
    for trial in study.trials:
        arch = space.from_params(trial.params)
        n = arch["num_layers"]
        expected = {"arch/num_layers", "arch/dropout"}
        for i in range(n):  # type: ignore[arg-type]
            expected.add(f"arch/layer{i}/op")
            if arch[f"layer{i}/op"] == "conv_3x3":
                expected.add(f"arch/layer{i}/stride")
        assert set(trial.params) == expected
        sizes[n] += 1
    assert set(sizes) == {1, 2, 3}


def test_conditional_round_trip() -> None:
    space = ToyConditionalSpace()
    arch = space.parse("conv_3x3@2-skip_connect/dropout=True")
    assert arch.as_dict() == {
        "num_layers": 2,
        "layer0/op": "conv_3x3",
        "layer0/stride": 2,
        "layer1/op": "skip_connect",
        "dropout": True,
    }
    assert str(arch) == "conv_3x3@2-skip_connect/dropout=True"
    assert space.from_params(space.to_params(arch)) == arch
    assert [d.name for d in space.active_decisions(arch.as_dict())] == list(arch.as_dict())


def test_conditional_rejects_inactive_params() -> None:
    space = ToyConditionalSpace()
    values = {"num_layers": 1, "layer0/op": "skip_connect", "dropout": False}
    assert str(space.from_values(values)) == "skip_connect/dropout=False"
    for extra in ({"layer1/op": "conv_3x3"}, {"layer0/stride": 1}):
        with pytest.raises(ArchitectureError, match="is given but is inactive") as info:
            space.from_values({**values, **extra})
        assert repr(next(iter(extra))) in str(info.value)
    with pytest.raises(ArchitectureError, match="'layer0/stride' is given but is inactive"):
        space.parse("skip_connect@2/dropout=False")
    with pytest.raises(ArchitectureError, match="inactive"):
        space.from_params({"arch/" + k: v for k, v in {**values, "layer2/op": "conv_3x3"}.items()})


def test_conditional_rejects_missing_active_params() -> None:
    space = ToyConditionalSpace()
    with pytest.raises(ArchitectureError, match="'layer1/op' is missing"):
        space.from_values({"num_layers": 2, "layer0/op": "skip_connect", "dropout": False})
    with pytest.raises(ArchitectureError, match="'layer0/stride' is missing"):
        space.parse("conv_3x3/dropout=False")
    with pytest.raises(ArchitectureError, match="'num_layers' is missing"):
        space.from_values({"dropout": False})


def test_conditional_is_type_strict() -> None:
    space = ToyConditionalSpace()
    # True == 1 in Python, but a bool is not the layer count 1.
    with pytest.raises(ArchitectureError, match="True is not a choice of decision 'num_layers'"):
        space.from_values({"num_layers": True, "layer0/op": "skip_connect", "dropout": False})
    with pytest.raises(ArchitectureError, match="0 is not a choice of decision 'dropout'"):
        space.from_values({"num_layers": 1, "layer0/op": "skip_connect", "dropout": 0})


def test_conditional_enqueue_keeps_inactive_out() -> None:
    space = ToyConditionalSpace()
    arch = space.parse("avg_pool_3x3/dropout=False")
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0))
    study.enqueue_trial(space.to_params(arch))
    study.optimize(lambda t: float(len(str(space.suggest(t)))), n_trials=1)
    assert set(study.trials[0].params) == {"arch/num_layers", "arch/layer0/op", "arch/dropout"}
    assert space.from_params(study.trials[0].params) == arch


def test_conditions_see_only_earlier_decisions() -> None:
    seen: list[set[str]] = []

    class Probe(ToyConditionalSpace):
        def __init__(self) -> None:
            super().__init__()

            def condition(values):  # type: ignore[no-untyped-def]
                seen.append(set(values))
                return True

            self._decisions = (
                Decision("a", (1, 2)),
                Decision("b", (1, 2), condition=condition),
                Decision("c", (1, 2)),
            )

        def format(self, values):  # type: ignore[no-untyped-def]
            return ",".join(f"{k}={v}" for k, v in values.items())

    Probe().sample(0)
    assert seen == [{"a"}]
