"""Workers: one process per device, any number of machines, one study in a shared storage.

``optuna-nas worker`` calls :func:`launch_workers`: it creates (or joins) the study and
starts one process per device, each seeing only its own GPU. Every process runs
:func:`run_worker`, the trials of the study until it holds its trial count. On an RDB
storage heartbeats are on (:func:`open_storage`): the trial of a worker killed with SIGKILL
is failed once its heartbeat is stale, and another worker retries it once, with the same
params, so the same architecture. SIGINT or SIGTERM stops a worker cleanly: its running
trial is failed and re-queued, never left RUNNING.

The objective is a user's function named ``module:function`` (or ``path/file.py:function``).
Next to it, its module may define:

- ``space``: the :class:`~optuna_nas.spaces.SearchSpace` a named sampler such as
  ``controller`` searches;
- ``sampler``: an Optuna sampler, or ``sampler(seed)`` returning one (the worker's seed is
  the launch seed plus its index, so workers do not propose the same architectures);
- ``pruner``: an Optuna pruner, or ``pruner()`` returning one;
- ``direction``: ``"maximize"`` or ``"minimize"``, used when the study is created.

A sampler or pruner named on the command line wins over the module's.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import inspect
import json
import math
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
import traceback
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from types import FrameType, ModuleType
from typing import Any, TextIO

import optuna
import sqlalchemy.exc
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial, TrialState

from optuna_nas.errors import NasError, WorkerError
from optuna_nas.spaces import SearchSpace

__all__ = [
    "DEVICE_ENV",
    "PRUNERS",
    "STORAGE_ENV",
    "STORAGE_FILE_ENV",
    "WorkerConfig",
    "WorkerObjective",
    "WorkerReport",
    "add_storage_options",
    "current_device",
    "launch_workers",
    "load_objective",
    "make_pruner",
    "make_worker_sampler",
    "open_storage",
    "parse_devices",
    "redact_url",
    "resolve_storage_url",
    "run_worker",
]

STORAGE_ENV = "OPTUNA_NAS_STORAGE"
"""Environment variable holding the storage URL: credentials stay off the command line."""

STORAGE_FILE_ENV = "OPTUNA_NAS_STORAGE_FILE"
"""Environment variable naming a file whose first line is the storage URL."""

DEVICE_ENV = "OPTUNA_NAS_DEVICE"
"""Environment variable telling a worker process its device (``cpu`` or ``cuda:0``)."""

PRUNERS = ("none", "median", "asha", "hyperband")
"""Pruner names the command line knows."""

_CONFIG_ENV = "OPTUNA_NAS_WORKER_CONFIG"
_DONE = (TrialState.COMPLETE, TrialState.PRUNED)
_STORAGE_ATTEMPTS = 5
_STORAGE_ERRORS = (sqlalchemy.exc.SQLAlchemyError, optuna.exceptions.StorageInternalError)
_OPEN = (TrialState.RUNNING, TrialState.WAITING)


# ---- storage ------------------------------------------------------------------------------
def resolve_storage_url(
    storage: str | None = None, storage_file: str | os.PathLike[str] | None = None
) -> str:
    """The storage URL: from the argument, else a URL file, else the environment.

    A URL with a password on the command line is visible to every user of the machine
    (``ps``); keep it in a file only you can read, or in ``OPTUNA_NAS_STORAGE``.

    Args:
        storage: The URL itself.
        storage_file: A file whose first line (blank and ``#`` lines skipped) is the URL;
            ``OPTUNA_NAS_STORAGE_FILE`` by default.

    Returns:
        The URL.

    Raises:
        WorkerError: No URL is given anywhere, or the file cannot be read or is empty.
    """
    if storage is not None and storage.strip():
        return storage.strip()
    file = storage_file or os.environ.get(STORAGE_FILE_ENV, "").strip() or None
    if file:
        path = Path(file).expanduser()
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            reason = error.strerror if isinstance(error, OSError) else "not UTF-8 text"
            raise WorkerError(
                f"Cannot read the storage URL file {str(path)!r} ({reason}); write the URL "
                "on its first line, e.g. postgresql://user:password@host/db."
            ) from None
        lines = (line.strip() for line in text.splitlines())
        url = next((line for line in lines if line and not line.startswith("#")), "")
        if not url:
            raise WorkerError(
                f"The storage URL file {str(path)!r} holds no URL; write it on the first line."
            )
        if os.name == "posix" and path.stat().st_mode & 0o077:
            warnings.warn(
                f"The storage URL file {str(path)!r} can be read by other users; "
                f"`chmod 600 {path}` keeps its password yours.",
                UserWarning,
                stacklevel=2,
            )
        return url
    url = os.environ.get(STORAGE_ENV, "").strip()
    if url:
        return url
    raise WorkerError(
        "No storage given: pass --storage URL, or --storage-file FILE (a file holding the "
        f"URL), or set {STORAGE_ENV}. A URL with a password is best kept out of the "
        "command line."
    )


def add_storage_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--storage`` and ``--storage-file`` to a command line (read them with
    :func:`resolve_storage_url`)."""
    group = parser.add_argument_group(
        "storage",
        "Where the study lives. A URL with a password given with --storage is visible to "
        f"every user of the machine (ps); prefer --storage-file or {STORAGE_ENV}.",
    )
    group.add_argument(
        "--storage", default=None, help="storage URL, e.g. postgresql://user@host/db"
    )
    group.add_argument(
        "--storage-file",
        default=None,
        help=f"a file whose first line is the storage URL (chmod 600 it); default: "
        f"${STORAGE_FILE_ENV}, then ${STORAGE_ENV}",
    )


def redact_url(url: str) -> str:
    """The URL with its password replaced by ``***``, fit to print."""
    try:
        return sqlalchemy.engine.make_url(url).render_as_string(hide_password=True)
    except (sqlalchemy.exc.ArgumentError, ValueError):
        return url.split("@", 1)[-1] if "@" in url else url


def open_storage(
    url: str,
    *,
    heartbeat_interval: int | None = 60,
    grace_period: int | None = None,
    max_retry: int | None = 1,
) -> optuna.storages.RDBStorage:
    """An RDB storage for workers, with Optuna's heartbeats and stale-trial retries.

    A worker's running trial writes a heartbeat every ``heartbeat_interval`` seconds. Once
    it has written none for ``grace_period`` seconds (its process was killed, its machine
    lost), the next worker to start a trial fails it, and
    :class:`~optuna.storages.RetryHeartbeatStaleTrialCallback` queues it again with the same
    params: the same architecture, run by another worker.

    Args:
        url: A SQLAlchemy URL (``postgresql://...``, ``mysql://...``, ``sqlite:///...``).
        heartbeat_interval: Seconds between heartbeats; ``None`` turns them off.
        grace_period: Seconds without a heartbeat before a trial is stale; twice the
            interval by default.
        max_retry: How many times a stale trial is retried; ``None`` for no limit.

    Returns:
        The storage.

    Raises:
        WorkerError: The URL is malformed, its database driver is missing, or the database
            cannot be reached.
    """
    if heartbeat_interval is not None and heartbeat_interval < 1:
        raise WorkerError(f"heartbeat_interval must be at least 1 s, got {heartbeat_interval}.")
    if grace_period is not None and heartbeat_interval is not None:
        if grace_period <= heartbeat_interval:
            raise WorkerError(
                f"grace_period ({grace_period} s) must exceed heartbeat_interval "
                f"({heartbeat_interval} s), or every trial would look stale between beats."
            )
    if max_retry is not None and max_retry < 0:
        raise WorkerError(f"max_retry must be 0 or more, got {max_retry}.")
    heartbeats: dict[str, Any] = {}
    if heartbeat_interval is not None:
        heartbeats = dict(
            heartbeat_interval=heartbeat_interval,
            grace_period=grace_period,
            heartbeat_stale_trial_callback=_retry_callback(max_retry),
        )
    # A worker lives for days: check a pooled connection before use, so that a restarted
    # database server costs a reconnect, not a failed trial.
    engine_kwargs = {} if url.startswith("sqlite") else {"pool_pre_ping": True}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs, **heartbeats)
    except ImportError as error:
        raise WorkerError(
            f"The storage {redact_url(url)} needs a database driver that is not installed "
            f"({error}); e.g. `pip install psycopg2-binary` for PostgreSQL."
        ) from None
    except (sqlalchemy.exc.SQLAlchemyError, ValueError) as error:
        raise WorkerError(
            f"Cannot open the storage {redact_url(url)}: {_first_line(error)}. Check the URL "
            "(dialect://user:password@host:port/database) and that the server is up."
        ) from None


