"""NAS-RL's recurrent-cell space: the tree's decisions, the memory-cell choices, strings."""

from __future__ import annotations

import math

import pytest

from optuna_nas.errors import ArchitectureError
from optuna_nas.nn._nasrl_recurrent import RecurrentCellSpec, tree_children
from optuna_nas.spaces import NasRLRecurrentSpace

PAPER_EXAMPLE = "tree=add:tanh,elem_mult:relu,elem_mult:sigmoid;inject=add:relu@0;c_t=1"


def test_tree_numbering() -> None:
    assert tree_children(2) == (None, None, (0, 1))
    children = tree_children(8)
    assert len(children) == 15
    assert children[:8] == (None,) * 8
    assert children[8:] == ((0, 1), (2, 3), (4, 5), (6, 7), (8, 9), (10, 11), (12, 13))
    for bad in (0, 1, 3, 6):
        with pytest.raises(ValueError, match="power of two"):
            tree_children(bad)


def test_decisions_of_base_8() -> None:
    space = NasRLRecurrentSpace()
    names = [d.name for d in space.decisions]
    assert len(names) == 15 * 2 + 4
    assert names[:2] == ["node0/combine", "node0/activation"]
    assert names[28:30] == ["node14/combine", "node14/activation"]
    assert names[30:] == [
        "memory/inject_combine",
        "memory/inject_activation",
        "memory/cell_from",
        "memory/inject_at",
    ]
    by_name = {d.name: d for d in space.decisions}
    assert by_name["node3/combine"].choices == ("add", "elem_mult")
    assert by_name["node3/activation"].choices == ("identity", "tanh", "relu", "sigmoid")
    assert by_name["memory/cell_from"].choices == tuple(range(15))
    assert all(d.condition is None and d.anchor is None for d in space.decisions)
    # The paper: "approximately 6 x 10^16 architectures" for base 8.
    size = math.prod(len(d.choices) for d in space.decisions)
    assert size == 8**16 * 15 * 15
    assert 5.5e16 < size < 6.5e16


@pytest.mark.parametrize("base", [0, 1, 3, 12, True, 2.0])
def test_base_validation(base: object) -> None:
    with pytest.raises(ArchitectureError):
        NasRLRecurrentSpace(base=base)  # type: ignore[arg-type]


def test_paper_example() -> None:
    space = NasRLRecurrentSpace(base=2)
    arch = space.parse(PAPER_EXAMPLE)
    assert str(arch) == PAPER_EXAMPLE
    assert arch["node1/combine"] == "elem_mult" and arch["node2/activation"] == "sigmoid"
    assert arch["memory/inject_at"] == 0 and arch["memory/cell_from"] == 1
    assert space.cell_spec(arch) == RecurrentCellSpec(
        (("add", "tanh"), ("elem_mult", "relu"), ("elem_mult", "sigmoid")), "add", "relu", 1, 0
    )


@pytest.mark.parametrize("base", [2, 4, 8])
def test_round_trips(base: int) -> None:
    space = NasRLRecurrentSpace(base=base)
    for seed in range(40):
        arch = space.sample(seed)
        assert space.parse(str(arch)) == arch
        assert space.from_params(space.to_params(arch)) == arch
        assert str(arch).count(",") == 2 * base - 2


@pytest.mark.parametrize(
    ("string", "problem"),
    [
        ("tree=add:tanh,elem_mult:relu;inject=add:relu@0;c_t=1", "the tree has 2 node(s)"),
        ("tree=add:tanh,mul:relu,add:tanh;inject=add:relu@0;c_t=1", "unknown combine 'mul'"),
        ("tree=add:tanh,add:gelu,add:tanh;inject=add:relu@0;c_t=1", "unknown activation"),
        ("tree=add:tanh,add,add:tanh;inject=add:relu@0;c_t=1", "node 1 reads 'add'"),
        ("tree=add:tanh,add:relu,add:tanh;inject=add@0;c_t=1", "inject reads 'add'"),
        ("tree=add:tanh,add:relu,add:tanh;inject=add:relu@3;c_t=1", "inject is node 3"),
        ("tree=add:tanh,add:relu,add:tanh;inject=add:relu@0;c_t=7", "c_t is node 7"),
        ("tree=add:tanh,add:relu,add:tanh;inject=add:relu;c_t=1", "three parts"),
        ("tree=add:tanh,add:relu,add:tanh;c_t=1;inject=add:relu@0", "three parts"),
        ("add:tanh,add:relu,add:tanh", "three parts"),
        ("tree=add:tanh,add:relu,add:tanh;inject=add:relu@0;c_t=-1", "three parts"),
    ],
)
def test_bad_strings(string: str, problem: str) -> None:
    with pytest.raises(ArchitectureError) as info:
        NasRLRecurrentSpace(base=2).parse(string)
    message = str(info.value)
    assert problem in message
    assert "e.g. 'tree=add:tanh,add:tanh,add:tanh;inject=add:relu@0;c_t=1'" in message


def test_spec_validation() -> None:
    with pytest.raises(ValueError, match="power of two"):
        RecurrentCellSpec((("add", "tanh"),) * 5, "add", "tanh", 0, 0)
    with pytest.raises(ValueError, match="Unknown combine"):
        RecurrentCellSpec((("add", "tanh"),) * 3, "sub", "tanh", 0, 0)
    with pytest.raises(ValueError, match="inject_at must be a node"):
        RecurrentCellSpec((("add", "tanh"),) * 3, "add", "tanh", 0, 3)
