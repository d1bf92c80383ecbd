"""Random search with ASHA (``random_search_asha``) on tiny networks and a slice of digits."""

from __future__ import annotations

from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

import optuna_nas
from optuna_nas.asha import random_search_asha, total_epochs, trial_seed
from optuna_nas.data import ImageData
from optuna_nas.spaces import NasBench201Space
from tests.conftest import digits_slice

TINY = {"channels": 4, "cells_per_stage": 1}
MAX_EPOCHS = 3


@pytest.fixture(scope="module")
def data() -> ImageData:
    """A slice of the digits data, so a trial takes a fraction of a second."""
    return digits_slice(192, 96)


def search(data: ImageData, **kwargs: Any) -> optuna.Study:
    options: dict[str, Any] = {
        "n_trials": 6,
        "max_epochs": MAX_EPOCHS,
        "seed": 3,
        "network_options": TINY,
        "device": "cpu",
    }
    options.update(kwargs)
    return random_search_asha(NasBench201Space(), data, **options)


@pytest.fixture(scope="module")
def asha_study(data: ImageData) -> optuna.Study:
    return search(data)


@pytest.fixture(scope="module")
def full_study(data: ImageData) -> optuna.Study:
    return search(data, asha=False)


def _summary(study: optuna.Study) -> list[tuple[Any, ...]]:
    return [
        (t.number, t.state, t.params, t.value, dict(t.intermediate_values), t.user_attrs)
        for t in study.get_trials(deepcopy=False)
    ]


def test_is_exported() -> None:
    assert optuna_nas.random_search_asha is random_search_asha
    assert "random_search_asha" in optuna_nas.__all__


def test_asha_prunes_and_counts_the_epochs_each_trial_ran(asha_study: optuna.Study) -> None:
    trials = asha_study.get_trials(deepcopy=False)
    assert len(trials) == 6
    pruned = [t for t in trials if t.state == TrialState.PRUNED]
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert pruned and complete
    assert len(pruned) + len(complete) == 6
    for trial in pruned:
        # The first rung (min_resource=1) is decided at step 1, after two epochs.
        assert trial.last_step == 1
        assert trial.user_attrs["epochs"] == 2
        assert "test_accuracy" not in trial.user_attrs
    for trial in complete:
        assert trial.user_attrs["epochs"] == MAX_EPOCHS
        assert trial.last_step == MAX_EPOCHS - 1
        assert 0.0 <= trial.user_attrs["test_accuracy"] <= 1.0
        assert trial.value == trial.intermediate_values[MAX_EPOCHS - 1]
    assert total_epochs(asha_study) == 2 * len(pruned) + MAX_EPOCHS * len(complete)
    assert total_epochs(trials) == total_epochs(asha_study)
    assert asha_study.best_trial in complete


def test_full_budget_arm_runs_every_trial_to_the_end(
    asha_study: optuna.Study, full_study: optuna.Study
) -> None:
    trials = full_study.get_trials(deepcopy=False)
    assert all(t.state == TrialState.COMPLETE for t in trials)
    assert total_epochs(full_study) == 6 * MAX_EPOCHS
    assert total_epochs(asha_study) < total_epochs(full_study)
    # Same seed: the same architectures, trained identically up to where ASHA stopped them.
    for stopped, whole in zip(asha_study.get_trials(deepcopy=False), trials, strict=True):
        assert stopped.params == whole.params
        assert stopped.user_attrs["seed"] == whole.user_attrs["seed"] == trial_seed(
            3, whole.number
        )
        for step, value in stopped.intermediate_values.items():
            assert whole.intermediate_values[step] == value
        if stopped.state == TrialState.COMPLETE:
            assert stopped.value == whole.value
            assert stopped.user_attrs["test_accuracy"] == whole.user_attrs["test_accuracy"]


