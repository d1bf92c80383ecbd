"""The op registry: every registered op builds, keeps channels, strides, and trains."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import optuna_nas.nn._ops as ops_module
from optuna_nas.errors import ArchitectureError
from optuna_nas.nn import OP_SETS, canonical_op_name, create_op, get_op_set, list_ops, register_op

OPS = list_ops()
ALIASES = {
    "identity": "skip_connect",
    "conv_7x1_1x7": "conv_1x7_7x1",
    "conv_3x1_1x3": "conv_1x3_3x1",
}


def _run(op: nn.Module, x: torch.Tensor) -> torch.Tensor:
    x = x.clone().requires_grad_(True)
    out = op(x)
    (out * torch.randn_like(out)).sum().backward()
    assert x.grad is not None and x.grad.shape == x.shape
    return out


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("channels", [4, 8])
@pytest.mark.parametrize("name", OPS)
def test_every_op_builds_and_trains(name: str, channels: int, stride: int) -> None:
    op = create_op(name, channels, stride)
    assert isinstance(op, nn.Module)
    op.train()
    out = _run(op, torch.randn(2, channels, 8, 8))
    assert out.shape == (2, channels, 8 // stride, 8 // stride)
    assert torch.isfinite(out).all()
    for param_name, param in op.named_parameters():
        assert param.grad is not None, param_name
        assert torch.isfinite(param.grad).all(), param_name


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("name", OPS)
def test_every_op_handles_odd_sizes(name: str, stride: int) -> None:
    # Odd channels and odd spatial sizes: every op of a block must give the same shape.
    op = create_op(name, 3, stride)
    out = _run(op, torch.randn(2, 3, 7, 7))
    expected = 7 if stride == 1 else 4
    assert out.shape == (2, 3, expected, expected)


@pytest.mark.parametrize("name", OPS)
def test_affine_false(name: str) -> None:
    op = create_op(name, 4, 1, affine=False)
    norms = [m for m in op.modules() if isinstance(m, nn.BatchNorm2d)]
    assert all(not m.affine for m in norms)
    affine = create_op(name, 4, 1, affine=True)
    assert all(m.affine for m in affine.modules() if isinstance(m, nn.BatchNorm2d))


@pytest.mark.parametrize("name", OPS)
def test_ops_are_fresh_modules(name: str) -> None:
    a, b = create_op(name, 4, 1), create_op(name, 4, 1)
    assert a is not b
    assert all(pa is not pb for pa, pb in zip(a.parameters(), b.parameters(), strict=True))


@pytest.mark.parametrize("op_set", sorted(OP_SETS))
def test_every_op_set_entry_is_registered(op_set: str) -> None:
    names = OP_SETS[op_set]
    assert names and len(set(names)) == len(names)
    assert [n for n in names if n not in OPS] == []
    assert all(canonical_op_name(n) == n for n in names)
    assert get_op_set(op_set) == names
    assert get_op_set(list(names)) == names


def test_op_set_sizes() -> None:
    sizes = {name: len(ops) for name, ops in OP_SETS.items()}
    assert sizes == {"darts": 8, "nasnet": 13, "enas": 5, "nasbench201": 5}


def test_unknown_op_set() -> None:
    with pytest.raises(ArchitectureError, match="Unknown op set 'resnet'") as info:
        get_op_set("resnet")
    for name in OP_SETS:
        assert repr(name) in str(info.value)


def test_op_list_errors() -> None:
    with pytest.raises(ArchitectureError, match=r"Unknown op\(s\) \['conv_9x9'\]"):
        get_op_set(["sep_conv_3x3", "conv_9x9"])
    with pytest.raises(ArchitectureError, match="distinct op names"):
        get_op_set(["identity", "skip_connect"])  # an alias and its op are one op
    with pytest.raises(ArchitectureError, match="distinct op names"):
        get_op_set([])


def test_create_unknown_op() -> None:
    with pytest.raises(ArchitectureError, match="Unknown op 'conv_9x9'") as info:
        create_op("conv_9x9", 4)
    assert "sep_conv_3x3" in str(info.value)


@pytest.mark.parametrize(("alias", "name"), sorted(ALIASES.items()))
def test_aliases(alias: str, name: str) -> None:
    assert canonical_op_name(alias) == name
    assert name in OPS
    assert type(create_op(alias, 4, 2)) is type(create_op(name, 4, 2))
    assert canonical_op_name(name) == name


def test_op_semantics() -> None:
    x = torch.randn(2, 4, 8, 8)
    assert torch.equal(create_op("skip_connect", 4, 1)(x), x)
    assert torch.equal(create_op("none", 4, 1)(x), torch.zeros_like(x))
    assert torch.equal(create_op("none", 4, 2)(x), torch.zeros(2, 4, 4, 4))
    ones = torch.ones(1, 4, 8, 8)
    # Average pools ignore padding (count_include_pad=False), so borders stay 1.
    assert torch.allclose(create_op("avg_pool_3x3", 4, 1)(ones), ones)
    assert torch.allclose(create_op("avg_pool_3x3", 4, 2)(ones), torch.ones(1, 4, 4, 4))
    assert torch.equal(create_op("max_pool_3x3", 4, 1)(-ones), -ones)
    # A stride-2 skip connection is a factorized reduce, not a subsampling identity.
    assert not isinstance(create_op("skip_connect", 4, 2), nn.Identity)


def test_register_op(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ops_module, "_OPS", dict(ops_module._OPS))

    @register_op("test_double")
    def double(channels: int, stride: int, affine: bool) -> nn.Module:
        return nn.AvgPool2d(1, stride=stride)

    assert "test_double" in list_ops()
    assert get_op_set(["test_double", "none"]) == ("test_double", "none")
    assert create_op("test_double", 4, 2)(torch.ones(1, 4, 8, 8)).shape == (1, 4, 4, 4)
    with pytest.raises(ValueError, match="'test_double' is already registered"):
        register_op("test_double")(double)
    with pytest.raises(ValueError, match="'sep_conv_3x3' is already registered"):
        register_op("sep_conv_3x3")(double)


def test_register_op_is_undone() -> None:
    # The test above registers into a copy of the registry.
    assert "test_double" not in list_ops()


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("shape", [(2, 3, 8, 8), (2, 4, 7, 9), (1, 2, 1, 1)])
def test_avg_pool_matches_torch_without_padding_counts(
    stride: int, shape: tuple[int, int, int, int]
) -> None:
    """The CPU path (a depthwise all-ones convolution over the pixel counts) computes what
    ``avg_pool2d(..., count_include_pad=False)`` does, forward and backward."""
    from optuna_nas.nn._ops import AvgPool

    x = torch.randn(*shape, dtype=torch.float64, requires_grad=True)
    reference = torch.nn.functional.avg_pool2d(x, 3, stride, 1, count_include_pad=False)
    ours = AvgPool(3, stride)(x)
    torch.testing.assert_close(ours, reference)
    weights = torch.randn_like(reference)
    (grad_ref,) = torch.autograd.grad((reference * weights).sum(), x)
    (grad_ours,) = torch.autograd.grad((ours * weights).sum(), x)
    torch.testing.assert_close(grad_ours, grad_ref)


def test_avg_pool_counts_no_flops_on_any_device() -> None:
    """FLOP counts see a pooling, as PyTorch's counter defines it, not the stand-in
    convolution: the count does not depend on the device or on earlier calls."""
    from optuna_nas.nn._ops import AvgPool
    from optuna_nas.training import count_flops

    pool = nn.Sequential(AvgPool(3, 1))
    pool(torch.randn(1, 2, 8, 8))
    assert count_flops(pool, (2, 8, 8)) == 0
