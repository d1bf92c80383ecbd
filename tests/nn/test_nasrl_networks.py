"""Networks of NAS-RL's spaces: every sampled architecture trains a step (property tests),
the skip connections form valid layer graphs, the recurrent cell computes the paper's
equations and learns digits read row by row."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch.utils.data import Subset

from optuna_nas.data import ImageData, load_digits
from optuna_nas.nn._nasrl_macro import MacroLayerSpec, NasRLMacroNetwork, pad_to_largest
from optuna_nas.nn._nasrl_recurrent import NasRLCell, NasRLSequenceClassifier
from optuna_nas.spaces import Architecture, Choice, NasRLMacroSpace, NasRLRecurrentSpace
from optuna_nas.spaces import SearchSpace as _SearchSpace
from optuna_nas.training import seed_everything, train

PROPERTY = settings(
    max_examples=120,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

MACRO_SPACES = (
    NasRLMacroSpace(),
    NasRLMacroSpace(min_layers=1, max_layers=7, strides=True),
    NasRLMacroSpace(layers=2, strides=True),
)
RECURRENT_SPACES = (
    NasRLRecurrentSpace(base=2),
    NasRLRecurrentSpace(base=4),
    NasRLRecurrentSpace(),
)


@st.composite
def architectures(draw: Callable[..., Any], space: _SearchSpace) -> Architecture:
    """An architecture of ``space``, each active decision drawn among its choices."""
    values: dict[str, Choice] = {}
    for decision in space.decisions:
        if decision.is_active(values):
            values[decision.name] = draw(st.sampled_from(decision.choices))
    return space.from_values(values)


@st.composite
def macro_cases(draw: Callable[..., Any]) -> tuple[NasRLMacroSpace, Architecture]:
    space = draw(st.sampled_from(MACRO_SPACES))
    return space, draw(architectures(space))


@st.composite
def recurrent_cases(draw: Callable[..., Any]) -> tuple[NasRLRecurrentSpace, Architecture]:
    space = draw(st.sampled_from(RECURRENT_SPACES))
    return space, draw(architectures(space))


def _train_step(model: torch.nn.Module, x: torch.Tensor, num_classes: int) -> None:
    """One SGD step; the loss and gradients are finite and every parameter moves."""
    model.train()
    before = [p.detach().clone() for p in model.parameters()]
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    logits = model(x)
    assert logits.shape == (x.shape[0], num_classes)
    loss = F.cross_entropy(logits, torch.arange(x.shape[0]) % num_classes)
    assert math.isfinite(loss.item())
    optimizer.zero_grad()
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
    optimizer.step()
    assert any(not torch.equal(b, p) for b, p in zip(before, model.parameters(), strict=True))


# ---- property tests -------------------------------------------------------------------
@PROPERTY
@given(
    case=macro_cases(),
    in_channels=st.sampled_from([1, 3]),
    height=st.integers(3, 9),
    width=st.integers(3, 9),
)
def test_every_macro_architecture_trains_a_step(
    case: tuple[NasRLMacroSpace, Architecture], in_channels: int, height: int, width: int
) -> None:
    space, arch = case
    torch.manual_seed(0)
    model = space.build(arch, num_classes=3, in_channels=in_channels, channel_scale=0.125)
    assert isinstance(model, NasRLMacroNetwork)
    _train_step(model, torch.randn(2, in_channels, height, width), 3)


@PROPERTY
@given(
    case=recurrent_cases(),
    hidden_size=st.integers(1, 6),
    steps=st.integers(1, 5),
    images=st.booleans(),
)
def test_every_recurrent_architecture_trains_a_step(
    case: tuple[NasRLRecurrentSpace, Architecture], hidden_size: int, steps: int, images: bool
) -> None:
    space, arch = case
    torch.manual_seed(0)
    if images:
        model = space.build(arch, hidden_size=hidden_size, num_classes=3, in_channels=2)
        x = torch.randn(2, 2, steps, 5)  # rows of 5 pixels, resized to the 8-wide rows
    else:
        model = space.build(arch, input_size=3, hidden_size=hidden_size, num_classes=3)
        x = torch.randn(2, steps, 3)
    assert isinstance(model, NasRLSequenceClassifier)
    _train_step(model, x, 3)


# ---- the macro network's graph --------------------------------------------------------
def _recorder(
    seen: dict[int, tuple[torch.Tensor, torch.Tensor]], index: int
) -> Callable[[torch.nn.Module, tuple[torch.Tensor, ...], torch.Tensor], None]:
    def hook(_module: torch.nn.Module, args: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        seen[index] = (args[0], out)

    return hook


@pytest.mark.parametrize("space", MACRO_SPACES[:2], ids=["fixed", "searched-strided"])
def test_skip_connections_make_valid_layer_graphs(space: NasRLMacroSpace) -> None:
    for seed in range(40):
        arch = space.sample(seed)
        specs = space.layer_specs(arch)
        model = space.build(arch, num_classes=4, in_channels=3, channel_scale=0.125)
        assert isinstance(model, NasRLMacroNetwork)
        n = len(specs)
        values = arch.as_dict()
        # The recorded graph is the sampled one, and acyclic: layers read earlier layers.
        for i, inputs in enumerate(model.layer_inputs):
            assert inputs == tuple(j for j in range(i) if values[f"layer{i}/skip{j}"])
            assert all(0 <= j < i for j in inputs)
        read = {j for inputs in model.layer_inputs for j in inputs}
        assert model.classifier_inputs == tuple(i for i in range(n) if i not in read)
        assert n - 1 in model.classifier_inputs  # the last layer always feeds the classifier
        assert model.classifier.in_features == sum(
            model.layer_channels[i] for i in model.classifier_inputs
        )
        # What each layer really reads, recorded with hooks.
        seen: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        for i, layer in enumerate(model.layers):
            layer.register_forward_hook(_recorder(seen, i))
        image = torch.randn(2, 3, 9, 7)
        model(image)
        assert sorted(seen) == list(range(n))
        for i, spec in enumerate(specs):
            layer_in, layer_out = seen[i]
            if not spec.inputs:
                assert layer_in is image  # a layer with no input reads the image
            else:
                shapes = [seen[j][1].shape for j in spec.inputs]
                assert layer_in.shape[1] == sum(s[1] for s in shapes)  # concatenated in depth
                assert layer_in.shape[2] == max(s[2] for s in shapes)  # smaller ones padded
                assert layer_in.shape[3] == max(s[3] for s in shapes)
            assert model.layers[i].conv.in_channels == layer_in.shape[1]
            assert layer_out.shape[1] == model.layer_channels[i]
            assert layer_out.shape[2:] == (
                math.ceil(layer_in.shape[2] / spec.stride),
                math.ceil(layer_in.shape[3] / spec.stride),
            )


def test_a_known_graph() -> None:
    space = NasRLMacroSpace(layers=4, strides=True)
    arch = space.parse("3x3x24/2|5x5x48/1|1x7x36/1<0,1|3x3x64/1<0")
    model = space.build(arch, num_classes=10, in_channels=1, channel_scale=0.25)
    assert isinstance(model, NasRLMacroNetwork)
    assert model.layer_inputs == ((), (), (0, 1), (0,))
    assert model.classifier_inputs == (2, 3)
    assert model.layer_channels == (6, 12, 9, 16)
    assert model.layers[2].conv.in_channels == 6 + 12
    assert model.layers[2].conv.kernel_size == (1, 7)
    assert model.layers[2].conv.padding == (0, 3)
    assert model.layers[0].conv.stride == (2, 2)
    assert model.classifier.in_features == 9 + 16
    assert model(torch.randn(3, 1, 8, 8)).shape == (3, 10)


def test_channel_scale() -> None:
    specs = [MacroLayerSpec(3, 3, 24), MacroLayerSpec(1, 1, 64, inputs=(0,))]
    assert NasRLMacroNetwork(specs).layer_channels == (24, 64)
    assert NasRLMacroNetwork(specs, channel_scale=0.01).layer_channels == (1, 1)
    with pytest.raises(ValueError, match="channel_scale"):
        NasRLMacroNetwork(specs, channel_scale=0)
    with pytest.raises(ValueError, match="earlier layers"):
        NasRLMacroNetwork([MacroLayerSpec(3, 3, 24, inputs=(0,))])
    with pytest.raises(ValueError, match="odd"):
        NasRLMacroNetwork([MacroLayerSpec(2, 3, 24)])


def test_pad_to_largest_pads_zeros_evenly() -> None:
    big = torch.ones(1, 1, 5, 4)
    small = torch.ones(1, 2, 2, 4)
    padded = pad_to_largest([big, small])
    assert padded[0] is big
    assert padded[1].shape == (1, 2, 5, 4)
    # Three rows of padding: one on top, two at the bottom.
    assert padded[1][0, 0, :, 0].tolist() == [0.0, 1.0, 1.0, 0.0, 0.0]


# ---- the recurrent cell ---------------------------------------------------------------
def test_paper_example_cell_equations() -> None:
    # Figure 5: a_0 = tanh(W1 x + W2 h), a_1 = relu(W3 x * W4 h), a_0' = relu(a_0 + c),
    # h_t = sigmoid(a_0' * a_1), c_t = W3 x * W4 h.
    space = NasRLRecurrentSpace(base=2)
    arch = space.parse("tree=add:tanh,elem_mult:relu,elem_mult:sigmoid;inject=add:relu@0;c_t=1")
    cell = space.build_cell(arch, input_size=3, hidden_size=4)
    assert isinstance(cell, NasRLCell)
    x, h, c = torch.randn(5, 3), torch.randn(5, 4), torch.randn(5, 4)
    w1x, w3x = (x @ cell.input_proj.weight.T + cell.input_proj.bias).chunk(2, dim=1)
    w2h, w4h = (h @ cell.hidden_proj.weight.T).chunk(2, dim=1)
    a0 = torch.tanh(w1x + w2h)
    a1 = torch.relu(w3x * w4h)
    a0_new = torch.relu(a0 + c)
    h_t, c_t = cell(x, (h, c))
    torch.testing.assert_close(h_t, torch.sigmoid(a0_new * a1))
    torch.testing.assert_close(c_t, w3x * w4h)


def test_injection_at_the_root_of_base_8() -> None:
    space = NasRLRecurrentSpace()
    tree = ",".join(["add:identity"] * 14 + ["elem_mult:tanh"])
    arch = space.parse(f"tree={tree};inject=elem_mult:sigmoid@14;c_t=14")
    cell = space.build_cell(arch, input_size=2, hidden_size=3)
    x, h, c = torch.randn(4, 2), torch.randn(4, 3), torch.randn(4, 3)
    leaves = [a + b for a, b in zip(
        cell.input_proj(x).chunk(8, dim=1), cell.hidden_proj(h).chunk(8, dim=1), strict=True
    )]
    level1 = [leaves[2 * m] + leaves[2 * m + 1] for m in range(4)]
    level2 = [level1[0] + level1[1], level1[2] + level1[3]]
    root = level2[0] * level2[1]
    h_t, c_t = cell(x, (h, c))
    torch.testing.assert_close(c_t, root)
    torch.testing.assert_close(h_t, torch.sigmoid(torch.tanh(root) * c))


def test_images_are_read_row_by_row() -> None:
    space = NasRLRecurrentSpace(base=2)
    model = space.build(space.sample(0), hidden_size=6, num_classes=4, in_channels=2)
    assert isinstance(model, NasRLSequenceClassifier)
    model.eval()
    images = torch.randn(3, 2, 5, 8)
    rows = images.permute(0, 2, 1, 3).reshape(3, 5, 16)  # step t: row t of every channel
    torch.testing.assert_close(model.image_rows(images), rows)
    torch.testing.assert_close(model(images), model(rows))
    wide = images.repeat_interleave(2, dim=3)  # 16 columns, pooled back to 8
    torch.testing.assert_close(model(wide), model(images))
    with pytest.raises(ValueError, match="build it with in_channels=1"):
        model(torch.randn(3, 1, 5, 8))
    with pytest.raises(ValueError, match="Expected sequences"):
        model(torch.randn(3, 5, 7))
    with pytest.raises(ValueError, match="Expected sequences"):
        model(torch.randn(3, 16))


@pytest.mark.parametrize(
    "string",
    [
        "tree=add:tanh,add:sigmoid,elem_mult:tanh;inject=add:tanh@0;c_t=0",
        "tree=add:tanh,add:sigmoid,add:tanh,add:sigmoid,add:tanh,add:sigmoid,add:tanh,"
        "add:sigmoid,elem_mult:identity,elem_mult:identity,elem_mult:identity,"
        "elem_mult:identity,add:identity,add:identity,add:tanh;inject=add:identity@8;c_t=12",
    ],
    ids=["base2", "base8"],
)
def test_recurrent_model_learns_digit_rows(string: str) -> None:
    data = load_digits(seed=0)
    subset = ImageData(
        Subset(data.train, range(0, len(data.train), 2)), data.valid, None, 10, 1, 8, "digits"
    )
    space = NasRLRecurrentSpace(base=2 if string.count(",") == 2 else 8)
    seed_everything(0)
    model = space.build(space.parse(string), hidden_size=32, num_classes=10)
    accuracy = train(model, subset, epochs=5, lr=0.1, batch_size=32, device="cpu")
    assert accuracy > 0.5  # chance is 0.1; measured about 0.8-0.9
