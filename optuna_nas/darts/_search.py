"""DARTS: the bilevel search loop over a weighted supernet (first and second order)."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import optuna
import torch
from torch import nn
from torch.utils.data import Dataset

from optuna_nas._reporting import report_epoch
from optuna_nas.darts._cost import (
    OpCosts,
    OpCostTable,
    architecture_flops,
    check_cost_weight,
    check_op_costs,
    check_table,
    op_cost_table,
)
from optuna_nas.darts._derive import alpha_shapes, derive
from optuna_nas.darts._hypergradient import unrolled_gradient
from optuna_nas.darts._result import DartsResult
from optuna_nas.darts._trial import record_trial
from optuna_nas.data import ImageData
from optuna_nas.errors import NonFiniteLossError
from optuna_nas.spaces._base import Architecture, SearchSpace
from optuna_nas.spaces._nasbench201 import NasBench201Space
from optuna_nas.supernet._objective import _batch
from optuna_nas.supernet._supernet import Supernet

if TYPE_CHECKING:
    from optuna.artifacts._protocol import ArtifactStore

__all__ = ["DartsSearch", "search"]

_logger = logging.getLogger(__name__)

Batch = tuple[torch.Tensor, torch.Tensor]
ORDERS = ("first", "second")


def _positive(name: str, value: object, *, zero: bool = False) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (value == 0 and not zero):  # type: ignore[operator]
        bound = "non-negative" if zero else "positive"
        raise ValueError(f"{name} must be a {bound} finite number, got {value!r}.")
    return float(value)  # type: ignore[arg-type]


def _count(name: str, value: object, minimum: int = 1) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an integer of at least {minimum}, got {value!r}.")
    return value


def _image_size(value: object) -> tuple[int, int] | None:
    if value is None:
        return None
    size = (value, value) if isinstance(value, int) and not isinstance(value, bool) else value
    if not (isinstance(size, tuple) and len(size) == 2 and all(
            isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in size)):
        raise ValueError(
            f"image_size must be the images' side or (height, width), positive integers, got "
            f"{value!r}."
        )
    return size[0], size[1]


class DartsSearch:
    """The state of one DARTS search: a weighted supernet, its alphas and two optimizers.

    The supernet (:class:`~optuna_nas.supernet.Supernet`, non-affine batch norms with batch
    statistics, as DARTS' search network) computes every edge as the softmax-weighted sum of
    its ops. ``alphas`` holds one ``(edges, ops)`` parameter per cell kind, initialised to
    ``init_scale * N(0, 1)`` from ``seed``. The weights are trained by SGD with momentum and
    weight decay, their learning rate annealed by a cosine from ``weight_lr`` to
    ``weight_lr_min`` over ``epochs`` (call :meth:`end_epoch` after each epoch); the alphas
    by Adam with weight decay. :meth:`step` is one iteration of DARTS' Algorithm 1.

    The second-order step unrolls one SGD step of the weights exactly as DARTS' code does
    (momentum and weight decay included, the current learning rate as ``xi``) and takes the
    Hessian-vector product by finite differences, in place on the weights (see
    :func:`~optuna_nas.darts._hypergradient.unrolled_gradient`).

    With ``cost_weight > 0`` the architecture's loss gets a cost term, as in FBNet and
    ProxylessNAS: ``cost_weight`` times the expected cost of the supernet, the sum over
    every mixed op of ``sum(softmax(alpha) * cost(op))`` from a per-op cost table
    (:func:`~optuna_nas.darts.op_cost_table`, normalised so that it lies in [0, 1]). It is
    a function of the alphas only, so its gradient is added to the architecture gradient
    of either order. With ``cost_weight=0`` (the default) nothing is measured and the
    search is DARTS' exactly.

    Papers: Liu et al., "DARTS: Differentiable Architecture Search", ICLR 2019,
    https://arxiv.org/abs/1806.09055; Wu et al., "FBNet", CVPR 2019,
    https://arxiv.org/abs/1812.03443; Cai et al., "ProxylessNAS", ICLR 2019,
    https://arxiv.org/abs/1812.00332.

    Args:
        space: A :class:`~optuna_nas.spaces.NasBench201Space`,
            :class:`~optuna_nas.spaces.DartsCells` or :class:`~optuna_nas.spaces.NasNetCells`.
        num_classes: Classes of the data.
        in_channels: Image channels of the data.
        channels: Channels of the first cells (C; 16 in DARTS and NAS-Bench-201).
        layers: Cells of a DARTS / NASNet network (8 in DARTS' search); not for
            NAS-Bench-201.
        cells_per_stage: Cells per stage of a NAS-Bench-201 network (N; 5); not for
            DARTS / NASNet cells.
        network_options: Further options of the supernet, e.g. ``stem_multiplier``.
        order: ``"first"`` (the architecture gradient at the current weights) or
            ``"second"`` (the gradient through one unrolled weight step).
        epochs: Epochs the weights' cosine schedule spans.
        arch_lr: Adam's learning rate for the alphas.
        arch_betas: Adam's betas.
        arch_weight_decay: The alphas' L2 weight decay.
        weight_lr: The weights' initial SGD learning rate.
        weight_lr_min: The weights' final learning rate.
        momentum: SGD momentum.
        weight_decay: The weights' L2 weight decay.
        grad_clip: Max norm of the weights' gradient, or ``None``.
        init_scale: Standard deviation of the alphas' initial values.
        seed: Seed of the supernet's initial weights and of the alphas.
        cost_weight: Weight of the expected cost in the architecture's loss; 0 (the
            default) turns the cost term off. Must be finite and non-negative.
        op_costs: The cost table: ``"flops"`` (each op's FLOPs at each edge's shape),
            ``"latency"`` (each op's latency at each edge's shape, measured on ``device``),
            a mapping from every op name of the space to a non-negative cost, or an
            :class:`~optuna_nas.darts.OpCostTable` of this supernet. Measured only when
            ``cost_weight > 0``.
        image_size: The images' side or ``(height, width)``, for measuring the cost table
            at construction and for :meth:`derived_flops`; without it a measured table is
            taken at the first step from the validation batch's images.
        device: Where to search; by default CUDA when available, else the CPU.
        dtype: The weights' and alphas' floating-point type.
    """

    def __init__(
        self,
        space: SearchSpace,
        *,
        num_classes: int = 10,
        in_channels: int = 3,
        channels: int = 16,
        layers: int | None = None,
        cells_per_stage: int | None = None,
        network_options: Mapping[str, Any] | None = None,
        order: str = "first",
        epochs: int = 50,
        arch_lr: float = 3e-4,
        arch_betas: tuple[float, float] = (0.5, 0.999),
        arch_weight_decay: float = 1e-3,
        weight_lr: float = 0.025,
        weight_lr_min: float = 0.001,
        momentum: float = 0.9,
        weight_decay: float = 3e-4,
        grad_clip: float | None = 5.0,
        init_scale: float = 1e-3,
        seed: int = 0,
        cost_weight: float = 0.0,
        op_costs: OpCosts | OpCostTable = "flops",
        image_size: int | tuple[int, int] | None = None,
        device: str | torch.device | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        shapes = alpha_shapes(space)  # rejects spaces DARTS does not search
        if order not in ORDERS:
            raise ValueError(
                f"order must be 'first' or 'second' (DARTS' first- or second-order "
                f"approximation), got {order!r}."
            )
        _count("epochs", epochs)
        _count("channels", channels)
        _positive("arch_lr", arch_lr)
        _positive("weight_lr", weight_lr)
        _positive("weight_lr_min", weight_lr_min, zero=True)
        if weight_lr_min > weight_lr:
            raise ValueError(
                f"weight_lr_min ({weight_lr_min}) must not exceed weight_lr ({weight_lr}): the "
                "cosine schedule anneals from weight_lr down to weight_lr_min."
            )
        for name, value in (("arch_weight_decay", arch_weight_decay),
                            ("weight_decay", weight_decay), ("init_scale", init_scale)):
            _positive(name, value, zero=True)
        if not (isinstance(momentum, (int, float)) and 0 <= momentum < 1):
            raise ValueError(f"momentum must be in [0, 1), got {momentum!r}.")
        if not (
            isinstance(arch_betas, tuple)
            and len(arch_betas) == 2
            and all(isinstance(b, (int, float)) and 0 <= b < 1 for b in arch_betas)
        ):
            raise ValueError(f"arch_betas must be two numbers in [0, 1), got {arch_betas!r}.")
        if grad_clip is not None:
            _positive("grad_clip", grad_clip)
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise ValueError(f"seed must be an integer, got {seed!r}.")
        weight_of_cost = check_cost_weight(cost_weight)
        check_op_costs(space, op_costs)
        if isinstance(op_costs, OpCostTable):
            check_table(space, op_costs)
        size = _image_size(image_size)
        options: dict[str, Any] = {"channels": channels, "num_classes": num_classes,
                                   "in_channels": in_channels}
        if isinstance(space, NasBench201Space):
            if layers is not None:
                raise ValueError(
                    "A NAS-Bench-201 network is sized by cells_per_stage (N, cells per stage), "
                    "not layers; pass cells_per_stage=..."
                )
            options["cells_per_stage"] = _count(
                "cells_per_stage", 5 if cells_per_stage is None else cells_per_stage
            )
        else:
            if cells_per_stage is not None:
                raise ValueError(
                    f"A {space.name} cell network is sized by layers (cells in all), not "
                    "cells_per_stage; pass layers=..."
                )
            options["layers"] = _count("layers", 8 if layers is None else layers)
            if options["layers"] < 3:
                # Reductions sit at layers // 3 and 2 * layers // 3.
                raise ValueError(
                    f"DARTS derives a normal and a reduction cell, but with layers="
                    f"{options['layers']} every cell is a reduction cell; use layers >= 3."
                )
        options.update(network_options or {})
        options.setdefault("affine", False)

        self.space = space
        self.order = order
        self.grad_clip = grad_clip
        self.device = torch.device(
            device if device is not None else ("cuda" if torch.cuda.is_available() else "cpu")
        )
        self.dtype = dtype
        # Seed the initial weights without touching the caller's global generator.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.supernet = Supernet(space, **options)
        self.supernet.to(device=self.device, dtype=dtype)
        generator = torch.Generator().manual_seed(seed)
        self.alphas: dict[str, torch.Tensor] = {
            kind: nn.Parameter(
                (init_scale * torch.randn(shape, generator=generator, dtype=torch.float64)).to(
                    self.device, dtype
                )
            )
            for kind, shape in shapes.items()
        }
        self._weights = list(self.supernet.parameters())
        self._alphas = list(self.alphas.values())
        self.weight_optimizer = torch.optim.SGD(
            self._weights, lr=weight_lr, momentum=momentum, weight_decay=weight_decay
        )
        self.weight_scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
            self.weight_optimizer, epochs, eta_min=weight_lr_min
        )
        self.arch_optimizer = torch.optim.Adam(
            self._alphas, lr=arch_lr, betas=arch_betas, weight_decay=arch_weight_decay
        )
        self.epoch = 0  # epochs ended so far
        self.steps = 0  # iterations so far
        self.cost_weight = weight_of_cost
        self.op_costs = op_costs
        self.image_size = size
        self._sizes: dict[str, Any] = {
            k: options[k] for k in ("channels", "layers", "cells_per_stage") if k in options
        }
        self._build_options: dict[str, Any] = {
            **self._sizes, "num_classes": num_classes, "in_channels": in_channels,
            **{k: v for k, v in options.items() if k == "stem_multiplier"},
        }
        #: The normalised cost table (see :func:`~optuna_nas.darts.op_cost_table`), or
        #: ``None`` until it is measured (a search with ``cost_weight=0`` never does).
        self.cost_table: OpCostTable | None = None
        self._device_costs: dict[str, torch.Tensor] | None = None
        if self.cost_weight > 0 and (size is not None or not isinstance(op_costs, str)):
            self.measure_costs()

    # ---- the relaxation -------------------------------------------------------------------
    @property
    def weight_lr(self) -> float:
        """The weights' current learning rate (DARTS' ``xi`` in the second-order step)."""
        return float(self.weight_optimizer.param_groups[0]["lr"])

    def op_weights(self, *, detach: bool = False) -> dict[str, torch.Tensor]:
        """Softmax of each cell kind's alphas: the supernet's edge weights."""
        return {
            kind: torch.softmax(a.detach() if detach else a, dim=-1)
            for kind, a in self.alphas.items()
        }

    def loss(self, batch: Batch, *, detach_alphas: bool = False) -> torch.Tensor:
        """Cross-entropy of the weighted supernet on a batch already on the device."""
        images, labels = batch
        logits = self.supernet(images, weights=self.op_weights(detach=detach_alphas))
        return nn.functional.cross_entropy(logits, labels)

    # ---- the cost term (FBNet, ProxylessNAS) ----------------------------------------------
    def measure_costs(self, image_size: int | tuple[int, int] | None = None) -> OpCostTable:
        """Measure (once) and return the per-op cost table of this supernet.

        A mapping's table needs no images; a ``"flops"`` or ``"latency"`` table is measured
        at ``image_size`` (default: the constructor's), latency on the search's device.
        The caller's random generators are left alone.

        Args:
            image_size: The images' side or ``(height, width)``.

        Raises:
            ValueError: A measured table and no image size is known.
        """
        if self.cost_table is not None:
            return self.cost_table
        if isinstance(self.op_costs, OpCostTable):
            self.cost_table = self.op_costs
            return self.cost_table
        size = _image_size(image_size) or self.image_size
        if size is None and isinstance(self.op_costs, str):
            raise ValueError(
                f"A {self.op_costs} cost table is measured at the images' size; pass "
                "image_size= to DartsSearch or to measure_costs()."
            )
        self.image_size = self.image_size or size
        self.cost_table = op_cost_table(
            self.space, self.op_costs, image_size=size or 1, device=self.device, **self._sizes
        )
        return self.cost_table

    def cost(self) -> torch.Tensor:
        """The expected normalised cost of the current alphas, differentiable in them:
        the sum over every mixed op of ``sum(softmax(alpha) * cost(op))``."""
        table = self.measure_costs()
        if self._device_costs is None:
            self._device_costs = {k: t.to(self.device, self.dtype)
                                  for k, t in table.table.items()}
        total: torch.Tensor | None = None
        for kind, weights in self.op_weights().items():
            term = (weights * self._device_costs[kind]).sum()
            total = term if total is None else total + term
        assert total is not None
        return total

    def expected_cost(self) -> float:
        """:meth:`cost` as a number: 0 is every mixed op at its cheapest op (0 for
        ``none``), 1 every mixed op at its most expensive one."""
        with torch.no_grad():
            return float(self.cost())

    def derived_flops(
        self, arch: Architecture | None = None, *, image_size: int | tuple[int, int] | None = None
    ) -> int:
        """FLOPs of one forward pass on one image of a derived architecture's network.

        The network is ``space.build(arch, ...)`` at the supernet's size (channels, cells,
        classes, input channels), counted by :func:`~optuna_nas.count_flops`.

        Args:
            arch: The architecture; by default :meth:`derive`'s.
            image_size: The images' side or ``(height, width)``; by default the
                constructor's.

        Raises:
            ValueError: No image size is known.
        """
        size = _image_size(image_size) or self.image_size
        if size is None:
            raise ValueError("derived_flops needs the images' size: pass image_size=...")
        return architecture_flops(self.space, self.derive() if arch is None else arch,
                                  image_size=size, **self._build_options)

    def _to_device(self, batch: Batch) -> Batch:
        images, labels = batch
        return (images.to(self.device, self.dtype, non_blocking=True),
                labels.to(self.device, non_blocking=True))

    # ---- one iteration --------------------------------------------------------------------
    def arch_gradient(
        self, train_batch: Batch, valid_batch: Batch
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """The architecture gradient of one iteration, without applying it.

        First order: the gradient of the validation loss w.r.t. the alphas at the current
        weights (``train_batch`` is unused). Second order: the gradient of the validation
        loss after one unrolled SGD step of the weights on ``train_batch``. With
        ``cost_weight > 0``, plus ``cost_weight`` times the gradient of :meth:`cost`.

        Args:
            train_batch: ``(images, labels)`` from the weights' half of the training data.
            valid_batch: ``(images, labels)`` from the architecture's half.

        Returns:
            The gradient per cell kind, and the validation loss it came from (detached;
            the cost term is not in it).
        """
        valid = self._to_device(valid_batch)
        if self.order == "first":
            loss = self.loss(valid)
            # Only the alphas' gradient: autograd skips the weights' gradients entirely.
            found = torch.autograd.grad(loss, self._alphas, allow_unused=True)
            grads = [torch.zeros_like(a) if g is None else g
                     for a, g in zip(self._alphas, found, strict=True)]
            loss = loss.detach()
        else:
            train = self._to_device(train_batch)
            state = self.weight_optimizer.state
            group = self.weight_optimizer.param_groups[0]
            grads, loss = unrolled_gradient(
                lambda detach: self.loss(train, detach_alphas=detach),
                lambda detach: self.loss(valid, detach_alphas=detach),
                self._weights,
                self._alphas,
                lr=self.weight_lr,
                momentum=float(group["momentum"]),
                momentum_buffers=[state.get(w, {}).get("momentum_buffer") for w in self._weights],
                weight_decay=float(group["weight_decay"]),
            )
        if self.cost_weight > 0:
            if self.cost_table is None:
                self.measure_costs(tuple(valid[0].shape[-2:]))  # type: ignore[arg-type]
            found = torch.autograd.grad(self.cost(), self._alphas)
            grads = [g.add(c, alpha=self.cost_weight)
                     for g, c in zip(grads, found, strict=True)]
        return dict(zip(self.alphas, grads, strict=True)), loss

    def step(self, train_batch: Batch, valid_batch: Batch) -> None:
        """One DARTS iteration: an architecture step, then a weight step.

        The architecture step applies :meth:`arch_gradient` with Adam; the weight step is
        SGD on ``train_batch`` with the updated alphas (fixed), the gradient clipped to
        ``grad_clip``.

        Args:
            train_batch: ``(images, labels)`` from the weights' half of the training data.
            valid_batch: ``(images, labels)`` from the architecture's half.

        Raises:
            NonFiniteLossError: A loss became NaN or infinite.
        """
        # Moved once: arch_gradient's own move is then a no-op.
        train, valid = self._to_device(train_batch), self._to_device(valid_batch)
        grads, valid_loss = self.arch_gradient(train, valid)
        for alpha, grad in zip(self._alphas, grads.values(), strict=True):
            alpha.grad = grad
        self.arch_optimizer.step()

        train_loss = self.loss(train, detach_alphas=True)
        grads_w = torch.autograd.grad(train_loss, self._weights, allow_unused=True)
        for weight, grad in zip(self._weights, grads_w, strict=True):
            weight.grad = grad  # None for weights the weighted supernet does not use
        if self.grad_clip is not None:
            nn.utils.clip_grad_norm_(self._weights, self.grad_clip)
        self.weight_optimizer.step()
        self.steps += 1
        # One host-device synchronisation per iteration, for both losses.
        losses = torch.stack([valid_loss, train_loss.detach()])
        if not bool(torch.isfinite(losses).all()):
            v, t = losses.tolist()
            raise NonFiniteLossError(
                f"DARTS' losses became non-finite at iteration {self.steps} (epoch "
                f"{self.epoch}): validation loss {v}, training loss {t}. Lower weight_lr "
                f"(now {self.weight_lr:g}) or arch_lr, or keep grad_clip on; the search is "
                "stopped."
            )

    def end_epoch(self) -> None:
        """Advance the weights' cosine schedule by one epoch."""
        self.weight_scheduler.step()
        self.epoch += 1

    # ---- reading the search ---------------------------------------------------------------
    def derive(self) -> Architecture:
        """The architecture derived from the current alphas (see :func:`derive`)."""
        return derive(self.space, self.alphas)

    def accuracy(
        self, dataset: Dataset[Any], *, arch: Architecture | None = None, batch_size: int = 64
    ) -> float:
        """Accuracy on a dataset of the weighted supernet, or of one architecture's path.

        Batch norms use each batch's statistics (there are no running statistics), so a
        lone last sample joins the batch before it.

        Args:
            dataset: Yields ``(image, label)`` pairs.
            arch: An architecture to score on the shared weights instead of the weighted
                supernet, e.g. :meth:`derive`'s.
            batch_size: Evaluation batch size.
        """
        n = len(dataset)  # type: ignore[arg-type]
        if n == 0:
            raise ValueError("Cannot compute an accuracy on an empty dataset.")
        starts = list(range(0, n, batch_size))
        if len(starts) > 1 and n - starts[-1] == 1:
            starts.pop()
        chunks = [torch.arange(a, b) for a, b in zip(starts, starts[1:] + [n], strict=True)]
        correct = 0
        was_training = self.supernet.training
        self.supernet.eval()
        try:
            with torch.no_grad():
                weights = self.op_weights(detach=True) if arch is None else None
                for index in chunks:
                    images, labels = self._to_device(_batch(dataset, index))
                    logits = self.supernet(images, arch, weights=weights)
                    correct += int((logits.argmax(1) == labels).sum())
        finally:
            self.supernet.train(was_training)
        return correct / n

    def alpha_weights(self) -> dict[str, torch.Tensor]:
        """The current op weights (softmax of the alphas) per cell kind, on the CPU."""
        weights = self.op_weights(detach=True)
        return {kind: w.to("cpu", torch.float32) for kind, w in weights.items()}


