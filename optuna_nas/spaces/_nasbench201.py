from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from torch import nn

from optuna_nas.errors import ArchitectureError, _short_repr
from optuna_nas.nn._nasbench201 import EDGES, NasBench201Network
from optuna_nas.nn._ops import OP_SETS
from optuna_nas.spaces._base import Architecture, Choice, Decision, SearchSpace

_NODE = re.compile(r"\|(.*)\|")


class NasBench201Space(SearchSpace):
    """The NAS-Bench-201 cell space: 4 nodes, 6 edges, 5 ops, 15,625 architectures.

    Decisions are the edges in the benchmark's order (``1<-0``, ``2<-0``, ``2<-1``,
    ``3<-0``, ``3<-1``, ``3<-2``); strings are exactly the benchmark's, e.g.
    ``|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|``.
    The network is the benchmark's skeleton (see :meth:`build`).

    Paper: Dong & Yang, "NAS-Bench-201: Extending the Scope of Reproducible Neural
    Architecture Search", ICLR 2020, https://arxiv.org/abs/2001.00326.

    Args:
        prefix: The prefix of the Optuna param names.
    """

    name = "nasbench201"

    def __init__(self, *, prefix: str = "arch/") -> None:
        super().__init__(prefix=prefix)
        self.ops = OP_SETS["nasbench201"]
        self._decisions = tuple(Decision(f"{to}<-{frm}", self.ops) for to, frm in EDGES)

    @property
    def decisions(self) -> Sequence[Decision]:
        return self._decisions

    def format(self, values: Mapping[str, Choice]) -> str:
        nodes = []
        for to in (1, 2, 3):
            nodes.append(
                "|" + "|".join(f"{values[f'{to}<-{frm}']}~{frm}" for frm in range(to)) + "|"
            )
        return "+".join(nodes)

    def _parse_values(self, string: str) -> dict[str, Choice]:
        example = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|..."
        nodes = string.split("+")
        if len(nodes) != 3:
            raise ArchitectureError(
                f"Malformed NAS-Bench-201 string {_short_repr(string, 200)}: expected 3 nodes "
                f"joined by '+', like {example!r}."
            )
        values: dict[str, Choice] = {}
        for to, node in enumerate(nodes, start=1):
            match = _NODE.fullmatch(node)
            edges = match.group(1).split("|") if match else []
            if len(edges) != to:
                raise ArchitectureError(
                    f"Malformed NAS-Bench-201 string {_short_repr(string, 200)}: node {to} "
                    f"should be {to} edge(s) between bars, like '|op~0|', got "
                    f"{_short_repr(node)}."
                )
            for frm, edge in enumerate(edges):
                op, sep, source = edge.partition("~")
                if sep != "~" or source != str(frm):
                    raise ArchitectureError(
                        f"Malformed NAS-Bench-201 string {_short_repr(string, 200)}: edge "
                        f"{_short_repr(edge)} of node {to} should read 'op~{frm}'."
                    )
                if op not in self.ops:
                    raise ArchitectureError(
                        f"Unknown op {_short_repr(op)} in NAS-Bench-201 string "
                        f"{_short_repr(string, 200)}; ops are {list(self.ops)}."
                    )
                values[f"{to}<-{frm}"] = op
        return values

    def edge_ops(self, arch: Architecture) -> list[str]:
        """The six edge ops of an architecture, in the benchmark's edge order."""
        self._check_space(arch)
        return [str(arch[d.name]) for d in self._decisions]

    def build(self, arch: Architecture, **network_options: Any) -> nn.Module:
        """Build the benchmark's network.

        Args:
            arch: An architecture of this space.
            network_options: ``channels`` (16), ``cells_per_stage`` (5), ``num_classes``
                (10), ``in_channels`` (3).
        """
        return NasBench201Network(self.edge_ops(arch), **network_options)
