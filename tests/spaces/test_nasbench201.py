"""NAS-Bench-201: every benchmark string parses, and malformed strings say what is wrong."""

from __future__ import annotations

import csv
import itertools
import os

import pytest

from optuna_nas.errors import ArchitectureError
from optuna_nas.nn import OP_SETS
from optuna_nas.spaces import NasBench201Space
from tests._shared import NASBENCH201_TABLE

TABLE = NASBENCH201_TABLE
OPS = OP_SETS["nasbench201"]
GOOD = (
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|"
    "skip_connect~2|"
)
ALL_NONE = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"


@pytest.fixture(scope="module")
def nb201() -> NasBench201Space:
    return NasBench201Space()


def test_decisions(nb201: NasBench201Space) -> None:
    assert [d.name for d in nb201.decisions] == ["1<-0", "2<-0", "2<-1", "3<-0", "3<-1", "3<-2"]
    assert OPS == ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
    assert all(d.choices == OPS and d.condition is None for d in nb201.decisions)


def test_every_benchmark_string_parses(nb201: NasBench201Space) -> None:
    if not TABLE.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{TABLE} is missing on CI")
        pytest.skip(f"{TABLE} is not here")
    with TABLE.open(newline="") as handle:
        strings = [row["arch"] for row in csv.DictReader(handle)]
    assert len(strings) == len(set(strings)) == 5**6
    archs = {nb201.parse(s) for s in strings}
    assert len(archs) == 5**6
    for string in strings[::97]:
        assert str(nb201.parse(string)) == string
    assert {str(a) for a in archs} == set(strings)


def test_every_architecture_formats_and_parses(nb201: NasBench201Space) -> None:
    strings = set()
    for ops in itertools.product(OPS, repeat=6):
        arch = nb201.from_values(dict(zip((d.name for d in nb201.decisions), ops, strict=True)))
        string = str(arch)
        assert nb201.parse(string) == arch
        assert nb201.edge_ops(arch) == list(ops)
        strings.add(string)
    assert len(strings) == 15_625


def test_string_form_is_the_benchmarks(nb201: NasBench201Space) -> None:
    arch = nb201.parse(GOOD)
    assert str(arch) == GOOD
    assert nb201.edge_ops(arch) == [
        "nor_conv_3x3",
        "nor_conv_3x3",
        "avg_pool_3x3",
        "skip_connect",
        "nor_conv_3x3",
        "skip_connect",
    ]
    assert arch["2<-1"] == "avg_pool_3x3"
    assert nb201.to_params(arch)["arch/3<-2"] == "skip_connect"


@pytest.mark.parametrize(
    ("string", "message"),
    [
        ("", "expected 3 nodes joined by '+'"),
        ("garbage", "expected 3 nodes joined by '+'"),
        ("|none~0|+|none~0|none~1|", "expected 3 nodes joined by '+'"),
        (ALL_NONE + "+|none~0|", "expected 3 nodes joined by '+'"),
        ("none~0|+|none~0|none~1|+|none~0|none~1|none~2|", "node 1 should be 1 edge(s)"),
        ("|none~0+|none~0|none~1|+|none~0|none~1|none~2|", "node 1 should be 1 edge(s)"),
        ("|none~0|+|none~0|none~1|+|none~0|none~1|none~2", "node 3 should be 3 edge(s)"),
        ("|none~0|+|none~0|+|none~0|none~1|none~2|", "node 2 should be 2 edge(s)"),
        ("|none~0|+|none~0|none~1|none~2|+|none~0|none~1|none~2|", "node 2 should be 2 edge"),
        ("|none~0|+|none~0|none~1|+|none~0|none~1||none~2|", "node 3 should be 3 edge(s)"),
        ("|none~1|+|none~0|none~1|+|none~0|none~1|none~2|", "edge 'none~1' of node 1"),
        ("|none~0|+|none~1|none~0|+|none~0|none~1|none~2|", "should read 'op~0'"),
        ("|none~0|+|none~0|none~1|+|none~0|none~1|none~3|", "edge 'none~3' of node 3"),
        ("|none~0|+|none~0|none~01|+|none~0|none~1|none~2|", "should read 'op~1'"),
        ("|none|+|none~0|none~1|+|none~0|none~1|none~2|", "edge 'none' of node 1"),
        ("|none~0|+|none~0|none~1|+|none~0|none~1|~2|", "Unknown op ''"),
        ("|conv_9x9~0|+|none~0|none~1|+|none~0|none~1|none~2|", "Unknown op 'conv_9x9'"),
        ("|sep_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|", "Unknown op 'sep_conv_3x3'"),
        ("|None~0|+|none~0|none~1|+|none~0|none~1|none~2|", "Unknown op 'None'"),
        ("|none~0|\n+|none~0|none~1|+|none~0|none~1|none~2|", "node 1 should be 1 edge(s)"),
        ("|none~0|+| none~0|none~1|+|none~0|none~1|none~2|", "Unknown op ' none'"),
    ],
)
def test_malformed_strings(nb201: NasBench201Space, string: str, message: str) -> None:
    with pytest.raises(ArchitectureError) as info:
        nb201.parse(string)
    assert message in str(info.value)


def test_unknown_op_lists_the_ops(nb201: NasBench201Space) -> None:
    with pytest.raises(ArchitectureError) as info:
        nb201.parse(ALL_NONE.replace("none~2", "conv_9x9~2"))
    for op in OPS:
        assert op in str(info.value)


@pytest.mark.parametrize("bad", [None, 15625, GOOD.encode()])
def test_non_strings(nb201: NasBench201Space, bad: object) -> None:
    with pytest.raises(ArchitectureError, match="expected an architecture string"):
        nb201.parse(bad)  # type: ignore[arg-type]
