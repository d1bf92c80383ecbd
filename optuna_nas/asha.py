"""Random search with asynchronous successive halving (ASHA), trained from scratch.

Li & Talwalkar's baseline ("Random Search and Reproducibility for Neural Architecture
Search", UAI 2019, https://arxiv.org/abs/1902.07638): architectures drawn uniformly at
random, each trained from scratch, with ASHA stopping the unpromising ones early. Optuna
supplies both halves: :class:`optuna.samplers.RandomSampler` and
:class:`optuna.pruners.SuccessiveHalvingPruner` (an asynchronous successive halving).
"""

from __future__ import annotations

import logging
import math
import random
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import optuna
import torch
from optuna.distributions import BaseDistribution
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from optuna_nas._constraints import (
    CONSTRAINTS_KEY,
    ArchConstraints,
    arch_constraint_values,
    callable_name,
    check_arch_constraints,
    feasible,
    record_constraints,
)
from optuna_nas._reporting import EPOCH_VALUES_ATTR
from optuna_nas.data import ImageData
from optuna_nas.errors import NonFiniteLossError
from optuna_nas.spaces import Architecture, SearchSpace
from optuna_nas.training import _COST_ATTRS, _DEFAULT_COSTS, evaluate, seed_everything, train
from optuna_nas.zero_cost import ZeroCostPruner, list_proxies, report

__all__ = [
    "CONSTRAINTS_ATTR",
    "MAX_CONSTRAINT_ATTEMPTS",
    "OBJECTIVES",
    "ArchConstraints",
    "random_search_asha",
    "total_epochs",
    "trial_seed",
]

_logger = logging.getLogger(__name__)

"""``arch_constraints(params) -> values``: an architecture's params (as ``trial.params`` holds
them, the space's prefixed names) to its constraint values; feasible where every value is
zero or less."""

CONSTRAINTS_ATTR = CONSTRAINTS_KEY
"""The trial system attr of a trial's constraint values: the key Optuna's own samplers write
with ``constraints_func`` and read back as ``trial.constraints`` (``"0"``, ``"1"``, ...)."""

MAX_CONSTRAINT_ATTEMPTS = 10_000
"""Random architectures drawn for one trial before the constraints are called infeasible."""

OBJECTIVES: dict[str, tuple[str, str]] = {
    "accuracy": ("maximize", "valid accuracy"),
    "params": ("minimize", "params"),
    "flops": ("minimize", "flops"),
    "latency": ("minimize", "latency (s)"),
}
"""What a search can optimise, with its direction and its metric name: the validation
accuracy, and the costs that :func:`~optuna_nas.training.train` stores (``params``,
``flops``, ``latency``, read from the user attrs ``params``, ``flops``, ``latency_s``)."""

# Arguments of train that the recipe sets itself, so train_options cannot.
_RESERVED_TRAIN_OPTIONS = ("model", "data", "epochs", "trial", "lr", "batch_size", "seed",
                           "device")


def trial_seed(seed: int, number: int) -> int:
    """The seed of trial ``number`` of a search with seed ``seed``.

    It seeds the network's initialisation and the training's data order. It depends only
    on the search's seed and the trial number, so two searches with the same seed (one with
    ASHA, one at full budget) train trial ``k`` identically up to the epoch ASHA stops it.

    Args:
        seed: The search's seed.
        number: The trial number.
    """
    return seed * 1_000_003 + number