def _retry_callback(max_retry: int | None) -> RetryHeartbeatStaleTrialCallback:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return RetryHeartbeatStaleTrialCallback(max_retry=max_retry)


def _first_line(error: BaseException) -> str:
    original = getattr(error, "orig", None) or error
    text = str(original).strip().splitlines()
    return text[0] if text else type(error).__name__


# ---- the objective and what is defined next to it -----------------------------------------
@dataclass(frozen=True)
class WorkerObjective:
    """A user's objective, loaded from ``module:function``, and the module's settings.

    Args:
        spec: The ``module:function`` string it was loaded from.
        function: ``function(trial)``, or ``function(trial, device)`` when it has a
            parameter named ``device`` (then it receives a :class:`torch.device`).
        space: The module's ``space``, if it defines one.
        sampler: The module's ``sampler``: a sampler, a factory, or ``None``.
        pruner: The module's ``pruner``: a pruner, a factory, or ``None``.
        direction: The module's ``direction``, if it defines one.
    """

    spec: str
    function: Callable[..., Any]
    space: SearchSpace | None = None
    sampler: Any = None
    pruner: Any = None
    direction: str | None = None

    @property
    def takes_device(self) -> bool:
        """Whether the function has a ``device`` parameter."""
        try:
            return "device" in inspect.signature(self.function).parameters
        except (TypeError, ValueError):
            return False


