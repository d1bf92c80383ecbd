"""The training loop that reports to an Optuna trial."""

from __future__ import annotations

import contextlib
import logging
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

import numpy as np
import optuna
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from optuna_nas._reporting import report_epoch
from optuna_nas.data import ImageData
from optuna_nas.errors import NonFiniteLossError
from optuna_nas.nn._ops import plain_pooling

__all__ = [
    "count_flops",
    "count_parameters",
    "evaluate",
    "measure_latency",
    "seed_everything",
    "train",
]

# What ``train(costs=...)`` can store on a trial, and under which user attr.
_COST_ATTRS = {"params": "params", "flops": "flops", "latency": "latency_s"}
_DEFAULT_COSTS = ("params", "flops")

_logger = logging.getLogger(__name__)


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and PyTorch's generators (do it before building a model)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters of a model, auxiliary heads excluded (as DARTS counts)."""
    return sum(
        p.numel() for name, p in model.named_parameters() if p.requires_grad
        and "auxiliary" not in name
    )


def count_flops(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Floating-point operations of one forward pass on one input of ``input_shape``.

    Counted by PyTorch's FlopCounterMode (a multiply-add counts two), in eval mode.
    """
    from torch.utils.flop_counter import FlopCounterMode

    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    was_training = model.training
    model.eval()
    try:
        counter = FlopCounterMode(display=False)
        with counter, torch.no_grad(), plain_pooling():
            model(torch.zeros(1, *input_shape, device=device))
        return int(counter.get_total_flops())
    finally:
        model.train(was_training)


def measure_latency(
    model: nn.Module,
    input_shape: tuple[int, ...],
    *,
    device: str | torch.device = "cpu",
    batch_size: int = 1,
    warmup: int = 3,
    min_run_time: float = 0.2,
    threads: int | None = 1,
) -> float:
    """Median seconds of one forward pass (inference), measured with PyTorch's Timer.

    The model runs in eval mode under ``torch.no_grad()`` on ``batch_size`` zero inputs of
    ``input_shape``: ``warmup`` passes first, then
    :meth:`torch.utils.benchmark.Timer.blocked_autorange` for at least ``min_run_time``
    seconds, whose median is returned. The Timer synchronises CUDA around each block, so a
    GPU's figure is the kernels' time, not their launch. The model's device and train/eval
    mode are restored afterwards.

    Args:
        model: The network.
        input_shape: One input's shape, e.g. ``(3, 32, 32)``.
        device: Where to measure (``"cpu"``, ``"cuda"``).
        batch_size: Inputs per pass.
        warmup: Untimed passes before measuring.
        min_run_time: Seconds of timed passes at least.
        threads: CPU threads of the measurement (the Timer's ``num_threads``); latency on
            a phone-like target is single-threaded, hence the default 1. ``None`` keeps
            torch's current setting.

    Returns:
        The median latency in seconds.
    """
    from torch.utils import benchmark

    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}.")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(
            f"measure_latency(device={device!r}) needs a GPU, and CUDA is not available "
            "here; measure on device='cpu'."
        )
    original = next((p.device for p in model.parameters()), None)
    was_training = model.training
    model.to(dev).eval()
    try:
        inputs = torch.zeros(batch_size, *input_shape, device=dev)
        with torch.no_grad():
            for _ in range(warmup):
                model(inputs)
        timer = benchmark.Timer(
            stmt="with torch.no_grad(): model(inputs)",
            globals={"model": model, "inputs": inputs, "torch": torch},
            num_threads=threads if threads is not None else torch.get_num_threads(),
        )
        return float(timer.blocked_autorange(min_run_time=min_run_time).median)
    finally:
        model.train(was_training)
        if original is not None:
            model.to(original)


def _resolve_device(device: str | torch.device | None) -> torch.device:
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _autocast(device: torch.device, amp: bool) -> contextlib.AbstractContextManager[Any]:
    if amp and device.type == "cuda":
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.autocast("cuda", dtype=dtype)
    return contextlib.nullcontext()


def _logits(output: torch.Tensor | tuple[torch.Tensor, ...]) -> torch.Tensor:
    return output[0] if isinstance(output, tuple) else output


def evaluate(
    model: nn.Module,
    dataset: Dataset[Any],
    *,
    batch_size: int = 256,
    device: str | torch.device | None = None,
    amp: bool = True,
) -> float:
    """Top-1 accuracy (a fraction in [0, 1]) of a model on a dataset.

    Args:
        model: The model; it is put in eval mode.
        dataset: Yields ``(image, label)`` pairs.
        batch_size: Evaluation batch size.
        device: Where to run; by default CUDA when available, else the CPU.
        amp: Mixed precision on CUDA; ignored on the CPU.
    """
    dev = _resolve_device(device)
    model.to(dev).eval()
    correct = total = 0
    with torch.no_grad(), _autocast(dev, amp):
        for images, labels in DataLoader(dataset, batch_size=batch_size):
            images, labels = images.to(dev), labels.to(dev)
            predicted = _logits(model(images)).argmax(dim=1)
            correct += int((predicted == labels).sum())
            total += int(labels.numel())
    if total == 0:
        raise ValueError("Cannot evaluate on an empty dataset.")
    return correct / total


def _diverged(trial: optuna.Trial | None, what: str) -> NoReturn:
    message = (
        f"{what}. Lower the learning rate or keep gradient clipping on (grad_clip); this "
        "trial is stopped."
    )
    if trial is not None:
        trial.set_user_attr("fail_reason", message)
    _logger.warning(message)
    raise NonFiniteLossError(message)


def _cutout(images: torch.Tensor, length: int, generator: torch.Generator) -> torch.Tensor:
    # One ``length`` x ``length`` hole per image, centred anywhere and clipped at the borders
    # (DeVries & Taylor 2017): rows and columns [c - length // 2, c - length // 2 + length).
    n, _, h, w = images.shape
    cy = torch.randint(h, (n,), generator=generator)
    cx = torch.randint(w, (n,), generator=generator)
    top = (cy - length // 2).view(n, 1, 1)
    left = (cx - length // 2).view(n, 1, 1)
    ys = torch.arange(h).view(1, h, 1)
    xs = torch.arange(w).view(1, 1, w)
    hole = (ys >= top) & (ys < top + length) & (xs >= left) & (xs < left + length)
    return images * (~hole).unsqueeze(1).to(images.device, images.dtype)


def train(
    model: nn.Module,
    data: ImageData,
    *,
    epochs: int,
    trial: optuna.Trial | None = None,
    lr: float = 0.025,
    lr_min: float = 0.0,
    momentum: float = 0.9,
    weight_decay: float = 3e-4,
    batch_size: int = 64,
    grad_clip: float | None = 5.0,
    cutout: int = 0,
    drop_path_rate: float = 0.0,
    auxiliary_weight: float = 0.4,
    seed: int = 0,
    device: str | torch.device | None = None,
    amp: bool = True,
    num_workers: int = 0,
    costs: Sequence[str] = _DEFAULT_COSTS,
) -> float:
    """Train a model and report its validation accuracy to a trial after every epoch.

    SGD with momentum and a cosine learning-rate schedule (DARTS' recipe), gradient-norm
    clipping, optional cutout and drop path. With a trial, each epoch's validation accuracy
    is reported with ``trial.report(accuracy, epoch)`` and :class:`optuna.TrialPruned` is
    raised when the study's pruner says so. In a multi-objective study, where Optuna has
    no ``trial.report``, nothing is reported or pruned: each epoch's accuracy goes to the
    trial's user attr ``epoch_values`` instead. The ``costs`` are stored as user attrs
    before training, so that an objective can return them: ``params`` (the parameter
    count), ``flops`` (one forward pass on one input) and ``latency`` (as ``latency_s``,
    :func:`measure_latency` at batch 1 on the training device). Runs on CUDA with mixed
    precision when a GPU is there, on the CPU otherwise; on the CPU the same seed repeats
    exactly (seed the model's initialisation with :func:`seed_everything` before building
    it).

    Args:
        model: The network to train, e.g. from ``space.build(arch, ...)``.
        data: The splits; ``data.valid`` is what is reported.
        epochs: Training epochs.
        trial: The Optuna trial to report to, or ``None``.
        lr: Initial learning rate.
        lr_min: Final learning rate of the cosine schedule.
        momentum: SGD momentum.
        weight_decay: L2 weight decay.
        batch_size: Minibatch size.
        grad_clip: Max gradient norm, or ``None`` for no clipping.
        cutout: Side of the cutout square in pixels; 0 turns cutout off.
        drop_path_rate: Final drop-path probability, reached linearly over the epochs, for
            models with a ``drop_path_prob`` attribute (the cell networks).
        auxiliary_weight: Weight of the auxiliary head's loss, for models that return
            ``(logits, aux_logits)`` in training mode.
        seed: Seed of the data order, cutout and drop path.
        device: Where to train; by default CUDA when available, else the CPU.
        amp: Mixed precision on CUDA (bfloat16 where supported); ignored on the CPU.
        num_workers: DataLoader worker processes.
        costs: Which of ``"params"``, ``"flops"`` and ``"latency"`` to store on the trial.

    Returns:
        The validation accuracy (a fraction in [0, 1]) after the last epoch.

    Raises:
        optuna.TrialPruned: The trial's pruner stopped the training.
        NonFiniteLossError: The loss became NaN or infinite.
    """
    criterion = nn.CrossEntropyLoss()

    def loss(output: torch.Tensor | tuple[torch.Tensor, ...], labels: torch.Tensor) -> Any:
        if isinstance(output, tuple):  # (logits, aux_logits) of a model's auxiliary head
            return criterion(output[0], labels) + auxiliary_weight * criterion(output[1], labels)
        return criterion(output, labels)

    def cut(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return _cutout(images, cutout, generator)

    task = _Task(
        loss=loss,
        metric=lambda dev: evaluate(model, data.valid, device=dev, amp=amp),
        metric_name="accuracy",
        augment=cut if cutout > 0 else None,
    )
    return _fit(
        model, data.train, task, epochs=epochs, trial=trial, lr=lr, lr_min=lr_min,
        momentum=momentum, weight_decay=weight_decay, batch_size=batch_size, grad_clip=grad_clip,
        drop_path_rate=drop_path_rate, seed=seed, device=device, amp=amp, num_workers=num_workers,
        costs=costs,
    )


@dataclass(frozen=True)
class _Task:
    """What :func:`_fit` trains for; the rest of the loop is the same for every task.

    Args:
        loss: The training loss (a scalar tensor) of the model's output and the batch's
            targets; typed ``Any``, as a loss module's call is.
        metric: The validation score after an epoch, of the device; reported to the trial.
        metric_name: The score's name in the pruning message.
        augment: Applied to each training batch of inputs (on the CPU, before the device),
            with the generator that also shuffles the data; ``None`` for none.
        check_weights: Whether to stop when the weights become NaN or infinite after an
            epoch whose losses were finite.
    """

    loss: Callable[[Any, torch.Tensor], Any]
    metric: Callable[[torch.device], float]
    metric_name: str
    augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None
    check_weights: bool = True


def _fit(
    model: nn.Module,
    train_set: Dataset[Any],
    task: _Task,
    *,
    epochs: int,
    trial: optuna.Trial | None,
    lr: float,
    lr_min: float,
    momentum: float,
    weight_decay: float,
    batch_size: int,
    grad_clip: float | None,
    drop_path_rate: float,
    seed: int,
    device: str | torch.device | None,
    amp: bool,
    num_workers: int,
    costs: Sequence[str] = _DEFAULT_COSTS,
) -> float:
    # The epoch loop of train and train_segmentation: device, seeding, the trial's params
    # and flops, SGD with a cosine schedule, mixed precision, gradient clipping, stopping on
    # a non-finite loss, reporting and pruning. The arguments are those of train.
    if epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {epochs}.")
    unknown = sorted(set(costs) - set(_COST_ATTRS))
    if unknown:
        raise ValueError(f"Unknown costs {unknown}; choose from {sorted(_COST_ATTRS)}.")
    dev = _resolve_device(device)
    model.to(dev)
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    if trial is not None:
        shape = tuple(train_set[0][0].shape)
        measured: dict[str, Callable[[], float]] = {
            "params": lambda: count_parameters(model),
            "flops": lambda: count_flops(model, shape),
            "latency": lambda: measure_latency(model, shape, device=dev),
        }
        for cost in costs:
            trial.set_user_attr(_COST_ATTRS[cost], measured[cost]())
    n_train = len(train_set)  # type: ignore[arg-type]
    loader = DataLoader(
        train_set,
        batch_size=batch_size,
        shuffle=True,
        generator=generator,
        num_workers=num_workers,
        # Only a lone last sample is dropped: a batch of one breaks batch norm on 1x1 maps
        # (e.g. in the auxiliary head or the ASPP's coarsest features); any other remainder
        # is trained on.
        drop_last=n_train > batch_size and n_train % batch_size == 1,
    )
    optimizer = torch.optim.SGD(
        model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay
    )
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, epochs, eta_min=lr_min)
    # A disabled scaler passes the loss and the step straight through (no AMP, or bfloat16).
    scaler = torch.amp.GradScaler(
        "cuda", enabled=amp and dev.type == "cuda" and not torch.cuda.is_bf16_supported()
    )
    score = 0.0
    for epoch in range(epochs):
        model.train()
        if hasattr(model, "drop_path_prob"):
            setattr(model, "drop_path_prob", drop_path_rate * epoch / epochs)  # noqa: B010
        for step, (inputs, targets) in enumerate(loader):
            if task.augment is not None:
                inputs = task.augment(inputs, generator)
            inputs, targets = inputs.to(dev, non_blocking=True), targets.to(dev, non_blocking=True)
            optimizer.zero_grad(set_to_none=True)
            with _autocast(dev, amp):
                loss = task.loss(model(inputs), targets)
            loss_value = loss.item()
            if not math.isfinite(loss_value):
                _diverged(trial, f"The training loss became {loss_value} at epoch {epoch}, "
                          f"step {step} (lr={lr:g})")
            scaler.scale(loss).backward()
            if grad_clip is not None:
                scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            scaler.step(optimizer)
            scaler.update()
        scheduler.step()
        # A finite loss can still come with NaN gradients that poison the weights.
        if task.check_weights and not all(
            bool(torch.isfinite(p).all()) for p in model.parameters()
        ):
            _diverged(trial, f"The weights became NaN or infinite in epoch {epoch} (lr={lr:g})")
        score = task.metric(dev)
        if trial is not None and report_epoch(trial, score, epoch):
            raise optuna.TrialPruned(
                f"Pruned at epoch {epoch} with validation {task.metric_name} {score:.4f}."
            )
    return score
