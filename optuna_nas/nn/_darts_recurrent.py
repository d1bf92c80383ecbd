"""DARTS' recurrent cell, its continuous relaxation, and the language model that runs them.

The cell (Liu et al. 2019, Section 3 and ``rnn/model.py`` of their code) turns ``x_t`` and
``h_{t-1}`` into an initial state ``s_0`` by a highway: ``[c_0, h_0] = [x_t, h_{t-1}] W_0``,
``s_0 = h_{t-1} + sigmoid(c_0) * (tanh(h_0) - h_{t-1})``. Each of ``steps`` nodes then reads
one earlier state ``s_j`` and applies its own highway with an activation ``f``:
``[c, h] = s_j W_i``, ``s_i = s_j + sigmoid(c) * (f(h) - s_j)``. The output ``h_t`` is the
mean of the nodes. The search relaxes each node to a weighted sum over every earlier state
and every activation, plus ``none`` (zero), DARTS' mixed operation.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "CELL_OPS",
    "INIT_RANGE",
    "PRIMITIVES",
    "DartsRecurrentCell",
    "MixedRecurrentCell",
    "RecurrentGenotype",
    "RecurrentLanguageModel",
]

PRIMITIVES: tuple[str, ...] = ("none", "tanh", "relu", "sigmoid", "identity")
"""The ops of DARTS' recurrent search, in its order; ``none`` exists only in the search."""

CELL_OPS: tuple[str, ...] = PRIMITIVES[1:]
"""The activations a derived cell's node can have."""

INIT_RANGE = 0.04
"""Weights start uniform in [-0.04, 0.04], as in DARTS' rnn code."""

_ACTIVATION: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "tanh": torch.tanh,
    "relu": F.relu,
    "sigmoid": torch.sigmoid,
    "identity": lambda x: x,
}


@dataclass(frozen=True)
class RecurrentGenotype:
    """A DARTS recurrent cell: each node's activation and the earlier state it reads.

    Paper: Liu et al., "DARTS: Differentiable Architecture Search", ICLR 2019,
    https://arxiv.org/abs/1806.09055 (Section 3).

    Args:
        recurrent: ``(activation, predecessor)`` per node, nodes in order; node ``i``
            (1-based) reads state ``0 .. i-1``, where state 0 is the initial state from
            ``x_t`` and ``h_{t-1}``.
        concat: The states averaged into ``h_t``; DARTS averages every node,
            ``range(1, steps + 1)``.
    """

    recurrent: tuple[tuple[str, int], ...]
    concat: tuple[int, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "recurrent", tuple((str(a), int(p)) for a, p in self.recurrent))
        object.__setattr__(self, "concat", tuple(int(c) for c in self.concat))
        if not self.recurrent:
            raise ValueError("A recurrent genotype needs at least one node.")
        for i, (op, pred) in enumerate(self.recurrent, start=1):
            if op not in CELL_OPS:
                raise ValueError(
                    f"Node {i} has the op {op!r}; a derived cell's ops are {list(CELL_OPS)}."
                )
            if not 0 <= pred < i:
                raise ValueError(f"Node {i} reads state {pred}; it can read states 0..{i - 1}.")
        if not self.concat or len(set(self.concat)) != len(self.concat) or not all(
            0 <= c <= self.steps for c in self.concat
        ):
            raise ValueError(
                f"concat must list distinct states in 0..{self.steps}, got {list(self.concat)}."
            )

    @property
    def steps(self) -> int:
        """The number of nodes."""
        return len(self.recurrent)


def _mask(shape: tuple[int, ...], drop: float, like: torch.Tensor) -> torch.Tensor:
    # Variational dropout (Gal & Ghahramani 2016): one mask per sequence, reused at every
    # step, scaled so that the expectation is unchanged.
    keep = 1.0 - drop
    return like.new_empty(shape).bernoulli_(keep).div_(keep)


