"""Objectives that ``tests/worker/test_launch.py`` runs in ``optuna-nas worker`` processes.

The module is named on the worker's command line (``tests.worker._objectives:objective``)
and defines, next to the objectives, the ``space``, ``sampler`` and ``direction`` that the
worker picks up. Each trial records the pid of the process that ran it, so that a test can
kill the worker in the middle of a trial, and the trial numbers its worker's controller had
learned from, so that a test can check that no trial is learned twice or without a result.
"""

from __future__ import annotations

import os
import time

import optuna

from optuna_nas.samplers import ControllerSampler
from optuna_nas.spaces import NasBench201Space

space = NasBench201Space()
direction = "maximize"
OP_SCORES = {"none": 0, "skip_connect": 1, "avg_pool_3x3": 1, "nor_conv_1x1": 2, "nor_conv_3x3": 3}
SECONDS_ENV = "OPTUNA_NAS_TEST_TRIAL_SECONDS"

_samplers: list[ControllerSampler] = []


def sampler(seed: int | None) -> ControllerSampler:
    """This worker's controller, kept so that the objective can read what it learned."""
    made = ControllerSampler(space, seed=seed)
    _samplers.append(made)
    return made


def objective(trial: optuna.Trial) -> float:
    """Score the cell's ops, taking ``$OPTUNA_NAS_TEST_TRIAL_SECONDS`` (0.5 s) to do it."""
    arch = space.suggest(trial)
    trial.set_user_attr("pid", os.getpid())
    seconds = float(os.environ.get(SECONDS_ENV, "0.5"))
    for step in range(5):
        time.sleep(seconds / 5)
        trial.report(float(step), step)
    if _samplers:
        trial.set_user_attr("learned", [s.number for s in _samplers[-1]._samples])
    return float(sum(OP_SCORES[str(op)] for _, op in arch.values))


def slow_objective(trial: optuna.Trial) -> float:
    """A trial of a minute: long enough to be running when a test stops its worker."""
    space.suggest(trial)
    trial.set_user_attr("pid", os.getpid())
    for step in range(600):
        time.sleep(0.1)
        trial.report(float(step), step)
    return 1.0
