"""The search (reports to a trial, prunes, freezes the architecture during the warm-up),
the segmentation training loop, and the example end to end at a very small size."""

from __future__ import annotations

import re
import runpy
import time
from pathlib import Path
from typing import Any

import optuna
import pytest
import torch
from optuna.trial import TrialState

from optuna_nas.autodeeplab import (
    AutoDeepLabSpace,
    AutoDeepLabSupernet,
    SegmentationData,
    constant_baseline,
    search,
    synthetic_segmentation,
    train_segmentation,
)
from optuna_nas.errors import DatasetError, NonFiniteLossError
from optuna_nas.training import seed_everything

EXAMPLE = Path(__file__).parents[2] / "examples" / "autodeeplab_synthetic.py"
TINY: dict[str, Any] = {"layers": 2, "blocks": 1, "filter_multiplier": 2, "batch_size": 8,
                        "aspp_rates": (1,), "device": "cpu"}


@pytest.fixture(scope="module")
def data() -> SegmentationData:
    return synthetic_segmentation(40, size=16, num_classes=3, seed=0)


class _AlwaysPrune(optuna.pruners.BasePruner):
    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        return True


def test_search_reports_each_epoch_and_decodes(data: SegmentationData) -> None:
    results = []

    def objective(trial: optuna.Trial) -> float:
        result = search(data, epochs=2, warmup_epochs=1, trial=trial, **TINY)
        results.append(result)
        return result.valid_miou

    study = optuna.create_study(direction="maximize")
    study.optimize(objective, n_trials=1)
    trial = study.trials[0]
    result = results[0]
    assert sorted(trial.intermediate_values) == [0, 1]
    assert trial.intermediate_values[1] == result.valid_miou == result.history[-1]
    assert 0.0 < result.valid_miou <= 1.0
    assert trial.user_attrs["architecture"] == str(result.architecture)
    space = AutoDeepLabSpace(layers=2, blocks=1)
    assert space.parse(str(result.architecture)) == result.architecture
    assert len(result.path) == 2 and result.path[0] in (0, 1)
    assert result.rates == [4 * 2**level for level in result.path]
    assert len(result.architectures) == 2 and result.architectures[-1] == str(result.architecture)
    assert result.op_weights.shape == (2, 8)
    assert torch.allclose(result.op_weights.sum(-1), torch.ones(2))
    assert result.transition_matrix.shape == (2, 4, 4)
    assert torch.allclose(result.transition_matrix[0, 0].sum(), torch.tensor(1.0))


def test_the_architecture_is_frozen_during_the_warm_up(data: SegmentationData) -> None:
    frozen = search(data, epochs=1, warmup_epochs=1, seed=5, **TINY)
    seed_everything(5)
    initial = AutoDeepLabSupernet(3, layers=2, blocks=1, filter_multiplier=2, aspp_rates=(1,))
    assert torch.equal(frozen.supernet.alphas, initial.alphas)
    assert torch.equal(frozen.supernet.betas, initial.betas)
    moved = search(data, epochs=1, warmup_epochs=0, seed=5, **TINY)
    assert not torch.equal(moved.supernet.alphas, initial.alphas)
    assert not torch.equal(moved.supernet.betas, initial.betas)
    # The weights trained in both; the same seed repeats exactly on the CPU.
    again = search(data, epochs=1, warmup_epochs=0, seed=5, **TINY)
    assert torch.equal(again.supernet.betas, moved.supernet.betas)


def test_search_prunes(data: SegmentationData) -> None:
    study = optuna.create_study(direction="maximize", pruner=_AlwaysPrune())
    study.optimize(lambda t: search(data, epochs=3, warmup_epochs=0, trial=t, **TINY).valid_miou,
                   n_trials=1)
    assert study.trials[0].state == TrialState.PRUNED
    assert list(study.trials[0].intermediate_values) == [0]


