"""The most probable network-level path through Auto-DeepLab's trellis (Viterbi decoding).

Auto-DeepLab's betas, normalised over the moves leaving each node, are the transition
probabilities of a Markov chain whose "time" is the layer and whose "state" is the level
(downsampling rate 4 * 2**level). The network-level architecture is the path of maximum
probability, found by dynamic programming in ``O(layers * levels)``.

Paper: Liu et al., "Auto-DeepLab: Hierarchical Neural Architecture Search for Semantic Image
Segmentation", CVPR 2019, https://arxiv.org/abs/1901.02985 (Sec. 3.2 and 4.2).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

__all__ = ["brute_force_path", "path_probability", "viterbi"]


def _as_matrices(transition_probs: Any, start: int) -> np.ndarray:
    if isinstance(transition_probs, torch.Tensor):
        transition_probs = transition_probs.detach().cpu().double().numpy()
    probs: np.ndarray = np.asarray(transition_probs, dtype=np.float64)
    if probs.ndim != 3 or probs.shape[0] < 1 or probs.shape[1] != probs.shape[2]:
        raise ValueError(
            "transition_probs must have the shape (layers, levels, levels): entry [l, p, q] is "
            f"the probability of moving from level p at layer l - 1 to level q at layer l; got "
            f"the shape {probs.shape}."
        )
    if probs.shape[1] < 1:
        raise ValueError("transition_probs needs at least one level.")
    if not np.all(np.isfinite(probs)) or np.any(probs < 0):
        raise ValueError("transition_probs must be finite and non-negative.")
    if not 0 <= start < probs.shape[1]:
        raise ValueError(f"start must be a level in 0..{probs.shape[1] - 1}, got {start}.")
    return probs


def _band(levels: int) -> np.ndarray:
    # The move rule: a layer changes the level by at most one.
    index = np.arange(levels)
    band: np.ndarray = np.abs(index[:, None] - index[None, :]) <= 1
    return band


def viterbi(transition_probs: Any, *, start: int = 0) -> list[int]:
    """The most probable path through a trellis whose layers move at most one level.

    Entry ``[l, p, q]`` of ``transition_probs`` is the probability of moving from level ``p``
    at layer ``l - 1`` to level ``q`` at layer ``l``; layer ``-1`` is the stem, at level
    ``start``. A path's probability is the product of its transitions. Entries with
    ``|q - p| > 1`` are ignored, so the path always respects the move rule, and levels the
    stem cannot reach by layer ``l`` (above ``start + l + 1``) are never on it. Ties go to
    the lower level.

    Paper: Liu et al., "Auto-DeepLab", CVPR 2019, https://arxiv.org/abs/1901.02985.

    Args:
        transition_probs: A ``(layers, levels, levels)`` array or tensor of non-negative
            probabilities, e.g. ``AutoDeepLabSupernet.transition_matrix()``.
        start: The level of the stem (0: downsampling rate 4).

    Returns:
        The level of each layer, ``layers`` integers.

    Raises:
        ValueError: The shape is wrong, a probability is negative or not finite, or every
            path that respects the move rule has probability zero.
    """
    probs = _as_matrices(transition_probs, start)
    layers, levels, _ = probs.shape
    with np.errstate(divide="ignore"):
        # Log space: a product of many probabilities underflows, a sum of logs does not.
        log_probs = np.where(_band(levels), np.log(probs), -np.inf)
    score = np.full(levels, -np.inf)
    score[start] = 0.0
    back = np.zeros((layers, levels), dtype=np.int64)
    for layer in range(layers):
        candidates = score[:, None] + log_probs[layer]  # [p, q]: best path to p, then p -> q
        back[layer] = np.argmax(candidates, axis=0)
        score = candidates[back[layer], np.arange(levels)]
    if not np.isfinite(score.max()):
        raise ValueError(
            "Every path that moves at most one level per layer has probability zero; give "
            "some of the transitions between neighbouring levels a positive probability."
        )
    level = int(np.argmax(score))
    path = [level]
    for layer in range(layers - 1, 0, -1):
        level = int(back[layer, level])
        path.append(level)
    return path[::-1]


def path_probability(transition_probs: Any, path: Sequence[int], *, start: int = 0) -> float:
    """The probability of a path: the product of its transitions, 0 if it breaks the move rule.

    Args:
        transition_probs: A ``(layers, levels, levels)`` array (see :func:`viterbi`).
        path: The level of each layer.
        start: The level of the stem.
    """
    probs = _as_matrices(transition_probs, start)
    if len(path) != probs.shape[0]:
        raise ValueError(f"The path has {len(path)} layers; the trellis has {probs.shape[0]}.")
    probability = 1.0
    previous = start
    for layer, level in enumerate(path):
        if not 0 <= level < probs.shape[1] or abs(level - previous) > 1:
            return 0.0
        probability *= float(probs[layer, previous, level])
        previous = level
    return probability


def brute_force_path(transition_probs: Any, *, start: int = 0) -> tuple[list[int], float]:
    """The most probable path by trying every path that respects the move rule.

    Exponential in the number of layers (up to ``3 ** layers`` paths): a reference for
    testing :func:`viterbi` on small trellises. Ties go to the lexicographically smallest path.

    Args:
        transition_probs: A ``(layers, levels, levels)`` array (see :func:`viterbi`).
        start: The level of the stem.

    Returns:
        The best path and its probability.
    """
    probs = _as_matrices(transition_probs, start)
    layers, levels, _ = probs.shape
    if layers > 14:
        raise ValueError(f"brute_force_path is for small trellises (<= 14 layers), got {layers}.")
    best: tuple[list[int], float] = ([], -math.inf)
    for moves in itertools.product((-1, 0, 1), repeat=layers):
        levels_on_path = list(itertools.accumulate(moves, initial=start))[1:]
        if any(not 0 <= q < levels for q in levels_on_path):
            continue
        probability = path_probability(probs, levels_on_path, start=start)
        if probability > best[1] or (probability == best[1] and levels_on_path < best[0]):
            best = (levels_on_path, probability)
    if best[1] <= 0.0:
        raise ValueError("Every path that moves at most one level per layer has probability zero.")
    return best