def test_settings_and_seed_are_recorded_on_the_study(
    asha_study: optuna.Study, full_study: optuna.Study
) -> None:
    attrs = asha_study.user_attrs
    assert attrs["seed"] == attrs["sampler_seed"] == 3
    assert attrs["sampler"] == "RandomSampler"
    assert attrs["pruner"] == "SuccessiveHalvingPruner"
    assert (attrs["min_resource"], attrs["reduction_factor"]) == (1, 4)
    assert (attrs["n_trials"], attrs["max_epochs"], attrs["asha"]) == (6, MAX_EPOCHS, True)
    assert attrs["network_options"] == {"in_channels": 1, "num_classes": 10, **TINY}
    assert full_study.user_attrs["pruner"] == "NopPruner"
    assert full_study.user_attrs["asha"] is False
    assert isinstance(asha_study.sampler, optuna.samplers.RandomSampler)
    assert isinstance(asha_study.pruner, optuna.pruners.SuccessiveHalvingPruner)


def test_same_seed_gives_the_same_search(data: ImageData, asha_study: optuna.Study) -> None:
    again = search(data)
    assert _summary(again) == _summary(asha_study)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_trials": 0}, "n_trials must be an integer of at least 1"),
        ({"max_epochs": 0}, "max_epochs must be an integer of at least 1"),
        ({"min_resource": 0}, "min_resource must be an integer of at least 1"),
        ({"reduction_factor": 1}, "reduction_factor must be an integer of at least 2"),
        ({"batch_size": 0}, "batch_size must be an integer of at least 1"),
        ({"n_trials": 2.5}, "n_trials must be an integer"),
        ({"seed": -1}, "seed must be a non-negative integer"),
        ({"lr": 0.0}, "lr must be a positive finite number"),
        ({"lr": float("nan")}, "lr must be a positive finite number"),
        ({"min_resource": 3}, r"min_resource \(3\) must be below max_epochs \(3\)"),
        ({"train_options": {"epochs": 9}}, r"train_options may not set \['epochs'\]"),
        ({"zero_cost": "bogus"}, "zero_cost must be a zero-cost proxy"),
    ],
)
def test_bad_arguments_raise_before_training(
    data: ImageData, kwargs: dict[str, Any], match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        search(data, **kwargs)


def test_min_resource_need_not_be_below_max_epochs_without_asha(data: ImageData) -> None:
    study = search(data, n_trials=1, max_epochs=1, min_resource=1, asha=False)
    assert total_epochs(study) == 1


def test_an_existing_study_name_is_refused(data: ImageData) -> None:
    storage = optuna.storages.InMemoryStorage()
    optuna.create_study(storage=storage, study_name="taken")
    with pytest.raises(ValueError, match="'taken' already exists"):
        search(data, storage=storage, study_name="taken")


def test_train_options_reach_the_training(data: ImageData) -> None:
    # A learning rate this large diverges: the trial fails, counts its epoch, and the
    # search goes on.
    study = search(data, n_trials=1, max_epochs=2, lr=1e6, train_options={"grad_clip": None})
    (trial,) = study.get_trials(deepcopy=False)
    assert trial.state == TrialState.FAIL
    assert trial.user_attrs["epochs"] >= 1
    assert study.user_attrs["train_options"] == {"grad_clip": None}


def test_zero_cost_pruner_stops_low_scores_before_the_first_epoch(
    data: ImageData, asha_study: optuna.Study
) -> None:
    study = search(data, n_trials=10, zero_cost="params", zero_cost_percentile=50.0,
                   zero_cost_startup_trials=3)
    assert isinstance(study.pruner, optuna_nas.zero_cost.ZeroCostPruner)
    assert isinstance(study.pruner.wrapped, optuna.pruners.SuccessiveHalvingPruner)
    assert study.user_attrs["pruner"] == "ZeroCostPruner+SuccessiveHalvingPruner"
    trials = study.get_trials(deepcopy=False)
    at_init = [t for t in trials if t.state == TrialState.PRUNED and t.user_attrs["epochs"] == 0]
    assert at_init, "some trial below the median parameter count is pruned at initialisation"
    for trial in at_init:
        assert not trial.intermediate_values
        earlier = [t.user_attrs["zero_cost_score"] for t in trials if t.number != trial.number]
        assert trial.user_attrs["zero_cost_score"] < sorted(earlier)[-1]
    # No trial is pruned at initialisation before three trials finished.
    assert all(t.number >= 3 for t in at_init)
    assert total_epochs(study) < total_epochs(
        search(data, n_trials=10, zero_cost=None)
    )
