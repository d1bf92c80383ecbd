"""Storage URLs (kept off the command line) and RDB storages with heartbeats."""

from __future__ import annotations

import argparse
import os
import warnings
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy.exc
from optuna.storages import RetryHeartbeatStaleTrialCallback

from optuna_nas.errors import WorkerError

STORAGE_ENV = "OPTUNA_NAS_STORAGE"
"""Environment variable holding the storage URL: credentials stay off the command line."""

STORAGE_FILE_ENV = "OPTUNA_NAS_STORAGE_FILE"
"""Environment variable naming a file whose first line is the storage URL."""



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

