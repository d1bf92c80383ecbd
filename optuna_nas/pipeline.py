"""Search, retrain, evaluate: the three-stage weight-sharing workflow of Li & Talwalkar.

1. :func:`search_stage`: a weight-sharing search (random search, or ENAS with a
   ControllerSampler) trains one :class:`~optuna_nas.supernet.Supernet` across the trials
   of a first study.
2. :func:`top_architectures` re-scores the architectures that study tried with the final
   shared weights on the whole validation split and keeps the best ``k``;
   :func:`retrain_stage` trains each from scratch in a second study, as enqueued trials.
3. :func:`evaluate_stage` trains the best of stage 2 with several seeds in a third study and
   reports the test accuracy as mean ± std.

:func:`run_pipeline` runs the three in order. Every stage records its seeds on its study
(study user attr ``seed``, trial user attr ``seed``), resumes a study that already has some
of its trials, and repeats exactly on the CPU with the same seeds.

In a multi-objective study: ``objectives=("accuracy", "params")`` (or with ``"flops"``)
makes every stage's study maximise the validation accuracy and minimise the costs, each
trial returning them in that order (stage 1: the path's costs in the supernet; stages 2
and 3: the costs ``train`` stores for the network built from scratch). Stage 2 keeps the
candidates by Pareto rank of the re-scored accuracy and the costs, and "the best" of
stage 2 is still its most accurate architecture, which is always on the Pareto front.
Optuna has no ``trial.report`` or ``should_prune`` in such a study, so stage 2 takes no
pruner there (a ValueError says so) and ``train`` keeps each epoch's accuracy in the user
attr ``epoch_values``. A study resumed by name must have the directions of the
``objectives`` asked for, or a ValueError says which it has.

Paper: Li & Talwalkar, "Random Search and Reproducibility for Neural Architecture
Search", UAI 2019, https://arxiv.org/abs/1902.07638.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.storages import BaseStorage
from optuna.trial import TrialState

from optuna_nas.asha import (
    ArchConstraints,
    _check_objectives,
    _costs_for,
    _directions,
    _FeasibleRandomSampler,
    _name_metrics,
    _no_pruning_message,
    _objective_values,
)
from optuna_nas.data import ImageData
from optuna_nas.errors import NonFiniteLossError
from optuna_nas.spaces._base import Architecture, SearchSpace
from optuna_nas.supernet import Supernet, WeightSharingObjective
from optuna_nas.supernet._checkpoint import CheckpointTarget
from optuna_nas.training import evaluate, seed_everything, train

__all__ = [
    "PipelineResult",
    "evaluate_stage",
    "retrain_stage",
    "run_pipeline",
    "search_stage",
    "top_architectures",
]

_FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


@dataclass(frozen=True)
class PipelineResult:
    """What the three stages found.

    Args:
        search: The weight-sharing study (stage 1).
        candidates: The top architectures and their shared-weight accuracies (stage 2's
            input), best first.
        retrain: The from-scratch study of the candidates (stage 2).
        best: The architecture with the best validation accuracy in stage 2.
        evaluation: The study of ``best`` trained with several seeds (stage 3).
        seeds: The seeds of stage 3.
        test_accuracies: Stage 3's test accuracies, one per seed (validation accuracies
            when the data has no test split).
    """

    search: optuna.Study
    candidates: list[tuple[Architecture, float]]
    retrain: optuna.Study
    best: Architecture
    evaluation: optuna.Study
    seeds: list[int]
    test_accuracies: list[float] = field(default_factory=list)

    @property
    def mean(self) -> float:
        """Mean stage-3 accuracy."""
        return statistics.fmean(self.test_accuracies)

    @property
    def std(self) -> float:
        """Population standard deviation of the stage-3 accuracies."""
        return statistics.pstdev(self.test_accuracies)


def _create(
    storage: str | BaseStorage | None,
    name: str | None,
    objectives: Sequence[str],
    *,
    sampler: optuna.samplers.BaseSampler | None = None,
    pruner: optuna.pruners.BasePruner | None = None,
) -> optuna.Study:
    # A new study to optimise the objectives, or the one of that name, if it optimises
    # them too; its metrics named for optuna-dashboard.
    want = _directions(objectives)
    study = optuna.create_study(
        storage=storage, study_name=name, directions=want, sampler=sampler, pruner=pruner,
        load_if_exists=True,
    )
    if list(study.directions) != want:
        have = [d.name.lower() for d in study.directions]
        raise ValueError(
            f"Study {study.study_name!r} exists with directions {have}, not "
            f"{[d.name.lower() for d in want]} (objectives={tuple(objectives)!r}); pass the "
            "objectives it was run with to resume it, or another study name."
        )
    _name_metrics(study, objectives)
    return study


def _study(storage: str | BaseStorage | None, name: str | None, seed: int,
           stage: str, sampler: optuna.samplers.BaseSampler | None = None,
           objectives: Sequence[str] = ("accuracy",)) -> optuna.Study:
    study = _create(storage, name, objectives, sampler=sampler)
    recorded = study.user_attrs.get("seed")
    if recorded is not None and recorded != seed:
        raise ValueError(
            f"Study {study.study_name!r} was run with seed {recorded}, not {seed}; use the "
            "same seed to resume it, or another study name."
        )
    study.set_user_attr("seed", seed)
    study.set_user_attr("stage", stage)
    return study


def _finished(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=_FINISHED))


def search_stage(
    space: SearchSpace,
    data: ImageData,
    *,
    n_trials: int,
    network_options: Mapping[str, Any] | None = None,
    steps_per_trial: int = 50,
    eval_batches: int | None = 4,
    sampler: optuna.samplers.BaseSampler | None = None,
    seed: int = 0,
    storage: str | BaseStorage | None = None,
    study_name: str | None = None,
    checkpoint: CheckpointTarget | None = None,
    checkpoint_every: int = 10,
    device: str | None = None,
    **objective_options: Any,
) -> tuple[optuna.Study, WeightSharingObjective]:
    """Stage 1: weight-sharing search over ``space``.

    The supernet is built after seeding with ``seed``; the default sampler is
    ``RandomSampler(seed=seed)`` (random search with weight sharing), a
    ``ControllerSampler(space, preset="enas")`` makes it ENAS. A study that already holds
    finished trials runs only the rest, from the supernet checkpoint if one is given.

    With ``arch_constraints`` among the objective options, the default sampler draws
    architectures at random until one is feasible (as :func:`~optuna_nas.random_search_asha`
    does), so no trial is spent on an infeasible one; another sampler's infeasible
    proposals are pruned before training. With ``objectives`` (e.g. ``("accuracy",
    "params")``) the study has one direction per objective (see the module's notes on
    multi-objective studies).

    Args:
        space: A space the :class:`~optuna_nas.supernet.Supernet` supports.
        data: The splits.
        n_trials: Finished trials the study should hold.
        network_options: The supernet's options (``channels``, ``in_channels``, ...).
        steps_per_trial: Minibatches trained per trial.
        eval_batches: Validation minibatches per trial's score (``None``: all).
        sampler: The architecture sampler; RandomSampler by default.
        seed: Seed of the supernet, the data order and the default sampler.
        storage: Optuna storage (URL or object); in memory by default.
        study_name: The study's name.
        checkpoint: Where the supernet is checkpointed (file or artifact store).
        checkpoint_every: Trials between checkpoints.
        device: Where to train.
        objective_options: More :class:`~optuna_nas.supernet.WeightSharingObjective`
            options (``lr``, ``batch_size``, ``objectives``, ``arch_constraints``, ...).

    Returns:
        The study and the objective, whose supernet holds the trained shared weights.
    """
    if n_trials < 1:
        raise ValueError(f"n_trials must be at least 1, got {n_trials}.")
    options = dict(network_options or {})
    options.setdefault("in_channels", data.in_channels)
    options.setdefault("num_classes", data.num_classes)
    seed_everything(seed)
    supernet = Supernet(space, **options)
    objective = WeightSharingObjective(
        supernet, data, steps_per_trial=steps_per_trial, eval_batches=eval_batches,
        total_trials=n_trials, checkpoint=checkpoint, checkpoint_every=checkpoint_every,
        seed=seed, device=device, **objective_options,
    )
    if sampler is None:
        constraints = objective.arch_constraints
        sampler = (
            optuna.samplers.RandomSampler(seed=seed)
            if constraints is None
            else _FeasibleRandomSampler(space, constraints, seed)
        )
    study = _study(storage, study_name, seed, "search", sampler, objective.objectives)
    objective.load(study)
    remaining = n_trials - _finished(study)
    if remaining > 0:
        study.optimize(objective, n_trials=remaining)
        if checkpoint is not None:
            objective.save(study)
    return study, objective


def top_architectures(
    objective: WeightSharingObjective, study: optuna.Study, k: int
) -> list[tuple[Architecture, float]]:
    """The ``k`` best distinct architectures of a weight-sharing study, re-scored.

    Every distinct architecture the study completed is scored again with the final shared
    weights on the whole validation split (trials early in a search were scored with
    younger weights), and the best ``k`` are returned with their scores, best first; ties
    keep the study's order. Architectures the objective's ``arch_constraints`` rejects are
    left out.

    In a multi-objective study the first value is taken to be the accuracy (re-scored) and
    the others are the trial's own (costs do not change with the weights): the
    architectures are ranked by Pareto front of those values, the non-dominated first,
    and within a front by re-scored accuracy.

    Args:
        objective: The search's objective (its supernet holds the shared weights).
        study: The weight-sharing study.
        k: How many to keep.
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}.")
    space = objective.space
    archs: dict[Architecture, tuple[float, ...]] = {}
    for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        arch = space.from_params(trial.params)
        if arch not in archs and objective.feasible(arch):
            archs[arch] = tuple(trial.values[1:])
    if not archs:
        raise ValueError(f"Study {study.study_name!r} has no complete trial to rank.")
    scored = [(arch, objective.score(arch, full=True)) for arch in archs]
    ranks = [0] * len(scored)
    if len(study.directions) > 1:
        points = [(score, *archs[arch]) for arch, score in scored]
        ranks = _pareto_ranks(points, study.directions)
    order = sorted(range(len(scored)), key=lambda i: (ranks[i], -scored[i][1], i))
    return [scored[i] for i in order[:k]]


