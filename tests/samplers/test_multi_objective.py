"""ControllerSampler in multi-objective and constrained studies, and MnasNet's reward.

The objectives are cheap and synthetic, on NAS-Bench-201's cell: an accuracy-like score
(a weighted sum of op scores over the six edges, convolutions best) against costs that
grow with the same convolutions (a parameter count, and a latency where pooling is dear
too), so that the objectives conflict and the Pareto front is wide.
"""

from __future__ import annotations

import math
import random
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import optuna
import pytest
from optuna._hypervolume import compute_hypervolume
from optuna.trial import FrozenTrial, TrialState

from optuna_nas.errors import ArchitectureError
from optuna_nas.samplers import ControllerSampler
from optuna_nas.samplers._pareto import (
    chebyshev_scores,
    feasible_first,
    nondominated_ranks,
    rank_scores,
)
from optuna_nas.spaces import NasBench201Space

SCORE = {"none": 0.0, "skip_connect": 1.0, "avg_pool_3x3": 1.5, "nor_conv_1x1": 2.5,
         "nor_conv_3x3": 3.0}
PARAMS = {"none": 0.0, "skip_connect": 0.0, "avg_pool_3x3": 0.0, "nor_conv_1x1": 1.0,
          "nor_conv_3x3": 3.0}
LATENCY = {"none": 0.0, "skip_connect": 0.1, "avg_pool_3x3": 1.0, "nor_conv_1x1": 0.5,
           "nor_conv_3x3": 1.2}
WEIGHTS = {"1<-0": 1.0, "2<-0": 1.1, "2<-1": 1.2, "3<-0": 1.3, "3<-1": 1.4, "3<-2": 1.5}
SPACE = NasBench201Space()


def _total(table: Mapping[str, float], params: Mapping[str, Any]) -> float:
    return sum(
        WEIGHTS[name.removeprefix(SPACE.prefix)] * table[str(op)] for name, op in params.items()
    )


def _objective(n_objectives: int) -> Any:
    def objective(trial: optuna.Trial) -> tuple[float, ...]:
        params = SPACE.to_params(SPACE.suggest(trial))
        values = (_total(SCORE, params), _total(PARAMS, params), _total(LATENCY, params))
        return values[:n_objectives]

    return objective


def _hypervolume(trials: Sequence[FrozenTrial], n_objectives: int) -> float:
    # Minimisation form: -score, cost(s); reference point just past the worst value.
    points = np.array([[-t.values[0], *t.values[1:]] for t in trials])
    reference = np.array([0.0, 22.5, 9.0][:n_objectives]) + 1e-9
    return float(compute_hypervolume(points, reference))


@pytest.mark.parametrize("n_objectives", [2, 3])
def test_fronts_improve_over_the_first_trials(n_objectives: int) -> None:
    directions = ["maximize"] + ["minimize"] * (n_objectives - 1)
    study = optuna.create_study(
        directions=directions, sampler=ControllerSampler(SPACE, seed=0)
    )
    study.optimize(_objective(n_objectives), n_trials=100)
    trials = study.trials
    assert all(t.state == TrialState.COMPLETE for t in trials)
    assert all(len(t.values) == n_objectives for t in trials)
    archs = [SPACE.from_params(t.params) for t in trials]  # valid, or it raises
    assert len({str(a) for a in archs}) == len(archs)  # never a repeat
    first = _hypervolume(trials[:30], n_objectives)
    last = _hypervolume(trials[-30:], n_objectives)
    assert last > first * 1.05, (first, last)

    # And better than as many random trials, over the whole run.
    random_study = optuna.create_study(
        directions=directions, sampler=optuna.samplers.RandomSampler(seed=0)
    )
    random_study.optimize(_objective(n_objectives), n_trials=100)
    assert _hypervolume(trials, n_objectives) > _hypervolume(random_study.trials, n_objectives)


@pytest.mark.parametrize("pareto_reward", ["chebyshev", "rank"])
def test_both_pareto_rewards_run_and_are_deterministic(pareto_reward: str) -> None:
    def run() -> list[dict[str, Any]]:
        sampler = ControllerSampler(SPACE, seed=3, pareto_reward=pareto_reward)
        study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
        study.optimize(_objective(2), n_trials=25)
        return [t.params for t in study.trials]

    assert run() == run()


