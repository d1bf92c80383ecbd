from __future__ import annotations

import ast
from collections.abc import Mapping, Sequence
from typing import Any

from torch import nn

from optuna_nas.errors import ArchitectureError, _short_repr
from optuna_nas.nn._darts_recurrent import (
    CELL_OPS,
    DartsRecurrentCell,
    RecurrentGenotype,
    RecurrentLanguageModel,
)
from optuna_nas.spaces._base import Architecture, Choice, Decision, SearchSpace
from optuna_nas.spaces._darts import _expression_tree, _range_literal

__all__ = [
    "DartsRecurrentSpace",
    "list_published_recurrent_cells",
    "published_recurrent_cell",
]

# The recurrent cells published with DARTS' code (``rnn/genotypes.py`` of
# https://github.com/quark0/darts; DARTS_V1 from the first-order search, DARTS_V2, the
# paper's cell, from the second-order one), in that file's string form.
_PUBLISHED: dict[str, str] = {
    "DARTS_V1": (
        "Genotype(recurrent=[('relu', 0), ('relu', 1), ('tanh', 2), ('relu', 3), ('relu', 4), "
        "('identity', 1), ('relu', 5), ('relu', 1)], concat=range(1, 9))"
    ),
    "DARTS_V2": (
        "Genotype(recurrent=[('sigmoid', 0), ('relu', 1), ('relu', 1), ('identity', 1), "
        "('tanh', 2), ('sigmoid', 5), ('tanh', 3), ('relu', 5)], concat=range(1, 9))"
    ),
}


