"""PostgreSQL for tests that need a real RDB server: the URL, and fresh studies on it.

The server's URL comes from ``OPTUNA_NAS_TEST_POSTGRES_URL`` (``.ci/run`` installs and
starts PostgreSQL and sets it, e.g.
``postgresql+psycopg2://optuna:optuna@127.0.0.1:5432/optuna_test``). Without it a test
that needs the server is skipped, except in CI (``CI=true``), where it fails: a service
test may skip on a developer's machine, never in CI.

Use the fixtures by importing them into a test module::

    from tests._postgres import postgres_study_name, postgres_url  # noqa: F401

``postgres_study_name`` gives a fresh study name (a UUID) and deletes the study, if one
was made under it, when the test ends.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import optuna
import pytest

ENV_VAR = "OPTUNA_NAS_TEST_POSTGRES_URL"

ENGINE_KWARGS: dict[str, Any] = {
    # Tests need no durability across a server crash: skip the fsync per commit.
    "connect_args": {"options": "-c synchronous_commit=off"},
}
"""``engine_kwargs`` for :class:`optuna.storages.RDBStorage` on the test server."""


def require_postgres_url() -> str:
    """The test server's URL; skip the test without one, or fail it in CI.

    Returns:
        The SQLAlchemy URL from ``OPTUNA_NAS_TEST_POSTGRES_URL``.
    """
    url = os.environ.get(ENV_VAR, "").strip()
    if url:
        return url
    message = (
        f"{ENV_VAR} is not set: this test needs a PostgreSQL server "
        "(`.ci/run` installs and starts one)."
    )
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message} CI=true, so the test must not be skipped.")
    pytest.skip(message)


def storage(url: str) -> optuna.storages.RDBStorage:
    """An RDB storage on the test server, without a sync per commit."""
    return optuna.storages.RDBStorage(url, engine_kwargs=ENGINE_KWARGS)


def delete_study_if_present(url: str, study_name: str) -> None:
    """Delete a study from the server; nothing happens if it does not exist.

    Args:
        url: The server's URL.
        study_name: The study to delete.
    """
    rdb = storage(url)
    try:
        optuna.delete_study(study_name=study_name, storage=rdb)
    except KeyError:  # No study of that name: the test made none, or removed it.
        pass
    finally:
        rdb.engine.dispose()


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The PostgreSQL URL from ``OPTUNA_NAS_TEST_POSTGRES_URL`` (skip locally, fail in CI)."""
    return require_postgres_url()


@pytest.fixture
def postgres_study_name(postgres_url: str) -> Iterator[str]:
    """A fresh study name on the server; the study is deleted after the test."""
    name = f"optuna-nas-test-{uuid.uuid4()}"
    yield name
    delete_study_if_present(postgres_url, name)
