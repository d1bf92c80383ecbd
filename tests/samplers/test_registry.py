from __future__ import annotations

import optuna
import pytest

from optuna_nas.samplers import (
    ControllerSampler,
    UnknownSamplerError,
    list_samplers,
    make_sampler,
    register_sampler,
    sampler_needs_space,
    unregister_sampler,
)
from optuna_nas.spaces import NasBench201Space, SearchSpace


def test_builtin_samplers() -> None:
    assert {"random", "tpe", "controller", "nas-rl"} <= set(list_samplers())
    assert isinstance(make_sampler("random", 1), optuna.samplers.RandomSampler)
    assert isinstance(make_sampler("tpe", 1), optuna.samplers.TPESampler)
    assert isinstance(make_sampler("controller", 1, NasBench201Space()), ControllerSampler)


def test_unknown_sampler() -> None:
    with pytest.raises(UnknownSamplerError, match="'nope'.*known samplers: .*random.*tpe"):
        make_sampler("nope", 0)
    with pytest.raises(UnknownSamplerError, match="'nope'"):
        sampler_needs_space("nope")


def test_a_sampler_that_needs_the_space_says_so() -> None:
    def needs(seed: int, space: SearchSpace) -> optuna.samplers.BaseSampler:
        return optuna.samplers.RandomSampler(seed=seed)

    register_sampler("test-needs-space", needs)
    try:
        assert sampler_needs_space("test-needs-space") and not sampler_needs_space("random")
        with pytest.raises(UnknownSamplerError, match="needs the search space"):
            make_sampler("test-needs-space", 0)
    finally:
        unregister_sampler("test-needs-space")


@pytest.mark.parametrize("name", ["controller", "nas-rl"])
def test_the_controllers_serve_define_by_run_objectives_without_a_space(name: str) -> None:
    assert not sampler_needs_space(name)
    sampler = make_sampler(name, 0)
    assert isinstance(sampler, ControllerSampler) and sampler._space is None
    with_space = make_sampler(name, 0, NasBench201Space())
    assert isinstance(with_space, ControllerSampler) and with_space._space is not None


@pytest.mark.parametrize("keyword", [False, True])
def test_factory_gets_the_seed_and_the_space(keyword: bool) -> None:
    seen: list[tuple[int, SearchSpace]] = []

    def positional(seed: int, space: SearchSpace) -> optuna.samplers.BaseSampler:
        seen.append((seed, space))
        return optuna.samplers.RandomSampler(seed=seed)

    def by_keyword(seed: int, *, space: SearchSpace) -> optuna.samplers.BaseSampler:
        return positional(seed, space)

    space = NasBench201Space()
    register_sampler("test-registry", by_keyword if keyword else positional)
    try:
        with pytest.raises(UnknownSamplerError, match="already registered"):
            register_sampler("test-registry", positional)
        assert sampler_needs_space("test-registry")
        make_sampler("test-registry", 7, space)
        assert seen == [(7, space)]
    finally:
        unregister_sampler("test-registry")
    assert "test-registry" not in list_samplers()


def test_factory_must_return_a_sampler() -> None:
    register_sampler("test-not-a-sampler", lambda seed: object())
    try:
        with pytest.raises(UnknownSamplerError, match="returned object, not an optuna"):
            make_sampler("test-not-a-sampler", 0)
    finally:
        unregister_sampler("test-not-a-sampler")


def test_register_rejects_bad_names() -> None:
    with pytest.raises(UnknownSamplerError, match="Invalid sampler name"):
        register_sampler("a,b", lambda seed: optuna.samplers.RandomSampler(seed=seed))
    with pytest.raises(UnknownSamplerError, match="not callable"):
        register_sampler("fine", 3)  # type: ignore[arg-type]
