"""Zero-cost proxies: score an untrained network from one minibatch, without training it.

Papers:

* Abdelfattah, Mehrotra, Dudziak & Lane, "Zero-Cost Proxies for Lightweight NAS", ICLR 2021,
  https://arxiv.org/abs/2101.08134 (``grad_norm``, ``snip``, ``grasp``, ``fisher``,
  ``synflow``, ``jacob_cov``; reference code: github.com/SamsungLabs/zero-cost-nas).
* Mellor, Turner, Storkey & Crowley, "Neural Architecture Search without Training",
  ICML 2021, https://arxiv.org/abs/2006.04647 (``naswot``; ``jacob_cov`` is the score of
  the paper's first version).
* Tanaka, Kunin, Yamins & Ganguli, "Pruning neural networks without any data by
  iteratively conserving synaptic flow", NeurIPS 2020, https://arxiv.org/abs/2006.05467
  (``synflow``).

Every proxy scores a :func:`copy.deepcopy` of the network, so the caller's model (its
parameters, buffers, ``requires_grad`` flags, ``.grad`` and train/eval mode) is never
touched. "Weights" below are the ``weight`` tensors of the convolution and linear layers,
as in the reference code.
"""

from __future__ import annotations

import copy
import math
import numbers
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn

from optuna_nas.errors import ZeroCostError, _short_repr
from optuna_nas.training import count_flops, count_parameters

__all__ = ["DATA_FREE_PROXIES", "ZeroCostError", "list_proxies", "register_proxy", "score"]

#: The proxies that read no data, only the sample shape of ``inputs``.
DATA_FREE_PROXIES = ("synflow", "params", "flops")

#: A proxy: ``proxy(model, inputs, targets) -> float`` on a private copy of the model, with
#: ``inputs`` and ``targets`` already on the model's device.
Proxy = Callable[[nn.Module, torch.Tensor, torch.Tensor], float]

_PROXIES: dict[str, Proxy] = {}

_LAYERS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)

_FIX = (
    "check that the network's forward pass gives finite outputs on these inputs (no NaN or "
    "infinite weights, inputs or operations such as a division by zero), or score it with "
    "another proxy"
)


def register_proxy(name: str) -> Callable[[Proxy], Proxy]:
    """Register a zero-cost proxy under a name (a decorator).

    Args:
        name: The name :func:`score` takes as ``proxy``.
    """

    def decorator(function: Proxy) -> Proxy:
        if name in _PROXIES:
            raise ValueError(f"A zero-cost proxy named {name!r} is already registered.")
        _PROXIES[name] = function
        return function

    return decorator


def list_proxies() -> list[str]:
    """The names of all registered zero-cost proxies, sorted."""
    return sorted(_PROXIES)