def _pareto_ranks(
    points: Sequence[Sequence[float]], directions: Sequence[optuna.study.StudyDirection]
) -> list[int]:
    """Each point's front: 0 for the non-dominated, 1 for those only the first dominate..."""
    signs = [1.0 if d == optuna.study.StudyDirection.MINIMIZE else -1.0 for d in directions]
    costs = [[s * v for s, v in zip(signs, p, strict=True)] for p in points]

    def dominates(a: Sequence[float], b: Sequence[float]) -> bool:
        return all(x <= y for x, y in zip(a, b, strict=True)) and a != b

    ranks = [-1] * len(points)
    left = set(range(len(points)))
    front = 0
    while left:
        layer = {i for i in left if not any(dominates(costs[j], costs[i]) for j in left)}
        for i in layer:
            ranks[i] = front
        left -= layer
        front += 1
    return ranks


def _from_scratch(
    space: SearchSpace,
    data: ImageData,
    *,
    epochs: int,
    network_options: Mapping[str, Any],
    train_options: Mapping[str, Any],
    default_seed: int,
    objectives: Sequence[str] = ("accuracy",),
) -> Callable[[optuna.Trial], float | tuple[float, ...]]:
    options = dict(train_options)
    if len(objectives) > 1:
        options["costs"] = _costs_for(objectives, options.get("costs"))

    def objective(trial: optuna.Trial) -> float | tuple[float, ...]:
        arch = space.suggest(trial)
        seed = int(trial.user_attrs.get("seed", default_seed))
        trial.set_user_attr("seed", seed)
        seed_everything(seed)
        model = space.build(arch, **network_options)
        valid = train(model, data, epochs=epochs, trial=trial, seed=seed, **options)
        test_split = data.test if data.test is not None else data.valid
        trial.set_user_attr("test_accuracy", evaluate(model, test_split))
        trial.set_user_attr("architecture", arch.string)
        return _objective_values(trial, valid, objectives)

    return objective