def test_search_bad_arguments(data: SegmentationData) -> None:
    with pytest.raises(ValueError, match="warmup_epochs"):
        search(data, epochs=1, warmup_epochs=2, **TINY)
    one = SegmentationData(torch.utils.data.Subset(data.train, [0]), data.valid, None, 3, 3,
                           (16, 16))
    with pytest.raises(DatasetError, match="at least 2"):
        search(one, epochs=1, warmup_epochs=0, **TINY)


def _decoded(num_classes: int) -> torch.nn.Module:
    space = AutoDeepLabSpace(layers=2, blocks=2)
    arch = space.make([0, 0], [("sep_conv_3x3", 0), ("sep_conv_3x3", 1),
                               ("dil_conv_3x3", 1), ("skip_connect", 2)])
    seed_everything(0)
    return space.build(arch, num_classes=num_classes, filter_multiplier=4, aspp_channels=8,
                       aspp_rates=(1, 2))


def test_the_decoded_network_learns_beyond_the_constant_predictor() -> None:
    data = synthetic_segmentation(120, size=16, num_classes=2, seed=1)
    model = _decoded(2)
    study = optuna.create_study(direction="maximize")
    study.optimize(lambda t: train_segmentation(model, data, epochs=6, lr=0.1, batch_size=8,
                                                trial=t, device="cpu"), n_trials=1)
    trial = study.trials[0]
    assert sorted(trial.intermediate_values) == list(range(6))
    assert trial.user_attrs["params"] > 0 and trial.user_attrs["flops"] > 0
    _, baseline = constant_baseline(data.train, data.valid, 2)
    assert trial.value is not None and trial.value > baseline + 0.15


def test_training_prunes_and_stops_on_divergence() -> None:
    data = synthetic_segmentation(24, size=16, num_classes=2, seed=0)
    study = optuna.create_study(direction="maximize", pruner=_AlwaysPrune())
    study.optimize(lambda t: train_segmentation(_decoded(2), data, epochs=3, trial=t,
                                                device="cpu"), n_trials=1)
    assert study.trials[0].state == TrialState.PRUNED
    with pytest.raises(NonFiniteLossError, match="Lower the learning rate"):
        train_segmentation(_decoded(2), data, epochs=3, lr=1e12, grad_clip=None,
                           device="cpu")


def test_the_example_runs_repeats_and_beats_the_constant_predictor(
    capsys: pytest.CaptureFixture[str],
) -> None:
    main: Any = runpy.run_path(str(EXAMPLE))["main"]
    args = ["--images", "300", "--search-images", "16", "--image-size", "16", "--classes", "2",
            "--layers", "2", "--blocks", "1", "--filter-multiplier", "2", "--search-epochs", "2",
            "--warmup-epochs", "1", "--train-filter-multiplier", "4", "--aspp-channels", "8",
            "--train-epochs", "6"]
    start = time.perf_counter()
    main(args)
    elapsed = time.perf_counter() - start
    out = capsys.readouterr().out
    assert elapsed < 60, out
    assert "path (downsampling rate per layer): [" in out and "cell: [(" in out
    test = float(re.search(r"test mIoU ([0-9.]+)", out).group(1))  # type: ignore[union-attr]
    baseline = float(re.search(r"constant predictor .* test mIoU ([0-9.]+)", out)  # type: ignore[union-attr]
                     .group(1))
    assert test > baseline + 0.1, out
    main(args)  # the same seed repeats exactly on the CPU (all but the timing line)
    again = capsys.readouterr().out
    assert again.split("time:")[0] == out.split("time:")[0]


def test_search_in_a_multi_objective_study_keeps_epochs_without_reporting(
    data: SegmentationData,
) -> None:
    results = []

    def objective(trial: optuna.Trial) -> tuple[float, float]:
        result = search(data, epochs=2, warmup_epochs=1, trial=trial, **TINY)
        results.append(result)
        return result.valid_miou, 1.0

    study = optuna.create_study(directions=["maximize", "minimize"])
    study.optimize(objective, n_trials=1)
    trial = study.trials[0]
    assert trial.state == TrialState.COMPLETE
    assert trial.intermediate_values == {}
    assert trial.user_attrs["epoch_values"] == results[0].history