def _check_int(name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer of at least {minimum}, got {value!r}.")


def _json_value(value: Any) -> Any:
    """A value as a user attr can hold it (JSON): itself if plain, else its repr."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return repr(value)


def _epochs_reported(trial: optuna.Trial) -> int:
    """Epochs the running ``trial`` has reported (its last step plus one; in a
    multi-objective study, the epochs kept in its user attr ``epoch_values``)."""
    if len(trial.study.directions) > 1:
        return len(trial.user_attrs.get(EPOCH_VALUES_ATTR, []))
    for running in trial.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if running.number == trial.number:
            return 0 if running.last_step is None else running.last_step + 1
    return 0


# ---- objectives: the accuracy alone, or the accuracy and costs (multi-objective) ----------
def _check_objectives(
    objectives: object, where: str, allowed: Sequence[str] = tuple(OBJECTIVES)
) -> tuple[str, ...]:
    """``objectives`` as a tuple, or a ValueError that names the fix."""
    example = "objectives=('accuracy', 'params')"
    if isinstance(objectives, str) or not isinstance(objectives, Sequence):
        raise ValueError(
            f"{where}: objectives must be a sequence of names, got {objectives!r}; e.g. "
            f"{example}."
        )
    names = tuple(objectives)
    unknown = [n for n in names if n not in allowed]
    if unknown:
        raise ValueError(
            f"{where}: unknown objectives {unknown}; choose from {list(allowed)}, "
            f"'accuracy' first, e.g. {example}."
        )
    if not names or names[0] != "accuracy" or len(set(names)) != len(names):
        raise ValueError(
            f"{where}: objectives must start with 'accuracy' and name each cost once, got "
            f"{list(names)}; e.g. {example}."
        )
    return names


def _directions(objectives: Sequence[str]) -> list[StudyDirection]:
    return [StudyDirection[OBJECTIVES[name][0].upper()] for name in objectives]


def _metric_names(objectives: Sequence[str]) -> list[str]:
    return [OBJECTIVES[name][1] for name in objectives]


def _costs_for(objectives: Sequence[str], costs: Sequence[str] | None) -> tuple[str, ...]:
    """``train``'s costs with those the objectives need added."""
    have = tuple(costs) if costs is not None else _DEFAULT_COSTS
    return have + tuple(name for name in objectives[1:] if name not in have)


def _objective_values(
    trial: optuna.Trial, accuracy: float, objectives: Sequence[str]
) -> float | tuple[float, ...]:
    """The trial's value (the accuracy), or its values in the order of ``objectives``, the
    costs read from the user attrs ``train`` stored."""
    if len(objectives) == 1:
        return accuracy
    attrs = trial.user_attrs
    return (accuracy, *(float(attrs[_COST_ATTRS[name]]) for name in objectives[1:]))


def _name_metrics(study: optuna.Study, objectives: Sequence[str]) -> None:
    # So that optuna-dashboard's plots say "valid accuracy", "params", not "Objective 0".
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(_metric_names(objectives))


def _no_pruning_message(objectives: Sequence[str], what: str, fix: str) -> str:
    return (
        f"{what} needs a single objective: Optuna has no trial.report or should_prune in a "
        f"multi-objective study (objectives={tuple(objectives)!r}), so nothing could be "
        f"pruned. {fix}"
    )


# ---- constraints known before training ---------------------------------------------------
def _feasible_architecture(
    space: SearchSpace, arch_constraints: ArchConstraints, rng: random.Random
) -> Architecture:
    """Rejection sampling: random architectures until one is feasible."""
    values: list[float] = []
    for _ in range(MAX_CONSTRAINT_ATTEMPTS):
        arch = space.sample(rng)
        values = arch_constraint_values(arch_constraints, space.to_params(arch))
        if feasible(values):
            return arch
    raise ValueError(
        f"arch_constraints ({callable_name(arch_constraints)}) rejected "
        f"{MAX_CONSTRAINT_ATTEMPTS:,} random architectures of the {space.name} space in a "
        f"row (the last gave {values}); the constraints look infeasible: loosen them so "
        "that some architectures give values <= 0 everywhere."
    )


class _FeasibleRandomSampler(optuna.samplers.RandomSampler):
    """Random search that proposes only architectures ``arch_constraints`` accepts.

    The space's params are proposed together (a relative sample): architectures are drawn
    uniformly with ``space.sample`` from a generator seeded by ``trial_seed(seed, number)``
    until one is feasible (at most :data:`MAX_CONSTRAINT_ATTEMPTS`). Other params are
    drawn independently, as by :class:`optuna.samplers.RandomSampler`.
    """

    def __init__(self, space: SearchSpace, arch_constraints: ArchConstraints, seed: int) -> None:
        super().__init__(seed=seed)
        self._space = space
        self._arch_constraints = arch_constraints
        self._base_seed = seed

    def infer_relative_search_space(
        self, study: optuna.Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        space = self._space
        return {space.param_name(d): space.distribution(d) for d in space.decisions}

    def sample_relative(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        search_space: dict[str, BaseDistribution],
    ) -> dict[str, Any]:
        if not search_space:
            return {}
        rng = random.Random(trial_seed(self._base_seed, trial.number))
        arch = _feasible_architecture(self._space, self._arch_constraints, rng)
        return dict(self._space.to_params(arch))


def random_search_asha(
    space: SearchSpace,
    data: ImageData,
    *,
    n_trials: int,
    max_epochs: int,
    asha: bool = True,
    min_resource: int = 1,
    reduction_factor: int = 4,
    seed: int = 0,
    storage: str | optuna.storages.BaseStorage | None = None,
    study_name: str | None = None,
    network_options: Mapping[str, Any] | None = None,
    lr: float = 0.025,
    batch_size: int = 64,
    device: str | torch.device | None = None,
    train_options: Mapping[str, Any] | None = None,
    show_progress_bar: bool = False,
    objectives: Sequence[str] = ("accuracy",),
    arch_constraints: ArchConstraints | None = None,
    zero_cost: str | None = None,
    zero_cost_percentile: float = 25.0,
    zero_cost_startup_trials: int = 5,
) -> optuna.Study:
    """Random search over a space, every architecture trained from scratch, pruned by ASHA.

    Li & Talwalkar's baseline (https://arxiv.org/abs/1902.07638). Each trial draws an
    architecture with ``space.suggest(trial)`` (Optuna's ``RandomSampler(seed=seed)``),
    builds it with ``space.build(arch, **network_options)`` after seeding its initialisation
    with :func:`trial_seed`, and trains it with :func:`~optuna_nas.training.train` for up to
    ``max_epochs`` epochs (the cosine schedule always spans ``max_epochs``, so a stopped
    trial has run the first epochs of the full run). ``train`` reports the validation
    accuracy after every epoch; with ``asha=True`` Optuna's
    ``SuccessiveHalvingPruner(min_resource=min_resource, reduction_factor=reduction_factor)``
    stops a trial at a rung unless it is in the top ``1 / reduction_factor`` of the trials
    that reached that rung. The resource is the epoch: ``train`` reports epoch ``e``
    (counted from 0) after ``e + 1`` epochs, and the pruner decides rung ``r`` at step
    ``min_resource * reduction_factor ** r``, so rung ``r`` is decided after
    ``min_resource * reduction_factor ** r + 1`` epochs (2, 5, 17, ... with the defaults).
    With ``asha=False`` the same search runs every trial for ``max_epochs`` epochs (Optuna's
    ``NopPruner``), so the two arms share all code, and with the same seed they draw the
    same architectures and train trial ``k`` identically.

    A trial's value is its validation accuracy after ``max_epochs`` epochs; a trial that
    ran them all also gets its test accuracy as the user attr ``test_accuracy`` (when
    ``data`` has a test split). Every trial records the epochs it trained as the user attr
    ``epochs`` (a diverged trial counts the epoch it diverged in), so
    :func:`total_epochs` sums the search's cost, and its seed as ``seed``. The study's user
    attrs record the seed and every setting of the search. A trial whose loss diverges is
    recorded as FAILED and the search goes on.

    In a multi-objective study: ``objectives=("accuracy", "params")`` (or with ``"flops"``,
    ``"latency"``) makes the study maximise the validation accuracy and minimise the costs
    that ``train`` stores on the trial, and each trial returns them in that order; the
    study's metric names say which is which and ``study.best_trials`` is the Pareto front.
    Optuna has no ``trial.report`` or ``should_prune`` there, so ASHA cannot run: such a
    search needs ``asha=False`` (every trial trains ``max_epochs`` epochs, keeping each
    epoch's accuracy in the user attr ``epoch_values``), and ``asha=True`` is refused with
    a ValueError saying so.

    Constraints known before training: ``arch_constraints(params)`` takes an architecture's
    params (the dict ``space.suggest`` writes into ``trial.params``) and returns a sequence
    of floats, feasible where all are <= 0. The search then draws architectures uniformly
    at random (from a generator seeded by :func:`trial_seed`) until one is feasible, so no
    infeasible architecture is ever trained, and proposes that one; each trial keeps its
    constraint values in the system attr ``constraints``, as Optuna's samplers store them
    (``trial.constraints``). After :data:`MAX_CONSTRAINT_ATTEMPTS` rejections in a row the
    constraints look infeasible and a ValueError says so.

    Pruning at initialisation: with ``zero_cost="synflow"`` (or another proxy of
    :func:`optuna_nas.zero_cost.list_proxies`) each trial scores its untrained network on
    one minibatch (the first ``batch_size`` training images) with
    :func:`optuna_nas.zero_cost.report`, and the study's pruner is a
    :class:`~optuna_nas.zero_cost.ZeroCostPruner` wrapping ASHA (or no pruner): once
    ``zero_cost_startup_trials`` trials completed, a trial whose score is below the
    ``zero_cost_percentile`` of the earlier trials' is pruned before its first epoch
    (``epochs`` = 0).

    Args:
        space: The search space.
        data: The splits: trained on ``data.train``, reported and selected on
            ``data.valid``, tested on ``data.test``.
        n_trials: Trials to run.
        max_epochs: Epochs of a trial that is never stopped (the maximum resource).
        asha: Whether ASHA prunes; ``False`` trains every trial for ``max_epochs``.
        min_resource: ASHA's minimum resource in epochs: the step of the first rung.
            Li & Talwalkar use about one epoch.
        reduction_factor: ASHA's reduction factor: a rung promotes the top
            ``1 / reduction_factor`` of its trials, and rung ``r + 1`` comes at
            ``reduction_factor`` times the step of rung ``r``. Li & Talwalkar use 4.
        seed: Seed of the sampler and, through :func:`trial_seed`, of every trial's
            initialisation and data order.
        storage: An Optuna storage or its URL; ``None`` keeps the study in memory.
        study_name: The new study's name; ``None`` lets Optuna pick one.
        network_options: Options of ``space.build`` (``channels``, ``layers``, ...);
            ``in_channels`` and ``num_classes`` default to the data's.
        lr: Initial learning rate of every trial.
        batch_size: Training batch size.
        device: Where to train; by default CUDA when available, else the CPU.
        train_options: Further keyword arguments of :func:`~optuna_nas.training.train`
            (``weight_decay``, ``cutout``, ...).
        show_progress_bar: Whether to show Optuna's progress bar.
        objectives: What the study optimises, ``"accuracy"`` first (maximised), then any
            of ``"params"``, ``"flops"`` and ``"latency"`` (minimised). More than one makes
            a multi-objective study, which needs ``asha=False``.
        arch_constraints: ``arch_constraints(params) -> sequence of floats``; only
            architectures whose values are all <= 0 are drawn. ``None``: every
            architecture.
        zero_cost: A zero-cost proxy that prunes trials before training, or ``None``.
        zero_cost_percentile: ``ZeroCostPruner``'s percentile.
        zero_cost_startup_trials: ``ZeroCostPruner``'s ``n_startup_trials``.

    Returns:
        The finished study. Its best trial (``study.best_trial``) is the best by
        validation accuracy among the trials that ran every epoch; with several
        objectives, ``study.best_trials`` is the Pareto front.

    Raises:
        ValueError: An argument is out of range, ``asha=True`` with several objectives,
            ``study_name`` already exists in ``storage``, ``arch_constraints`` returns
            something other than finite numbers, or no feasible architecture turns up in
            :data:`MAX_CONSTRAINT_ATTEMPTS` draws.
    """
    recipe = _Recipe(
        space=space,
        data=data,
        n_trials=n_trials,
        max_epochs=max_epochs,
        asha=asha,
        min_resource=min_resource,
        reduction_factor=reduction_factor,
        seed=seed,
        lr=lr,
        batch_size=batch_size,
        device=device,
        network_options={
            "in_channels": data.in_channels,
            "num_classes": data.num_classes,
            **(network_options or {}),
        },
        train_options=dict(train_options or {}),
        objectives=_check_objectives(objectives, "random_search_asha"),
        arch_constraints=arch_constraints,
        zero_cost=zero_cost,
        zero_cost_percentile=zero_cost_percentile,
        zero_cost_startup_trials=zero_cost_startup_trials,
    )
    study = recipe.create_study(storage, study_name)
    study.optimize(
        recipe.run_trial,
        n_trials=n_trials,
        catch=(NonFiniteLossError,),
        show_progress_bar=show_progress_bar,
    )
    return study


@dataclass(frozen=True)
class _Recipe:
    """The settings of one :func:`random_search_asha`, and its trial: sample, train until
    ASHA stops it or ``max_epochs``, test."""

    space: SearchSpace
    data: ImageData
    n_trials: int
    max_epochs: int
    asha: bool
    min_resource: int
    reduction_factor: int
    seed: int
    lr: float
    batch_size: int
    device: str | torch.device | None
    network_options: dict[str, Any]  # of space.build, the data's channels and classes in
    train_options: dict[str, Any]
    objectives: tuple[str, ...] = ("accuracy",)
    arch_constraints: ArchConstraints | None = None
    zero_cost: str | None = None
    zero_cost_percentile: float = 25.0
    zero_cost_startup_trials: int = 5

    def __post_init__(self) -> None:
        if self.zero_cost is not None and self.zero_cost not in list_proxies():
            raise ValueError(
                f"zero_cost must be a zero-cost proxy ({', '.join(list_proxies())}) or None, "
                f"got {self.zero_cost!r}."
            )
        _check_int("n_trials", self.n_trials, 1)
        _check_int("max_epochs", self.max_epochs, 1)
        _check_int("min_resource", self.min_resource, 1)
        _check_int("reduction_factor", self.reduction_factor, 2)
        _check_int("batch_size", self.batch_size, 1)
        seed, lr = self.seed, self.lr
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}.")
        if isinstance(lr, bool) or not isinstance(lr, int | float) or not (
            math.isfinite(lr) and lr > 0
        ):
            raise ValueError(f"lr must be a positive finite number, got {lr!r}.")
        if self.asha and len(self.objectives) > 1:
            raise ValueError(_no_pruning_message(
                self.objectives, "ASHA",
                "Pass asha=False to train every trial for max_epochs, or search "
                "objectives=('accuracy',) with ASHA.",
            ))
        check_arch_constraints(self.arch_constraints)
        if self.asha and self.min_resource >= self.max_epochs:
            raise ValueError(
                f"min_resource ({self.min_resource}) must be below max_epochs "
                f"({self.max_epochs}), or ASHA can never stop a trial; lower min_resource, "
                "raise max_epochs or pass asha=False."
            )
        reserved = sorted(set(self.train_options) & set(_RESERVED_TRAIN_OPTIONS))
        if reserved:
            raise ValueError(
                f"train_options may not set {reserved}: the recipe sets them; pass them as "
                "random_search_asha's own arguments instead."
            )

    def create_study(
        self, storage: str | optuna.storages.BaseStorage | None, study_name: str | None
    ) -> optuna.Study:
        """A new study with the random sampler and ASHA (or no pruner), its settings
        recorded as user attrs."""
        sampler: optuna.samplers.BaseSampler = (
            optuna.samplers.RandomSampler(seed=self.seed)
            if self.arch_constraints is None
            else _FeasibleRandomSampler(self.space, self.arch_constraints, self.seed)
        )
        pruner: optuna.pruners.BasePruner = (
            optuna.pruners.SuccessiveHalvingPruner(
                min_resource=self.min_resource, reduction_factor=self.reduction_factor
            )
            if self.asha
            else optuna.pruners.NopPruner()
        )
        if self.zero_cost is not None:
            pruner = ZeroCostPruner(percentile=self.zero_cost_percentile,
                                    n_startup_trials=self.zero_cost_startup_trials,
                                    wrapped=pruner)
        try:
            study = optuna.create_study(
                storage=storage,
                study_name=study_name,
                directions=_directions(self.objectives),
                sampler=sampler,
                pruner=pruner,
            )
        except optuna.exceptions.DuplicatedStudyError:
            raise ValueError(
                f"A study named {study_name!r} already exists in the storage; pass a new "
                "study_name or delete the old study."
            ) from None
        for key, value in self.settings().items():
            study.set_user_attr(key, value)
        _name_metrics(study, self.objectives)
        return study

    def settings(self) -> dict[str, Any]:
        """Every setting of the search, as the study's user attrs hold them (JSON)."""
        return {
            "recipe": "random_search_asha",
            "seed": self.seed,
            "sampler": "RandomSampler",
            "sampler_seed": self.seed,
            "pruner": ("ZeroCostPruner+" if self.zero_cost else "")
            + ("SuccessiveHalvingPruner" if self.asha else "NopPruner"),
            "zero_cost": self.zero_cost,
            "zero_cost_percentile": self.zero_cost_percentile,
            "zero_cost_startup_trials": self.zero_cost_startup_trials,
            "asha": self.asha,
            "n_trials": self.n_trials,
            "max_epochs": self.max_epochs,
            "min_resource": self.min_resource,
            "reduction_factor": self.reduction_factor,
            "lr": self.lr,
            "batch_size": self.batch_size,
            "space": repr(self.space),
            "data": self.data.name,
            "network_options": {k: _json_value(v) for k, v in self.network_options.items()},
            "train_options": {k: _json_value(v) for k, v in self.train_options.items()},
            "objectives": list(self.objectives),
            "arch_constraints": (
                None if self.arch_constraints is None else callable_name(self.arch_constraints)
            ),
        }

    def run_trial(self, trial: optuna.Trial) -> float | tuple[float, ...]:
        """One trial (the study's objective): its validation accuracy after
        ``max_epochs`` (and its costs, in a multi-objective search)."""
        arch, number_seed = self.sample(trial)
        model, accuracy = self.train(trial, arch, number_seed)
        if self.data.test is not None:
            trial.set_user_attr(
                "test_accuracy", evaluate(model, self.data.test, device=self.device)
            )
        return _objective_values(trial, accuracy, self.objectives)

    def sample(self, trial: optuna.Trial) -> tuple[Architecture, int]:
        """Draw an architecture at random (a feasible one, with constraints); record it,
        its constraint values and the trial's seed."""
        arch = self.space.suggest(trial)
        if self.arch_constraints is not None:
            record_constraints(trial, self.space, arch, self.arch_constraints)
        number_seed = trial_seed(self.seed, trial.number)
        trial.set_user_attr("seed", number_seed)
        trial.set_user_attr("architecture", str(arch))
        return arch, number_seed

    def train(
        self, trial: optuna.Trial, arch: Architecture, number_seed: int
    ) -> tuple[torch.nn.Module, float]:
        """Build the architecture and train it from scratch. ``train`` reports every epoch,
        and at each rung ASHA promotes the trial or stops it (:class:`optuna.TrialPruned`);
        the epochs it ran are recorded either way."""
        diverged = False
        options = dict(self.train_options)
        if len(self.objectives) > 1:
            options["costs"] = _costs_for(self.objectives, options.get("costs"))
        try:
            seed_everything(number_seed)
            model = self.space.build(arch, **self.network_options)
            if self.zero_cost is not None:
                batch = _first_images(self.data, self.batch_size)
                report(trial, model, batch, proxy=self.zero_cost, seed=number_seed)
                if trial.should_prune():  # Below the percentile: pruned before training.
                    raise optuna.TrialPruned(f"{self.zero_cost} score below the "
                                             f"{self.zero_cost_percentile:g}th percentile")
            accuracy = train(
                model,
                self.data,
                epochs=self.max_epochs,
                trial=trial,
                lr=self.lr,
                batch_size=self.batch_size,
                seed=number_seed,
                device=self.device,
                **options,
            )
        except NonFiniteLossError:
            diverged = True
            raise
        finally:
            trial.set_user_attr("epochs", _epochs_reported(trial) + int(diverged))
        return model, accuracy


def _first_images(data: ImageData, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    count = min(n, len(data.train))  # type: ignore[arg-type]
    pairs = [data.train[i] for i in range(count)]
    return torch.stack([p[0] for p in pairs]), torch.tensor([int(p[1]) for p in pairs])


def total_epochs(study: optuna.Study | Sequence[FrozenTrial]) -> int:
    """Epochs a search spent: the sum of its trials' ``epochs`` user attrs.

    Args:
        study: A study run by :func:`random_search_asha`, or its trials.
    """
    trials = study.get_trials(deepcopy=False) if isinstance(study, optuna.Study) else study
    return sum(int(t.user_attrs.get("epochs", 0)) for t in trials)
