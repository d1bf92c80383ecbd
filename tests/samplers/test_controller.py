"""ControllerSampler: Optuna's sampler contract, determinism, mixing NAS with ordinary
hyperparameters, enqueued and fixed params, learning, state kept in the study, threads,
resumed studies, duplicates, every registered space, and both directions.

The objectives are synthetic and cheap: on NAS-Bench-201 the reward is the number of the
cell's six edges whose op is ``nor_conv_3x3`` (the best cell scores 6, a random one 1.2 on
average), so learning is measurable in a hundred trials without training a network.
"""

from __future__ import annotations

import math
import statistics
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import optuna
import pytest
import sqlalchemy
import torch
from optuna.samplers import BaseSampler, PartialFixedSampler, RandomSampler, TPESampler
from optuna.testing.pytest_samplers import BasicSamplerTestCase
from optuna.trial import FrozenTrial, TrialState

import optuna_nas
from optuna_nas.errors import ArchitectureError
from optuna_nas.samplers import ControllerSampler
from optuna_nas.samplers._controller import PROPOSAL_KEY
from optuna_nas.spaces import (
    Architecture,
    DartsCells,
    NasBench201Space,
    NasRLMacroSpace,
    SearchSpace,
    nasrl_depth_schedule,
)
from tests.conftest import ToyConditionalSpace

BEST_OP = "nor_conv_3x3"


def conv_count(arch: Architecture) -> float:
    """The synthetic reward: how many edges are ``nor_conv_3x3`` (0 to 6)."""
    return float(sum(value == BEST_OP for _, value in arch.values))


def nb201_objective(space: SearchSpace) -> Callable[[optuna.Trial], float]:
    def objective(trial: optuna.Trial) -> float:
        return conv_count(space.suggest(trial))

    return objective


def arch_params(trial: FrozenTrial, space: SearchSpace) -> dict[str, Any]:
    return {k: v for k, v in trial.params.items() if k.startswith(space.prefix)}


def proposal_params(trial: FrozenTrial, space: SearchSpace) -> dict[str, Any] | None:
    stored = trial.system_attrs.get(PROPOSAL_KEY)
    if stored is None:
        return None
    return {space.param_name(k): v for k, v in stored["values"].items()}


def sample_numbers(sampler: ControllerSampler) -> list[int]:
    return [s.number for s in sampler._samples]


def log_prob_of_best(sampler: ControllerSampler) -> float:
    """The policy's log-probability of the best NAS-Bench-201 cell (all six edges conv 3x3)."""
    best = NasBench201Space().decisions[0].choices.index(BEST_OP)
    with torch.no_grad():
        _, log_prob, _ = sampler._policy.unroll(1, choices=torch.tensor([[best] * 6]))
    return float(log_prob[0])


def policy_state(sampler: ControllerSampler) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in sampler._policy.state_dict().items()}