def score(
    model: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    *,
    proxy: str = "synflow",
    seed: int = 0,
) -> float:
    """Score an untrained network with a zero-cost proxy (higher is better).

    The proxy runs on a deep copy of ``model`` on the model's device (``inputs`` and
    ``targets`` are moved there), with torch's generator seeded with ``seed`` inside
    :func:`torch.random.fork_rng`, so the score is reproducible and neither the model nor
    the global random state changes.

    Proxies (see :func:`list_proxies`):

    * ``grad_norm``: sum over layers of the L2 norm of the cross-entropy gradient of the
      weights (Abdelfattah et al. 2021, https://arxiv.org/abs/2101.08134).
    * ``snip``: sum of ``|theta * dL/dtheta|`` over the weights (same paper).
    * ``grasp``: sum of ``-theta * (H g)`` over the weights, the Hessian-gradient product
      by double backward (same paper).
    * ``fisher``: sum over the layers' output channels of ``1/2 * mean over the batch of
      (sum over positions of act * dL/dact)^2`` (same paper).
    * ``synflow``: ``sum |theta * dR/dtheta|`` over the weights, ``R`` the sum of the output
      of the network with absolute parameters and buffers on one all-ones input, in
      double precision, batch norm in eval mode (Tanaka et al. 2020,
      https://arxiv.org/abs/2006.05467).
    * ``jacob_cov``: ``-sum(log(e + k) + 1 / (e + k))`` over the eigenvalues ``e`` of the
      correlation matrix of the per-input Jacobians of the summed output, ``k = 1e-5``
      (Mellor et al., https://arxiv.org/abs/2006.04647v1, as computed by Abdelfattah et al.).
    * ``naswot``: ``log |det K|`` of the kernel of the binary activation codes of every
      ``nn.ReLU``, ``K = c c^T + (1 - c)(1 - c)^T`` (Mellor et al. ICML 2021,
      https://arxiv.org/abs/2006.04647).
    * ``params``, ``flops``: the baselines :func:`~optuna_nas.count_parameters` and
      :func:`~optuna_nas.count_flops` on one input of ``inputs``' sample shape.

    The data-dependent proxies (all but ``synflow``, ``params`` and ``flops``) run the copy
    in train mode, batch norm using the batch's statistics, as the reference code does.

    Args:
        model: The network; it maps ``inputs`` to logits (or a tuple whose first item is
            the logits). It is not modified.
        inputs: One minibatch of inputs, shape ``(batch, *sample_shape)``, floating point.
        targets: Class indices of the minibatch, shape ``(batch,)``, integer.
        proxy: The proxy's name, one of :func:`list_proxies`.
        seed: Seeds torch's generator while scoring (dropout and other random ops).

    Returns:
        The score, a finite float.

    Raises:
        ZeroCostError: (a ``ValueError``) ``proxy`` is unknown, the arguments have the wrong
            types or shapes, or the proxy's value is NaN or infinite for this network.
    """
    if not isinstance(proxy, str) or proxy not in _PROXIES:
        raise ZeroCostError(
            f"Unknown zero-cost proxy {_short_repr(proxy)}; known proxies: {list_proxies()}."
        )
    function = _PROXIES[proxy]
    if not isinstance(model, nn.Module):
        raise ZeroCostError(
            f"score() needs a torch.nn.Module as model, got {type(model).__name__} "
            f"({_short_repr(model)})."
        )
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise ZeroCostError(f"seed must be an int, got {type(seed).__name__} ({seed!r}).")
    _check_batch(inputs, targets)
    device = _device(model)
    copied = copy.deepcopy(model)
    for parameter in copied.parameters():
        parameter.grad = None
    inputs, targets = inputs.detach().to(device), targets.detach().to(device)
    cuda = [device.index if device.index is not None else torch.cuda.current_device()] \
        if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        torch.manual_seed(int(seed))
        value = float(function(copied, inputs, targets))
    if not math.isfinite(value):
        raise ZeroCostError(f"{proxy} gave {value} for this network: {_FIX}.")
    return value


# ----------------------------------------------------------------------------------------
# Helpers.


def _check_batch(inputs: object, targets: object) -> None:
    if not isinstance(inputs, torch.Tensor):
        raise ZeroCostError(
            f"inputs must be a torch.Tensor of shape (batch, *sample_shape), got "
            f"{type(inputs).__name__} ({_short_repr(inputs)})."
        )
    if not isinstance(targets, torch.Tensor):
        raise ZeroCostError(
            f"targets must be a torch.Tensor of class indices of shape (batch,), got "
            f"{type(targets).__name__} ({_short_repr(targets)})."
        )
    if inputs.dim() < 2 or inputs.shape[0] < 1:
        raise ZeroCostError(
            f"inputs must have a batch dimension and a sample shape, (batch, *sample_shape), "
            f"with batch >= 1; got shape {tuple(inputs.shape)}."
        )
    if not inputs.is_floating_point():
        raise ZeroCostError(f"inputs must be floating point, got dtype {inputs.dtype}.")
    if targets.dim() != 1 or targets.is_floating_point() or targets.is_complex() \
            or targets.dtype == torch.bool:
        raise ZeroCostError(
            f"targets must be a 1-D integer tensor of class indices, got shape "
            f"{tuple(targets.shape)} and dtype {targets.dtype}."
        )
    if targets.shape[0] != inputs.shape[0]:
        raise ZeroCostError(
            f"inputs and targets must have the same batch size, got {inputs.shape[0]} inputs "
            f"and {targets.shape[0]} targets."
        )


def _device(model: nn.Module) -> torch.device:
    for parameter in model.parameters():
        return parameter.device
    for buffer in model.buffers():
        return buffer.device
    return torch.device("cpu")


