"""DARTS inside an Optuna trial: what a search leaves on its trial, and retraining it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import optuna

from optuna_nas.darts._result import DartsResult
from optuna_nas.dashboard import log_alpha_history, log_architecture
from optuna_nas.errors import ArchitectureError
from optuna_nas.spaces._base import Architecture, SearchSpace

if TYPE_CHECKING:
    from optuna.artifacts._protocol import ArtifactStore

__all__ = ["enqueue_retraining", "record_trial"]


def record_trial(
    trial: optuna.Trial, result: DartsResult, *, artifact_store: ArtifactStore | None = None
) -> None:
    """Leave a search's outcome on its trial, for the dashboard and for retraining.

    User attrs: ``arch`` (the derived architecture's string), ``arch_space`` (the space's
    name), ``darts_derived_accuracy``, ``darts_epochs`` and ``darts_derived_flops`` (when
    the result has it); with a cost term (``result.cost_weight > 0``) also
    ``darts_cost_weight`` and ``darts_expected_cost``. With an artifact store, two
    ``image/png`` artifacts: the derived cell (``architecture-trial-N.png``, as
    :func:`~optuna_nas.dashboard.log_architecture` draws it) and the op weights over the
    epochs (``alphas-trial-N.png``).

    Paper: Liu et al., "DARTS: Differentiable Architecture Search", ICLR 2019,
    https://arxiv.org/abs/1806.09055.

    Args:
        trial: The running trial of the search.
        result: The search's result (so far, for a pruned search).
        artifact_store: Where the pictures go, or ``None`` for none.
    """
    if artifact_store is None:
        # The attrs log_architecture sets with its picture.
        trial.set_user_attr("arch", str(result.architecture))
        trial.set_user_attr("arch_space", result.space.name)
    else:
        log_architecture(trial, result.space, result.architecture, artifact_store=artifact_store,
                         value=result.valid_accuracy)
        log_alpha_history(trial, result.alpha_history, result.edges, result.ops,
                          artifact_store=artifact_store)
    trial.set_user_attr("darts_derived_accuracy", result.derived_accuracy)
    trial.set_user_attr("darts_epochs", result.epochs)
    if result.derived_flops is not None:
        trial.set_user_attr("darts_derived_flops", result.derived_flops)
    if result.cost_weight > 0:
        trial.set_user_attr("darts_cost_weight", result.cost_weight)
        trial.set_user_attr("darts_expected_cost", result.expected_cost)


def enqueue_retraining(
    study: optuna.Study,
    source: DartsResult | optuna.trial.FrozenTrial | optuna.Trial,
    *,
    space: SearchSpace | None = None,
    params: Mapping[str, Any] | None = None,
    skip_if_exists: bool = False,
) -> Architecture:
    """Enqueue a DARTS-derived architecture as the next trial of a retraining study.

    The architecture's params (``space.to_params(arch)``) are enqueued, so the study's next
    trial gets exactly that architecture from ``space.suggest(trial)``, with any sampler.
    The trial's user attr ``darts_source`` says where it came from.

    Paper: Liu et al., "DARTS: Differentiable Architecture Search", ICLR 2019,
    https://arxiv.org/abs/1806.09055.

    Args:
        study: The retraining study.
        source: A :class:`DartsResult`, or a trial of a DARTS search (its ``arch`` user
            attr, as :func:`search` records it).
        space: The searched space; needed for a trial source (to read its ``arch``), and
            for a result it must be the result's space if given. The retraining objective
            must suggest from a space with the same prefix.
        params: Further params to fix in the enqueued trial, e.g. ``{"lr": 0.05}``.
        skip_if_exists: Skip when a trial with the same params is already in the study.

    Returns:
        The enqueued architecture.

    Raises:
        ArchitectureError: The trial has no derived architecture, or it is not of ``space``.
    """
    if isinstance(source, DartsResult):
        if space is not None and space is not source.space:
            space._check_space(source.architecture)
        space = space or source.space
        arch = source.architecture
        epochs = f"{source.epochs} epoch{'' if source.epochs == 1 else 's'}"
        origin: str = f"darts search ({source.order} order, {epochs})"
    elif isinstance(source, (optuna.trial.FrozenTrial, optuna.Trial)):
        if space is None:
            raise ArchitectureError(
                "enqueue_retraining(study, trial) needs the searched space to read the "
                "trial's architecture: pass space=..."
            )
        string = source.user_attrs.get("arch")
        if not isinstance(string, str):
            raise ArchitectureError(
                f"Trial {source.number} has no derived architecture (user attr 'arch'); was it "
                "run with optuna_nas.darts.search(..., trial=trial)?"
            )
        recorded = source.user_attrs.get("arch_space")
        if recorded is not None and recorded != space.name:
            raise ArchitectureError(
                f"Trial {source.number} searched the {recorded} space, not {space.name}; pass "
                "the space it searched."
            )
        arch = space.parse(string)
        origin = f"trial {source.number}"
    else:
        raise TypeError(
            f"source must be a DartsResult or a trial of a DARTS search, got "
            f"{type(source).__name__}."
        )
    fixed: dict[str, Any] = dict(space.to_params(arch))
    for name, value in (params or {}).items():
        if name in fixed:
            raise ValueError(
                f"params fixes {name!r}, an architecture param; give only other params."
            )
        fixed[name] = value
    study.enqueue_trial(fixed, user_attrs={"darts_source": origin},
                        skip_if_exists=skip_if_exists)
    return arch
