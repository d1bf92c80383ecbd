"""AutoDeepLabSpace: valid paths by construction, string and param round trips, clear
errors for invalid paths and cells, and the decoded network it builds."""

from __future__ import annotations

import random

import optuna
import pytest
import torch

from optuna_nas.autodeeplab import AutoDeepLabNetwork, AutoDeepLabSpace
from optuna_nas.errors import ArchitectureError

CELL = [("sep_conv_3x3", 0), ("skip_connect", 1), ("dil_conv_5x5", 1), ("max_pool_3x3", 2)]


@pytest.fixture
def space() -> AutoDeepLabSpace:
    return AutoDeepLabSpace(layers=5, blocks=2)


def valid(path: list[int], levels: int = 4) -> bool:
    return path[0] in (0, 1) and all(
        abs(b - a) <= 1 and 0 <= b < levels for a, b in zip(path, path[1:], strict=False)
    )


def test_every_sample_is_a_valid_path_and_round_trips(space: AutoDeepLabSpace) -> None:
    seen = set()
    for seed in range(300):
        arch = space.sample(random.Random(seed))
        path = space.path(arch)
        assert len(path) == 5 and valid(path)
        assert space.rates(arch) == [4 * 2**level for level in path]
        assert space.parse(str(arch)) == arch
        assert space.from_params(space.to_params(arch)) == arch
        assert space.make(path, space.cell(arch)) == arch
        seen.add(tuple(path))
    # The tree of conditional decisions reaches the deepest level and comes back.
    assert any(3 in p for p in seen) and any(p[-1] == 0 and 2 in p for p in seen)


def test_optuna_suggestions_are_valid_paths(space: AutoDeepLabSpace) -> None:
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(n_startup_trials=5, seed=0))

    def objective(trial: optuna.Trial) -> float:
        arch = space.suggest(trial)
        assert valid(space.path(arch))
        return float(sum(space.path(arch)))

    study.optimize(objective, n_trials=15)
    best = space.from_params(study.best_params)
    assert valid(space.path(best))


def test_the_string_form_is_readable_and_canonical(space: AutoDeepLabSpace) -> None:
    swapped = [CELL[1], CELL[0], CELL[3], CELL[2]]  # each block's pair in the other order
    arch = space.make([0, 1, 2, 2, 1], swapped)
    assert str(arch) == (
        "AutoDeepLab(rates=[4, 8, 16, 16, 8], cell=[('sep_conv_3x3', 0), ('skip_connect', 1), "
        "('dil_conv_5x5', 1), ('max_pool_3x3', 2)])"
    )
    assert arch == space.make([0, 1, 2, 2, 1], CELL)
    assert arch["path/l2/from1"] == 2 and arch["cell/n3/inputs"] == "1,2"


@pytest.mark.parametrize(
    ("rates", "match"),
    [
        ([4, 16, 16, 16, 16], "moves from rate 4 .* to rate 16"),
        ([16, 16, 16, 16, 16], r"Layer 0 moves from rate 4 \(the stem"),
        ([4, 8, 16, 32, 8], "at most one level"),
        ([4, 8, 8, 8], "4 layers; this space has 5"),
        ([4, 8, 12, 8, 4], "among"),
        ([4, 8, 64, 8, 4], "among"),
    ],
)
def test_invalid_paths_are_named(space: AutoDeepLabSpace, rates: list[int], match: str) -> None:
    with pytest.raises(ArchitectureError, match=match):
        space.parse(f"AutoDeepLab(rates={rates}, cell={CELL})")


@pytest.mark.parametrize(
    ("cell", "match"),
    [
        (CELL[:2], "2 .* pairs; it needs 4"),
        ([("conv_9x9", 0), *CELL[1:]], "Unknown op 'conv_9x9'"),
        ([CELL[0], CELL[1], CELL[2], ("skip_connect", 3)], "reads state 3"),
        ([CELL[0], ("skip_connect", 0), CELL[2], CELL[3]], "twice"),
        ("sep_conv_3x3", "list of \\(op name, input index\\) pairs"),
    ],
)
def test_invalid_cells_are_named(space: AutoDeepLabSpace, cell: object, match: str) -> None:
    with pytest.raises(ArchitectureError, match=match):
        space.parse(f"AutoDeepLab(rates=[4, 4, 4, 4, 4], cell={cell!r})")


@pytest.mark.parametrize(
    "string",
    ["Genotype(normal=[])", "AutoDeepLab(rates=[4, 4, 4, 4, 4])",
     "AutoDeepLab(rates=[4, 4, 4, 4, 4], cell=[], extra=1)", "AutoDeepLab(rates=__import__('os'))",
     "not a string at all ("],
)
def test_malformed_strings_get_a_sentence(space: AutoDeepLabSpace, string: str) -> None:
    with pytest.raises(ArchitectureError):
        space.parse(string)


def test_make_checks_the_path_too(space: AutoDeepLabSpace) -> None:
    with pytest.raises(ArchitectureError, match="at most one level"):
        space.make([0, 0, 2, 2, 2], CELL)
    with pytest.raises(ArchitectureError, match="levels are 0..3"):
        space.make([0, 1, 2, 3, 4], CELL)


def test_params_of_an_invalid_move_are_rejected(space: AutoDeepLabSpace) -> None:
    params = space.to_params(space.make([0, 0, 0, 0, 0], CELL))
    params["arch/path/l1/from0"] = 2  # not a neighbour of level 0
    with pytest.raises(ArchitectureError, match="not a choice"):
        space.from_params(params)


def test_build_gives_the_decoded_network_with_an_aspp_head(space: AutoDeepLabSpace) -> None:
    arch = space.make([1, 2, 3, 2, 1], CELL)
    torch.manual_seed(0)
    net = space.build(arch, num_classes=3, filter_multiplier=2, aspp_channels=8)
    assert isinstance(net, AutoDeepLabNetwork)
    x = torch.randn(2, 3, 30, 34)  # sizes that do not divide by 32
    logits = net(x)
    assert logits.shape == (2, 3, 30, 34)
    # Blocks of F * rate / 4 channels, B of them concatenated: the last cell is at rate 8.
    assert net.aspp.branches[0][0].in_channels == 2 * 2 * 2
    loss = torch.nn.functional.cross_entropy(logits, torch.randint(0, 3, (2, 30, 34)))
    loss.backward()
    assert all(p.grad is not None for p in net.parameters())
    with pytest.raises(TypeError, match="Bad network option"):
        space.build(arch, num_classes=3, channels=8)


def test_another_configuration_is_rejected() -> None:
    arch = AutoDeepLabSpace(layers=3, blocks=2).sample(0)
    with pytest.raises(ArchitectureError, match="another configuration"):
        AutoDeepLabSpace(layers=4, blocks=2).path(arch)


def test_paper_defaults() -> None:
    space = AutoDeepLabSpace()
    assert (space.layers, space.blocks, space.levels) == (12, 5, 4)
    assert space.ops == ("none", "max_pool_3x3", "avg_pool_3x3", "skip_connect",
                         "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5")
    assert len(space.path(space.sample(0))) == 12
