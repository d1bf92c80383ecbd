"""DARTS' recurrent-cell search, and the training of a derived cell's language model.

The search (Liu et al. 2019, Sections 2.2-2.4 and 3; ``rnn/train_search.py`` and
``rnn/architect.py`` of their code) trains a language model whose cell is a
:class:`~optuna_nas.nn.MixedRecurrentCell`: every (node, earlier state) edge mixes the five
ops ``none, tanh, relu, sigmoid, identity`` with weights ``softmax(alpha)``. Minibatches
alternate between an architecture step (Adam on ``alpha``, on the architecture half of the
training text) and a weight step (SGD on the weights, on the weight half). The derived cell
keeps, per node, the strongest edge and its strongest op other than ``none``.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import optuna
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from optuna_nas._reporting import report_epoch
from optuna_nas.darts._hypergradient import HVP_RADIUS
from optuna_nas.errors import ArchitectureError, DatasetError
from optuna_nas.nn._darts_recurrent import (
    PRIMITIVES,
    MixedRecurrentCell,
    RecurrentLanguageModel,
)
from optuna_nas.spaces._base import Architecture
from optuna_nas.spaces._darts_recurrent import DartsRecurrentSpace
from optuna_nas.text import TextCorpus, batchify, get_batch
from optuna_nas.training import _diverged, _resolve_device, count_parameters, seed_everything

__all__ = [
    "RecurrentDartsResult",
    "derive_recurrent",
    "evaluate_perplexity",
    "search_recurrent",
    "train_language_model",
]

_logger = logging.getLogger(__name__)

# DARTS' rnn code: a minibatch is ``bptt`` steps long with probability 0.95, else half as
# long; the evaluation training also jitters it (normal, std 5, at least 5, at most bptt
# + 20). The learning rate is scaled by the length so that every token weighs the same.
_FULL_BPTT_PROBABILITY = 0.95
_SEQ_LEN_STD = 5.0
_MIN_SEQ_LEN = 5
_MAX_SEQ_LEN_DELTA = 20


@dataclass(frozen=True)
class RecurrentDartsResult:
    """What :func:`search_recurrent` found.

    Paper: Liu et al., "DARTS: Differentiable Architecture Search", ICLR 2019,
    https://arxiv.org/abs/1806.09055.

    Args:
        architecture: The derived cell, an architecture of ``space``.
        space: The searched space.
        valid_perplexity: The search model's perplexity on ``corpus.valid`` after the last
            epoch (lower is better; what the trial was reported).
        perplexity_history: ``valid_perplexity`` after each epoch.
        alpha_history: The op weights (softmax of ``alpha``), ``(edges, ops)`` CPU
            tensors: entry 0 at initialisation, entry ``e`` after epoch ``e``.
        alphas: The final ``alpha`` (logits); ``derive_recurrent(space, alphas)`` gives
            ``architecture``.
        edges: The edge names, ``"n{i}<-{j}"`` (node ``i`` reads state ``j``), in row order.
        ops: The op names, in column order (DARTS' ``PRIMITIVES``).
        order: ``"first"`` or ``"second"``.
        epochs: Epochs run.
        seconds: Wall-clock time of the search.
    """

    architecture: Architecture
    space: DartsRecurrentSpace
    valid_perplexity: float
    perplexity_history: list[float]
    alpha_history: list[torch.Tensor]
    alphas: torch.Tensor
    edges: list[str]
    ops: tuple[str, ...]
    order: str
    epochs: int
    seconds: float

    @property
    def genotype(self) -> str:
        """The derived cell in DARTS' genotype form."""
        return str(self.architecture)


def derive_recurrent(space: DartsRecurrentSpace, alphas: torch.Tensor) -> Architecture:
    """The recurrent cell DARTS derives from architecture weights.

    With ``w = softmax(alpha)`` per edge, node ``i`` keeps the earlier state ``j`` whose
    edge has the largest weight on an op other than ``none``, and that edge's strongest op
    other than ``none`` (ties go to the earlier state and the earlier op, as in DARTS'
    ``genotype()``). Only ops of ``space.ops`` compete.

    Paper: Liu et al., "DARTS: Differentiable Architecture Search", ICLR 2019,
    https://arxiv.org/abs/1806.09055 (Section 2.4).

    Args:
        space: The searched space.
        alphas: ``(steps * (steps + 1) / 2, 5)`` logits; rows are the edges ``(i, j)``,
            ``i = 1..steps``, ``j = 0..i-1``, in that order; columns :data:`PRIMITIVES`.
            Op weights already softmaxed work as ``torch.log(weights)``.

    Raises:
        ArchitectureError: ``alpha`` does not have the space's shape.
    """
    if not isinstance(space, DartsRecurrentSpace):
        raise ArchitectureError(
            f"derive_recurrent derives cells of a DartsRecurrentSpace, not "
            f"{type(space).__name__}."
        )
    edges = space.steps * (space.steps + 1) // 2
    if alphas.dim() != 2 or tuple(alphas.shape) != (edges, len(PRIMITIVES)):
        raise ArchitectureError(
            f"alphas has shape {tuple(alphas.shape)}; a cell of {space.steps} steps needs "
            f"({edges}, {len(PRIMITIVES)}): one row per (node, earlier state), one column "
            f"per op of {list(PRIMITIVES)}."
        )
    probs = F.softmax(alphas.detach().double().cpu(), dim=-1).tolist()
    columns = [PRIMITIVES.index(op) for op in space.ops]
    values: dict[str, str | int] = {}
    offset = 0
    for i in range(1, space.steps + 1):
        rows = probs[offset : offset + i]
        # max() keeps the first of equal values: the earlier state, then the earlier op.
        pred = max(range(i), key=lambda j: max(rows[j][k] for k in columns))
        op = max(columns, key=lambda k: rows[pred][k])
        values[f"n{i}/input"] = pred
        values[f"n{i}/op"] = PRIMITIVES[op]
        offset += i
    return space.from_values(values)


def _nll(
    model: RecurrentLanguageModel,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    hidden: torch.Tensor,
    weights: torch.Tensor | None,
    params: dict[str, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    # With ``params`` the model runs on those tensors instead of its own parameters (tied
    # weights stay tied), so a virtual step needs no copy of the network.
    if params is None:
        log_probs, hidden_next, outputs = model(inputs, hidden, weights)
    else:
        log_probs, hidden_next, outputs = functional_call(
            model, params, (inputs, hidden, weights)
        )
    loss = F.nll_loss(log_probs.reshape(-1, log_probs.size(-1)), targets.reshape(-1))
    return loss, hidden_next, outputs


def _clip_(grads: list[torch.Tensor], max_norm: float | None) -> None:
    # DARTS' rnn architect clips the virtual step's gradients as the weight step clips its
    # own: at lr 20 an unclipped virtual step would land far from w.
    if max_norm is None:
        return
    scale = max_norm / (_norm(grads) + 1e-6)
    if scale < 1:
        for g in grads:
            g.mul_(scale)


def _norm(tensors: list[torch.Tensor]) -> float:
    return float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(t.detach())
                                                       for t in tensors])))