def _halves(data: ImageData, portion: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    n = len(data.train)  # type: ignore[arg-type]
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    cut = int(n * portion)
    weights, arch = order[:cut], order[cut:]
    if len(weights) < 2 or len(arch) < 2:
        raise ValueError(
            f"The {data.name} training split has {n} images; with train_portion={portion} "
            f"the weights get {len(weights)} and the architecture {len(arch)}, and each "
            "needs at least 2 (batch norm). Use more data or a train_portion nearer 0.5."
        )
    return weights, arch


def search(
    space: SearchSpace,
    data: ImageData,
    *,
    trial: optuna.Trial | None = None,
    epochs: int = 50,
    order: str = "first",
    arch_lr: float = 3e-4,
    arch_weight_decay: float = 1e-3,
    arch_betas: tuple[float, float] = (0.5, 0.999),
    weight_lr: float = 0.025,
    weight_lr_min: float = 0.001,
    momentum: float = 0.9,
    weight_decay: float = 3e-4,
    grad_clip: float | None = 5.0,
    batch_size: int = 64,
    train_portion: float = 0.5,
    channels: int = 16,
    layers: int | None = None,
    cells_per_stage: int | None = None,
    network_options: Mapping[str, Any] | None = None,
    init_scale: float = 1e-3,
    seed: int = 0,
    cost_weight: float = 0.0,
    op_costs: OpCosts | OpCostTable = "flops",
    device: str | torch.device | None = None,
    artifact_store: ArtifactStore | None = None,
) -> DartsResult:
    """Search a cell space with DARTS and derive its architecture.

    ``data.train`` is split at random (from ``seed``) into the weights' part
    (``train_portion``, half by default, as in DARTS) and the architecture's part. Each
    epoch pairs a minibatch of each part per iteration (:meth:`DartsSearch.step`: an
    architecture step on the architecture's minibatch, then a weight step on the weights'),
    as many iterations as the weights' part has full minibatches. After each epoch the op
    weights are recorded and the weighted supernet's accuracy on ``data.valid`` is computed
    (the supernet's accuracy, as DARTS reports it, not a derived network's).

    With a ``trial``, that accuracy is reported every epoch (``trial.report(accuracy,
    epoch)``) and the search stops with :class:`optuna.TrialPruned` when the study's pruner
    says so (in a multi-objective study, which has no ``trial.report``, the accuracies go
    to the user attr ``epoch_values`` and nothing is pruned). Whether it completes or is
    pruned, the trial gets the derived architecture as
    user attrs (``arch``: its string, ``arch_space``: the space's name) and, with an
    ``artifact_store``, two pictures as artifacts: the derived cell and the op weights over
    the epochs. :func:`enqueue_retraining` puts the derived architecture into a retraining
    study. The trial also gets ``darts_derived_flops`` (the derived network's FLOPs on one
    image) and, with a cost term, ``darts_cost_weight`` and ``darts_expected_cost``.

    With ``cost_weight > 0`` the architecture step also minimises ``cost_weight`` times the
    supernet's expected cost (FBNet's and ProxylessNAS' cost term; see
    :class:`DartsSearch`), from a per-op table measured at ``data.image_size`` on
    ``device``.

    Papers: Liu et al., "DARTS: Differentiable Architecture Search", ICLR 2019,
    https://arxiv.org/abs/1806.09055 (defaults are those of the paper's code); Wu et al.,
    "FBNet", CVPR 2019, https://arxiv.org/abs/1812.03443; Cai et al., "ProxylessNAS", ICLR
    2019, https://arxiv.org/abs/1812.00332.

    Args:
        space: A :class:`~optuna_nas.spaces.NasBench201Space`,
            :class:`~optuna_nas.spaces.DartsCells` or :class:`~optuna_nas.spaces.NasNetCells`.
        data: The splits: ``data.train`` searches, ``data.valid`` is reported.
        trial: A running trial to report to, or ``None``.
        epochs: Search epochs (50 in DARTS).
        order: ``"first"`` or ``"second"`` (DARTS' first- or second-order approximation).
        arch_lr: Adam's learning rate for the alphas.
        arch_weight_decay: The alphas' weight decay.
        arch_betas: Adam's betas for the alphas.
        weight_lr: The weights' initial SGD learning rate.
        weight_lr_min: The weights' final learning rate (cosine schedule).
        momentum: SGD momentum.
        weight_decay: The weights' weight decay.
        grad_clip: Max norm of the weights' gradient, or ``None``.
        batch_size: Minibatch size of both parts.
        train_portion: The weights' share of ``data.train``.
        channels: Channels of the first cells (C).
        layers: Cells of a DARTS / NASNet supernet (8).
        cells_per_stage: Cells per stage of a NAS-Bench-201 supernet (N, 5).
        network_options: Further supernet options, e.g. ``stem_multiplier``.
        init_scale: Standard deviation of the alphas' initial values.
        seed: Seed of the split, the minibatch order, the weights and the alphas.
        cost_weight: Weight of the expected cost in the architecture's loss (0: off).
        op_costs: ``"flops"``, ``"latency"``, a mapping from op name to cost, or an
            :class:`~optuna_nas.darts.OpCostTable` (see :class:`DartsSearch`).
        device: Where to search; by default CUDA when available, else the CPU.
        artifact_store: Where the trial's pictures go (needs ``trial``).

    Returns:
        The derived architecture, the accuracies and the history of the op weights.

    Raises:
        optuna.TrialPruned: The trial's pruner stopped the search.
        NonFiniteLossError: A loss became NaN or infinite.
    """
    portion = _check_search(data, trial, artifact_store, batch_size, train_portion)
    start = time.perf_counter()
    # The supernet, its alphas and both optimizers (Algorithm 1's initialisation).
    searcher = DartsSearch(
        space, num_classes=data.num_classes, in_channels=data.in_channels, channels=channels,
        layers=layers, cells_per_stage=cells_per_stage, network_options=network_options,
        order=order, epochs=epochs, arch_lr=arch_lr, arch_betas=arch_betas,
        arch_weight_decay=arch_weight_decay, weight_lr=weight_lr, weight_lr_min=weight_lr_min,
        momentum=momentum, weight_decay=weight_decay, grad_clip=grad_clip,
        init_scale=init_scale, seed=seed, cost_weight=cost_weight, op_costs=op_costs,
        image_size=data.image_size, device=device,
    )
    run = _Run.begin(searcher, data, portion, trial=trial, artifact_store=artifact_store,
                     epochs=epochs, batch_size=batch_size, seed=seed, start=start)
    for epoch in range(epochs):
        run.alternate(epoch)
        run.end_epoch(epoch)
        run.report_or_prune(epoch)
    found = run.result()
    if trial is not None:
        record_trial(trial, found, artifact_store=artifact_store)
    return found


def _check_search(
    data: ImageData,
    trial: optuna.Trial | None,
    artifact_store: ArtifactStore | None,
    batch_size: int,
    train_portion: float,
) -> float:
    if not isinstance(data, ImageData):
        raise TypeError(
            f"search needs an ImageData (e.g. optuna_nas.load_digits()), got "
            f"{type(data).__name__}."
        )
    if trial is not None and not isinstance(trial, optuna.Trial):
        raise TypeError(
            f"trial must be the running optuna.Trial an objective receives, got "
            f"{type(trial).__name__}."
        )
    if artifact_store is not None and trial is None:
        raise ValueError("artifact_store stores a trial's pictures; pass trial= as well.")
    _count("batch_size", batch_size, 2)
    portion = _positive("train_portion", train_portion)
    if portion >= 1:
        raise ValueError(
            f"train_portion must be in (0, 1), got {train_portion!r}: the rest of data.train "
            "trains the architecture."
        )
    if len(data.valid) == 0:  # type: ignore[arg-type]
        raise ValueError(f"The {data.name} data has an empty valid split; DARTS reports on it.")
    return portion


@dataclass
class _Run:
    """One call of :func:`search`: the searcher, the two parts of ``data.train`` it
    alternates between, and what it has recorded so far."""

    searcher: DartsSearch
    data: ImageData
    trial: optuna.Trial | None
    artifact_store: ArtifactStore | None
    epochs: int
    batch_size: int  # of the evaluations
    seed: int
    start: float  # perf_counter at the search's start
    weight_part: torch.Tensor  # indices into data.train
    arch_part: torch.Tensor
    size: int  # minibatch size of both parts
    history: list[dict[str, torch.Tensor]] = field(default_factory=list)
    accuracies: list[float] = field(default_factory=list)

    @classmethod
    def begin(
        cls,
        searcher: DartsSearch,
        data: ImageData,
        portion: float,
        *,
        trial: optuna.Trial | None,
        artifact_store: ArtifactStore | None,
        epochs: int,
        batch_size: int,
        seed: int,
        start: float,
    ) -> _Run:
        weight_part, arch_part = _halves(data, portion, seed)
        size = min(batch_size, len(weight_part), len(arch_part))
        return cls(searcher, data, trial, artifact_store, epochs, batch_size, seed, start,
                   weight_part, arch_part, size, history=[searcher.alpha_weights()])

    def alternate(self, epoch: int) -> None:
        """One epoch of Algorithm 1: an architecture step, then a weight step, per pair of
        minibatches, as many as the weights' part has full minibatches."""
        size = self.size
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        weight_order = self.weight_part[torch.randperm(len(self.weight_part), generator=generator)]
        arch_order = self.arch_part[torch.randperm(len(self.arch_part), generator=generator)]
        arch_batches = len(arch_order) // size
        try:
            for position in range(len(self.weight_part) // size):
                a = position % arch_batches  # a smaller architecture part wraps around
                self.searcher.step(
                    _batch(self.data.train, weight_order[position * size : (position + 1) * size]),
                    _batch(self.data.train, arch_order[a * size : (a + 1) * size]),
                )
        except NonFiniteLossError as error:
            if self.trial is not None:
                self.trial.set_user_attr("fail_reason", str(error))
            raise

    def end_epoch(self, epoch: int) -> None:
        """Anneal the weights' learning rate, record the op weights and the weighted
        supernet's validation accuracy."""
        searcher = self.searcher
        searcher.end_epoch()
        self.history.append(searcher.alpha_weights())
        self.accuracies.append(searcher.accuracy(self.data.valid, batch_size=self.batch_size))
        if _logger.isEnabledFor(logging.INFO):  # deriving only to log it
            _logger.info(
                "DARTS epoch %d/%d: supernet validation accuracy %.4f, derived %s",
                epoch + 1, self.epochs, self.accuracies[-1], searcher.derive(),
            )

    def report_or_prune(self, epoch: int) -> None:
        """Report the epoch's accuracy to the trial; if its pruner says so, record the
        trial and stop with :class:`optuna.TrialPruned`."""
        trial = self.trial
        if trial is None:
            return
        if report_epoch(trial, self.accuracies[-1], epoch):
            record_trial(trial, self.result(), artifact_store=self.artifact_store)
            raise optuna.TrialPruned(
                f"Pruned at epoch {epoch} with supernet validation accuracy "
                f"{self.accuracies[-1]:.4f}."
            )

    def result(self) -> DartsResult:
        """Derive the architecture from the alphas and gather what the search found."""
        searcher = self.searcher
        arch = searcher.derive()
        return DartsResult(
            architecture=arch,
            space=searcher.space,
            valid_accuracy=self.accuracies[-1] if self.accuracies else float("nan"),
            derived_accuracy=searcher.accuracy(self.data.valid, arch=arch,
                                               batch_size=self.batch_size),
            accuracy_history=list(self.accuracies),
            alpha_history=list(self.history),
            alphas={k: a.detach().to("cpu", torch.float32).clone()
                    for k, a in searcher.alphas.items()},
            edges=searcher.supernet.edges,
            ops=searcher.supernet.ops,
            order=searcher.order,
            epochs=searcher.epoch,
            seconds=time.perf_counter() - self.start,
            cost_weight=searcher.cost_weight,
            expected_cost=searcher.expected_cost() if searcher.cost_weight > 0 else None,
            derived_flops=searcher.derived_flops(arch),
            cost_table=searcher.cost_table,
        )
