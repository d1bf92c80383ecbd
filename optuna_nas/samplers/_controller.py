from __future__ import annotations

import enum
import math
import threading
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna
import torch
from optuna.distributions import BaseDistribution, CategoricalDistribution
from optuna.samplers import BaseSampler
from optuna.study import Study, StudyDirection
from optuna.trial import FrozenTrial, TrialState

from optuna_nas._constraints import CONSTRAINTS_KEY, constraint_values
from optuna_nas.errors import ArchitectureError, ZeroCostError
from optuna_nas.samplers._params import LearnedParams, ParamDecision, learn_conditions
from optuna_nas.samplers._pareto import (
    chebyshev_scores,
    feasible_first,
    random_weights,
    rank_scores,
)
from optuna_nas.samplers._policy import ControllerPolicy
from optuna_nas.spaces._base import Architecture, Choice, Decision, SearchSpace

PROPOSAL_KEY = "optuna_nas:controller:proposal"

# With arch_constraints, rounds of candidates drawn before giving up on finding a feasible one.
_FEASIBLE_ROUNDS = 16
_FEASIBLE_CACHE = 100_000

ArchConstraints = Callable[[Mapping[str, Any]], Sequence[float]]

# Past this many results the policy and the surrogate have concentrated: proposals come
# from a pool drawn once per policy update, and updates come less often.
_LONG_STUDY = 200

Schedule = Callable[[int], Mapping[str, Choice]]

#: ``screen(arch) -> score``, higher is better: a zero-cost proxy, say.
Screen = Callable[[Architecture], float]


class _Preset(enum.Enum):
    # "Take the preset's value" for options where None means something.
    VALUE = 0


_PRESET = _Preset.VALUE


def _standing(
    history: Sequence[float], rows: Sequence[float]
) -> tuple[torch.Tensor, torch.Tensor]:
    # Screen scores as their standing among the history's (the fraction below, ties
    # halved), standardised over the history: only the screen's order matters.
    ranked = np.sort(np.asarray(history, dtype=np.float64))

    def cdf(values: Sequence[float]) -> np.ndarray:
        v = np.asarray(values, dtype=np.float64)
        low = np.searchsorted(ranked, v, side="left")
        high = np.searchsorted(ranked, v, side="right")
        return (low + high) / (2.0 * max(1, len(ranked)))

    h, r = cdf(history), cdf(rows)
    mean, std = h.mean(), h.std() + 1e-12
    return torch.from_numpy((h - mean) / std), torch.from_numpy((r - mean) / std)


def _fresh_seed() -> int:
    return int(np.random.default_rng().integers(2**63))


@dataclass(frozen=True)
class _Sample:
    number: int
    choices: list[int]  # choice index per decision, -1 where inactive
    reward: float  # a single-objective study's reward (0 with several objectives)
    old_log_prob: float | None
    values: tuple[float, ...] = ()  # the objectives, signed so that larger is better
    violation: float = 0.0  # the sum of the positive constraint values (0 = feasible)


