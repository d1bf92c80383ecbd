"""The controller's policy: an LSTM that emits a space's decisions one after another."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import torch
from torch import nn

from optuna_nas.spaces._base import Choice, Decision

_LAYER = re.compile(r"^layer(\d+)/")


class ControllerPolicy(nn.Module):
    """An autoregressive policy over an ordered list of decisions (Zoph & Le 2016).

    Each active decision takes one LSTM step; its input is the embedding of the previous
    decision's choice, its softmax head is its own. Inactive (conditional) decisions leave
    the state unchanged. Anchor decisions (NAS-RL skip connections) use the paper's
    attention ``sigmoid(v^T tanh(W_prev a_j + W_curr a_i))`` between the anchor states of
    layers ``i`` and ``j``, the state after the last decision named ``layer{k}/...``.
    """

    def __init__(
        self,
        decisions: Sequence[Decision],
        *,
        hidden_size: int,
        num_layers: int,
        init_range: float,
        temperature: float,
        tanh_constant: float | None,
        generator: torch.Generator,
    ) -> None:
        super().__init__()
        self.decisions = list(decisions)
        self.hidden_size = hidden_size
        self.init_range = init_range
        self.temperature = temperature
        self.tanh_constant = tanh_constant
        sizes = [len(d.choices) for d in self.decisions]
        self.offsets = [sum(sizes[:i]) for i in range(len(sizes))]
        self.start = nn.Parameter(torch.zeros(1, hidden_size))
        self.cells = nn.ModuleList(
            nn.LSTMCell(hidden_size, hidden_size) for _ in range(num_layers)
        )
        self.embedding = nn.Embedding(max(1, sum(sizes)), hidden_size)
        self.heads = nn.ModuleList(nn.Linear(hidden_size, n) for n in sizes)
        self.w_prev = nn.Linear(hidden_size, hidden_size, bias=False)
        self.w_curr = nn.Linear(hidden_size, hidden_size, bias=False)
        self.v = nn.Linear(hidden_size, 1, bias=False)
        # Values are only tracked for spaces with conditional decisions.
        self.conditional = any(d.condition is not None for d in self.decisions)
        self.layer_of = [
            int(m.group(1)) if d.anchor is None and (m := _LAYER.match(d.name)) else None
            for d in self.decisions
        ]
        with torch.no_grad():
            for p in self.parameters():
                p.uniform_(-init_range, init_range, generator=generator)

    def set_decisions(self, decisions: Sequence[Decision]) -> None:
        """Replace the decisions by ones of the same names and sizes (new conditions)."""
        assert [(d.name, len(d.choices)) for d in decisions] == [
            (d.name, len(d.choices)) for d in self.decisions
        ]
        self.decisions = list(decisions)
        self.conditional = any(d.condition is not None for d in self.decisions)

    def extended(
        self,
        decisions: Sequence[Decision],
        old_positions: Sequence[int],
        generator: torch.Generator,
    ) -> ControllerPolicy:
        """A policy over more decisions that keeps what this one learned.

        The LSTM, the attention and, for each old decision (at ``old_positions[i]`` among
        ``decisions``), its head and choice embeddings carry over; the new decisions' start
        as a fresh policy's.
        """
        new = ControllerPolicy(
            decisions,
            hidden_size=self.hidden_size,
            num_layers=len(self.cells),
            init_range=self.init_range,
            temperature=self.temperature,
            tanh_constant=self.tanh_constant,
            generator=generator,
        )
        with torch.no_grad():
            new.start.copy_(self.start)
            for name in ("cells", "w_prev", "w_curr", "v"):
                getattr(new, name).load_state_dict(getattr(self, name).state_dict())
            for old, position in enumerate(old_positions):
                new.heads[position].load_state_dict(self.heads[old].state_dict())
                size = len(self.decisions[old].choices)
                new.embedding.weight[new.offsets[position] : new.offsets[position] + size] = (
                    self.embedding.weight[self.offsets[old] : self.offsets[old] + size]
                )
        return new

    def unroll(
        self,
        batch: int,
        *,
        choices: torch.Tensor | None = None,
        forced: Mapping[int, int] | None = None,
        forced_rows: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Sample (``choices=None``) or score (teacher forcing) a batch of architectures.

        Args:
            batch: Number of architectures.
            choices: ``(batch, decisions)`` choice indices, ``-1`` for inactive decisions,
                to score; ``None`` to sample.
            forced: Decision index -> choice index, imposed while sampling.
            forced_rows: ``(batch, decisions)`` choice indices imposed per architecture
                while sampling, ``-1`` where the policy samples.
            generator: The random generator of sampling.

        Returns:
            ``(choices, log_prob, entropy)``: the ``(batch, decisions)`` indices and, per
            architecture, the summed log-probability and entropy of its active decisions.
        """
        sampling = choices is None
        n = len(self.decisions)
        out = torch.full((batch, n), -1, dtype=torch.long)
        values: list[dict[str, Choice]] = [{} for _ in range(batch)]
        hs = [torch.zeros(batch, self.hidden_size) for _ in self.cells]
        cs = [torch.zeros(batch, self.hidden_size) for _ in self.cells]
        x = self.start.expand(batch, -1)
        log_prob = torch.zeros(batch)
        entropy = torch.zeros(batch)
        anchors: dict[int, torch.Tensor] = {}
        for d, decision in enumerate(self.decisions):
            if not sampling:
                assert choices is not None
                active = choices[:, d] >= 0
            elif decision.condition is None:
                active = torch.ones(batch, dtype=torch.bool)
            else:
                active = torch.tensor([decision.is_active(v) for v in values], dtype=torch.bool)
            if not bool(active.any()):
                continue
            mask = active.unsqueeze(1)
            inp = x
            for k, cell in enumerate(self.cells):
                h, c = cell(inp, (hs[k], cs[k]))
                hs[k] = torch.where(mask, h, hs[k])
                cs[k] = torch.where(mask, c, cs[k])
                inp = hs[k]
            top = hs[-1]
            if decision.anchor is not None:
                i, j = decision.anchor
                a_i = anchors.get(i, top)
                a_j = anchors.get(j, top)
                score = self.v(torch.tanh(self.w_prev(a_j) + self.w_curr(a_i))).squeeze(1)
                logits = torch.stack([torch.zeros_like(score), score], dim=1)
            else:
                logits = self.heads[d](top) / self.temperature
                if self.tanh_constant is not None:
                    logits = self.tanh_constant * torch.tanh(logits)
                layer = self.layer_of[d]
                if layer is not None:
                    anchors[layer] = top
            log_probs = torch.log_softmax(logits, dim=1)
            if sampling:
                index = torch.multinomial(log_probs.exp(), 1, generator=generator).squeeze(1)
                if forced and d in forced:
                    index = torch.full_like(index, forced[d])
                if forced_rows is not None:
                    column = forced_rows[:, d]
                    index = torch.where(column >= 0, column, index)
            else:
                assert choices is not None
                index = choices[:, d].clamp(min=0)
            chosen = log_probs.gather(1, index.unsqueeze(1)).squeeze(1)
            log_prob = log_prob + torch.where(active, chosen, torch.zeros_like(chosen))
            step_entropy = -(log_probs.exp() * log_probs).sum(dim=1)
            entropy = entropy + torch.where(active, step_entropy, torch.zeros_like(chosen))
            x = torch.where(mask, self.embedding(index + self.offsets[d]), x)
            out[:, d] = torch.where(active, index, torch.full_like(index, -1))
            if sampling and self.conditional:
                for b in torch.nonzero(active).flatten().tolist():
                    values[b][decision.name] = decision.choices[int(index[b])]
        return out, log_prob, entropy
