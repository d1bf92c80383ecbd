"""NAS-Bench-201 with a cost: the multi-objective and the constrained search protocols.

Both use the budget rule of :class:`~optuna_nas.benchmarks.NasBench201Objective`: each
evaluation reveals ``search_valid_acc`` (and the cost column) and charges
``search_cost_s``.

* **Multi-objective** (``directions=["maximize", "minimize"]``): the answer of a search is
  the Pareto set of what it evaluated by (``search_valid_acc``, cost); its score is the
  hypervolume of those architectures' (``final_test_acc``, cost), both normalised to [0, 1]
  over the whole table (error ``(best - acc) / (best - worst)``, cost
  ``(c - min) / (max - min)``) with reference point (1, 1). The limit is the score of a
  search that evaluated the whole table.
* **Constrained** (maximise accuracy subject to ``params_mb <= X``): the answer is the
  feasible architecture with the best ``search_valid_acc`` seen; its ``final_test_acc`` is
  the score. Optuna's samplers get the constraint as ``constraints_func``, the controller
  as ``arch_constraints`` (known before training, so it proposes only feasible cells).
"""

from __future__ import annotations

import statistics
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.trial import FrozenTrial

from optuna_nas.benchmarks._nasbench201 import (
    NasBench201Objective,
    NasBench201Row,
    NasBench201Table,
)
from optuna_nas.samplers._controller import ControllerSampler
from optuna_nas.samplers._registry import UnknownSamplerError, make_sampler

COSTS: tuple[str, ...] = ("latency_s", "params_mb")
"""The cost columns the multi-objective protocol takes."""

CONSTRAINED_SAMPLERS: tuple[str, ...] = ("random", "tpe", "nsga2", "nsga3", "controller")
"""The samplers of the constrained protocol, each given the constraint its own way."""


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """The indices of the points no other point dominates, both coordinates minimised.

    A point is dominated by one at least as good in both coordinates and better in one;
    equal points are all kept.
    """
    order = sorted(range(len(points)), key=lambda i: (points[i][0], points[i][1]))
    front: list[int] = []
    best_second = float("inf")
    best_first = float("-inf")
    for i in order:
        first, second = points[i]
        if second < best_second:
            front.append(i)
            best_second, best_first = second, first
        elif second == best_second and first == best_first:
            front.append(i)  # equal to the last front point: not dominated
    return sorted(front)


def hypervolume_2d(
    points: Sequence[tuple[float, float]], reference: tuple[float, float] = (1.0, 1.0)
) -> float:
    """The area that a set of points dominates below a reference point, both minimised."""
    inside = sorted((x, y) for x, y in points if x < reference[0] and y < reference[1])
    area, ceiling = 0.0, reference[1]
    for x, y in inside:
        if y < ceiling:
            area += (reference[0] - x) * (ceiling - y)
            ceiling = y
    return area


class FrontScore:
    """Scores a set of evaluated rows as the protocol does: the hypervolume, in the table's
    normalised (error, cost) plane, of the rows that are Pareto-optimal by
    (``search_valid_acc``, cost).

    Args:
        table: The benchmark table, whose extremes normalise the plane.
        cost: The cost column, one of :data:`COSTS`.
    """

    def __init__(self, table: NasBench201Table, cost: str) -> None:
        if cost not in COSTS:
            raise ValueError(f"cost must be one of {', '.join(COSTS)}, got {cost!r}.")
        self.cost = cost
        accuracies = table.column("final_test_acc")
        costs = table.column(cost)
        self._best, self._worst = max(accuracies), min(accuracies)
        self._low, self._high = min(costs), max(costs)
        self.limit = self(table.rows)

    def point(self, row: NasBench201Row) -> tuple[float, float]:
        """A row's normalised (error, cost), both in [0, 1]."""
        error = (self._best - row.final_test_acc) / (self._best - self._worst)
        cost = (getattr(row, self.cost) - self._low) / (self._high - self._low)
        return error, cost

    def answer(self, rows: Sequence[NasBench201Row]) -> list[NasBench201Row]:
        """The search's answer: the rows Pareto-optimal by (``search_valid_acc``, cost)."""
        seen = [(-row.search_valid_acc, float(getattr(row, self.cost))) for row in rows]
        return [rows[i] for i in pareto_front(seen)]

    def __call__(self, rows: Sequence[NasBench201Row]) -> float:
        """The hypervolume score of a search that evaluated ``rows``."""
        return hypervolume_2d([self.point(row) for row in self.answer(rows)])


