from __future__ import annotations

import ast
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

from torch import nn

from optuna_nas.errors import ArchitectureError, _short_repr
from optuna_nas.nn._darts import CellNetwork, Genotype
from optuna_nas.nn._ops import canonical_op_name, get_op_set
from optuna_nas.spaces._base import Architecture, Choice, Decision, SearchSpace

CELL_TYPES = ("normal", "reduce")
COMBINES = ("add", "concat")


def _pair(i: int, j: int) -> str:
    return f"{i},{j}"


class DartsCells(SearchSpace):
    """The DARTS / NASNet cell space: a normal and a reduction cell of ``steps`` blocks.

    Each block takes two inputs among the earlier states of its cell (the two previous
    cells' outputs and the blocks before it), applies an op to each and combines them. With
    ``distinct_inputs`` (DARTS) a block's two inputs differ and are one decision
    (``normal/n2/inputs`` = ``"0,1"``); otherwise each input is its own decision. With
    ``combine=True`` (NASNet) each block also chooses ``add`` or ``concat``. The cell output
    concatenates every block (``concat="all"``, DARTS) or the blocks no other block uses
    (``concat="unused"``, NASNet).

    Strings are DARTS' genotype form, e.g.
    ``Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ...], normal_concat=[2, 3,
    4, 5], reduce=[...], reduce_concat=[2, 3, 4, 5])``, so genotypes printed by DARTS'
    code parse as they are.

    Paper: Liu et al., "DARTS: Differentiable Architecture Search", ICLR 2019,
    https://arxiv.org/abs/1806.09055; Zoph et al., "Learning Transferable Architectures for
    Scalable Image Recognition", CVPR 2018, https://arxiv.org/abs/1707.07012.

    Args:
        steps: Blocks per cell (4 in DARTS, 5 in NASNet).
        ops: An op set name (``"darts"``, ``"nasnet"``, ``"enas"``) or a list of op names.
        distinct_inputs: Whether a block's two inputs must differ.
        combine: Whether each block chooses between ``add`` and ``concat``.
        concat: ``"all"`` or ``"unused"``: which blocks form the cell output.
        prefix: The prefix of the Optuna param names.
    """

    name = "darts"

    def __init__(
        self,
        *,
        steps: int = 4,
        ops: str | Sequence[str] = "darts",
        distinct_inputs: bool = True,
        combine: bool = False,
        concat: str = "all",
        prefix: str = "arch/",
    ) -> None:
        super().__init__(prefix=prefix)
        if not isinstance(steps, int) or steps < 1:
            raise ArchitectureError(f"steps must be a positive integer, got {steps!r}.")
        if concat not in ("all", "unused"):
            raise ArchitectureError(f"concat must be 'all' or 'unused', got {concat!r}.")
        self.steps = steps
        self.ops = get_op_set(ops if isinstance(ops, str) else list(ops))
        self.distinct_inputs = distinct_inputs
        self.combine = combine
        self.concat = concat
        decisions: list[Decision] = []
        for cell in CELL_TYPES:
            for k in range(steps):
                node = f"{cell}/n{k + 2}"
                if distinct_inputs:
                    pairs = tuple(_pair(i, j) for j in range(k + 2) for i in range(j))
                    decisions.append(Decision(f"{node}/inputs", pairs))
                    decisions.append(Decision(f"{node}/op1", self.ops))
                    decisions.append(Decision(f"{node}/op2", self.ops))
                else:
                    for b in (1, 2):
                        decisions.append(Decision(f"{node}/in{b}", tuple(range(k + 2))))
                        decisions.append(Decision(f"{node}/op{b}", self.ops))
                if combine:
                    decisions.append(Decision(f"{node}/combine", COMBINES))
        self._decisions = tuple(decisions)

    @property
    def decisions(self) -> Sequence[Decision]:
        return self._decisions

    # ---- values <-> genotype ---------------------------------------------------------
    def _cell(self, values: Mapping[str, Choice], cell: str) -> tuple[list[tuple[str, int]],
                                                                       list[int], list[str]]:
        ops: list[tuple[str, int]] = []
        combines: list[str] = []
        for k in range(self.steps):
            node = f"{cell}/n{k + 2}"
            if self.distinct_inputs:
                i, j = (int(x) for x in str(values[f"{node}/inputs"]).split(","))
            else:
                i, j = int(values[f"{node}/in1"]), int(values[f"{node}/in2"])  # type: ignore[arg-type]
            ops += [(str(values[f"{node}/op1"]), i), (str(values[f"{node}/op2"]), j)]
            combines.append(str(values[f"{node}/combine"]) if self.combine else "add")
        return ops, self._concat_of(ops), combines

    def _concat_of(self, ops: Sequence[tuple[str, int]]) -> list[int]:
        states = list(range(2, self.steps + 2))
        if self.concat == "all":
            return states
        used = {index for _, index in ops}
        return [s for s in states if s not in used]

    def genotype(self, arch: Architecture) -> Genotype:
        """The architecture as a DARTS genotype, a plain value."""
        self._check_space(arch)
        values = arch.as_dict()
        normal, normal_concat, normal_combine = self._cell(values, "normal")
        reduce, reduce_concat, reduce_combine = self._cell(values, "reduce")
        return Genotype(
            normal,
            normal_concat,
            reduce,
            reduce_concat,
            normal_combine if self.combine else [],
            reduce_combine if self.combine else [],
        )

    def format(self, values: Mapping[str, Choice]) -> str:
        normal, normal_concat, normal_combine = self._cell(values, "normal")
        reduce, reduce_concat, reduce_combine = self._cell(values, "reduce")
        text = (
            f"Genotype(normal={normal!r}, normal_concat={normal_concat!r}, "
            f"reduce={reduce!r}, reduce_concat={reduce_concat!r}"
        )
        if self.combine:
            text += f", normal_combine={normal_combine!r}, reduce_combine={reduce_combine!r}"
        return text + ")"

    def _parse_values(self, string: str) -> dict[str, Choice]:
        fields = _read_genotype(string)
        values: dict[str, Choice] = {}
        for cell in CELL_TYPES:
            pairs = _ops_field(fields, cell, string)
            if len(pairs) != 2 * self.steps:
                raise ArchitectureError(
                    f"Genotype field {cell!r} has {len(pairs)} (op, input) pairs; a space of "
                    f"{self.steps} steps needs {2 * self.steps} (two per block)."
                )
            for op, _ in pairs:
                if op not in self.ops:
                    raise ArchitectureError(
                        f"Unknown op {_short_repr(op)} in genotype field {cell!r}; this space's "
                        f"ops are {list(self.ops)}."
                    )
            combines = fields.get(f"{cell}_combine")
            if combines is None or combines == []:
                combines = ["add"] * self.steps
            if (
                not isinstance(combines, list)
                or len(combines) != self.steps
                or any(not isinstance(c, str) or c not in COMBINES for c in combines)
            ):
                raise ArchitectureError(
                    f"Genotype field {cell}_combine must list {self.steps} of {COMBINES}, "
                    f"got {_short_repr(combines)}."
                )
            if not self.combine and any(c != "add" for c in combines):
                raise ArchitectureError(
                    f"Genotype field {cell}_combine asks for concat combines; this space "
                    "adds its blocks (use a space with combine=True)."
                )
            for k in range(self.steps):
                node = f"{cell}/n{k + 2}"
                (op1, i), (op2, j) = pairs[2 * k], pairs[2 * k + 1]
                for index in (i, j):
                    if not 0 <= index < k + 2:
                        raise ArchitectureError(
                            f"Block {k} of the {cell} cell reads state {index}; it can read "
                            f"states 0..{k + 1} (the two cell inputs and earlier blocks)."
                        )
                if self.distinct_inputs:
                    if i == j:
                        raise ArchitectureError(
                            f"Block {k} of the {cell} cell reads state {i} twice; this space "
                            "needs two distinct inputs (distinct_inputs=True)."
                        )
                    if i > j:
                        (op1, i), (op2, j) = (op2, j), (op1, i)
                    values[f"{node}/inputs"] = _pair(i, j)
                else:
                    values[f"{node}/in1"], values[f"{node}/in2"] = i, j
                values[f"{node}/op1"], values[f"{node}/op2"] = op1, op2
                if self.combine:
                    values[f"{node}/combine"] = combines[k]
            concat = fields.get(f"{cell}_concat")
            expected = self._concat_of([(op, idx) for op, idx in pairs])
            if concat is not None and not (
                isinstance(concat, list) and all(type(c) is int for c in concat)
            ):
                raise ArchitectureError(
                    f"Genotype field {cell}_concat must be a list of state indices, like "
                    f"{expected!r}; got {_short_repr(concat)}."
                )
            if concat is not None and concat != expected:
                raise ArchitectureError(
                    f"Genotype field {cell}_concat is {_short_repr(concat)}, but this space "
                    f"(concat={self.concat!r}) concatenates {expected} for these blocks."
                )
        return values

    def build(self, arch: Architecture, **network_options: Any) -> nn.Module:
        """Build the cell network (DARTS' NetworkCIFAR skeleton).

        Args:
            arch: An architecture of this space.
            network_options: ``channels`` (16), ``layers`` (8), ``num_classes`` (10),
                ``in_channels`` (3), ``auxiliary`` (False), ``stem_multiplier`` (3).
        """
        return CellNetwork(self.genotype(arch), **network_options)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(steps={self.steps}, ops={list(self.ops)}, "
            f"distinct_inputs={self.distinct_inputs}, combine={self.combine}, "
            f"concat={self.concat!r}, prefix={self.prefix!r})"
        )