def sqlite_storage(path: Path) -> optuna.storages.RDBStorage:
    """A SQLite storage without an fsync per commit (what the tests read is unaffected).

    Each call makes a separate storage object with its own engine and trial cache, as a
    separate process would have."""
    rdb = optuna.storages.RDBStorage(f"sqlite:///{path}")

    def no_sync(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA synchronous=OFF")
        cursor.close()

    sqlalchemy.event.listen(rdb.engine, "connect", no_sync)
    rdb.engine.dispose()
    return rdb


@pytest.fixture(autouse=True)
def _quiet_experimental() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        yield


@pytest.fixture(scope="module")
def default_run() -> tuple[optuna.Study, ControllerSampler]:
    """100 trials of the default preset on the synthetic NAS-Bench-201 objective, shared by
    the learning, duplicate and bookkeeping tests (the run takes a few seconds)."""
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        space = NasBench201Space()
        sampler = ControllerSampler(space, seed=0)
        study = optuna.create_study(direction="maximize", sampler=sampler)
        study.optimize(nb201_objective(space), n_trials=100)
    finally:
        optuna.logging.set_verbosity(verbosity)
    return study, sampler


def early_late(study: optuna.Study) -> tuple[float, float]:
    """Mean value of trials 1-20 and of trials 60-100 (1-based)."""
    values = [t.value for t in study.trials]
    assert all(v is not None for v in values)
    return statistics.mean(values[:20]), statistics.mean(values[59:100])  # type: ignore[type-var]


# ---- Optuna's own sampler tests -------------------------------------------------------------
class TestBasicSampler(BasicSamplerTestCase):
    """Optuna's generic checks (float/int/categorical ranges, conditional and dynamic
    params, NaN objectives, PartialFixedSampler, single-value distributions). Their params
    are not architecture params, so they exercise the delegation to the base sampler and
    every hook ControllerSampler forwards; all of them apply."""

    @pytest.fixture
    def sampler(self) -> Callable[[], BaseSampler]:
        return lambda: ControllerSampler(NasBench201Space(), seed=0)


def test_reexported_at_top_level() -> None:
    assert getattr(optuna_nas, "ControllerSampler", None) is ControllerSampler


def test_defaults_and_validation() -> None:
    assert isinstance(ControllerSampler(NasBench201Space())._base, TPESampler)
    with pytest.raises(TypeError, match="SearchSpace"):
        ControllerSampler("nasbench201")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="preset"):
        ControllerSampler(NasBench201Space(), preset="darts")
    with pytest.raises(ValueError, match="pruned_reward"):
        ControllerSampler(NasBench201Space(), pruned_reward="first")


def test_enas_preset_has_enas_settings_and_options_override_it() -> None:
    enas = ControllerSampler(NasBench201Space(), preset="enas")
    assert (enas.hidden_size, enas.num_layers, enas.lr, enas.batch_size) == (64, 1, 3.5e-3, 10)
    assert (enas.tanh_constant, enas.temperature, enas.entropy_weight) == (1.1, 5.0, 1e-4)
    assert (enas.baseline_decay, enas.advantage, enas.n_candidates) == (0.99, "baseline", 1)
    plain = ControllerSampler(NasBench201Space(), preset="enas", tanh_constant=None,
                              temperature=1.0)
    assert plain.tanh_constant is None and plain.temperature == 1.0
    assert ControllerSampler(NasBench201Space()).tanh_constant is None


# ---- determinism ------------------------------------------------------------------------------
def _sequence(seed: int, n_trials: int = 30) -> list[dict[str, Any]]:
    space = NasBench201Space()
    study = optuna.create_study(direction="maximize", sampler=ControllerSampler(space, seed=seed))

    def objective(trial: optuna.Trial) -> float:
        arch = space.suggest(trial)
        lr = trial.suggest_float("lr", 1e-4, 1e-1, log=True)
        return conv_count(arch) - 0.1 * abs(math.log10(lr) + 2)

    study.optimize(objective, n_trials=n_trials)
    return [t.params for t in study.trials]


def test_same_seed_same_architectures() -> None:
    # 30 trials: past the startup trials, so updates and screening take part.
    first, second, other = _sequence(0), _sequence(0), _sequence(1)
    assert first == second
    arch = [{k: v for k, v in p.items() if k.startswith("arch/")} for p in first]
    other_arch = [{k: v for k, v in p.items() if k.startswith("arch/")} for p in other]
    assert arch != other_arch


# ---- mixing NAS with ordinary hyperparameters -----------------------------------------------
class RecordingSampler(RandomSampler):
    """A RandomSampler that records what it is asked."""

    def __init__(self, seed: int) -> None:
        super().__init__(seed=seed)
        self.calls: list[tuple[int, str, Any]] = []

    def sample_independent(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: optuna.distributions.BaseDistribution,
    ) -> Any:
        value = super().sample_independent(study, trial, param_name, param_distribution)
        self.calls.append((trial.number, param_name, value))
        return value