@dataclass(frozen=True)
class CostRun:
    """One run of the multi-objective or the constrained protocol (one sampler, one seed).

    Args:
        seed: The run's seed.
        score: The hypervolume (multi-objective) or the best feasible architecture's
            ``final_test_acc`` (constrained).
        evaluations: The evaluations charged.
        infeasible: How many of them broke the constraint (constrained protocol; 0 else).
        answer: The answer's architecture strings.
    """

    seed: int
    score: float
    evaluations: int
    infeasible: int = 0
    answer: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """The run as JSON-ready values."""
        return {
            "seed": self.seed,
            "score": self.score,
            "evals": self.evaluations,
            "infeasible": self.infeasible,
            "answer": list(self.answer),
        }


@dataclass(frozen=True)
class CostSummary:
    """The runs of one sampler over several seeds, scores' ``std`` with ``ddof=0``.

    Args:
        sampler: The sampler's name.
        metric: ``"hypervolume"`` or ``"final_test_acc"``.
        runs: One result per seed.
        wall_s: Wall-clock seconds of the runs.
    """

    sampler: str
    metric: str
    runs: tuple[CostRun, ...]
    wall_s: float = field(default=0.0, compare=False)

    @property
    def mean(self) -> float:
        """The mean score."""
        return statistics.fmean(run.score for run in self.runs)

    @property
    def std(self) -> float:
        """The population standard deviation of the scores."""
        return statistics.pstdev(run.score for run in self.runs)

    @property
    def infeasible(self) -> int:
        """Infeasible evaluations over all runs."""
        return sum(run.infeasible for run in self.runs)

    def line(self) -> str:
        """The line the CLI prints."""
        evals = statistics.fmean(run.evaluations for run in self.runs)
        digits = 4 if self.metric == "hypervolume" else 2
        text = f"{self.sampler}: {self.mean:.{digits}f} ± {self.std:.{digits}f}  evals {evals:.1f}"
        if self.metric != "hypervolume":
            text += f"  infeasible evals {self.infeasible}"
        return text

    def as_dict(self) -> dict[str, Any]:
        """The figures and the per-seed results as JSON-ready values."""
        return {
            "sampler": self.sampler,
            self.metric: {"mean": self.mean, "std": self.std},
            "seeds": len(self.runs),
            "infeasible_evals": self.infeasible,
            "wall_s": self.wall_s,
            "runs": [run.as_dict() for run in self.runs],
        }


def _seeds(seeds: int | Sequence[int]) -> list[int]:
    seed_list = list(range(seeds)) if isinstance(seeds, int) else [int(s) for s in seeds]
    if not seed_list:
        raise ValueError("Give at least one seed.")
    return seed_list


def _budget_list(budgets_s: Sequence[float]) -> list[float]:
    budgets = sorted({float(b) for b in budgets_s})
    if not budgets:
        raise ValueError("Give at least one budget.")
    return budgets


def _rows_within(objective: NasBench201Objective, budget_s: float) -> list[NasBench201Row]:
    return [row for total, row in objective.history if total <= budget_s]


def run_nasbench201_mo(
    table: NasBench201Table,
    sampler: str,
    seeds: int | Sequence[int] = 100,
    budgets_s: Sequence[float] = (12000.0,),
    *,
    cost: str = "latency_s",
) -> dict[float, CostSummary]:
    """Run the multi-objective protocol with one registered sampler over several seeds.

    Run ``k`` uses seed ``k``: a new sampler from the registry (``make_sampler(sampler,
    seed, table.space)``), a new in-memory study with ``directions=["maximize",
    "minimize"]`` and a new objective that returns (``search_valid_acc``, cost). Each seed
    runs once to the largest budget; a smaller budget is scored on the evaluations charged
    before it was reached.

    Returns:
        Budget -> the runs' hypervolumes at that budget.

    Raises:
        UnknownSamplerError: The sampler name is not registered.
        ValueError: No seed, no budget, or an unknown cost column.
    """
    score = FrontScore(table, cost)
    budgets = _budget_list(budgets_s)
    start = time.perf_counter()
    runs: dict[float, list[CostRun]] = {b: [] for b in budgets}
    for seed in _seeds(seeds):
        made = make_sampler(sampler, seed, table.space)
        study = optuna.create_study(directions=["maximize", "minimize"], sampler=made)
        objective = NasBench201Objective(table, budgets[-1], cost=cost)
        study.optimize(objective)
        for budget in budgets:
            rows = _rows_within(objective, budget)
            answer = score.answer(rows)
            runs[budget].append(
                CostRun(seed, score(rows), len(rows), answer=tuple(str(r.arch) for r in answer))
            )
    wall = time.perf_counter() - start
    return {b: CostSummary(sampler, "hypervolume", tuple(r), wall) for b, r in runs.items()}


