"""DARTS as an Optuna trial: a report per epoch, a pruner stops it, the derived architecture
is kept as a user attr with its pictures as artifacts, and one call enqueues it into a
retraining study whose space.suggest returns it."""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

import optuna
import pytest
import torch
from optuna.trial import TrialState
from PIL import Image
from torch.utils.data import TensorDataset

from optuna_nas.darts import DartsResult, enqueue_retraining, search
from optuna_nas.dashboard import draw_alpha_history, draw_architecture
from optuna_nas.data import ImageData
from optuna_nas.errors import ArchitectureError, NonFiniteLossError
from optuna_nas.spaces import DartsCells, NasBench201Space

from .test_search import TINY_NB201, random_data

SPACE = NasBench201Space()
OPTIONS: dict[str, Any] = {"batch_size": 8, **TINY_NB201}


def run(study: optuna.Study, store: Any = None, epochs: int = 3) -> list[DartsResult]:
    results: list[DartsResult] = []

    def objective(trial: optuna.Trial) -> float:
        results.append(search(SPACE, random_data(), trial=trial, epochs=epochs,
                              artifact_store=store, seed=trial.number, **OPTIONS))
        return results[-1].valid_accuracy

    study.optimize(objective, n_trials=1, catch=(NonFiniteLossError,))
    return results


def test_reports_every_epoch_and_records_the_derived_architecture(tmp_path: Path) -> None:
    store = optuna.artifacts.FileSystemArtifactStore(str(tmp_path))
    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.NopPruner())
    (result,) = run(study, store)
    trial = study.trials[0]
    assert trial.state == TrialState.COMPLETE
    assert trial.intermediate_values == dict(enumerate(result.accuracy_history))
    assert trial.value == result.valid_accuracy
    assert trial.user_attrs == {
        "arch": str(result.architecture),
        "arch_space": "nasbench201",
        "darts_derived_accuracy": result.derived_accuracy,
        "darts_epochs": 3,
        "darts_derived_flops": result.derived_flops,
    }
    assert SPACE.parse(trial.user_attrs["arch"]) == result.architecture
    metas = optuna.artifacts.get_all_artifact_meta(trial, storage=study._storage)
    assert [(m.filename, m.mimetype) for m in metas] == [
        ("architecture-trial-0.png", "image/png"), ("alphas-trial-0.png", "image/png")]
    cell, alphas = ((tmp_path / m.artifact_id).read_bytes() for m in metas)
    # Titled with the trial's number and value; the study names no metric.
    title = f"trial 0 · value {result.valid_accuracy:.4g}"
    assert cell == draw_architecture(SPACE, result.architecture, title=title)
    assert alphas == draw_alpha_history(result.alpha_history, result.edges, result.ops)
    width, height = Image.open(io.BytesIO(alphas)).size
    assert 400 <= width <= 1200 and 150 <= height <= 900


def test_a_pruner_stops_the_search_and_the_trial_keeps_its_cell(tmp_path: Path) -> None:
    store = optuna.artifacts.FileSystemArtifactStore(str(tmp_path))
    # Every accuracy is below 2, so the first report prunes.
    study = optuna.create_study(direction="maximize",
                                pruner=optuna.pruners.ThresholdPruner(upper=2.0, lower=1.5))
    assert run(study, store, epochs=5) == []
    trial = study.trials[0]
    assert trial.state == TrialState.PRUNED
    assert list(trial.intermediate_values) == [0]  # stopped after its first epoch
    assert trial.user_attrs["darts_epochs"] == 1
    SPACE.parse(trial.user_attrs["arch"])
    metas = optuna.artifacts.get_all_artifact_meta(trial, storage=study._storage)
    assert len(metas) == 2


def test_without_an_artifact_store_only_the_attrs_are_recorded() -> None:
    study = optuna.create_study(direction="maximize")
    (result,) = run(study, epochs=1)
    trial = study.trials[0]
    assert trial.user_attrs["arch"] == result.genotype
    assert optuna.artifacts.get_all_artifact_meta(trial, storage=study._storage) == []


def test_a_diverged_search_fails_its_trial_with_the_reason() -> None:
    data = random_data()
    images, labels = data.train.tensors  # type: ignore[attr-defined]
    poisoned = ImageData(TensorDataset(images * math.inf, labels), data.valid, None, 3, 1, 8)
    study = optuna.create_study(direction="maximize")
    study.optimize(lambda t: search(SPACE, poisoned, trial=t, epochs=1, **OPTIONS)
                   .valid_accuracy, n_trials=1, catch=(NonFiniteLossError,))
    trial = study.trials[0]
    assert trial.state == TrialState.FAIL
    assert "non-finite" in trial.user_attrs["fail_reason"]


