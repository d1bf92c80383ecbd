"""DARTS' second-order architecture gradient, computed in place on the network's weights."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

__all__ = ["HVP_RADIUS", "unrolled_gradient"]

#: DARTS' finite-difference radius: epsilon = HVP_RADIUS / ||grad_w' L_val(w', alpha)||.
HVP_RADIUS = 0.01

Loss = Callable[[bool], torch.Tensor]


def unrolled_gradient(
    train_loss: Loss,
    valid_loss: Loss,
    weights: Sequence[torch.Tensor],
    alphas: Sequence[torch.Tensor],
    *,
    lr: float,
    momentum: float = 0.0,
    momentum_buffers: Sequence[torch.Tensor | None] | None = None,
    weight_decay: float = 0.0,
) -> tuple[list[torch.Tensor], torch.Tensor]:
    """The gradient of the one-step unrolled validation loss w.r.t. the alphas.

    With ``w' = w - lr * (momentum * buffer + grad_w L_train(w, a) + weight_decay * w)``
    (the next SGD step from ``w``, as DARTS' code unrolls it; no gradient clipping), the
    gradient of ``L_val(w', a)`` is ``grad_a L_val(w', a) - lr * H v`` with
    ``v = grad_w' L_val(w', a)`` and ``H v`` the mixed second derivative of ``L_train``
    times ``v``. ``H v`` is the central finite difference
    ``(grad_a L_train(w + e v, a) - grad_a L_train(w - e v, a)) / 2e`` with
    ``e = 0.01 / ||v||`` (the momentum and weight-decay terms of ``w'`` do not depend on
    ``a``, so they add nothing to it).

    Everything happens on the weights themselves: they are set to ``w'``, then ``w + e v``,
    then ``w - e v``, and finally restored bit for bit from a copy of their values; the
    network is never copied. Gradients w.r.t. the weights are computed only where needed
    (``torch.autograd.grad`` with explicit inputs), and ``.grad`` fields are not touched.

    Paper: Liu et al., "DARTS: Differentiable Architecture Search", ICLR 2019,
    https://arxiv.org/abs/1806.09055 (Section 2.3, equations 7 and 8).

    Args:
        train_loss: ``train_loss(detach_alphas)`` evaluates the training loss at the
            weights' current values; with ``True`` the alphas are detached.
        valid_loss: The same for the validation loss (called with ``False``).
        weights: The network's weights ``w``.
        alphas: The architecture parameters ``a``.
        lr: The weights' learning rate (DARTS' ``xi``, its current value).
        momentum: The weights' SGD momentum.
        momentum_buffers: The SGD momentum buffer of each weight (``None`` where there is
            none yet).
        weight_decay: The weights' L2 weight decay.

    Returns:
        The gradient of each alpha, and the validation loss at ``w'`` (detached).
    """
    params = list(weights)
    arch = list(alphas)
    n = len(arch)
    buffers = list(momentum_buffers or [None] * len(params))
    # torch._foreach_* ops: one kernel per op for every weight, not one per weight.
    with torch.no_grad():
        backup = [w.detach().clone() for w in params]
    try:
        # w' = w - lr * (momentum * buffer + g + weight_decay * w)
        grads = torch.autograd.grad(train_loss(True), params, allow_unused=True)
        with torch.no_grad():
            steps = [torch.zeros_like(w) if g is None else g for w, g in zip(params, grads,
                                                                             strict=True)]
            if weight_decay:
                torch._foreach_add_(steps, params, alpha=weight_decay)
            moving = [(s, b) for s, b in zip(steps, buffers, strict=True) if b is not None]
            if momentum and moving:
                torch._foreach_add_([s for s, _ in moving], [b for _, b in moving],
                                    alpha=momentum)
            torch._foreach_sub_(params, steps, alpha=lr)
        loss = valid_loss(False)
        outputs = torch.autograd.grad(loss, arch + params, allow_unused=True)
        dalpha = [torch.zeros_like(a) if g is None else g for a, g in zip(arch, outputs[:n],
                                                                           strict=True)]
        used = [(w, v) for w, v in zip(params, outputs[n:], strict=True) if v is not None]
        moved = [w for w, _ in used]
        with torch.no_grad():
            torch._foreach_copy_(params, backup)
            # A tensor epsilon keeps the GPU from waiting on ||v|| (no .item()); a zero v
            # gives a zero product instead of 0 / 0.
            norm = (
                torch.linalg.vector_norm(torch.stack(torch._foreach_norm([v for _, v in used])))
                if used else torch.zeros((), device=arch[0].device, dtype=arch[0].dtype)
            )
            epsilon = HVP_RADIUS / norm.clamp_min(1e-12)
            scaled = list(torch._foreach_mul([v for _, v in used], epsilon)) if used else []
            if used:
                torch._foreach_add_(moved, scaled)
        plus = torch.autograd.grad(train_loss(False), arch, allow_unused=True)
        with torch.no_grad():
            if used:
                torch._foreach_sub_(moved, scaled, alpha=2.0)
        minus = torch.autograd.grad(train_loss(False), arch, allow_unused=True)
        with torch.no_grad():
            for a, d, p, m in zip(arch, dalpha, plus, minus, strict=True):
                if p is not None and m is not None:
                    d.sub_((p - m) / (2 * epsilon.to(a.dtype)), alpha=lr)
    finally:
        with torch.no_grad():
            torch._foreach_copy_(params, backup)
    return dalpha, loss.detach()