def _params_mb_constraint(
    table: NasBench201Table, max_params_mb: float
) -> Callable[[Mapping[str, Any]], tuple[float]]:
    def constraint(params: Mapping[str, Any]) -> tuple[float]:
        return (table[table.space.from_params(params)].params_mb - max_params_mb,)

    return constraint


def constrained_sampler(
    name: str, seed: int, table: NasBench201Table, max_params_mb: float
) -> optuna.samplers.BaseSampler:
    """A sampler of the constrained protocol, given ``params_mb <= max_params_mb`` its way.

    ``tpe``, ``nsga2`` and ``nsga3`` get Optuna's ``constraints_func`` (evaluated after
    each trial), ``controller`` gets ``arch_constraints`` (evaluated on its candidates
    before it proposes), ``random`` gets nothing (its infeasible draws are charged and
    never the answer).

    Raises:
        UnknownSamplerError: ``name`` is not one of :data:`CONSTRAINED_SAMPLERS`.
    """
    constraint = _params_mb_constraint(table, max_params_mb)

    def constraints_func(trial: FrozenTrial) -> tuple[float]:
        return constraint(trial.params)

    with warnings.catch_warnings():
        # Optuna 5 deprecates constraints_func in favour of trial.set_constraint; the
        # protocol names it, and its behaviour is unchanged.
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if name == "random":
            return optuna.samplers.RandomSampler(seed=seed)
        if name == "tpe":
            return optuna.samplers.TPESampler(seed=seed, constraints_func=constraints_func)
        if name == "nsga2":
            return optuna.samplers.NSGAIISampler(seed=seed, constraints_func=constraints_func)
        if name == "nsga3":
            return optuna.samplers.NSGAIIISampler(seed=seed, constraints_func=constraints_func)
        if name == "controller":
            return ControllerSampler(table.space, seed=seed, arch_constraints=constraint)
    raise UnknownSamplerError(
        f"The constrained protocol runs the samplers {', '.join(CONSTRAINED_SAMPLERS)}, "
        f"not {name!r}."
    )


def run_nasbench201_constrained(
    table: NasBench201Table,
    sampler: str,
    seeds: int | Sequence[int] = 100,
    budgets_s: Sequence[float] = (12000.0,),
    *,
    max_params_mb: float,
) -> dict[float, CostSummary]:
    """Run the constrained protocol (maximise accuracy, ``params_mb <= max_params_mb``).

    Run ``k`` uses seed ``k``, a sampler from :func:`constrained_sampler` and a new
    single-objective study. The score is the ``final_test_acc`` of the feasible
    architecture with the best ``search_valid_acc`` evaluated within the budget.

    Returns:
        Budget -> the runs' scores at that budget.

    Raises:
        ValueError: A run evaluated no feasible architecture within a budget.
    """
    budgets = _budget_list(budgets_s)
    start = time.perf_counter()
    runs: dict[float, list[CostRun]] = {b: [] for b in budgets}
    for seed in _seeds(seeds):
        made = constrained_sampler(sampler, seed, table, max_params_mb)
        study = optuna.create_study(direction="maximize", sampler=made)
        objective = NasBench201Objective(table, budgets[-1])
        study.optimize(objective)
        for budget in budgets:
            rows = _rows_within(objective, budget)
            feasible = [row for row in rows if row.params_mb <= max_params_mb]
            if not feasible:
                raise ValueError(
                    f"{sampler} (seed {seed}) evaluated no architecture with params_mb <= "
                    f"{max_params_mb:g} within {budget:g} s; raise --max-params-mb or the "
                    "budget."
                )
            best = max(feasible, key=lambda row: row.search_valid_acc)
            runs[budget].append(
                CostRun(
                    seed,
                    best.final_test_acc,
                    len(rows),
                    infeasible=len(rows) - len(feasible),
                    answer=(str(best.arch),),
                )
            )
    wall = time.perf_counter() - start
    return {b: CostSummary(sampler, "final_test_acc", tuple(r), wall) for b, r in runs.items()}
