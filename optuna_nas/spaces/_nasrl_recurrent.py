from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from torch import nn

from optuna_nas.errors import ArchitectureError, _short_repr
from optuna_nas.nn._nasrl_recurrent import (
    ACTIVATIONS,
    COMBINES,
    NasRLCell,
    NasRLSequenceClassifier,
    RecurrentCellSpec,
    tree_children,
)
from optuna_nas.spaces._base import Architecture, Choice, Decision, SearchSpace

__all__ = ["NasRLRecurrentSpace"]

_STRING = re.compile(r"tree=([^;]*);inject=([^;@]*)@([0-9]+);c_t=([0-9]+)")


class NasRLRecurrentSpace(SearchSpace):
    """NAS-RL's recurrent-cell search space: a tree of combines and activations.

    The cell is a full binary tree with ``base`` leaves (8 in the paper; nodes numbered as
    in :func:`~optuna_nas.nn._nasrl_recurrent.tree_children`, leaves first, root last).
    Leaves combine ``x_t`` and ``h_{t-1}``, inner nodes their two children, and the root
    gives ``h_t``. The decisions are, in the controller's order (the paper's Figure 5):

    * ``node{k}/combine`` (``add``, ``elem_mult``) and ``node{k}/activation``
      (``identity``, ``tanh``, ``relu``, ``sigmoid``) for every node ``k``;
    * ``memory/inject_combine`` and ``memory/inject_activation``: how ``c_{t-1}`` enters
      ("Cell Inject");
    * ``memory/cell_from``: the node whose output before its activation becomes ``c_t``,
      and ``memory/inject_at``: the node whose output ``c_{t-1}`` is injected into
      ("Cell Indices").

    With base 8 that is 8^15 * 8 * 15 * 15, about 6 x 10^16 cells, the paper's count.

    Strings read ``tree=<combine>:<activation>,...;inject=<combine>:<activation>@<node>;
    c_t=<node>``, nodes in order. The paper's base-2 example is
    ``tree=add:tanh,elem_mult:relu,elem_mult:sigmoid;inject=add:relu@0;c_t=1``:
    a_0 = tanh(W_1 x_t + W_2 h_{t-1}), a_1 = relu(W_3 x_t * W_4 h_{t-1}),
    a_0' = relu(a_0 + c_{t-1}), h_t = sigmoid(a_0' * a_1), c_t = W_3 x_t * W_4 h_{t-1}.

    Paper: Zoph & Le, "Neural Architecture Search with Reinforcement Learning", ICLR 2017,
    https://arxiv.org/abs/1611.01578 (section 3.4).

    Args:
        base: Leaves of the tree, a power of two (8 in the paper).
        prefix: The prefix of the Optuna param names.
    """

    name = "nasrl_recurrent"

    def __init__(self, *, base: int = 8, prefix: str = "arch/") -> None:
        super().__init__(prefix=prefix)
        if not isinstance(base, int) or isinstance(base, bool):
            raise ArchitectureError(f"base must be an integer, got {base!r}.")
        try:
            tree_children(base)
        except ValueError as error:
            raise ArchitectureError(str(error)) from None
        self.base = base
        self.num_nodes = 2 * base - 1
        nodes = tuple(range(self.num_nodes))
        decisions: list[Decision] = []
        for k in nodes:
            decisions.append(Decision(f"node{k}/combine", COMBINES))
            decisions.append(Decision(f"node{k}/activation", ACTIVATIONS))
        decisions += [
            Decision("memory/inject_combine", COMBINES),
            Decision("memory/inject_activation", ACTIVATIONS),
            Decision("memory/cell_from", nodes),
            Decision("memory/inject_at", nodes),
        ]
        self._decisions = tuple(decisions)

    @property
    def decisions(self) -> Sequence[Decision]:
        return self._decisions

    # ---- values <-> strings ----------------------------------------------------------
    def cell_spec(self, arch: Architecture) -> RecurrentCellSpec:
        """The cell of an architecture as a plain value."""
        self._check_space(arch)
        return self._spec(arch.as_dict())

    def _spec(self, values: Mapping[str, Choice]) -> RecurrentCellSpec:
        return RecurrentCellSpec(
            nodes=tuple(
                (str(values[f"node{k}/combine"]), str(values[f"node{k}/activation"]))
                for k in range(self.num_nodes)
            ),
            inject_combine=str(values["memory/inject_combine"]),
            inject_activation=str(values["memory/inject_activation"]),
            cell_from=int(values["memory/cell_from"]),  # type: ignore[arg-type]
            inject_at=int(values["memory/inject_at"]),  # type: ignore[arg-type]
        )

    def format(self, values: Mapping[str, Choice]) -> str:
        spec = self._spec(values)
        tree = ",".join(f"{combine}:{activation}" for combine, activation in spec.nodes)
        inject = f"{spec.inject_combine}:{spec.inject_activation}@{spec.inject_at}"
        return f"tree={tree};inject={inject};c_t={spec.cell_from}"

    def _malformed(self, string: str, problem: str) -> ArchitectureError:
        tree = ",".join(["add:tanh"] * self.num_nodes)
        return ArchitectureError(
            f"Malformed NAS-RL recurrent string {_short_repr(string, 200)}: {problem}. Write "
            "'tree=<combine>:<activation>,... (one per node);inject=<combine>:<activation>"
            f"@<node>;c_t=<node>' with combines {list(COMBINES)} and activations "
            f"{list(ACTIVATIONS)}, e.g. 'tree={tree};inject=add:relu@0;c_t=1'."
        )

    def _pair(self, string: str, text: str, where: str) -> tuple[str, str]:
        combine, sep, activation = text.partition(":")
        if not sep:
            raise self._malformed(
                string, f"{where} reads {_short_repr(text)}, not combine:activation"
            )
        if combine not in COMBINES:
            raise self._malformed(
                string, f"{where} has the unknown combine {_short_repr(combine)}"
            )
        if activation not in ACTIVATIONS:
            raise self._malformed(
                string, f"{where} has the unknown activation {_short_repr(activation)}"
            )
        return combine, activation

    def _node(self, string: str, text: str, where: str) -> int:
        node = int(text)
        if node >= self.num_nodes:
            raise self._malformed(
                string, f"{where} is node {node}; this tree's nodes are 0 to {self.num_nodes - 1}"
            )
        return node

    def _parse_values(self, string: str) -> dict[str, Choice]:
        match = _STRING.fullmatch(string)
        if match is None:
            raise self._malformed(string, "it does not have the three parts tree=, inject=, c_t=")
        tree, inject, inject_at, cell_from = match.groups()
        for where, text in (("inject", inject_at), ("c_t", cell_from)):
            # int() refuses numbers of over 4,300 digits; no node index comes near nine.
            if len(text) > 9:
                raise self._malformed(
                    string,
                    f"{where} is node {text[:12]}..., a number of {len(text)} digits; this "
                    f"tree's nodes are 0 to {self.num_nodes - 1}",
                )
        tokens = tree.split(",")
        if len(tokens) != self.num_nodes:
            raise self._malformed(
                string,
                f"the tree has {len(tokens)} node(s); base {self.base} has {self.num_nodes}",
            )
        values: dict[str, Choice] = {}
        for k, token in enumerate(tokens):
            values[f"node{k}/combine"], values[f"node{k}/activation"] = self._pair(
                string, token, f"node {k}"
            )
        combine, activation = self._pair(string, inject, "inject")
        values["memory/inject_combine"] = combine
        values["memory/inject_activation"] = activation
        values["memory/cell_from"] = self._node(string, cell_from, "c_t")
        values["memory/inject_at"] = self._node(string, inject_at, "inject")
        return values

    def build_cell(self, arch: Architecture, *, input_size: int, hidden_size: int) -> NasRLCell:
        """The recurrent cell of an architecture alone, for use in any model.

        Args:
            arch: An architecture of this space.
            input_size: Features of ``x_t``.
            hidden_size: Features of ``h`` and ``c``.
        """
        return NasRLCell(self.cell_spec(arch), input_size, hidden_size)

    def build(self, arch: Architecture, **network_options: Any) -> nn.Module:
        """Build a sequence classifier that runs the architecture's cell.

        Args:
            arch: An architecture of this space.
            network_options: ``input_size`` (features per step; by default ``in_channels
                * row_width``), ``hidden_size`` (32), ``num_classes`` (10), ``in_channels``
                (1) and ``row_width`` (8) for images read row by row; see
                :class:`~optuna_nas.nn._nasrl_recurrent.NasRLSequenceClassifier`.
        """
        return NasRLSequenceClassifier(self.cell_spec(arch), **network_options)

    def __repr__(self) -> str:
        return f"NasRLRecurrentSpace(base={self.base}, prefix={self.prefix!r})"
