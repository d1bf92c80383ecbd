"""DARTS / NASNet cell spaces: decisions, genotype strings and their errors."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest

from optuna_nas.errors import ArchitectureError
from optuna_nas.nn import OP_SETS, Genotype
from optuna_nas.spaces import DartsCells, NasNetCells

# DARTS_V2 as DARTS' search log prints it (concat as a range), and as genotypes.py lists it.
DARTS_V2_LOGGED = (
    "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), "
    "('sep_conv_3x3', 1), ('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), "
    "('dil_conv_3x3', 2)], normal_concat=range(2, 6), reduce=[('max_pool_3x3', 0), "
    "('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), ('max_pool_3x3', 0), "
    "('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], "
    "reduce_concat=range(2, 6))"
)
DARTS_V2 = DARTS_V2_LOGGED.replace("range(2, 6)", "[2, 3, 4, 5]")
NORMAL = DARTS_V2[DARTS_V2.index("normal=") + 7 : DARTS_V2.index(", normal_concat")]
REDUCE = DARTS_V2[DARTS_V2.index("reduce=") + 7 : DARTS_V2.index(", reduce_concat")]


def _genotype(normal: str = NORMAL, reduce: str = REDUCE, **extra: str) -> str:
    fields = {
        "normal": normal,
        "normal_concat": "[2, 3, 4, 5]",
        "reduce": reduce,
        "reduce_concat": "[2, 3, 4, 5]",
        **extra,
    }
    return "Genotype(" + ", ".join(f"{k}={v}" for k, v in fields.items()) + ")"


@pytest.fixture(scope="module")
def darts() -> DartsCells:
    return DartsCells()


# ---- decisions ------------------------------------------------------------------------
@pytest.mark.parametrize("steps", [1, 2, 4, 5])
def test_darts_decisions(steps: int) -> None:
    space = DartsCells(steps=steps)
    assert len(space.decisions) == 2 * steps * 3
    for cell in ("normal", "reduce"):
        for k in range(steps):
            inputs = next(d for d in space.decisions if d.name == f"{cell}/n{k + 2}/inputs")
            assert len(inputs.choices) == math.comb(k + 2, 2)
            assert all(int(a) < int(b) for a, b in (str(c).split(",") for c in inputs.choices))
    assert space.ops == OP_SETS["darts"]


def test_nasnet_decisions() -> None:
    space = NasNetCells()
    assert (space.steps, space.ops, space.concat) == (5, OP_SETS["nasnet"], "unused")
    assert len(space.decisions) == 2 * 5 * 5
    names = {d.name: d for d in space.decisions}
    assert names["normal/n4/in1"].choices == (0, 1, 2, 3)
    assert names["reduce/n6/combine"].choices == ("add", "concat")
    assert NasNetCells(ops="enas").ops == OP_SETS["enas"]
    assert len(NasNetCells(combine=False).decisions) == 2 * 5 * 4


def test_constructor_errors() -> None:
    with pytest.raises(ArchitectureError, match="steps must be a positive integer, got 0"):
        DartsCells(steps=0)
    with pytest.raises(ArchitectureError, match="steps must be a positive integer"):
        DartsCells(steps="4")  # type: ignore[arg-type]
    with pytest.raises(ArchitectureError, match="concat must be 'all' or 'unused'"):
        DartsCells(concat="some")
    with pytest.raises(ArchitectureError, match="Unknown op set 'foo'") as info:
        DartsCells(ops="foo")
    for name in OP_SETS:
        assert repr(name) in str(info.value)
    with pytest.raises(ArchitectureError, match=r"Unknown op\(s\) \['conv_9x9'\]"):
        DartsCells(ops=["sep_conv_3x3", "conv_9x9"])
    with pytest.raises(ArchitectureError, match="distinct op names"):
        DartsCells(ops=["sep_conv_3x3", "sep_conv_3x3"])
    with pytest.raises(ArchitectureError, match="distinct op names"):
        DartsCells(ops=[])


def test_op_list_resolves_aliases() -> None:
    space = DartsCells(ops=("identity", "conv_7x1_1x7", "sep_conv_3x3"), steps=1)
    assert space.ops == ("skip_connect", "conv_1x7_7x1", "sep_conv_3x3")
    assert "ops=['skip_connect', 'conv_1x7_7x1', 'sep_conv_3x3']" in repr(space)


# ---- genotype strings -----------------------------------------------------------------
def test_genotype_printed_by_darts_search_parses(darts: DartsCells) -> None:
    # DARTS' search prints concat as range(2, 6); genotypes.py lists it.
    assert darts.parse(DARTS_V2_LOGGED) == darts.parse(DARTS_V2)
    assert darts.parse(DARTS_V2_LOGGED.replace("range(2, 6)", "(2, 3, 4, 5)")) == darts.parse(
        DARTS_V2
    )


def test_canonical_string(darts: DartsCells) -> None:
    arch = darts.parse(DARTS_V2)
    canonical = str(arch)
    # The canonical string lists each block's inputs in increasing order; DARTS_V2's third
    # normal block lists (1, 0), so its canonical string differs but reads the same.
    assert canonical != DARTS_V2
    assert "('skip_connect', 0), ('sep_conv_3x3', 1)" in canonical
    assert darts.parse(canonical) == arch and str(darts.parse(canonical)) == canonical
    genotype = darts.genotype(arch)
    for pairs in (genotype.normal, genotype.reduce):
        assert all(pairs[2 * k][1] < pairs[2 * k + 1][1] for k in range(4))
    assert arch["normal/n4/inputs"] == "0,1"
    assert (arch["normal/n4/op1"], arch["normal/n4/op2"]) == ("skip_connect", "sep_conv_3x3")


def test_genotype_value(darts: DartsCells) -> None:
    genotype = darts.genotype(darts.parse(DARTS_V2))
    assert isinstance(genotype, Genotype)
    assert genotype.normal[-1] == ("dil_conv_3x3", 2)
    assert genotype.normal_concat == [2, 3, 4, 5] == genotype.reduce_concat
    assert genotype.normal_combine == [] == genotype.reduce_combine
    assert len(genotype.reduce) == 8


def test_combine_round_trip() -> None:
    space = NasNetCells(steps=2, ops="enas")
    string = (
        "Genotype(normal=[('skip_connect', 0), ('skip_connect', 0), ('sep_conv_3x3', 1), "
        "('avg_pool_3x3', 2)], normal_concat=[3], reduce=[('max_pool_3x3', 1), "
        "('sep_conv_5x5', 0), ('skip_connect', 0), ('skip_connect', 1)], "
        "reduce_concat=[2, 3], normal_combine=['concat', 'add'], "
        "reduce_combine=['add', 'concat'])"
    )
    arch = space.parse(string)
    assert str(arch) == string
    assert arch["normal/n2/in1"] == arch["normal/n2/in2"] == 0  # NASNet may reuse an input
    assert space.genotype(arch).normal_combine == ["concat", "add"]
    # Without combine fields every block adds.
    plain = string.split(", normal_combine")[0] + ")"
    assert space.genotype(space.parse(plain)).reduce_combine == ["add", "add"]


def test_concat_unused() -> None:
    space = NasNetCells(steps=3, ops="enas")
    normal = "[('skip_connect', 0), ('skip_connect', 1), ('skip_connect', 2), "
    normal += "('skip_connect', 0), ('skip_connect', 2), ('skip_connect', 1)]"
    arch = space.parse(f"Genotype(normal={normal}, reduce={normal})")
    assert space.genotype(arch).normal_concat == [3, 4]
    with pytest.raises(ArchitectureError, match=r"normal_concat is \[2, 3, 4\]") as info:
        space.parse(f"Genotype(normal={normal}, normal_concat=[2, 3, 4], reduce={normal})")
    assert "concatenates [3, 4]" in str(info.value)


def test_literal_code_is_never_executed(
    darts: DartsCells, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    calls: list[object] = []
    monkeypatch.setattr(os, "system", lambda *a: calls.append(a) or 0)
    marker = tmp_path / "pwned"
    attacks = [
        "Genotype(normal=__import__('os').system('x'))",
        _genotype(normal="__import__('os').system('x')"),
        _genotype(normal_concat=f"open({str(marker)!r}, 'w')"),
        "__import__('os').system('x')",
        f"open({str(marker)!r}, 'w')",
        _genotype(normal_concat="range(__import__('os').system('x'))"),
        _genotype(normal_concat="[i for i in range(2, 6)]"),
        _genotype(reduce_concat="list(range(2, 6))"),
        _genotype(reduce_concat="range(2, 6, step=1)"),
        "(lambda: Genotype)()(normal=[])",
        "Genotype.__class__(normal=[])",
    ]
    for attack in attacks:
        with pytest.raises(ArchitectureError) as info:
            darts.parse(attack)
        assert "not a plain literal" in str(info.value) or "Malformed genotype" in str(
            info.value
        ), attack
    assert not calls and not marker.exists()


MALFORMED = [
    ("garbage", "Malformed genotype string 'garbage'"),
    ("Genotype(", "Malformed genotype string"),
    ("Genotype([], [2], [], [2])", "expected keyword fields"),
    ("Genotyp(normal=[])", "Malformed genotype string"),
    ("genotypes.Genotype(normal=[])", "Malformed genotype string"),
    ("Genotype(normal=" + "[" * 500 + "]" * 500 + ")", "Malformed genotype"),
    ("Genotype(normal=" + "-" * 100_000 + "1)", "Malformed genotype"),
    ("Genotype(normal=[\x00])", "Malformed genotype"),
    (DARTS_V2[:-1] + ", **fields)", "'**' unpacking"),
    (_genotype(foo="[1]"), "Unknown genotype field 'foo'"),
    (DARTS_V2[:-1] + ", normal_concat=[2, 3, 4, 5])", "'normal_concat' is given twice"),
    ("Genotype(normal_concat=[2, 3, 4, 5])", "has no 'normal' field"),
    (_genotype().replace(", reduce=", ", reduced="), "Unknown genotype field 'reduced'"),
    (_genotype(normal="[('sep_conv_3x3', 0)] * 8"), "not a plain literal"),
    (_genotype(normal="NORMAL"), "not a plain literal"),
    (
        _genotype(normal=NORMAL.replace(", ('dil_conv_3x3', 2)]", "]")),
        "field 'normal' has 7 (op, input) pairs; a space of 4 steps needs 8",
    ),
    (
        _genotype(reduce=REDUCE.replace("]", ", ('max_pool_3x3', 1)]")),
        "field 'reduce' has 9 (op, input) pairs",
    ),
    (_genotype(normal="[]"), "field 'normal' has 0 (op, input) pairs"),
    (_genotype(normal="'sep_conv_3x3'"), "must be a list of (op name, input index) pairs"),
    (
        _genotype(normal=NORMAL.replace("('dil_conv_3x3', 2)", "('dil_conv_3x3',)")),
        "must be a list of (op name, input index) pairs",
    ),
    (
        _genotype(normal=NORMAL.replace("('dil_conv_3x3', 2)", "('dil_conv_3x3', '2')")),
        "must be a list of (op name, input index) pairs",
    ),
    (
        _genotype(normal=NORMAL.replace("('dil_conv_3x3', 2)", "('dil_conv_3x3', True)")),
        "must be a list of (op name, input index) pairs",
    ),
    (
        _genotype(normal=NORMAL.replace("('dil_conv_3x3', 2)", "(3, 2)")),
        "must be a list of (op name, input index) pairs",
    ),
    (
        _genotype(normal=NORMAL.replace("('dil_conv_3x3', 2)", "('conv_9x9', 2)")),
        "Unknown op 'conv_9x9' in genotype field 'normal'",
    ),
    (
        _genotype(reduce=REDUCE.replace("('max_pool_3x3', 0)", "('max_pool_7x7', 0)")),
        "Unknown op 'max_pool_7x7' in genotype field 'reduce'",
    ),
    (
        _genotype(normal=NORMAL.replace("('sep_conv_3x3', 1)", "('sep_conv_3x3', 2)", 1)),
        "Block 0 of the normal cell reads state 2; it can read states 0..1",
    ),
    (
        _genotype(normal=NORMAL.replace("('dil_conv_3x3', 2)", "('dil_conv_3x3', 5)")),
        "Block 3 of the normal cell reads state 5; it can read states 0..4",
    ),
    (
        _genotype(normal=NORMAL.replace("('dil_conv_3x3', 2)", "('dil_conv_3x3', -1)")),
        "reads state -1",
    ),
    (
        _genotype(normal=NORMAL.replace("('dil_conv_3x3', 2)", "('dil_conv_3x3', 0)")),
        "Block 3 of the normal cell reads state 0 twice",
    ),
    (_genotype(normal_concat="[2, 3, 4]"), "normal_concat is [2, 3, 4], but this space"),
    (_genotype(reduce_concat="[5, 4, 3, 2]"), "reduce_concat is [5, 4, 3, 2]"),
    (_genotype(reduce_concat="range(2, 5)"), "reduce_concat is [2, 3, 4]"),
    (_genotype(normal_concat="5"), "normal_concat must be a list of state indices"),
    (_genotype(normal_concat="'2345'"), "normal_concat must be a list of state indices"),
    (_genotype(normal_concat="[2.0, 3, 4, 5]"), "must be a list of state indices"),
    (
        _genotype(normal_combine="['concat', 'add', 'add', 'add']"),
        "normal_combine asks for concat combines; this space adds",
    ),
    (_genotype(reduce_combine="5"), "reduce_combine must list 4 of ('add', 'concat')"),
    (_genotype(reduce_combine="['add']"), "reduce_combine must list 4"),
    (_genotype(reduce_combine="['add', 'add', 'add', 'mul']"), "reduce_combine must list 4"),
]


@pytest.mark.parametrize(("string", "message"), MALFORMED, ids=[m for _, m in MALFORMED])
def test_malformed_genotypes(darts: DartsCells, string: str, message: str) -> None:
    with pytest.raises(ArchitectureError) as info:
        darts.parse(string)
    assert message in str(info.value)


def test_defaults_parse(darts: DartsCells) -> None:
    # The helper above builds a valid genotype; each case changes exactly one thing.
    assert darts.parse(_genotype()) == darts.parse(DARTS_V2)
    assert darts.parse(_genotype(normal_combine="[]")) == darts.parse(DARTS_V2)
    assert darts.parse(_genotype(normal_combine=str(["add"] * 4))) == darts.parse(DARTS_V2)


def test_op_outside_the_space_set() -> None:
    enas = DartsCells(ops="enas")
    with pytest.raises(ArchitectureError, match="Unknown op 'dil_conv_3x3'") as info:
        enas.parse(DARTS_V2)
    assert "this space's ops are" in str(info.value) and "sep_conv_5x5" in str(info.value)


def test_steps_mismatch() -> None:
    with pytest.raises(ArchitectureError, match="a space of 5 steps needs 10"):
        DartsCells(steps=5).parse(DARTS_V2)


def test_nasnet_combine_needs_valid_values() -> None:
    space = NasNetCells(steps=1, ops="enas")
    base = "Genotype(normal=[('skip_connect', 0), ('skip_connect', 1)], reduce=[('skip_connect', 0), ('skip_connect', 1)]"  # noqa: E501
    assert space.parse(base + ", normal_combine=['concat'])")["normal/n2/combine"] == "concat"
    with pytest.raises(ArchitectureError, match="normal_combine must list 1 of"):
        space.parse(base + ", normal_combine=['mul'])")
    with pytest.raises(ArchitectureError, match="normal_combine must list 1 of"):
        space.parse(base + ", normal_combine=[['concat']])")