def _mixed_objective(space: SearchSpace) -> Callable[[optuna.Trial], float]:
    def objective(trial: optuna.Trial) -> float:
        arch = space.suggest(trial)
        lr = trial.suggest_float("lr", 1e-4, 1e-1, log=True)
        batch = trial.suggest_categorical("batch", [32, 64])
        return conv_count(arch) - abs(math.log10(lr) + 2) + (batch == 64)

    return objective


def test_mixing_with_ordinary_hyperparameters() -> None:
    space = NasBench201Space()
    base = RecordingSampler(seed=3)
    sampler = ControllerSampler(space, base_sampler=base, seed=0, joint=False)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(_mixed_objective(space), n_trials=15)
    assert all(t.state == TrialState.COMPLETE for t in study.trials)
    # The base sampler served exactly the ordinary params, and never an architecture param.
    expected = [(t.number, name, t.params[name]) for t in study.trials for name in ("lr", "batch")]
    assert base.calls == expected
    # The controller served every architecture param: its stored proposal is the trial's.
    for trial in study.trials:
        assert proposal_params(trial, space) == arch_params(trial, space)
        space.from_params(trial.params)
    # ... and it learned from the mixed trials.
    assert sample_numbers(sampler) == list(range(14))


def test_mixing_with_a_multivariate_tpe_base() -> None:
    # A relative base sampler proposes the intersection search space, architecture params
    # included; the controller keeps them to itself.
    space = NasBench201Space()
    base = TPESampler(seed=0, n_startup_trials=3, multivariate=True)
    sampler = ControllerSampler(space, base_sampler=base, seed=0, joint=False)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(_mixed_objective(space), n_trials=8)
    assert all(t.state == TrialState.COMPLETE for t in study.trials)
    for trial in study.trials:
        assert proposal_params(trial, space) == arch_params(trial, space)
        assert 1e-4 <= trial.params["lr"] <= 1e-1


# ---- enqueued and fixed params ------------------------------------------------------------------
def test_enqueued_trials_are_respected_and_learned() -> None:
    space = NasBench201Space()
    sampler = ControllerSampler(space, seed=0)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    best = space.from_values({d.name: BEST_OP for d in space.decisions})
    study.enqueue_trial(space.to_params(best))
    partial = {"arch/1<-0": "skip_connect", "arch/3<-2": "none"}
    study.enqueue_trial(partial)
    study.enqueue_trial(partial)
    study.optimize(nb201_objective(space), n_trials=5)

    trials = study.trials
    assert space.from_params(trials[0].params) == best
    # A fully enqueued architecture never asks the controller.
    assert PROPOSAL_KEY not in trials[0].system_attrs
    for trial in trials[1:3]:
        assert partial.items() <= trial.params.items()
        # The fixed values are imposed on the controller's proposal, which serves the rest.
        assert proposal_params(trial, space) == arch_params(trial, space)
    # Two proposals conditioned on the same fixed values, by a learning policy: not copies.
    assert arch_params(trials[1], space) != arch_params(trials[2], space)

    assert {0, 1, 2, 3} <= sampler._learned
    samples = {s.number: s for s in sampler._samples}
    assert samples[0].reward == 6.0
    assert samples[0].choices == [space.decisions[0].choices.index(BEST_OP)] * 6
    # Enqueued trials were not drawn from the policy: their PPO reference is their
    # probability under the policy when learned, not the stored proposal's.
    for number in (0, 1):
        reference = samples[number].old_log_prob
        assert reference is not None and math.isfinite(reference) and reference < 0
    assert samples[3].old_log_prob == trials[3].system_attrs[PROPOSAL_KEY]["log_prob"]


