from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import optuna
import torch
from optuna.pruners import BasePruner
from optuna.study import Study
from optuna.trial import FrozenTrial, TrialState
from torch import nn

from optuna_nas.zero_cost._proxies import score

#: The trial user attrs that hold a trial's zero-cost score and the proxy that gave it.
SCORE_ATTR = "zero_cost_score"
PROXY_ATTR = "zero_cost_proxy"


def report(
    trial: optuna.Trial,
    model: nn.Module,
    batch: Sequence[torch.Tensor],
    *,
    proxy: str = "synflow",
    seed: int = 0,
) -> float:
    """Score a trial's untrained network and keep the score on the trial.

    Call it once, before training, then ``trial.should_prune()``: a
    :class:`ZeroCostPruner` prunes the trial there when its score is low. The score is kept
    as the user attrs ``zero_cost_score`` and ``zero_cost_proxy``, not as an intermediate
    value, so that it never mixes with the learning curve.

    Args:
        trial: The running trial.
        model: The trial's network, untrained; it is left as it was.
        batch: ``(inputs, targets)``: one minibatch.
        proxy: A name from :func:`~optuna_nas.zero_cost.list_proxies`.
        seed: The proxy's seed.

    Returns:
        The score (higher is better).

    Raises:
        ValueError: ``batch`` is not a pair, or the trial already has a score.
    """
    if not isinstance(batch, Sequence) or len(batch) != 2:
        raise ValueError(
            "batch must be one minibatch as (inputs, targets), e.g. next(iter(loader))."
        )
    if SCORE_ATTR in trial.user_attrs:
        raise ValueError(
            f"Trial {trial.number} already has a zero-cost score; call "
            "zero_cost.report once per trial, before training."
        )
    value = score(model, batch[0], batch[1], proxy=proxy, seed=seed)
    trial.set_user_attr(SCORE_ATTR, value)
    trial.set_user_attr(PROXY_ATTR, proxy)
    return value


class ZeroCostPruner(BasePruner):
    """Prune a trial at initialisation when its zero-cost score is low, then delegate.

    The objective calls :func:`report` once, before training, and then
    ``trial.should_prune()``. At that call (the trial has reported no epoch yet) the trial
    is pruned when its score is below the ``percentile`` of the scores, by the same proxy,
    of the study's other trials. From the first ``trial.report`` on, every decision is the
    ``wrapped`` pruner's, so that pruning at initialisation and ASHA combine in one study.

    Paper: Abdelfattah et al., "Zero-Cost Proxies for Lightweight NAS", ICLR 2021,
    https://arxiv.org/abs/2101.08134.

    Args:
        percentile: Prune below this percentile of the earlier scores, in [0, 100].
        n_startup_trials: Prune nothing at initialisation until this many trials have
            finished (COMPLETE or PRUNED).
        n_min_trials: Prune nothing until this many other trials have a score.
        wrapped: The pruner that decides once the trial reports epochs; none prunes there
            if not given.
    """

    def __init__(
        self,
        *,
        percentile: float = 25.0,
        n_startup_trials: int = 5,
        n_min_trials: int = 1,
        wrapped: BasePruner | None = None,
    ) -> None:
        if not (isinstance(percentile, int | float) and 0.0 <= percentile <= 100.0):
            raise ValueError(f"percentile must be in [0, 100], got {percentile!r}.")
        for name, value in (("n_startup_trials", n_startup_trials),
                            ("n_min_trials", n_min_trials)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be an integer >= 0, got {value!r}.")
        if wrapped is not None and not isinstance(wrapped, BasePruner):
            raise TypeError(f"wrapped must be an Optuna pruner, got {wrapped!r}.")
        self.percentile = float(percentile)
        self.n_startup_trials = n_startup_trials
        self.n_min_trials = n_min_trials
        self.wrapped = wrapped

    def prune(self, study: Study, trial: FrozenTrial) -> bool:
        if trial.last_step is not None:
            return self.wrapped.prune(study, trial) if self.wrapped is not None else False
        value = trial.user_attrs.get(SCORE_ATTR)
        if not isinstance(value, int | float) or not math.isfinite(value):
            return False  # no zero-cost score reported: nothing to judge at initialisation
        proxy = trial.user_attrs.get(PROXY_ATTR)
        trials = study._get_trials(deepcopy=False, use_cache=True)
        # Finished trials, pruned ones included: behind ASHA most trials end pruned, and
        # the scores of the startup trials are what the percentile needs.
        finished = sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
        if finished < self.n_startup_trials:
            return False
        earlier = [
            float(t.user_attrs[SCORE_ATTR])
            for t in trials
            if t.number != trial.number
            and t.user_attrs.get(PROXY_ATTR) == proxy
            and isinstance(t.user_attrs.get(SCORE_ATTR), int | float)
        ]
        if len(earlier) < max(1, self.n_min_trials):
            return False
        return bool(value < np.percentile(earlier, self.percentile))