class _HighwayCell(nn.Module, abc.ABC):
    """The weights and the time loop shared by the derived and the mixed cell."""

    def __init__(
        self, input_size: int, hidden_size: int, steps: int, dropout_x: float, dropout_h: float
    ) -> None:
        super().__init__()
        if input_size < 1 or hidden_size < 1 or steps < 1:
            raise ValueError(
                "input_size, hidden_size and steps must be positive, got "
                f"{input_size}, {hidden_size}, {steps}."
            )
        for name, p in (("dropout_x", dropout_x), ("dropout_h", dropout_h)):
            if not 0.0 <= p < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {p}.")
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.steps = steps
        self.dropout_x = dropout_x
        self.dropout_h = dropout_h
        # Names and shapes match between the two cells, so a derived cell can load the
        # weights of a mixed one (state_dict) and compute the same node highways.
        self.w0 = nn.Parameter(
            torch.empty(input_size + hidden_size, 2 * hidden_size).uniform_(
                -INIT_RANGE, INIT_RANGE
            )
        )
        self.ws = nn.ParameterList(
            nn.Parameter(
                torch.empty(hidden_size, 2 * hidden_size).uniform_(-INIT_RANGE, INIT_RANGE)
            )
            for _ in range(steps)
        )

    def _initial_state(
        self,
        x: torch.Tensor,
        h_prev: torch.Tensor,
        x_mask: torch.Tensor | None,
        h_mask: torch.Tensor | None,
    ) -> torch.Tensor:
        xh = torch.cat(
            [x if x_mask is None else x * x_mask, h_prev if h_mask is None else h_prev * h_mask],
            dim=-1,
        )
        c0, h0 = (xh @ self.w0).chunk(2, dim=-1)
        return h_prev + c0.sigmoid() * (h0.tanh() - h_prev)

    @abc.abstractmethod
    def step(
        self,
        x: torch.Tensor,
        h_prev: torch.Tensor,
        x_mask: torch.Tensor | None,
        h_mask: torch.Tensor | None,
        weights: torch.Tensor | None,
    ) -> torch.Tensor:
        """``h_t`` from ``x_t`` ``(batch, input_size)`` and ``h_{t-1}``; masks may be None."""

    def forward(
        self, inputs: torch.Tensor, hidden: torch.Tensor, weights: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Run the cell over a sequence.

        Args:
            inputs: ``(time, batch, input_size)``.
            hidden: ``h`` before the first step, ``(batch, hidden_size)``.
            weights: For the mixed cell, the ``(edges, ops)`` weights of its relaxation.

        Returns:
            ``(outputs, h_last)``: every step's ``h``, ``(time, batch, hidden_size)``, and
            the last one.
        """
        batch = inputs.size(1)
        x_mask = h_mask = None
        if self.training:
            if self.dropout_x > 0:
                x_mask = _mask((batch, self.input_size), self.dropout_x, inputs)
            if self.dropout_h > 0:
                h_mask = _mask((batch, self.hidden_size), self.dropout_h, hidden)
        outputs: list[torch.Tensor] = []
        h = hidden
        for t in range(inputs.size(0)):
            h = self.step(inputs[t], h, x_mask, h_mask, weights)
            outputs.append(h)
        return torch.stack(outputs), h


class DartsRecurrentCell(_HighwayCell):
    """A derived DARTS recurrent cell: each node reads one earlier state with one activation.

    Inputs and hidden states get variational dropout (``dropout_x``, ``dropout_h``: one mask
    per sequence) in training mode, as in DARTS' rnn code.

    Paper: Liu et al., "DARTS: Differentiable Architecture Search", ICLR 2019,
    https://arxiv.org/abs/1806.09055 (Section 3; ``DARTSCell`` in its ``rnn/model.py``).

    Args:
        genotype: The cell's architecture.
        input_size: Features of ``x_t``.
        hidden_size: Features of ``h``.
        dropout_x: Variational dropout on ``x_t`` (0.75 in DARTS).
        dropout_h: Variational dropout on the states fed to the matrices (0.25 in DARTS).
    """

    def __init__(
        self,
        genotype: RecurrentGenotype,
        input_size: int,
        hidden_size: int,
        *,
        dropout_x: float = 0.0,
        dropout_h: float = 0.0,
    ) -> None:
        super().__init__(input_size, hidden_size, genotype.steps, dropout_x, dropout_h)
        self.genotype = genotype

    def step(
        self,
        x: torch.Tensor,
        h_prev: torch.Tensor,
        x_mask: torch.Tensor | None,
        h_mask: torch.Tensor | None,
        weights: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if weights is not None:
            raise ValueError("A derived cell has no relaxation weights; pass weights=None.")
        states = [self._initial_state(x, h_prev, x_mask, h_mask)]
        for i, (op, pred) in enumerate(self.genotype.recurrent):
            s_prev = states[pred]
            masked = s_prev if h_mask is None else s_prev * h_mask
            c, h = (masked @ self.ws[i]).chunk(2, dim=-1)
            states.append(s_prev + c.sigmoid() * (_ACTIVATION[op](h) - s_prev))
        return torch.stack([states[i] for i in self.genotype.concat]).mean(dim=0)


class MixedRecurrentCell(_HighwayCell):
    """DARTS' relaxed recurrent cell: every node mixes every earlier state and activation.

    Node ``i`` (1-based) has an edge from each state ``j < i``; edge ``(i, j)`` weighs the
    highways of ``s_j`` under each op of :data:`PRIMITIVES` (``none`` adds nothing), so
    ``s_i = sum_j sum_f w[(i, j), f] * (s_j + sigmoid(c_j) * (f(h_j) - s_j))`` with
    ``[c_j, h_j] = s_j W_i``. The weights (``softmax(alpha)`` in the search) come with each
    call, ``(num_edges, len(PRIMITIVES))``, edges in :attr:`edges` order. As in DARTS'
    search code, ``s_0`` and every node pass through a batch norm without affine
    parameters (``batch_norm=False`` drops it; without it a search on the toy text at
    DARTS' learning rate diverged in its first epoch). Each state has its own batch norm:
    DARTS shares one, whose running statistics then average over all states and
    mis-normalise each of them in eval mode. The output is the mean of the nodes.

    Paper: Liu et al., "DARTS: Differentiable Architecture Search", ICLR 2019,
    https://arxiv.org/abs/1806.09055 (Section 2.2; ``DARTSCellSearch`` in its code).

    Args:
        input_size: Features of ``x_t``.
        hidden_size: Features of ``h``.
        steps: Nodes of the cell (8 in DARTS).
        dropout_x: Variational dropout on ``x_t``.
        dropout_h: Variational dropout on the states fed to the matrices.
        batch_norm: Whether states are batch-normalised (DARTS' search does it).

    Attributes:
        edges: ``(node, earlier state)`` of each row of the weights.
        bn: The batch norms of states ``0 .. steps``, or ``None``.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        *,
        steps: int = 8,
        dropout_x: float = 0.0,
        dropout_h: float = 0.0,
        batch_norm: bool = True,
    ) -> None:
        super().__init__(input_size, hidden_size, steps, dropout_x, dropout_h)
        self.edges: tuple[tuple[int, int], ...] = tuple(
            (i, j) for i in range(1, steps + 1) for j in range(i)
        )
        self.bn = (
            nn.ModuleList(nn.BatchNorm1d(hidden_size, affine=False) for _ in range(steps + 1))
            if batch_norm
            else None
        )

    @property
    def num_edges(self) -> int:
        """Rows of the weights: one per (node, earlier state)."""
        return len(self.edges)

    def step(
        self,
        x: torch.Tensor,
        h_prev: torch.Tensor,
        x_mask: torch.Tensor | None,
        h_mask: torch.Tensor | None,
        weights: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if weights is None or weights.shape != (self.num_edges, len(PRIMITIVES)):
            raise ValueError(
                f"The mixed cell needs weights of shape ({self.num_edges}, {len(PRIMITIVES)}) "
                f"(edges x ops {list(PRIMITIVES)}), got "
                f"{None if weights is None else tuple(weights.shape)}."
            )
        s0 = self._initial_state(x, h_prev, x_mask, h_mask)
        if self.bn is not None:
            s0 = self.bn[0](s0)
        states = s0.unsqueeze(0)
        offset = 0
        for i in range(self.steps):
            # All i + 1 incoming edges in one matrix product, as in DARTS' search code.
            masked = states if h_mask is None else states * h_mask
            ch = (masked.reshape(-1, self.hidden_size) @ self.ws[i]).view(
                i + 1, -1, 2 * self.hidden_size
            )
            c, h = ch.chunk(2, dim=-1)
            c = c.sigmoid()
            w = weights[offset : offset + i + 1, 1:]  # (edges, activations); none adds 0
            # sum_f w_f * (s_j + c_j * (f(h_j) - s_j)) = (sum_f w_f) * (1 - c_j) * s_j
            # + c_j * sum_f w_f * f(h_j): one weighted sum over the activations instead of
            # one highway per op (DARTS' loop), fewer kernels for the same value.
            activations = torch.stack([_ACTIVATION[name](h) for name in PRIMITIVES[1:]])
            mixed = torch.einsum("jf,fjbh->jbh", w, activations)
            kept = w.sum(dim=1).view(-1, 1, 1)
            s = (kept * (1 - c) * states + c * mixed).sum(dim=0)
            if self.bn is not None:
                s = self.bn[i + 1](s)
            states = torch.cat([states, s.unsqueeze(0)])
            offset += i + 1
        return states[1:].mean(dim=0)


def _embedding_dropout(embedding: nn.Embedding, tokens: torch.Tensor, drop: float) -> torch.Tensor:
    # Drops whole words (rows of the embedding) for the batch (Gal & Ghahramani 2016),
    # AWD-LSTM's ``embedded_dropout`` used by DARTS.
    weight = embedding.weight
    if drop > 0:
        weight = weight * _mask((weight.size(0), 1), drop, weight)
    return F.embedding(tokens, weight)


def _locked_dropout(x: torch.Tensor, drop: float) -> torch.Tensor:
    # One mask per sequence over (batch, features), the same at every time step.
    if drop <= 0:
        return x
    return x * _mask((1, x.size(1), x.size(2)), drop, x)


class RecurrentLanguageModel(nn.Module):
    """A word-level language model: embedding, a recurrent cell unrolled over time, and a
    decoder tied to the embedding, returning log-probabilities of the next token.

    ``forward(tokens, hidden=None, weights=None)`` takes ``(time, batch)`` token ids and
    returns ``(log_probs, hidden, outputs)``: ``(time, batch, vocab_size)`` log
    probabilities, the last ``h`` (detach it and pass it to the next segment), and the cell's
    outputs before the output dropout (for temporal activation regularisation).
    ``weights`` goes to a :class:`MixedRecurrentCell`. Dropouts follow DARTS' rnn code:
    word dropout on the embedding (``dropout_e``), locked dropout on the embedded input
    (``dropout_i``) and on the cell's output (``dropout``), all off in eval mode.

    Paper: Liu et al., "DARTS: Differentiable Architecture Search", ICLR 2019,
    https://arxiv.org/abs/1806.09055 (``RNNModel`` in its ``rnn/model.py``); weight tying:
    Press & Wolf 2017, https://arxiv.org/abs/1608.05859.

    Args:
        cell: A :class:`DartsRecurrentCell` or :class:`MixedRecurrentCell`; its input and
            hidden sizes must be equal (the decoder is tied to the embedding).
        vocab_size: Tokens of the vocabulary.
        dropout: Locked dropout on the cell's outputs (0.75 in DARTS).
        dropout_i: Locked dropout on the embedded input (0.2 in DARTS).
        dropout_e: Word dropout on the embedding (0 in DARTS' default command).
    """

    def __init__(
        self,
        cell: DartsRecurrentCell | MixedRecurrentCell,
        *,
        vocab_size: int,
        dropout: float = 0.0,
        dropout_i: float = 0.0,
        dropout_e: float = 0.0,
    ) -> None:
        super().__init__()
        if vocab_size < 2:
            raise ValueError(f"vocab_size must be at least 2, got {vocab_size}.")
        if cell.input_size != cell.hidden_size:
            raise ValueError(
                f"The decoder is tied to the embedding (as in DARTS), so the cell's input "
                f"and hidden sizes must be equal; got {cell.input_size} and "
                f"{cell.hidden_size}."
            )
        for name, p in (("dropout", dropout), ("dropout_i", dropout_i), ("dropout_e", dropout_e)):
            if not 0.0 <= p < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {p}.")
        self.vocab_size = vocab_size
        self.embedding_size = cell.input_size
        self.dropout = dropout
        self.dropout_i = dropout_i
        self.dropout_e = dropout_e
        self.encoder = nn.Embedding(vocab_size, self.embedding_size)
        self.cell = cell
        self.decoder = nn.Linear(self.embedding_size, vocab_size)
        self.decoder.weight = self.encoder.weight
        nn.init.uniform_(self.encoder.weight, -INIT_RANGE, INIT_RANGE)
        nn.init.zeros_(self.decoder.bias)

    @classmethod
    def darts(
        cls,
        genotype: RecurrentGenotype,
        *,
        vocab_size: int,
        embedding_size: int = 850,
        hidden_size: int | None = None,
        dropout: float = 0.75,
        dropout_h: float = 0.25,
        dropout_x: float = 0.75,
        dropout_i: float = 0.2,
        dropout_e: float = 0.0,
    ) -> RecurrentLanguageModel:
        """The language model of a derived cell, with DARTS' evaluation settings.

        Paper: Liu et al., "DARTS: Differentiable Architecture Search", ICLR 2019,
        https://arxiv.org/abs/1806.09055 (defaults from ``rnn/train.py`` of its code).

        Args:
            genotype: The cell.
            vocab_size: Tokens of the vocabulary.
            embedding_size: Features of the embedding and of ``h`` (850 in DARTS).
            hidden_size: Features of ``h``; must equal ``embedding_size`` (the decoder is
                tied to the embedding). ``None`` means ``embedding_size``.
            dropout: Locked dropout on the cell's outputs.
            dropout_h: Variational dropout on the cell's states.
            dropout_x: Variational dropout on the cell's inputs.
            dropout_i: Locked dropout on the embedded input.
            dropout_e: Word dropout on the embedding.
        """
        hidden = embedding_size if hidden_size is None else hidden_size
        cell = DartsRecurrentCell(
            genotype, embedding_size, hidden, dropout_x=dropout_x, dropout_h=dropout_h
        )
        return cls(
            cell, vocab_size=vocab_size, dropout=dropout, dropout_i=dropout_i, dropout_e=dropout_e
        )

    def init_hidden(self, batch_size: int) -> torch.Tensor:
        """A zero state ``(batch_size, hidden_size)`` on the model's device."""
        return self.encoder.weight.new_zeros(batch_size, self.cell.hidden_size)

    def forward(
        self,
        tokens: torch.Tensor,
        hidden: torch.Tensor | None = None,
        weights: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if tokens.dim() != 2:
            raise ValueError(
                f"Expected token ids of shape (time, batch), got shape {tuple(tokens.shape)}; "
                "batch a stream with optuna_nas.text.batchify and get_batch."
            )
        if hidden is None:
            hidden = self.init_hidden(tokens.size(1))
        training = self.training
        embedded = _embedding_dropout(self.encoder, tokens, self.dropout_e if training else 0)
        embedded = _locked_dropout(embedded, self.dropout_i if training else 0)
        outputs, last = self.cell(embedded, hidden, weights)
        dropped = _locked_dropout(outputs, self.dropout if training else 0)
        logits = self.decoder(dropped)
        return F.log_softmax(logits, dim=-1), last, outputs

    def extra_repr(self) -> str:
        details: dict[str, Any] = {
            "vocab_size": self.vocab_size,
            "dropout": self.dropout,
            "dropout_i": self.dropout_i,
            "dropout_e": self.dropout_e,
        }
        return ", ".join(f"{k}={v}" for k, v in details.items())
