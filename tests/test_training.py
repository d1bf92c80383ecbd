"""The training loop: reporting to trials, pruning, seeding, NaN losses, cutout, drop path,
auxiliary heads, evaluation and FLOP counting, on tiny CPU networks and tensors."""

from __future__ import annotations

import random
from collections.abc import Callable

import numpy as np
import optuna
import pytest
import torch
from optuna.trial import TrialState
from torch import nn
from torch.utils.data import TensorDataset

from optuna_nas.data import ImageData
from optuna_nas.errors import NasError, NonFiniteLossError
from optuna_nas.spaces import DartsCells, NasBench201Space
from optuna_nas.training import (
    _cutout,
    count_flops,
    count_parameters,
    evaluate,
    measure_latency,
    seed_everything,
    train,
)

NUM_CLASSES = 3
DARTS = DartsCells()
DARTS_ARCH = DARTS.sample(0)
NB201 = NasBench201Space()
NB201_ARCH = NB201.parse(
    "|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|avg_pool_3x3~0|none~1|nor_conv_3x3~2|"
)


def blobs(n: int, *, size: int = 8, channels: int = 1, seed: int = 0) -> TensorDataset:
    """Images whose mean brightness gives the class (learnable), all pixels positive."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % NUM_CLASSES
    images = torch.rand(n, channels, size, size, generator=generator) + 1.0
    images += labels.view(n, 1, 1, 1).float()
    return TensorDataset(images, labels)


def tiny_data(n_train: int = 48, n_valid: int = 24, size: int = 8) -> ImageData:
    return ImageData(
        blobs(n_train, size=size),
        blobs(n_valid, size=size, seed=1),
        None,
        NUM_CLASSES,
        1,
        size,
        name="blobs",
    )


def darts_model(**options: object) -> nn.Module:
    return DARTS.build(
        DARTS_ARCH, channels=4, layers=1, in_channels=1, num_classes=NUM_CLASSES, **options
    )


def nb201_model() -> nn.Module:
    return NB201.build(
        NB201_ARCH, channels=4, cells_per_stage=1, in_channels=1, num_classes=NUM_CLASSES
    )


class Recorder(nn.Module):
    """A linear classifier that records what the training loop feeds it."""

    def __init__(self, pixels: int = 64) -> None:
        super().__init__()
        self.linear = nn.Linear(pixels, NUM_CLASSES)
        self.drop_path_prob = 0.0
        self.seen: list[torch.Tensor] = []
        self.probs: list[float] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.seen.append(x.detach().clone())
            self.probs.append(self.drop_path_prob)
        out: torch.Tensor = self.linear(x.flatten(1))
        return out


class NanModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(64, NUM_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.linear(x.flatten(1)) * float("nan")
        return out


def weights(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# --------------------------------------------------------------------------- reporting


def test_train_reports_each_epoch_and_sets_params_and_flops() -> None:
    data = tiny_data()
    models: list[nn.Module] = []

    def objective(trial: optuna.Trial) -> float:
        model = darts_model()
        models.append(model)
        return train(model, data, epochs=3, trial=trial, batch_size=16, device="cpu")

    study = optuna.create_study(direction="maximize")
    study.optimize(objective, n_trials=1)
    trial = study.trials[0]
    assert trial.state == TrialState.COMPLETE
    assert sorted(trial.intermediate_values) == [0, 1, 2]
    assert all(0.0 <= v <= 1.0 for v in trial.intermediate_values.values())
    assert trial.intermediate_values[2] == trial.value
    assert trial.user_attrs["params"] == count_parameters(models[0]) > 0
    assert trial.user_attrs["flops"] == count_flops(models[0], (1, 8, 8)) > 0


def test_train_returns_the_final_validation_accuracy_and_learns() -> None:
    data = tiny_data(n_train=60, n_valid=30)
    seed_everything(0)
    model = nb201_model()
    accuracy = train(model, data, epochs=6, lr=0.05, batch_size=12, device="cpu")
    assert accuracy == evaluate(model, data.valid, device="cpu")
    # The classes differ in brightness; a few epochs beat chance (1/3) by far.
    assert accuracy > 0.6


def test_train_rejects_zero_epochs() -> None:
    with pytest.raises(ValueError, match="epochs"):
        train(Recorder(), tiny_data(), epochs=0, device="cpu")


# --------------------------------------------------------------------------- pruning


def test_threshold_pruner_stops_training_at_the_pruning_epoch() -> None:
    data = tiny_data()
    epochs_run: list[int] = []

    def objective(trial: optuna.Trial) -> float:
        model = Recorder()
        try:
            return train(model, data, epochs=5, trial=trial, batch_size=48, device="cpu")
        finally:
            epochs_run.append(len(model.seen))  # one batch per epoch

    pruner = optuna.pruners.ThresholdPruner(lower=1.1, n_warmup_steps=1)
    study = optuna.create_study(direction="maximize", pruner=pruner)
    study.optimize(objective, n_trials=2)
    assert [t.state for t in study.trials] == [TrialState.PRUNED] * 2
    for trial in study.trials:
        assert sorted(trial.intermediate_values) == [0, 1]
        assert trial.value in (None, trial.intermediate_values[1])
    assert epochs_run == [2, 2]


def fixed_classifier(*, perfect: bool) -> Recorder:
    """A linear model, right on every blob (``perfect``) or always saying class 2."""
    model = Recorder()
    centres = 1.5 + torch.arange(NUM_CLASSES, dtype=torch.float32)  # mean brightness
    with torch.no_grad():
        if perfect:  # the nearest centre: argmax_k 2 c_k mean - c_k ** 2
            model.linear.weight.copy_((2 * centres / 64).view(-1, 1).expand(-1, 64))
            model.linear.bias.copy_(-(centres**2))
        else:
            model.linear.weight.zero_()
            model.linear.bias.copy_(torch.tensor([0.0, 0.0, 1.0]))
    return model


def test_successive_halving_prunes_after_a_strong_first_trial() -> None:
    data = tiny_data()

    def objective(trial: optuna.Trial) -> float:
        model = fixed_classifier(perfect=trial.number == 0)
        return train(model, data, epochs=4, lr=0.0, trial=trial, batch_size=16, device="cpu")

    pruner = optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=2)
    study = optuna.create_study(direction="maximize", pruner=pruner)
    study.optimize(objective, n_trials=3)
    first, *others = study.trials
    assert first.state == TrialState.COMPLETE
    assert first.intermediate_values == {epoch: 1.0 for epoch in range(4)}
    for trial in others:
        assert trial.state == TrialState.PRUNED
        assert trial.intermediate_values[0] == pytest.approx(1 / 3)
        assert len(trial.intermediate_values) < 4


# --------------------------------------------------------------------------- seeding


def test_seed_everything_seeds_python_numpy_and_torch() -> None:
    def draw() -> tuple[float, float, float]:
        return random.random(), float(np.random.rand()), float(torch.rand(()))

    seed_everything(7)
    first = draw()
    seed_everything(7)
    assert draw() == first
    seed_everything(8)
    assert draw() != first


def _seeded_run(
    seed: int,
    init_seed: int | None = None,
    *,
    make: Callable[[], nn.Module] = darts_model,
    drop_path_rate: float = 0.4,
    cutout: int = 3,
    disturb: bool = False,
) -> tuple[float, dict[str, torch.Tensor]]:
    seed_everything(seed if init_seed is None else init_seed)
    model = make()
    if disturb:  # draws from the global generators between building and training
        torch.rand(7)
        random.random()
    accuracy = train(
        model,
        tiny_data(),
        epochs=2,
        seed=seed,
        batch_size=16,
        cutout=cutout,
        drop_path_rate=drop_path_rate,
        device="cpu",
    )
    return accuracy, weights(model)


def test_same_seed_repeats_exactly_on_cpu() -> None:
    accuracy, state = _seeded_run(3)
    again_accuracy, again_state = _seeded_run(3)
    assert accuracy == again_accuracy
    assert same_weights(state, again_state)


def test_train_seed_alone_fixes_data_order_cutout_and_drop_path() -> None:
    # Whatever the global generators did after the model was built.
    _, state = _seeded_run(3)
    _, disturbed = _seeded_run(3, disturb=True)
    assert same_weights(state, disturbed)


def test_different_seed_gives_different_weights() -> None:
    _, state = _seeded_run(3)
    _, other = _seeded_run(4)
    assert not same_weights(state, other)
    # The train seed alone changes the result too.
    _, same_init = _seeded_run(4, init_seed=3)
    assert not same_weights(state, same_init)


@pytest.mark.parametrize("cutout", [0, 3])
def test_train_seed_sets_the_data_order(cutout: int) -> None:
    # A network without drop path: only the data order (and cutout) depend on the seed.
    runs = [
        _seeded_run(seed, init_seed=0, make=nb201_model, drop_path_rate=0.0, cutout=cutout)[1]
        for seed in (3, 3, 4)
    ]
    assert same_weights(runs[0], runs[1])
    assert not same_weights(runs[0], runs[2])


# --------------------------------------------------------------------------- NaN losses


@pytest.mark.filterwarnings("error::UserWarning")
def test_nan_loss_raises_with_the_loss_epoch_and_fix() -> None:
    with pytest.raises(NonFiniteLossError) as info:
        train(NanModel(), tiny_data(), epochs=2, device="cpu")
    message = str(info.value)
    assert "loss became nan" in message
    assert "epoch 0" in message
    assert "Lower the learning rate" in message
    assert isinstance(info.value, NasError)
    assert isinstance(info.value, RuntimeError)


def test_huge_learning_rate_raises_non_finite_loss_error() -> None:
    seed_everything(0)
    with pytest.raises(NonFiniteLossError, match=r"loss became .*epoch \d+.*lr=1e\+10"):
        train(darts_model(), tiny_data(), epochs=5, lr=1e10, batch_size=8, device="cpu")


def _study_objective(data: ImageData) -> Callable[[optuna.Trial], float]:
    def objective(trial: optuna.Trial) -> float:
        model = NanModel() if trial.number == 1 else Recorder()
        return train(model, data, epochs=2, trial=trial, batch_size=16, device="cpu")

    return objective


def test_nan_trial_fails_and_the_study_goes_on() -> None:
    study = optuna.create_study(direction="maximize")
    study.optimize(_study_objective(tiny_data()), n_trials=3, catch=(NonFiniteLossError,))
    states = [t.state for t in study.trials]
    assert states == [TrialState.COMPLETE, TrialState.FAIL, TrialState.COMPLETE]
    failed = study.trials[1]
    assert "loss became nan" in failed.user_attrs["fail_reason"]
    assert "Lower the learning rate" in failed.user_attrs["fail_reason"]
    assert failed.intermediate_values == {}
    for trial in (study.trials[0], study.trials[2]):
        assert trial.value is not None and sorted(trial.intermediate_values) == [0, 1]
    assert study.best_trial.number in (0, 2)


def test_nan_trial_without_catch_stops_the_study_but_keeps_finished_trials() -> None:
    study = optuna.create_study(direction="maximize")
    with pytest.raises(NonFiniteLossError):
        study.optimize(_study_objective(tiny_data()), n_trials=3)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE, TrialState.FAIL]
    assert study.trials[0].value is not None


# --------------------------------------------------------------------------- cutout


@pytest.mark.parametrize("length", [1, 2, 3, 4, 5])
def test_cutout_zeroes_one_square_inside_the_image(length: int) -> None:
    images = torch.rand(300, 3, 12, 12) + 1.0
    out = _cutout(images, length, torch.Generator().manual_seed(length))
    assert out.shape == images.shape
    holes = out == 0
    # The same hole in every channel; elsewhere the pixels are untouched.
    assert torch.equal(holes, holes[:, :1].expand_as(holes))
    assert torch.equal(out[~holes], images[~holes])
    full = 0
    for hole in holes[:, 0]:
        rows = hole.any(dim=1).nonzero().flatten()
        cols = hole.any(dim=0).nonzero().flatten()
        assert len(rows) >= 1 and len(cols) >= 1  # the centre is inside the image
        # A rectangle: every pixel of the rows x cols box is zero, nothing outside it.
        assert int(hole.sum()) == len(rows) * len(cols)
        assert torch.equal(rows, torch.arange(int(rows[0]), int(rows[-1]) + 1))
        assert torch.equal(cols, torch.arange(int(cols[0]), int(cols[-1]) + 1))
        assert len(rows) <= length and len(cols) <= length
        # Away from the borders the hole is the full square.
        if 0 < rows[0] and rows[-1] < 11:
            assert len(rows) == length
        if 0 < cols[0] and cols[-1] < 11:
            assert len(cols) == length
        full += int(hole.sum()) == length * length
    assert full > 0


def test_cutout_is_repeatable_with_the_same_generator() -> None:
    images = torch.rand(10, 1, 8, 8) + 1.0
    a = _cutout(images, 4, torch.Generator().manual_seed(1))
    b = _cutout(images, 4, torch.Generator().manual_seed(1))
    c = _cutout(images, 4, torch.Generator().manual_seed(2))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def _seen_images(cutout: int) -> tuple[torch.Tensor, torch.Tensor]:
    data = tiny_data(n_train=20)
    model = Recorder()
    train(model, data, epochs=1, cutout=cutout, batch_size=8, device="cpu")
    originals = torch.stack([data.train[i][0] for i in range(20)])
    return torch.cat(model.seen), originals


def test_train_leaves_images_unchanged_without_cutout() -> None:
    seen, originals = _seen_images(0)
    assert len(seen) == 20
    for image in seen:
        assert any(torch.equal(image, original) for original in originals)


def test_train_applies_cutout() -> None:
    seen, originals = _seen_images(4)
    assert len(seen) == 20
    zeros = (seen == 0).flatten(1).sum(dim=1)
    assert bool((zeros >= 1).all()) and bool((zeros <= 16).all())
    assert int(zeros.max()) == 16
    assert not bool((originals == 0).any())


def test_every_training_sample_is_used_each_epoch() -> None:
    model = Recorder()
    train(model, tiny_data(n_train=50), epochs=2, batch_size=16, device="cpu")
    assert [len(x) for x in model.seen] == [16, 16, 16, 2] * 2
    # Only a lone last sample (a batch of one) is dropped.
    model = Recorder()
    train(model, tiny_data(n_train=49), epochs=1, batch_size=16, device="cpu")
    assert [len(x) for x in model.seen] == [16, 16, 16]


# --------------------------------------------------------------------------- drop path


def test_drop_path_prob_is_scheduled_linearly() -> None:
    model = Recorder()
    train(model, tiny_data(), epochs=4, drop_path_rate=0.4, batch_size=48, device="cpu")
    assert model.probs == pytest.approx([0.0, 0.1, 0.2, 0.3])
    assert model.drop_path_prob == pytest.approx(0.4 * 3 / 4)


def test_drop_path_changes_the_training_of_cell_networks() -> None:
    results = []
    for rate in (0.0, 0.6):
        seed_everything(0)
        model = darts_model()
        train(model, tiny_data(), epochs=2, drop_path_rate=rate, batch_size=16, device="cpu")
        assert getattr(model, "drop_path_prob") == pytest.approx(rate / 2)  # noqa: B009
        results.append(weights(model))
    assert not same_weights(*results)


# --------------------------------------------------------------------------- auxiliary head


def test_auxiliary_head_models_train_and_weigh_the_auxiliary_loss() -> None:
    seed_everything(0)
    model = darts_model(auxiliary=True)
    model.train()
    output = model(torch.zeros(2, 1, 8, 8))
    assert isinstance(output, tuple) and len(output) == 2
    initial = weights(model)
    results = []
    # 17 samples in batches of 8: the lone last sample would break the head's batch norm.
    data = tiny_data(n_train=17)
    for weight in (0.0, 0.4):
        model.load_state_dict(initial)
        accuracy = train(
            model, data, epochs=2, auxiliary_weight=weight, batch_size=8, device="cpu"
        )
        assert 0.0 <= accuracy <= 1.0
        results.append(weights(model))
    assert not same_weights(*results)
    plain = darts_model()
    assert count_parameters(model) == count_parameters(plain)
    assert sum(p.numel() for p in model.parameters()) > count_parameters(model)


# --------------------------------------------------------------------------- evaluate, FLOPs


class ConstantModel(nn.Module):
    def __init__(self, label: int) -> None:
        super().__init__()
        self.label = label
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = torch.zeros(x.shape[0], NUM_CLASSES) + self.dummy
        logits[:, self.label] = 1.0
        return logits


@pytest.mark.parametrize("batch_size", [5, 256])
def test_evaluate_returns_the_fraction_correct(batch_size: int) -> None:
    dataset = blobs(24)  # labels 0, 1, 2 repeated: a third each
    model = ConstantModel(2)
    model.train()
    accuracy = evaluate(model, dataset, batch_size=batch_size, device="cpu")
    assert accuracy == pytest.approx(1 / 3)
    assert not model.training


def test_evaluate_is_a_fraction_for_real_networks() -> None:
    accuracy = evaluate(darts_model(auxiliary=True), blobs(10), device="cpu")
    assert 0.0 <= accuracy <= 1.0


def test_evaluate_rejects_an_empty_dataset() -> None:
    empty = TensorDataset(torch.zeros(0, 1, 8, 8), torch.zeros(0, dtype=torch.long))
    with pytest.raises(ValueError, match="empty"):
        evaluate(Recorder(), empty, device="cpu")


def test_count_flops_counts_a_linear_layer_exactly() -> None:
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    assert count_flops(model, (1, 8, 8)) == 2 * 64 * 10


@pytest.mark.parametrize("make", [darts_model, nb201_model], ids=["darts", "nasbench201"])
def test_count_flops_is_positive_and_scales_with_input_size(make: Callable[[], nn.Module]) -> None:
    model = make()
    model.train()
    small = count_flops(model, (1, 8, 8))
    large = count_flops(model, (1, 16, 16))
    assert small > 0
    assert 3.5 * small < large < 4.5 * small  # four times the pixels
    assert model.training  # the mode is restored


def test_count_parameters_skips_frozen_parameters() -> None:
    model = nn.Linear(4, 3)
    assert count_parameters(model) == 15
    model.bias.requires_grad_(False)
    assert count_parameters(model) == 12


class _NanGradient(torch.autograd.Function):
    """Identity forward, NaN backward: a finite loss with poisoned gradients."""

    @staticmethod
    def forward(ctx: object, x: torch.Tensor) -> torch.Tensor:
        return x.clone()

    @staticmethod
    def backward(ctx: object, grad: torch.Tensor) -> torch.Tensor:
        return grad * float("nan")


class NanGradientModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(64, NUM_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = _NanGradient.apply(self.linear(x.flatten(1)))
        return out


def test_nan_gradients_with_a_finite_loss_raise_after_the_epoch() -> None:
    with pytest.raises(NonFiniteLossError, match=r"weights became NaN or infinite in epoch 0"):
        train(NanGradientModel(), tiny_data(), epochs=2, device="cpu")


# ------------------------------------------------------------------ costs, multi-objective


def test_train_in_a_multi_objective_study_stores_epochs_and_costs() -> None:
    """Optuna has no trial.report with several directions: train neither reports nor
    prunes there, keeps each epoch's accuracy as a user attr, and stores the costs that
    the objective returns as its second value."""
    data = tiny_data()

    def objective(trial: optuna.Trial) -> tuple[float, float]:
        model = nb201_model()
        accuracy = train(
            model, data, epochs=2, trial=trial, batch_size=16, device="cpu",
            costs=("params", "flops", "latency"),
        )
        return accuracy, trial.user_attrs["latency_s"]

    study = optuna.create_study(
        directions=["maximize", "minimize"], pruner=optuna.pruners.ThresholdPruner(upper=0.0)
    )
    study.optimize(objective, n_trials=2)
    for trial in study.trials:
        assert trial.state == TrialState.COMPLETE
        assert trial.intermediate_values == {}
        assert len(trial.user_attrs["epoch_values"]) == 2
        assert trial.user_attrs["epoch_values"][-1] == trial.values[0]
        assert trial.user_attrs["latency_s"] == trial.values[1] > 0.0
        assert trial.user_attrs["params"] > 0 and trial.user_attrs["flops"] > 0


def test_train_rejects_an_unknown_cost() -> None:
    with pytest.raises(ValueError, match="Unknown costs"):
        train(nb201_model(), tiny_data(), epochs=1, costs=("energy",), device="cpu")


def test_measure_latency_repeats_within_20_percent_and_grows_with_cells() -> None:
    def network(cells: int) -> nn.Module:
        return NB201.build(
            NB201_ARCH, channels=8, cells_per_stage=cells, in_channels=3, num_classes=10
        )

    small, large = network(1), network(2)
    small.train()
    # A shared machine can stall this process during one measurement: up to three pairs,
    # each measured back to back. A measurement that does not repeat fails all three.
    pairs = []
    for _ in range(3):
        first = measure_latency(small, (3, 16, 16), min_run_time=0.3)
        second = measure_latency(small, (3, 16, 16), min_run_time=0.3)
        pairs.append((first, second))
        if 0.8 <= first / second <= 1.25:
            break
    assert 0.8 <= first / second <= 1.25, pairs
    assert small.training  # the mode is restored
    larger = min(measure_latency(large, (3, 16, 16), min_run_time=0.3) for _ in range(2))
    assert larger > 1.2 * min(first, second), (larger, pairs)


def test_measure_latency_names_a_missing_gpu() -> None:
    if torch.cuda.is_available():
        pytest.skip("a GPU is there")
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        measure_latency(nb201_model(), (1, 8, 8), device="cuda")