def load_objective(spec: str) -> WorkerObjective:
    """Import a user's objective from ``module:function`` or ``path/to/file.py:function``.

    A module name is looked up from the current folder first, as ``python -m`` does.

    Args:
        spec: Where the objective is.

    Returns:
        The objective with the module's ``space``, ``sampler``, ``pruner`` and
        ``direction``.

    Raises:
        WorkerError: The spec is malformed, the module or the function does not exist, or
            importing the module failed.
    """
    module_name, colon, name = spec.rpartition(":")
    if not colon or not module_name or not name.isidentifier():
        raise WorkerError(
            f"Objective {spec!r} is not of the form module:function; e.g. "
            "my_search:objective, or path/to/search.py:objective."
        )
    module = _import_module(module_name)
    function = getattr(module, name, None)
    if function is None:
        defined = sorted(
            k
            for k, v in vars(module).items()
            if callable(v)
            and not k.startswith("_")
            and getattr(v, "__module__", "") == module.__name__
        )
        raise WorkerError(
            f"Module {module_name!r} defines no {name!r}; its functions are {defined}."
        )
    if not callable(function):
        raise WorkerError(f"{spec!r} is a {type(function).__name__}, not a function.")
    space = getattr(module, "space", None)
    if space is not None and not isinstance(space, SearchSpace):
        raise WorkerError(
            f"Module {module_name!r} defines `space` as a {type(space).__name__}; make it an "
            "optuna_nas SearchSpace (e.g. NasBench201Space()) or rename it."
        )
    direction = getattr(module, "direction", None)
    if direction is not None and direction not in ("maximize", "minimize"):
        raise WorkerError(
            f"Module {module_name!r} defines direction={direction!r}; use 'maximize' or "
            "'minimize'."
        )
    return WorkerObjective(
        spec=spec,
        function=function,
        space=space,
        sampler=getattr(module, "sampler", None),
        pruner=getattr(module, "pruner", None),
        direction=direction,
    )


