"""DARTS' recurrent-cell space: decisions, genotype strings, published cells, networks."""

from __future__ import annotations

import math

import pytest
import torch

from optuna_nas.errors import ArchitectureError
from optuna_nas.nn import DartsRecurrentCell, RecurrentGenotype, RecurrentLanguageModel
from optuna_nas.spaces import (
    DartsRecurrentSpace,
    list_published_recurrent_cells,
    published_recurrent_cell,
)

# As printed in rnn/genotypes.py of https://github.com/quark0/darts.
DARTS_V2 = (
    "Genotype(recurrent=[('sigmoid', 0), ('relu', 1), ('relu', 1), ('identity', 1), "
    "('tanh', 2), ('sigmoid', 5), ('tanh', 3), ('relu', 5)], concat=range(1, 9))"
)


def test_decisions() -> None:
    space = DartsRecurrentSpace()
    names = [d.name for d in space.decisions]
    assert names[:4] == ["n1/input", "n1/op", "n2/input", "n2/op"]
    assert len(names) == 16
    by_name = {d.name: d for d in space.decisions}
    assert by_name["n1/input"].choices == (0,)
    assert by_name["n8/input"].choices == tuple(range(8))
    assert by_name["n5/op"].choices == ("tanh", "relu", "sigmoid", "identity")
    assert all(d.condition is None for d in space.decisions)
    assert math.prod(len(d.choices) for d in space.decisions) == math.factorial(8) * 4**8


def test_published_cells() -> None:
    assert list_published_recurrent_cells() == ["DARTS_V1", "DARTS_V2"]
    space, arch = published_recurrent_cell("DARTS_V2")
    assert str(arch) == DARTS_V2
    assert arch["n1/op"] == "sigmoid" and arch["n6/input"] == 5
    genotype = space.genotype(arch)
    assert genotype.recurrent[5] == ("sigmoid", 5)
    assert genotype.concat == tuple(range(1, 9))
    _, v1 = published_recurrent_cell("DARTS_V1")
    assert space.genotype(v1).recurrent[:3] == (("relu", 0), ("relu", 1), ("tanh", 2))
    with pytest.raises(ArchitectureError, match="known cells are"):
        published_recurrent_cell("ENAS")


def test_equivalent_spellings_parse_to_the_canonical_string() -> None:
    space = DartsRecurrentSpace()
    arch = space.parse(DARTS_V2)
    spellings = [
        DARTS_V2.replace("concat=range(1, 9)", "concat=[1, 2, 3, 4, 5, 6, 7, 8]"),
        DARTS_V2.replace(", concat=range(1, 9)", ""),
        DARTS_V2.replace("[", "(").replace("]", ")"),
        DARTS_V2.replace("'", '"').replace(", ", ",  "),
        "Genotype(concat=range(1, 9), " + DARTS_V2[len("Genotype(") :].replace(
            ", concat=range(1, 9)", ""
        ),
    ]
    for text in spellings:
        assert space.parse(text) == arch
        assert str(space.parse(text)) == DARTS_V2


@pytest.mark.parametrize("steps", [1, 3, 8])
def test_round_trips(steps: int) -> None:
    space = DartsRecurrentSpace(steps=steps)
    for seed in range(30):
        arch = space.sample(seed)
        assert space.parse(str(arch)) == arch
        assert space.from_params(space.to_params(arch)) == arch
        genotype = space.genotype(arch)
        assert genotype.steps == steps
        assert [pred for _, pred in genotype.recurrent] == [
            arch[f"n{i}/input"] for i in range(1, steps + 1)
        ]


@pytest.mark.parametrize(
    ("string", "problem"),
    [
        ("__import__('os').system('echo hacked')", "expected Genotype(...)"),
        ("Genotype(recurrent=__import__('os').listdir('.'))", "not a plain literal"),
        ("Genotype([('relu', 0)] * 8)", "expected Genotype(...)"),
        ("Genotype(**{'recurrent': []})", "expected Genotype(...)"),
        ("Genotype(recurrent=[('relu', 0)] * 8)", "not a plain literal"),
        ("Genotype(recurrent=[('relu', 0), ('relu', 1)])", "it has 2 node(s)"),
        ("genotype(recurrent=[])", "expected Genotype(...)"),
        ("Genotype(recurrent=[('relu', 0)", "expected Genotype(...)"),
        ("Genotype(normal=[('relu', 0)])", "unknown field 'normal'"),
        ("Genotype(concat=[1])", "no 'recurrent' field"),
        ("Genotype(recurrent=[('relu', 0)], recurrent=[('relu', 0)])", "given twice"),
        ("Genotype(recurrent=[('relu', '0')])", "(op name, state) pairs"),
        ("Genotype(recurrent=[('relu', 0, 1)])", "(op name, state) pairs"),
    ],
)
def test_malformed_strings(string: str, problem: str) -> None:
    space = DartsRecurrentSpace(steps=1 if "* 8" not in string else 8)
    with pytest.raises(ArchitectureError) as info:
        space.parse(string)
    message = str(info.value)
    assert problem in message
    assert "Genotype(recurrent=[" in message  # the fix: what to write


