"""Every public entry point on a two-objective study, and constraints known before training.

In a multi-objective study Optuna has no ``trial.report`` or ``should_prune``: ``train``
keeps each epoch in the user attr ``epoch_values`` and never prunes, the recipes that own
their study take ``objectives=("accuracy", "params")``, ASHA and the worker's pruners say
why they cannot run there, and the dashboard pictures name every value. ``arch_constraints``
keeps infeasible architectures from training and stores the constraint values where
Optuna's samplers read them. Tiny shapes throughout: a slice of digits, 4 channels, one
cell per stage.
"""

from __future__ import annotations

import io
import math
import random
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.study import StudyDirection
from optuna.study._constrained_optimization import _CONSTRAINTS_KEY
from optuna.trial import TrialState

import optuna_nas
from optuna_nas import evaluate, random_search_asha, seed_everything, train
from optuna_nas.asha import CONSTRAINTS_ATTR, _FeasibleRandomSampler
from optuna_nas.dashboard import (
    _picture_title,
    describe_architecture,
    draw_architecture,
    log_architecture,
)
from optuna_nas.data import ImageData
from optuna_nas.errors import WorkerError
from optuna_nas.pipeline import retrain_stage, run_pipeline, search_stage
from optuna_nas.spaces import NasBench201Space
from optuna_nas.supernet import Supernet, WeightSharingObjective
from optuna_nas.worker import WorkerConfig, launch_workers, load_objective, run_worker
from optuna_nas.worker._launch import _create_or_load_study
from tests.conftest import digits_slice

TINY = {"channels": 4, "cells_per_stage": 1}
TWO = ["maximize", "minimize"]


@pytest.fixture(scope="module")
def data() -> ImageData:
    """A slice of the digits data, so a trial takes a fraction of a second."""
    return digits_slice(128, 64)


def few_nones(params: dict[str, Any]) -> list[float]:
    """Feasible where the cell has at most one ``none`` edge, and at most 3 convolutions."""
    values = list(params.values())
    return [sum(v == "none" for v in values) - 1.0,
            sum(str(v).startswith("nor_conv") for v in values) - 3.0]


def assert_two_values(study: optuna.Study, n: int) -> list[optuna.trial.FrozenTrial]:
    trials = study.get_trials(deepcopy=False)
    assert len(trials) == n
    for trial in trials:
        assert trial.state == TrialState.COMPLETE, trial
        assert len(trial.values) == 2 and all(math.isfinite(v) for v in trial.values)
        assert trial.intermediate_values == {}
    return trials


# ---- train and evaluate ------------------------------------------------------------------
def test_train_and_evaluate_keep_epoch_values_and_never_prune(data: ImageData) -> None:
    space = NasBench201Space()
    study = optuna.create_study(directions=TWO,
                                pruner=optuna.pruners.SuccessiveHalvingPruner())

    def objective(trial: optuna.Trial) -> tuple[float, float]:
        arch = space.suggest(trial)
        seed_everything(0)
        model = space.build(arch, in_channels=1, **TINY)
        accuracy = train(model, data, epochs=2, trial=trial, device="cpu")
        assert data.test is not None
        trial.set_user_attr("test", evaluate(model, data.test, device="cpu"))
        return accuracy, float(trial.user_attrs["params"])

    study.optimize(objective, n_trials=2)
    for trial in assert_two_values(study, 2):
        assert len(trial.user_attrs["epoch_values"]) == 2
        assert trial.values[0] == trial.user_attrs["epoch_values"][-1]
        assert 0.0 <= trial.user_attrs["test"] <= 1.0
    assert study.best_trials