def test_pareto_scores_order_the_front_first() -> None:
    values = np.array([[3.0, -1.0], [1.0, -0.5], [2.0, -2.0], [0.5, -3.0], [2.5, -1.0]])
    ranks = nondominated_ranks(values)
    # [3, -1] and [1, -0.5] are the front; [2.5, -1] is dominated by [3, -1] alone,
    # [2, -2] by [2.5, -1] too, [0.5, -3] by [2, -2] too.
    assert ranks.tolist() == [0, 0, 2, 3, 1]
    scores = rank_scores(values)
    assert min(scores[:2]) > scores[4] > scores[2] > scores[3]
    cheb = chebyshev_scores(values, np.array([1.0, 0.0]))
    assert int(np.argmax(cheb)) == 0  # all weight on the first objective
    # Infeasible rows rank below every feasible one, by violation.
    ordered = feasible_first(np.array([5.0, 1.0, 9.0, 2.0]), [0.0, 0.0, 3.0, 0.5])
    assert ordered[0] > ordered[1] > ordered[3] > ordered[2]


def _limit(params: Mapping[str, Any]) -> list[float]:
    return [_total(PARAMS, params) - 7.0]


def test_arch_constraints_are_never_broken_over_500_proposals() -> None:
    # The limit rejects about half the space: random cells break it often.
    rng = random.Random(0)
    broken = sum(_limit(SPACE.to_params(SPACE.sample(rng)))[0] > 0 for _ in range(1000))
    assert 300 < broken < 800
    sampler = ControllerSampler(SPACE, seed=0, arch_constraints=_limit)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(lambda t: _total(SCORE, SPACE.to_params(SPACE.suggest(t))), n_trials=500)
    assert len(study.trials) == 500
    assert all(_limit(t.params)[0] <= 0 for t in study.trials)
    # The constraint values are stored as Optuna's samplers store them.
    assert all(t.constraints == {"0": _limit(t.params)[0]} for t in study.trials)
    # And the search still climbs the feasible part of the space.
    values = [t.value for t in study.trials if t.value is not None]
    # (Random feasible cells score 10.4 on average; the best of 2,000 of them 17.0.)
    assert max(values) > 17.0
    assert sum(values[30:130]) / 100 > sum(values[:30]) / 30 + 1.0


def test_impossible_arch_constraints_get_a_clear_error() -> None:
    sampler = ControllerSampler(SPACE, seed=0, arch_constraints=lambda params: [1.0])
    study = optuna.create_study(direction="maximize", sampler=sampler)
    with pytest.raises(ArchitectureError, match="arch_constraints rejected every candidate"):
        study.optimize(lambda t: _total(SCORE, SPACE.to_params(SPACE.suggest(t))), n_trials=1)


def test_the_impossible_message_shows_learned_params_as_values() -> None:
    def objective(trial: optuna.Trial) -> float:
        return trial.suggest_float("lr", 1e-4, 1.0, log=True) + trial.suggest_int("n", 1, 4)

    study = optuna.create_study(direction="maximize")
    study.optimize(objective, n_trials=3)
    study.sampler = ControllerSampler(seed=0, arch_constraints=lambda params: [1.0])
    study.enqueue_trial({"n": 3})  # the controller proposes lr, with n fixed
    with pytest.raises(ArchitectureError) as raised:
        study.optimize(objective, n_trials=1)
    assert "with the fixed params n=3:" in str(raised.value), str(raised.value)


@pytest.mark.parametrize(
    "output, match",
    [("0", "returned a str"), ([math.nan], "not finite"), (["a"], "not a number"),
     (3.0, "returned a float"), ([], "no values")],
)
def test_bad_constraint_output_names_the_callable(output: Any, match: str) -> None:
    sampler = ControllerSampler(SPACE, seed=0, arch_constraints=lambda params: output)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    with pytest.raises(ValueError, match=match):
        study.optimize(lambda t: _total(SCORE, SPACE.to_params(SPACE.suggest(t))), n_trials=1)


