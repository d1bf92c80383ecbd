"""NAS-Bench-201 as a tabular benchmark: the table, the budget protocol and the runner.

Paper: Dong & Yang, "NAS-Bench-201: Extending the Scope of Reproducible Neural Architecture
Search", ICLR 2020, https://arxiv.org/abs/2001.00326.
"""

from __future__ import annotations

import csv
import math
import os
import statistics
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna

from optuna_nas.errors import ArchitectureError, TableError, _short_repr
from optuna_nas.samplers._controller import PROPOSAL_KEY
from optuna_nas.samplers._registry import make_sampler
from optuna_nas.spaces import Architecture, NasBench201Space

__all__ = [
    "NUMERIC_COLUMNS",
    "NasBench201Objective",
    "NasBench201Row",
    "NasBench201Run",
    "NasBench201Summary",
    "NasBench201Table",
    "run_nasbench201",
]

NUMERIC_COLUMNS: tuple[str, ...] = (
    "search_valid_acc",
    "search_cost_s",
    "final_test_acc",
    "valid_acc_200ep",
    "params_mb",
    "latency_s",
)
"""The numeric columns a NAS-Bench-201 table must have, besides ``arch``."""

_COLUMNS: tuple[str, ...] = ("arch", *NUMERIC_COLUMNS)


@dataclass(frozen=True, slots=True)
class NasBench201Row:
    """One architecture of a NAS-Bench-201 table.

    Args:
        arch: The architecture.
        search_valid_acc: Validation accuracy (%) after the 12-epoch schedule: what a
            search may see.
        search_cost_s: Simulated seconds that obtaining ``search_valid_acc`` costs.
        final_test_acc: Test accuracy (%) after 200 epochs: the reported score.
        valid_acc_200ep: Validation accuracy (%) after 200 epochs.
        params_mb: Parameters, in millions.
        latency_s: Inference latency, seconds.
    """

    arch: Architecture
    search_valid_acc: float
    search_cost_s: float
    final_test_acc: float
    valid_acc_200ep: float
    params_mb: float
    latency_s: float

    def as_dict(self) -> dict[str, str | float]:
        """The row as a dict of the table's columns, ``arch`` as its string."""
        values: dict[str, str | float] = {"arch": str(self.arch)}
        for column in NUMERIC_COLUMNS:
            values[column] = getattr(self, column)
        return values


