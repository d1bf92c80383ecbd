"""The launcher: the study, one process per device, signals passed on."""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from types import FrameType
from typing import TextIO

import optuna

from optuna_nas.errors import NasError, WorkerError
from optuna_nas.worker._devices import _child_env, parse_devices
from optuna_nas.worker._objective import (
    WorkerObjective,
    _check_directions,
    _check_pruner,
    load_objective,
    make_pruner,
    make_worker_sampler,
)
from optuna_nas.worker._run import _counts, run_worker
from optuna_nas.worker._storage import STORAGE_ENV, open_storage, redact_url

_CONFIG_ENV = "OPTUNA_NAS_WORKER_CONFIG"


@dataclass(frozen=True)
class WorkerConfig:
    """What every worker process of one launch runs.

    Args:
        study_name: The study to join or create.
        objective: ``module:function`` of the objective.
        sampler: A registered sampler name, or ``None`` for the module's or Optuna's.
        pruner: One of :data:`PRUNERS`, or ``None`` for the module's or Optuna's.
        n_trials: Finished trials the study should hold; ``None`` runs until stopped.
        seed: Worker ``i`` seeds its sampler with ``seed + i``; ``None`` draws seeds.
        direction: ``"maximize"`` or ``"minimize"`` for a new study; the module's by
            default.
        directions: One ``"maximize"`` or ``"minimize"`` per objective, for a new
            multi-objective study (instead of ``direction``); the module's by default.
        heartbeat_interval: Seconds between heartbeats (RDB storages); ``None`` is off.
        grace_period: Seconds without a heartbeat before a trial is stale.
        max_retry: How many times a stale trial is retried.
        timeout: Seconds after which a worker starts no new trial.
        max_failures: Consecutive failed trials after which a worker gives up.
        poll_interval: Seconds between checks while the last trials run elsewhere.
    """

    study_name: str
    objective: str
    sampler: str | None = None
    pruner: str | None = None
    n_trials: int | None = None
    seed: int | None = None
    direction: str | None = None
    directions: Sequence[str] | None = None
    heartbeat_interval: int | None = 60
    grace_period: int | None = None
    max_retry: int | None = 1
    timeout: float | None = None
    max_failures: int = 5
    poll_interval: float = 1.0

    def check(self) -> None:
        """Raise :class:`WorkerError` for a value no worker could run with."""
        if not self.study_name:
            raise WorkerError("Give the study a name: --study-name NAME.")
        if self.n_trials is not None and self.n_trials < 1:
            raise WorkerError(f"--trials must be at least 1, got {self.n_trials}.")
        if self.direction not in (None, "maximize", "minimize"):
            raise WorkerError(f"direction must be maximize or minimize, got {self.direction!r}.")
        if self.directions is not None:
            if self.direction is not None:
                raise WorkerError(
                    "Give direction (one objective) or directions (several), not both."
                )
            _check_directions(self.directions, "The worker configuration")
        if self.timeout is not None and not (self.timeout > 0 and math.isfinite(self.timeout)):
            raise WorkerError(f"--timeout must be positive seconds, got {self.timeout}.")
        if self.max_failures < 1:
            raise WorkerError(f"--max-failures must be at least 1, got {self.max_failures}.")


def _open(config: WorkerConfig, url: str) -> optuna.storages.RDBStorage:
    return open_storage(
        url,
        heartbeat_interval=config.heartbeat_interval,
        grace_period=config.grace_period,
        max_retry=config.max_retry,
    )