# ---- random search with ASHA ---------------------------------------------------------------
def test_random_search_takes_objectives_and_refuses_asha_with_them(data: ImageData) -> None:
    study = random_search_asha(
        NasBench201Space(), data, n_trials=3, max_epochs=1, asha=False, seed=1,
        objectives=("accuracy", "params"), network_options=TINY, device="cpu",
    )
    assert study.directions == [StudyDirection.MAXIMIZE, StudyDirection.MINIMIZE]
    assert study.metric_names == ["valid accuracy", "params"]
    assert study.user_attrs["objectives"] == ["accuracy", "params"]
    for trial in assert_two_values(study, 3):
        assert trial.values[1] == trial.user_attrs["params"]
        assert trial.user_attrs["epochs"] == 1 == len(trial.user_attrs["epoch_values"])
        assert "test_accuracy" in trial.user_attrs
    assert optuna_nas.asha.total_epochs(study) == 3
    with pytest.raises(ValueError, match="ASHA needs a single objective.*asha=False"):
        random_search_asha(NasBench201Space(), data, n_trials=1, max_epochs=2,
                           objectives=("accuracy", "params"))
    with pytest.raises(ValueError, match="must start with 'accuracy'"):
        random_search_asha(NasBench201Space(), data, n_trials=1, max_epochs=2,
                           objectives=("params",))
    with pytest.raises(ValueError, match="unknown objectives"):
        random_search_asha(NasBench201Space(), data, n_trials=1, max_epochs=2, asha=False,
                           objectives=("accuracy", "size"))


# ---- weight sharing and the pipeline -------------------------------------------------------
def make_objective(data: ImageData, **options: Any) -> WeightSharingObjective:
    seed_everything(0)
    supernet = Supernet(NasBench201Space(), in_channels=1, **TINY)
    return WeightSharingObjective(supernet, data, steps_per_trial=2, eval_batches=1,
                                  batch_size=32, device="cpu", **options)