def _tar(outputs: torch.Tensor, beta: float) -> torch.Tensor:
    # Temporal activation regularisation (Merity et al. 2017): slowly changing h_t.
    if beta <= 0 or outputs.size(0) < 2:
        return outputs.new_zeros(())
    return beta * (outputs[1:] - outputs[:-1]).pow(2).mean()


def evaluate_perplexity(
    model: RecurrentLanguageModel,
    tokens: torch.Tensor,
    *,
    batch_size: int = 10,
    bptt: int = 35,
    weights: torch.Tensor | None = None,
    device: str | torch.device | None = None,
) -> float:
    """Perplexity of a language model on a token stream: ``exp`` of the mean next-token
    negative log-likelihood, the state carried across segments as in DARTS' evaluation.

    Paper: Liu et al., "DARTS: Differentiable Architecture Search", ICLR 2019,
    https://arxiv.org/abs/1806.09055 (``evaluate`` in its ``rnn/train.py``).

    Args:
        model: The model; it is put in eval mode (no dropout).
        tokens: A 1-D token stream, e.g. ``corpus.valid`` or ``corpus.test``.
        batch_size: Parallel streams (10 for validation, 1 for test in DARTS).
        bptt: Steps per segment.
        weights: For a model with a mixed cell, the relaxation's weights.
        device: Where to run; by default the model's device.
    """
    dev = next(model.parameters()).device if device is None else torch.device(device)
    model.to(dev).eval()
    source = batchify(tokens, batch_size).to(dev)
    if weights is not None:
        weights = weights.to(dev)
    total = 0.0
    count = 0
    hidden = model.init_hidden(batch_size)
    with torch.no_grad():
        for start in range(0, source.size(0) - 1, bptt):
            inputs, targets = get_batch(source, start, bptt)
            loss, hidden, _ = _nll(model, inputs, targets, hidden, weights)
            total += loss.item() * targets.numel()
            count += targets.numel()
    mean = total / count
    return math.exp(mean) if mean < 700 else math.inf