class DartsRecurrentSpace(SearchSpace):
    """DARTS' recurrent-cell space: each node reads one earlier state with one activation.

    The cell has an initial state from ``x_t`` and ``h_{t-1}`` (state 0) and ``steps``
    nodes (8 in DARTS); node ``i`` (states 1..steps) makes two decisions, ``n{i}/input``
    (the state it reads, ``0 .. i-1``) and ``n{i}/op`` (its activation: ``tanh``,
    ``relu``, ``sigmoid``, ``identity``). ``h_t`` is the mean of the nodes. The search's
    ``none`` op exists only in the relaxation (:class:`~optuna_nas.nn.MixedRecurrentCell`);
    a derived cell has none. With 8 nodes that is 8! * 4^8, about 2.6 x 10^9 cells.

    Strings are DARTS' recurrent genotypes, e.g. ``Genotype(recurrent=[('sigmoid', 0),
    ('relu', 1), ('relu', 1), ('identity', 1), ('tanh', 2), ('sigmoid', 5), ('tanh', 3),
    ('relu', 5)], concat=range(1, 9))`` (DARTS_V2), so genotypes printed by DARTS' code
    parse as they are. Strings are read with :mod:`ast`, never evaluated.

    Paper: Liu et al., "DARTS: Differentiable Architecture Search", ICLR 2019,
    https://arxiv.org/abs/1806.09055 (Section 3, the recurrent cell).

    Args:
        steps: Nodes of the cell.
        ops: The activations a node can choose, a subset of ``tanh``, ``relu``,
            ``sigmoid``, ``identity``.
        prefix: The prefix of the Optuna param names.
    """

    name = "darts_recurrent"

    def __init__(
        self,
        *,
        steps: int = 8,
        ops: Sequence[str] = CELL_OPS,
        prefix: str = "arch/",
    ) -> None:
        super().__init__(prefix=prefix)
        if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
            raise ArchitectureError(f"steps must be a positive integer, got {steps!r}.")
        if isinstance(ops, str):
            raise ArchitectureError(
                f"ops must be a list of activations, got the string {ops!r}; e.g. "
                f"ops={list(CELL_OPS)}."
            )
        ops = tuple(ops)
        for op in ops:
            if op == "none":
                raise ArchitectureError(
                    "'none' exists only in DARTS' search relaxation (a zero edge); a derived "
                    f"cell's node has one of {list(CELL_OPS)}."
                )
            if op not in CELL_OPS:
                raise ArchitectureError(
                    f"Unknown recurrent op {op!r}; the ops of DARTS' recurrent cell are "
                    f"{list(CELL_OPS)}."
                )
        if not ops or len(set(ops)) != len(ops):
            raise ArchitectureError(f"ops must be distinct and not empty, got {list(ops)}.")
        self.steps = steps
        self.ops: tuple[str, ...] = ops
        decisions: list[Decision] = []
        for i in range(1, steps + 1):
            decisions.append(Decision(f"n{i}/input", tuple(range(i))))
            decisions.append(Decision(f"n{i}/op", ops))
        self._decisions = tuple(decisions)

    @property
    def decisions(self) -> Sequence[Decision]:
        return self._decisions

    # ---- values <-> genotype ---------------------------------------------------------
    def _genotype(self, values: Mapping[str, Choice]) -> RecurrentGenotype:
        return RecurrentGenotype(
            tuple(
                (str(values[f"n{i}/op"]), int(values[f"n{i}/input"]))  # type: ignore[arg-type]
                for i in range(1, self.steps + 1)
            ),
            tuple(range(1, self.steps + 1)),
        )

    def genotype(self, arch: Architecture) -> RecurrentGenotype:
        """The architecture as a DARTS recurrent genotype, a plain value."""
        self._check_space(arch)
        return self._genotype(arch.as_dict())

    def format(self, values: Mapping[str, Choice]) -> str:
        genotype = self._genotype(values)
        return (
            f"Genotype(recurrent={list(genotype.recurrent)!r}, "
            f"concat=range(1, {self.steps + 1}))"
        )

    def _malformed(self, string: str, problem: str) -> ArchitectureError:
        example = ", ".join(f"('tanh', {i})" for i in range(min(self.steps, 2)))
        return ArchitectureError(
            f"Malformed DARTS recurrent genotype {string[:80]!r}: {problem}. Write "
            f"'Genotype(recurrent=[{example}{', ...' if self.steps > 2 else ''}], "
            f"concat=range(1, {self.steps + 1}))': one (activation, input state) pair per "
            f"node ({self.steps} nodes), activations from {list(self.ops)}."
        )

    def _parse_values(self, string: str) -> dict[str, Choice]:
        fields = self._read_fields(string)
        pairs = fields.get("recurrent")
        if pairs is None:
            raise self._malformed(string, "it has no 'recurrent' field")
        ok = isinstance(pairs, (list, tuple)) and all(
            isinstance(p, (tuple, list)) and len(p) == 2 and isinstance(p[0], str)
            and type(p[1]) is int
            for p in pairs
        )
        if not ok:
            raise self._malformed(string, "'recurrent' must be a list of (op name, state) pairs")
        if len(pairs) != self.steps:
            raise self._malformed(
                string, f"it has {len(pairs)} node(s); this space's cell has {self.steps}"
            )
        values: dict[str, Choice] = {}
        for i, (op, pred) in enumerate(pairs, start=1):
            if op == "none":
                raise self._malformed(
                    string,
                    f"node {i} has the op 'none', which exists only in the search's "
                    "relaxation",
                )
            if op not in self.ops:
                raise self._malformed(string, f"node {i} has the unknown op {_short_repr(op)}")
            if not 0 <= pred < i:
                raise self._malformed(
                    string,
                    f"node {i} reads state {pred}; it can read states 0..{i - 1} (0 is the "
                    "initial state from x_t and h_(t-1))",
                )
            values[f"n{i}/input"] = pred
            values[f"n{i}/op"] = op
        concat = fields.get("concat")
        expected = list(range(1, self.steps + 1))
        if concat is not None and concat != expected:
            raise self._malformed(
                string,
                f"concat is {_short_repr(concat)}; this space averages every node, "
                f"concat=range(1, {self.steps + 1})",
            )
        return values

    def _read_fields(self, string: str) -> dict[str, Any]:
        # Parsed only, never evaluated: field values must be plain literals (below).
        tree = _expression_tree(string)
        if not (
            isinstance(tree, ast.Call)
            and isinstance(tree.func, ast.Name)
            and tree.func.id == "Genotype"
            and not tree.args
            and all(k.arg is not None for k in tree.keywords)
        ):
            raise self._malformed(string, "expected Genotype(...) with keyword fields")
        fields: dict[str, Any] = {}
        for keyword in tree.keywords:
            name = str(keyword.arg)
            if name not in ("recurrent", "concat"):
                raise self._malformed(
                    string,
                    f"unknown field {_short_repr(name)}; the fields are 'recurrent' and 'concat'",
                )
            if name in fields:
                raise self._malformed(string, f"the field {_short_repr(name)} is given twice")
            value: Any = _range_literal(keyword.value)
            if value is None:
                try:
                    value = ast.literal_eval(keyword.value)
                except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
                    raise self._malformed(
                        string, f"the field {_short_repr(name)} is not a plain literal"
                    ) from None
            fields[name] = list(value) if isinstance(value, tuple) else value
        return fields

    # ---- networks ----------------------------------------------------------------------
    def build_cell(
        self,
        arch: Architecture,
        *,
        input_size: int,
        hidden_size: int,
        dropout_x: float = 0.0,
        dropout_h: float = 0.0,
    ) -> DartsRecurrentCell:
        """The recurrent cell of an architecture alone, for use in any model.

        Args:
            arch: An architecture of this space.
            input_size: Features of ``x_t``.
            hidden_size: Features of ``h``.
            dropout_x: Variational dropout on ``x_t``.
            dropout_h: Variational dropout on the states.
        """
        return DartsRecurrentCell(
            self.genotype(arch),
            input_size,
            hidden_size,
            dropout_x=dropout_x,
            dropout_h=dropout_h,
        )

    def build(self, arch: Architecture, **network_options: Any) -> nn.Module:
        """Build a language model that runs the architecture's cell.

        Args:
            arch: An architecture of this space.
            network_options: ``vocab_size`` (required, e.g. ``corpus.vocab_size``),
                ``embedding_size`` (850, DARTS' evaluation size), ``hidden_size`` (equal to
                ``embedding_size``: the decoder is tied to the embedding), ``dropout``
                (0.75), ``dropout_h`` (0.25), ``dropout_x`` (0.75), ``dropout_i`` (0.2),
                ``dropout_e`` (0); see
                :meth:`~optuna_nas.nn.RecurrentLanguageModel.darts`.
        """
        genotype = self.genotype(arch)
        if "vocab_size" not in network_options:
            raise ArchitectureError(
                "A language model needs its vocabulary size: build(arch, "
                "vocab_size=corpus.vocab_size, embedding_size=..., ...)."
            )
        return RecurrentLanguageModel.darts(genotype, **network_options)

    def __repr__(self) -> str:
        return (
            f"DartsRecurrentSpace(steps={self.steps}, ops={list(self.ops)}, "
            f"prefix={self.prefix!r})"
        )


def list_published_recurrent_cells() -> list[str]:
    """The names of the published cells :func:`published_recurrent_cell` knows."""
    return sorted(_PUBLISHED)


def published_recurrent_cell(name: str) -> tuple[DartsRecurrentSpace, Architecture]:
    """A published DARTS recurrent cell as ``(space, architecture)``.

    ``DARTS_V1`` (first-order search) and ``DARTS_V2`` (second-order search, the paper's
    cell), from ``rnn/genotypes.py`` of https://github.com/quark0/darts.
    ``space.build(arch, vocab_size=...)`` builds its language model.

    Paper: Liu et al., "DARTS: Differentiable Architecture Search", ICLR 2019,
    https://arxiv.org/abs/1806.09055.

    Args:
        name: One of :func:`list_published_recurrent_cells`.
    """
    if name not in _PUBLISHED:
        raise ArchitectureError(
            f"Unknown published recurrent cell {name!r}; known cells are "
            f"{list_published_recurrent_cells()}."
        )
    space = DartsRecurrentSpace()
    return space, space.parse(_PUBLISHED[name])