def test_weight_sharing_objective_returns_the_path_costs(data: ImageData) -> None:
    objective = make_objective(data, objectives=("accuracy", "params", "flops"))
    study = optuna.create_study(directions=["maximize", "minimize", "minimize"],
                                sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(objective, n_trials=3)
    for trial in study.trials:
        assert trial.state == TrialState.COMPLETE
        accuracy, params, flops = trial.values
        assert 0.0 <= accuracy <= 1.0 and params > 0 and flops > 0
        assert (trial.user_attrs["params"], trial.user_attrs["flops"]) == (params, flops)
    # The study's directions must fit the objectives: a clear error, not a failed trial.
    wrong = optuna.create_study(directions=["maximize", "maximize"])
    fix = r"create the study with directions=\['maximize', 'minimize'\]"
    with pytest.raises(ValueError, match=fix):
        wrong.optimize(make_objective(data, objectives=("accuracy", "params")), n_trials=1)
    with pytest.raises(ValueError, match="unknown objectives"):
        make_objective(data, objectives=("accuracy", "latency"))


def test_weight_sharing_objective_wrapped_in_a_two_objective_study(data: ImageData) -> None:
    objective = make_objective(data)
    study = optuna.create_study(directions=TWO)
    study.optimize(lambda t: (objective(t), float(len(t.params))), n_trials=2)
    assert_two_values(study, 2)


def test_pipeline_runs_its_three_stages_on_two_objectives(
    data: ImageData, tmp_path: Path
) -> None:
    storage = f"sqlite:///{tmp_path / 'pipeline.db'}"
    result = run_pipeline(
        NasBench201Space(), data, search_trials=6, steps_per_trial=2, top_k=2,
        retrain_epochs=1, evaluate_epochs=1, seeds=(0,), supernet_options=TINY,
        network_options=TINY, storage=storage, objectives=("accuracy", "params"),
        arch_constraints=few_nones, train_options={"device": "cpu"},
        search_options={"device": "cpu"},
    )
    for study in (result.search, result.retrain, result.evaluation):
        assert study.directions == [StudyDirection.MAXIMIZE, StudyDirection.MINIMIZE]
        assert study.metric_names == ["valid accuracy", "params"]
    assert_two_values(result.search, 6)
    assert_two_values(result.retrain, 2)
    assert_two_values(result.evaluation, 1)
    space = NasBench201Space()
    for trial in result.search.trials:  # the default sampler drew feasible ones only
        assert all(v <= 0 for v in trial.constraints.values())
        assert trial.constraints == dict(enumerate_values(few_nones(trial.params)))
    assert all(max(few_nones(space.to_params(a))) <= 0 for a, _ in result.candidates)
    best = max(result.retrain.trials, key=lambda t: t.values[0])
    assert result.best == space.from_params(best.params)
    assert len(result.test_accuracies) == 1
    # Resuming a study by name with other directions is refused, a pruner needs one
    # objective.
    with pytest.raises(ValueError, match="exists with directions"):
        retrain_stage(space, data, [result.best], epochs=1, storage=storage,
                      study_name="pipeline-retrain", network_options=TINY)
    with pytest.raises(ValueError, match="needs a single objective.*Drop pruner="):
        retrain_stage(space, data, [result.best], epochs=1, objectives=("accuracy", "params"),
                      pruner=optuna.pruners.MedianPruner())


def enumerate_values(values: Sequence[float]) -> list[tuple[str, float]]:
    return [(str(i), v) for i, v in enumerate(values)]


# ---- the worker ------------------------------------------------------------------------------
WORKER_MODULE = '''
import optuna
from optuna_nas.spaces import NasBench201Space

space = NasBench201Space()
directions = ["maximize", "minimize"]


def objective(trial):
    arch = space.suggest(trial)
    nones = sum(op == "none" for _, op in arch.values)
    return float(len(arch.values) - nones), float(nones)


def reporting(trial):
    space.suggest(trial)
    trial.report(1.0, 0)
    return 1.0, 1.0
'''


def test_worker_creates_and_runs_a_two_objective_study(tmp_path: Path) -> None:
    module = tmp_path / "mo_search.py"
    module.write_text(WORKER_MODULE)
    objective = load_objective(f"{module}:objective")
    assert objective.directions == ("maximize", "minimize")
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'worker.db'}")
    config = WorkerConfig(study_name="mo", objective=f"{module}:objective")
    study = _create_or_load_study(config, storage, objective)
    assert study.directions == [StudyDirection.MAXIMIZE, StudyDirection.MINIMIZE]
    out = io.StringIO()
    report = run_worker(study, objective, n_trials=4, handle_signals=False, out=out)
    assert report.complete == 4 and report.ok
    assert_two_values(study, 4)
    assert "on the Pareto front" in out.getvalue()
    # The command line's directions win; a study that exists keeps its own.
    with pytest.raises(WorkerError, match=r"exists and is to \['maximize', 'minimize'\]"):
        _create_or_load_study(
            WorkerConfig(study_name="mo", objective="m:f", direction="maximize"), storage,
            objective,
        )
    # trial.report fails the trial, with a sentence saying why.
    reporting = load_objective(f"{module}:reporting")
    out = io.StringIO()
    run_worker(study, reporting, n_trials=5, handle_signals=False, max_failures=1, out=out)
    assert "no trial.report or should_prune" in out.getvalue()


def test_worker_refuses_a_pruner_and_bad_directions(tmp_path: Path) -> None:
    module = tmp_path / "mo_search2.py"
    module.write_text(WORKER_MODULE)
    url = f"sqlite:///{tmp_path / 'launch.db'}"
    config = WorkerConfig(study_name="mo", objective=f"{module}:objective", pruner="asha",
                          n_trials=1, heartbeat_interval=None)
    with pytest.raises(WorkerError, match="prunes single-objective studies only.*--pruner"):
        launch_workers(config, "cpu", storage_url=url, out=io.StringIO())
    for bad in (dict(directions=["up"]), dict(directions=[]),
                dict(directions=TWO, direction="maximize")):
        with pytest.raises(WorkerError, match="direction"):
            WorkerConfig(study_name="s", objective="m:f", **bad).check()  # type: ignore[arg-type]
    (tmp_path / "both.py").write_text(
        "direction = 'maximize'\ndirections = ['maximize']\ndef f(t):\n    return 1.0\n")
    with pytest.raises(WorkerError, match="both direction and directions"):
        load_objective(f"{tmp_path / 'both.py'}:f")


