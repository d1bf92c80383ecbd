"""Reporting an epoch's score to a trial, in single- and multi-objective studies alike."""

from __future__ import annotations

import optuna

EPOCH_VALUES_ATTR = "epoch_values"


def report_epoch(trial: optuna.Trial, value: float, epoch: int) -> bool:
    """Report ``value`` at ``epoch`` and return whether the study's pruner says to stop.

    Optuna has no intermediate values in a multi-objective study (``trial.report``
    raises there), so each epoch's value goes to the user attr ``epoch_values`` instead
    and the trial is never pruned.
    """
    if len(trial.study.directions) > 1:
        values = list(trial.user_attrs.get(EPOCH_VALUES_ATTR, []))
        values.append(float(value))
        trial.set_user_attr(EPOCH_VALUES_ATTR, values)
        return False
    trial.report(value, epoch)
    return trial.should_prune()