def _import_module(module_name: str) -> ModuleType:
    is_file = module_name.endswith(".py") or os.sep in module_name or "/" in module_name
    try:
        if is_file:
            path = Path(module_name).expanduser().resolve()
            if not path.is_file():
                raise WorkerError(
                    f"The objective's file {module_name!r} does not exist (looked at {path})."
                )
            # Its neighbours import as they would when the file runs as a script.
            if str(path.parent) not in sys.path:
                sys.path.insert(0, str(path.parent))
            spec = importlib.util.spec_from_file_location(path.stem, path)
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            sys.modules[path.stem] = module
            spec.loader.exec_module(module)
            return module
        if "" not in sys.path and os.getcwd() not in sys.path:
            sys.path.insert(0, os.getcwd())
        return importlib.import_module(module_name)
    except WorkerError:
        raise
    except ModuleNotFoundError as error:
        missing = error.name or ""
        if not is_file and (module_name == missing or module_name.startswith(missing + ".")):
            raise WorkerError(
                f"No module named {module_name!r} (looked in {os.getcwd()} and sys.path); run "
                "the worker from the folder that holds it, or give its file: "
                "path/to/file.py:function."
            ) from None
        raise WorkerError(
            f"Importing the objective's module {module_name!r} failed: it imports "
            f"{missing!r}, which is not installed."
        ) from None
    except Exception as error:  # noqa: BLE001 - the user's module raised while importing
        where = traceback.extract_tb(error.__traceback__)[-1]
        raise WorkerError(
            f"Importing the objective's module {module_name!r} raised "
            f"{type(error).__name__}: {error} (at {where.filename}:{where.lineno})."
        ) from None


def make_worker_sampler(
    objective: WorkerObjective, name: str | None, seed: int | None
) -> optuna.samplers.BaseSampler | None:
    """The worker's sampler: named on the command line, else the module's, else ``None``.

    Args:
        objective: The loaded objective (its module's ``space`` and ``sampler``).
        name: A registered sampler name (``random``, ``tpe``, ``controller``, ...), or
            ``None``.
        seed: The worker's seed; ``None`` draws one.

    Returns:
        The sampler, or ``None`` for Optuna's default.

    Raises:
        WorkerError: The name is unknown, needs a ``space`` the module does not define,
            or the module's ``sampler`` is not a sampler.
    """
    from optuna_nas.benchmarks._samplers import UnknownSamplerError, make_sampler

    if name is not None:
        try:
            return make_sampler(
                name, seed if seed is not None else secrets.randbelow(2**31), objective.space
            )
        except UnknownSamplerError as error:
            if "needs the search space" in str(error):
                raise WorkerError(
                    f"Sampler {name!r} searches an architecture space: define `space = ...` "
                    f"(e.g. NasBench201Space()) in the objective's module {objective.spec!r}."
                ) from None
            raise WorkerError(str(error)) from None
    value = objective.sampler
    if value is None or isinstance(value, optuna.samplers.BaseSampler):
        return value
    if callable(value):
        made = _call_with_optional(value, seed)
        if isinstance(made, optuna.samplers.BaseSampler):
            return made
        value = made
    raise WorkerError(
        f"The `sampler` next to {objective.spec!r} gives a {type(value).__name__}; define an "
        "Optuna sampler or a function sampler(seed) returning one."
    )


def make_pruner(objective: WorkerObjective, name: str | None) -> optuna.pruners.BasePruner | None:
    """The worker's pruner: named on the command line, else the module's, else ``None``.

    Args:
        objective: The loaded objective (its module's ``pruner``).
        name: One of :data:`PRUNERS`, or ``None``. ``asha`` is Optuna's
            SuccessiveHalvingPruner, ``none`` turns pruning off.

    Returns:
        The pruner, or ``None`` for Optuna's default.

    Raises:
        WorkerError: The name is unknown, or the module's ``pruner`` is not a pruner.
    """
    if name is not None:
        made: dict[str, Callable[[], optuna.pruners.BasePruner]] = {
            "none": optuna.pruners.NopPruner,
            "median": optuna.pruners.MedianPruner,
            "asha": optuna.pruners.SuccessiveHalvingPruner,
            "hyperband": optuna.pruners.HyperbandPruner,
        }
        if name not in made:
            raise WorkerError(f"Unknown pruner {name!r}; choose one of {', '.join(PRUNERS)}.")
        return made[name]()
    value = objective.pruner
    if value is None or isinstance(value, optuna.pruners.BasePruner):
        return value
    if callable(value):
        value = value()
        if isinstance(value, optuna.pruners.BasePruner):
            return value
    raise WorkerError(
        f"The `pruner` next to {objective.spec!r} gives a {type(value).__name__}; define an "
        "Optuna pruner or a function pruner() returning one."
    )


def _call_with_optional(factory: Callable[..., Any], seed: int | None) -> Any:
    try:
        takes_seed = bool(inspect.signature(factory).parameters)
    except (TypeError, ValueError):
        takes_seed = True
    return factory(seed) if takes_seed else factory()


