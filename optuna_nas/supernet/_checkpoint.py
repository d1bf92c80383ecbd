"""Supernet checkpoints: atomic files, or an Optuna artifact store next to the study."""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path
from typing import Any

import optuna
import torch
from optuna.artifacts._protocol import ArtifactStore

__all__ = ["CHECKPOINT_ATTR", "CheckpointTarget", "load_checkpoint", "save_checkpoint"]

CHECKPOINT_ATTR = "optuna_nas:supernet:checkpoint"
"""Study system attr holding the artifact id of the latest checkpoint (artifact stores)."""

CheckpointTarget = str | os.PathLike[str] | ArtifactStore


def _write_atomically(path: Path, state: dict[str, Any]) -> None:
    # Write a temporary file in the same folder, then rename it over the old checkpoint: a
    # kill during the save leaves the previous checkpoint whole.
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_checkpoint(
    target: CheckpointTarget, state: dict[str, Any], study: optuna.Study | None
) -> None:
    """Save ``state`` to a file (atomically) or to an artifact store attached to ``study``."""
    if isinstance(target, (str, os.PathLike)):
        _write_atomically(Path(target), state)
        return
    if study is None:
        raise ValueError("Saving a checkpoint to an artifact store needs the study.")
    with tempfile.TemporaryDirectory() as folder:
        file = Path(folder) / "supernet.pt"
        torch.save(state, file)
        new = optuna.artifacts.upload_artifact(
            artifact_store=target, file_path=str(file), study_or_trial=study
        )
    system_attrs = study._storage.get_study_system_attrs(study._study_id)
    old = system_attrs.get(CHECKPOINT_ATTR)
    study._storage.set_study_system_attr(study._study_id, CHECKPOINT_ATTR, new)
    if isinstance(old, str) and old != new:
        try:
            target.remove(old)
        except Exception:  # noqa: BLE001 - an old checkpoint left behind is harmless
            pass


def load_checkpoint(
    target: CheckpointTarget, study: optuna.Study | None
) -> dict[str, Any] | None:
    """The latest checkpoint, or ``None`` if there is none yet."""
    if isinstance(target, (str, os.PathLike)):
        path = Path(target)
        if not path.exists():
            return None
        try:
            state: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # noqa: BLE001 - any unreadable file gets one message
            raise ValueError(
                f"The supernet checkpoint {str(path)!r} cannot be read ({error}); delete it "
                "to start the weight-sharing search afresh."
            ) from None
        return state
    if study is None:
        return None
    artifact_id = study._storage.get_study_system_attrs(study._study_id).get(CHECKPOINT_ATTR)
    if not isinstance(artifact_id, str):
        return None
    with target.open_reader(artifact_id) as reader:
        buffer = io.BytesIO(reader.read())
    state = torch.load(buffer, map_location="cpu", weights_only=True)
    return state
