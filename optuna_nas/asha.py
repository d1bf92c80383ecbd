"""Random search with asynchronous successive halving (ASHA), trained from scratch.

Li & Talwalkar's baseline ("Random Search and Reproducibility for Neural Architecture
Search", UAI 2019, https://arxiv.org/abs/1902.07638): architectures drawn uniformly at
random, each trained from scratch, with ASHA stopping the unpromising ones early. Optuna
supplies both halves: :class:`optuna.samplers.RandomSampler` and
:class:`optuna.pruners.SuccessiveHalvingPruner` (an asynchronous successive halving).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import optuna
import torch
from optuna.trial import FrozenTrial, TrialState

from optuna_nas.data import ImageData
from optuna_nas.errors import NonFiniteLossError
from optuna_nas.spaces import Architecture, SearchSpace
from optuna_nas.training import evaluate, seed_everything, train

__all__ = ["random_search_asha", "total_epochs", "trial_seed"]

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
    """Epochs the running ``trial`` has reported (its last step plus one)."""
    for running in trial.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if running.number == trial.number:
            return 0 if running.last_step is None else running.last_step + 1
    return 0


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

    Returns:
        The finished study. Its best trial (``study.best_trial``) is the best by
        validation accuracy among the trials that ran every epoch.

    Raises:
        ValueError: An argument is out of range, or ``study_name`` already exists in
            ``storage``.
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

    def __post_init__(self) -> None:
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
        pruner: optuna.pruners.BasePruner = (
            optuna.pruners.SuccessiveHalvingPruner(
                min_resource=self.min_resource, reduction_factor=self.reduction_factor
            )
            if self.asha
            else optuna.pruners.NopPruner()
        )
        try:
            study = optuna.create_study(
                storage=storage,
                study_name=study_name,
                direction="maximize",
                sampler=optuna.samplers.RandomSampler(seed=self.seed),
                pruner=pruner,
            )
        except optuna.exceptions.DuplicatedStudyError:
            raise ValueError(
                f"A study named {study_name!r} already exists in the storage; pass a new "
                "study_name or delete the old study."
            ) from None
        for key, value in self.settings().items():
            study.set_user_attr(key, value)
        return study

    def settings(self) -> dict[str, Any]:
        """Every setting of the search, as the study's user attrs hold them (JSON)."""
        return {
            "recipe": "random_search_asha",
            "seed": self.seed,
            "sampler": "RandomSampler",
            "sampler_seed": self.seed,
            "pruner": "SuccessiveHalvingPruner" if self.asha else "NopPruner",
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
        }

    def run_trial(self, trial: optuna.Trial) -> float:
        """One trial (the study's objective): its validation accuracy after
        ``max_epochs``."""
        arch, number_seed = self.sample(trial)
        model, accuracy = self.train(trial, arch, number_seed)
        if self.data.test is not None:
            trial.set_user_attr(
                "test_accuracy", evaluate(model, self.data.test, device=self.device)
            )
        return accuracy

    def sample(self, trial: optuna.Trial) -> tuple[Architecture, int]:
        """Draw an architecture at random; record it and the trial's seed."""
        arch = self.space.suggest(trial)
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
        try:
            seed_everything(number_seed)
            model = self.space.build(arch, **self.network_options)
            accuracy = train(
                model,
                self.data,
                epochs=self.max_epochs,
                trial=trial,
                lr=self.lr,
                batch_size=self.batch_size,
                seed=number_seed,
                device=self.device,
                **self.train_options,
            )
        except NonFiniteLossError:
            diverged = True
            raise
        finally:
            trial.set_user_attr("epochs", _epochs_reported(trial) + int(diverged))
        return model, accuracy


def total_epochs(study: optuna.Study | Sequence[FrozenTrial]) -> int:
    """Epochs a search spent: the sum of its trials' ``epochs`` user attrs.

    Args:
        study: A study run by :func:`random_search_asha`, or its trials.
    """
    trials = study.get_trials(deepcopy=False) if isinstance(study, optuna.Study) else study
    return sum(int(t.user_attrs.get("epochs", 0)) for t in trials)