def _check_common(epochs: int, bptt: int, grad_clip: float | None, lr: float) -> None:
    if epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {epochs}.")
    if bptt < 2:
        raise ValueError(f"bptt must be at least 2, got {bptt}.")
    if not lr > 0:
        raise ValueError(f"The learning rate must be positive, got {lr}.")
    if grad_clip is not None and not grad_clip > 0:
        raise ValueError(f"grad_clip must be positive or None, got {grad_clip}.")


def _report(trial: optuna.Trial | None, perplexity: float, epoch: int) -> None:
    if not math.isfinite(perplexity):
        _diverged(trial, f"The validation perplexity became {perplexity} at epoch {epoch}")
    if trial is not None and report_epoch(trial, perplexity, epoch):
        raise optuna.TrialPruned(
            f"Pruned at epoch {epoch} with validation perplexity {perplexity:.2f}."
        )


def search_recurrent(
    corpus: TextCorpus,
    *,
    epochs: int,
    order: str = "first",
    space: DartsRecurrentSpace | None = None,
    trial: optuna.Trial | None = None,
    embedding_size: int = 300,
    batch_size: int = 256,
    eval_batch_size: int = 10,
    bptt: int = 35,
    weight_lr: float = 20.0,
    weight_decay: float = 5e-7,
    grad_clip: float | None = 0.25,
    arch_lr: float = 3e-3,
    arch_weight_decay: float = 1e-3,
    train_portion: float = 0.5,
    dropout: float = 0.75,
    dropout_h: float = 0.25,
    dropout_x: float = 0.75,
    dropout_i: float = 0.2,
    dropout_e: float = 0.0,
    tar_beta: float = 1e-3,
    init_scale: float = 1e-3,
    seed: int = 0,
    device: str | torch.device | None = None,
) -> RecurrentDartsResult:
    """Search a recurrent cell with DARTS on a text corpus.

    The training text is cut in two: the first ``train_portion`` trains the weights (SGD,
    lr ``weight_lr`` scaled by the minibatch length, weight decay, gradient norm clipped at
    ``grad_clip``, temporal activation regularisation ``tar_beta``), the rest trains
    ``alpha`` (Adam, ``arch_lr``, ``arch_weight_decay``), one step of each per minibatch,
    the architecture step first; ``alpha`` starts at ``init_scale * N(0, 1)``.
    ``order="second"`` uses DARTS' second-order gradient: a virtual SGD step
    ``w' = w - lr * grad_w L_train(w, alpha)`` (weight decay included, the gradient
    clipped as in DARTS' rnn code), then ``grad_alpha L_arch(w', alpha)`` minus ``lr``
    times the finite-difference Hessian-vector product at ``w +- epsilon * v``,
    ``v = grad_w' L_arch(w', alpha)``, ``epsilon = 0.01 / ||v||``. It runs the model's own
    module on substituted tensors (:func:`torch.func.functional_call`): the network is
    never copied.

    After every epoch the search model's perplexity on ``corpus.valid`` is computed. With a
    ``trial`` it is reported (``trial.report(perplexity, epoch)``; create the study with
    ``direction="minimize"``) and :class:`optuna.TrialPruned` is raised when the pruner
    says so (in a multi-objective study: the user attr ``epoch_values``, no pruning); the
    trial keeps the derived cell as user attrs ``arch`` and ``arch_space``
    (so :func:`optuna_nas.darts.enqueue_retraining` can retrain it), pruned or not.

    Defaults are DARTS' search settings (``rnn/train_search.py``): sizes 300, batch 256,
    BPTT 35, SGD lr 20, weight decay 5e-7, clip 0.25, Adam lr 3e-3 (default betas) with
    weight decay 1e-3, dropouts 0.75 (output), 0.25 (states), 0.75 (inputs), 0.2
    (embedded input), 0 (words), TAR 1e-3. DARTS fed its architecture step from the Penn
    Treebank validation split; here it reads the held-out part of train (the same split as
    DARTS' convolutional search), so the reported perplexity is on text neither step
    trained on.

    Paper: Liu et al., "DARTS: Differentiable Architecture Search", ICLR 2019,
    https://arxiv.org/abs/1806.09055 (Sections 2 and 3).

    Args:
        corpus: The text, e.g. from :func:`optuna_nas.text.load_text_corpus`.
        epochs: Passes over the weights' part of the training text.
        order: ``"first"`` or ``"second"``.
        space: The space of the derived cell (its ``steps`` sizes the search cell, its
            ``ops`` limit the derivation); by default ``DartsRecurrentSpace()``.
        trial: The Optuna trial to report to, or ``None``.
        embedding_size: Features of the embedding and of ``h``.
        batch_size: Parallel streams of the training text.
        eval_batch_size: Parallel streams of the validation text.
        bptt: Steps per minibatch.
        weight_lr: SGD learning rate of the weights.
        weight_decay: L2 weight decay of the weights.
        grad_clip: Max gradient norm of the weights, or ``None``.
        arch_lr: Adam learning rate of ``alpha``.
        arch_weight_decay: Adam weight decay of ``alpha``.
        train_portion: The weights' share of the training text.
        dropout: Locked dropout on the cell's outputs.
        dropout_h: Variational dropout on the cell's states.
        dropout_x: Variational dropout on the cell's inputs.
        dropout_i: Locked dropout on the embedded input.
        dropout_e: Word dropout on the embedding.
        tar_beta: Weight of the temporal activation regularisation in the weight step.
        init_scale: Standard deviation of ``alpha``'s initial values.
        seed: Seed of the weights, ``alpha``, dropout and minibatch lengths.
        device: Where to run; by default CUDA when available, else the CPU.

    Returns:
        The derived architecture, the perplexities and the history of the op weights.

    Raises:
        optuna.TrialPruned: The trial's pruner stopped the search.
        NonFiniteLossError: A loss, a gradient or the weights became NaN or infinite.
        DatasetError: A split is too short for the batch sizes.
    """
    if order not in ("first", "second"):
        raise ValueError(
            f"order must be 'first' or 'second' (DARTS' first- or second-order "
            f"approximation), got {order!r}."
        )
    _check_common(epochs, bptt, grad_clip, weight_lr)
    if not 0 < train_portion < 1:
        raise ValueError(
            f"train_portion must be in (0, 1), got {train_portion!r}: the rest of the "
            "training text trains the architecture."
        )
    space = DartsRecurrentSpace() if space is None else space
    start_time = time.perf_counter()
    dev = _resolve_device(device)
    seed_everything(seed)
    rng = np.random.default_rng(seed)

    cut = round(corpus.train.numel() * train_portion)
    try:
        weight_data = batchify(corpus.train[:cut], batch_size).to(dev)
        arch_data = batchify(corpus.train[cut:], batch_size).to(dev)
    except DatasetError as error:
        raise DatasetError(
            f"The training text of {corpus.name!r} is cut into a weights' part and an "
            f"architecture's part (train_portion={train_portion}): {error}"
        ) from None
    batchify(corpus.valid, eval_batch_size)  # fails early, with a sentence, if too short

    cell = MixedRecurrentCell(
        embedding_size, embedding_size, steps=space.steps, dropout_x=dropout_x,
        dropout_h=dropout_h,
    )
    model = RecurrentLanguageModel(
        cell, vocab_size=corpus.vocab_size, dropout=dropout, dropout_i=dropout_i,
        dropout_e=dropout_e,
    ).to(dev)
    alpha = (init_scale * torch.randn(cell.num_edges, len(PRIMITIVES))).to(dev)
    alpha.requires_grad_()
    params = list(model.parameters())  # the tied decoder weight appears once
    weight_optimizer = torch.optim.SGD(params, lr=weight_lr, weight_decay=weight_decay)
    arch_optimizer = torch.optim.Adam([alpha], lr=arch_lr, weight_decay=arch_weight_decay)
    if trial is not None:
        trial.set_user_attr("params", count_parameters(model))

    history = [F.softmax(alpha.detach(), dim=-1).cpu()]
    perplexities: list[float] = []

    def result() -> RecurrentDartsResult:
        alphas = alpha.detach().cpu().clone()
        return RecurrentDartsResult(
            architecture=derive_recurrent(space, alphas),
            space=space,
            valid_perplexity=perplexities[-1],
            perplexity_history=list(perplexities),
            alpha_history=list(history),
            alphas=alphas,
            edges=[f"n{i}<-{j}" for i, j in cell.edges],
            ops=PRIMITIVES,
            order=order,
            epochs=len(perplexities),
            seconds=time.perf_counter() - start_time,
        )

    for epoch in range(epochs):
        model.train()
        hidden = model.init_hidden(batch_size)
        hidden_arch = model.init_hidden(batch_size)
        position = 0
        while position < weight_data.size(0) - 2:
            seq_len = bptt if rng.random() < _FULL_BPTT_PROBABILITY else max(1, bptt // 2)
            lr = weight_lr * seq_len / bptt
            inputs, targets = get_batch(weight_data, position, seq_len)
            # The architecture's part wraps around when it is shorter, as in DARTS' code.
            arch_inputs, arch_targets = get_batch(
                arch_data, position % (arch_data.size(0) - 1), bptt
            )
            hidden, hidden_arch = hidden.detach(), hidden_arch.detach()

            # Architecture step.
            if order == "first":
                arch_loss, hidden_arch, _ = _nll(
                    model, arch_inputs, arch_targets, hidden_arch, F.softmax(alpha, dim=-1)
                )
                (grad,) = torch.autograd.grad(arch_loss, [alpha])
            else:
                grad, hidden_arch, arch_loss = _second_order_gradient(
                    model, alpha, (inputs, targets, hidden),
                    (arch_inputs, arch_targets, hidden_arch), lr, weight_decay, grad_clip,
                )
            if not (math.isfinite(arch_loss.item()) and bool(torch.isfinite(grad).all())):
                _diverged(trial, f"The architecture loss or its gradient became non-finite "
                          f"at epoch {epoch} (arch_lr={arch_lr:g}, weight_lr={weight_lr:g})")
            alpha.grad = grad
            arch_optimizer.step()

            # Weight step, with the updated alpha fixed.
            weight_optimizer.zero_grad(set_to_none=True)
            for group in weight_optimizer.param_groups:
                group["lr"] = lr
            loss, hidden, outputs = _nll(
                model, inputs, targets, hidden, F.softmax(alpha.detach(), dim=-1)
            )
            value = loss.item()
            if not math.isfinite(value):
                _diverged(trial, f"The training loss became {value} at epoch {epoch} "
                          f"(weight_lr={weight_lr:g})")
            torch.autograd.backward(loss + _tar(outputs, tar_beta))
            if grad_clip is not None:
                nn.utils.clip_grad_norm_(params, grad_clip)
            weight_optimizer.step()
            position += seq_len

        if not all(bool(torch.isfinite(p).all()) for p in params):
            _diverged(trial, f"The weights became NaN or infinite in epoch {epoch} "
                      f"(weight_lr={weight_lr:g})")
        weights = F.softmax(alpha.detach(), dim=-1)
        history.append(weights.cpu())
        perplexities.append(evaluate_perplexity(
            model, corpus.valid, batch_size=eval_batch_size, bptt=bptt, weights=weights
        ))
        found = result()
        _logger.info("DARTS recurrent epoch %d/%d: validation perplexity %.2f, derived %s",
                     epoch + 1, epochs, perplexities[-1], found.architecture)
        if trial is not None:
            trial.set_user_attr("arch", str(found.architecture))
            trial.set_user_attr("arch_space", space.name)
        _report(trial, perplexities[-1], epoch)
    return result()


def _second_order_gradient(
    model: RecurrentLanguageModel,
    alpha: torch.Tensor,
    train_batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    arch_batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    lr: float,
    weight_decay: float,
    grad_clip: float | None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """DARTS' second-order ``alpha`` gradient: ``(gradient, next arch state, arch loss)``.

    The paper's equations 7 and 8, with the rnn code's gradient clipping: the virtual step's
    gradient and ``v`` are clipped to ``grad_clip``. The Hessian-vector product is taken at
    ``w`` (the paper; the rnn code perturbs ``w'``), and ``v`` is the plain gradient (the
    rnn code adds weight decay to it).
    """
    names = [name for name, _ in model.named_parameters()]
    weights = [p.detach() for _, p in model.named_parameters()]
    inputs, targets, hidden = train_batch

    # The virtual step w' = w - lr * (clipped grad_w L_train(w, alpha) + decay * w).
    probs = F.softmax(alpha, dim=-1).detach()
    loss, _, _ = _nll(model, inputs, targets, hidden, probs)
    grads = list(torch.autograd.grad(loss, list(model.parameters())))
    _clip_(grads, grad_clip)
    unrolled = {
        name: (w - lr * (g + weight_decay * w)).requires_grad_()
        for name, w, g in zip(names, weights, grads, strict=True)
    }

    # grad_alpha and grad_w' of the architecture loss at w'.
    arch_inputs, arch_targets, arch_hidden = arch_batch
    arch_loss, hidden_next, _ = _nll(
        model, arch_inputs, arch_targets, arch_hidden, F.softmax(alpha, dim=-1), unrolled
    )
    grad_alpha, *grad_w = torch.autograd.grad(arch_loss, [alpha, *unrolled.values()])
    _clip_(grad_w, grad_clip)
    vector = grad_w
    norm = _norm(vector)
    if norm == 0.0:
        return grad_alpha, hidden_next.detach(), arch_loss.detach()

    # Finite-difference Hessian-vector product grad^2_{alpha,w} L_train(w, alpha) v at w.
    epsilon = HVP_RADIUS / norm
    sides = []
    for sign in (1.0, -1.0):
        shifted = {
            name: w + sign * epsilon * v for name, w, v in zip(names, weights, vector,
                                                               strict=True)
        }
        side_loss, _, _ = _nll(
            model, inputs, targets, hidden, F.softmax(alpha, dim=-1), shifted
        )
        (side,) = torch.autograd.grad(side_loss, [alpha])
        sides.append(side)
    hessian_vector = (sides[0] - sides[1]) / (2 * epsilon)
    return grad_alpha - lr * hessian_vector, hidden_next.detach(), arch_loss.detach()


def _stalled(history: list[float], perplexity: float, nonmono: int | None) -> bool:
    # NT-ASGD's trigger (AWD-LSTM, DARTS' rnn/train.py): worse than the best of the epochs
    # before the last ``nonmono``.
    if nonmono is None or len(history) <= nonmono:
        return False
    return perplexity > min(history[:-nonmono])


@contextlib.contextmanager
def _averaged_weights(
    model: nn.Module, optimizer: torch.optim.Optimizer
) -> Iterator[None]:
    # Under ASGD the averaged weights are the model (NT-ASGD evaluates and keeps them).
    if not isinstance(optimizer, torch.optim.ASGD):
        yield
        return
    saved: dict[nn.Parameter, torch.Tensor] = {}
    for p in model.parameters():
        state = optimizer.state.get(p, {})
        if "ax" in state:
            saved[p] = p.detach().clone()
            p.data.copy_(state["ax"])
    try:
        yield
    finally:
        for p, value in saved.items():
            p.data.copy_(value)


def train_language_model(
    model: RecurrentLanguageModel,
    corpus: TextCorpus,
    *,
    epochs: int,
    trial: optuna.Trial | None = None,
    lr: float = 20.0,
    batch_size: int = 64,
    eval_batch_size: int = 10,
    bptt: int = 35,
    weight_decay: float = 8e-7,
    grad_clip: float | None = 0.25,
    tar_beta: float = 1e-3,
    nonmono: int | None = 5,
    seed: int = 0,
    device: str | torch.device | None = None,
) -> float:
    """Train a derived cell's language model and report its validation perplexity.

    DARTS' evaluation recipe (``rnn/train.py``, after AWD-LSTM): SGD at ``lr`` scaled by
    the minibatch length (``bptt`` with probability 0.95, else half, jittered by N(0, 5),
    at least 5), gradient norm clipped at ``grad_clip``, weight decay, temporal activation
    regularisation ``tar_beta``; once the validation loss is worse than the best of the
    epochs before the last ``nonmono``, it switches to averaged SGD (NT-ASGD) and evaluates
    the averaged weights. After every epoch the validation perplexity is reported to the
    trial (study direction ``"minimize"``) and :class:`optuna.TrialPruned` is raised when
    the pruner says so. At the end the model holds the weights of its best epoch.

    Paper: Liu et al., "DARTS: Differentiable Architecture Search", ICLR 2019,
    https://arxiv.org/abs/1806.09055; NT-ASGD: Merity et al., "Regularizing and Optimizing
    LSTM Language Models", ICLR 2018, https://arxiv.org/abs/1708.02182.

    Args:
        model: The language model, e.g. ``space.build(arch, vocab_size=corpus.vocab_size)``.
        corpus: The text.
        epochs: Passes over the training text.
        trial: The Optuna trial to report to, or ``None``.
        lr: SGD (and ASGD) learning rate (20 in DARTS).
        batch_size: Parallel streams of the training text (64 in DARTS).
        eval_batch_size: Parallel streams of the validation text.
        bptt: Mean steps per minibatch.
        weight_decay: L2 weight decay (8e-7 in DARTS).
        grad_clip: Max gradient norm, or ``None``.
        tar_beta: Weight of the temporal activation regularisation.
        nonmono: Epochs of non-monotone patience before switching to ASGD; ``None`` never
            switches.
        seed: Seed of dropout and minibatch lengths.
        device: Where to train; by default CUDA when available, else the CPU.

    Returns:
        The best validation perplexity, that of the weights the model holds.

    Raises:
        optuna.TrialPruned: The trial's pruner stopped the training.
        NonFiniteLossError: The loss became NaN or infinite.
        DatasetError: A split is too short for the batch sizes.
    """
    _check_common(epochs, bptt, grad_clip, lr)
    if isinstance(model.cell, MixedRecurrentCell):
        raise ArchitectureError(
            "This model has a mixed (search) cell; derive an architecture first "
            "(search_recurrent(...).architecture) and build it with space.build(arch, ...)."
        )
    if nonmono is not None and nonmono < 1:
        raise ValueError(f"nonmono must be at least 1 or None, got {nonmono}.")
    dev = _resolve_device(device)
    model.to(dev)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    data = batchify(corpus.train, batch_size).to(dev)
    batchify(corpus.valid, eval_batch_size)  # fails early, with a sentence, if too short
    if trial is not None:
        trial.set_user_attr("params", count_parameters(model))
    optimizer: torch.optim.Optimizer = torch.optim.SGD(
        model.parameters(), lr=lr, weight_decay=weight_decay
    )
    history: list[float] = []
    best = math.inf
    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    for epoch in range(epochs):
        model.train()
        hidden = model.init_hidden(batch_size)
        start = 0
        while start < data.size(0) - 2:
            mean_len = bptt if rng.random() < _FULL_BPTT_PROBABILITY else bptt / 2
            seq_len = max(_MIN_SEQ_LEN, int(rng.normal(mean_len, _SEQ_LEN_STD)))
            seq_len = min(seq_len, bptt + _MAX_SEQ_LEN_DELTA)
            for group in optimizer.param_groups:
                group["lr"] = lr * seq_len / bptt
            inputs, targets = get_batch(data, start, seq_len)
            optimizer.zero_grad(set_to_none=True)
            loss, hidden, outputs = _nll(model, inputs, targets, hidden.detach(), None)
            value = loss.item()
            if not math.isfinite(value):
                _diverged(trial, f"The training loss became {value} at epoch {epoch} "
                          f"(lr={lr:g})")
            torch.autograd.backward(loss + _tar(outputs, tar_beta))
            if grad_clip is not None:
                nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            optimizer.step()
            start += seq_len
        if not all(bool(torch.isfinite(p).all()) for p in model.parameters()):
            _diverged(trial, f"The weights became NaN or infinite in epoch {epoch} (lr={lr:g})")
        with _averaged_weights(model, optimizer):
            perplexity = evaluate_perplexity(
                model, corpus.valid, batch_size=eval_batch_size, bptt=bptt
            )
            if perplexity < best:
                best = perplexity
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        _logger.info("epoch %d: valid perplexity %.2f", epoch, perplexity)
        _report(trial, perplexity, epoch)
        if not isinstance(optimizer, torch.optim.ASGD) and _stalled(history, perplexity,
                                                                     nonmono):
            _logger.info("epoch %d: switching to averaged SGD", epoch)
            optimizer = torch.optim.ASGD(
                model.parameters(), lr=lr, t0=0, lambd=0.0, weight_decay=weight_decay
            )
        history.append(perplexity)
    model.load_state_dict(best_state)
    return best
