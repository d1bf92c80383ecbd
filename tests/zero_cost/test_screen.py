"""Screening the controller's candidates: ProxyScreen, and ControllerSampler(screen=...)."""

from __future__ import annotations

from collections import Counter

import optuna
import pytest
import torch

from optuna_nas import zero_cost
from optuna_nas.errors import ZeroCostError
from optuna_nas.samplers import ControllerSampler
from optuna_nas.samplers._controller import PROPOSAL_KEY
from optuna_nas.spaces import Architecture, NasBench201Space

SPACE = NasBench201Space()
NETWORK = dict(channels=4, cells_per_stage=1, num_classes=10, in_channels=1)


def _convs(arch: Architecture) -> float:
    return float(SPACE.edge_ops(arch).count("nor_conv_3x3"))


def _objective(trial: optuna.Trial) -> float:
    arch = SPACE.suggest(trial)
    return float(SPACE.edge_ops(arch).count("skip_connect"))


# --- ProxyScreen ----------------------------------------------------------------------------


def test_proxy_screen_scores_the_built_network() -> None:
    arch = SPACE.parse(
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|"
        "skip_connect~2|"
    )
    screen = zero_cost.ProxyScreen(SPACE, input_shape=(1, 8, 8), seed=3, **NETWORK)
    state = torch.random.get_rng_state()
    value = screen(arch)
    assert torch.equal(state, torch.random.get_rng_state())
    torch.manual_seed(3)
    model = SPACE.build(arch, **NETWORK)
    expected = zero_cost.score(model, torch.zeros(1, 1, 8, 8), torch.zeros(1).long(), seed=3)
    assert value == pytest.approx(expected, rel=1e-12)
    assert screen(arch) == value
    batch = torch.randn(4, 1, 8, 8), torch.arange(4)
    data = zero_cost.ProxyScreen(SPACE, proxy="naswot", batch=batch, **NETWORK)
    assert isinstance(data(arch), float)


def test_proxy_screen_needs_data_for_data_proxies() -> None:
    with pytest.raises(ZeroCostError, match="batch=\\(inputs, targets\\)"):
        zero_cost.ProxyScreen(SPACE, proxy="snip")
    with pytest.raises(ZeroCostError, match="Unknown zero-cost proxy"):
        zero_cost.ProxyScreen(SPACE, proxy="nope")


# --- ControllerSampler(screen=...) ------------------------------------------------------------


def test_warm_up_proposes_the_best_screened_candidate() -> None:
    calls: list[str] = []

    def screen(arch: Architecture) -> float:
        calls.append(str(arch))
        return _convs(arch)

    sampler = ControllerSampler(SPACE, seed=0, screen=screen, screen_candidates=50,
                                n_startup_trials=4)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(_objective, n_trials=4)
    plain = optuna.create_study(direction="maximize",
                                sampler=ControllerSampler(SPACE, seed=0, n_startup_trials=4))
    plain.optimize(_objective, n_trials=4)
    screened = [SPACE.from_params(t.params) for t in study.trials]
    unscreened = [SPACE.from_params(t.params) for t in plain.trials]
    # The best of 50 draws by the screen: 3 or more 3x3 convolutions (one draw: 1.2 on
    # average); the unscreened controller proposes what its policy draws.
    assert all(_convs(a) >= 3 for a in screened)
    assert sum(map(_convs, screened)) > sum(map(_convs, unscreened))
    counts = [t.system_attrs[PROPOSAL_KEY]["screened"] for t in study.trials]
    assert all(0 < c <= 50 for c in counts)
    assert sum(counts) == len(calls)
    assert max(Counter(calls).values()) == 1  # every architecture screened once (cached)


def test_screen_top_reranks_after_the_startup_trials() -> None:
    sampler = ControllerSampler(SPACE, seed=0, screen=_convs, screen_candidates=4,
                                screen_top=8, n_startup_trials=3, n_candidates=32)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(_objective, n_trials=6)
    counts = [t.system_attrs[PROPOSAL_KEY]["screened"] for t in study.trials]
    assert all(0 < c <= 4 for c in counts[:3])
    assert all(c <= 8 for c in counts[3:]) and sum(counts[3:]) > 0
    # screen_top=0: only the warm-up screens.
    quiet = ControllerSampler(SPACE, seed=0, screen=_convs, screen_candidates=4,
                              screen_top=0, n_startup_trials=3, n_candidates=32)
    study = optuna.create_study(direction="maximize", sampler=quiet)
    study.optimize(_objective, n_trials=6)
    assert [t.system_attrs[PROPOSAL_KEY]["screened"] for t in study.trials][3:] == [0] * 3


def test_a_candidate_the_proxy_cannot_score_ranks_last() -> None:
    def screen(arch: Architecture) -> float:
        if _convs(arch) >= 3:
            raise ZeroCostError("synflow gave nan for this network")
        return float("nan") if _convs(arch) == 2 else 1.0

    sampler = ControllerSampler(SPACE, seed=0, screen=screen, screen_candidates=20)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(_objective, n_trials=3)
    assert len(study.trials) == 3
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    archs = [SPACE.from_params(t.params) for t in study.trials]
    assert all(_convs(a) <= 1 for a in archs)


def test_screen_needs_a_space_and_sane_counts() -> None:
    with pytest.raises(TypeError, match="screen scores architectures"):
        ControllerSampler(None, screen=_convs)
    with pytest.raises(TypeError, match="screen scores architectures"):
        ControllerSampler(SPACE, screen=3.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="screen_top must be an int >= 0"):
        ControllerSampler(SPACE, screen=_convs, screen_top=-1)
    with pytest.raises(ValueError, match="screen_candidates"):
        ControllerSampler(SPACE, screen=_convs, screen_candidates=1.5)  # type: ignore[arg-type]


def test_a_preset_without_surrogate_screens_its_draws() -> None:
    sampler = ControllerSampler(SPACE, seed=0, preset="nas-rl", screen=_convs,
                                screen_candidates=6, screen_top=3, n_startup_trials=2)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(_objective, n_trials=5)
    counts = [t.system_attrs[PROPOSAL_KEY]["screened"] for t in study.trials]
    assert all(0 < c <= 6 for c in counts[:2])
    assert all(c <= 3 for c in counts[2:]) and sum(counts[2:]) > 0


def test_the_screen_as_the_surrogates_prior_mean_speeds_up_the_search() -> None:
    # A screen that ranks as the objective does: after a random startup, the re-ranking of
    # the surrogate's best candidates (screen_candidates=0: no warm-up) finds better
    # architectures sooner than the surrogate alone.
    def objective(trial: optuna.Trial) -> float:
        return _convs(SPACE.suggest(trial))

    def mean_after_startup(sampler: ControllerSampler) -> float:
        study = optuna.create_study(direction="maximize", sampler=sampler)
        study.optimize(objective, n_trials=20)
        values = [t.value for t in study.trials[10:]]
        return sum(v for v in values if v is not None) / len(values)

    screened = [mean_after_startup(ControllerSampler(
        SPACE, seed=s, screen=_convs, screen_candidates=0, screen_top=8)) for s in range(3)]
    plain = [mean_after_startup(ControllerSampler(SPACE, seed=s)) for s in range(3)]
    assert sum(screened) > sum(plain) + 1.0, (screened, plain)