class ControllerSampler(BaseSampler):
    """The NAS-RL controller as an Optuna sampler: an LSTM trained by policy gradient.

    At a trial's first param, the controller samples the whole configuration jointly,
    unrolling over its decisions (conditional ones included, fixed params from
    ``study.enqueue_trial`` imposed), and then serves each param as the objective asks for
    it. Its decisions are:

    * **With no space (define-by-run):** the study's own params, learned from the trials.
      Each param name with its distribution is a decision, in the order the objective
      suggests them. Categorical params have their choices; int and float params are
      ordinal: their grid when it has at most 32 values, else 16 equal bins of the range
      (log-scaled for ``log=True``) with the value drawn inside the chosen bin, always in
      the bounds and on the ``step`` grid. A param that only some trials suggest is
      conditional: the controller learns from the trials which earlier choice decides it
      (``if op == "conv": trial.suggest_int("kernel", ...)``) and proposes it only there.
      A param seen for the first time extends the policy, which keeps what it learned; a
      param suggested with a changed distribution is a new decision (named ``name#1``).
      A param first seen in a running trial is drawn uniformly.
    * **With a space:** the space's decisions, served as ``space.suggest(trial)`` asks,
      and, with ``joint=True`` (the default), the trial's other params learned as above,
      so that architecture and hyperparameters are one policy. ``joint=False`` hands the
      other params to ``base_sampler`` instead.

    The controller learns from the finished trials in the study's storage, incrementally:
    before each proposal it reads the trials it has not learned from yet. Any number of
    workers on one RDB study therefore share one learning controller, asynchronously, and
    a restarted worker continues from the history. COMPLETE trials give their value as
    reward, PRUNED trials their last reported value (``pruned_reward="last"``, or
    ``"skip"``), FAILED trials nothing.

    **Several objectives** (``directions`` of any length): the reward of each result is
    a scalar of the study's Pareto structure, recomputed over the history at every update
    and every screening, since a result's place on the front changes as results arrive.
    ``pareto_reward="chebyshev"`` (the default) is ParEGO's: each update and each
    proposal draws a weight vector uniformly on the simplex and scores every result by
    the augmented Chebyshev distance of its min-max normalised objectives, so that
    successive proposals aim at different parts of the front. ``"rank"`` is NSGA-II's
    order: non-dominated rank, then crowding distance.

    **Constraints.** ``constraints_func(trial)`` is evaluated after each trial and stored
    as Optuna's samplers store it (the trial system attr ``"constraints"``), so that a
    study can switch between this sampler, NSGA-II and TPE; values set with
    ``trial.set_constraint`` are read too. Feasible results (all values <= 0) rank above
    infeasible ones, and infeasible ones by their total violation, so an infeasible
    result is never learned as good. ``arch_constraints(params)`` states constraints known
    before training (parameters, FLOPs, a latency table): the controller evaluates it on
    its candidates, best first, and proposes the first feasible one, so it never proposes
    an infeasible architecture. That is rejection sampling: proposals are draws of the
    policy restricted to the feasible set. The update uses the policy's log-probability
    ``log p(x)`` in place of the restricted ``log p(x) - log P(feasible)``; the two
    differ by a term shared by every sample of an update, which the rank advantages,
    summing to zero, cancel.

    **MnasNet's reward** (``reward="mnasnet"``, single objective): accuracy times
    ``(cost / cost_target) ** w``, the cost read from the trial's user attr ``cost_attr``
    (``train(..., costs=("latency",))`` records ``latency_s``); ``w`` is
    ``cost_exponent``, or ``(alpha, beta)`` for a cost below and above the target (Tan et
    al. 2019: -0.07 both for a soft target; ``(0, -1)`` for a hard one).

    **Zero-cost screening** (``screen``, a callable ``screen(arch) -> float``, higher is
    better, e.g. :class:`optuna_nas.zero_cost.ProxyScreen`): scores candidates before one
    is trained, as Abdelfattah et al.'s zero-cost warm-up and move proposal do. While the
    study has fewer than ``n_startup_trials`` results, each proposal is the best by the
    screen of ``screen_candidates`` fresh policy draws, instead of the first one; after
    that, the first ``screen_top`` candidates (the surrogate's best; in a preset without
    a surrogate, ``n_candidates=1``, the policy's draws) are screened and re-ranked by
    the surrogate refitted with the screen as its prior mean: a linear term in the
    screen's standing among the results, whose slope the results fit (and which
    vanishes where the screen does not predict them). Scores are cached per
    architecture, and the number of new screen calls of each proposal is stored with it
    (the trial system attr ``optuna_nas:controller:proposal``, key ``"screened"``), so a
    runner can charge what screening costs. A candidate the screen cannot score (a
    :class:`~optuna_nas.errors.ZeroCostError`, or NaN) ranks last.

    Three configurations:

    * ``preset="nas-rl"`` is the paper: a 2-layer LSTM of 35 units, Adam at 6e-4, weights
      uniform in [-0.08, 0.08], reward = the best of the last 5 reported values, cubed,
      REINFORCE with an exponential moving-average baseline, one update per ``m = 8``
      results.
    * ``preset="default"`` keeps the autoregressive policy and policy gradient, and adds
      what makes it sample-efficient on small budgets: rank-based advantages over the
      history, several clipped (PPO) updates reusing past samples with importance
      weights, proposals screened by a kernel model of past results (the best of
      ``n_candidates`` policy samples by an upper confidence bound, half of them redrawn
      near the best architectures so far), and never proposing an architecture the study
      already holds.
    * ``preset="enas"`` is ENAS' controller for weight-sharing search (with
      :class:`~optuna_nas.supernet.WeightSharingObjective`): a 1-layer LSTM of 64 units,
      Adam at 3.5e-3, logits ``1.1 * tanh(logits / 5)``, entropy bonus 1e-4, REINFORCE
      with a moving-average baseline of decay 0.99, one update per 10 results.

    Paper: Zoph & Le, "Neural Architecture Search with Reinforcement Learning", ICLR 2017,
    https://arxiv.org/abs/1611.01578. ENAS' options (``tanh_constant``, ``temperature``,
    ``entropy_weight``): Pham et al. 2018, https://arxiv.org/abs/1802.03268. ParEGO:
    Knowles 2006, https://doi.org/10.1109/TEVC.2005.851274. MnasNet: Tan et al. 2019,
    https://arxiv.org/abs/1807.11626. Zero-cost screening: Abdelfattah et al., ICLR 2021,
    https://arxiv.org/abs/2101.08134.

    Args:
        space: The search space whose params the controller samples, or ``None`` to learn
            the params from the trials (define-by-run).
        joint: With a space, model the trial's other params too (``True``) or hand them
            to ``base_sampler``.
        base_sampler: With a space and ``joint=False``, the sampler of every param outside
            it; Optuna's TPESampler by default.
        seed: Seed of the controller's initialisation and sampling.
        preset: ``"default"``, ``"nas-rl"`` or ``"enas"``; the options below override it.
        hidden_size: LSTM units.
        num_layers: LSTM layers.
        lr: Adam learning rate.
        init_range: Weights start uniform in ``[-init_range, init_range]``.
        batch_size: Results per update (the paper's ``m``); ``update_every`` is an alias
            for the distributed reading "apply an update once G new results arrived".
        baseline_decay: Decay of the moving-average baseline (``advantage="baseline"``).
        reward: ``"value"``, ``"best_last5_cubed"`` (the paper's) or ``"mnasnet"``.
            A multi-objective study's reward comes from ``pareto_reward`` instead.
        advantage: ``"rank"`` (default) or ``"baseline"`` (REINFORCE).
        ppo_epochs: Gradient steps per update over the reused samples (1 = plain).
        clip: PPO's clipping of the importance ratio.
        history: How many of the most recent results each update reuses.
        n_candidates: Policy samples screened per proposal (1 = no screening).
        n_startup_trials: Results needed before screening starts.
        local_fraction: Share of the screened candidates drawn near the best
            architectures so far: the controller redraws one or two of their decisions.
        local_parents: How many of the best architectures those candidates start from.
        surrogate_target: ``"rank"`` or ``"value"``: what the screening model is fitted
            to.
        exploration: The screening's upper-confidence weight: candidates are ranked by
            the model's prediction plus ``exploration`` times its posterior standard
            deviation (0 = the prediction alone).
        avoid_duplicates: Never propose a configuration the study already holds (over
            every modelled param; a binned float counts by its bin).
        tanh_constant: ENAS' logit squashing ``c * tanh(logits)``, or ``None``.
        temperature: Logits are divided by it.
        entropy_weight: Entropy bonus of the policy loss.
        pruned_reward: ``"last"`` (last reported value) or ``"skip"``.
        schedule: Maps the number of architectures sampled so far in the study (the
            trial's number, counted across all workers and restarts) to decision values
            that are imposed (e.g. NAS-RL's depth schedule).
        pareto_reward: A multi-objective study's reward: ``"chebyshev"`` (ParEGO's
            random scalarisations) or ``"rank"`` (non-dominated rank and crowding).
        constraints_func: Optuna's convention: ``constraints_func(frozen_trial)`` returns
            a sequence of floats, feasible where all are <= 0; evaluated after each
            COMPLETE or PRUNED trial and stored on it.
        arch_constraints: ``arch_constraints(params)`` returns a sequence of floats,
            feasible where all are <= 0, for a candidate's params as the trial would
            hold them (the space's params with their prefix; in define-by-run, the
            params learned so far). Candidates that break it are never proposed; its
            values are stored on the trial as its constraints. In define-by-run, a
            param the controller has not seen yet (all of them in the first trial) is
            drawn uniformly and cannot be checked before the trial: enqueue a feasible
            first trial with ``study.enqueue_trial``.
        cost_target: ``reward="mnasnet"``: the target cost.
        cost_exponent: ``reward="mnasnet"``: ``w``, or ``(alpha, beta)`` below and above
            the target.
        cost_attr: ``reward="mnasnet"``: the trial user attr holding the cost.
        screen: ``screen(arch) -> float`` scoring an :class:`~optuna_nas.spaces.Architecture`
            of ``space`` before it is proposed (needs a space).
        screen_candidates: Policy draws screened per proposal in the startup phase.
        screen_top: Candidates re-ranked by the screen after the startup phase (0: the
            screen only warms the study up).
    """

    def __init__(
        self,
        space: SearchSpace | None = None,
        *,
        joint: bool = True,
        base_sampler: BaseSampler | None = None,
        seed: int | None = None,
        preset: str = "default",
        hidden_size: int | None = None,
        num_layers: int | None = None,
        lr: float | None = None,
        init_range: float = 0.08,
        batch_size: int | None = None,
        update_every: int | None = None,
        baseline_decay: float | None = None,
        reward: str | None = None,
        advantage: str | None = None,
        ppo_epochs: int | None = None,
        clip: float = 0.2,
        history: int = 256,
        n_candidates: int | None = None,
        n_startup_trials: int = 10,
        local_fraction: float | None = None,
        local_parents: int = 5,
        surrogate_target: str = "rank",
        exploration: float | None = None,
        avoid_duplicates: bool | None = None,
        tanh_constant: float | None | _Preset = _PRESET,
        temperature: float | None = None,
        entropy_weight: float | None = None,
        pruned_reward: str = "last",
        schedule: Schedule | None = None,
        pareto_reward: str = "chebyshev",
        constraints_func: Callable[[FrozenTrial], Sequence[float]] | None = None,
        arch_constraints: ArchConstraints | None = None,
        cost_target: float | None = None,
        cost_exponent: float | tuple[float, float] = -0.07,
        cost_attr: str = "latency_s",
        screen: Screen | None = None,
        screen_candidates: int = 20,
        screen_top: int = 8,
    ) -> None:
        if space is not None and not isinstance(space, SearchSpace):
            raise TypeError(
                f"ControllerSampler takes a SearchSpace or no space (define-by-run), got "
                f"{space!r}."
            )
        if space is None and base_sampler is not None:
            raise ValueError(
                "base_sampler serves the params outside a space; with no space the "
                "controller models every param itself. Drop base_sampler, or give a space "
                "and joint=False."
            )
        presets: dict[str, dict[str, Any]] = {
            "default": dict(hidden_size=64, num_layers=1, lr=0.003, batch_size=1,
                            reward="value", advantage="rank", ppo_epochs=4,
                            n_candidates=512, avoid_duplicates=True, local_fraction=0.5,
                            exploration=2.0),
            "nas-rl": dict(hidden_size=35, num_layers=2, lr=6e-4, batch_size=8,
                           reward="best_last5_cubed", advantage="baseline", ppo_epochs=1,
                           n_candidates=1, avoid_duplicates=False, local_fraction=0.0),
            # ENAS' micro-search controller (Pham et al. 2018, CIFAR-10 scripts).
            "enas": dict(hidden_size=64, num_layers=1, lr=3.5e-3, batch_size=10,
                         reward="value", advantage="baseline", ppo_epochs=1, n_candidates=1,
                         avoid_duplicates=False, local_fraction=0.0, tanh_constant=1.1,
                         temperature=5.0, entropy_weight=1e-4, baseline_decay=0.99),
        }
        for config_ in presets.values():
            config_.setdefault("tanh_constant", None)
            config_.setdefault("temperature", 1.0)
            config_.setdefault("entropy_weight", 0.0)
            config_.setdefault("baseline_decay", 0.95)
            config_.setdefault("exploration", 0.0)
        if preset not in presets:
            raise ValueError(f"Unknown preset {preset!r}; choose one of {sorted(presets)}.")
        config = presets[preset]

        def pick(name: str, value: Any) -> Any:
            return config[name] if value is None else value

        if space is not None and joint and base_sampler is not None:
            warnings.warn(
                "ControllerSampler(space, base_sampler=...) with joint=True models the params "
                "outside the space itself, so base_sampler serves none of them; pass "
                "joint=False to hand them to base_sampler.",
                UserWarning,
                stacklevel=2,
            )
        self._space = space
        self.joint = space is None or joint
        self._base = base_sampler or optuna.samplers.TPESampler(seed=seed)
        self._seed = seed
        self.preset = preset
        self.hidden_size = int(pick("hidden_size", hidden_size))
        self.num_layers = int(pick("num_layers", num_layers))
        self.lr = float(pick("lr", lr))
        self.init_range = init_range
        self.batch_size = int(pick("batch_size", update_every or batch_size))
        self.baseline_decay = float(pick("baseline_decay", baseline_decay))
        self.reward = str(pick("reward", reward))
        self.advantage = str(pick("advantage", advantage))
        self.ppo_epochs = int(pick("ppo_epochs", ppo_epochs))
        self.clip = clip
        self.history = history
        self.n_candidates = int(pick("n_candidates", n_candidates))
        self.n_startup_trials = n_startup_trials
        self.local_fraction = float(pick("local_fraction", local_fraction))
        self.local_parents = local_parents
        self.surrogate_target = surrogate_target
        self.exploration = float(pick("exploration", exploration))
        self.avoid_duplicates = bool(pick("avoid_duplicates", avoid_duplicates))
        self.tanh_constant: float | None = (
            config["tanh_constant"] if isinstance(tanh_constant, _Preset) else tanh_constant
        )
        self.temperature = float(pick("temperature", temperature))
        self.entropy_weight = float(pick("entropy_weight", entropy_weight))
        self.pruned_reward = pruned_reward
        self.schedule = schedule
        self.pareto_reward = pareto_reward
        for name, function in (
            ("constraints_func", constraints_func), ("arch_constraints", arch_constraints)
        ):
            if function is not None and not callable(function):
                raise TypeError(f"{name} must be callable, got {function!r}.")
        self.constraints_func = constraints_func
        self.arch_constraints = arch_constraints
        if screen is not None and (space is None or not callable(screen)):
            raise TypeError(
                "screen scores architectures of the sampler's space: give a callable "
                "screen(arch) -> float and a space (e.g. screen=zero_cost.ProxyScreen(space)), "
                f"got screen={screen!r} and space={space!r}."
            )
        for name, count in (("screen_candidates", screen_candidates), ("screen_top", screen_top)):
            if isinstance(count, bool) or not isinstance(count, int) or count < 0:
                raise ValueError(f"{name} must be an int >= 0, got {count!r}.")
        self.screen = screen
        self.screen_candidates = screen_candidates
        self.screen_top = screen_top
        self.cost_attr = cost_attr
        exponents = cost_exponent if isinstance(cost_exponent, tuple) else (cost_exponent,) * 2
        if len(exponents) != 2 or not all(
            isinstance(e, int | float) and math.isfinite(e) for e in exponents
        ):
            raise ValueError(
                f"cost_exponent must be a number or a pair (below, above the target), got "
                f"{cost_exponent!r}."
            )
        self.cost_exponent = (float(exponents[0]), float(exponents[1]))
        self.cost_target = cost_target
        if self.reward == "mnasnet" and not (
            isinstance(cost_target, int | float) and math.isfinite(cost_target)
            and cost_target > 0
        ):
            raise ValueError(
                "reward='mnasnet' scales the accuracy by (cost / cost_target) ** w: give a "
                f"positive cost_target (got {cost_target!r})."
            )
        for name, value, allowed in (
            ("reward", self.reward, ("value", "best_last5_cubed", "mnasnet")),
            ("pareto_reward", self.pareto_reward, ("chebyshev", "rank")),
            ("advantage", self.advantage, ("rank", "baseline")),
            ("pruned_reward", self.pruned_reward, ("last", "skip")),
            ("surrogate_target", self.surrogate_target, ("rank", "value")),
        ):
            if value not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {value!r}.")
        if not self.exploration >= 0.0:
            raise ValueError(f"exploration must be >= 0, got {self.exploration}.")
        if not 0.0 <= self.local_fraction <= 1.0:
            raise ValueError(f"local_fraction must be in [0, 1], got {self.local_fraction}.")
        # The space's decisions, then (joint or define-by-run) those learned from the trials.
        self._arch: list[Decision] = list(space.decisions) if space is not None else []
        self._lock = threading.RLock()
        self._reset()

    def _models(self, param_name: str) -> bool:
        # Whether a param is one of the learned decisions.
        if self._space is None:
            return True
        return self.joint and not param_name.startswith(self._space.prefix)

    def _set_decisions(self) -> None:
        self._decisions = self._arch + [
            Decision(d.name, tuple(range(d.size)), condition=self._conditions.get(d.name))
            for d in self._params.decisions
        ]
        self._index = {d.name: i for i, d in enumerate(self._decisions)}
        self._sizes = [len(d.choices) for d in self._decisions]
        self._ordinal = [False] * len(self._arch) + [d.ordinal for d in self._params.decisions]

    def _reset(self) -> None:
        self._generator = torch.Generator().manual_seed(
            self._seed if self._seed is not None else _fresh_seed()
        )
        self._params = LearnedParams(self._models)
        self._conditions: dict[str, Any] = {}
        self._conditions_stale = False
        self._set_decisions()
        self._policy = ControllerPolicy(
            self._decisions,
            hidden_size=self.hidden_size,
            num_layers=self.num_layers,
            init_range=self.init_range,
            temperature=self.temperature,
            tanh_constant=self.tanh_constant,
            generator=self._generator,
        )
        self._optimizer = torch.optim.Adam(self._policy.parameters(), lr=self.lr)
        self._samples: list[_Sample] = []
        self._learned: set[int] = set()
        self._scan_from = 0  # every trial numbered below it is learned
        self._seen_rows: set[tuple[int, ...]] = set()  # rows of the learned trials
        self._pool: list[tuple[tuple[int, ...], float]] = []
        self._pool_key: tuple[Any, ...] | None = None
        self._updates = 0
        self._pending = 0
        self._redraw_level = 0
        self._baseline: float | None = None
        self._proposals: dict[int, dict[str, Choice]] = {}
        self._feasible_cache: dict[tuple[tuple[str, Any], ...], bool] = {}
        self._weights: np.ndarray | None = None
        self._screen_cache: dict[tuple[int, ...], float] = {}
        self._screened = 0  # the screen's calls for the proposal being made
        self._reward_cache: dict[tuple[Any, ...], list[float]] = {}

    # ---- Optuna's sampler interface -------------------------------------------------------
    def reseed_rng(self) -> None:
        self._base.reseed_rng()
        with self._lock:
            self._generator.manual_seed(_fresh_seed())

    def infer_relative_search_space(
        self, study: Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        if self._space is None or self.joint:
            return {}  # every param is the controller's, sampled as the objective asks
        space = self._base.infer_relative_search_space(study, trial)
        return {k: v for k, v in space.items() if not k.startswith(self._space.prefix)}

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        if self._space is None or self.joint or not search_space:
            return {}
        params = self._base.sample_relative(study, trial, search_space)
        return {k: v for k, v in params.items() if not k.startswith(self._space.prefix)}

    def sample_independent(
        self,
        study: Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        if self._space is not None and param_name.startswith(self._space.prefix):
            return self._sample_arch(study, trial, param_name, param_distribution)
        if not self._models(param_name):
            return self._base.sample_independent(study, trial, param_name, param_distribution)
        proposal = self._proposal(study, trial)
        with self._lock:
            index = self._params.find(param_name, param_distribution)
            if index is None:
                # A param the study has not seen yet (or with a new distribution): drawn
                # uniformly, and a decision of the policy once the trial is learned.
                decision = ParamDecision.of(param_name, param_name, param_distribution)
            else:
                decision = self._params.decisions[index]
                if decision.name in proposal:
                    return proposal[decision.name]
            # Not in the proposal: the learned condition did not foresee it.
            pick = int(torch.randint(decision.size, (1,), generator=self._generator))
            return decision.value(pick, self._generator)

    def _sample_arch(
        self,
        study: Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        assert self._space is not None
        name = param_name[len(self._space.prefix) :]
        if name not in self._index or not isinstance(param_distribution, CategoricalDistribution):
            return self._base.sample_independent(study, trial, param_name, param_distribution)
        decision = self._decisions[self._index[name]]
        if tuple(param_distribution.choices) != decision.choices:
            raise ArchitectureError(
                f"Param {param_name!r} is suggested with choices "
                f"{list(param_distribution.choices)}, but the sampler's space has "
                f"{list(decision.choices)}; give the sampler the same space as the objective."
            )
        proposal = self._proposal(study, trial)
        if name in proposal:
            return proposal[name]
        # A decision the proposal left inactive (fixed params changed a condition).
        with self._lock:
            pick = int(torch.randint(len(decision.choices), (1,), generator=self._generator))
        return decision.choices[pick]

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        self._base.before_trial(study, trial)

    def after_trial(
        self,
        study: Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        with self._lock:
            self._proposals.pop(trial._trial_id, None)
        if state in (TrialState.COMPLETE, TrialState.PRUNED) and (
            self.constraints_func is not None or self.arch_constraints is not None
        ):
            # As Optuna's samplers do, before the trial's state is stored: whoever learns
            # from the finished trial finds its constraints on it.
            constraints: list[float] = []
            if self.constraints_func is not None:
                constraints += constraint_values(
                    "constraints_func", self.constraints_func(trial), f" for trial {trial.number}"
                )
            params = self._modelled_params(trial.params)
            if self.arch_constraints is not None and params:
                constraints += constraint_values(
                    "arch_constraints", self.arch_constraints(params), f" for {params}"
                )
            study._storage.set_trial_system_attr(trial._trial_id, CONSTRAINTS_KEY, constraints)
        self._base.after_trial(study, trial, state, values)

    def _modelled_params(self, params: Mapping[str, Any]) -> dict[str, Any]:
        # The params arch_constraints sees: the space's and the learned ones.
        prefix = self._space.prefix if self._space is not None else None
        return {
            k: v for k, v in params.items()
            if (prefix is not None and k.startswith(prefix)) or self._models(k)
        }

    def _as_params(self, values: Mapping[str, Choice]) -> dict[str, Any]:
        # A proposal's values under the param names the trial will hold.
        params: dict[str, Any] = {}
        for name, value in values.items():
            position = self._index[name]
            if position < len(self._arch):
                assert self._space is not None
                params[self._space.param_name(name)] = value
            else:
                params[self._params.decisions[position - len(self._arch)].param] = value
        return params

    def _feasible(self, values: Mapping[str, Choice]) -> bool:
        if self.arch_constraints is None or not values:
            return True
        key = tuple(sorted(values.items()))
        cached = self._feasible_cache.get(key)
        if cached is None:
            params = self._as_params(values)
            result = constraint_values(
                "arch_constraints", self.arch_constraints(params), f" for {params}"
            )
            cached = all(c <= 0.0 for c in result)
            if len(self._feasible_cache) >= _FEASIBLE_CACHE:
                self._feasible_cache.clear()
            self._feasible_cache[key] = cached
        return cached

    # ---- proposals ------------------------------------------------------------------------
    def _proposal(self, study: Study, trial: FrozenTrial) -> dict[str, Choice]:
        with self._lock:
            cached = self._proposals.get(trial._trial_id)
            if cached is not None:
                return cached
            stored = trial.system_attrs.get(PROPOSAL_KEY)
            if isinstance(stored, dict):
                values = dict(stored.get("values", {}))
            else:
                self._learn(study)
                self._screened = 0
                values, log_prob = self._propose(study, trial)
                stored = {"values": values, "log_prob": log_prob}
                if self.screen is not None:
                    # What the screening cost: a runner can charge it to the budget.
                    stored["screened"] = self._screened
                study._storage.set_trial_system_attr(trial._trial_id, PROPOSAL_KEY, stored)
            self._proposals[trial._trial_id] = values
            return values

    def _forced(self, trial: FrozenTrial) -> dict[int, int]:
        imposed: dict[str, Any] = {}
        if self.schedule is not None:
            imposed.update(self.schedule(trial.number))
        fixed = trial.system_attrs.get("fixed_params") or {}
        for param, value in fixed.items():
            if self._space is not None and param.startswith(self._space.prefix):
                imposed[param[len(self._space.prefix) :]] = value
            elif self._models(param) and (k := self._params.latest(param)) is not None:
                imposed[self._params.decisions[k].name] = value
        forced: dict[int, int] = {}
        for name, value in imposed.items():
            index = self._choice_index(name, value)
            if index >= 0:
                forced[self._index[name]] = index
        return forced

    def _choice_index(self, name: str, value: Any) -> int:
        if name not in self._index:
            return -1
        position = self._index[name]
        if position >= len(self._arch):
            return self._params.decisions[position - len(self._arch)].index(value)
        # Typed comparison, as the spaces validate values: 1, 1.0 and True differ.
        choices = self._decisions[position].choices
        return next(
            (i for i, c in enumerate(choices) if type(c) is type(value) and c == value), -1
        )

    def _propose(self, study: Study, trial: FrozenTrial) -> tuple[dict[str, Choice], float]:
        forced = self._forced(trial)
        # With several objectives, one ParEGO weight vector per proposal: the parents of
        # its local candidates and its screening aim at the same part of the front.
        self._weights = None
        if self._samples and len(self._samples[0].values) > 1:
            if self.pareto_reward == "chebyshev":
                self._weights = random_weights(len(self._samples[0].values), self._generator)
        screening = self.n_candidates > 1 and len(self._samples) >= self.n_startup_trials
        n = self.n_candidates if screening else 1
        long_study = len(self._samples) >= _LONG_STUDY
        if long_study:
            # A long history has concentrated the policy and the model: a quarter of the
            # candidates finds the same proposals, at a quarter of the cost per trial.
            n = max(1, n // 4)
        n = max(n, 8) if self.avoid_duplicates else n
        # Screened candidates: in the startup phase, the best by the screen of
        # screen_candidates policy draws (a zero-cost warm-up); afterwards the screen
        # re-ranks the first screen_top candidates (the surrogate's best, if it ranks).
        warm_up = len(self._samples) < self.n_startup_trials
        n_screen = 0 if self.screen is None else (
            self.screen_candidates if warm_up else self.screen_top)
        n = max(n, n_screen)
        seen = self._seen(study) if self.avoid_duplicates else set()
        if long_study:
            # A long study updates its policy every len/50 results; in between, the
            # policy's candidates are drawn once (as the paper's controller samples m
            # children per update) and each trial takes the best fresh one of them by
            # the refitted surrogate.
            key = (self._updates, tuple(sorted(forced.items())))
            if key != self._pool_key:
                self._pool, self._pool_key = [], key
            for _ in range(_FEASIBLE_ROUNDS):
                fresh = [(row, lp) for row, lp in self._pool if row not in seen]
                if not fresh:
                    if self._pool:
                        # Spent before the next update: this policy's draws hold too few
                        # new architectures, so draw the next pool from a flatter policy.
                        self._redraw_level = min(self._redraw_level + 1, 8)
                    rows, log_prob, _ = self._draw(n, forced, screening, seen)
                    self._pool = [
                        (tuple(r), lp) for r, lp in zip(rows, log_prob.tolist(), strict=True)
                    ]
                    fresh = [(row, lp) for row, lp in self._pool if row not in seen] or self._pool
                ranked: list[int] = list(range(len(fresh)))
                if screening:
                    predicted = self._surrogate_scores([list(row) for row, _ in fresh])
                    ranked = sorted(ranked, key=lambda i: -predicted[i])
                ranked = self._screen_order([row for row, _ in fresh], ranked, n_screen,
                                            warm_up=warm_up)
                for pick in ranked:
                    values = self._values(fresh[pick][0])
                    if self._feasible(values):
                        return values, fresh[pick][1]
                # Every fresh candidate breaks arch_constraints: drop them, draw anew.
                rejected = {row for row, _ in fresh}
                self._pool = [(row, lp) for row, lp in self._pool if row not in rejected]
            raise self._infeasible(forced)
        for round_ in range(_FEASIBLE_ROUNDS):
            rows, log_prob, order = self._draw(n, forced, screening, seen)
            if screening:
                predicted = self._surrogate_scores(rows)
                order.sort(key=lambda b: -predicted[b])
            order = self._screen_order(rows, order, n_screen, warm_up=warm_up)
            if round_ == _FEASIBLE_ROUNDS - 1:
                # The last round takes a feasible architecture the study holds over none.
                held = set(order)
                order += [b for b in range(len(rows)) if b not in held]
            for best in order:
                values = self._values(rows[best])
                if self._feasible(values):
                    return values, float(log_prob[best])
        raise self._infeasible(forced)

    def _screen_order(
        self, rows: Sequence[Sequence[int]], order: list[int], k: int, *, warm_up: bool
    ) -> list[int]:
        # The first k candidates of order, re-ranked (stable on ties): in the warm-up by
        # the screen, afterwards by the surrogate with the screen as its prior mean.
        if self.screen is None or k <= 0:
            return order
        head = order[:k]
        scores = [self._screen_score(rows[b]) for b in head]
        if not warm_up and self._samples:
            scores = self._surrogate_scores([rows[b] for b in head], screened=scores)
        ranking = dict(zip(head, scores, strict=True))
        return sorted(head, key=lambda b: -ranking[b]) + order[k:]

    def _screen_score(self, row: Sequence[int]) -> float:
        assert self.screen is not None and self._space is not None
        key = tuple(row[: len(self._arch)])
        cached = self._screen_cache.get(key)
        if cached is not None:
            return cached
        arch = self._space.from_values({
            d.name: d.choices[i] for d, i in zip(self._arch, key, strict=True) if i >= 0
        })
        self._screened += 1
        try:
            value = float(self.screen(arch))
        except ZeroCostError:
            value = -math.inf  # A network the proxy cannot score ranks last.
        if math.isnan(value):
            value = -math.inf
        self._screen_cache[key] = value
        return value

    def _infeasible(self, forced: Mapping[int, int]) -> ArchitectureError:
        fixed = (
            " with the fixed params " + ", ".join(self._describe(d, i) for d, i in forced.items())
            if forced else ""
        )
        return ArchitectureError(
            f"arch_constraints rejected every candidate of {_FEASIBLE_ROUNDS} rounds of "
            f"policy samples{fixed}: the feasible set looks empty or very small. Check that "
            "arch_constraints returns values <= 0 for the architectures you want (feasible "
            "where all values are <= 0), or relax its limits."
        )

    def _describe(self, position: int, index: int) -> str:
        # "name=value" of a choice: a space's value, or a learned param's value or bin.
        if position < len(self._arch):
            decision = self._decisions[position]
            return f"{decision.name}={decision.choices[index]!r}"
        learned = self._params.decisions[position - len(self._arch)]
        shown = learned.describe(index)
        return f"{learned.param}{' ' if shown.startswith('in [') else '='}{shown}"

    def _draw(
        self, n: int, forced: Mapping[int, int], screening: bool, seen: set[tuple[int, ...]]
    ) -> tuple[list[list[int]], torch.Tensor, list[int]]:
        # Returns the candidates, their log-probabilities, and the indices of those the
        # study does not hold (all of them if every one is held).
        temperature = self._policy.temperature
        # In a long study, start from the flatness the last proposal needed, so that a
        # converged policy does not pay for a draw of duplicates every trial.
        level = self._redraw_level if len(self._samples) >= _LONG_STUDY else 0
        try:
            # Redraw from a flatter policy while every candidate is an architecture the
            # study holds (the policy has converged on them); the log-probability returned
            # is that of the policy that drew the proposal.
            for attempt in range(level, level + 8):
                size, local = (n, screening) if attempt == 0 else (min(n, 64), False)
                self._policy.temperature = temperature * 2.0**attempt
                rows, log_prob = self._candidates(size, forced, local=local)
                fresh = [b for b in range(size) if tuple(rows[b]) not in seen]
                if fresh or not self.avoid_duplicates:
                    break
        finally:
            self._policy.temperature = temperature
        self._redraw_level = max(0, attempt - 1) if attempt == level else attempt
        return rows, log_prob, fresh or list(range(size))

    def _candidates(
        self, n: int, forced: Mapping[int, int], *, local: bool
    ) -> tuple[list[list[int]], torch.Tensor]:
        # Part of the screened candidates keep a top architecture of the history and let
        # the controller redraw one or two of its decisions: the policy's proposals near
        # the incumbents, which the surrogate then ranks.
        forced_rows = torch.full((n, len(self._decisions)), -1, dtype=torch.long)
        n_local = int(n * self.local_fraction) if local else 0
        if n_local > 0:
            many = len(self._samples[0].values) > 1
            pool = self._samples[-self.history :] if many else self._samples
            scores = self._rewards(pool, self._weights)
            best = sorted(range(len(pool)), key=lambda i: -scores[i])[: self.local_parents]
            parents = [pool[i] for i in best]
            rows = torch.tensor([p.choices for p in parents], dtype=torch.long)
            rows = rows[torch.arange(n_local) % len(parents)]
            # Free one active decision uniformly, and a second one for half of the rows.
            for k in range(2):
                noise = torch.rand(rows.shape, generator=self._generator)
                pick = noise.masked_fill(rows < 0, -1.0).argmax(dim=1)
                keep = torch.ones(n_local, dtype=torch.bool) if k == 0 else (
                    torch.rand(n_local, generator=self._generator) < 0.5
                )
                rows[keep, pick[keep]] = -1
            forced_rows[:n_local] = rows
        for d, i in forced.items():
            forced_rows[:, d] = i
        with torch.no_grad():
            choices, log_prob, _ = self._policy.unroll(
                n, forced_rows=forced_rows, generator=self._generator
            )
        return choices.tolist(), log_prob

    def _values(self, row: Sequence[int]) -> dict[str, Choice]:
        # The values of a proposal: a learned decision's are drawn inside its choice.
        values: dict[str, Choice] = {}
        for position, (decision, i) in enumerate(zip(self._decisions, row, strict=True)):
            if i < 0:
                continue
            if position < len(self._arch):
                values[decision.name] = decision.choices[i]
            else:
                learned = self._params.decisions[position - len(self._arch)]
                values[decision.name] = learned.value(i, self._generator)
        return values

    def _values_row(self, values: Mapping[str, Any]) -> tuple[int, ...]:
        row = [-1] * len(self._decisions)
        for name, value in values.items():
            if name in self._index:
                row[self._index[name]] = self._choice_index(name, value)
        return tuple(row)

    def _row(self, trial: FrozenTrial) -> list[int]:
        row = [-1] * len(self._arch)
        if self._space is not None:
            prefix = self._space.prefix
            arch_params = {k: v for k, v in trial.params.items() if k.startswith(prefix)}
            if arch_params:
                for name, value in self._space.from_params(arch_params).values:
                    row[self._index[name]] = self._choice_index(name, value)
        return row + self._params.row(trial.params, trial.distributions)

    def _seen(self, study: Study) -> set[tuple[int, ...]]:
        # Learned trials are in ``_seen_rows``; unfinished and failed ones hold proposals.
        seen = set(self._seen_rows)
        unlearned = (TrialState.RUNNING, TrialState.WAITING, TrialState.FAIL)
        for t in study._get_trials(deepcopy=False, states=unlearned, use_cache=True):
            stored = t.system_attrs.get(PROPOSAL_KEY)
            if isinstance(stored, dict) and t.number not in self._learned:
                seen.add(self._values_row(stored.get("values", {})))
        return seen

    def _surrogate_scores(
        self, rows: Sequence[Sequence[int]], screened: Sequence[float] | None = None
    ) -> list[float]:
        # Kernel ridge regression on past rewards. The kernel (1 + m / D)^3, m the number of
        # decisions two architectures share, covers interactions of up to three decisions
        # in any space without building their features. With the candidates' screen
        # scores, the model's prior mean is linear in the screen's standing (fitted to the
        # results, never negative), and the kernel model fits what the screen misses.
        recent = self._samples[-self.history :]
        history = torch.tensor([s.choices for s in recent], dtype=torch.long)
        y = torch.tensor(self._rewards(recent, self._weights), dtype=torch.float64)
        if self.surrogate_target == "rank":
            # Ranks resolve the small gaps between the best architectures as finely as
            # the large gaps at the bottom.
            y = y.argsort().argsort().double() / max(1, len(recent) - 1)
        y = (y - y.mean()) / (y.std(unbiased=False) + 1e-12)
        slope, z_rows = 0.0, torch.zeros(len(rows), dtype=torch.float64)
        if screened is not None:
            z_history, z_rows = _standing(
                [self._screen_score(s.choices) for s in recent], screened
            )
            slope = max(0.0, float(z_history @ y) / (float(z_history @ z_history) + 1.0))
            y = y - slope * z_history
        width = max(1, len(self._decisions))
        h = self._one_hot(history)

        def kernel(a: torch.Tensor) -> torch.Tensor:
            # One-hot rows (an extra column per decision for "inactive") make the number
            # of shared decisions a matrix product, exact in float64.
            return (1.0 + (a @ h.T) / width) ** 3

        gram = kernel(h) + 0.1 * torch.eye(len(recent), dtype=torch.float64)
        alpha = torch.linalg.solve(gram, y)
        candidates = self._one_hot(torch.tensor(rows, dtype=torch.long))
        cross = kernel(candidates)
        mean = cross @ alpha + slope * z_rows
        if self.exploration > 0.0:
            # Upper confidence bound: the kernel model's posterior standard deviation.
            prior = (1.0 + (candidates * candidates).sum(dim=1) / width) ** 3
            explained = (cross * torch.linalg.solve(gram, cross.T).T).sum(dim=1)
            mean = mean + self.exploration * (prior - explained).clamp(min=0.0).sqrt()
        scores: list[float] = mean.tolist()
        return scores

    def _one_hot(self, rows: torch.Tensor) -> torch.Tensor:
        sizes = torch.tensor(self._sizes, dtype=torch.long)
        offsets = torch.cumsum(sizes + 1, dim=0) - (sizes + 1)
        columns = torch.where(rows >= 0, rows, sizes) + offsets
        encoded = torch.zeros(
            rows.shape[0], int((sizes + 1).sum()), dtype=torch.float64
        )
        encoded.scatter_(1, columns, 1.0)
        ordinal = [d for d, flag in enumerate(self._ordinal) if flag]
        if ordinal:
            # A numeric decision's neighbouring choices are alike: half a match each side,
            # so that the kernel counts a near value as part of a shared decision.
            for shift in (-1, 1):
                for d in ordinal:
                    chosen = rows[:, d]
                    near = chosen + shift
                    ok = (chosen >= 0) & (near >= 0) & (near < self._sizes[d])
                    index = torch.nonzero(ok).flatten()
                    encoded[index, near[index] + offsets[d]] = 0.5
            encoded[:, [int(offsets[d]) + i for d in ordinal for i in range(self._sizes[d])]] /= (
                1.5**0.5
            )
        return encoded

    # ---- learning -------------------------------------------------------------------------
    def _reward(self, study: Study, trial: FrozenTrial) -> tuple[float, ...] | None:
        # The objectives signed so that larger is better; None for nothing to learn.
        directions = study.directions
        if len(directions) > 1:
            if self.reward == "mnasnet":
                raise ValueError(
                    "reward='mnasnet' folds one accuracy and a cost into one reward, for a "
                    f"single-objective study; study {study.study_name!r} has "
                    f"{len(directions)} objectives, whose reward is pareto_reward's. Drop "
                    "reward='mnasnet', or return the accuracy alone."
                )
            # Optuna has no intermediate values with several objectives: only COMPLETE
            # trials have values.
            if trial.state != TrialState.COMPLETE or trial.values is None:
                return None
            if not all(math.isfinite(v) for v in trial.values):
                return None
            return tuple(
                v if d == StudyDirection.MAXIMIZE else -v
                for v, d in zip(trial.values, directions, strict=True)
            )
        value = self._single_reward(study, trial)
        return None if value is None else (value,)

    def _single_reward(self, study: Study, trial: FrozenTrial) -> float | None:
        if trial.state == TrialState.COMPLETE:
            assert trial.value is not None
            value: float = trial.value
        elif trial.state == TrialState.PRUNED and self.pruned_reward == "last":
            if not trial.intermediate_values:
                return None
            value = trial.intermediate_values[max(trial.intermediate_values)]
        else:
            return None
        if self.reward == "best_last5_cubed":
            steps = sorted(trial.intermediate_values)[-5:]
            if steps:
                best = max if study.direction == StudyDirection.MAXIMIZE else min
                value = best(trial.intermediate_values[s] for s in steps)
            value = value**3
        elif self.reward == "mnasnet":
            scaled = self._mnasnet(study, trial, value)
            if scaled is None:
                return None
            value = scaled
        if not math.isfinite(value):
            return None
        return value if study.direction == StudyDirection.MAXIMIZE else -value

    def _mnasnet(self, study: Study, trial: FrozenTrial, accuracy: float) -> float | None:
        if study.direction != StudyDirection.MAXIMIZE:
            raise ValueError(
                "reward='mnasnet' scales an accuracy to maximise; study "
                f"{study.study_name!r} minimizes. Return the accuracy and "
                "direction='maximize'."
            )
        cost = trial.user_attrs.get(self.cost_attr)
        if cost is None:
            if trial.state != TrialState.COMPLETE:
                return None  # pruned before its cost was measured
            raise ValueError(
                f"reward='mnasnet' reads each trial's cost from its user attr "
                f"{self.cost_attr!r}, which trial {trial.number} lacks. Record it with "
                "optuna_nas.train(..., costs=('latency',)) (user attr 'latency_s') or "
                "trial.set_user_attr, or name another attr with cost_attr."
            )
        if isinstance(cost, bool) or not isinstance(cost, int | float) or not cost > 0:
            raise ValueError(
                f"Trial {trial.number}'s cost {self.cost_attr!r} is {cost!r}; "
                "reward='mnasnet' needs a positive number."
            )
        assert self.cost_target is not None
        ratio = float(cost) / self.cost_target
        exponent = self.cost_exponent[0] if ratio <= 1.0 else self.cost_exponent[1]
        return float(accuracy * ratio**exponent)

    def _violation(self, trial: FrozenTrial) -> float:
        # Optuna's two formats (constraints_func's list, trial.set_constraint's keys).
        return sum(max(0.0, float(c)) for c in trial.constraints.values())

    def _rewards(
        self, samples: Sequence[_Sample], weights: np.ndarray | None = None
    ) -> list[float]:
        # One scalar per result, larger better. With several objectives it depends on the
        # whole history (a result's place on the front), so it is computed here, not stored.
        if not samples:
            return []
        key = None
        if len(samples[0].values) > 1 and (weights is not None or self.pareto_reward == "rank"):
            # A proposal scores the same history for its local parents and its surrogate.
            key = (id(samples[0]), id(samples[-1]), len(samples), len(self._samples),
                   None if weights is None else weights.tobytes())
            if key in self._reward_cache:
                return list(self._reward_cache[key])
        if len(samples[0].values) > 1:
            values = np.array([s.values for s in samples], dtype=np.float64)
            if self.pareto_reward == "rank":
                scores = rank_scores(values)
            else:
                if weights is None:
                    weights = random_weights(values.shape[1], self._generator)
                scores = chebyshev_scores(values, weights)
        else:
            scores = np.array([s.reward for s in samples], dtype=np.float64)
        if any(s.violation > 0 for s in samples):
            scores = feasible_first(scores, [s.violation for s in samples])
        result: list[float] = scores.tolist()
        if key is not None:
            self._reward_cache = {key: result}
        return list(result)

    def _learn(self, study: Study) -> None:
        # Only trials from the first unfinished one on can hold something new: a long
        # study reads a few trials per proposal, not its whole history.
        trials = [
            t
            for t in study._get_trials(deepcopy=False, use_cache=True)
            if t.number >= self._scan_from
        ]
        trials.sort(key=lambda t: t.number)
        contiguous = True
        for trial in trials:
            if (
                trial.state in (TrialState.COMPLETE, TrialState.PRUNED)
                and trial.number not in self._learned
            ):
                self._learn_trial(study, trial)
            if contiguous and trial.state.is_finished():
                self._scan_from = trial.number + 1
            else:
                contiguous = False
        if self._conditions_stale:
            self._learn_conditions()
        # The default preset updates once it has new results: after every result while
        # the history is short, every len/50 results later and every len/25 in a long
        # study, so that the cost per trial stays flat. Results that arrive together
        # (other workers' trials, read at this worker's next proposal) make one update,
        # so that the cost per trial of W workers stays that of one, not W times it.
        if self.advantage != "baseline" and self._pending:
            count = len(self._samples)
            every = max(self.batch_size, count // (25 if count >= _LONG_STUDY else 50))
            if self._pending >= every:
                self._update()
                self._pending = 0

    def _learn_trial(self, study: Study, trial: FrozenTrial) -> None:
        moved = self._params.observe(trial.distributions)
        if moved is not None:
            self._extend(moved)
        prefix = self._space.prefix if self._space is not None else None
        if not any(
            (prefix is not None and k.startswith(prefix)) or self._models(k)
            for k in trial.params
        ):
            self._learned.add(trial.number)
            return
        try:
            row = self._row(trial)
        except ArchitectureError as error:
            # Not marked as learned: every later proposal raises again, never a mix.
            raise ArchitectureError(
                f"Trial {trial.number} of study {study.study_name!r} holds architecture "
                f"params that do not fit this sampler's space ({error}). The study was "
                "made with a different search space: use the original space or a new "
                "study name."
            ) from None
        self._learned.add(trial.number)
        self._seen_rows.add(tuple(row))
        if self._conditions or any(i < 0 for i in row[len(self._arch) :]):
            # A new row can make a param conditional, or contradict a learned condition.
            self._conditions_stale = True
        signed = self._reward(study, trial)
        if signed is None:
            return
        reward = signed[0] if len(signed) == 1 else 0.0
        stored = trial.system_attrs.get(PROPOSAL_KEY)
        old = stored.get("log_prob") if isinstance(stored, dict) else None
        fixed = trial.system_attrs.get("fixed_params")
        # The proposal's probability is the trial's only if the trial ran the proposal
        # (a PartialFixedSampler around this sampler can replace proposed values).
        if (
            fixed
            or not isinstance(old, (int, float))
            or not isinstance(stored, dict)
            or self._values_row(stored.get("values", {})) != tuple(row)
        ):
            old = None
        if old is None and self.advantage == "rank":
            # A trial the policy did not propose as it ran (fixed params, a define-by-run
            # study's first trials, a param drawn before it was a decision): its
            # probability under the policy now is its reference, so that the clipped
            # update bounds it like the others instead of pushing it at every update.
            with torch.no_grad():
                _, log_prob, _ = self._policy.unroll(1, choices=torch.tensor([row]))
            old = float(log_prob[0])
        self._samples.append(
            _Sample(trial.number, row, reward, old, signed, self._violation(trial))
        )
        self._pending += 1
        if self.advantage == "baseline" and self._pending >= self.batch_size:
            # REINFORCE with a moving baseline: one update per batch of results, in order.
            self._update()
            self._pending = 0

    def _extend(self, old_positions: Sequence[int]) -> None:
        # New params: the policy grows a head for each, keeping what it learned; the rows
        # learned so far get -1 (not made) for them.
        offset = len(self._arch)
        moved = list(range(offset)) + [offset + p for p in old_positions]
        self._set_decisions()
        self._policy = self._policy.extended(self._decisions, moved, self._generator)
        self._optimizer = torch.optim.Adam(self._policy.parameters(), lr=self.lr)

        def grown(row: Sequence[int]) -> list[int]:
            new = [-1] * len(self._decisions)
            for old, position in enumerate(moved):
                new[position] = row[old]
            return new

        # A row's probability is unchanged: its new decisions are not made, so the policy
        # skips them, and the old ones keep their heads.
        self._samples = [
            _Sample(s.number, grown(s.choices), s.reward, s.old_log_prob, s.values, s.violation)
            for s in self._samples
        ]
        self._seen_rows = {tuple(grown(r)) for r in self._seen_rows}
        self._pool, self._pool_key = [], None
        self._conditions_stale = True

    def _learn_conditions(self) -> None:
        # Which learned params the objective asks for depends on earlier choices: learn
        # that from the rows, for the policy to unroll only the decisions a trial makes.
        offset = len(self._arch)
        found = learn_conditions(
            sorted(self._seen_rows), self._decisions,
            range(offset, len(self._decisions)),
        )
        self._conditions = {self._decisions[c].name: v for c, v in found.items()
                            if v is not None}
        self._set_decisions()
        self._policy.set_decisions(self._decisions)
        self._conditions_stale = False

    def _update(self) -> None:
        recent = self._samples[-self.history :]
        batch = recent if self.advantage == "rank" else recent[-self.batch_size :]
        scalars = self._rewards(batch)
        rewards = torch.tensor(scalars, dtype=torch.float32)
        if self.advantage == "rank":
            if len(batch) < 2:
                return
            ranks = rewards.argsort().argsort().float()
            advantages = ranks / (len(batch) - 1) - 0.5
        else:
            advantages = torch.zeros(len(batch))
            for k, reward in enumerate(scalars):
                if self._baseline is None:
                    self._baseline = reward
                advantages[k] = reward - self._baseline
                self._baseline = (
                    self.baseline_decay * self._baseline + (1 - self.baseline_decay) * reward
                )
        choices = torch.tensor([s.choices for s in batch], dtype=torch.long)
        old = torch.tensor(
            [s.old_log_prob if s.old_log_prob is not None else math.nan for s in batch]
        )
        for _ in range(self.ppo_epochs):
            _, log_prob, entropy = self._policy.unroll(len(batch), choices=choices)
            if self.advantage == "baseline":
                reference = log_prob.detach()  # REINFORCE: on-policy, ratio 1
            else:
                reference = torch.where(torch.isnan(old), log_prob.detach(), old)
            ratio = torch.exp(log_prob - reference)
            objective = torch.minimum(
                ratio * advantages,
                ratio.clamp(1 - self.clip, 1 + self.clip) * advantages,
            )
            loss = -objective.mean() - self.entropy_weight * entropy.mean()
            self._optimizer.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]
            self._optimizer.step()
        self._updates += 1

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.RLock()