class NasNetCells(DartsCells):
    """The NASNet cell space: DARTS' cells with NASNet's choices.

    Five blocks, NASNet's 13 ops, each input chosen freely (the two may be the same), a
    combine per block (add or concat), and the unused blocks concatenated into the output.

    Paper: Zoph et al., "Learning Transferable Architectures for Scalable Image
    Recognition", CVPR 2018, https://arxiv.org/abs/1707.07012.

    Args:
        steps: Blocks per cell (B = 5 in the paper).
        ops: An op set name or a list of op names (``"enas"`` gives ENAS' micro space).
        combine: Whether each block chooses between ``add`` and ``concat``.
        prefix: The prefix of the Optuna param names.
    """

    name = "nasnet"

    def __init__(
        self,
        *,
        steps: int = 5,
        ops: str | Sequence[str] = "nasnet",
        combine: bool = True,
        prefix: str = "arch/",
    ) -> None:
        super().__init__(
            steps=steps,
            ops=ops,
            distinct_inputs=False,
            combine=combine,
            concat="unused",
            prefix=prefix,
        )


def _read_genotype(string: str) -> dict[str, Any]:
    example = "Genotype(normal=[('sep_conv_3x3', 0), ...], normal_concat=[2, 3, 4, 5], ...)"
    # Parsed only, never evaluated: field values must be plain literals (below).
    tree = _expression_tree(string)
    if not (
        isinstance(tree, ast.Call)
        and isinstance(tree.func, ast.Name)
        and tree.func.id == "Genotype"
        and not tree.args
    ):
        raise ArchitectureError(
            f"Malformed genotype string {string[:80]!r}: expected keyword fields, like "
            f"{example!r}."
        )
    fields: dict[str, Any] = {}
    allowed = {"normal", "normal_concat", "reduce", "reduce_concat", "normal_combine",
               "reduce_combine"}
    for keyword in tree.keywords:
        if keyword.arg is None:
            raise ArchitectureError(
                f"Malformed genotype string {string[:80]!r}: '**' unpacking is not a field; "
                f"write each field out, like {example!r}."
            )
        if keyword.arg not in allowed:
            raise ArchitectureError(
                f"Unknown genotype field {_short_repr(keyword.arg)}; fields are {sorted(allowed)}."
            )
        if keyword.arg in fields:
            raise ArchitectureError(f"Genotype field {_short_repr(keyword.arg)} is given twice.")
        value = _range_literal(keyword.value)
        if value is None:
            try:
                value = ast.literal_eval(keyword.value)
            except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
                raise ArchitectureError(
                    f"Genotype field {_short_repr(keyword.arg)} is not a plain literal (a list "
                    "of values)."
                ) from None
        if isinstance(value, tuple):
            value = list(value)
        fields[keyword.arg] = value
    return fields


