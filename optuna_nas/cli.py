"""The ``optuna-nas`` command line."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import optuna

from optuna_nas.errors import NasError

__all__ = ["main"]


def _demo_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    demo = sub.add_parser(
        "demo",
        help="search DARTS cells on the bundled digits data, with ASHA and a tuned lr",
        description=(
            "Search the DARTS cell space at tiny width on scikit-learn's bundled digits, "
            "with Optuna's TPE sampler, the SuccessiveHalvingPruner (ASHA) and the learning "
            "rate tuned in the same trials. The study lives in a SQLite file; running the "
            "command again resumes it."
        ),
    )
    demo.add_argument("--db", default="optuna_nas_demo.db", help="SQLite file of the study")
    demo.add_argument(
        "--artifacts",
        default=None,
        help="folder of the architecture pictures (default: beside the database)",
    )
    demo.add_argument("--study-name", default="optuna_nas_demo")
    demo.add_argument("--trials", type=int, default=24, help="trials the study should reach")
    demo.add_argument("--epochs", type=int, default=8, help="epochs of a trial that is not pruned")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--channels", type=int, default=8)
    demo.add_argument("--layers", type=int, default=3)
    demo.add_argument("--no-progress-bar", action="store_true")


def _run_demo(args: argparse.Namespace) -> int:
    from optuna_nas.demo import run_demo

    db = Path(args.db).resolve()
    artifacts = Path(args.artifacts) if args.artifacts else db.parent / f"{db.stem}_artifacts"
    started = time.perf_counter()
    summary = run_demo(
        db=db,
        artifact_dir=artifacts.resolve(),
        study_name=args.study_name,
        n_trials=args.trials,
        epochs=args.epochs,
        seed=args.seed,
        channels=args.channels,
        layers=args.layers,
        show_progress_bar=not args.no_progress_bar,
    )
    print(summary.report())
    print(f"Finished in {time.perf_counter() - started:.0f} s.")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``optuna-nas`` command line.

    Args:
        argv: The arguments, without the program name; ``sys.argv[1:]`` by default.

    Returns:
        The exit status.
    """
    parser = argparse.ArgumentParser(
        prog="optuna-nas", description="Neural Architecture Search with Optuna."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    _demo_parser(sub)
    args = parser.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        if args.command == "demo":
            return _run_demo(args)
    except NasError as error:
        print(f"optuna-nas {args.command}: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("Interrupted; run the same command again to resume.", file=sys.stderr)
        return 130
    parser.error(f"unknown command {args.command!r}")
    return 2

if __name__ == "__main__":
    sys.exit(main())
