"""Networks built from architectures: every space's sampled architectures train a step."""

from __future__ import annotations

import copy

import pytest
import torch

from optuna_nas.nn import CellNetwork, Genotype, NasBench201Network
from optuna_nas.nn._darts import drop_path
from optuna_nas.spaces import (
    DartsCells,
    DartsRecurrentSpace,
    NasBench201Space,
    SearchSpace,
    published_cell,
)
from tests.conftest import tiny_network_options


def _step(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    out = model(x)
    logits = out[0] if isinstance(out, tuple) else out
    logits.logsumexp(1).sum().backward()
    return logits


@pytest.mark.parametrize("seed", [0, 1])
def test_sampled_architectures_train(space: SearchSpace, seed: int) -> None:
    if isinstance(space, DartsRecurrentSpace):
        pytest.skip("a language model reads token ids: tests/darts/test_recurrent.py trains it")
    arch = space.sample(seed)
    options = tiny_network_options(space, channels=4 + 2 * seed)
    in_channels = 1 if seed else 3
    model = space.build(arch, in_channels=in_channels, **options)
    model.train()
    if hasattr(model, "drop_path_prob"):
        model.drop_path_prob = 0.3
    x = torch.randn(2, in_channels, 8 * (1 + seed), 8 * (1 + seed))
    logits = _step(model, x)
    assert logits.shape == (2, 5)
    assert torch.isfinite(logits).all()
    # A cell whose successor never reads it is legitimately dead, so not every param need
    # get a gradient; the ends of the network and most of it must.
    grads = {name: p.grad for name, p in model.named_parameters()}
    assert all(grads[n] is not None for n in grads if n.startswith(("stem", "classifier")))
    assert sum(g is not None for g in grads.values()) > 0.5 * len(grads)
    assert all(torch.isfinite(g).all() for g in grads.values() if g is not None)
    model.eval()
    with torch.no_grad():
        first, second = model(x), model(x)
    assert torch.equal(first, second)  # no drop path, no dropout, running BN statistics


def test_nasbench201_network_shape() -> None:
    space = NasBench201Space()
    arch = space.parse(
        "|nor_conv_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|none~0|avg_pool_3x3~1|nor_conv_3x3~2|"
    )
    model = space.build(arch, channels=4, cells_per_stage=2, num_classes=7, in_channels=1)
    assert isinstance(model, NasBench201Network)
    assert len(model.cells) == 3 * 2 + 2  # cells and the two residual reductions
    assert model.classifier.in_features == 16
    assert _step(model, torch.randn(3, 1, 16, 16)).shape == (3, 7)
    with pytest.raises(ValueError, match="6 edges"):
        NasBench201Network(["none"] * 5)


def test_nasbench201_all_none_cell_still_trains() -> None:
    space = NasBench201Space()
    arch = space.parse("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|")
    model = space.build(arch, channels=4, cells_per_stage=1)
    assert _step(model, torch.randn(2, 3, 8, 8)).shape == (2, 10)


@pytest.mark.parametrize("layers", [1, 2, 3, 6, 8])
def test_cell_network_reductions(layers: int) -> None:
    space = DartsCells(steps=2, ops="enas")
    model = space.build(space.sample(0), channels=4, layers=layers, num_classes=3)
    assert isinstance(model, CellNetwork)
    assert len(model.cells) == layers
    reductions = [i for i, cell in enumerate(model.cells) if cell.reduction]
    assert reductions == sorted({layers // 3, 2 * layers // 3})
    assert _step(model, torch.randn(2, 3, 8, 8)).shape == (2, 3)


def test_cell_network_rejects_empty() -> None:
    space, arch = published_cell("DARTS_V2")
    with pytest.raises(ValueError, match="layers >= 1"):
        space.build(arch, layers=0)


def test_auxiliary_does_not_change_logits() -> None:
    # With 3 layers the auxiliary head reads the last cell's output: the logits must match
    # those of the same network without the head.
    space, arch = published_cell("DARTS_V2")
    model = space.build(arch, channels=4, layers=3, num_classes=5, auxiliary=True)
    assert model.aux_index == len(model.cells) - 1
    plain = copy.deepcopy(model)
    plain.auxiliary_head = None
    x = torch.randn(2, 3, 8, 8)
    model.train()
    plain.train()
    logits, aux = model(x)
    assert torch.allclose(logits, plain(x))
    model.eval()
    plain.eval()
    assert torch.allclose(model(x), plain(x))


def test_auxiliary_only_when_asked() -> None:
    space, arch = published_cell("DARTS_V1")
    model = space.build(arch, channels=4, layers=3)
    assert model.auxiliary_head is None
    model.train()
    assert isinstance(model(torch.randn(2, 3, 8, 8)), torch.Tensor)


def test_drop_path() -> None:
    x = torch.ones(1000, 2, 1, 1)
    assert drop_path(x, 0.0) is x
    torch.manual_seed(0)
    out = drop_path(x, 0.25)
    kept = out[:, 0, 0, 0] != 0
    assert 0.65 < kept.float().mean().item() < 0.85
    assert torch.allclose(out[kept], torch.full_like(out[kept], 1 / 0.75))
    assert torch.equal(out[:, 0], out[:, 1])  # whole samples are dropped


def test_drop_path_only_in_training() -> None:
    space, arch = published_cell("DARTS_V2")
    model = space.build(arch, channels=4, layers=3)
    model.drop_path_prob = 0.5
    x = torch.randn(4, 3, 8, 8)
    model.eval()
    assert torch.equal(model(x), model(x))
    model.train()
    torch.manual_seed(1)
    dropped = model(x)
    model.drop_path_prob = 0.0
    assert not torch.allclose(dropped, model(x))


def test_genotype_defaults() -> None:
    genotype = Genotype([("skip_connect", 0), ("skip_connect", 1)], [2], [], [])
    assert genotype.normal_combine == [] and genotype.reduce_combine == []
