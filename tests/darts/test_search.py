"""DARTS' search: one iteration is exactly DARTS' two steps, the search is reproducible and
records what it promises, a toy task that only a 3x3 convolution solves gets one, and bad
input gets a clear error."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from optuna_nas.darts import DartsResult, DartsSearch, search
from optuna_nas.data import ImageData
from optuna_nas.errors import ArchitectureError, NonFiniteLossError
from optuna_nas.spaces import DartsCells, NasBench201Space, NasNetCells, NasRLMacroSpace

TINY_NB201: dict[str, Any] = {"channels": 4, "cells_per_stage": 1}


def random_data(n_train: int = 48, n_valid: int = 20, seed: int = 0,
                classes: int = 3) -> ImageData:
    generator = torch.Generator().manual_seed(seed)

    def split(n: int) -> TensorDataset:
        return TensorDataset(torch.randn(n, 1, 8, 8, generator=generator),
                             torch.randint(0, classes, (n,), generator=generator))

    return ImageData(split(n_train), split(n_valid), None, classes, 1, 8, name="random")


def batch(seed: int, n: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(n, 1, 8, 8, generator=generator), torch.randint(0, 3, (n,),
                                                                       generator=generator)


# ---- one iteration ---------------------------------------------------------------------
def test_first_order_step_is_darts_two_steps() -> None:
    """step() equals the plain two-step recipe: Adam on the alphas with the validation
    loss's gradient, then clipped SGD on the weights with the training loss, alphas fixed."""
    options: dict[str, Any] = {"num_classes": 3, "in_channels": 1, "arch_lr": 0.05,
                               "grad_clip": 0.5, **TINY_NB201}
    ours, plain = DartsSearch(NasBench201Space(), **options), DartsSearch(
        NasBench201Space(), **options)
    for it in range(3):
        train, valid = batch(2 * it), batch(2 * it + 1)
        ours.step(train, valid)

        plain.arch_optimizer.zero_grad()
        plain.loss(valid).backward()
        plain.arch_optimizer.step()
        plain.weight_optimizer.zero_grad()
        plain.loss(train, detach_alphas=True).backward()
        nn.utils.clip_grad_norm_(plain.supernet.parameters(), 0.5)
        plain.weight_optimizer.step()
    for kind in ours.alphas:
        torch.testing.assert_close(ours.alphas[kind], plain.alphas[kind])
    for a, b in zip(ours.supernet.parameters(), plain.supernet.parameters(), strict=True):
        torch.testing.assert_close(a, b)
    assert ours.steps == 3
    assert not torch.equal(ours.alphas["cell"], DartsSearch(NasBench201Space(),
                                                            **options).alphas["cell"])