# ---- the dashboard pictures ------------------------------------------------------------------
def test_dashboard_pictures_name_every_value(tmp_path: Path) -> None:
    import optuna_dashboard._note

    space = NasBench201Space()
    store = optuna.artifacts.FileSystemArtifactStore(str(tmp_path))
    study = optuna.create_study(directions=TWO)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(["valid accuracy", "params"])

    def objective(trial: optuna.Trial) -> tuple[float, float]:
        arch = space.suggest(trial)
        log_architecture(trial, space, arch, artifact_store=store, value=(0.5, 1234.0))
        return 0.5, 1234.0

    study.optimize(objective, n_trials=1)
    (trial,) = assert_two_values(study, 1)
    arch = space.from_params(trial.params)
    assert trial.user_attrs["arch"] == str(arch)
    note = optuna_dashboard._note.get_note_from_system_attrs(
        study._storage.get_study_system_attrs(study._study_id), trial._trial_id)
    assert note["body"] == describe_architecture(space, arch)
    (artifact,) = optuna.artifacts.get_all_artifact_meta(trial, storage=study._storage)
    assert (tmp_path / artifact.artifact_id).read_bytes() == draw_architecture(
        space, arch, title="trial 0 · valid accuracy 0.5 · params 1234")
    assert _picture_title(2, (0.9, 10.0), None) == "trial 2 · value 0 0.9 · value 1 10"
    assert _picture_title(2, (0.9, float("nan")), ["acc", "p"]) == "trial 2 · acc 0.9"


# ---- constraints known before training -------------------------------------------------------
def test_random_search_never_proposes_an_infeasible_architecture() -> None:
    space = NasBench201Space()
    drawn = [space.sample(random.Random(k)) for k in range(300)]
    assert any(max(few_nones(space.to_params(a))) > 0 for a in drawn)  # the constraint bites
    study = optuna.create_study(sampler=_FeasibleRandomSampler(space, few_nones, seed=0))
    study.optimize(lambda t: float(len(space.suggest(t).values)), n_trials=300)
    archs = {space.from_params(t.params) for t in study.trials}
    assert len(archs) > 100
    assert all(max(few_nones(space.to_params(a))) <= 0 for a in archs)


def test_random_search_asha_stores_constraints_as_optuna_samplers_read_them(
    data: ImageData,
) -> None:
    assert CONSTRAINTS_ATTR == _CONSTRAINTS_KEY
    study = random_search_asha(NasBench201Space(), data, n_trials=4, max_epochs=2,
                               min_resource=1, seed=2, network_options=TINY, device="cpu",
                               arch_constraints=few_nones)
    assert study.user_attrs["arch_constraints"] == "few_nones"
    for trial in study.trials:
        expected = few_nones(trial.params)
        assert trial.system_attrs[CONSTRAINTS_ATTR] == expected
        assert trial.constraints == dict(enumerate_values(expected))
        assert max(expected) <= 0
    # An NSGA-II study with constraints_func computing the same values agrees with them.
    space = NasBench201Space()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        sampler = optuna.samplers.NSGAIISampler(
            seed=0, constraints_func=lambda t: few_nones(t.params))
    nsga = optuna.create_study(directions=TWO, sampler=sampler)
    objective = make_objective(data, objectives=("accuracy", "params"),
                               arch_constraints=few_nones)
    nsga.enqueue_trial(space.to_params(space.parse(
        "|nor_conv_1x1~0|+|skip_connect~0|avg_pool_3x3~1|+|none~0|skip_connect~1|"
        "avg_pool_3x3~2|")))
    nsga.optimize(objective, n_trials=1)
    (trial,) = nsga.trials
    assert trial.state == TrialState.COMPLETE
    assert trial.constraints == dict(enumerate_values(few_nones(trial.params)))


