"""DARTS' derivation rules: hand-made alphas give the expected architectures, random alphas
agree with a transcription of the paper's genotype() code, `none` is never derived in the
cell spaces, and bad alphas get a clear error."""

from __future__ import annotations

import math

import pytest
import torch

from optuna_nas.darts import derive
from optuna_nas.darts._derive import alpha_shapes
from optuna_nas.errors import ArchitectureError
from optuna_nas.spaces import DartsCells, NasBench201Space, NasNetCells, NasRLMacroSpace
from optuna_nas.supernet import Supernet

BIG = 5.0  # a logit that wins its edge's softmax clearly


def logits(rows: list[dict[str, float]], ops: tuple[str, ...]) -> torch.Tensor:
    """One row per edge: the named ops get the given logits, the others 0."""
    out = torch.zeros(len(rows), len(ops))
    for e, row in enumerate(rows):
        for op, value in row.items():
            out[e, ops.index(op)] = value
    return out


# ---- NAS-Bench-201 ---------------------------------------------------------------------
def test_nasbench201_takes_the_strongest_op_of_every_edge() -> None:
    space = NasBench201Space()
    wanted = ["nor_conv_3x3", "skip_connect", "none", "avg_pool_3x3", "nor_conv_1x1",
              "nor_conv_3x3"]
    alphas = {"cell": logits([{op: BIG, "skip_connect": 1.0} if op != "skip_connect"
                              else {op: BIG} for op in wanted], space.ops)}
    arch = derive(space, alphas)
    assert space.edge_ops(arch) == wanted  # `none` included, as xautodl derives it
    assert str(arch) == ("|nor_conv_3x3~0|+|skip_connect~0|none~1|+|avg_pool_3x3~0|"
                         "nor_conv_1x1~1|nor_conv_3x3~2|")
    # Without none, the runner-up of that edge (skip_connect at 1.0) is taken.
    assert space.edge_ops(derive(space, alphas, allow_none=False))[2] == "skip_connect"


# ---- DARTS cells -----------------------------------------------------------------------
def test_darts_keeps_the_two_strongest_predecessors_and_never_none() -> None:
    space = DartsCells(steps=4)
    ops = space.ops
    # Edges in DARTS' order: n2<-0, n2<-1 | n3<-0..2 | n4<-0..3 | n5<-0..4.
    normal = [
        {"sep_conv_3x3": 2.0}, {"none": 9.0, "max_pool_3x3": 1.0},           # n2
        {"none": 9.0, "skip_connect": 0.5}, {"dil_conv_5x5": 3.0},           # n3
        {"avg_pool_3x3": 2.5},
        {"sep_conv_5x5": 1.0}, {}, {"skip_connect": 2.0}, {"dil_conv_3x3": 4.0},  # n4
        {"none": 20.0}, {"none": 20.0}, {"max_pool_3x3": 0.2},                # n5
        {"sep_conv_3x3": 0.1}, {"none": 20.0, "avg_pool_3x3": 0.3},
    ]
    reduce = [{"max_pool_3x3": BIG} for _ in range(14)]
    alphas = {"normal": logits(normal, ops), "reduce": logits(reduce, ops)}
    arch = derive(space, alphas)
    g = space.genotype(arch)
    # n2: both inputs; n2<-1's strongest op other than none is max_pool_3x3.
    # n3: n3<-1 (dil_conv_5x5) and n3<-2 (avg_pool_3x3); n3<-0 is strong only by none.
    # n4: n4<-3 (dil_conv_3x3) and n4<-2 (skip_connect).
    # n5: weights compared after the softmax of each edge: n5<-3 and n5<-4 beat the edges
    # whose non-none ops are drowned by a large none.
    assert g.normal == [
        ("sep_conv_3x3", 0), ("max_pool_3x3", 1),
        ("dil_conv_5x5", 1), ("avg_pool_3x3", 2),
        ("skip_connect", 2), ("dil_conv_3x3", 3),
        ("max_pool_3x3", 2), ("sep_conv_3x3", 3),
    ]
    assert all(op == "max_pool_3x3" for op, _ in g.reduce)
    assert [j for _, j in g.reduce] == [0, 1, 0, 1, 0, 1, 0, 1]  # ties: earlier inputs
    assert g.normal_concat == g.reduce_concat == [2, 3, 4, 5]
    assert "none" not in str(arch)