def _create_or_load_study(
    config: WorkerConfig, storage: optuna.storages.BaseStorage, objective: WorkerObjective
) -> optuna.Study:
    # The command line's direction(s) win over the module's.
    wanted: tuple[str, ...] | None = None
    if config.directions is not None:
        wanted = tuple(config.directions)
    elif config.direction is not None:
        wanted = (config.direction,)
    elif objective.directions is not None:
        wanted = objective.directions
    elif objective.direction is not None:
        wanted = (objective.direction,)
    try:
        existing = optuna.load_study(study_name=config.study_name, storage=storage)
    except KeyError:
        existing = None
    if existing is None:
        if wanted is None:
            raise WorkerError(
                f"The study {config.study_name!r} does not exist yet, so it needs a direction: "
                "pass --direction maximize (or minimize), or define direction = 'maximize' "
                "next to the objective (directions = ['maximize', 'minimize'] for a "
                "multi-objective study)."
            )
        return optuna.create_study(
            study_name=config.study_name,
            storage=storage,
            directions=["maximize" if d == "maximize" else "minimize" for d in wanted],
            load_if_exists=True,
        )
    have = tuple(d.name.lower() for d in existing.directions)
    if wanted is not None and have != wanted:
        def say(directions: tuple[str, ...]) -> str:
            return directions[0] if len(directions) == 1 else f"{list(directions)}"

        raise WorkerError(
            f"The study {config.study_name!r} exists and is to {say(have)}, not to "
            f"{say(wanted)}; drop the direction(s) given, or give a new study name."
        )
    return existing


def launch_workers(
    config: WorkerConfig,
    devices: str | Sequence[str],
    *,
    storage_url: str,
    stop_timeout: float = 20.0,
    max_restarts: int = 3,
    out: TextIO | None = None,
) -> int:
    """Create or join the study, start one worker process per device, and wait for them.

    SIGINT or SIGTERM is passed on to every worker, which fails and re-queues its running
    trial and exits; a worker still running ``stop_timeout`` seconds later is killed (its
    trial is then retried once its heartbeat is stale).

    Args:
        config: What every worker runs.
        devices: One entry per worker process, see :func:`parse_devices`.
        storage_url: The storage URL; handed to the workers in their environment, never
            on a command line.
        stop_timeout: Seconds the workers get to stop after a signal.
        max_restarts: How many times a worker killed from outside (by a signal the
            launcher did not send) is started again on its device.
        out: Where the launcher's lines go; standard output by default.

    Returns:
        The exit status: 0 when every worker stopped normally, 128 + the signal number
        after a stop signal, 1 when a worker failed.

    Raises:
        WorkerError: The configuration, the objective, the storage or the devices are
            wrong; nothing was started.
    """
    stream = out if out is not None else sys.stdout
    config.check()
    if max_restarts < 0:
        raise WorkerError(f"--max-restarts must be 0 or more, got {max_restarts}.")
    names = parse_devices(devices)
    objective = load_objective(config.objective)
    # Build the sampler and pruner once here, so that a bad name fails before any start.
    make_worker_sampler(objective, config.sampler, config.seed)
    pruner = make_pruner(objective, config.pruner)
    storage = _open(config, storage_url)
    study = _create_or_load_study(config, storage, objective)
    where = f"--pruner {config.pruner}" if config.pruner else "the module's pruner"
    try:
        _check_pruner(pruner, study, where)
    except WorkerError:
        storage.engine.dispose()
        raise
    counts = _counts(study)
    storage.engine.dispose()
    print(
        f"Study {study.study_name!r} on {redact_url(storage_url)}: {counts.done} finished, "
        f"{counts.running} running, {counts.waiting} waiting; target "
        f"{config.n_trials if config.n_trials is not None else 'none (run until stopped)'}. "
        f"Starting {len(names)} worker(s) on {', '.join(names)}.",
        file=stream,
        flush=True,
    )
    n_cpu = sum(d == "cpu" for d in names)
    labels = [f"cpu#{i}" if d == "cpu" else d for i, d in enumerate(names)]

    def spawn(index: int) -> subprocess.Popen[bytes]:
        env = _child_env(names[index], index, n_cpu)
        env[STORAGE_ENV] = storage_url
        env[_CONFIG_ENV] = json.dumps(
            {**asdict(config), "index": index, "label": labels[index], "parent": os.getpid()}
        )
        # Own session: a terminal's Ctrl-C reaches the launcher only, which passes one
        # SIGTERM on, instead of every process receiving it twice.
        return subprocess.Popen(
            [sys.executable, "-m", "optuna_nas.worker"], env=env, start_new_session=True
        )

    processes = [spawn(index) for index in range(len(names))]
    restarts = [0] * len(names)

    received: list[int] = []

    def forward(signum: int, frame: FrameType | None) -> None:
        received.append(signum)
        for process in processes:
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(signal.SIGTERM)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        deadline: float | None = None
        while True:
            # One look at every process per turn, so that a worker dying in between is
            # either restarted now or seen next turn, never missed.
            codes = [p.poll() for p in processes]
            for index, code in enumerate(codes):
                if code is None or code >= 0 or received or restarts[index] > max_restarts:
                    continue
                # Killed from outside (the OOM killer, a user's kill -9): its trial is
                # retried once stale, and its device gets a fresh worker.
                again = restarts[index] < max_restarts
                print(
                    f"[{labels[index]}] was killed by {signal.Signals(-code).name}; its trial "
                    "is retried once its heartbeat is stale. "
                    + (
                        f"Restarting it ({restarts[index] + 1} of {max_restarts})."
                        if again
                        else f"Not restarted: it was restarted {max_restarts} times already."
                    ),
                    file=stream, flush=True,
                )
                if again:
                    restarts[index] += 1
                    processes[index] = spawn(index)
                    codes[index] = None
                else:
                    restarts[index] = max_restarts + 1  # reported; skipped from now on
            if all(code is not None for code in codes):
                break
            if received and deadline is None:
                print(
                    f"Stopping {sum(p.poll() is None for p in processes)} worker(s): each "
                    "fails and re-queues its running trial.",
                    file=stream, flush=True,
                )
                deadline = time.monotonic() + stop_timeout
            if deadline is not None and time.monotonic() > deadline:
                for process, label in zip(processes, labels, strict=True):
                    if process.poll() is None:
                        process.kill()
                        print(
                            f"[{label}] did not stop in {stop_timeout:g} s and was killed; its "
                            "trial is retried once its heartbeat is stale.",
                            file=stream, flush=True,
                        )
                for process in processes:
                    process.wait()
                break
            time.sleep(0.1)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    if received:
        return 128 + received[0]
    # A worker killed and restarted counts by its last process.
    codes = [p.returncode for p in processes]
    return 0 if all(code == 0 for code in codes) else 1


