"""Auto-DeepLab's search: cell alphas and network betas learned jointly, first order."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import optuna
import torch
from torch import nn
from torch.utils.data import DataLoader, Subset

from optuna_nas._reporting import report_epoch
from optuna_nas.autodeeplab._data import SegmentationData
from optuna_nas.autodeeplab._decode import decode
from optuna_nas.autodeeplab._network import level_rate
from optuna_nas.autodeeplab._space import AutoDeepLabSpace
from optuna_nas.autodeeplab._supernet import AutoDeepLabSupernet
from optuna_nas.autodeeplab._train import evaluate_miou
from optuna_nas.errors import DatasetError
from optuna_nas.spaces._base import Architecture
from optuna_nas.training import _diverged, _resolve_device, seed_everything

__all__ = ["SearchResult", "search"]


@dataclass(frozen=True)
class SearchResult:
    """What an Auto-DeepLab search found.

    Args:
        architecture: The decoded architecture (Viterbi path and DARTS cell).
        space: The space it belongs to; ``space.build(architecture, ...)`` makes the network.
        op_weights: The softmax of the alphas, ``(edges, ops)``.
        transition_probabilities: The normalised betas, ``(layers, levels, 3)``: from each
            level, the probability of the finer, same and coarser level next.
        transition_matrix: The same as ``(layers, levels, levels)`` matrices.
        history: The supernet's validation mean IoU after each epoch.
        architectures: The architecture decoded after each epoch (strings).
        supernet: The trained supernet.
    """

    architecture: Architecture
    space: AutoDeepLabSpace
    op_weights: torch.Tensor
    transition_probabilities: torch.Tensor
    transition_matrix: torch.Tensor
    history: list[float]
    architectures: list[str]
    supernet: AutoDeepLabSupernet = field(repr=False)

    @property
    def valid_miou(self) -> float:
        """The supernet's validation mean IoU after the last epoch."""
        return self.history[-1]

    @property
    def path(self) -> list[int]:
        """The level of each layer."""
        return self.space.path(self.architecture)

    @property
    def rates(self) -> list[int]:
        """The downsampling rate of each layer."""
        return [level_rate(level) for level in self.path]

    @property
    def cell(self) -> list[tuple[str, int]]:
        """The cell: two ``(op, input)`` pairs per block."""
        return self.space.cell(self.architecture)


def _finite_or_stop(loss: torch.Tensor, trial: optuna.Trial | None, what: str) -> None:
    value = loss.item()
    if not math.isfinite(value):
        _diverged(trial, f"The {what} loss became {value}")