def _run_enqueued(study: optuna.Study, wanted: Sequence[tuple[dict[str, Any], dict[str, Any]]],
                  objective: Callable[[optuna.Trial], float | tuple[float, ...]]) -> None:
    # Enqueue what the study does not hold yet (finished or waiting), so that a second run
    # resumes instead of training everything again.
    def key(params: Mapping[str, Any], attrs: Mapping[str, Any]) -> tuple[Any, ...]:
        return tuple(sorted(params.items())), attrs.get("seed")

    held = set()
    for t in study.get_trials(deepcopy=False, states=(*_FINISHED, TrialState.WAITING)):
        fixed = t.system_attrs.get("fixed_params") or t.params
        held.add(key(fixed, t.user_attrs))
    for params, attrs in wanted:
        if key(params, attrs) not in held:
            study.enqueue_trial(params, user_attrs=attrs)
    waiting = len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))
    if waiting:
        study.optimize(objective, n_trials=waiting, catch=(NonFiniteLossError,))


def retrain_stage(
    space: SearchSpace,
    data: ImageData,
    archs: Sequence[Architecture],
    *,
    epochs: int,
    network_options: Mapping[str, Any] | None = None,
    seed: int = 0,
    storage: str | BaseStorage | None = None,
    study_name: str | None = None,
    pruner: optuna.pruners.BasePruner | None = None,
    objectives: Sequence[str] = ("accuracy",),
    **train_options: Any,
) -> optuna.Study:
    """Stage 2: train each architecture from scratch, as enqueued trials of a new study.

    Each trial builds ``space.build(arch, **network_options)`` after seeding with ``seed``
    and trains it with :func:`optuna_nas.train` for ``epochs``, reporting every epoch (a
    ``pruner`` such as SuccessiveHalvingPruner can stop it); its value is the validation
    accuracy, and its user attrs hold ``seed``, ``test_accuracy`` and ``architecture``.
    With several ``objectives`` the trial returns the accuracy and the costs ``train``
    stored, nothing is reported (each epoch goes to the user attr ``epoch_values``), and a
    ``pruner`` other than :class:`optuna.pruners.NopPruner` is refused.

    Args:
        space: The architectures' space.
        data: The splits.
        archs: The architectures to retrain.
        epochs: Training epochs.
        network_options: Options of ``space.build``.
        seed: Seed of every trial's initialisation and data order.
        storage: Optuna storage; in memory by default.
        study_name: The study's name.
        pruner: The study's pruner (none by default); a single-objective study only.
        objectives: What the study optimises: ``"accuracy"`` first, then any of
            ``"params"``, ``"flops"`` and ``"latency"`` (minimised).
        train_options: More :func:`optuna_nas.train` options (``lr``, ``batch_size``, ...).

    Raises:
        ValueError: No architecture, a pruner with several objectives, or a study of that
            name with other directions.
    """
    if not archs:
        raise ValueError("retrain_stage needs at least one architecture.")
    objectives = _check_objectives(objectives, "retrain_stage")
    if len(objectives) > 1 and pruner is not None and not isinstance(
        pruner, optuna.pruners.NopPruner
    ):
        raise ValueError(_no_pruning_message(
            objectives, f"retrain_stage's pruner ({type(pruner).__name__})",
            "Drop pruner=, or retrain with objectives=('accuracy',).",
        ))
    options = dict(network_options or {})
    options.setdefault("in_channels", data.in_channels)
    options.setdefault("num_classes", data.num_classes)
    study = _create(storage, study_name, objectives,
                    pruner=pruner or optuna.pruners.NopPruner())
    study.set_user_attr("seed", seed)
    study.set_user_attr("stage", "retrain")
    objective = _from_scratch(space, data, epochs=epochs, network_options=options,
                              train_options=train_options, default_seed=seed,
                              objectives=objectives)
    _run_enqueued(study, [(space.to_params(a), {"seed": seed}) for a in archs], objective)
    return study