class NasBench201Table:
    """A NAS-Bench-201 table: one row of accuracies and costs per cell architecture.

    Build it with :meth:`load` from a CSV file in the schema of
    ``../shared/benchmarks/nasbench201/README.md`` (columns ``arch``, ``search_valid_acc``,
    ``search_cost_s``, ``final_test_acc``, ``valid_acc_200ep``, ``params_mb``,
    ``latency_s``; extra columns are ignored). Rows are looked up by
    :class:`~optuna_nas.spaces.Architecture` or by architecture string:
    ``table[arch].final_test_acc``.

    Paper: Dong & Yang, "NAS-Bench-201: Extending the Scope of Reproducible Neural
    Architecture Search", ICLR 2020, https://arxiv.org/abs/2001.00326.

    Args:
        rows: The rows; their architectures must be distinct and of ``space``.
        space: The space the architectures belong to; a new
            :class:`~optuna_nas.spaces.NasBench201Space` by default.
        path: Where the rows were read from, for messages.

    Raises:
        TableError: There are no rows, or two rows have the same architecture.
    """

    def __init__(
        self,
        rows: Iterable[NasBench201Row],
        *,
        space: NasBench201Space | None = None,
        path: str | os.PathLike[str] | None = None,
    ) -> None:
        self.space = space if space is not None else NasBench201Space()
        self.path = Path(path) if path is not None else None
        self._rows: tuple[NasBench201Row, ...] = tuple(rows)
        where = f" in {self.path}" if self.path is not None else ""
        if not self._rows:
            raise TableError(f"The NAS-Bench-201 table{where} has no rows.")
        self._index: dict[str, NasBench201Row] = {}
        for number, row in enumerate(self._rows, start=1):
            if row.arch.space != self.space.name:
                raise TableError(
                    f"Row {number}{where}: {row.arch!r} is not a NAS-Bench-201 architecture."
                )
            key = str(row.arch)
            if key in self._index:
                raise TableError(f"Row {number}{where}: duplicate architecture {key!r}.")
            self._index[key] = row

    @classmethod
    def load(
        cls, path: str | os.PathLike[str], *, space: NasBench201Space | None = None
    ) -> NasBench201Table:
        """Read and check a NAS-Bench-201 CSV table.

        Checks that the file exists, that the required columns are present, that every
        ``arch`` parses, that the numeric columns hold finite numbers (``search_cost_s``
        positive) and that no architecture appears twice.

        Args:
            path: The CSV file, e.g. ``../shared/benchmarks/nasbench201/cifar10.csv``.
            space: The space to parse architectures with; a new
                :class:`~optuna_nas.spaces.NasBench201Space` by default.

        Returns:
            The table.

        Raises:
            TableError: The file is missing or unreadable, or a column or row is malformed;
                the message names the path and, for a row, its number.
        """
        expected = (
            "a NAS-Bench-201 CSV table with columns " + ", ".join(_COLUMNS) + " (see "
            "../shared/benchmarks/nasbench201/README.md)"
        )
        if not isinstance(path, str | os.PathLike):
            raise TableError(
                f"The table path must be a str or a pathlib.Path, got {type(path).__name__} "
                f"({_short_repr(path)}); give the path of {expected}."
            )
        try:
            file = Path(path)
            is_file, is_dir = file.is_file(), file.is_dir()
        except (OSError, TypeError) as error:  # A name too long, a folder not searchable...
            raise TableError(
                f"Table file {str(path)[:200]!r} cannot be opened ({error}); give the path of "
                f"{expected}."
            ) from None
        if not is_file:
            what = "is a directory" if is_dir else "does not exist"
            raise TableError(f"Table file {str(file)!r} {what}; expected {expected}.")
        space = space if space is not None else NasBench201Space()
        rows: list[NasBench201Row] = []
        try:
            with file.open(newline="", encoding="utf-8-sig") as handle:
                reader = csv.DictReader(handle)
                header = reader.fieldnames
                if header is None:
                    raise TableError(f"Table file {str(file)!r} is empty; expected {expected}.")
                if not header:  # csv reads a blank first line as a header of no columns.
                    raise TableError(
                        f"Table file {str(file)!r} starts with a blank line; its first line "
                        f"must be the header of {expected}."
                    )
                missing = [c for c in _COLUMNS if c not in header]
                if missing:
                    raise TableError(
                        f"Table file {str(file)!r} lacks column(s) {', '.join(missing)}; "
                        f"expected columns: {', '.join(_COLUMNS)} (found: "
                        f"{_short_repr(', '.join(header), 300)})."
                    )
                for number, record in enumerate(reader, start=1):
                    rows.append(_parse_row(record, number, reader.line_num, file, space))
        except UnicodeDecodeError as error:
            raise TableError(
                f"Cannot read table file {str(file)!r}: it is not UTF-8 text ({error}); "
                f"expected {expected}, saved as UTF-8."
            ) from error
        except (OSError, csv.Error) as error:
            raise TableError(f"Cannot read table file {str(file)!r}: {error}.") from error
        return cls(rows, space=space, path=file)

    # ------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._rows)

    def __iter__(self) -> Iterator[NasBench201Row]:
        return iter(self._rows)

    def __contains__(self, key: object) -> bool:
        if isinstance(key, Architecture | str):
            return self.get(key) is not None
        return False

    def __getitem__(self, key: Architecture | str) -> NasBench201Row:
        """The row of an architecture (an Architecture or its string).

        Raises:
            KeyError: The architecture is valid but has no row in this table.
            ArchitectureError: The key is not a NAS-Bench-201 architecture.
        """
        row = self.get(key)
        if row is None:
            raise KeyError(f"No row for architecture {str(key)!r} in this table.")
        return row

    def get(self, key: Architecture | str) -> NasBench201Row | None:
        """The row of an architecture, or ``None`` if the table has none.

        Args:
            key: An :class:`~optuna_nas.spaces.Architecture` of the NAS-Bench-201 space or
                an architecture string (parsed, so surrounding spaces are fine).

        Raises:
            ArchitectureError: The key is not a NAS-Bench-201 architecture.
        """
        if isinstance(key, Architecture):
            if key.space != self.space.name:
                raise ArchitectureError(f"{key!r} is not a NAS-Bench-201 architecture.")
            return self._index.get(key.string)
        if not isinstance(key, str):
            raise ArchitectureError(
                f"Look rows up by a NAS-Bench-201 architecture or its string, not by "
                f"{type(key).__name__} ({_short_repr(key)})."
            )
        row = self._index.get(key)
        if row is None:
            row = self._index.get(str(self.space.parse(key)))
        return row

    @property
    def rows(self) -> tuple[NasBench201Row, ...]:
        """Every row, in file order."""
        return self._rows

    def column(self, name: str) -> list[float]:
        """The values of a numeric column, in row order.

        Args:
            name: One of :data:`NUMERIC_COLUMNS`.
        """
        if name not in NUMERIC_COLUMNS:
            raise TableError(f"Unknown column {name!r}; numeric columns: {NUMERIC_COLUMNS}.")
        return [getattr(row, name) for row in self._rows]

    def best(self, column: str = "final_test_acc") -> NasBench201Row:
        """The row with the largest value of a numeric column (the first one on ties).

        Args:
            column: One of :data:`NUMERIC_COLUMNS`.
        """
        values = self.column(column)
        return self._rows[max(range(len(values)), key=values.__getitem__)]

    def __repr__(self) -> str:
        where = f", path={str(self.path)!r}" if self.path is not None else ""
        return f"NasBench201Table({len(self)} rows{where})"


