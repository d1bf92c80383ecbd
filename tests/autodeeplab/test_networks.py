"""The search supernet (trellis shapes, gradients into alphas and betas, the betas'
normalisation over outgoing moves), DARTS' cell derivation and the decoding."""

from __future__ import annotations

import pytest
import torch

from optuna_nas.autodeeplab import (
    MOVES,
    AutoDeepLabSpace,
    AutoDeepLabSupernet,
    decode,
    derive_cell,
    viterbi,
)
from optuna_nas.nn import OP_SETS


@pytest.fixture(scope="module")
def supernet() -> AutoDeepLabSupernet:
    torch.manual_seed(0)
    return AutoDeepLabSupernet(3, layers=3, blocks=2, filter_multiplier=2, aspp_rates=(1,))


def test_the_trellis_holds_the_reachable_nodes(supernet: AutoDeepLabSupernet) -> None:
    assert sorted(supernet.nodes) == ["0_0", "0_1", "1_0", "1_1", "1_2",
                                      "2_0", "2_1", "2_2", "2_3"]
    assert len(supernet.heads) == 4  # one ASPP per level of the last layer
    # Node (2, 1) has three incoming moves; (2, 3) only one (from level 2).
    assert sorted(supernet.nodes["2_1"].preprocess1) == ["-1", "0", "1"]
    assert sorted(supernet.nodes["2_3"].preprocess1) == ["1"]
    assert supernet.alphas.shape == (5, len(OP_SETS["darts"]))  # 2 + 3 edges
    assert supernet.betas.shape == (3, 4, len(MOVES))


def test_forward_backward_reach_every_parameter(supernet: AutoDeepLabSupernet) -> None:
    x = torch.randn(2, 3, 24, 20)
    supernet.zero_grad(set_to_none=True)
    logits = supernet(x)
    assert logits.shape == (2, 3, 24, 20)
    torch.nn.functional.cross_entropy(logits, torch.randint(0, 3, (2, 24, 20))).backward()
    assert supernet.alphas.grad is not None and supernet.alphas.grad.abs().sum() > 0
    assert supernet.betas.grad is not None
    valid = supernet.valid_moves
    # Every transition the trellis uses gets a gradient; the others none.
    assert bool((supernet.betas.grad[valid] != 0).all())
    assert bool((supernet.betas.grad[~valid] == 0).all())
    arch_ids = {id(p) for p in supernet.arch_parameters()}
    weights = supernet.weight_parameters()
    assert arch_ids.isdisjoint(id(p) for p in weights)
    assert len(weights) + 2 == len(list(supernet.parameters()))


def test_betas_are_normalised_over_outgoing_moves(supernet: AutoDeepLabSupernet) -> None:
    with torch.no_grad():
        supernet.betas.normal_()
    probs = supernet.transition_probabilities()
    sums = probs.sum(-1)
    # Layer 0 leaves the stem (level 0) for level 0 or 1; layer 1 leaves levels 0, 1.
    assert torch.allclose(sums[0], torch.tensor([1.0, 0, 0, 0]))
    assert torch.allclose(sums[1], torch.tensor([1.0, 1, 0, 0]))
    assert torch.allclose(sums[2], torch.tensor([1.0, 1, 1, 0]))
    assert bool((probs[:, 0, MOVES.index(-1)] == 0).all())  # nothing finer than rate 4
    matrix = supernet.transition_matrix()
    assert matrix.shape == (3, 4, 4)
    assert torch.allclose(matrix.sum(-1), sums)
    assert torch.allclose(matrix[2, 1, 2], probs[2, 1, MOVES.index(1)])
    path = viterbi(matrix)
    assert all(level <= layer + 1 for layer, level in enumerate(path))


def test_derive_cell_is_darts_rule() -> None:
    ops = OP_SETS["darts"]
    weights = torch.full((5, len(ops)), 0.01)
    none = ops.index("none")
    # Block 0 (edges from states 0, 1): both kept; 'none' is never chosen.
    weights[0, none] = 0.9
    weights[0, ops.index("sep_conv_3x3")] = 0.05
    weights[1, ops.index("skip_connect")] = 0.3
    # Block 1 (edges from 0, 1, 2): keep the two with the strongest non-none op.
    weights[2, none] = 0.99  # strong 'none' on state 0 does not count
    weights[3, ops.index("dil_conv_3x3")] = 0.2
    weights[4, ops.index("max_pool_3x3")] = 0.4
    cell = derive_cell(weights, ops, 2)
    assert cell == [("sep_conv_3x3", 0), ("skip_connect", 1),
                    ("dil_conv_3x3", 1), ("max_pool_3x3", 2)]
    with pytest.raises(ValueError, match="shape"):
        derive_cell(weights[:4], ops, 2)


def test_decode_gives_an_architecture_of_the_space(supernet: AutoDeepLabSupernet) -> None:
    space = AutoDeepLabSpace(layers=3, blocks=2)
    with torch.no_grad():
        supernet.betas.zero_()
        supernet.betas[:, :, MOVES.index(1)] = 5.0  # always go coarser
        arch = decode(space, supernet.op_weights(), supernet.transition_matrix())
    assert space.path(arch) == [1, 2, 3]
    assert space.parse(str(arch)) == arch
    net = space.build(arch, num_classes=3, filter_multiplier=2, aspp_channels=4)
    assert net(torch.randn(2, 3, 16, 16)).shape == (2, 3, 16, 16)


def test_bad_supernet_options() -> None:
    with pytest.raises(ValueError, match="layers"):
        AutoDeepLabSupernet(3, layers=0)
