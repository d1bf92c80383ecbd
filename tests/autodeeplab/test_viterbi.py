"""Viterbi decoding of the network-level path: the most probable path (against brute force
on small random trellises), the one-level move rule, unreachable levels, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from optuna_nas.autodeeplab import brute_force_path, path_probability, viterbi


def random_trellis(rng: np.random.Generator, layers: int, levels: int,
                   zeros: float = 0.0) -> np.ndarray:
    probs = rng.random((layers, levels, levels))
    probs[rng.random(probs.shape) < zeros] = 0.0
    return probs


def moves_rule_holds(path: list[int], start: int = 0) -> bool:
    return all(abs(b - a) <= 1 for a, b in zip([start, *path], path, strict=False))


@pytest.mark.parametrize("seed", range(60))
def test_viterbi_matches_brute_force_on_random_trellises(seed: int) -> None:
    rng = np.random.default_rng(seed)
    layers, levels = int(rng.integers(1, 8)), int(rng.integers(1, 6))
    start = int(rng.integers(levels)) if seed % 3 == 0 else 0
    probs = random_trellis(rng, layers, levels, zeros=0.3 if seed % 2 else 0.0)
    try:
        expected, best = brute_force_path(probs, start=start)
    except ValueError:  # every valid path has probability zero: Viterbi must say so too
        with pytest.raises(ValueError, match="probability zero"):
            viterbi(probs, start=start)
        return
    path = viterbi(probs, start=start)
    assert len(path) == layers and moves_rule_holds(path, start)
    assert path_probability(probs, path, start=start) == pytest.approx(best, rel=1e-9)
    # Random real probabilities: the best path is unique.
    assert path == expected


@pytest.mark.parametrize("seed", range(20))
def test_heavy_long_jumps_never_enter_the_path(seed: int) -> None:
    """Transitions of two or more levels are ignored, however probable."""
    rng = np.random.default_rng(100 + seed)
    layers, levels = 6, 4
    probs = random_trellis(rng, layers, levels) * 0.01
    index = np.arange(levels)
    far = np.abs(index[:, None] - index[None, :]) > 1
    probs[:, far] = 1.0
    path = viterbi(probs)
    assert moves_rule_holds(path)
    assert path == brute_force_path(probs)[0]
    assert path_probability(probs, [0, 2, 2, 2, 2, 2]) == 0.0  # a jump has no probability


def test_levels_the_stem_cannot_reach_yet_are_never_used() -> None:
    """At layer l the path is at most at level l + 1 however strong the deep levels are."""
    layers, levels = 5, 4
    probs = np.full((layers, levels, levels), 1e-3)
    probs[:, 3, 3] = 1.0  # staying at the coarsest level is very probable ...
    probs[:, 0, 0] = 0.3  # ... but the stem is at level 0: getting there takes 3 layers
    probs[:, 0, 1] = 0.5
    probs[:, 1, 2] = 0.5
    probs[:, 2, 3] = 0.5
    path = viterbi(probs)
    assert all(level <= layer + 1 for layer, level in enumerate(path))
    assert path == brute_force_path(probs)[0] == [1, 2, 3, 3, 3]
    # Entries of rows the path cannot be in at a layer do not change the answer.
    probs[0, 2:, :] = 1.0
    assert viterbi(probs) == [1, 2, 3, 3, 3]


def test_a_path_through_the_trellis_is_decoded_exactly() -> None:
    """A hand-made chain: the greedy choice at layer 0 is not on the best path."""
    probs = np.zeros((3, 3, 3))
    probs[0, 0] = [0.6, 0.4, 0.0]
    probs[1, 0] = [0.5, 0.5, 0.0]
    probs[1, 1] = [0.0, 0.0, 1.0]
    probs[2, 0] = [1.0, 0.0, 0.0]
    probs[2, 1] = [0.0, 1.0, 0.0]
    probs[2, 2] = [0.0, 0.0, 1.0]
    assert viterbi(probs) == [1, 2, 2]  # 0.4 * 1 * 1 beats 0.6 * 0.5 * 1
    assert path_probability(probs, [1, 2, 2]) == pytest.approx(0.4)


def test_torch_tensors_and_lists_are_accepted() -> None:
    probs = np.random.default_rng(0).random((4, 4, 4))
    expected = viterbi(probs)
    assert viterbi(torch.tensor(probs, requires_grad=True)) == expected
    assert viterbi(probs.tolist()) == expected


@pytest.mark.parametrize(
    ("probs", "match"),
    [
        (np.ones((3, 4)), "shape"),
        (np.ones((2, 3, 4)), "shape"),
        (-np.ones((2, 3, 3)), "non-negative"),
        (np.full((2, 3, 3), np.nan), "finite"),
        (np.zeros((2, 3, 3)), "probability zero"),
    ],
)
def test_bad_trellises_get_a_sentence(probs: np.ndarray, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        viterbi(probs)


def test_start_must_be_a_level() -> None:
    with pytest.raises(ValueError, match="start"):
        viterbi(np.ones((2, 3, 3)), start=3)