def test_constraints_func_is_stored_and_infeasible_trials_rank_last() -> None:
    def too_big(trial: FrozenTrial) -> list[float]:
        return _limit(trial.params)

    sampler = ControllerSampler(SPACE, seed=1, constraints_func=too_big)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(lambda t: _total(SCORE, SPACE.to_params(SPACE.suggest(t))), n_trials=80)
    for t in study.trials:
        assert t.system_attrs["constraints"] == _limit(t.params)
        assert t.constraints == {"0": _limit(t.params)[0]}
    # The best-scoring cells are infeasible: learning them as good would drift there.
    infeasible = [_limit(t.params)[0] > 0 for t in study.trials]
    assert sum(infeasible[-30:]) < sum(infeasible[:30])
    # Every feasible result's reward is above every infeasible one's.
    rewards = sampler._rewards(sampler._samples)
    feasible = [r for r, s in zip(rewards, sampler._samples, strict=True) if s.violation == 0]
    broken = [r for r, s in zip(rewards, sampler._samples, strict=True) if s.violation > 0]
    assert feasible and broken and min(feasible) > max(broken)

    # A study can switch samplers: NSGA-II reads the same stored constraints.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        nsga = optuna.samplers.NSGAIISampler(seed=0, constraints_func=too_big)
    study.sampler = nsga
    study.optimize(lambda t: _total(SCORE, SPACE.to_params(SPACE.suggest(t))), n_trials=5)
    assert len(study.trials) == 85


def test_trial_set_constraint_is_read_too() -> None:
    sampler = ControllerSampler(SPACE, seed=0)
    study = optuna.create_study(direction="maximize", sampler=sampler)

    def objective(trial: optuna.Trial) -> float:
        params = SPACE.to_params(SPACE.suggest(trial))
        trial.set_constraint("params", _limit(params)[0])
        return _total(SCORE, params)

    study.optimize(objective, n_trials=30)
    sampler._learn(study)
    assert [s.violation > 0 for s in sampler._samples] == [
        _limit(t.params)[0] > 0 for t in study.trials
    ]


def test_mnasnet_reward_scales_the_accuracy_by_the_cost() -> None:
    sampler = ControllerSampler(
        SPACE, seed=0, reward="mnasnet", cost_target=5.0, cost_exponent=(-0.07, -1.0)
    )
    study = optuna.create_study(direction="maximize", sampler=sampler)

    def objective(trial: optuna.Trial) -> float:
        params = SPACE.to_params(SPACE.suggest(trial))
        trial.set_user_attr("latency_s", 1.0 + _total(PARAMS, params))
        return _total(SCORE, params)

    study.optimize(objective, n_trials=20)
    sampler._learn(study)
    for sample in sampler._samples:
        trial = study.trials[sample.number]
        ratio = trial.user_attrs["latency_s"] / 5.0
        expected = trial.value * ratio ** (-0.07 if ratio <= 1 else -1.0)
        assert sample.reward == pytest.approx(expected)


def test_mnasnet_reward_errors_name_the_fix() -> None:
    with pytest.raises(ValueError, match="positive cost_target"):
        ControllerSampler(SPACE, reward="mnasnet")
    with pytest.raises(ValueError, match="cost_exponent"):
        ControllerSampler(SPACE, reward="mnasnet", cost_target=1.0, cost_exponent=(1.0,))  # type: ignore[arg-type]
    sampler = ControllerSampler(SPACE, seed=0, reward="mnasnet", cost_target=1.0)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    with pytest.raises(ValueError, match="costs=\\('latency',\\)"):
        study.optimize(lambda t: _total(SCORE, SPACE.to_params(SPACE.suggest(t))), n_trials=3)
    sampler = ControllerSampler(SPACE, seed=0, reward="mnasnet", cost_target=1.0)
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    with pytest.raises(ValueError, match="single-objective"):
        study.optimize(_objective(2), n_trials=3)


def test_multi_objective_define_by_run_and_nas_rl_preset() -> None:
    for sampler in (ControllerSampler(seed=0), ControllerSampler(SPACE, seed=0, preset="nas-rl")):
        study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
        study.optimize(_objective(2), n_trials=30)
        assert all(t.state == TrialState.COMPLETE for t in study.trials)
