"""ControllerSampler with no space: the study's own params as its decisions."""

from __future__ import annotations

import math
import statistics
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
import torch
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.samplers import BaseSampler
from optuna.testing.pytest_samplers import BasicSamplerTestCase
from optuna.trial import TrialState

from optuna_nas.samplers import ControllerSampler
from optuna_nas.samplers._controller import PROPOSAL_KEY
from optuna_nas.samplers._params import ParamDecision
from optuna_nas.spaces import NasBench201Space


class TestBasicSampler(BasicSamplerTestCase):
    """Optuna's generic checks, every param a decision of the controller's."""

    @pytest.fixture
    def sampler(self) -> Callable[[], BaseSampler]:
        return lambda: ControllerSampler(seed=0)


def branching(trial: optuna.Trial) -> float:
    """A define-by-run objective whose params depend on an earlier categorical; best 2.0
    at op=conv, kernel=5, width 64, lr 10^-2.5."""
    op = trial.suggest_categorical("op", ["conv", "pool", "identity"])
    value = 0.0
    if op == "conv":
        kernel = trial.suggest_int("kernel", 1, 7, step=2)
        value += 1.0 - abs(kernel - 5) / 4
    elif op == "pool":
        value += 0.4 * (trial.suggest_categorical("pool", ["max", "avg"]) == "max")
    width = trial.suggest_int("width", 8, 512, log=True)
    lr = trial.suggest_float("lr", 1e-4, 1e-1, log=True)
    return value + 0.5 * (1 - abs(math.log2(width / 64)) / 3) - abs(math.log10(lr) + 2.5) / 3


ASKED = {"conv": {"op", "kernel", "width", "lr"}, "pool": {"op", "pool", "width", "lr"},
         "identity": {"op", "width", "lr"}}


def test_a_conditional_objective_gets_only_its_branchs_params_and_improves() -> None:
    sampler = ControllerSampler(seed=0)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(branching, n_trials=80)
    for trial in study.trials:
        assert trial.state == TrialState.COMPLETE
        assert set(trial.params) == ASKED[trial.params["op"]]
        for name, value in trial.params.items():
            distribution = trial.distributions[name]
            assert distribution._contains(distribution.to_internal_repr(value))
    values = [t.value for t in study.trials]
    first, last = statistics.fmean(values[:20]), statistics.fmean(values[-20:])
    assert last > first + 0.3, (first, last)
    # The conditions the sampler learned: kernel under conv, pool under pool.
    conditions = {d.name: d.condition for d in sampler._decisions}
    assert conditions["op"] is None and conditions["width"] is None
    kernel, pool = conditions["kernel"], conditions["pool"]
    assert kernel is not None and pool is not None
    # Over choice numbers: op's choices are conv (0), pool (1) and identity (2).
    assert kernel({"op": 0}) and not kernel({"op": 1}) and not kernel({})
    assert pool({"op": 1}) and not pool({"op": 2})
    # Proposals hold only the decisions their branch makes.
    for trial in study.trials[40:]:
        proposal = trial.system_attrs[PROPOSAL_KEY]["values"]
        assert set(proposal) <= ASKED[proposal["op"]]


def test_same_seed_same_suggestions_and_the_controller_beats_random_on_it() -> None:
    def run(sampler: BaseSampler) -> list[dict[str, object]]:
        study = optuna.create_study(direction="maximize", sampler=sampler)
        study.optimize(branching, n_trials=40)
        return [t.params for t in study.trials]

    assert run(ControllerSampler(seed=3)) == run(ControllerSampler(seed=3))
    assert run(ControllerSampler(seed=3)) != run(ControllerSampler(seed=4))


