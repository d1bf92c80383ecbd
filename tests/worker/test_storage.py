"""Storage URLs kept off the command line, and RDB storages with heartbeats."""

from __future__ import annotations

from pathlib import Path

import pytest

from optuna_nas.errors import WorkerError
from optuna_nas.worker import (
    STORAGE_ENV,
    STORAGE_FILE_ENV,
    open_storage,
    redact_url,
    resolve_storage_url,
)
from tests._postgres import postgres_study_name, postgres_url, storage  # noqa: F401


def test_the_storage_url_comes_from_the_argument_a_file_or_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(STORAGE_ENV, raising=False)
    monkeypatch.delenv(STORAGE_FILE_ENV, raising=False)
    with pytest.raises(WorkerError, match="--storage-file"):
        resolve_storage_url()
    monkeypatch.setenv(STORAGE_ENV, "sqlite:///from-env.db")
    assert resolve_storage_url() == "sqlite:///from-env.db"
    file = tmp_path / "url"
    file.write_text("# the study's database\n\n  postgresql://u:secret@db/nas  \n")
    file.chmod(0o600)
    assert resolve_storage_url(storage_file=file) == "postgresql://u:secret@db/nas"
    monkeypatch.setenv(STORAGE_FILE_ENV, str(file))
    assert resolve_storage_url() == "postgresql://u:secret@db/nas"
    assert resolve_storage_url("sqlite:///arg.db") == "sqlite:///arg.db"
    file.chmod(0o644)
    with pytest.warns(UserWarning, match="chmod 600"):
        resolve_storage_url(storage_file=file)
    with pytest.raises(WorkerError, match="holds no URL"):
        (tmp_path / "empty").write_text("# nothing\n")
        resolve_storage_url(storage_file=tmp_path / "empty")
    with pytest.raises(WorkerError, match="Cannot read the storage URL file"):
        resolve_storage_url(storage_file=tmp_path / "missing")


def test_a_printed_url_hides_its_password() -> None:
    shown = redact_url("postgresql+psycopg2://optuna:hunter2@db.example:5432/nas")
    assert "hunter2" not in shown and "db.example" in shown
    assert redact_url("sqlite:///nas.db") == "sqlite:///nas.db"


def test_open_storage_turns_heartbeats_on_and_says_what_is_wrong(tmp_path: Path) -> None:
    rdb = open_storage(f"sqlite:///{tmp_path / 'a.db'}", heartbeat_interval=2, max_retry=1)
    assert rdb.get_heartbeat_interval() == 2
    assert rdb.get_heartbeat_stale_trial_callback() is not None
    rdb.engine.dispose()
    off = open_storage(f"sqlite:///{tmp_path / 'b.db'}", heartbeat_interval=None)
    assert off.get_heartbeat_interval() is None
    off.engine.dispose()
    with pytest.raises(WorkerError, match="Cannot open the storage"):
        open_storage("not a url")
    with pytest.raises(WorkerError, match="Cannot open the storage"):
        open_storage("nosuchdialect://x/y")
    with pytest.raises(WorkerError, match="must exceed heartbeat_interval"):
        open_storage(f"sqlite:///{tmp_path / 'c.db'}", heartbeat_interval=10, grace_period=5)
    with pytest.raises(WorkerError, match="at least 1 s"):
        open_storage(f"sqlite:///{tmp_path / 'c.db'}", heartbeat_interval=0)


def test_an_unreachable_server_gets_a_sentence_without_its_password() -> None:
    with pytest.raises(WorkerError, match="Cannot open the storage") as caught:
        open_storage("postgresql+psycopg2://u:hunter2@127.0.0.1:9/nas")
    assert "hunter2" not in str(caught.value)