def child_main() -> int:
    """Entry point of one worker process (``python -m optuna_nas.worker``)."""
    raw = os.environ.get(_CONFIG_ENV)
    if raw is None:
        print(
            "This module runs worker processes for `optuna-nas worker`; start workers with "
            "that command.",
            file=sys.stderr,
        )
        return 2
    settings = json.loads(raw)
    label = str(settings.pop("label"))
    index = int(settings.pop("index"))
    parent = int(settings.pop("parent"))
    config = WorkerConfig(**settings)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        objective = load_objective(config.objective)
        seed = None if config.seed is None else config.seed + index
        sampler = make_worker_sampler(objective, config.sampler, seed)
        pruner = make_pruner(objective, config.pruner)
        storage = _open(config, os.environ[STORAGE_ENV])
        study = optuna.load_study(
            study_name=config.study_name, storage=storage, sampler=sampler, pruner=pruner
        )
        report = run_worker(
            study,
            objective,
            n_trials=config.n_trials,
            label=label,
            timeout=config.timeout,
            max_failures=config.max_failures,
            poll_interval=config.poll_interval,
            parent_pid=parent,
        )
    except NasError as error:
        print(f"[{label}] error: {error}", file=sys.stderr, flush=True)
        return 2
    except KeyError:
        print(
            f"[{label}] error: the study {config.study_name!r} is gone from the storage "
            "(deleted while the workers started?); start the workers again.",
            file=sys.stderr, flush=True,
        )
        return 2
    except KeyboardInterrupt:
        print(f"[{label}] stopped.", flush=True)
        return 0
    print(report.line(), flush=True)
    storage.engine.dispose()
    return 0 if report.ok else 1