def _parse_row(
    record: dict[str | Any, Any],
    number: int,
    line: int,
    file: Path,
    space: NasBench201Space,
) -> NasBench201Row:
    where = f"Row {number} (line {line}) of {str(file)!r}"
    if None in record:
        raise TableError(f"{where} has more fields than the header.")
    values = [record[c] for c in _COLUMNS]
    if any(v is None for v in values):
        raise TableError(f"{where} has fewer fields than the header.")
    try:
        arch = space.parse(values[0])
    except ArchitectureError as error:
        raise TableError(
            f"{where}: bad architecture {_short_repr(values[0], 200)}: {error}"
        ) from error
    numbers: list[float] = []
    for column, text in zip(NUMERIC_COLUMNS, values[1:], strict=True):
        try:
            number_ = float(text)
        except ValueError:
            number_ = math.nan
        if not math.isfinite(number_):
            raise TableError(
                f"{where}: column {column} is {_short_repr(text)}, not a finite number."
            )
        numbers.append(number_)
    if numbers[1] <= 0:
        raise TableError(
            f"{where}: search_cost_s is {_short_repr(values[2])}; costs must be positive."
        )
    return NasBench201Row(arch, *numbers)


class NasBench201Objective:
    """The NAS-Bench-201 search protocol as an Optuna objective, for any sampler.

    Each call suggests an architecture with ``space.suggest(trial)``, looks it up in the
    table, charges its ``search_cost_s`` to the budget and returns its
    ``search_valid_acc`` (so the study must maximize). The row's other columns are
    recorded as the trial's user attrs. When an evaluation would take the total cost
    over the budget, the objective charges nothing, calls ``trial.study.stop()`` and
    raises :class:`optuna.TrialPruned`: that last trial ends PRUNED without a value and is
    not counted, and ``study.optimize(objective)`` returns. Every later call is pruned the
    same way. Run it with no ``n_trials``::

        objective = NasBench201Objective(table, budget_s=12000)
        study = optuna.create_study(direction="maximize", sampler=sampler)
        study.optimize(objective)
        objective.best.final_test_acc  # the run's score

    The answer of a run is the architecture with the best ``search_valid_acc`` seen (the
    first one on ties), :attr:`best`; its ``final_test_acc`` is the score. In an ask/tell
    loop, where ``study.stop()`` is not available, stop when :attr:`exhausted` is true.
    One objective serves one run; calls from several threads are charged safely.

    Paper: Dong & Yang, "NAS-Bench-201: Extending the Scope of Reproducible Neural
    Architecture Search", ICLR 2020, https://arxiv.org/abs/2001.00326.

    With ``define_by_run=True`` the objective declares no space: it asks for the cell's six
    edges with six plain ``trial.suggest_categorical(edge, ops)`` calls (params ``1<-0``,
    ``2<-0``, ... as the space names its decisions), as a user's own objective would.

    Args:
        table: The benchmark table.
        budget_s: The search budget in simulated seconds (12,000 in the paper).
        space: The space whose params are suggested; the table's space by default. Give
            one with another prefix to share a trial with other params.
        define_by_run: Suggest the edges with plain calls instead of ``space.suggest``.
        cost: A cost column (``"latency_s"`` or ``"params_mb"``) to return as a second
            objective: each call then returns ``(search_valid_acc, cost)``, for a study
            with ``directions=["maximize", "minimize"]``.
        screen_cost_s: Simulated seconds charged per candidate that a screening sampler
            (``ControllerSampler(screen=...)``) scored with a zero-cost proxy before
            proposing the trial's architecture (the count it stores with its proposal),
            so that screening is not free: about one forward and backward pass on a GPU.

    Raises:
        ValueError: The budget is not a positive finite number, ``cost`` is not a
            numeric column, or ``screen_cost_s`` is negative.
    """

    def __init__(
        self,
        table: NasBench201Table,
        budget_s: float = 12000.0,
        *,
        space: NasBench201Space | None = None,
        define_by_run: bool = False,
        cost: str | None = None,
        screen_cost_s: float = 1.0,
    ) -> None:
        if not (math.isfinite(screen_cost_s) and screen_cost_s >= 0):
            raise ValueError(f"screen_cost_s must be a number >= 0, got {screen_cost_s!r}.")
        self.screen_cost_s = float(screen_cost_s)
        if not (math.isfinite(budget_s) and budget_s > 0):
            raise ValueError(f"budget_s must be a positive number, got {budget_s!r}.")
        if cost is not None and cost not in NUMERIC_COLUMNS:
            raise ValueError(
                f"cost must be a numeric column of the table ({', '.join(NUMERIC_COLUMNS)}), "
                f"got {cost!r}."
            )
        self.cost = cost
        self.table = table
        self.budget_s = float(budget_s)
        self.space = space if space is not None else table.space
        self.spent_s = 0.0
        self.evaluations = 0
        self.best: NasBench201Row | None = None
        self.exhausted = False
        self.define_by_run = define_by_run
        #: Every charged evaluation in order, with the total spent after it.
        self.history: list[tuple[float, NasBench201Row]] = []
        self._lock = threading.Lock()

    @property
    def remaining_s(self) -> float:
        """The budget left, in simulated seconds."""
        return self.budget_s - self.spent_s

    def __call__(self, trial: optuna.Trial) -> float | tuple[float, float]:
        """Evaluate one architecture within the budget.

        Args:
            trial: The trial; the study must maximize (and minimize the cost).

        Returns:
            The architecture's ``search_valid_acc``, with its ``cost`` column if the
            objective has one.

        Raises:
            optuna.TrialPruned: The evaluation would exceed the budget (the study is stopped).
            TableError: The table has no row for the suggested architecture.
        """
        if self.define_by_run:
            arch = self.space.from_values({
                d.name: trial.suggest_categorical(d.name, d.choices)
                for d in self.space.decisions
            })
        else:
            arch = self.space.suggest(trial)
        row = self.table.get(arch)
        if row is None:
            raise TableError(
                f"The table has no row for {str(arch)!r}; the objective needs a table of the "
                "whole NAS-Bench-201 space."
            )
        # A screening sampler (ControllerSampler(screen=...)) scored candidates with a
        # zero-cost proxy before proposing this one: each costs screen_cost_s.
        proposal = trial.study._storage.get_trial_system_attrs(trial._trial_id).get(
            PROPOSAL_KEY)
        screened = int(proposal.get("screened", 0)) if isinstance(proposal, dict) else 0
        cost = row.search_cost_s + screened * self.screen_cost_s
        with self._lock:
            over = self.exhausted or self.spent_s + cost > self.budget_s
            if over:
                self.exhausted = True
            else:
                self.spent_s += cost
                self.evaluations += 1
                spent = self.spent_s
                self.history.append((spent, row))
                if self.best is None or row.search_valid_acc > self.best.search_valid_acc:
                    self.best = row
        if over:
            try:
                trial.study.stop()
            except RuntimeError:  # Not inside study.optimize (ask/tell): see `exhausted`.
                pass
            raise optuna.TrialPruned(
                f"Budget of {self.budget_s:g} s exhausted: {str(arch)!r} costs "
                f"{cost:g} s, {self.remaining_s:g} s are left."
            )
        trial.set_user_attr("arch", str(arch))
        trial.set_user_attr("final_test_acc", row.final_test_acc)
        trial.set_user_attr("valid_acc_200ep", row.valid_acc_200ep)
        trial.set_user_attr("params_mb", row.params_mb)
        trial.set_user_attr("latency_s", row.latency_s)
        trial.set_user_attr("search_cost_s", row.search_cost_s)
        trial.set_user_attr("spent_s", spent)
        if screened:
            trial.set_user_attr("screen_cost_s", screened * self.screen_cost_s)
        if self.cost is not None:
            return row.search_valid_acc, float(getattr(row, self.cost))
        return row.search_valid_acc

    def best_within(self, budget_s: float) -> tuple[NasBench201Row | None, int, float]:
        """The answer a run with a smaller budget would have given: the best of the
        evaluations charged before the first that would have exceeded it.

        Returns:
            The answer (``None`` if no evaluation fits), the evaluations and the seconds
            that run would have charged.
        """
        best: NasBench201Row | None = None
        evaluations, spent = 0, 0.0
        for total, row in self.history:
            if total > budget_s:
                break
            evaluations, spent = evaluations + 1, total
            if best is None or row.search_valid_acc > best.search_valid_acc:
                best = row
        return best, evaluations, spent