# ---- retraining ------------------------------------------------------------------------
def retrained_architectures(study: optuna.Study, n: int) -> list[Any]:
    seen = []

    def objective(trial: optuna.Trial) -> float:
        lr = trial.suggest_float("lr", 0.01, 0.1)
        seen.append((SPACE.suggest(trial), lr, trial.user_attrs.get("darts_source")))
        return 0.0

    study.optimize(objective, n_trials=n)
    return seen


def test_enqueue_retraining_from_a_trial_and_from_a_result() -> None:
    study = optuna.create_study(direction="maximize")
    (result,) = run(study, epochs=1)
    retrain = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    assert enqueue_retraining(retrain, study.trials[0], space=SPACE) == result.architecture
    assert enqueue_retraining(retrain, result, params={"lr": 0.05}) == result.architecture
    (first, _, source), second = retrained_architectures(retrain, 2)
    assert (first, source) == (result.architecture, "trial 0")
    assert second == (result.architecture, 0.05, "darts search (first order, 1 epoch)")
    # skip_if_exists: a second enqueue of the same architecture adds nothing.
    enqueue_retraining(retrain, study.trials[0], space=SPACE, skip_if_exists=True)
    assert not retrain.get_trials(states=(TrialState.WAITING,))


def test_enqueue_retraining_explains_what_is_missing() -> None:
    study = optuna.create_study(direction="maximize")
    (result,) = run(study, epochs=1)
    frozen = study.trials[0]
    retrain = optuna.create_study()
    with pytest.raises(ArchitectureError, match="pass space="):
        enqueue_retraining(retrain, frozen)
    with pytest.raises(ArchitectureError, match="searched the nasbench201 space, not darts"):
        enqueue_retraining(retrain, frozen, space=DartsCells())
    plain = optuna.create_study()
    plain.optimize(lambda t: 0.0, n_trials=1)
    with pytest.raises(ArchitectureError, match="no derived architecture"):
        enqueue_retraining(retrain, plain.trials[0], space=SPACE)
    with pytest.raises(ValueError, match="an architecture param"):
        enqueue_retraining(retrain, result, params={"arch/1<-0": "none"})
    with pytest.raises(ArchitectureError):
        enqueue_retraining(retrain, result, space=DartsCells())
    with pytest.raises(TypeError, match="DartsResult or a trial"):
        enqueue_retraining(retrain, "arch", space=SPACE)  # type: ignore[arg-type]
    assert retrain.trials == []
    assert torch.is_tensor(result.alphas["cell"])


def test_the_alpha_picture_rejects_a_history_that_does_not_fit() -> None:
    edges, ops = {"cell": ["1<-0", "2<-0"]}, ("none", "skip_connect", "nor_conv_3x3")
    assert draw_alpha_history([{"cell": torch.full((2, 3), 1 / 3)}], edges, ops).startswith(
        b"\x89PNG")
    with pytest.raises(ValueError, match="alpha history is empty"):
        draw_alpha_history([], edges, ops)
    with pytest.raises(ValueError, match=r"needs a \(2, 3\) array for cell kind 'cell'.*got "
                                         r"\(2, 4\)"):
        draw_alpha_history([{"cell": torch.zeros(2, 4)}], edges, ops)
    with pytest.raises(ValueError, match="got None"):
        draw_alpha_history([{"normal": torch.zeros(2, 3)}], edges, ops)


def test_search_in_a_multi_objective_study_keeps_epochs_without_reporting() -> None:
    """Optuna has no trial.report with several directions: the search keeps each epoch's
    accuracy in the user attr ``epoch_values`` and completes."""
    results: list[DartsResult] = []

    def objective(trial: optuna.Trial) -> tuple[float, float]:
        results.append(search(SPACE, random_data(), trial=trial, epochs=2, seed=0, **OPTIONS))
        return results[-1].valid_accuracy, float(trial.number)

    study = optuna.create_study(directions=["maximize", "minimize"])
    study.optimize(objective, n_trials=1)
    trial = study.trials[0]
    assert trial.state == TrialState.COMPLETE
    assert trial.intermediate_values == {}
    assert trial.user_attrs["epoch_values"] == results[0].accuracy_history