def evaluate_stage(
    space: SearchSpace,
    data: ImageData,
    arch: Architecture,
    *,
    seeds: Sequence[int],
    epochs: int,
    network_options: Mapping[str, Any] | None = None,
    storage: str | BaseStorage | None = None,
    study_name: str | None = None,
    objectives: Sequence[str] = ("accuracy",),
    **train_options: Any,
) -> tuple[optuna.Study, list[float]]:
    """Stage 3: train one architecture with several seeds; one trial per seed.

    With several ``objectives`` each trial returns the accuracy and the costs, and nothing
    is reported (each epoch goes to the user attr ``epoch_values``).

    Args:
        space: The architecture's space.
        data: The splits.
        arch: The architecture.
        seeds: One training run per seed (recorded as the trials' user attr ``seed``).
        epochs: Training epochs.
        network_options: Options of ``space.build``.
        storage: Optuna storage; in memory by default.
        study_name: The study's name.
        objectives: What the study optimises, as in :func:`retrain_stage`.
        train_options: More :func:`optuna_nas.train` options.

    Returns:
        The study and the test accuracies in the order of ``seeds`` (validation
        accuracies when the data has no test split).
    """
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct and not empty, got {list(seeds)}.")
    objectives = _check_objectives(objectives, "evaluate_stage")
    options = dict(network_options or {})
    options.setdefault("in_channels", data.in_channels)
    options.setdefault("num_classes", data.num_classes)
    study = _create(storage, study_name, objectives)
    study.set_user_attr("seeds", list(seeds))
    study.set_user_attr("stage", "evaluate")
    objective = _from_scratch(space, data, epochs=epochs, network_options=options,
                              train_options=train_options, default_seed=seeds[0],
                              objectives=objectives)
    params = space.to_params(arch)
    _run_enqueued(study, [(params, {"seed": s}) for s in seeds], objective)
    by_seed = {
        t.user_attrs["seed"]: float(t.user_attrs["test_accuracy"])
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if t.params == params
    }
    missing = [s for s in seeds if s not in by_seed]
    if missing:
        raise RuntimeError(f"The evaluation runs with seeds {missing} did not complete; "
                           "see the study's failed trials.")
    return study, [by_seed[s] for s in seeds]