@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step\\(\\)`")
def test_defaults_are_the_papers() -> None:
    s = DartsSearch(NasBench201Space(), **TINY_NB201)
    (group,) = s.weight_optimizer.param_groups
    assert (group["lr"], group["momentum"], group["weight_decay"]) == (0.025, 0.9, 3e-4)
    (arch,) = s.arch_optimizer.param_groups
    assert (arch["lr"], arch["betas"], arch["weight_decay"]) == (3e-4, (0.5, 0.999), 1e-3)
    assert isinstance(s.arch_optimizer, torch.optim.Adam)
    assert s.grad_clip == 5.0 and s.order == "first"
    assert 2e-4 < float(s.alphas["cell"].detach().std()) < 5e-3  # 1e-3 * N(0, 1)
    # The ops' batch norms are not affine, as in DARTS' search network.
    assert s.supernet.network_options["affine"] is False
    edge_norms = [m for name, m in s.supernet.named_modules()
                  if ".edges." in name and isinstance(m, nn.BatchNorm2d)]
    assert edge_norms and not any(m.affine for m in edge_norms)
    # The cosine schedule runs from 0.025 down to 0.001 over `epochs`.
    short = DartsSearch(NasBench201Space(), epochs=4, **TINY_NB201)
    lrs = [short.weight_lr]
    for _ in range(4):
        short.end_epoch()
        lrs.append(short.weight_lr)
    assert lrs[0] == 0.025 and math.isclose(lrs[-1], 0.001)
    assert lrs == sorted(lrs, reverse=True) and short.epoch == 4


def test_construction_leaves_the_global_generator_alone() -> None:
    state = torch.get_rng_state()
    DartsSearch(DartsCells(steps=1), channels=2, layers=3, seed=5)
    assert torch.equal(torch.get_rng_state(), state)


# ---- the search ------------------------------------------------------------------------
def test_search_records_history_and_repeats_with_its_seed() -> None:
    data = random_data()
    options: dict[str, Any] = {"epochs": 2, "batch_size": 8, **TINY_NB201}
    result = search(NasBench201Space(), data, **options)
    assert isinstance(result, DartsResult)
    assert result.epochs == 2 and len(result.accuracy_history) == 2
    assert result.valid_accuracy == result.accuracy_history[-1]
    assert len(result.alpha_history) == 3  # initialisation and each epoch
    for entry in result.alpha_history:
        assert entry["cell"].shape == (6, 5)
        torch.testing.assert_close(entry["cell"].sum(1), torch.ones(6))
    assert result.edges == {"cell": ["1<-0", "2<-0", "2<-1", "3<-0", "3<-1", "3<-2"]}
    assert result.ops == NasBench201Space().ops
    assert result.genotype == str(result.architecture)
    from optuna_nas.darts import derive

    assert derive(NasBench201Space(), result.alphas) == result.architecture
    assert 0 <= result.derived_accuracy <= 1 and result.seconds > 0

    again = search(NasBench201Space(), data, **options)
    assert again.accuracy_history == result.accuracy_history
    assert all(torch.equal(a["cell"], b["cell"])
               for a, b in zip(again.alpha_history, result.alpha_history, strict=True))
    other = search(NasBench201Space(), data, **{**options, "seed": 1})
    assert not torch.equal(other.alphas["cell"], result.alphas["cell"])


@pytest.mark.parametrize("space", [DartsCells(steps=2), NasNetCells(steps=2)],
                         ids=["darts", "nasnet"])
def test_cell_spaces_search_second_order(space: DartsCells) -> None:
    result = search(space, random_data(), epochs=1, order="second", batch_size=8,
                    channels=2, layers=3)
    assert result.architecture.space == space.name
    space._check_space(result.architecture)
    assert set(result.alphas) == {"normal", "reduce"}
    # Both cells were searched: their alphas left the initialisation.
    for kind in ("normal", "reduce"):
        assert not torch.equal(result.alpha_history[0][kind], result.alpha_history[1][kind])


def test_non_finite_loss_stops_the_search_with_a_clear_error() -> None:
    data = random_data()
    images, labels = data.train.tensors  # type: ignore[attr-defined]
    poisoned = ImageData(TensorDataset(images * math.nan, labels), data.valid, None, 3, 1, 8)
    with pytest.raises(NonFiniteLossError, match=r"non-finite at iteration 1 .*Lower weight_lr"):
        search(NasBench201Space(), poisoned, epochs=1, batch_size=8, **TINY_NB201)


def test_accuracy_joins_a_lone_last_sample_to_its_batch() -> None:
    s = DartsSearch(NasBench201Space(), num_classes=3, in_channels=1, **TINY_NB201)
    data = random_data(n_valid=9)
    assert 0 <= s.accuracy(data.valid, batch_size=4) <= 1
    assert 0 <= s.accuracy(data.valid, arch=s.derive(), batch_size=8) <= 1


# ---- a task only a 3x3 convolution solves ----------------------------------------------
def dot_pairs(n: int, seed: int, size: int = 8, gap: int = 4) -> TensorDataset:
    """Two dots ``gap`` pixels apart, horizontally (class 0) or vertically (class 1), on
    faint noise. Every 3x3 window holds at most one dot, so the orientation is invisible to
    the stem's 3x3 convolution and to 1x1 ops; a 3x3 convolution on top of the stem sees
    5x5, enough for both dots."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 2, (n,), generator=generator)
    images = 0.1 * torch.randn(n, 1, size, size, generator=generator)
    across = torch.randint(0, size, (n,), generator=generator)
    along = torch.randint(0, size - gap, (n,), generator=generator)
    for i in range(n):
        a, b = int(across[i]), int(along[i])
        for offset in (0, gap):
            if labels[i] == 0:
                images[i, 0, a, b + offset] += 1.0
            else:
                images[i, 0, b + offset, a] += 1.0
    return TensorDataset(images, labels)


@pytest.mark.parametrize(("order", "epochs"), [("first", 10), ("second", 6)])
def test_a_task_only_a_3x3_convolution_solves_derives_it(order: str, epochs: int) -> None:
    """With the ops none, skip_connect, nor_conv_1x1 and nor_conv_3x3, only nor_conv_3x3
    widens the receptive field beyond the stem's 3x3. (docs/darts.md: with 10 epochs,
    seeds 0 to 3 of both orders all derive it on both normal edges.)"""
    ops = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3")
    space = DartsCells(steps=1, ops=ops)
    data = ImageData(dot_pairs(512, 0), dot_pairs(256, 1), None, 2, 1, 8, name="dot pairs")
    result = search(space, data, order=order, epochs=epochs, channels=8, layers=3, batch_size=32,
                    arch_lr=1e-2, weight_lr=0.1, seed=0)
    assert result.valid_accuracy > 0.9  # the supernet learned the task
    g = space.genotype(result.architecture)
    # The normal cell (the full-resolution one) takes the 3x3 convolution on both edges,
    # by a clear margin over every other op.
    assert g.normal == [("nor_conv_3x3", 0), ("nor_conv_3x3", 1)]
    weights = result.alpha_history[-1]["normal"]
    conv = ops.index("nor_conv_3x3")
    others = torch.cat([weights[:, :conv], weights[:, conv + 1:]], dim=1)
    assert bool((weights[:, conv] - others.max(1).values > 0.03).all()), weights


# ---- bad input -------------------------------------------------------------------------
BAD: list[tuple[dict[str, Any], type[Exception], str]] = [
    ({"order": "third"}, ValueError, "order must be 'first' or 'second'"),
    ({"epochs": 0}, ValueError, "epochs must be an integer of at least 1"),
    ({"arch_lr": -1.0}, ValueError, "arch_lr must be a positive"),
    ({"weight_lr": 0}, ValueError, "weight_lr must be a positive"),
    ({"weight_lr": float("nan")}, ValueError, "weight_lr must be a positive finite"),
    ({"weight_lr_min": 0.1}, ValueError, "must not exceed weight_lr"),
    ({"momentum": 1.0}, ValueError, r"momentum must be in \[0, 1\)"),
    ({"arch_betas": (0.5,)}, ValueError, "arch_betas must be two numbers"),
    ({"grad_clip": 0}, ValueError, "grad_clip must be a positive"),
    ({"batch_size": 1}, ValueError, "batch_size must be an integer of at least 2"),
    ({"train_portion": 1.0}, ValueError, r"train_portion must be in \(0, 1\)"),
    ({"train_portion": 0.01}, ValueError, "each needs at least 2"),
    ({"layers": 3}, ValueError, "sized by cells_per_stage"),
    ({"seed": 1.5}, ValueError, "seed must be an integer"),
]


@pytest.mark.parametrize(("options", "error", "match"), BAD,
                         ids=[next(iter(o)) for o, _, _ in BAD])
def test_bad_arguments_get_a_clear_error(options: dict[str, Any], error: type[Exception],
                                         match: str) -> None:
    settings = {"epochs": 1, "batch_size": 8, **TINY_NB201, **options}
    if "layers" in options:
        del settings["cells_per_stage"]
    with pytest.raises(error, match=match):
        search(NasBench201Space(), random_data(), **settings)


def test_bad_spaces_data_and_trials_get_a_clear_error() -> None:
    data = random_data()
    with pytest.raises(ArchitectureError, match="NasBench201Space, DartsCells and NasNetCells"):
        search(NasRLMacroSpace(layers=2), data, epochs=1)
    with pytest.raises(ValueError, match="sized by layers"):
        search(DartsCells(steps=1), data, epochs=1, cells_per_stage=1)
    with pytest.raises(ValueError, match="every cell is a reduction cell; use layers >= 3"):
        search(DartsCells(steps=1), data, epochs=1, layers=2)
    with pytest.raises(TypeError, match="needs an ImageData"):
        search(NasBench201Space(), data.train, epochs=1)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="running optuna.Trial"):
        search(NasBench201Space(), data, trial="trial", epochs=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="pass trial= as well"):
        search(NasBench201Space(), data, epochs=1, artifact_store=object())  # type: ignore[arg-type]
    empty = ImageData(data.train, TensorDataset(torch.zeros(0, 1, 8, 8),
                                                torch.zeros(0, dtype=torch.long)), None, 3, 1, 8)
    with pytest.raises(ValueError, match="empty valid split"):
        search(NasBench201Space(), empty, epochs=1)