# ---- devices ------------------------------------------------------------------------------
def parse_devices(devices: str | Sequence[str]) -> list[str]:
    """Check a device list: ``cpu`` or ``cuda:N`` (``cuda`` is ``cuda:0``), repeats allowed.

    Args:
        devices: ``"cuda:0,cuda:1"``, ``"cpu,cpu"`` or a list of such names.

    Returns:
        The devices, one per worker process.

    Raises:
        WorkerError: A name is malformed, or names a GPU this machine does not have.
    """
    names = devices.split(",") if isinstance(devices, str) else list(devices)
    parsed: list[str] = []
    for raw in names:
        name = raw.strip().lower()
        if name == "cuda":
            name = "cuda:0"
        kind, _, index = name.partition(":")
        if name == "cpu":
            parsed.append(name)
        elif kind == "cuda" and index.isdigit():
            parsed.append(f"cuda:{int(index)}")
        else:
            raise WorkerError(
                f"Unknown device {raw!r}; give cpu or cuda:N, comma-separated, one per "
                "worker process (e.g. --devices cuda:0,cuda:1 or --devices cpu,cpu)."
            )
    if not parsed:
        raise WorkerError("No device given; e.g. --devices cuda:0,cuda:1 or --devices cpu.")
    gpus = [int(d.split(":")[1]) for d in parsed if d.startswith("cuda")]
    if gpus:
        import torch

        count = torch.cuda.device_count()
        missing = sorted({g for g in gpus if g >= count})
        if missing:
            raise WorkerError(
                f"--devices asks for GPU(s) {missing}, but this machine has {count} visible "
                "GPU(s); use --devices cpu,... to run on the CPU."
            )
    return parsed


def current_device() -> Any:
    """This worker's :class:`torch.device`: its own GPU as ``cuda:0``, or the CPU.

    Outside a worker process it is the first GPU if there is one, else the CPU.
    """
    import torch

    name = os.environ.get(DEVICE_ENV)
    if name:
        return torch.device(name)
    return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")


# ---- one worker process -------------------------------------------------------------------
class _StopRequested(KeyboardInterrupt):
    """Raised inside the objective when the worker is asked to stop."""


@dataclass
class _Stopper:
    # SIGINT/SIGTERM set `requested`. Inside the objective they also raise, so that Optuna
    # fails the trial; elsewhere (inside a storage call) raising could leave a transaction
    # half done, so the loop stops at its next check instead. A second signal always raises.
    requested: bool = False
    in_objective: bool = False
    signals: int = 0

    def handle(self, signum: int, frame: FrameType | None) -> None:
        self.signals += 1
        self.requested = True
        if self.in_objective or self.signals > 1:
            raise _StopRequested(signal.Signals(signum).name)

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield  # Python delivers signals to the main thread only: nothing to handle here.
            return
        previous = {s: signal.signal(s, self.handle) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)

    def sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self.requested and time.monotonic() < deadline:
            time.sleep(min(0.1, seconds))


@dataclass
class WorkerReport:
    """What one worker process did.

    Args:
        label: The worker's name in the terminal (``cpu#0``, ``cuda:1``).
        complete: Trials it completed.
        pruned: Trials it pruned.
        failed: Trials that failed (the objective raised or returned no number).
        interrupted: Trials a stop signal interrupted; each was re-queued.
        reason: Why it stopped.
    """

    label: str
    complete: int = 0
    pruned: int = 0
    failed: int = 0
    interrupted: int = 0
    reason: str = ""

    @property
    def ok(self) -> bool:
        """Whether it stopped for a normal reason (not repeated failures)."""
        return not self.reason.startswith("gave up")

    def line(self) -> str:
        """A one-line summary."""
        return (
            f"[{self.label}] stopped: {self.reason}. Ran {self.complete} complete, "
            f"{self.pruned} pruned, {self.failed} failed, {self.interrupted} interrupted "
            "trial(s)."
        )


@dataclass
class _Counts:
    done: int = 0
    running: int = 0
    waiting: int = 0
    best: FrozenTrial | None = None