def darts_reference_parse(weights: torch.Tensor, ops: tuple[str, ...], steps: int
                          ) -> list[tuple[str, int]]:
    """DARTS' genotype()._parse, transcribed from the paper's model_search.py."""
    none = ops.index("none")
    gene = []
    n = 2
    start = 0
    for i in range(steps):
        end = start + n
        w = weights[start:end].tolist()
        edges = sorted(
            range(i + 2),
            key=lambda x: -max(w[x][k] for k in range(len(w[x])) if k != none),  # noqa: B023
        )[:2]
        for j in edges:
            k_best = None
            for k in range(len(w[j])):
                if k != none and (k_best is None or w[j][k] > w[j][k_best]):
                    k_best = k
            assert k_best is not None
            gene.append((ops[k_best], j))
        start = end
        n += 1
    return gene


@pytest.mark.parametrize("seed", range(10))
def test_darts_agrees_with_the_papers_code_on_random_alphas(seed: int) -> None:
    space = DartsCells(steps=4)
    generator = torch.Generator().manual_seed(seed)
    alphas = {k: torch.randn(s, generator=generator) for k, s in alpha_shapes(space).items()}
    g = space.genotype(derive(space, alphas))
    for kind, ours in (("normal", g.normal), ("reduce", g.reduce)):
        reference = darts_reference_parse(torch.softmax(alphas[kind], -1), space.ops, 4)
        # The space stores each block's inputs in ascending order; DARTS by strength.
        pairs = [sorted(reference[2 * k : 2 * k + 2], key=lambda p: p[1]) for k in range(4)]
        assert ours == [p for pair in pairs for p in pair]


def test_nasnet_derives_a_valid_cell_with_add_combines_and_unused_concat() -> None:
    space = NasNetCells(steps=3)
    ops = space.ops
    rows = [{"sep_conv_3x3": BIG}, {"conv_1x1": 1.0},                        # n2 <- 0, 1
            {"max_pool_5x5": BIG}, {}, {"sep_conv_7x7": 2.0},               # n3 <- 0, 1, 2
            {"avg_pool_3x3": BIG}, {}, {"conv_3x3": 1.0}, {"skip_connect": 0.5}]  # n4
    alphas = {"normal": logits(rows, ops), "reduce": logits(rows, ops)}
    arch = derive(space, alphas)
    g = space.genotype(arch)
    assert g.normal == [("sep_conv_3x3", 0), ("conv_1x1", 1), ("max_pool_5x5", 0),
                        ("sep_conv_7x7", 2), ("avg_pool_3x3", 0), ("conv_3x3", 2)]
    assert g.normal_combine == ["add"] * 3
    assert g.normal_concat == [3, 4]  # state 2 feeds other blocks: NASNet leaves it out
    assert space.parse(str(arch)) == arch
    # The supernet runs it as one path.
    net = Supernet(space, channels=2, layers=3, in_channels=1)
    assert net(torch.randn(2, 1, 8, 8), arch).shape == (2, 10)


# ---- bad alphas ------------------------------------------------------------------------
def test_alphas_of_the_wrong_shape_are_rejected() -> None:
    space = DartsCells(steps=2)
    with pytest.raises(ArchitectureError, match=r"shapes .*'normal': \(5, 8\)"):
        derive(space, {"normal": torch.zeros(14, 8), "reduce": torch.zeros(14, 8)})
    with pytest.raises(ArchitectureError, match="another space"):
        derive(space, {"cell": torch.zeros(6, 5)})


def test_a_space_darts_does_not_search_is_rejected() -> None:
    with pytest.raises(ArchitectureError, match="NasBench201Space, DartsCells and NasNetCells"):
        derive(NasRLMacroSpace(layers=2), {})


def test_non_finite_alphas_are_rejected() -> None:
    alphas = {"cell": torch.full((6, 5), math.nan)}
    with pytest.raises(ArchitectureError, match="diverged"):
        derive(NasBench201Space(), alphas)


def test_a_space_of_only_none_cannot_be_derived() -> None:
    space = DartsCells(steps=1, ops=("none",))
    with pytest.raises(ArchitectureError, match="only op is 'none'"):
        derive(space, {k: torch.zeros(s) for k, s in alpha_shapes(space).items()})


def test_shapes_match_the_supernet() -> None:
    for space in (NasBench201Space(), DartsCells(steps=3), NasNetCells(steps=2)):
        net = Supernet(space, channels=2, **({"cells_per_stage": 1}
                                             if isinstance(space, NasBench201Space)
                                             else {"layers": 3}))
        assert alpha_shapes(space) == net.weight_shapes()