def test_partial_fixed_sampler_wrapping_the_controller() -> None:
    space = NasBench201Space()
    controller = ControllerSampler(space, seed=0)
    fixed = {"arch/2<-1": "avg_pool_3x3"}
    study = optuna.create_study(
        direction="maximize", sampler=PartialFixedSampler(fixed, controller)
    )
    study.optimize(nb201_objective(space), n_trials=12)
    assert all(t.params["arch/2<-1"] == "avg_pool_3x3" for t in study.trials)
    assert len({str(space.from_params(t.params)) for t in study.trials}) > 1
    # The controller learned from these trials ...
    assert sample_numbers(controller) == list(range(11))
    # ... and uses a stored log-probability only where the trial ran its proposal: where the
    # fixed value replaced the proposed one, the proposal's probability is not the trial's,
    # and the trial's probability under the policy when learned stands in for it.
    for s in controller._samples:
        trial = study.trials[s.number]
        ran_proposal = proposal_params(trial, space) == arch_params(trial, space)
        stored = trial.system_attrs[PROPOSAL_KEY]["log_prob"]
        assert s.old_log_prob is not None
        assert (s.old_log_prob == stored) == ran_proposal


def test_partial_fixed_params_in_a_conditional_space() -> None:
    # Fixing num_layers can activate decisions the controller's proposal left out.
    space = ToyConditionalSpace()
    controller = ControllerSampler(space, seed=0, n_startup_trials=2)
    study = optuna.create_study(sampler=PartialFixedSampler({"arch/num_layers": 3}, controller))

    def objective(trial: optuna.Trial) -> float:
        return float(len(str(space.suggest(trial))))

    study.optimize(objective, n_trials=10)
    for trial in study.trials:
        assert trial.state == TrialState.COMPLETE
        arch = space.from_params(trial.params)
        assert arch["num_layers"] == 3
    assert sample_numbers(controller) == list(range(9))


# ---- learning -----------------------------------------------------------------------------------
def test_default_preset_learns(default_run: tuple[optuna.Study, ControllerSampler]) -> None:
    study, _ = default_run
    early, late = early_late(study)
    # Trials 1-20 already benefit from learning (it starts at trial 2); random scores 1.2.
    assert late >= early + 0.75, (early, late)
    assert late >= 3.5, late
    assert study.best_value == 6.0


def test_default_preset_beats_random(default_run: tuple[optuna.Study, ControllerSampler]) -> None:
    space = NasBench201Space()
    study = optuna.create_study(direction="maximize", sampler=RandomSampler(seed=0))
    study.optimize(nb201_objective(space), n_trials=100)
    _, random_late = early_late(study)
    _, controller_late = early_late(default_run[0])
    assert controller_late >= random_late + 1.5, (random_late, controller_late)