def test_a_param_seen_later_extends_the_policy_and_keeps_what_it_learned() -> None:
    sampler = ControllerSampler(seed=0)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(lambda t: float(t.suggest_categorical("a", [0, 1, 2]) == 2), n_trials=30)
    policy = sampler._policy
    rows = torch.tensor([[0], [1], [2]])
    _, before, _ = policy.unroll(3, choices=rows)
    assert before.argmax() == 2  # it learned to prefer a=2

    def wider(trial: optuna.Trial) -> float:
        a = trial.suggest_categorical("a", [0, 1, 2])
        b = trial.suggest_float("b", 0.0, 1.0)
        return float(a == 2) + b

    study.optimize(wider, n_trials=2)
    assert [d.name for d in sampler._decisions] == ["a", "b"]
    # The old decision's head and the LSTM carried over: rows without b score as before.
    _, after, _ = sampler._policy.unroll(3, choices=torch.tensor([[0, -1], [1, -1], [2, -1]]))
    assert after.argmax() == 2
    assert all(len(s.choices) == 2 and s.choices[1] == -1 for s in sampler._samples[:30])


def test_a_param_whose_distribution_changes_is_a_new_decision() -> None:
    sampler = ControllerSampler(seed=0)
    study = optuna.create_study(sampler=sampler)
    study.optimize(lambda t: t.suggest_float("lr", 1e-3, 1e-1, log=True), n_trials=3)
    study.optimize(lambda t: t.suggest_float("lr", 1e-5, 1e-1, log=True), n_trials=3)
    assert sorted(d.name for d in sampler._decisions) == ["lr", "lr#1"]
    assert all(1e-5 <= t.params["lr"] <= 1e-1 for t in study.trials[3:])


def test_values_stay_on_the_distributions_grid() -> None:
    study = optuna.create_study(sampler=ControllerSampler(seed=1))

    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", -2.0, 2.0, step=0.001)  # 4001 points: binned
        n = trial.suggest_int("n", 2, 1000, step=2)
        m = trial.suggest_int("m", 1, 5000, log=True)
        return x**2 + (n - 500) ** 2 / 1e5 + math.log(m)

    study.optimize(objective, n_trials=40)
    for t in study.trials:
        assert abs(round(t.params["x"] * 1000) - t.params["x"] * 1000) < 1e-6
        assert t.params["n"] % 2 == 0 and 2 <= t.params["n"] <= 1000
        assert 1 <= t.params["m"] <= 5000


def test_enqueued_params_are_imposed_and_never_a_duplicate() -> None:
    study = optuna.create_study(direction="maximize", sampler=ControllerSampler(seed=0))
    study.enqueue_trial({"a": "y"})

    def objective(trial: optuna.Trial) -> float:
        a = trial.suggest_categorical("a", ["x", "y"])
        b = trial.suggest_int("b", 0, 2)
        return float(a == "x") + b

    study.optimize(objective, n_trials=6)
    assert study.trials[0].params["a"] == "y"
    configurations = [(t.params["a"], t.params["b"]) for t in study.trials]
    assert len(set(configurations)) == 6  # the whole grid, once each


def test_parallel_jobs_and_pruned_trials(tmp_path: object) -> None:
    sampler = ControllerSampler(seed=0)
    study = optuna.create_study(direction="maximize", sampler=sampler)

    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_int("x", 0, 9)
        trial.report(x / 10, 0)
        if x < 3:
            raise optuna.TrialPruned()
        return x / 10

    study.optimize(objective, n_trials=30, n_jobs=2)
    assert len(study.trials) == 30
    assert {t.state for t in study.trials} <= {TrialState.COMPLETE, TrialState.PRUNED}
    # Pruned trials are learned with their last reported value.
    pruned = [t.number for t in study.trials if t.state == TrialState.PRUNED]
    assert pruned and {s.number for s in sampler._samples} >= set(pruned[:-2])


def test_a_restarted_sampler_continues_from_the_storage(tmp_path: object) -> None:
    storage = f"sqlite:///{tmp_path}/study.db"
    study = optuna.create_study(study_name="s", storage=storage, direction="maximize",
                                sampler=ControllerSampler(seed=0))
    study.optimize(branching, n_trials=15)
    fresh = ControllerSampler(seed=1)
    resumed = optuna.load_study(study_name="s", storage=storage, sampler=fresh)
    resumed.optimize(branching, n_trials=1)
    assert len(fresh._samples) == 15 and {d.name for d in fresh._decisions} == {
        "op", "kernel", "pool", "width", "lr"}