def run_pipeline(
    space: SearchSpace,
    data: ImageData,
    *,
    search_trials: int,
    top_k: int = 10,
    retrain_epochs: int,
    evaluate_epochs: int,
    seeds: Sequence[int] = (0, 1, 2),
    seed: int = 0,
    supernet_options: Mapping[str, Any] | None = None,
    network_options: Mapping[str, Any] | None = None,
    steps_per_trial: int = 50,
    eval_batches: int | None = 4,
    sampler: optuna.samplers.BaseSampler | None = None,
    storage: str | BaseStorage | None = None,
    study_prefix: str = "pipeline",
    checkpoint: CheckpointTarget | None = None,
    search_options: Mapping[str, Any] | None = None,
    train_options: Mapping[str, Any] | None = None,
    objectives: Sequence[str] = ("accuracy",),
    arch_constraints: ArchConstraints | None = None,
) -> PipelineResult:
    """Run the three stages: weight-sharing search, retrain the top ``k``, evaluate the best.

    The studies are named ``{study_prefix}-search``, ``-retrain`` and ``-evaluate`` in
    ``storage``; running again with the same storage resumes them. With several
    ``objectives`` all three studies are multi-objective (see the module's notes); with
    ``arch_constraints`` stage 1 searches feasible architectures only, so every candidate
    is feasible.

    Args:
        space: A space the :class:`~optuna_nas.supernet.Supernet` supports.
        data: The splits.
        search_trials: Trials of the weight-sharing search.
        top_k: Architectures retrained from scratch (Li & Talwalkar: 10).
        retrain_epochs: Epochs of stage 2.
        evaluate_epochs: Epochs of stage 3.
        seeds: Seeds of stage 3.
        seed: Seed of stages 1 and 2.
        supernet_options: Options of the supernet (stage 1).
        network_options: Options of ``space.build`` (stages 2 and 3).
        steps_per_trial: Minibatches per search trial.
        eval_batches: Validation minibatches per search trial's score.
        sampler: Stage 1's sampler (RandomSampler by default; a ControllerSampler gives
            ENAS).
        storage: Optuna storage of the three studies; in memory by default.
        study_prefix: Prefix of the study names.
        checkpoint: Where stage 1 checkpoints its supernet.
        search_options: More :class:`~optuna_nas.supernet.WeightSharingObjective` options.
        train_options: More :func:`optuna_nas.train` options for stages 2 and 3.
        objectives: What every stage optimises: ``"accuracy"`` first, then any of
            ``"params"`` and ``"flops"`` (minimised).
        arch_constraints: ``arch_constraints(params) -> sequence of floats``, feasible
            where all <= 0: stage 1 searches only feasible architectures.
    """
    objectives = _check_objectives(objectives, "run_pipeline", ("accuracy", "params", "flops"))
    train_kwargs = dict(train_options or {})
    search_kwargs = dict(search_options or {})
    for key, value in (("objectives", objectives), ("arch_constraints", arch_constraints)):
        if key in search_kwargs:
            raise ValueError(
                f"Pass {key} to run_pipeline itself, not in search_options: it applies to "
                "every stage."
            )
        search_kwargs[key] = value
    search, objective = search_stage(
        space, data, n_trials=search_trials, network_options=supernet_options,
        steps_per_trial=steps_per_trial, eval_batches=eval_batches, sampler=sampler,
        seed=seed, storage=storage, study_name=f"{study_prefix}-search",
        checkpoint=checkpoint, **search_kwargs,
    )
    candidates = top_architectures(objective, search, top_k)
    retrain = retrain_stage(
        space, data, [a for a, _ in candidates], epochs=retrain_epochs,
        network_options=network_options, seed=seed, storage=storage,
        study_name=f"{study_prefix}-retrain", objectives=objectives, **train_kwargs,
    )
    complete = retrain.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        raise RuntimeError("No retraining run completed; see the retrain study's trials.")
    # The most accurate (the first value): on the Pareto front in a multi-objective study.
    best_trial = max(complete, key=lambda t: (t.values[0], -t.number))
    best = space.from_params(best_trial.params)
    evaluation, accuracies = evaluate_stage(
        space, data, best, seeds=seeds, epochs=evaluate_epochs,
        network_options=network_options, storage=storage,
        study_name=f"{study_prefix}-evaluate", objectives=objectives, **train_kwargs,
    )
    return PipelineResult(search, candidates, retrain, best, evaluation, list(seeds),
                          accuracies)
