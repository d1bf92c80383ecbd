"""Scalar rewards from several objectives and from constraints, for the controller.

Every function takes the objectives already signed so that larger is better, one row per
result, and returns one score per result, larger better, so that the controller's rank
advantages and its screening model treat a multi-objective or constrained study as they
treat a single value.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

#: ParEGO's augmentation: the weighted sum's share beside the Chebyshev max, so that
#: weakly dominated points score below the points that dominate them.
_RHO = 0.05


def nondominated_ranks(values: np.ndarray) -> np.ndarray:
    """The non-dominated sorting rank of each row (0 = the Pareto front), all maximised."""
    n = len(values)
    ranks = np.full(n, -1, dtype=np.int64)
    # dominates[i, j]: row i is at least as good as row j everywhere and better somewhere.
    geq = (values[:, None, :] >= values[None, :, :]).all(axis=2)
    gt = (values[:, None, :] > values[None, :, :]).any(axis=2)
    dominates = np.logical_and(geq, gt)
    remaining = np.ones(n, dtype=bool)
    rank = 0
    while remaining.any():
        dominated = (dominates[remaining][:, remaining]).any(axis=0)
        front = np.flatnonzero(remaining)[~dominated]
        ranks[front] = rank
        remaining[front] = False
        rank += 1
    return ranks


def crowding_distance(values: np.ndarray, ranks: np.ndarray) -> np.ndarray:
    """NSGA-II's crowding distance of each row within its front, in [0, 1]; the ends of a
    front get 1."""
    distance = np.zeros(len(values))
    for rank in np.unique(ranks):
        members = np.flatnonzero(ranks == rank)
        if len(members) <= 2:
            distance[members] = 1.0
            continue
        for k in range(values.shape[1]):
            column = values[members, k]
            order = np.argsort(column, kind="stable")
            span = column[order[-1]] - column[order[0]]
            distance[members[order[0]]] = distance[members[order[-1]]] = np.inf
            if span > 0:
                gaps = (column[order[2:]] - column[order[:-2]]) / span
                distance[members[order[1:-1]]] += gaps
        finite = np.isfinite(distance[members])
        distance[members[~finite]] = 1.0
        inner = members[finite]
        distance[inner] = np.minimum(distance[inner] / values.shape[1], 1.0)
    return distance


def rank_scores(values: np.ndarray) -> np.ndarray:
    """Non-dominated rank first, crowding distance within a front: NSGA-II's order."""
    ranks = nondominated_ranks(values)
    return -ranks.astype(np.float64) + 0.5 * crowding_distance(values, ranks)


def chebyshev_scores(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """ParEGO's augmented Chebyshev scalarisation under one weight vector, negated.

    Each objective is normalised to [0, 1] over the rows, as a loss (0 = the best seen).
    """
    low, high = values.min(axis=0), values.max(axis=0)
    loss = (high - values) / np.where(high > low, high - low, 1.0)
    weighted = loss * weights
    result: np.ndarray = -(weighted.max(axis=1) + _RHO * weighted.sum(axis=1))
    return result


def random_weights(count: int, generator: torch.Generator) -> np.ndarray:
    """A weight vector uniform on the simplex (normalised exponentials)."""
    u = torch.rand(count, generator=generator, dtype=torch.float64).clamp(min=1e-300)
    weights: np.ndarray = (-torch.log(u)).numpy()
    normalised: np.ndarray = weights / weights.sum()
    return normalised


def feasible_first(scores: np.ndarray, violations: Sequence[float]) -> np.ndarray:
    """Scores where every feasible row ranks above every infeasible one, infeasible rows by
    their total violation: ranks in [0, 1], as NSGA-II's constrained domination orders them.
    """
    violation = np.asarray(violations, dtype=np.float64)
    if not (violation > 0).any():
        return scores
    # Sort by (violation, -score): feasible rows (violation 0) by score, then the rest.
    order = np.lexsort((-scores, violation))
    position = np.empty(len(scores))
    position[order] = np.arange(len(scores))
    result: np.ndarray = 1.0 - position / max(1, len(scores) - 1)
    return result