def test_nasrl_preset_updates_its_policy() -> None:
    # The paper's settings: Adam at 6e-4, one REINFORCE update per m = 8 results. They
    # learn slowly (hundreds of trials on this objective); 200 trials make 24 updates that
    # move the policy towards the best cell.
    space = NasBench201Space()
    sampler = ControllerSampler(space, seed=0, preset="nas-rl")
    assert (sampler.hidden_size, sampler.num_layers, sampler.lr, sampler.batch_size) == (
        35, 2, 6e-4, 8,
    )
    assert all(p.abs().max() <= 0.08 for p in sampler._policy.parameters())
    before, start = log_prob_of_best(sampler), policy_state(sampler)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(nb201_objective(space), n_trials=200)
    after = policy_state(sampler)
    assert any(not torch.equal(start[k], after[k]) for k in start)
    steps = {int(s["step"]) for s in sampler._optimizer.state.values()}
    assert steps == {199 // 8}
    assert sampler._baseline is not None
    assert log_prob_of_best(sampler) > before + 0.05, (before, log_prob_of_best(sampler))


def test_nasrl_preset_learns_with_a_larger_learning_rate() -> None:
    # The same REINFORCE controller, with the paper's settings but lr, learns within 200.
    space = NasBench201Space()
    sampler = ControllerSampler(space, seed=0, preset="nas-rl", lr=0.01)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(nb201_objective(space), n_trials=200)
    values = [t.value for t in study.trials]
    early, late = statistics.mean(values[:20]), statistics.mean(values[100:])  # type: ignore[type-var]
    assert late >= early + 2.0, (early, late)


def test_nasrl_reward_is_the_best_of_the_last_five_cubed() -> None:
    space = NasBench201Space()
    for direction, best in (("maximize", 0.9), ("minimize", 0.2)):
        sampler = ControllerSampler(space, seed=0, preset="nas-rl")
        study = optuna.create_study(direction=direction, sampler=sampler)

        def objective(trial: optuna.Trial) -> float:
            space.suggest(trial)
            for step, value in enumerate((0.95, 0.9, 0.2, 0.3, 0.4, 0.5)):
                trial.report(value, step)
            return 0.5

        study.optimize(objective, n_trials=2)
        [sample] = sampler._samples
        expected = best**3 if direction == "maximize" else -(best**3)
        assert sample.reward == pytest.approx(expected), direction


# ---- pruned and failed trials -------------------------------------------------------------------
@pytest.mark.parametrize("pruned_reward", ["last", "skip"])
def test_pruned_failed_and_learned_once(pruned_reward: str) -> None:
    space = NasBench201Space()
    sampler = ControllerSampler(space, seed=0, pruned_reward=pruned_reward)
    study = optuna.create_study(direction="maximize", sampler=sampler)

    def objective(trial: optuna.Trial) -> float:
        arch = space.suggest(trial)
        if trial.number % 5 == 1:
            raise RuntimeError("this trial fails")
        if trial.number % 5 == 2:
            trial.report(100.0, 0)
            trial.report(trial.number + 0.25, 1)
            raise optuna.TrialPruned()
        return conv_count(arch)

    study.optimize(objective, n_trials=40, catch=(RuntimeError,))
    study.optimize(objective, n_trials=1)  # trial 40: learns from 0-39
    finished = study.trials[:40]
    states = {t.number: t.state for t in finished}
    assert set(states.values()) == {TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL}

    numbers = sample_numbers(sampler)
    assert len(numbers) == len(set(numbers))  # never learned twice
    assert numbers == sorted(numbers)
    rewards = {s.number: s.reward for s in sampler._samples}
    for trial in finished:
        if trial.state == TrialState.FAIL:
            assert trial.number not in rewards
        elif trial.state == TrialState.PRUNED:
            if pruned_reward == "last":
                assert rewards[trial.number] == trial.number + 0.25
            else:
                assert trial.number not in rewards
        else:
            assert rewards[trial.number] == trial.value
    assert {t.number for t in finished if t.state != TrialState.FAIL} == sampler._learned
    # Learning again finds only trial 40, and then nothing new.
    sampler._learn(study)
    assert sample_numbers(sampler) == [*numbers, 40]
    sampler._learn(study)
    assert sample_numbers(sampler) == [*numbers, 40]


def test_many_trials_are_each_learned_once(
    default_run: tuple[optuna.Study, ControllerSampler],
) -> None:
    study, sampler = default_run
    assert sample_numbers(sampler) == list(range(99))
    assert sampler._learned == set(range(99))
    for s in sampler._samples:
        assert s.reward == study.trials[s.number].value


# ---- state lives in the study -------------------------------------------------------------------
def test_state_lives_in_the_study(tmp_path: Path) -> None:
    space = NasBench201Space()
    objective = nb201_objective(space)
    path = tmp_path / "study.db"
    a = ControllerSampler(space, seed=0)
    study_a = optuna.create_study(
        study_name="shared", storage=sqlite_storage(path), direction="maximize", sampler=a
    )
    study_a.optimize(objective, n_trials=20)

    # A second worker, started later: it learns from all of A's trials at its first proposal.
    b = ControllerSampler(space, seed=1)
    study_b = optuna.load_study(study_name="shared", storage=sqlite_storage(path), sampler=b)
    study_b.optimize(objective, n_trials=1)
    assert set(range(20)) <= b._learned
    assert sample_numbers(b) == list(range(20))
    # ... and A learns from B's trial.
    study_a.optimize(objective, n_trials=1)
    assert 20 in a._learned and 20 in sample_numbers(a)
    study_b.optimize(objective, n_trials=2)
    study_a.optimize(objective, n_trials=1)

    # A restarted worker rebuilds the controller from the history: one sample per finished
    # trial, the same as A's. Its policy learns them in one update (results that arrive
    # together make one update, so that W workers cost one's), so it is not A's bit for bit.
    restarted = ControllerSampler(space, seed=0)
    study_c = optuna.load_study(
        study_name="shared", storage=sqlite_storage(path), sampler=restarted
    )
    n_finished = len(study_c.get_trials(states=(TrialState.COMPLETE,)))
    assert n_finished == 25
    restarted._learn(study_c)
    a._learn(study_a)
    assert sample_numbers(restarted) == list(range(n_finished)) == sample_numbers(a)
    assert restarted._samples == a._samples
    assert restarted._updates == 1 and a._updates > 1
    fresh = policy_state(ControllerSampler(space, seed=0))
    state_c = policy_state(restarted)
    assert any(not torch.equal(state_c[key], fresh[key]) for key in fresh)
    # ... and goes on proposing from it.
    study_c.optimize(objective, n_trials=1)
    assert study_c.trials[-1].system_attrs[PROPOSAL_KEY]["values"]


def test_threads_share_one_sampler() -> None:
    space = NasBench201Space()
    sampler = ControllerSampler(space, seed=0)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(nb201_objective(space), n_trials=40, n_jobs=2)
    assert len(study.trials) == 40
    assert all(t.state == TrialState.COMPLETE for t in study.trials)
    for trial in study.trials:
        space.from_params(trial.params)
        assert proposal_params(trial, space) == arch_params(trial, space)
    numbers = sample_numbers(sampler)
    assert len(numbers) == len(set(numbers)) >= 35


# ---- a resumed study with another space ---------------------------------------------------------
@pytest.mark.parametrize(
    "old_space, new_space",
    [(NasBench201Space, DartsCells), (DartsCells, lambda: DartsCells(ops="enas"))],
    ids=["other-decisions", "other-choices"],
)
def test_resuming_with_a_different_space(
    old_space: Callable[[], SearchSpace], new_space: Callable[[], SearchSpace]
) -> None:
    old = old_space()
    study = optuna.create_study(sampler=RandomSampler(seed=0))
    study.optimize(lambda t: float(len(str(old.suggest(t)))), n_trials=2)

    new = new_space()
    study.sampler = ControllerSampler(new, seed=0)

    def objective(trial: optuna.Trial) -> float:
        return float(len(str(new.suggest(trial))))

    with pytest.raises(ArchitectureError, match="different search space"):
        study.optimize(objective, n_trials=1)
    # The error does not wear off: later trials fail the same way rather than mixing spaces.
    study.optimize(objective, n_trials=3, catch=(ArchitectureError,))
    assert [t.state for t in study.trials[2:]] == [TrialState.FAIL] * 4


# ---- duplicates ---------------------------------------------------------------------------------
def test_no_duplicate_architectures(default_run: tuple[optuna.Study, ControllerSampler]) -> None:
    study, sampler = default_run
    assert sampler.avoid_duplicates
    archs = [str(NasBench201Space().from_params(t.params)) for t in study.trials]
    assert len(set(archs[:60])) == 60
    assert len(set(archs)) == len(archs)


# ---- every space --------------------------------------------------------------------------------
def test_every_space(space: SearchSpace) -> None:
    # n_startup_trials=2: the screening model runs too, on conditional rows as well.
    sampler = ControllerSampler(space, seed=0, n_startup_trials=2)
    study = optuna.create_study(sampler=sampler)

    def objective(trial: optuna.Trial) -> float:
        return float(len(str(space.suggest(trial))))

    study.optimize(objective, n_trials=5)
    for trial in study.trials:
        assert trial.state == TrialState.COMPLETE
        space.from_params(trial.params)
        assert proposal_params(trial, space) == arch_params(trial, space)
    assert sample_numbers(sampler) == list(range(4))


def test_nasrl_macro_anchor_decisions() -> None:
    space = NasRLMacroSpace(layers=4)
    assert any(d.anchor is not None for d in space.decisions)
    sampler = ControllerSampler(space, seed=0)
    study = optuna.create_study(sampler=sampler)

    def objective(trial: optuna.Trial) -> float:
        specs = space.layer_specs(space.suggest(trial))
        return float(sum(len(s.inputs) for s in specs))  # rewards skip connections

    study.optimize(objective, n_trials=12)
    skips = [k for k in study.trials[0].params if "/skip" in k]
    assert len(skips) == 6  # 0 + 1 + 2 + 3 earlier layers
    reads = {t.params[k] for t in study.trials for k in skips}
    assert reads == {False, True}


def test_depth_schedule_forces_num_layers(tmp_path: Path) -> None:
    space = NasRLMacroSpace(min_layers=2, max_layers=4)
    schedule = nasrl_depth_schedule(start=2, step=2, every=3, stop=4)
    path = tmp_path / "study.db"
    study = optuna.create_study(
        study_name="macro",
        storage=sqlite_storage(path),
        sampler=ControllerSampler(space, seed=0, schedule=schedule),
    )

    def objective(trial: optuna.Trial) -> float:
        return float(len(space.layer_specs(space.suggest(trial))))

    study.optimize(objective, n_trials=5)
    assert [t.params["arch/num_layers"] for t in study.trials] == [2, 2, 2, 4, 4]
    # The schedule counts the study's architectures: a restarted worker keeps the depth.
    resumed = optuna.load_study(
        study_name="macro",
        storage=sqlite_storage(path),
        sampler=ControllerSampler(space, seed=1, schedule=schedule),
    )
    resumed.optimize(objective, n_trials=2)
    assert [t.params["arch/num_layers"] for t in resumed.trials[5:]] == [4, 4]
    for trial in resumed.trials:
        assert len(space.layer_specs(space.from_params(trial.params))) == trial.value


# ---- direction ----------------------------------------------------------------------------------
def test_minimize() -> None:
    space = NasBench201Space()
    sampler = ControllerSampler(space, seed=0)
    study = optuna.create_study(direction="minimize", sampler=sampler)
    study.optimize(lambda t: 6.0 - conv_count(space.suggest(t)), n_trials=60)
    for s in sampler._samples:
        assert s.reward == -study.trials[s.number].value  # type: ignore[operator]
    values = [t.value for t in study.trials]
    early, late = statistics.mean(values[:20]), statistics.mean(values[40:])  # type: ignore[type-var]
    assert late <= early - 1.0, (early, late)


# ---- long studies: cost per trial ---------------------------------------------------------------
def test_surrogate_kernel_counts_shared_decisions() -> None:
    """The one-hot kernel equals ``(1 + m / D)^3`` with ``m`` counted decision by decision,
    an inactive decision (-1) matching only another inactive one."""
    space = ToyConditionalSpace()
    sampler = ControllerSampler(space, seed=0)
    study = optuna.create_study(sampler=sampler)
    study.optimize(lambda t: float(len(space.suggest(t).string)), n_trials=15)
    rows = [s.choices for s in sampler._samples]
    assert any(-1 in row for row in rows)
    history = torch.tensor(rows)
    width = len(space.decisions)
    encoded = sampler._one_hot(history)
    shared = (encoded @ encoded.T).long()
    by_decision = (history[:, None, :] == history[None, :, :]).sum(dim=2)
    assert torch.equal(shared, by_decision)
    # The fitted model reproduces the ranks it was fitted to, in their order.
    scores = sampler._surrogate_scores(rows)
    rewards = [s.reward for s in sampler._samples]
    best, worst = rewards.index(max(rewards)), rewards.index(min(rewards))
    assert scores[best] > scores[worst]
    assert width == history.shape[1]


def test_surrogate_exploration_adds_the_posterior_std() -> None:
    """With ``exploration`` the screening score is the kernel model's mean plus that weight
    times its posterior std: near zero at a learned architecture, larger far from them."""
    space = NasBench201Space()
    greedy = ControllerSampler(space, seed=0, exploration=0.0)
    study = optuna.create_study(direction="maximize", sampler=greedy)
    study.optimize(nb201_objective(space), n_trials=20)
    learned = [s.choices for s in greedy._samples]
    held = {tuple(row) for row in learned}
    size = len(space.decisions[0].choices)
    unseen = [
        row for row in ([i] * len(space.decisions) for i in range(size))
        if tuple(row) not in held
    ]
    assert unseen
    rows = learned[:3] + unseen
    mean = torch.tensor(greedy._surrogate_scores(rows))
    greedy.exploration = 2.0
    bonus = (torch.tensor(greedy._surrogate_scores(rows)) - mean) / 2.0
    assert bool((bonus >= 0).all())
    # A learned architecture is explained up to the ridge noise; an unseen one is not.
    assert float(bonus[:3].max()) < 0.5 * float(bonus[3:].min()), bonus
    with pytest.raises(ValueError, match="exploration"):
        ControllerSampler(space, exploration=-1.0)


def test_long_study_draws_one_pool_per_policy_update(monkeypatch: pytest.MonkeyPatch) -> None:
    """Past the long-study threshold, proposals come from a pool drawn once per policy
    update: far fewer policy draws than trials, and still no duplicate architectures."""
    monkeypatch.setattr("optuna_nas.samplers._controller._LONG_STUDY", 30)
    space = NasBench201Space()
    sampler = ControllerSampler(space, seed=0)
    draws: list[tuple[int, int]] = []  # (results, policy updates) at each draw
    draw = sampler._candidates

    def counted(n: int, forced: Any, *, local: bool) -> Any:
        draws.append((len(sampler._samples), sampler._updates))
        return draw(n, forced, local=local)

    monkeypatch.setattr(sampler, "_candidates", counted)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(nb201_objective(space), n_trials=130)
    late = [updates for results, updates in draws if results >= 30]
    # At least one draw per trial without the pool; with it, about one per update.
    assert len(late) <= 60, len(late)
    assert len(late) <= 1.3 * (late[-1] - late[0] + 1), late
    archs = [tuple(arch_params(t, space).items()) for t in study.trials]
    assert len(set(archs)) == len(archs)
    values = [t.value for t in study.trials]
    assert statistics.mean(values[30:]) > statistics.mean(values[:30])  # type: ignore[type-var]


def test_learning_skips_nothing_behind_a_running_trial() -> None:
    """The scan for new results starts at the first unfinished trial: a trial that finishes
    after later ones is learned when it finishes, and every trial is learned once."""
    space = NasBench201Space()
    sampler = ControllerSampler(space, seed=0)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    slow = study.ask()
    conv_count(space.suggest(slow))
    for _ in range(3):
        trial = study.ask()
        study.tell(trial, conv_count(space.suggest(trial)))
    sampler._learn(study)
    assert sample_numbers(sampler) == [1, 2, 3]
    assert sampler._scan_from == 0
    study.tell(slow, 1.0)
    failed = study.ask()
    space.suggest(failed)
    study.tell(failed, state=TrialState.FAIL)
    sampler._learn(study)
    assert sample_numbers(sampler) == [1, 2, 3, 0]
    assert sampler._scan_from == 5
    sampler._learn(study)
    assert sample_numbers(sampler) == [1, 2, 3, 0]