def search(
    data: SegmentationData,
    *,
    layers: int = 12,
    blocks: int = 5,
    filter_multiplier: int = 8,
    ops: str | Sequence[str] = "darts",
    epochs: int = 40,
    warmup_epochs: int = 20,
    batch_size: int = 16,
    arch_lr: float = 3e-3,
    arch_weight_decay: float = 1e-3,
    weight_lr: float = 0.025,
    weight_lr_min: float = 0.001,
    momentum: float = 0.9,
    weight_decay: float = 3e-4,
    grad_clip: float | None = 5.0,
    aspp_rates: Sequence[float] = (6,),
    trial: optuna.Trial | None = None,
    seed: int = 0,
    device: str | torch.device | None = None,
) -> SearchResult:
    """Search Auto-DeepLab's hierarchical space by gradient descent, then decode.

    The training split is divided at random into two halves: the weights train on one,
    the architecture (alphas and betas) on the other. Each step first updates the
    architecture on a minibatch of its half (Adam, first order: the gradient at the
    current weights), then the weights on a minibatch of theirs (SGD with momentum, a
    cosine learning rate from ``weight_lr`` to ``weight_lr_min``, gradient clipping). The
    architecture is frozen for the first ``warmup_epochs`` epochs, so that the weights are
    trained before they judge it. After every epoch the supernet's validation mean IoU is
    reported to the trial (which may prune; in a multi-objective study it goes to the user
    attr ``epoch_values`` instead) and the architecture is decoded: the path by
    Viterbi over the transition probabilities, the cell as in DARTS. The defaults are the
    paper's: L = 12, B = 5, F = 8, 40 epochs with the architecture step from epoch 20,
    Adam at 3e-3 with weight decay 1e-3, SGD at 0.025 to 0.001.

    Paper: Liu et al., "Auto-DeepLab: Hierarchical Neural Architecture Search for Semantic
    Image Segmentation", CVPR 2019, https://arxiv.org/abs/1901.02985 (Sec. 4 and 5.1).

    Args:
        data: The splits; ``data.train`` is halved, ``data.valid`` is reported.
        layers: ``L``, layers after the stem.
        blocks: ``B``, blocks per cell.
        filter_multiplier: ``F``: a cell at rate ``s`` has blocks of ``F * s / 4`` channels.
        ops: An op set name or a list of op names.
        epochs: Search epochs.
        warmup_epochs: Epochs before the first architecture step.
        batch_size: Minibatch size of both halves.
        arch_lr: Adam's learning rate for the alphas and betas.
        arch_weight_decay: Their weight decay.
        weight_lr: Initial learning rate of the weights.
        weight_lr_min: Final learning rate of the weights' cosine schedule.
        momentum: SGD momentum.
        weight_decay: The weights' decay.
        grad_clip: Max gradient norm of the weights, or ``None``.
        aspp_rates: The heads' atrous rates at output stride 16 (scaled to each level).
        trial: The Optuna trial to report to, or ``None``.
        seed: Seed of the initialisation, the split and the data order.
        device: Where to train; by default CUDA when available, else the CPU.

    Returns:
        The decoded architecture, the architecture weights and the mean IoU history.

    Raises:
        optuna.TrialPruned: The trial's pruner stopped the search.
        NonFiniteLossError: A loss became NaN or infinite.
    """
    if epochs < 1 or not 0 <= warmup_epochs <= epochs:
        raise ValueError(
            f"Need epochs >= 1 and 0 <= warmup_epochs <= epochs, got {epochs} and "
            f"{warmup_epochs}."
        )
    n_train = len(data.train)  # type: ignore[arg-type]
    if n_train < 2:
        raise DatasetError(
            f"The training split has {n_train} image(s); a search divides it between the "
            "weights and the architecture, so it needs at least 2."
        )
    dev = _resolve_device(device)
    seed_everything(seed)
    space = AutoDeepLabSpace(layers=layers, blocks=blocks, ops=ops)
    supernet = AutoDeepLabSupernet(
        data.num_classes, layers=layers, blocks=blocks, filter_multiplier=filter_multiplier,
        in_channels=data.in_channels, ops=ops, aspp_rates=aspp_rates,
    ).to(dev)
    order = np.random.default_rng(seed).permutation(n_train).tolist()
    halves = (sorted(order[: (n_train + 1) // 2]), sorted(order[(n_train + 1) // 2 :]))
    generator = torch.Generator().manual_seed(seed)
    loaders = [
        DataLoader(Subset(data.train, half), batch_size=batch_size, shuffle=True,
                   generator=generator,
                   # Batch norm needs two samples: drop a lone last one.
                   drop_last=len(half) > batch_size and len(half) % batch_size == 1)
        for half in halves
    ]
    weight_optimizer = torch.optim.SGD(supernet.weight_parameters(), lr=weight_lr,
                                       momentum=momentum, weight_decay=weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(weight_optimizer, epochs,
                                                           eta_min=weight_lr_min)
    arch_optimizer = torch.optim.Adam(supernet.arch_parameters(), lr=arch_lr,
                                      betas=(0.9, 0.999), weight_decay=arch_weight_decay)
    criterion = nn.CrossEntropyLoss(ignore_index=data.ignore_index)
    history: list[float] = []
    architectures: list[str] = []
    arch = None
    for epoch in range(epochs):
        supernet.train()
        for (images, masks), (arch_images, arch_masks) in zip(*loaders, strict=False):
            if epoch >= warmup_epochs:
                arch_optimizer.zero_grad(set_to_none=True)
                loss = criterion(supernet(arch_images.to(dev)), arch_masks.to(dev))
                _finite_or_stop(loss, trial, f"architecture step's (epoch {epoch})")
                loss.backward()
                arch_optimizer.step()
            weight_optimizer.zero_grad(set_to_none=True)
            loss = criterion(supernet(images.to(dev)), masks.to(dev))
            _finite_or_stop(loss, trial, f"weight step's (epoch {epoch}, lr={weight_lr:g})")
            loss.backward()
            if grad_clip is not None:
                nn.utils.clip_grad_norm_(supernet.weight_parameters(), grad_clip)
            weight_optimizer.step()
        scheduler.step()
        if not all(bool(torch.isfinite(p).all()) for p in supernet.parameters()):
            _diverged(trial, f"The supernet's parameters became NaN or infinite in epoch {epoch}")
        miou = evaluate_miou(supernet, data.valid, data.num_classes,
                             ignore_index=data.ignore_index, batch_size=batch_size, device=dev)
        with torch.no_grad():
            arch = decode(space, supernet.op_weights(), supernet.transition_matrix())
        history.append(miou)
        architectures.append(str(arch))
        if trial is not None and report_epoch(trial, miou, epoch):
            raise optuna.TrialPruned(
                f"Pruned at epoch {epoch} with supernet validation mean IoU {miou:.4f}."
            )
    assert arch is not None
    if trial is not None:
        trial.set_user_attr("architecture", str(arch))
    with torch.no_grad():
        return SearchResult(
            architecture=arch,
            space=space,
            op_weights=supernet.op_weights().cpu(),
            transition_probabilities=supernet.transition_probabilities().cpu(),
            transition_matrix=supernet.transition_matrix().cpu(),
            history=history,
            architectures=architectures,
            supernet=supernet,
        )