def test_weight_sharing_prunes_an_infeasible_architecture_before_training(
    data: ImageData,
) -> None:
    space = NasBench201Space()
    objective = make_objective(data, arch_constraints=few_nones)
    study = optuna.create_study(direction="maximize")
    infeasible = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"
    feasible = "|nor_conv_3x3~0|+|skip_connect~0|none~1|+|avg_pool_3x3~0|skip_connect~1|" \
        "avg_pool_3x3~2|"
    for string in (infeasible, feasible):
        study.enqueue_trial(space.to_params(space.parse(string)))
    study.optimize(objective, n_trials=2)
    pruned, complete = study.trials
    assert pruned.state == TrialState.PRUNED
    assert "violates arch_constraints" in pruned.user_attrs["pruned_reason"]
    assert "supernet_step" not in pruned.user_attrs
    assert pruned.constraints == {"0": 5.0, "1": -3.0}
    assert complete.state == TrialState.COMPLETE and complete.user_attrs["supernet_step"] == 0
    assert objective.step == 2 and objective.trials == 1
    assert not objective.feasible(space.parse(infeasible))
    # search_stage's default sampler draws feasible architectures only.
    searched, _ = search_stage(space, data, n_trials=5, steps_per_trial=1, eval_batches=1,
                               network_options=TINY, device="cpu", batch_size=32,
                               arch_constraints=few_nones)
    assert all(t.state == TrialState.COMPLETE for t in searched.trials)
    assert all(max(t.constraints.values()) <= 0 for t in searched.trials)


@pytest.mark.parametrize(
    ("output", "match"),
    [
        ("0.5", "returned a str"),
        (0.5, "returned a float"),
        ({"a": 1.0}, "returned a dict"),
        ([], "returned no values"),
        ([float("nan")], "not finite"),
        ([math.inf, 0.0], "not finite"),
        (["big"], "is a str, not a number"),
        ([True], "is a bool, not a number"),
        (None, "returned a NoneType"),
    ],
)
def test_bad_constraint_output_names_the_callable_and_the_fix(
    data: ImageData, output: object, match: str
) -> None:
    def limits(params: dict[str, Any]) -> Any:
        return output

    with pytest.raises(ValueError, match=match) as caught:
        random_search_asha(NasBench201Space(), data, n_trials=1, max_epochs=2,
                           network_options=TINY, device="cpu", arch_constraints=limits)
    assert "arch_constraints (" in str(caught.value)
    assert "limits" in str(caught.value) and "<= 0" in str(caught.value)


def test_infeasible_constraints_and_non_callables_are_refused(data: ImageData) -> None:
    with pytest.raises(ValueError, match="rejected 10,000 random architectures.*infeasible"):
        random_search_asha(NasBench201Space(), data, n_trials=1, max_epochs=2,
                           network_options=TINY, arch_constraints=lambda p: [1.0])
    with pytest.raises(ValueError, match="arch_constraints must be a function"):
        random_search_asha(NasBench201Space(), data, n_trials=1, max_epochs=2,
                           arch_constraints=[0.0])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="arch_constraints must be a function"):
        make_objective(data, arch_constraints="small")


def test_the_worker_command_line_takes_directions(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from optuna_nas import cli

    (tmp_path / "nodir_mo.py").write_text(
        "from optuna_nas.spaces import NasBench201Space\n"
        "space = NasBench201Space()\n"
        "def objective(trial):\n"
        "    arch = space.suggest(trial)\n"
        "    nones = sum(op == 'none' for _, op in arch.values)\n"
        "    return float(len(arch.values) - nones), float(nones)\n"
    )
    url = f"sqlite:///{tmp_path / 'cli_mo.db'}"
    args = ["worker", "--storage", url, "--study-name", "mo", "--objective",
            f"{tmp_path / 'nodir_mo.py'}:objective", "--trials", "12", "--no-heartbeat",
            "--sampler", "controller", "--seed", "0"]
    with pytest.raises(SystemExit):
        cli.main([*args, "--directions", "maximize,upward"])
    assert "expected comma-separated maximize/minimize" in capsys.readouterr().err
    assert cli.main([*args, "--directions", "maximize,minimize"]) == 0
    study = optuna.load_study(study_name="mo", storage=url)
    assert study.directions == [StudyDirection.MAXIMIZE, StudyDirection.MINIMIZE]
    assert_two_values(study, 12)
