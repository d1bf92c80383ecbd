"""Published cells: each one round-trips, builds and trains a step; DARTS_V2 has its size."""

from __future__ import annotations

import pytest
import torch

from optuna_nas.errors import ArchitectureError
from optuna_nas.nn import CellNetwork
from optuna_nas.spaces import DartsCells, NasNetCells, list_published_cells, published_cell

# The genotypes exactly as DARTS' genotypes.py prints them (Liu et al. 2019, cnn/genotypes.py).
DARTS_PRINTED = {
    "NASNet-A": (
        "Genotype(normal=[('sep_conv_5x5', 1), ('sep_conv_3x3', 0), ('sep_conv_5x5', 0), "
        "('sep_conv_3x3', 0), ('avg_pool_3x3', 1), ('skip_connect', 0), ('avg_pool_3x3', 0), "
        "('avg_pool_3x3', 0), ('sep_conv_3x3', 1), ('skip_connect', 1)], "
        "normal_concat=[2, 3, 4, 5, 6], reduce=[('sep_conv_5x5', 1), ('sep_conv_7x7', 0), "
        "('max_pool_3x3', 1), ('sep_conv_7x7', 0), ('avg_pool_3x3', 1), ('sep_conv_5x5', 0), "
        "('skip_connect', 3), ('avg_pool_3x3', 2), ('sep_conv_3x3', 2), ('max_pool_3x3', 1)], "
        "reduce_concat=[4, 5, 6])"
    ),
    "AmoebaNet-A": (
        "Genotype(normal=[('avg_pool_3x3', 0), ('max_pool_3x3', 1), ('sep_conv_3x3', 0), "
        "('sep_conv_5x5', 2), ('sep_conv_3x3', 0), ('avg_pool_3x3', 3), ('sep_conv_3x3', 1), "
        "('skip_connect', 1), ('skip_connect', 0), ('avg_pool_3x3', 1)], "
        "normal_concat=[4, 5, 6], reduce=[('avg_pool_3x3', 0), ('sep_conv_3x3', 1), "
        "('max_pool_3x3', 0), ('sep_conv_7x7', 2), ('sep_conv_7x7', 0), ('avg_pool_3x3', 1), "
        "('max_pool_3x3', 0), ('max_pool_3x3', 1), ('conv_7x1_1x7', 0), ('sep_conv_3x3', 5)], "
        "reduce_concat=[3, 4, 6])"
    ),
    "DARTS_V1": (
        "Genotype(normal=[('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('skip_connect', 0), "
        "('sep_conv_3x3', 1), ('skip_connect', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), "
        "('skip_connect', 2)], normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), "
        "('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 0), ('max_pool_3x3', 0), "
        "('skip_connect', 2), ('skip_connect', 2), ('avg_pool_3x3', 0)], "
        "reduce_concat=[2, 3, 4, 5])"
    ),
    "DARTS_V2": (
        "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), "
        "('sep_conv_3x3', 1), ('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), "
        "('dil_conv_3x3', 2)], normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), "
        "('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), ('max_pool_3x3', 0), "
        "('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], "
        "reduce_concat=[2, 3, 4, 5])"
    ),
}
CONCATS = {  # (normal_concat, reduce_concat)
    "NASNet-A": ([2, 3, 4, 5, 6], [4, 5, 6]),
    "AmoebaNet-A": ([4, 5, 6], [3, 4, 6]),
    "DARTS_V1": ([2, 3, 4, 5], [2, 3, 4, 5]),
    "DARTS_V2": ([2, 3, 4, 5], [2, 3, 4, 5]),
}
CELLS = list_published_cells()


def test_list() -> None:
    assert CELLS == sorted(CELLS)
    assert {"DARTS_V1", "DARTS_V2", "NASNet-A", "AmoebaNet-A"} <= set(CELLS)


def test_unknown_cell() -> None:
    with pytest.raises(ArchitectureError, match="Unknown published cell 'DARTS_V3'") as info:
        published_cell("DARTS_V3")
    assert "DARTS_V2" in str(info.value)


@pytest.mark.parametrize("name", CELLS)
def test_round_trip(name: str) -> None:
    space, arch = published_cell(name)
    assert arch.space == space.name
    assert space.parse(str(arch)) == arch
    assert space.from_params(space.to_params(arch)) == arch
    again_space, again = published_cell(name)
    assert again == arch and type(again_space) is type(space)


@pytest.mark.parametrize("name", CELLS)
def test_matches_darts_genotypes(name: str) -> None:
    if name not in DARTS_PRINTED:
        pytest.skip(f"no reference string for {name}")
    space, arch = published_cell(name)
    assert space.parse(DARTS_PRINTED[name]) == arch
    assert isinstance(space, NasNetCells if name in ("NASNet-A", "AmoebaNet-A") else DartsCells)


@pytest.mark.parametrize("name", sorted(CONCATS))
def test_concat_lists(name: str) -> None:
    space, arch = published_cell(name)
    genotype = space.genotype(arch)
    assert (genotype.normal_concat, genotype.reduce_concat) == CONCATS[name]


@pytest.mark.parametrize("name", CELLS)
@pytest.mark.parametrize(
    ("in_channels", "size", "channels", "layers"), [(3, 8, 4, 2), (1, 16, 6, 3)]
)
def test_builds_and_trains(
    name: str, in_channels: int, size: int, channels: int, layers: int
) -> None:
    space, arch = published_cell(name)
    model = space.build(
        arch, channels=channels, layers=layers, num_classes=3, in_channels=in_channels
    )
    model.train()
    model.drop_path_prob = 0.2
    out = model(torch.randn(2, in_channels, size, size))
    assert isinstance(out, torch.Tensor) and out.shape == (2, 3)
    out.logsumexp(1).sum().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())  # type: ignore[arg-type]


def _size_without_auxiliary(model: torch.nn.Module) -> int:
    # DARTS' utils.count_parameters_in_MB skips every param whose name has "auxiliary".
    return sum(p.numel() for n, p in model.named_parameters() if "auxiliary" not in n)


def test_darts_v2_evaluation_network_size() -> None:
    space, arch = published_cell("DARTS_V2")
    model = space.build(arch, channels=36, layers=20, num_classes=10, auxiliary=True)
    assert isinstance(model, CellNetwork)
    size = _size_without_auxiliary(model)
    assert abs(size - 3.3e6) <= 0.05e6, size
    assert sum(p.numel() for p in model.parameters()) > size  # the head exists, not counted


@pytest.mark.parametrize("name", CELLS)
def test_auxiliary_head(name: str) -> None:
    space, arch = published_cell(name)
    model = space.build(arch, channels=4, layers=3, num_classes=5, auxiliary=True)
    x = torch.randn(2, 3, 16, 16)
    model.train()
    out = model(x)
    assert isinstance(out, tuple) and len(out) == 2
    logits, aux = out
    assert logits.shape == aux.shape == (2, 5)
    (logits.sum() + 0.4 * aux.sum()).backward()
    assert all(p.grad is not None for n, p in model.named_parameters() if "auxiliary" in n)
    model.eval()
    with torch.no_grad():
        logits = model(x)
    assert isinstance(logits, torch.Tensor) and logits.shape == (2, 5)
