"""The registry of cell operations.

Every op is made by a factory ``factory(channels, stride, affine) -> nn.Module`` that keeps
the channel count and divides the spatial size by ``stride``. Op sets (DARTS' 8, NASNet's
13, ENAS' 5, NAS-Bench-201's 5) are named tuples of registered op names.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator

import torch
from torch import nn

from optuna_nas.errors import ArchitectureError

OpFactory = Callable[[int, int, bool], nn.Module]

_OPS: dict[str, OpFactory] = {}

# Other names the literature uses for registered ops (TF-slim's NASNet code, DARTS' code).
_ALIASES = {
    "identity": "skip_connect",
    "conv_7x1_1x7": "conv_1x7_7x1",
    "conv_3x1_1x3": "conv_1x3_3x1",
}


def register_op(name: str) -> Callable[[OpFactory], OpFactory]:
    """Register an op factory under a name (a decorator).

    Args:
        name: The op's name, as it appears in architecture strings.
    """

    def decorator(factory: OpFactory) -> OpFactory:
        if name in _OPS:
            raise ValueError(f"An op named {name!r} is already registered.")
        _OPS[name] = factory
        return factory

    return decorator


def canonical_op_name(name: str) -> str:
    """The registered name of an op, resolving the aliases used by published code."""
    return _ALIASES.get(name, name)


def list_ops() -> list[str]:
    """The names of all registered ops, sorted."""
    return sorted(_OPS)


def create_op(name: str, channels: int, stride: int = 1, affine: bool = True) -> nn.Module:
    """Create a registered op.

    Args:
        name: The op's registered name (or a known alias).
        channels: Input and output channels.
        stride: 1, or 2 to halve the spatial size.
        affine: Whether batch norms learn a scale and shift.
    """
    key = canonical_op_name(name)
    if key not in _OPS:
        raise ArchitectureError(f"Unknown op {name!r}; registered ops are {list_ops()}.")
    return _OPS[key](channels, stride, affine)


class ReLUConvBN(nn.Sequential):
    """ReLU, a convolution, then batch norm."""

    def __init__(
        self,
        c_in: int,
        c_out: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int],
        padding: int | tuple[int, int],
        dilation: int = 1,
        affine: bool = True,
    ) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel_size, stride, padding, dilation, bias=False),
            nn.BatchNorm2d(c_out, affine=affine),
        )


class DilConv(nn.Sequential):
    """ReLU, a dilated depthwise convolution, a pointwise convolution, batch norm."""

    def __init__(
        self,
        c_in: int,
        c_out: int,
        kernel_size: int,
        stride: int,
        padding: int,
        dilation: int,
        affine: bool = True,
    ) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(
                c_in, c_in, kernel_size, stride, padding, dilation, groups=c_in, bias=False
            ),
            nn.Conv2d(c_in, c_out, 1, bias=False),
            nn.BatchNorm2d(c_out, affine=affine),
        )


class SepConv(nn.Sequential):
    """Two stacked depthwise-separable convolutions, the first carrying the stride."""

    def __init__(
        self, c_in: int, c_out: int, kernel_size: int, stride: int, padding: int, affine: bool
    ) -> None:
        super().__init__(
            DilConv(c_in, c_in, kernel_size, stride, padding, 1, affine),
            DilConv(c_in, c_out, kernel_size, 1, padding, 1, affine),
        )


class FactorizedReduce(nn.Module):
    """Halve the spatial size with two offset stride-2 1x1 convolutions, concatenated.

    For an odd ``c_out`` the second path has the extra channel, so every channel count works.
    """

    def __init__(self, c_in: int, c_out: int, affine: bool = True) -> None:
        super().__init__()
        if c_out < 2:
            raise ValueError(f"FactorizedReduce needs at least 2 output channels, got {c_out}.")
        self.relu = nn.ReLU(inplace=False)
        self.conv_1 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.conv_2 = nn.Conv2d(c_in, c_out - c_out // 2, 1, stride=2, bias=False)
        self.bn = nn.BatchNorm2d(c_out, affine=affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(x)
        # The second path sees the input shifted by one pixel, padded back on odd sizes.
        shifted = nn.functional.pad(x[:, :, 1:, 1:], (0, 1, 0, 1))
        out: torch.Tensor = self.bn(torch.cat([self.conv_1(x), self.conv_2(shifted)], dim=1))
        return out


class Zero(nn.Module):
    """The ``none`` op: zeros of the output's shape."""

    def __init__(self, stride: int) -> None:
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            return x.mul(0.0)
        return x[:, :, :: self.stride, :: self.stride].mul(0.0)


