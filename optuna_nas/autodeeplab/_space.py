"""Auto-DeepLab's hierarchical search space: one cell and a network-level path."""

from __future__ import annotations

import ast
from collections.abc import Mapping, Sequence
from typing import Any

from optuna_nas.autodeeplab._network import AutoDeepLabNetwork, check_cell, check_path, level_rate
from optuna_nas.errors import ArchitectureError, _short_repr
from optuna_nas.spaces._base import Architecture, Choice, Condition, Decision, SearchSpace
from optuna_nas.spaces._darts import DartsCells, _expression_tree

__all__ = ["AutoDeepLabSpace"]


def _level_of(values: Mapping[str, Choice], layer: int) -> int | None:
    """The level of ``layer`` given the path decisions so far, ``None`` if not decided."""
    level = values.get("path/l0")
    for m in range(1, layer + 1):
        if level is None:
            return None
        level = values.get(f"path/l{m}/from{level}")
    return level if isinstance(level, int) else None


def _comes_from(layer: int, level: int) -> Condition:
    def condition(values: Mapping[str, Choice]) -> bool:
        return _level_of(values, layer) == level

    return condition


class AutoDeepLabSpace(SearchSpace):
    """Auto-DeepLab's space: a DARTS cell shared by every layer, and the network-level path.

    The cell is DARTS' normal cell with ``blocks`` blocks (its decisions, renamed
    ``cell/...``, come from :class:`~optuna_nas.spaces.DartsCells`); there is no reduction
    cell, since the path changes the resolution between cells. The path gives each of
    ``layers`` layers a level, 0..3 for the downsampling rates 4, 8, 16, 32: the first layer
    follows the stem (rate 4) and so is at rate 4 or 8, and each later layer keeps its
    predecessor's level or moves one level up or down. The path is a tree of conditional
    decisions: ``path/l0`` (level 0 or 1), then for each layer ``l`` one decision
    ``path/l{l}/from{p}`` per level ``p`` the layer before can be at, made only when it is
    at ``p``, whose choices are the levels next to ``p``. Every sample, every Optuna
    suggestion, is therefore a valid path.

    Strings read ``AutoDeepLab(rates=[4, 8, 8, 16], cell=[('sep_conv_3x3', 0),
    ('skip_connect', 1), ...])``: the downsampling rate of each layer, and the cell in
    DARTS' genotype form (two ``(op, input)`` pairs per block, input 0 the output two layers
    back, 1 the previous layer's, ``k + 2`` block ``k``; a block's pair ordered by input).

    Paper: Liu et al., "Auto-DeepLab: Hierarchical Neural Architecture Search for Semantic
    Image Segmentation", CVPR 2019, https://arxiv.org/abs/1901.02985.

    Args:
        layers: ``L``, layers after the stem (12 in the paper).
        blocks: ``B``, blocks per cell (5 in the paper).
        ops: An op set name or a list of op names (DARTS' 8 ops in the paper).
        levels: Number of levels (4: rates 4 to 32).
        prefix: The prefix of the Optuna param names.
    """

    name = "autodeeplab"

    def __init__(
        self,
        *,
        layers: int = 12,
        blocks: int = 5,
        ops: str | Sequence[str] = "darts",
        levels: int = 4,
        prefix: str = "arch/",
    ) -> None:
        super().__init__(prefix=prefix)
        for name, value in (("layers", layers), ("blocks", blocks), ("levels", levels)):
            if type(value) is not int or value < 1:
                raise ArchitectureError(f"{name} must be a positive integer, got {value!r}.")
        self.layers, self.blocks, self.levels = layers, blocks, levels
        self.cell_space = DartsCells(steps=blocks, ops=ops, prefix=prefix)
        self.ops = self.cell_space.ops
        decisions = [Decision("path/l0", tuple(range(min(2, levels))))]
        for layer in range(1, layers):
            for p in range(min(layer + 1, levels)):
                decisions.append(Decision(
                    f"path/l{layer}/from{p}",
                    tuple(q for q in (p - 1, p, p + 1) if 0 <= q < levels),
                    condition=_comes_from(layer - 1, p),
                ))
        decisions += [
            Decision("cell/" + d.name.split("/", 1)[1], d.choices)
            for d in self.cell_space.decisions
            if d.name.startswith("normal/")
        ]
        self._decisions = tuple(decisions)

    @property
    def decisions(self) -> Sequence[Decision]:
        return self._decisions

    # ---- architecture <-> path and cell --------------------------------------------------
    def _path_of(self, values: Mapping[str, Choice]) -> list[int]:
        path = [_level_of(values, layer) for layer in range(self.layers)]
        if any(level is None for level in path):
            raise ArchitectureError(f"{self.name}: the path decisions are incomplete.")
        return [int(level) for level in path if level is not None]

    def _cell_of(self, values: Mapping[str, Choice]) -> list[tuple[str, int]]:
        cell: list[tuple[str, int]] = []
        for k in range(self.blocks):
            node = f"cell/n{k + 2}"
            i, j = (int(x) for x in str(values[f"{node}/inputs"]).split(","))
            cell += [(str(values[f"{node}/op1"]), i), (str(values[f"{node}/op2"]), j)]
        return cell

    def path(self, arch: Architecture) -> list[int]:
        """The level (0..3) of each layer."""
        self._check_space(arch)
        return self._path_of(arch.as_dict())

    def rates(self, arch: Architecture) -> list[int]:
        """The downsampling rate (4, 8, 16, 32) of each layer."""
        return [level_rate(level) for level in self.path(arch)]

    def cell(self, arch: Architecture) -> list[tuple[str, int]]:
        """The cell: two ``(op, input)`` pairs per block."""
        self._check_space(arch)
        return self._cell_of(arch.as_dict())

    def make(self, path: Sequence[int], cell: Sequence[tuple[str, int]]) -> Architecture:
        """The architecture of a path (levels) and a cell.

        Raises:
            ArchitectureError: The path breaks the move rule or has the wrong length, or the
                cell is malformed.
        """
        return self.from_values(self._values(path, cell))

    def _values(self, path: Sequence[int], cell: Sequence[tuple[str, int]]) -> dict[str, Choice]:
        path = check_path(path, self.levels)
        if len(path) != self.layers:
            raise ArchitectureError(
                f"The path has {len(path)} layers; this space has {self.layers} "
                f"(AutoDeepLabSpace(layers={self.layers}))."
            )
        pairs = check_cell(cell, self.ops, self.blocks)
        values: dict[str, Choice] = {"path/l0": path[0]}
        for layer in range(1, self.layers):
            values[f"path/l{layer}/from{path[layer - 1]}"] = path[layer]
        for k in range(self.blocks):
            (op1, i), (op2, j) = pairs[2 * k], pairs[2 * k + 1]
            node = f"cell/n{k + 2}"
            values[f"{node}/inputs"] = f"{i},{j}"
            values[f"{node}/op1"], values[f"{node}/op2"] = op1, op2
        return values

    # ---- strings ---------------------------------------------------------------------------
    def format(self, values: Mapping[str, Choice]) -> str:
        rates = [level_rate(level) for level in self._path_of(values)]
        return f"AutoDeepLab(rates={rates!r}, cell={self._cell_of(values)!r})"

    def _parse_values(self, string: str) -> dict[str, Choice]:
        example = "AutoDeepLab(rates=[4, 8, 8, 16], cell=[('sep_conv_3x3', 0), ...])"
        # Parsed only, never evaluated: the fields must be plain literals.
        tree = _expression_tree(string)
        if not (isinstance(tree, ast.Call) and isinstance(tree.func, ast.Name)
                and tree.func.id == "AutoDeepLab" and not tree.args):
            raise ArchitectureError(
                f"Malformed Auto-DeepLab string {string[:80]!r}: expected {example!r}."
            )
        fields: dict[str, Any] = {}
        for keyword in tree.keywords:
            if keyword.arg not in ("rates", "cell") or keyword.arg in fields:
                raise ArchitectureError(
                    f"Auto-DeepLab strings have the fields rates and cell once each, like "
                    f"{example!r}; got {_short_repr(keyword.arg)}."
                )
            try:
                fields[keyword.arg] = ast.literal_eval(keyword.value)
            except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
                raise ArchitectureError(
                    f"Field {_short_repr(keyword.arg)} is not a plain literal (a list of values)."
                ) from None
        for name in ("rates", "cell"):
            if name not in fields:
                raise ArchitectureError(f"{string[:80]!r} has no {name} field; expected "
                                        f"{example!r}.")
        rates = fields["rates"]
        allowed = [level_rate(level) for level in range(self.levels)]
        if not isinstance(rates, (list, tuple)) or any(
            type(r) is not int or r not in allowed for r in rates
        ):
            raise ArchitectureError(
                f"rates must be a list of downsampling rates among {allowed}, one per layer; "
                f"got {_short_repr(rates)}."
            )
        return self._values([allowed.index(r) for r in rates], fields["cell"])

    # ---- networks --------------------------------------------------------------------------
    def build(self, arch: Architecture, **network_options: Any) -> AutoDeepLabNetwork:
        """Build the decoded network: stem, the cell along the path, an ASPP head.

        Args:
            arch: An architecture of this space.
            network_options: ``num_classes`` (21), ``filter_multiplier`` (20:
                Auto-DeepLab-S), ``in_channels`` (3), ``aspp_rates`` ((6, 12, 18) at output
                stride 16, scaled to the last layer's rate), ``aspp_channels`` (256).
        """
        self._check_space(arch)
        values = arch.as_dict()
        options = {"num_classes": 21, **network_options}
        try:
            return AutoDeepLabNetwork(self._path_of(values), self._cell_of(values),
                                      levels=self.levels, **options)
        except TypeError as error:
            raise TypeError(f"Bad network option for an Auto-DeepLab network: {error}") from None

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(layers={self.layers}, blocks={self.blocks}, "
            f"ops={list(self.ops)}, levels={self.levels}, prefix={self.prefix!r})"
        )