def _counts(study: optuna.Study) -> _Counts:
    # One read of the study per trial: Optuna's storage cache serves the finished trials
    # from memory, so the counts and the best trial cost a query for the unfinished ones.
    counts = _Counts()
    maximize = study.directions[0] == optuna.study.StudyDirection.MAXIMIZE
    single = len(study.directions) == 1
    for t in study._storage.get_all_trials(
        study._study_id, deepcopy=False, states=(*_DONE, *_OPEN)
    ):
        if t.state in _DONE:
            counts.done += 1
            if single and t.state == TrialState.COMPLETE and t.values:
                if (
                    counts.best is None
                    or (maximize and t.values[0] > counts.best.values[0])
                    or (not maximize and t.values[0] < counts.best.values[0])
                ):
                    counts.best = t
        elif t.state == TrialState.RUNNING:
            counts.running += 1
        else:
            counts.waiting += 1
    return counts


def _fail_stale_trials(study: optuna.Study) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


def _requeue(study: optuna.Study, trial_id: int) -> int | None:
    """Fail an interrupted trial if it is still running, and queue its params again."""
    storage = study._storage
    trial = storage.get_trial(trial_id)
    if trial.state == TrialState.RUNNING:
        with contextlib.suppress(UpdateFinishedTrialError):
            storage.set_trial_state_values(trial_id, TrialState.FAIL)
        trial = storage.get_trial(trial_id)
    if trial.state != TrialState.FAIL:
        return None  # it finished after all
    # The same callback as a heartbeat-stale trial, without a limit: an interruption is not
    # the trial's fault.
    _retry_callback(None)(study, trial)
    return trial.number


def _format_values(trial: FrozenTrial) -> str:
    values = trial.values or []
    return ", ".join(f"{v:.6g}" for v in values)


