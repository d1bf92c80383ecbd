"""ZeroCostPruner: pruning at initialisation from a zero-cost score, then the wrapped pruner."""

from __future__ import annotations

import optuna
import pytest
import torch
from optuna.trial import TrialState

from optuna_nas import zero_cost
from optuna_nas.spaces import NasBench201Space

SPACE = NasBench201Space()
INPUTS = torch.randn(8, 1, 8, 8, generator=torch.Generator().manual_seed(0))
TARGETS = torch.arange(8) % 10


def _objective(trial: optuna.Trial) -> float:
    arch = SPACE.suggest(trial)
    model = SPACE.build(arch, channels=4, cells_per_stage=1, in_channels=1, num_classes=10)
    value = zero_cost.report(trial, model, (INPUTS, TARGETS), proxy="params")
    assert trial.user_attrs["zero_cost_score"] == value
    if trial.should_prune():
        raise optuna.TrialPruned()
    for epoch in range(3):
        trial.report(float(epoch), epoch)
        if trial.should_prune():
            raise optuna.TrialPruned()
    return value


def test_prunes_at_initialisation_only_after_the_startup_trials() -> None:
    pruner = zero_cost.ZeroCostPruner(percentile=50.0, n_startup_trials=5)
    study = optuna.create_study(
        direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0), pruner=pruner
    )
    study.optimize(_objective, n_trials=30)
    trials = study.trials
    assert all(t.state == TrialState.COMPLETE for t in trials[:5])
    pruned = [t for t in trials if t.state == TrialState.PRUNED]
    assert len(pruned) >= 5
    for t in pruned:
        assert t.intermediate_values == {}  # pruned before its first epoch
        earlier = [u.user_attrs["zero_cost_score"] for u in trials if u.number != t.number
                   and u.number < t.number]
        assert t.user_attrs["zero_cost_score"] < sorted(earlier)[len(earlier) // 2] + 1e-9
    # The score is a user attr, never an intermediate value.
    assert all(set(t.intermediate_values) <= {0, 1, 2} for t in trials)


def test_delegates_to_the_wrapped_pruner_once_epochs_are_reported() -> None:
    class AlwaysAfterFirstEpoch(optuna.pruners.BasePruner):
        def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
            return True

    pruner = zero_cost.ZeroCostPruner(
        n_startup_trials=0, n_min_trials=100, wrapped=AlwaysAfterFirstEpoch()
    )
    study = optuna.create_study(direction="maximize", pruner=pruner)
    study.optimize(_objective, n_trials=4)
    # Too few scores to judge at initialisation; the wrapped pruner prunes at epoch 0.
    assert all(t.state == TrialState.PRUNED for t in study.trials)
    assert all(list(t.intermediate_values) == [0] for t in study.trials)


def test_bad_settings_and_a_second_report_get_clear_errors() -> None:
    with pytest.raises(ValueError, match="percentile"):
        zero_cost.ZeroCostPruner(percentile=120.0)
    with pytest.raises(ValueError, match="n_startup_trials"):
        zero_cost.ZeroCostPruner(n_startup_trials=-1)
    with pytest.raises(TypeError, match="Optuna pruner"):
        zero_cost.ZeroCostPruner(wrapped="asha")  # type: ignore[arg-type]
    study = optuna.create_study()
    trial = study.ask()
    model = SPACE.build(SPACE.sample(0), channels=4, cells_per_stage=1, in_channels=1)
    zero_cost.report(trial, model, (INPUTS, TARGETS), proxy="params")
    with pytest.raises(ValueError, match="once per trial"):
        zero_cost.report(trial, model, (INPUTS, TARGETS), proxy="params")
    with pytest.raises(ValueError, match="\\(inputs, targets\\)"):
        zero_cost.report(study.ask(), model, INPUTS)  # type: ignore[arg-type]