@dataclass(frozen=True)
class NasBench201Run:
    """The result of one search run (one sampler, one seed).

    Args:
        seed: The run's seed.
        arch: The answer: the architecture string with the best ``search_valid_acc``.
        search_valid_acc: The answer's ``search_valid_acc``.
        final_test_acc: The answer's ``final_test_acc``: the run's score.
        evaluations: The number of evaluations charged.
        spent_s: The simulated seconds charged.
    """

    seed: int
    arch: str
    search_valid_acc: float
    final_test_acc: float
    evaluations: int
    spent_s: float

    def as_dict(self) -> dict[str, int | float | str]:
        """The run as JSON-ready values."""
        return {
            "seed": self.seed,
            "final_test_acc": self.final_test_acc,
            "search_valid_acc": self.search_valid_acc,
            "evals": self.evaluations,
            "spent_s": self.spent_s,
            "arch": self.arch,
        }


@dataclass(frozen=True)
class NasBench201Summary:
    """The runs of one sampler over several seeds.

    ``std`` is the population standard deviation (``ddof=0``, as ``numpy.std``);
    ``std_sample`` the sample one (``ddof=1``).

    Args:
        sampler: The sampler's registered name.
        budget_s: The budget of each run.
        runs: One result per seed.
        wall_s: Wall-clock seconds the runs took.
    """

    sampler: str
    budget_s: float
    runs: tuple[NasBench201Run, ...]
    wall_s: float = field(default=0.0, compare=False)

    @property
    def scores(self) -> list[float]:
        """The runs' ``final_test_acc``, in seed order."""
        return [run.final_test_acc for run in self.runs]

    @property
    def mean(self) -> float:
        """Mean ``final_test_acc`` of the runs."""
        return statistics.fmean(self.scores)

    @property
    def std(self) -> float:
        """Population standard deviation of the runs' ``final_test_acc``."""
        return statistics.pstdev(self.scores)

    @property
    def std_sample(self) -> float:
        """Sample standard deviation of the runs' ``final_test_acc`` (0 for one run)."""
        return statistics.stdev(self.scores) if len(self.runs) > 1 else 0.0

    @property
    def mean_evaluations(self) -> float:
        """Mean number of evaluations per run."""
        return statistics.fmean(run.evaluations for run in self.runs)

    def line(self) -> str:
        """The one-line summary the CLI prints: ``NAME: MEAN ± STD  evals MEAN_EVALS``."""
        return (
            f"{self.sampler}: {self.mean:.2f} ± {self.std:.2f}  evals {self.mean_evaluations:.1f}"
        )

    def as_dict(self) -> dict[str, Any]:
        """The figures and the per-seed results as JSON-ready values."""
        return {
            "sampler": self.sampler,
            "budget_s": self.budget_s,
            "seeds": len(self.runs),
            "mean": self.mean,
            "std": self.std,
            "std_sample": self.std_sample,
            "mean_evals": self.mean_evaluations,
            "wall_s": self.wall_s,
            "runs": [run.as_dict() for run in self.runs],
        }