def run_worker(
    study: optuna.Study,
    objective: WorkerObjective | Callable[..., Any],
    *,
    n_trials: int | None = None,
    device: str | None = None,
    label: str = "worker",
    timeout: float | None = None,
    max_failures: int = 5,
    poll_interval: float = 1.0,
    handle_signals: bool = True,
    parent_pid: int | None = None,
    out: TextIO | None = None,
) -> WorkerReport:
    """Run trials of a study until it holds ``n_trials`` finished trials, or a stop.

    Several workers, on one machine or many, run the same study through its storage.
    Finished means COMPLETE or PRUNED: a failed trial does not count, so a study whose
    worker was killed still reaches its count (the killed trial is retried once it is
    stale). While the study's last trials run elsewhere, a worker waits for them, and
    retries one that goes stale.

    Args:
        study: The study, loaded with this worker's sampler and pruner.
        objective: The objective (``function(trial)`` or ``function(trial, device)``).
        n_trials: Finished trials the study should hold; ``None`` runs until stopped.
        device: The device handed to an objective that takes one; this worker's own
            by default (:func:`current_device`).
        label: The worker's name in progress lines.
        timeout: Seconds after which no new trial starts.
        max_failures: Consecutive failed trials after which the worker gives up.
        poll_interval: Seconds between checks while waiting for other workers' trials.
        handle_signals: Stop cleanly on SIGINT/SIGTERM (in the main thread; elsewhere
            nothing is installed).
        parent_pid: Stop when the launcher with this pid has gone.
        out: Where progress lines go; standard output by default.

    Returns:
        What the worker did and why it stopped.
    """
    if not isinstance(objective, WorkerObjective):
        objective = WorkerObjective(spec=getattr(objective, "__name__", "objective"),
                                    function=objective)
    if max_failures < 1:
        raise WorkerError(f"max_failures must be at least 1, got {max_failures}.")
    stream = out if out is not None else sys.stdout
    report = WorkerReport(label=label)
    stopper = _Stopper()
    started = time.monotonic()
    failures_in_a_row = 0
    current: dict[str, Any] = {}
    target = "∞" if n_trials is None else str(n_trials)
    handed_device = current_device() if device is None else device
    if objective.takes_device and isinstance(handed_device, str):
        import torch

        handed_device = torch.device(handed_device)

    def say(text: str) -> None:
        print(f"[{label}] {text}", file=stream, flush=True)

    def wrapped(trial: optuna.Trial) -> Any:
        current["id"], current["number"], current["error"] = trial._trial_id, trial.number, None
        if stopper.requested:
            raise _StopRequested("stop requested before the trial started")
        stopper.in_objective = True
        try:
            if objective.takes_device:
                return objective.function(trial, device=handed_device)
            return objective.function(trial)
        except Exception as error:
            current["error"] = error
            raise
        finally:
            stopper.in_objective = False

    def progress(study: optuna.Study, trial: FrozenTrial) -> None:
        retry = trial.system_attrs.get("failed_trial")
        note = f" (retry of trial {retry})" if retry is not None else ""
        seconds = trial.duration.total_seconds() if trial.duration else 0.0
        if trial.state == TrialState.COMPLETE:
            what = f"complete, value {_format_values(trial)}"
        elif trial.state == TrialState.PRUNED:
            step = max(trial.intermediate_values, default=None)
            what = "pruned" + (f" at step {step}" if step is not None else "")
        else:
            error = current.get("error")
            if error is None:
                what = "failed: the objective returned no finite number"
            elif isinstance(error, NasError):
                what = f"failed: {type(error).__name__}: {error}"
            else:
                # A bug in the user's objective: its traceback is the useful sentence.
                stream.write("".join(traceback.format_exception(error)))
                what = f"failed: {type(error).__name__}: {error}"
        counts = _counts(study)
        current["counts"], current["state"] = counts, trial.state
        best = ""
        if counts.best is not None:
            best = f", best {counts.best.values[0]:.6g} (trial {counts.best.number})"
        say(
            f"trial {trial.number}{note} {what} in {seconds:.1f} s | study: "
            f"{counts.done}/{target} finished{best}"
        )

    handlers = stopper.installed() if handle_signals else contextlib.nullcontext()
    def step() -> str | None:
        # One turn of the loop: wait, or run one trial. Returns why to stop, if it is time.
        nonlocal failures_in_a_row
        if n_trials is not None:
            # The counts the last trial's progress line read, else a fresh read.
            counts = current.get("counts") or _counts(study)
            if counts.done >= n_trials:
                return f"the study holds {counts.done} finished trials"
            if counts.waiting == 0 and counts.done + counts.running >= n_trials:
                # The last trials run elsewhere: wait, and retry any that goes stale.
                current.clear()
                _fail_stale_trials(study)
                stopper.sleep(poll_interval)
                return None
        current.clear()
        try:
            study.optimize(wrapped, n_trials=1, catch=(Exception,), callbacks=[progress])
        except _StopRequested:
            report.interrupted += 1
            number = _requeue(study, current["id"]) if "id" in current else None
            if number is not None:
                say(f"trial {number} interrupted; failed and queued again with its params")
            return "asked to stop"
        if current.get("id") is None:
            return None
        state = current.get("state") or study._storage.get_trial(current["id"]).state
        if state == TrialState.COMPLETE:
            report.complete += 1
            failures_in_a_row = 0
        elif state == TrialState.PRUNED:
            report.pruned += 1
            failures_in_a_row = 0
        else:
            report.failed += 1
            failures_in_a_row += 1
            if failures_in_a_row >= max_failures:
                return (
                    f"gave up after {failures_in_a_row} failed trials in a row; the "
                    "objective looks broken: fix it (see the errors above) and start the "
                    "worker again"
                )
        return None

    storage_errors = 0
    with handlers:
        while not report.reason:
            if stopper.requested:
                report.reason = "asked to stop"
            elif parent_pid is not None and os.getppid() != parent_pid:
                report.reason = "its launcher has exited"
            elif timeout is not None and time.monotonic() - started >= timeout:
                report.reason = f"timeout of {timeout:g} s"
            else:
                try:
                    report.reason = step() or ""
                    storage_errors = 0
                except _STORAGE_ERRORS as error:
                    # A busy or restarting database: wait and go on. A trial it cut off
                    # stays RUNNING until its heartbeat is stale, then is retried.
                    storage_errors += 1
                    if storage_errors > _STORAGE_ATTEMPTS:
                        report.reason = (
                            f"gave up: the storage failed {_STORAGE_ATTEMPTS} times in a row "
                            f"({_first_line(error)})"
                        )
                        break
                    pause = min(30.0, 2.0**storage_errors)
                    say(f"storage error ({_first_line(error)}); trying again in {pause:g} s")
                    current.clear()
                    stopper.sleep(pause)
    return report


