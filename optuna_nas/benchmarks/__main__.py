"""Command line of the benchmark runners: ``python -m optuna_nas.benchmarks SUBCOMMAND``.

Each subcommand adds its parser in an ``_add_*`` function and sets a ``handler`` that takes
the parsed arguments and returns the exit status. Errors a user can cause (a bad path, an
unknown sampler) print one line to stderr and exit with status 2, without a traceback.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import optuna
import torch

from optuna_nas.benchmarks import (
    _asha,
    _darts,
    _darts_cost,
    _load,
    _overhead,
    _supernet,
    _zero_cost,
)
from optuna_nas.benchmarks._args import non_negative_float as _non_negative_float
from optuna_nas.benchmarks._args import positive_float as _positive_float
from optuna_nas.benchmarks._args import positive_int as _positive_int
from optuna_nas.benchmarks._fcnet import FCNetTable, run_fcnet
from optuna_nas.benchmarks._nasbench201 import NasBench201Table, run_nasbench201_budgets
from optuna_nas.benchmarks._nasbench201_mo import (
    CONSTRAINED_SAMPLERS,
    COSTS,
    FrontScore,
    run_nasbench201_constrained,
    run_nasbench201_mo,
)
from optuna_nas.errors import NasError
from optuna_nas.samplers._registry import UnknownSamplerError, check_sampler_names
from optuna_nas.worker import add_storage_options

Handler = Callable[[argparse.Namespace], int]

_USAGE_ERROR = 2


class _CommandError(Exception):
    """A user error found by a handler: printed as one line, exit status 2."""


def _sampler_names(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise argparse.ArgumentTypeError("expected comma-separated sampler names")
    return names


def _add_nasbench201(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "nasbench201",
        help="NAS-Bench-201 budget protocol with Optuna samplers (table look-ups, CPU only)",
        description=(
            "Run the NAS-Bench-201 search protocol (each evaluation returns "
            "search_valid_acc and charges search_cost_s; stop before the budget would be "
            "exceeded; score = final_test_acc of the best search_valid_acc seen) with each "
            "sampler over seeds 0..N-1, and print per sampler the mean ± population std of "
            "the score and the mean number of evaluations."
        ),
    )
    parser.add_argument(
        "--table", required=True, type=Path, help="the NAS-Bench-201 CSV table (cifar10.csv)"
    )
    parser.add_argument(
        "--budget",
        type=_budgets,
        default=[12000.0],
        help=(
            "simulated seconds per run, or a comma-separated list scored from one search "
            "per seed: the incumbent when each budget is reached (default: 12000, the "
            "paper's)"
        ),
    )
    parser.add_argument(
        "--define-by-run",
        action="store_true",
        help=(
            "the objective asks for the six edges with plain suggest_categorical calls and "
            "the samplers get no space object"
        ),
    )
    parser.add_argument(
        "--seeds",
        type=_positive_int,
        default=100,
        help="number of runs per sampler; run k uses seed k (default: 100)",
    )
    parser.add_argument(
        "--screen-cost-s",
        type=_non_negative_float,
        default=1.0,
        help=(
            "simulated seconds charged per candidate that a screening sampler "
            "(controller-synflow, controller-params, controller-flops) scores with a "
            "zero-cost proxy, read from the package's proxy table (default: 1)"
        ),
    )
    parser.add_argument(
        "--samplers",
        type=_sampler_names,
        default=["random", "tpe"],
        help="comma-separated registered sampler names (default: random,tpe)",
    )
    parser.add_argument(
        "--json", type=Path, default=None, help="also write figures and per-seed results here"
    )
    parser.set_defaults(handler=_run_nasbench201)


def _add_nasbench201_mo(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    parser = subparsers.add_parser(
        "nasbench201-mo",
        help="NAS-Bench-201 accuracy against a cost: hypervolume, or a constrained search",
        description=(
            "Multi-objective NAS-Bench-201 (directions maximize, minimize): each evaluation "
            "reveals search_valid_acc and the cost column and charges search_cost_s under "
            "the nasbench201 budget rule. A search's answer is the Pareto set of what it "
            "evaluated by (search_valid_acc, cost); its score is the hypervolume of those "
            "architectures' (final_test_acc, cost), both normalised to [0, 1] over the "
            "table, reference point (1, 1). The limit is the score of evaluating the whole "
            "table. With --max-params-mb the search is constrained instead: maximise "
            "accuracy subject to params_mb <= X (TPE and NSGA-II through constraints_func, "
            "the controller through arch_constraints); the score is the final_test_acc of "
            "the best feasible architecture by search_valid_acc."
        ),
    )
    parser.add_argument(
        "--table", required=True, type=Path, help="the NAS-Bench-201 CSV table (cifar10.csv)"
    )
    parser.add_argument(
        "--cost", choices=COSTS, default="latency_s", help="the cost column (default: latency_s)"
    )
    parser.add_argument(
        "--budget",
        type=_budgets,
        default=[12000.0],
        help="simulated seconds per run, or a comma-separated list (default: 12000)",
    )
    parser.add_argument(
        "--seeds", type=_positive_int, default=100, help="runs per sampler (default: 100)"
    )
    parser.add_argument(
        "--samplers",
        type=_sampler_names,
        default=["random", "tpe", "nsga2", "nsga3", "controller"],
        help="comma-separated sampler names (default: random,tpe,nsga2,nsga3,controller)",
    )
    parser.add_argument(
        "--max-params-mb",
        default=None,
        help="constrained mode: the params_mb limit X, a number or 'median' (the table's "
        "median params_mb)",
    )
    parser.add_argument(
        "--json", type=Path, default=None, help="also write figures and per-seed results here"
    )
    parser.set_defaults(handler=_run_nasbench201_mo)


def _run_nasbench201_mo(args: argparse.Namespace) -> int:
    samplers: list[str] = args.samplers
    budgets: list[float] = args.budget
    constrained = args.max_params_mb is not None
    if constrained:
        unknown = [name for name in samplers if name not in CONSTRAINED_SAMPLERS]
        if unknown:
            raise _CommandError(
                f"the constrained mode runs the samplers {','.join(CONSTRAINED_SAMPLERS)}, "
                f"not {','.join(unknown)}"
            )
    else:
        check_sampler_names(samplers)
    table = NasBench201Table.load(args.table)
    torch.set_num_threads(1)
    document: dict[str, Any] = {
        "benchmark": "nasbench201-mo",
        "table": str(args.table),
        "budget_s": budgets[-1] if len(budgets) == 1 else budgets,
        "seeds": args.seeds,
        "std": "population (ddof=0)",
    }
    if constrained:
        limit = _max_params(args.max_params_mb, table)
        feasible = [row for row in table if row.params_mb <= limit]
        if not feasible:
            raise _CommandError(f"no architecture of the table has params_mb <= {limit:g}")
        best = max(feasible, key=lambda row: row.search_valid_acc)
        print(
            f"constrained: params_mb <= {limit:g} ({len(feasible)} of {len(table)} "
            f"architectures feasible); limit (best feasible by search_valid_acc): "
            f"{best.final_test_acc:.2f}",
            flush=True,
        )
        document |= {"mode": "constrained", "max_params_mb": limit,
                     "limit": best.final_test_acc}
    else:
        score = FrontScore(table, args.cost)
        print(f"cost {args.cost}: limit (the whole table) {score.limit:.4f}", flush=True)
        document |= {"mode": "multi-objective", "cost": args.cost, "limit": score.limit}
    entries: dict[str, dict[str, Any]] = {}
    for name in samplers:
        try:
            if constrained:
                summaries = run_nasbench201_constrained(
                    table, name, args.seeds, budgets, max_params_mb=limit
                )
            else:
                summaries = run_nasbench201_mo(table, name, args.seeds, budgets, cost=args.cost)
        except ValueError as error:
            if isinstance(error, NasError):
                raise
            raise _CommandError(str(error)) from error
        entries[name] = _print_budgets(summaries)
    if args.json is not None:
        _write_json(args.json, document | {"samplers": entries})
    return 0


def _max_params(text: str, table: NasBench201Table) -> float:
    if text.strip() == "median":
        import statistics

        return float(statistics.median(table.column("params_mb")))
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise _CommandError(
            f"--max-params-mb must be a positive number or 'median', got {text!r}"
        )
    return value


class _BudgetSummary(Protocol):
    def line(self) -> str: ...

    def as_dict(self) -> dict[str, Any]: ...


def _print_budgets(summaries: Mapping[float, _BudgetSummary]) -> dict[str, Any]:
    # Prints each budget's line; returns the largest budget's figures, as a single budget
    # gives them, and with several budgets each one's under its own key too.
    budgets = sorted(summaries)
    for budget in budgets:
        prefix = f"[{budget:g} s] " if len(budgets) > 1 else ""
        print(prefix + summaries[budget].line(), flush=True)
    entry = summaries[budgets[-1]].as_dict()
    if len(budgets) > 1:
        entry |= {f"{b:g}": summaries[b].as_dict() for b in budgets}
    return entry


def _budgets(text: str) -> list[float]:
    return sorted({_positive_float(part.strip()) for part in text.split(",") if part.strip()})


def _run_nasbench201(args: argparse.Namespace) -> int:
    samplers: list[str] = args.samplers
    budgets: list[float] = args.budget
    check_sampler_names(samplers)  # Before the table is read: fail fast on a typo.
    table = NasBench201Table.load(args.table)
    # The controller's networks are tiny: one thread is fastest, and it fixes the
    # floating-point order, so the figures repeat on any machine.
    torch.set_num_threads(1)
    entries: dict[str, dict[str, Any]] = {}
    for name in samplers:
        try:
            summaries = run_nasbench201_budgets(
                table, name, seeds=args.seeds, budgets_s=budgets,
                define_by_run=args.define_by_run, screen_cost_s=args.screen_cost_s,
            )
        except ValueError as error:  # e.g. a budget below the cost of one evaluation
            if isinstance(error, NasError):
                raise
            raise _CommandError(str(error)) from error
        entries[name] = _print_budgets(summaries)
    if args.json is not None:
        document = {
            "benchmark": "nasbench201",
            "table": str(args.table),
            "budget_s": budgets[-1] if len(budgets) == 1 else budgets,
            "seeds": args.seeds,
            "define_by_run": args.define_by_run,
            "screen_cost_s": args.screen_cost_s,
            "std": "population (ddof=0); std_sample has ddof=1",
            "samplers": entries,
        }
        _write_json(args.json, document)
    return 0


def _add_fcnet(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "fcnet",
        help="FCNet joint architecture + hyperparameter protocol, define-by-run (table)",
        description=(
            "Run the FCNet protocol of ../shared/benchmarks/fcnet/README.md with each "
            "sampler over seeds 0..N-1: a define-by-run objective (nine plain suggest "
            "calls, no space object) returns one random training seed's val_loss; the "
            "incumbent is scored by the regret of its mean loss. Print, at 25 evaluations "
            "and at --trials, the log10 of the mean regret over the seeds (lower is better) "
            "and the share of seeds that found the optimum."
        ),
    )
    parser.add_argument(
        "--table", required=True, type=Path,
        help="the FCNet CSV table (../shared/benchmarks/fcnet/slice_localization.csv)",
    )
    parser.add_argument(
        "--trials", type=_positive_int, default=100, help="evaluations per run (default: 100)"
    )
    parser.add_argument(
        "--seeds", type=_positive_int, default=100,
        help="number of runs per sampler; run k uses seed k (default: 100)",
    )
    parser.add_argument(
        "--samplers", type=_sampler_names, default=["random", "tpe", "controller"],
        help="comma-separated registered sampler names (default: random,tpe,controller)",
    )
    parser.add_argument(
        "--space", action="store_true",
        help=(
            "suggest the architecture (activations, widths, dropouts) through a space "
            "object, the training hyperparameters with plain calls: compares the "
            "controller's joint search (controller) with delegating the hyperparameters "
            "to TPE (controller-delegated)"
        ),
    )
    parser.add_argument(
        "--json", type=Path, default=None, help="also write the figures here"
    )
    parser.set_defaults(handler=_run_fcnet)


def _run_fcnet(args: argparse.Namespace) -> int:
    samplers: list[str] = args.samplers
    check_sampler_names(samplers)
    table = FCNetTable.load(args.table)
    torch.set_num_threads(1)
    checkpoints = sorted({min(25, args.trials), args.trials})
    results = []
    for name in samplers:
        try:
            summary = run_fcnet(
                table, name, seeds=args.seeds, trials=args.trials, space=args.space
            )
        except UnknownSamplerError as error:
            raise _CommandError(str(error)) from None
        print(summary.line(checkpoints), flush=True)
        results.append(summary)
    if args.json is not None:
        document = {
            "benchmark": "fcnet",
            "table": str(args.table),
            "trials": args.trials,
            "seeds": args.seeds,
            "space": args.space,
            "samplers": {s.sampler: s.as_dict(checkpoints) for s in results},
        }
        _write_json(args.json, document)
    return 0


def _write_json(path: Path, document: dict[str, Any]) -> None:
    try:
        path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    except OSError as error:
        raise _CommandError(f"cannot write {str(path)!r}: {error.strerror}") from error


def _sampler_names_or_none(text: str) -> list[str]:
    return [] if text.strip() == "none" else _sampler_names(text)


def _storage_names(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in _overhead.STORAGES]
    if not names or unknown:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated storages out of {','.join(_overhead.STORAGES)}, "
            f"got {text!r}"
        )
    return names


def _add_overhead(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "overhead",
        help="milliseconds per trial that samplers and storages add (trivial objective)",
        description=(
            "Time every trial of a trivial objective (NasBench201Space().suggest(trial) and "
            "a synthetic score) in an ask-and-tell loop, for each sampler in memory and on "
            "SQLite (a temporary file), one after the other in this process, and print the "
            "mean milliseconds per trial over the first and the last tenth of the trials "
            "(trials 1-100 and 900-1000 of 1000)."
        ),
    )
    parser.add_argument(
        "--trials", type=_positive_int, default=1000, help="trials per run (default: 1000)"
    )
    parser.add_argument(
        "--samplers",
        type=_sampler_names,
        default=list(_overhead.SAMPLERS),
        help="comma-separated registered sampler names (default: random,tpe,controller)",
    )
    parser.add_argument(
        "--define-by-run",
        type=_sampler_names_or_none,
        default=list(_overhead.DEFINE_BY_RUN),
        help=(
            "samplers also measured on a define-by-run objective (six plain "
            "suggest_categorical calls, no space object); 'none' for none (default: "
            "controller)"
        ),
    )
    parser.add_argument(
        "--storages",
        type=_storage_names,
        default=list(_overhead.STORAGES),
        help="comma-separated storages: memory, sqlite (default: memory,sqlite)",
    )
    parser.add_argument("--seed", type=int, default=0, help="the samplers' seed (default: 0)")
    parser.add_argument(
        "--torch-threads",
        type=_positive_int,
        default=None,
        help="torch.set_num_threads(N) before the runs (default: torch's own default)",
    )
    parser.add_argument(
        "--json", type=Path, default=None, help="also write the figures and per-trial times"
    )
    parser.set_defaults(handler=_run_overhead)


def _run_overhead(args: argparse.Namespace) -> int:
    import torch

    samplers: list[str] = args.samplers
    check_sampler_names([*samplers, *args.define_by_run])
    threads = torch.get_num_threads()
    if args.torch_threads is not None:
        torch.set_num_threads(args.torch_threads)
    try:
        print(_overhead.format_overhead_header(args.trials), flush=True)
        results = _overhead.run_overhead(
            trials=args.trials,
            samplers=samplers,
            storages=args.storages,
            seed=args.seed,
            progress=lambda result: print(_overhead.format_overhead_row(result), flush=True),
            define_by_run=args.define_by_run,
        )
        document = _overhead.overhead_document(results, trials=args.trials, seed=args.seed)
    finally:
        torch.set_num_threads(threads)
    if args.json is not None:
        _write_json(args.json, document)
    return 0


def _add_asha(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "asha",
        help="random search with ASHA vs at full budget, trained on the digits data (CPU)",
        description=(
            "For each seed k in 0..N-1, run random search (RandomSampler(seed=k)) over the "
            "NAS-Bench-201 space twice on the digits data, training every network from "
            "scratch on the CPU: once pruned by ASHA (Optuna's SuccessiveHalvingPruner) and "
            "once at full budget. Print per arm the mean ± population std over the seeds "
            "of the best trial's test accuracy (best by validation accuracy) and the total "
            "epochs trained, then the ratio of epochs ASHA/full."
        ),
    )
    parser.add_argument(
        "--seeds", type=_positive_int, default=5, help="seeds 0..N-1 (default: 5)"
    )
    parser.add_argument(
        "--trials",
        type=_positive_int,
        default=_asha.DEFAULT_TRIALS,
        help=f"trials per arm and seed (default: {_asha.DEFAULT_TRIALS})",
    )
    parser.add_argument(
        "--max-epochs",
        type=_positive_int,
        default=_asha.DEFAULT_MAX_EPOCHS,
        help=f"epochs of an unpruned trial (default: {_asha.DEFAULT_MAX_EPOCHS})",
    )
    parser.add_argument(
        "--min-resource", type=_positive_int, default=1, help="ASHA's first rung (default: 1)"
    )
    parser.add_argument(
        "--reduction-factor",
        type=_positive_int,
        default=4,
        help="ASHA's reduction factor, at least 2 (default: 4)",
    )
    parser.add_argument(
        "--json", type=Path, default=None, help="also write the figures and per-seed runs here"
    )
    parser.set_defaults(handler=_run_asha)


def _run_asha(args: argparse.Namespace) -> int:
    if args.json is not None and not args.json.parent.is_dir():  # Fail before the training.
        raise _CommandError(
            f"cannot write {str(args.json)!r}: its folder does not exist; create it first."
        )
    threads = torch.get_num_threads()
    # Tiny networks: one thread is fastest and fixes the floating-point order.
    torch.set_num_threads(1)
    try:
        result = _asha.run_asha_benchmark(
            seeds=args.seeds,
            n_trials=args.trials,
            max_epochs=args.max_epochs,
            min_resource=args.min_resource,
            reduction_factor=args.reduction_factor,
            progress=lambda run: print(run.line(), flush=True),
        )
    except ValueError as error:  # e.g. min_resource not below max_epochs
        if isinstance(error, NasError):
            raise
        raise _CommandError(str(error)) from error
    finally:
        torch.set_num_threads(threads)
    for line in result.lines():
        print(line, flush=True)
    if args.json is not None:
        document = {**result.as_dict(), "torch_threads": 1}
        _write_json(args.json, document)
    return 0


def _add_supernet(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "supernet",
        help="time and peak memory of a single-path supernet step vs xautodl's RANDOM",
        description=(
            "Time one training step (forward, backward, SGD) of this package's single-path "
            "supernet, of xautodl's RANDOM supernet (the peer; install it with "
            f"'{_supernet.PEER_INSTALL}') on the same architectures, and of the fixed child "
            "network of each architecture, on the NAS-Bench-201 space; each side in its own "
            "fresh process, in rounds with the order rotated. Print each side's ms per step "
            "(lowest round mean) and peak memory over the process's baseline, and the "
            "ratios ours/peer and ours/child."
        ),
    )
    parser.add_argument(
        "--device", choices=("cpu", "cuda"), default="cpu", help="where to train (default: cpu)"
    )
    _add_peer_benchmark_options(
        parser, unit="step", steps=10, warmup=2, rounds=2, batch="images per step",
        seed="seed of the architectures and batch",
    )
    parser.set_defaults(handler=_run_supernet)


def _add_peer_benchmark_options(
    parser: argparse.ArgumentParser,
    *,
    unit: str,
    steps: int,
    warmup: int,
    rounds: int,
    batch: str,
    seed: str,
) -> None:
    # The options the supernet and darts benchmarks share (ours against xautodl).
    parser.add_argument(
        "--steps", type=_positive_int, default=steps,
        help=f"timed {unit}s per run (default: {steps})",
    )
    parser.add_argument(
        "--warmup", type=_non_negative_int, default=warmup,
        help=f"untimed {unit}s before them (default: {warmup})",
    )
    parser.add_argument(
        "--rounds", type=_positive_int, default=rounds,
        help=f"runs of each side, the order rotated per round (default: {rounds})",
    )
    parser.add_argument(
        "--batch-size", type=_positive_int, default=64, help=f"{batch} (default: 64)"
    )
    parser.add_argument(
        "--channels", type=_positive_int, default=16, help="first-stage channels (default: 16)"
    )
    parser.add_argument(
        "--cells-per-stage", type=_positive_int, default=5, help="cells per stage (default: 5)"
    )
    parser.add_argument(
        "--image-size", type=_positive_int, default=32, help="image height and width (default: 32)"
    )
    parser.add_argument(
        "--threads", type=_positive_int, default=None,
        help="torch.set_num_threads(N) in every process (default: torch's own default)",
    )
    parser.add_argument("--seed", type=int, default=0, help=f"{seed} (default: 0)")
    parser.add_argument(
        "--skip-peer", action="store_true",
        help="leave xautodl out (its figures and ratios are then null)",
    )
    parser.add_argument(
        "--json", type=Path, default=None, help="also write the figures and every run here"
    )


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}")
    return value


def _peer_benchmark_options(args: argparse.Namespace, module: Any) -> dict[str, Any]:
    # The checks and step options the supernet and darts benchmarks share; ``module`` is
    # the benchmark's module (its peer_available and PeerMissingError).
    if args.json is not None and not args.json.parent.is_dir():  # Fail before the runs.
        raise _CommandError(
            f"cannot write {str(args.json)!r}: its folder does not exist; create it first."
        )
    if not args.skip_peer and not module.peer_available():
        raise module.PeerMissingError()
    if args.device == "cuda" and not torch.cuda.is_available():
        raise _CommandError("--device cuda, but torch sees no CUDA device.")
    names = ("device", "steps", "warmup", "batch_size", "channels", "cells_per_stage",
             "image_size", "threads", "seed")
    return {name: getattr(args, name) for name in names}


def _run_peer_benchmark(
    args: argparse.Namespace, header: str, run: Callable[..., Any]
) -> int:
    # What the supernet and darts commands share once their config is made: the header, a
    # progress line per run, the table, and the JSON document.
    print(header, flush=True)
    result = run(
        rounds=args.rounds,
        peer=not args.skip_peer,
        progress=lambda side_run: print(side_run.line(), flush=True),
    )
    for line in result.lines():
        print(line, flush=True)
    if args.json is not None:
        _write_json(args.json, result.as_dict())
    return 0


def _run_supernet(args: argparse.Namespace) -> int:
    config = _supernet.StepConfig(**_peer_benchmark_options(args, _supernet))
    header = (
        f"NAS-Bench-201, {config.channels} channels, {config.cells_per_stage} cells per "
        f"stage, batch {config.batch_size} of {config.image_size}x{config.image_size}, "
        f"{config.device}; {config.steps} timed steps after {config.warmup} warm-up, "
        f"{args.rounds} round(s), one process per side and round"
    )
    return _run_peer_benchmark(
        args, header, functools.partial(_supernet.run_supernet_benchmark, config)
    )


def _add_darts(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "darts",
        help="time and peak memory of a DARTS search iteration vs xautodl's DARTS-V1",
        description=(
            "Time one first-order DARTS search iteration (an architecture step on a "
            "validation batch, then a weight step on a training batch) of this package's "
            "DartsSearch and of xautodl's DARTS-V1 supernet (the peer; install it with "
            f"'{_supernet.PEER_INSTALL}') on the NAS-Bench-201 space, with identical "
            "optimizers and batches; each side in its own fresh process. Print each side's "
            "ms per iteration (and per step), peak memory over the process's baseline and "
            "parameter count, and the ratios ours/peer."
        ),
    )
    parser.add_argument(
        "--device", choices=("cpu", "cuda"), default="cpu", help="where to train (default: cpu)"
    )
    _add_peer_benchmark_options(
        parser, unit="iteration", steps=2, warmup=1, rounds=1, batch="images per batch",
        seed="seed of the batches and weights",
    )
    parser.set_defaults(handler=_run_darts)


def _run_darts(args: argparse.Namespace) -> int:
    config = _darts.darts_config(**_peer_benchmark_options(args, _darts))
    header = (
        f"DARTS (first order) on NAS-Bench-201, {config.channels} channels, "
        f"{config.cells_per_stage} cells per stage, batch {config.batch_size} of "
        f"{config.image_size}x{config.image_size}, {config.device}; {config.steps} timed "
        f"iterations after {config.warmup} warm-up, {args.rounds} round(s), one process per "
        "side and round"
    )
    return _run_peer_benchmark(args, header, functools.partial(_darts.run_darts_benchmark, config))


def _worker_counts(text: str) -> list[int]:
    try:
        counts = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        counts = []
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated positive worker counts, e.g. 1,2,4,8; got {text!r}"
        )
    return counts


def _add_load(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "load",
        help="trials per second of many optuna-nas worker processes on one study",
        description=(
            "Start `optuna-nas worker --devices cpu,...` on a fresh study in the storage, "
            "with a cheap NAS-Bench-201 objective and ControllerSampler, for each worker "
            "count, and print trials per second, lost and duplicated trials (both must be "
            "0) and the sampler's share of the workers' wall time. The study is deleted "
            "afterwards. Keep a password off the command line with --storage-file or "
            "OPTUNA_NAS_STORAGE."
        ),
    )
    add_storage_options(parser)
    parser.add_argument(
        "--workers",
        type=_worker_counts,
        default=[8],
        help="worker processes, or a comma-separated list of counts to run one after "
        "the other (default: 8)",
    )
    parser.add_argument(
        "--trials", type=_positive_int, default=500, help="trials per run (default: 500)"
    )
    parser.add_argument(
        "--trial-seconds",
        type=float,
        default=0.1,
        help="seconds each objective call holds its worker without using the CPU, as a "
        "worker waits for its GPU (default: 0.1; 0 measures storage and sampler alone)",
    )
    parser.add_argument("--seed", type=int, default=0, help="worker i's seed is seed + i")
    parser.add_argument("--log", type=Path, default=None, help="write the workers' output here")
    parser.add_argument("--keep-study", action="store_true", help="keep the studies")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures")
    parser.set_defaults(handler=_run_load)


def _run_load(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from optuna_nas.worker import resolve_storage_url

    if not (math.isfinite(args.trial_seconds) and args.trial_seconds >= 0):
        raise _CommandError(f"--trial-seconds must be 0 or more, got {args.trial_seconds}")
    url = resolve_storage_url(args.storage, args.storage_file)
    print(_load.format_load_header(url), flush=True)
    results = []
    for workers in args.workers:
        result = _load.run_load(
            url,
            workers=workers,
            trials=args.trials,
            trial_seconds=args.trial_seconds,
            seed=args.seed,
            keep_study=args.keep_study,
            log=args.log,
        )
        print(_load.format_load_row(result), flush=True)
        results.append(result)
    if args.json is not None:
        document = {"cpu_count": os.cpu_count(), "runs": [asdict(r) for r in results]}
        _write_json(args.json, document)
    return 0 if all(r.lost == 0 and r.duplicated == 0 for r in results) else 1


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, one subcommand per benchmark."""
    parser = argparse.ArgumentParser(
        prog="python -m optuna_nas.benchmarks",
        description="Score Optuna samplers on neural architecture search benchmarks.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_nasbench201(subparsers)
    _add_nasbench201_mo(subparsers)
    _add_fcnet(subparsers)
    _add_overhead(subparsers)
    _add_asha(subparsers)
    _add_supernet(subparsers)
    _add_darts(subparsers)
    _darts_cost.add_parser(subparsers)
    _zero_cost.add_parsers(subparsers)
    _add_load(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line.

    Args:
        argv: The arguments after the program name; ``sys.argv[1:]`` by default.

    Returns:
        The exit status: 0 on success, 2 on a usage or input error. (Argument-syntax errors
        exit through argparse with status 2.)
    """
    args = build_parser().parse_args(argv)
    handler: Handler = args.handler
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        return handler(args)
    except (NasError, _CommandError) as error:
        print(f"error: {error}", file=sys.stderr)
        return _USAGE_ERROR
    finally:
        optuna.logging.set_verbosity(verbosity)


if __name__ == "__main__":
    sys.exit(main())