def run_nasbench201(
    table: NasBench201Table,
    sampler: str,
    seeds: int | Sequence[int] = 100,
    budget_s: float = 12000.0,
    *,
    define_by_run: bool = False,
) -> NasBench201Summary:
    """Run the budget protocol with one registered sampler over several seeds.

    Run ``k`` uses seed ``k``: a new sampler from the registry (``make_sampler(sampler,
    seed, table.space)``, or with no space for ``define_by_run``), a new in-memory study and
    a new :class:`NasBench201Objective`. Optuna's log level is not changed here; the CLI
    lowers it to WARNING.

    Args:
        table: The benchmark table, read once and shared by the runs.
        sampler: A registered sampler name (see
            :func:`~optuna_nas.benchmarks.list_samplers`).
        seeds: The number of seeds (``N`` gives seeds ``0..N-1``) or the seeds themselves.
        budget_s: The budget of each run, in simulated seconds.
        define_by_run: The objective asks for the edges with plain suggest calls, and the
            sampler gets no space.

    Returns:
        The per-seed results and their summary.

    Raises:
        UnknownSamplerError: The sampler name is not registered.
    """
    return run_nasbench201_budgets(
        table, sampler, seeds, [budget_s], define_by_run=define_by_run
    )[float(budget_s)]


def run_nasbench201_budgets(
    table: NasBench201Table,
    sampler: str,
    seeds: int | Sequence[int] = 100,
    budgets_s: Sequence[float] = (12000.0,),
    *,
    define_by_run: bool = False,
    screen_cost_s: float = 1.0,
) -> dict[float, NasBench201Summary]:
    """:func:`run_nasbench201` scored at several budgets from one search per seed.

    Each seed runs once, to the largest budget; a smaller budget's answer is the incumbent
    when it was reached (:meth:`NasBench201Objective.best_within`), which is what a run
    with that budget gives, since a sampler's proposals do not depend on the budget.

    Returns:
        Budget -> the summary of the runs at that budget (their ``wall_s`` is that of the
        whole search).
    """
    seed_list = list(range(seeds)) if isinstance(seeds, int) else [int(s) for s in seeds]
    if not seed_list:
        raise ValueError("Give at least one seed.")
    budgets = sorted({float(b) for b in budgets_s})
    if not budgets:
        raise ValueError("Give at least one budget.")
    start = time.perf_counter()
    runs: dict[float, list[NasBench201Run]] = {b: [] for b in budgets}
    for seed in seed_list:
        made = make_sampler(sampler, seed, None if define_by_run else table.space)
        study = optuna.create_study(direction="maximize", sampler=made)
        objective = NasBench201Objective(table, budgets[-1], define_by_run=define_by_run,
                                         screen_cost_s=screen_cost_s)
        study.optimize(objective)
        for budget in budgets:
            best, evaluations, spent = objective.best_within(budget)
            if best is None:  # The budget is below the cost of the first architecture drawn.
                raise ValueError(
                    f"Budget {budget:g} s is too small for even one evaluation (seed {seed})."
                )
            runs[budget].append(
                NasBench201Run(
                    seed=seed,
                    arch=str(best.arch),
                    search_valid_acc=best.search_valid_acc,
                    final_test_acc=best.final_test_acc,
                    evaluations=evaluations,
                    spent_s=spent,
                )
            )
    wall = time.perf_counter() - start
    return {b: NasBench201Summary(sampler, b, tuple(r), wall) for b, r in runs.items()}