def _logits(output: Any) -> torch.Tensor:
    if isinstance(output, tuple | list) and output:
        output = output[0]
    if not isinstance(output, torch.Tensor):
        raise ZeroCostError(
            f"The network must return a tensor of logits (or a tuple whose first item is "
            f"one), got {type(output).__name__}."
        )
    return output


def _forward(model: nn.Module, inputs: torch.Tensor, proxy: str) -> torch.Tensor:
    output = _logits(model(inputs))
    if not bool(torch.isfinite(output).all()):
        raise ZeroCostError(f"{proxy} cannot score this network: its output is not finite; "
                            f"{_FIX}.")
    return output


def _layers(model: nn.Module, proxy: str) -> list[nn.Module]:
    layers: list[nn.Module] = [m for m in model.modules() if isinstance(m, _LAYERS)]
    if not layers:
        raise ZeroCostError(
            f"{proxy} sums over the weights of Conv and Linear layers, and this network has "
            f"none; score it with 'naswot', 'jacob_cov', 'params' or 'flops'."
        )
    return layers


def _weights(model: nn.Module, proxy: str) -> list[torch.Tensor]:
    weights: list[torch.Tensor] = []
    for layer in _layers(model, proxy):
        weight = layer.weight
        assert isinstance(weight, torch.Tensor)
        weight.requires_grad_(True)
        weights.append(weight)
    return weights


def _loss(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor,
          proxy: str) -> torch.Tensor:
    return nn.functional.cross_entropy(_forward(model, inputs, proxy), targets)


def _grads(output: torch.Tensor, weights: list[torch.Tensor],
           create_graph: bool = False) -> list[torch.Tensor]:
    grads = torch.autograd.grad(output, weights, allow_unused=True, create_graph=create_graph)
    return [torch.zeros_like(w) if g is None else g for g, w in zip(grads, weights, strict=True)]


def _total(values: Iterator[torch.Tensor]) -> float:
    return float(sum((v.double().sum() for v in values), torch.zeros((), dtype=torch.float64)))


# ----------------------------------------------------------------------------------------
# The proxies.


