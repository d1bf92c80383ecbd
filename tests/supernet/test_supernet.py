"""Supernet: single path equals the child network, only the path is computed and trained,
the weighted mode agrees with one-hot weights, checkpoints load with weights_only, and bad
input gets a clear error. Parametrized over every space a supernet supports."""

from __future__ import annotations

import io
import random
from collections.abc import Callable

import pytest
import torch
from torch import nn

from optuna_nas.errors import ArchitectureError
from optuna_nas.spaces import (
    Architecture,
    DartsCells,
    NasBench201Space,
    NasNetCells,
    NasRLMacroSpace,
    SearchSpace,
)
from optuna_nas.supernet import Supernet

# Every space a supernet supports, with tiny network options.
SUPERNET_SPACES: dict[str, tuple[Callable[[], SearchSpace], dict[str, int]]] = {
    "nasbench201": (NasBench201Space, {"channels": 4, "cells_per_stage": 1}),
    "darts": (lambda: DartsCells(steps=2), {"channels": 4, "layers": 3}),
    "nasnet": (lambda: NasNetCells(steps=3), {"channels": 4, "layers": 3}),
}


def make(name: str) -> Supernet:
    factory, options = SUPERNET_SPACES[name]
    torch.manual_seed(0)
    return Supernet(factory(), **options)


@pytest.fixture(params=sorted(SUPERNET_SPACES))
def supernet(request: pytest.FixtureRequest) -> Supernet:
    return make(request.param)


def images(batch: int = 4, size: int = 8) -> torch.Tensor:
    return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(1))


def archs(space: SearchSpace, n: int = 6) -> list[Architecture]:
    return [space.sample(random.Random(k)) for k in range(n)]


def test_every_sampled_architecture_runs_forward_and_backward(supernet: Supernet) -> None:
    for arch in archs(supernet.space):
        logits = supernet(images(), arch)
        assert logits.shape == (4, 10)
        logits.sum().backward()


def test_one_step_trains_only_the_path(supernet: Supernet) -> None:
    """After one SGD step (momentum, weight decay) on a path, every weight off the path is
    unchanged and has no gradient; weights on the path moved."""
    arch = archs(supernet.space)[0]
    on_path = {id(p) for p in supernet.path_parameters(arch)}
    before = {name: p.detach().clone() for name, p in supernet.named_parameters()}
    optimizer = torch.optim.SGD(supernet.parameters(), lr=0.1, momentum=0.9, weight_decay=3e-4)
    optimizer.zero_grad(set_to_none=True)
    loss = nn.functional.cross_entropy(supernet(images(), arch), torch.arange(4))
    loss.backward()
    optimizer.step()
    moved = 0
    off = 0
    for name, p in supernet.named_parameters():
        if id(p) in on_path:
            moved += not torch.equal(p, before[name])
        else:
            off += 1
            assert p.grad is None, name
            assert torch.equal(p, before[name]), name
    assert off > 0 and moved > 0
    assert moved >= len(on_path) // 2


# NASNet blocks may concatenate, or apply two ops to one input: no one-hot relaxation.
@pytest.mark.parametrize("name", ["nasbench201", "darts"])
def test_weighted_mode_with_one_hot_weights_is_the_path(name: str) -> None:
    supernet = make(name)
    space = supernet.space
    for arch in archs(space, 3):
        weights = {k: torch.zeros(shape) for k, shape in supernet.weight_shapes().items()}
        ops = list(supernet.ops)
        if isinstance(space, NasBench201Space):
            for e, name in enumerate(space.edge_ops(arch)):
                weights["cell"][e, ops.index(name)] = 1.0
        else:
            assert isinstance(space, DartsCells)
            genotype = space.genotype(arch)
            for kind, pairs in (("normal", genotype.normal), ("reduce", genotype.reduce)):
                edges = supernet.edges[kind]
                for b, (name, j) in enumerate(pairs):
                    weights[kind][edges.index(f"n{b // 2 + 2}<-{j}"), ops.index(name)] = 1.0
        torch.testing.assert_close(
            supernet(images(), weights=weights), supernet(images(), arch), atol=1e-5, rtol=1e-4
        )


def test_weighted_mode_gives_gradients_to_the_weights(supernet: Supernet) -> None:
    alphas = {
        k: torch.zeros(shape, requires_grad=True) for k, shape in supernet.weight_shapes().items()
    }
    weights = {k: torch.softmax(a, dim=-1) for k, a in alphas.items()}
    supernet(images(), weights=weights).logsumexp(1).sum().backward()
    for a in alphas.values():
        assert a.grad is not None and bool(a.grad.abs().sum() > 0)


def test_nasbench201_path_equals_the_child_network() -> None:
    """With the child's weights copied in, a single path computes exactly the network that
    ``space.build`` makes (affine batch norms, both in training mode)."""
    space = NasBench201Space()
    torch.manual_seed(0)
    net = Supernet(space, channels=4, cells_per_stage=2, affine=True)
    for arch in archs(space, 4) + [space.parse("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|")]:
        child = space.build(arch, channels=4, cells_per_stage=2)
        body = net.body
        # The supernet's batch norms keep no running statistics: strict=False skips them.
        body.stem.load_state_dict(child.stem.state_dict(), strict=False)
        body.head.load_state_dict(child.head.state_dict(), strict=False)
        body.classifier.load_state_dict(child.classifier.state_dict())
        for ours, theirs in zip(body.cells, child.cells, strict=True):
            if hasattr(ours, "edges"):
                for edge, op, name in zip(ours.edges, theirs.edge_ops, space.edge_ops(arch),
                                          strict=True):
                    edge.ops[name].load_state_dict(op.state_dict(), strict=False)
            else:
                ours.load_state_dict(theirs.state_dict(), strict=False)
        child.train()
        net.train()
        torch.testing.assert_close(net(images(), arch), child(images()), atol=1e-5, rtol=1e-4)


def test_checkpoint_round_trip_with_weights_only(supernet: Supernet) -> None:
    arch = archs(supernet.space)[1]
    buffer = io.BytesIO()
    torch.save(supernet.state_dict(), buffer)
    buffer.seek(0)
    factory, options = SUPERNET_SPACES[supernet.space.name]
    torch.manual_seed(123)
    other = Supernet(factory(), **options)
    other.load_state_dict(torch.load(buffer, weights_only=True))
    supernet.eval()
    other.eval()
    torch.testing.assert_close(other(images(), arch), supernet(images(), arch))


def test_bad_input_gets_clear_errors() -> None:
    with pytest.raises(ArchitectureError, match="Supernet supports"):
        Supernet(NasRLMacroSpace(layers=2))
    with pytest.raises(TypeError, match="Bad network option"):
        Supernet(NasBench201Space(), layers=3)
    net = Supernet(NasBench201Space(), channels=4, cells_per_stage=1)
    darts_arch = DartsCells(steps=2).sample(0)
    with pytest.raises(ArchitectureError, match="not an architecture of the nasbench201"):
        net(images(), darts_arch)
    with pytest.raises(ValueError, match="exactly one of arch or weights"):
        net(images())
    with pytest.raises(ValueError, match="shapes"):
        net(images(), weights={"cell": torch.ones(5, 5)})
    other_config = DartsCells(steps=3).sample(0)
    small = Supernet(DartsCells(steps=2), channels=4, layers=2)
    with pytest.raises(ArchitectureError, match="another configuration"):
        small(images(), other_config)