def test_with_a_space_the_other_params_are_modelled_jointly_or_delegated() -> None:
    space = NasBench201Space()

    def objective(trial: optuna.Trial) -> float:
        arch = space.suggest(trial)
        lr = trial.suggest_float("lr", 1e-3, 1e-1, log=True)
        return sum(op == "nor_conv_3x3" for op in space.edge_ops(arch)) - abs(math.log10(lr) + 2)

    joint = ControllerSampler(space, seed=0)
    study = optuna.create_study(direction="maximize", sampler=joint)
    study.optimize(objective, n_trials=12)
    assert [d.name for d in joint._decisions] == [*(d.name for d in space.decisions), "lr"]
    assert "lr" in study.trials[-1].system_attrs[PROPOSAL_KEY]["values"]

    delegated = ControllerSampler(space, seed=0, joint=False)
    study = optuna.create_study(direction="maximize", sampler=delegated)
    study.optimize(objective, n_trials=12)
    assert [d.name for d in delegated._decisions] == [d.name for d in space.decisions]
    assert "lr" not in study.trials[-1].system_attrs[PROPOSAL_KEY]["values"]


def test_base_sampler_without_a_space_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="with no space the controller models every param"):
        ControllerSampler(base_sampler=optuna.samplers.RandomSampler())
    # With a space and joint=True it would serve nothing: said, not silent.
    with pytest.warns(UserWarning, match="pass joint=False"):
        ControllerSampler(NasBench201Space(), base_sampler=optuna.samplers.RandomSampler())


@pytest.mark.parametrize("preset", ["default", "nas-rl", "enas"])
def test_every_preset_runs_define_by_run(preset: str) -> None:
    study = optuna.create_study(direction="maximize",
                                sampler=ControllerSampler(seed=0, preset=preset))
    study.optimize(branching, n_trials=25)
    assert all(t.state == TrialState.COMPLETE for t in study.trials)


def test_unknown_distributions_are_refused() -> None:
    class Odd(CategoricalDistribution):
        pass

    assert ParamDecision.of("a", "a", Odd([1, 2])).size == 2
    assert ParamDecision.of("b", "b", IntDistribution(0, 3)).grid
    assert not ParamDecision.of("c", "c", FloatDistribution(0, 1)).grid


def test_the_define_by_run_example_runs(tmp_path: Path) -> None:
    example = Path(__file__).resolve().parents[2] / "examples" / "define_by_run.py"
    result = subprocess.run(
        [sys.executable, str(example), "--trials", "3", "--epochs", "1"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "best valid accuracy" in result.stdout


def test_define_by_run_is_the_declared_controller_given_the_same_state() -> None:
    # With the declared sampler's initial policy and random state, a define-by-run sampler
    # whose six decisions are registered up front proposes exactly the same cells: the two
    # differ only in their random streams.
    space = NasBench201Space()
    scores = {"none": 0.0, "skip_connect": 1.0, "avg_pool_3x3": 1.5, "nor_conv_1x1": 2.5,
              "nor_conv_3x3": 3.0}

    def run(sampler: ControllerSampler, plain: bool) -> list[tuple[object, ...]]:
        def objective(trial: optuna.Trial) -> float:
            if plain:
                values = {d.name: trial.suggest_categorical(d.name, d.choices)
                          for d in space.decisions}
            else:
                values = space.suggest(trial).as_dict()
            return sum(i * scores[str(op)] for i, op in enumerate(values.values(), start=1))

        study = optuna.create_study(direction="maximize", sampler=sampler)
        study.optimize(objective, n_trials=30)
        return [tuple(t.params.values()) for t in study.trials]

    declared = ControllerSampler(space, seed=5)
    plain = ControllerSampler(seed=5)
    moved = plain._params.observe(
        {d.name: CategoricalDistribution(d.choices) for d in space.decisions})
    assert moved is not None
    plain._extend(moved)
    plain._policy.load_state_dict(declared._policy.state_dict())
    plain._optimizer = torch.optim.Adam(plain._policy.parameters(), lr=plain.lr)
    plain._generator.set_state(declared._generator.get_state())
    assert run(plain, True) == run(declared, False)