@register_proxy("grad_norm")
def _grad_norm(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> float:
    model.train()
    weights = _weights(model, "grad_norm")
    grads = _grads(_loss(model, inputs, targets, "grad_norm"), weights)
    return _total(g.norm() for g in grads)


@register_proxy("snip")
def _snip(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> float:
    model.train()
    weights = _weights(model, "snip")
    grads = _grads(_loss(model, inputs, targets, "snip"), weights)
    return _total((w.detach() * g).abs() for w, g in zip(weights, grads, strict=True))


@register_proxy("grasp")
def _grasp(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> float:
    model.train()
    weights = _weights(model, "grasp")
    grads = _grads(_loss(model, inputs, targets, "grasp"), weights, create_graph=True)
    # z = g^T stop_grad(g); dz/dtheta = H g.
    z = sum(((g * g.detach()).sum() for g in grads), torch.zeros((), device=inputs.device))
    hessian_grads = _grads(z, weights) if z.requires_grad else [torch.zeros_like(w)
                                                                  for w in weights]
    return _total(-(w.detach() * hg) for w, hg in zip(weights, hessian_grads, strict=True))


@register_proxy("fisher")
def _fisher(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> float:
    model.train()
    layers = _layers(model, "fisher")
    activations: list[torch.Tensor] = []

    def on_forward(module: nn.Module, args: Any, output: Any) -> Any:
        if isinstance(output, torch.Tensor) and output.requires_grad:
            activations.append(output)
            # The network goes on with a copy, so an in-place op after the layer cannot
            # change the activation kept here.
            return output.clone()
        return None

    handles = [layer.register_forward_hook(on_forward) for layer in layers]
    try:
        loss = _loss(model, inputs, targets, "fisher")
    finally:
        for handle in handles:
            handle.remove()
    if not activations or not loss.requires_grad:
        return 0.0
    grads = torch.autograd.grad(loss, activations, allow_unused=True)
    scores: list[torch.Tensor] = []
    for act, grad in zip(activations, grads, strict=True):
        if grad is None:
            continue
        product = act.detach() * grad
        if product.dim() > 2:  # Sum over the positions of each channel.
            product = product.sum(dim=tuple(range(2, product.dim())))
        scores.append(0.5 * product.double().pow(2).mean(0))
    return _total(iter(scores))


@register_proxy("synflow")
def _synflow(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> float:
    model.double().eval()
    with torch.no_grad():  # Linearise: every parameter and buffer positive.
        for tensor in [*model.parameters(), *model.buffers()]:
            if tensor.is_floating_point():
                tensor.abs_()
    weights = _weights(model, "synflow")
    ones = torch.ones((1, *inputs.shape[1:]), dtype=torch.float64, device=inputs.device)
    output = _forward(model, ones, "synflow")
    grads = _grads(output.sum(), weights)
    return _total((w.detach() * g).abs() for w, g in zip(weights, grads, strict=True))


def _need_pairs(inputs: torch.Tensor, what: str) -> None:
    # The proxies that compare the inputs of a batch with each other need two of them.
    if inputs.shape[0] < 2:
        raise ZeroCostError(f"{what} and needs at least 2 inputs, got {inputs.shape[0]}.")


@register_proxy("jacob_cov")
def _jacob_cov(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> float:
    _need_pairs(inputs, "jacob_cov correlates the Jacobians of the inputs of a batch")
    model.train()
    x = inputs.clone().requires_grad_(True)
    output = _forward(model, x, "jacob_cov")
    (jacobian,) = torch.autograd.grad(output.sum(), [x], allow_unused=True)
    if jacobian is None:
        raise ZeroCostError(
            "jacob_cov cannot score this network: its output does not depend on its input; "
            "score it with 'synflow', 'params' or 'flops'."
        )
    jacobian = jacobian.reshape(jacobian.shape[0], -1).double()
    if not bool(torch.isfinite(jacobian).all()):
        raise ZeroCostError(f"jacob_cov gave nan for this network: its input Jacobian is not "
                            f"finite; {_FIX}.")
    corr = torch.corrcoef(jacobian)
    if not bool(torch.isfinite(corr).all()):
        raise ZeroCostError(
            "jacob_cov gave nan for this network: the Jacobian of some input is constant "
            "(e.g. zero, when the output does not depend on that input), so its correlation "
            "is undefined; score this network with another proxy, e.g. 'synflow'."
        )
    eigenvalues = torch.linalg.eigvalsh(corr)
    k = 1e-5
    return float(-(torch.log(eigenvalues + k) + 1.0 / (eigenvalues + k)).sum())


@register_proxy("naswot")
def _naswot(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> float:
    _need_pairs(inputs, "naswot compares the activation codes of the inputs of a batch")
    model.train()
    relus = [m for m in model.modules() if isinstance(m, nn.ReLU)]
    if not relus:
        raise ZeroCostError(
            "naswot reads the binary codes of nn.ReLU modules, and this network has none; "
            "score it with 'synflow', 'jacob_cov' or another proxy."
        )
    batch = inputs.shape[0]
    kernel = torch.zeros(batch, batch, dtype=torch.float64, device=inputs.device)

    def on_forward(module: nn.Module, args: Any, output: Any) -> None:
        if isinstance(output, torch.Tensor) and output.dim() > 0 and output.shape[0] == batch:
            codes = (output.detach().reshape(batch, -1) > 0).double()
            kernel.add_(codes @ codes.T + (1.0 - codes) @ (1.0 - codes).T)

    handles = [relu.register_forward_hook(on_forward) for relu in relus]
    try:
        with torch.no_grad():
            _forward(model, inputs, "naswot")
    finally:
        for handle in handles:
            handle.remove()
    _, logabsdet = torch.linalg.slogdet(kernel)
    value = float(logabsdet)
    if not math.isfinite(value):
        raise ZeroCostError(
            f"naswot gave {value} for this network: two inputs of the batch have the same "
            f"ReLU codes (the kernel is singular); use distinct inputs, a larger network, or "
            f"another proxy."
        )
    return value


@register_proxy("params")
def _params(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> float:
    return float(count_parameters(model))


@register_proxy("flops")
def _flops(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> float:
    return float(count_flops(model, tuple(inputs.shape[1:])))