def _expression_tree(string: str) -> ast.expr | None:
    """The syntax tree of ``string`` read as one Python expression; ``None`` if it is not one.

    The string is parsed, never evaluated. The compiler's warnings about it (an invalid
    escape such as ``'\\,'``) are silenced: the caller accepts or rejects the string by its
    fields, and a parse must not print warnings about the user's input.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return ast.parse(string, mode="eval").body
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return None


def _range_literal(node: ast.expr) -> list[int] | None:
    """``range(a, b[, step])`` with integer literals as a list, as DARTS' search prints concat.

    ``None`` for any other expression; nothing is evaluated.
    """
    if not (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "range"
        and not node.keywords
        and 1 <= len(node.args) <= 3
    ):
        return None
    args: list[int] = []
    for arg in node.args:
        try:
            value = ast.literal_eval(arg)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            return None
        if type(value) is not int or abs(value) > 1_000:
            return None
        args.append(value)
    if len(args) == 3 and args[2] == 0:
        return None
    return list(range(*args))


def _ops_field(fields: dict[str, Any], cell: str, string: str) -> list[tuple[str, int]]:
    pairs = fields.get(cell)
    if pairs is None:
        raise ArchitectureError(f"Genotype string {string[:80]!r} has no {cell!r} field.")
    ok = isinstance(pairs, list) and all(
        isinstance(p, (tuple, list))
        and len(p) == 2
        and isinstance(p[0], str)
        and type(p[1]) is int
        for p in pairs
    )
    if not ok:
        raise ArchitectureError(
            f"Genotype field {cell!r} must be a list of (op name, input index) pairs."
        )
    return [(canonical_op_name(op), index) for op, index in pairs]