@pytest.mark.parametrize(
    ("replace", "by", "problem"),
    [
        ("('tanh', 2)", "('none', 2)", "node 5 has the op 'none'"),
        ("('tanh', 2)", "('gelu', 2)", "node 5 has the unknown op 'gelu'"),
        ("('tanh', 2)", "('tanh', 5)", "node 5 reads state 5; it can read states 0..4"),
        ("('sigmoid', 0)", "('sigmoid', -1)", "node 1 reads state -1"),
        ("concat=range(1, 9)", "concat=range(0, 9)", "averages every node"),
        ("concat=range(1, 9)", "concat=[8]", "averages every node"),
    ],
)
def test_invalid_cells(replace: str, by: str, problem: str) -> None:
    assert replace in DARTS_V2
    with pytest.raises(ArchitectureError, match=problem.replace("(", r"\(")):
        DartsRecurrentSpace().parse(DARTS_V2.replace(replace, by, 1))


def test_op_subsets() -> None:
    space = DartsRecurrentSpace(steps=2, ops=("relu", "identity"))
    assert space.parse("Genotype(recurrent=[('relu', 0), ('identity', 1)])")["n2/op"] == (
        "identity"
    )
    with pytest.raises(ArchitectureError, match="unknown op 'tanh'"):
        space.parse("Genotype(recurrent=[('tanh', 0), ('identity', 1)])")


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({"steps": 0}, "steps must be a positive integer"),
        ({"steps": True}, "steps must be a positive integer"),
        ({"ops": ("none", "tanh")}, "exists only in DARTS' search relaxation"),
        ({"ops": ("tanh", "gelu")}, "Unknown recurrent op 'gelu'"),
        ({"ops": "tanh"}, "must be a list of activations"),
        ({"ops": ()}, "distinct and not empty"),
        ({"ops": ("tanh", "tanh")}, "distinct and not empty"),
    ],
)
def test_space_validation(options: dict[str, object], problem: str) -> None:
    with pytest.raises(ArchitectureError, match=problem):
        DartsRecurrentSpace(**options)  # type: ignore[arg-type]


def test_genotype_validation() -> None:
    with pytest.raises(ValueError, match="at least one node"):
        RecurrentGenotype((), ())
    with pytest.raises(ValueError, match="op 'none'"):
        RecurrentGenotype((("none", 0),), (1,))
    with pytest.raises(ValueError, match="reads state 2"):
        RecurrentGenotype((("relu", 0), ("relu", 2)), (1, 2))
    with pytest.raises(ValueError, match="distinct states"):
        RecurrentGenotype((("relu", 0),), (1, 1))


def test_build() -> None:
    space, arch = published_recurrent_cell("DARTS_V2")
    model = space.build(arch, vocab_size=11, embedding_size=6, dropout=0.0, dropout_x=0.0,
                        dropout_h=0.0, dropout_i=0.0)
    assert isinstance(model, RecurrentLanguageModel)
    assert isinstance(model.cell, DartsRecurrentCell)
    assert model.cell.genotype == space.genotype(arch)
    assert model.decoder.weight is model.encoder.weight  # tied, as in DARTS
    tokens = torch.randint(11, (7, 3))
    log_probs, hidden, outputs = model(tokens)
    assert log_probs.shape == (7, 3, 11) and hidden.shape == (3, 6) and outputs.shape == (7, 3, 6)
    assert torch.allclose(log_probs.exp().sum(-1), torch.ones(7, 3))
    assert torch.equal(hidden, outputs[-1])
    # W_0 (6 + 6 inputs -> 2 * 6) and 8 node matrices (6 -> 12), embedding, decoder bias.
    n_params = sum(p.numel() for p in model.parameters())
    assert n_params == 12 * 12 + 8 * 6 * 12 + 11 * 6 + 11
    cell = space.build_cell(arch, input_size=3, hidden_size=5)
    out, last = cell(torch.randn(4, 2, 3), torch.zeros(2, 5))
    assert out.shape == (4, 2, 5) and torch.equal(out[-1], last)


def test_build_errors() -> None:
    space, arch = published_recurrent_cell("DARTS_V1")
    with pytest.raises(ArchitectureError, match="vocab_size=corpus.vocab_size"):
        space.build(arch)
    with pytest.raises(ValueError, match="hidden sizes must be equal"):
        space.build(arch, vocab_size=10, embedding_size=8, hidden_size=6)
    with pytest.raises(ArchitectureError, match="another configuration"):
        DartsRecurrentSpace(steps=2).build(arch, vocab_size=10)