class Conv1xkThenkx1(nn.Sequential):
    """ReLU, a 1xk then a kx1 convolution, batch norm (NASNet's factorised convolutions)."""

    def __init__(self, channels: int, k: int, stride: int, affine: bool) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(channels, channels, (1, k), (1, stride), (0, k // 2), bias=False),
            nn.Conv2d(channels, channels, (k, 1), (stride, 1), (k // 2, 0), bias=False),
            nn.BatchNorm2d(channels, affine=affine),
        )


# While set, AvgPool runs PyTorch's pooling: FLOP counts then see a pooling (which PyTorch's
# counter does not count) on every device, not the convolution that stands in for it.
_PLAIN_POOLING: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "plain_pooling", default=False
)


@contextlib.contextmanager
def plain_pooling() -> Iterator[None]:
    """Within this context, :class:`AvgPool` runs ``avg_pool2d`` on every device."""
    token = _PLAIN_POOLING.set(True)
    try:
        yield
    finally:
        _PLAIN_POOLING.reset(token)


def _window_counts(n: int, k: int, stride: int, pad: int) -> torch.Tensor:
    # How many of the n real positions each output window covers, along one axis.
    starts = torch.arange(0, n + 2 * pad - k + 1, stride) - pad
    return (starts + k).clamp(max=n) - starts.clamp(min=0)


class AvgPool(nn.Module):
    """Average pooling over a ``k`` x ``k`` window that excludes the padding.

    The numbers of ``nn.AvgPool2d(k, stride, k // 2, count_include_pad=False)``. On the CPU
    it runs as a depthwise convolution with a fixed all-ones kernel, divided by the number
    of real pixels under each window: PyTorch's CPU pooling without padding counts is
    several times slower, forward and backward, and it was half the time of a NAS-Bench-201
    training step.
    """

    def __init__(self, k: int, stride: int) -> None:
        super().__init__()
        self.k = k
        self.stride = stride
        self._counts: dict[tuple[int, int, torch.dtype], torch.Tensor] = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k, stride, pad = self.k, self.stride, self.k // 2
        if x.device.type != "cpu" or x.dim() != 4 or _PLAIN_POOLING.get():
            return nn.functional.avg_pool2d(x, k, stride, pad, count_include_pad=False)
        c, h, w = x.shape[1:]
        summed = nn.functional.conv2d(x, x.new_ones(c, 1, k, k), stride=stride, padding=pad,
                                      groups=c)
        key = (h, w, x.dtype)
        counts = self._counts.get(key)
        if counts is None:
            rows, cols = _window_counts(h, k, stride, pad), _window_counts(w, k, stride, pad)
            counts = (rows[:, None] * cols[None, :]).to(x.dtype)
            self._counts[key] = counts
        return summed / counts

    def extra_repr(self) -> str:
        return f"kernel_size={self.k}, stride={self.stride}, count_include_pad=False"


def _pool(kind: str, k: int) -> OpFactory:
    def factory(channels: int, stride: int, affine: bool) -> nn.Module:
        if kind == "avg":
            return AvgPool(k, stride)
        return nn.MaxPool2d(k, stride=stride, padding=k // 2)

    return factory


def _relu_conv_bn(k: int) -> OpFactory:
    def factory(channels: int, stride: int, affine: bool) -> nn.Module:
        return ReLUConvBN(channels, channels, k, stride, k // 2, affine=affine)

    return factory


def _sep_conv(k: int) -> OpFactory:
    def factory(channels: int, stride: int, affine: bool) -> nn.Module:
        return SepConv(channels, channels, k, stride, k // 2, affine)

    return factory


def _dil_conv(k: int) -> OpFactory:
    def factory(channels: int, stride: int, affine: bool) -> nn.Module:
        return DilConv(channels, channels, k, stride, k - 1, 2, affine)

    return factory


def _skip_connect(channels: int, stride: int, affine: bool) -> nn.Module:
    return nn.Identity() if stride == 1 else FactorizedReduce(channels, channels, affine)


def _zero(channels: int, stride: int, affine: bool) -> nn.Module:
    return Zero(stride)


def _conv_then(k: int) -> OpFactory:
    def factory(channels: int, stride: int, affine: bool) -> nn.Module:
        return Conv1xkThenkx1(channels, k, stride, affine)

    return factory


register_op("none")(_zero)
register_op("skip_connect")(_skip_connect)
register_op("avg_pool_3x3")(_pool("avg", 3))
for _k in (3, 5, 7):
    register_op(f"max_pool_{_k}x{_k}")(_pool("max", _k))
    register_op(f"sep_conv_{_k}x{_k}")(_sep_conv(_k))
for _k in (3, 5):
    register_op(f"dil_conv_{_k}x{_k}")(_dil_conv(_k))
for _k in (1, 3):
    register_op(f"conv_{_k}x{_k}")(_relu_conv_bn(_k))
    register_op(f"nor_conv_{_k}x{_k}")(_relu_conv_bn(_k))
register_op("conv_1x3_3x1")(_conv_then(3))
register_op("conv_1x7_7x1")(_conv_then(7))

#: Named op sets; a space's op choices come from one of these or from a user's list.
OP_SETS: dict[str, tuple[str, ...]] = {
    # Liu et al. 2019, "DARTS: Differentiable Architecture Search".
    "darts": (
        "none",
        "max_pool_3x3",
        "avg_pool_3x3",
        "skip_connect",
        "sep_conv_3x3",
        "sep_conv_5x5",
        "dil_conv_3x3",
        "dil_conv_5x5",
    ),
    # Zoph et al. 2018, "Learning Transferable Architectures for Scalable Image Recognition".
    "nasnet": (
        "skip_connect",
        "conv_1x3_3x1",
        "conv_1x7_7x1",
        "dil_conv_3x3",
        "avg_pool_3x3",
        "max_pool_3x3",
        "max_pool_5x5",
        "max_pool_7x7",
        "conv_1x1",
        "conv_3x3",
        "sep_conv_3x3",
        "sep_conv_5x5",
        "sep_conv_7x7",
    ),
    # Pham et al. 2018, "Efficient Neural Architecture Search via Parameter Sharing".
    "enas": ("skip_connect", "sep_conv_3x3", "sep_conv_5x5", "avg_pool_3x3", "max_pool_3x3"),
    # Dong & Yang 2020, "NAS-Bench-201".
    "nasbench201": ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"),
}


def get_op_set(ops: str | tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """Resolve an op set given by name (``"darts"``, ...) or as a list of op names.

    Raises:
        ArchitectureError: The set's name or one of its ops is unknown.
    """
    if isinstance(ops, str):
        if ops not in OP_SETS:
            raise ArchitectureError(
                f"Unknown op set {ops!r}; known sets are {sorted(OP_SETS)}, or pass a list "
                "of registered op names."
            )
        return OP_SETS[ops]
    names = tuple(canonical_op_name(o) for o in ops)
    unknown = [o for o in names if o not in _OPS]
    if unknown:
        raise ArchitectureError(f"Unknown op(s) {unknown}; registered ops are {list_ops()}.")
    if not names or len(set(names)) != len(names):
        raise ArchitectureError(f"An op set needs distinct op names, got {list(ops)}.")
    return names
