"""Zero-cost proxies: finite, deterministic scores that leave the model as it was."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from torch import nn

from optuna_nas.benchmarks import NasBench201Table
from optuna_nas.errors import NasError
from optuna_nas.spaces import NasBench201Space
from optuna_nas.zero_cost import ZeroCostError, list_proxies, score
from tests._shared import NASBENCH201_TABLE

ARCH = (
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|"
    "+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
)
PROXIES = list_proxies()
# The proxies that run the network (the baselines only count).
RUNNING = [p for p in PROXIES if p not in ("params", "flops")]


def _tiny(channels: int = 4, cells_per_stage: int = 1, in_channels: int = 1) -> nn.Module:
    torch.manual_seed(0)
    space = NasBench201Space()
    return space.build(
        space.parse(ARCH),
        channels=channels,
        cells_per_stage=cells_per_stage,
        in_channels=in_channels,
        num_classes=10,
    )


def _batch(
    size: int = 8, channels: int = 1, side: int = 8, device: str = "cpu"
) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    inputs = torch.randn(size, channels, side, side, generator=generator)
    targets = torch.randint(0, 10, (size,), generator=generator)
    return inputs.to(device), targets.to(device)


class _TimesNaN(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * float("nan")


def test_list_proxies() -> None:
    expected = {
        "grad_norm", "snip", "grasp", "fisher", "synflow", "jacob_cov", "naswot", "params",
        "flops",
    }
    assert set(PROXIES) == expected
    assert PROXIES == sorted(PROXIES)


@pytest.mark.parametrize("proxy", PROXIES)
def test_score_is_a_finite_float(proxy: str) -> None:
    value = score(_tiny(), *_batch(), proxy=proxy)
    assert isinstance(value, float)
    assert np.isfinite(value)


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("proxy", PROXIES)
def test_model_is_left_unchanged(proxy: str, training: bool) -> None:
    model = _tiny()
    model.train(training)
    params = dict(model.named_parameters())
    # One frozen parameter and one parameter with a gradient: both must stay as they are.
    params["classifier.bias"].requires_grad_(False)
    params["classifier.weight"].grad = torch.full_like(params["classifier.weight"], 0.5)
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    flags = {k: p.requires_grad for k, p in model.named_parameters()}
    grads = {k: None if p.grad is None else p.grad.clone() for k, p in model.named_parameters()}
    modes = [m.training for m in model.modules()]
    dtypes = {k: v.dtype for k, v in model.state_dict().items()}

    score(model, *_batch(), proxy=proxy)

    after = model.state_dict()
    assert after.keys() == state.keys()
    for key, value in state.items():
        assert after[key].dtype == dtypes[key], key
        assert torch.equal(after[key], value), key
    assert {k: p.requires_grad for k, p in model.named_parameters()} == flags
    for key, param in model.named_parameters():
        before = grads[key]
        if before is None:
            assert param.grad is None, key
        else:
            assert param.grad is not None and torch.equal(param.grad, before), key
    assert [m.training for m in model.modules()] == modes


@pytest.mark.parametrize("proxy", PROXIES)
def test_same_seed_same_score(proxy: str) -> None:
    inputs, targets = _batch()
    first = score(_tiny(), inputs, targets, proxy=proxy, seed=3)
    second = score(_tiny(), inputs, targets, proxy=proxy, seed=3)
    assert first == second


def test_global_rng_is_not_disturbed() -> None:
    model, (inputs, targets) = nn.Sequential(_tiny(), nn.Dropout(0.5)), _batch()
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    score(model, inputs, targets, proxy="grad_norm", seed=7)
    assert torch.equal(torch.rand(3), expected)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA is not available")
@pytest.mark.parametrize("proxy", PROXIES)
def test_cuda(proxy: str) -> None:
    model = _tiny().cuda()
    inputs, targets = _batch()  # On the CPU: score() moves them to the model's device.
    value = score(model, inputs, targets, proxy=proxy)
    assert np.isfinite(value)
    assert next(model.parameters()).device.type == "cuda"
    cpu = score(_tiny(), inputs, targets, proxy=proxy)
    assert value == pytest.approx(cpu, rel=1e-3, abs=1e-4)


@pytest.mark.parametrize("proxy", RUNNING)
def test_nan_network_gets_a_clear_error(proxy: str) -> None:
    model = nn.Sequential(_tiny(), _TimesNaN())
    with pytest.raises(ZeroCostError, match=proxy) as info:
        score(model, *_batch(), proxy=proxy)
    assert isinstance(info.value, NasError) and isinstance(info.value, ValueError)
    assert "finite" in str(info.value)


@pytest.mark.parametrize("proxy", ["params", "flops"])
def test_baselines_do_not_run_the_network(proxy: str) -> None:
    model = _tiny()
    value = score(nn.Sequential(model, _TimesNaN()), *_batch(), proxy=proxy)
    assert value == score(model, *_batch(), proxy=proxy) > 0


def test_synflow_is_finite_on_a_deep_network() -> None:
    # The benchmark's depth (5 cells per stage): at 16 channels the score is about 1e36,
    # near float32's limit of 3.4e38; at 32 channels float32 overflows to inf.
    for channels in (16, 32):
        model = _tiny(channels=channels, cells_per_stage=5, in_channels=3)
        value = score(model, *_batch(size=2, channels=3, side=32), proxy="synflow")
        assert np.isfinite(value) and value > 1e30


def test_unknown_proxy() -> None:
    with pytest.raises(ValueError, match="known proxies: .*synflow") as info:
        score(_tiny(), *_batch(), proxy="synflwo")
    assert "synflwo" in str(info.value)


@pytest.mark.parametrize(
    ("inputs", "targets", "match"),
    [
        ([[1.0]], torch.zeros(1, dtype=torch.long), "inputs must be a torch.Tensor"),
        (torch.zeros(8, 1, 8, 8), [0] * 8, "targets must be a torch.Tensor"),
        (torch.zeros(8, 1, 8, 8), torch.zeros(7, dtype=torch.long), "same batch size"),
        (torch.zeros(8, 1, 8, 8), torch.zeros(8), "integer tensor"),
        (torch.zeros(8, 1, 8, 8, dtype=torch.long), torch.zeros(8, dtype=torch.long),
         "floating point"),
        (torch.zeros(8), torch.zeros(8, dtype=torch.long), "batch dimension"),
    ],
)
def test_bad_inputs(inputs: object, targets: object, match: str) -> None:
    with pytest.raises(ZeroCostError, match=match):
        score(_tiny(), inputs, targets)  # type: ignore[arg-type]


def test_bad_model_and_seed() -> None:
    with pytest.raises(ZeroCostError, match="torch.nn.Module"):
        score("net", *_batch())  # type: ignore[arg-type]
    with pytest.raises(ZeroCostError, match="seed must be an int"):
        score(_tiny(), *_batch(), seed=1.5)  # type: ignore[arg-type]


def _ranks(values: list[float]) -> np.ndarray:
    array = np.asarray(values)
    order = array.argsort(kind="stable")
    ranks = np.empty(len(array))
    ranks[order] = np.arange(len(array))
    for value in np.unique(array):  # Ties share their mean rank.
        ranks[array == value] = ranks[array == value].mean()
    return ranks


def _spearman(a: list[float], b: list[float]) -> float:
    return float(np.corrcoef(_ranks(a), _ranks(b))[0, 1])


@pytest.mark.skipif(not NASBENCH201_TABLE.is_file(), reason="no NAS-Bench-201 table")
def test_synflow_correlates_with_accuracy() -> None:
    # Spearman's rho over 20 random architectures was 0.68 to 0.85 for 8 samplings.
    table = NasBench201Table.load(NASBENCH201_TABLE)
    sample = random.Random(0).sample(list(table.rows), 20)
    inputs, targets = _batch(channels=3, side=32)
    scores = []
    for row in sample:
        torch.manual_seed(0)
        model = table.space.build(row.arch, channels=8, cells_per_stage=1)
        scores.append(score(model, inputs, targets, proxy="synflow"))
    rho = _spearman(scores, [row.final_test_acc for row in sample])
    assert rho > 0.3, rho