# ---- the launcher -------------------------------------------------------------------------
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
    direction = config.direction or objective.direction
    try:
        existing = optuna.load_study(study_name=config.study_name, storage=storage)
    except KeyError:
        existing = None
    if existing is None:
        if direction is None:
            raise WorkerError(
                f"The study {config.study_name!r} does not exist yet, so it needs a direction: "
                "pass --direction maximize (or minimize), or define direction = 'maximize' "
                "next to the objective."
            )
        return optuna.create_study(
            study_name=config.study_name,
            storage=storage,
            direction="maximize" if direction == "maximize" else "minimize",
            load_if_exists=True,
        )
    if direction is not None and len(existing.directions) == 1:
        have = existing.direction.name.lower()
        if have != direction:
            raise WorkerError(
                f"The study {config.study_name!r} exists and is to {have}, not to {direction}; "
                "drop --direction, or give a new study name."
            )
    return existing


def _child_env(device: str, index: int, n_cpu_workers: int) -> dict[str, str]:
    env = dict(os.environ)
    env.pop(STORAGE_FILE_ENV, None)
    if device.startswith("cuda"):
        # Each process sees its own GPU only, as cuda:0; the parent's own
        # CUDA_VISIBLE_DEVICES, if any, is what cuda:N counts in.
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        gpu = int(device.split(":")[1])
        if visible:
            ids = [v.strip() for v in visible.split(",") if v.strip()]
            env["CUDA_VISIBLE_DEVICES"] = ids[gpu] if gpu < len(ids) else str(gpu)
        else:
            env["CUDA_VISIBLE_DEVICES"] = str(gpu)
        env[DEVICE_ENV] = "cuda:0"
    else:
        env["CUDA_VISIBLE_DEVICES"] = ""
        env[DEVICE_ENV] = "cpu"
        if "OMP_NUM_THREADS" not in os.environ:
            # CPU workers share the cores instead of each spinning threads on all of them.
            cores = os.cpu_count() or 1
            env["OMP_NUM_THREADS"] = str(max(1, cores // max(1, n_cpu_workers)))
    return env


def launch_workers(
    config: WorkerConfig,
    devices: str | Sequence[str],
    *,
    storage_url: str,
    stop_timeout: float = 20.0,
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
    names = parse_devices(devices)
    objective = load_objective(config.objective)
    # Build the sampler and pruner once here, so that a bad name fails before any start.
    make_worker_sampler(objective, config.sampler, config.seed)
    make_pruner(objective, config.pruner)
    storage = _open(config, storage_url)
    study = _create_or_load_study(config, storage, objective)
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
    processes: list[subprocess.Popen[bytes]] = []
    labels: list[str] = []
    for index, device in enumerate(names):
        label = f"cpu#{index}" if device == "cpu" else device
        env = _child_env(device, index, n_cpu)
        env[STORAGE_ENV] = storage_url
        env[_CONFIG_ENV] = json.dumps(
            {**asdict(config), "index": index, "label": label, "parent": os.getpid()}
        )
        # Own session: a terminal's Ctrl-C reaches the launcher only, which passes one
        # SIGTERM on, instead of every process receiving it twice.
        processes.append(
            subprocess.Popen([sys.executable, "-m", "optuna_nas.worker"], env=env,
                             start_new_session=True)
        )
        labels.append(label)

    received: list[int] = []

    def forward(signum: int, frame: FrameType | None) -> None:
        received.append(signum)
        for process in processes:
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(signal.SIGTERM)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    reported: set[int] = set()
    try:
        deadline: float | None = None
        while any(p.poll() is None for p in processes):
            for index, (process, label) in enumerate(zip(processes, labels, strict=True)):
                code = process.poll()
                if code is not None and code < 0 and index not in reported and not received:
                    reported.add(index)
                    print(
                        f"[{label}] was killed by {signal.Signals(-code).name}; the other "
                        "workers retry its trial once its heartbeat is stale.",
                        file=stream, flush=True,
                    )
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
    codes = [p.returncode for p in processes]
    return 0 if all(code == 0 for code in codes) else 1


def _child_main() -> int:
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


if __name__ == "__main__":
    sys.exit(_child_main())
