"""The ``optuna-nas`` command line."""

from __future__ import annotations

import argparse
import sys
import threading
import time
import wsgiref.simple_server
from collections.abc import Sequence
from pathlib import Path

import optuna

from optuna_nas.dashboard import make_dashboard_server
from optuna_nas.errors import NasError, WorkerError
from optuna_nas.worker import (
    WorkerConfig,
    add_storage_options,
    launch_workers,
    redact_url,
    resolve_storage_url,
)

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


def _worker_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    worker = sub.add_parser(
        "worker",
        help="run a study's trials in one process per device, with heartbeats and retries",
        description=(
            "Join (or create) a study in a shared storage and run its trials in one process "
            "per device: --devices cuda:0,cuda:1 gives each process its own GPU, --devices "
            "cpu,cpu two CPU processes. Start the same command on other machines to add "
            "workers. On an RDB storage a worker killed mid-trial loses nothing: once its "
            "heartbeat is stale, another worker retries the trial with the same params. "
            "SIGINT/SIGTERM stops the workers; each fails and re-queues its running trial."
        ),
    )
    add_storage_options(worker)
    worker.add_argument("--study-name", required=True, help="the study to join or create")
    worker.add_argument(
        "--objective",
        required=True,
        help="the objective, module:function or path/to/file.py:function; its module may "
        "define space, sampler, pruner and direction",
    )
    worker.add_argument(
        "--sampler",
        default=None,
        help="a sampler name (random, tpe, controller, nas-rl, ...); default: the module's "
        "`sampler`, else Optuna's",
    )
    worker.add_argument(
        "--pruner",
        default=None,
        help="none, median, asha or hyperband; default: the module's `pruner`, else Optuna's",
    )
    worker.add_argument(
        "--trials",
        type=int,
        default=None,
        help="finished (complete or pruned) trials the study should hold; default: run "
        "until stopped",
    )
    worker.add_argument(
        "--devices", default="cpu", help="one worker process per entry (default: cpu)"
    )
    worker.add_argument(
        "--direction",
        choices=("maximize", "minimize"),
        default=None,
        help="direction of a new study (default: the module's `direction`)",
    )
    worker.add_argument(
        "--directions",
        type=_directions,
        default=None,
        help="comma-separated directions of a new multi-objective study, e.g. "
        "maximize,minimize (default: the module's `directions`); no pruner with several",
    )
    worker.add_argument(
        "--seed", type=int, default=None, help="worker i seeds its sampler with seed + i"
    )
    worker.add_argument(
        "--heartbeat-interval", type=int, default=60, help="seconds between heartbeats"
    )
    worker.add_argument(
        "--grace-period",
        type=int,
        default=None,
        help="seconds without a heartbeat before a trial is stale (default: twice the interval)",
    )
    worker.add_argument(
        "--no-heartbeat", action="store_true", help="turn heartbeats and retries off"
    )
    worker.add_argument(
        "--max-retry", type=int, default=1, help="retries of a stale trial (default: 1)"
    )
    worker.add_argument(
        "--timeout", type=float, default=None, help="seconds after which no new trial starts"
    )
    worker.add_argument(
        "--max-failures",
        type=int,
        default=5,
        help="a worker gives up after this many failed trials in a row (default: 5)",
    )
    worker.add_argument(
        "--stop-timeout",
        type=float,
        default=20.0,
        help="seconds the workers get to stop after SIGINT/SIGTERM before they are killed",
    )
    worker.add_argument(
        "--max-restarts",
        type=int,
        default=3,
        help="times a worker killed from outside (OOM killer, kill -9) is started again on "
        "its device (default: 3)",
    )
    worker.add_argument(
        "--dashboard-port",
        type=int,
        default=None,
        help="also serve optuna-dashboard on this port while the workers run",
    )
    worker.add_argument(
        "--dashboard-host",
        default="127.0.0.1",
        help="address the dashboard binds to (default: 127.0.0.1, this machine only)",
    )
    worker.add_argument(
        "--artifact-dir", default=None, help="artifact folder the dashboard shows"
    )


def _directions(text: str) -> list[str]:
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names or any(name not in ("maximize", "minimize") for name in names):
        raise argparse.ArgumentTypeError(
            f"expected comma-separated maximize/minimize, e.g. maximize,minimize; got {text!r}"
        )
    return names


def _run_worker(args: argparse.Namespace) -> int:
    url = resolve_storage_url(args.storage, args.storage_file)
    config = WorkerConfig(
        study_name=args.study_name,
        objective=args.objective,
        sampler=args.sampler,
        pruner=args.pruner,
        n_trials=args.trials,
        seed=args.seed,
        direction=args.direction,
        directions=args.directions,
        heartbeat_interval=None if args.no_heartbeat else args.heartbeat_interval,
        grace_period=None if args.no_heartbeat else args.grace_period,
        max_retry=args.max_retry,
        timeout=args.timeout,
        max_failures=args.max_failures,
    )
    server = None
    if args.dashboard_port is not None:
        server = _bind_dashboard(url, args.dashboard_host, args.dashboard_port, args.artifact_dir)
        threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        return launch_workers(
            config,
            args.devices,
            storage_url=url,
            stop_timeout=args.stop_timeout,
            max_restarts=args.max_restarts,
        )
    finally:
        if server is not None:
            server.shutdown()


def _dashboard_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    dashboard = sub.add_parser(
        "dashboard",
        help="serve optuna-dashboard for a storage, on localhost unless told otherwise",
        description=(
            "Serve optuna-dashboard for the studies of a storage. It binds to 127.0.0.1: the "
            "dashboard has no login, so reach it from another machine through an SSH tunnel "
            "(ssh -L 8080:localhost:8080 host) rather than --host 0.0.0.0."
        ),
    )
    add_storage_options(dashboard)
    dashboard.add_argument("--host", default="127.0.0.1", help="address to bind to")
    dashboard.add_argument("--port", type=int, default=8080, help="port (0: any free one)")
    dashboard.add_argument("--artifact-dir", default=None, help="artifact folder to show")


def _bind_dashboard(
    url: str, host: str, port: int, artifact_dir: str | None
) -> wsgiref.simple_server.WSGIServer:
    try:
        server = make_dashboard_server(url, host=host, port=port, artifact_dir=artifact_dir)
    except OSError as error:
        raise WorkerError(
            f"Cannot serve the dashboard on {host}:{port} ({error.strerror}); pick another "
            "port."
        ) from None
    print(
        f"optuna-dashboard for {redact_url(url)} at "
        f"http://{host}:{server.server_port}/dashboard",
        flush=True,
    )
    return server


def _run_dashboard(args: argparse.Namespace) -> int:
    url = resolve_storage_url(args.storage, args.storage_file)
    with _bind_dashboard(url, args.host, args.port, args.artifact_dir) as server:
        server.serve_forever()  # until Ctrl-C
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
    _worker_parser(sub)
    _dashboard_parser(sub)
    args = parser.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        if args.command == "demo":
            return _run_demo(args)
        if args.command == "worker":
            return _run_worker(args)
        if args.command == "dashboard":
            return _run_dashboard(args)
    except NasError as error:
        print(f"optuna-nas {args.command}: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if args.command == "dashboard":
            return 0
        print("Interrupted; run the same command again to resume.", file=sys.stderr)
        return 130
    parser.error(f"unknown command {args.command!r}")
    return 2

if __name__ == "__main__":
    sys.exit(main())
