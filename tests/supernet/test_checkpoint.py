"""Supernet checkpoints are written atomically: a SIGKILL in the middle of a save leaves the
previous checkpoint whole and loadable, and the next save and load work.

A child process saves checkpoint A, then starts saving B with ``torch.save`` wrapped so that
it writes half of B's bytes, touches a marker file and hangs. The test waits for the
marker, kills the child with SIGKILL and checks what is left on disk: once with
``save_checkpoint`` itself, once through ``WeightSharingObjective.save()`` with a tiny
supernet.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from torch.utils.data import TensorDataset

from optuna_nas import seed_everything
from optuna_nas.data import ImageData
from optuna_nas.spaces import NasBench201Space
from optuna_nas.supernet import Supernet, WeightSharingObjective
from optuna_nas.supernet._checkpoint import load_checkpoint, save_checkpoint

TINY = {"channels": 8, "cells_per_stage": 1, "in_channels": 1}
OBJECTIVE = {"steps_per_trial": 3, "eval_batches": 2, "lr": 0.05}

CHILD = """
import io, os, shutil, sys, time
from pathlib import Path

import torch

mode, path, marker, reference = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4]
torch.set_num_threads(1)


def hang_in_the_middle(obj, f, *args, **kwargs):
    # Serialise for real, write half the bytes to the file being saved, flush them to disk,
    # say so, and hang until killed.
    buffer = io.BytesIO()
    real_save(obj, buffer, *args, **kwargs)
    data = buffer.getvalue()
    f.write(data[: len(data) // 2])
    f.flush()
    os.fsync(f.fileno())
    Path(str(marker) + ".size").write_text(str(len(data)))
    marker.write_text("in the middle of the save")
    time.sleep(600)


real_save = torch.save
if mode == "save_checkpoint":
    from optuna_nas.supernet._checkpoint import save_checkpoint

    state_a = {"step": 1, "weights": torch.arange(10_000, dtype=torch.float32)}
    save_checkpoint(path, state_a, None)
    shutil.copyfile(path, reference)
    torch.save = hang_in_the_middle
    save_checkpoint(path, {"step": 2, "weights": torch.randn(1_000_000)}, None)
else:
    from torch.utils.data import TensorDataset

    from optuna_nas import seed_everything
    from optuna_nas.data import ImageData
    from optuna_nas.spaces import NasBench201Space
    from optuna_nas.supernet import Supernet, WeightSharingObjective

    split = TensorDataset(torch.randn(16, 1, 8, 8), torch.arange(16) % 10)
    seed_everything(0)
    objective = WeightSharingObjective(
        Supernet(NasBench201Space(), **TINY), ImageData(split, split, None, 10, 1, 8),
        checkpoint=path, **OBJECTIVE,
    )
    objective.save()
    shutil.copyfile(path, reference)
    with torch.no_grad():
        for parameter in objective.supernet.parameters():
            parameter.add_(1.0)
    objective.step, objective.trials = 30, 10
    torch.save = hang_in_the_middle
    objective.save()
raise SystemExit("the save returned instead of hanging")
"""


def _kill_in_the_middle_of_a_save(mode: str, tmp_path: Path) -> tuple[Path, Path, int]:
    """Run the child until it hangs half-way through saving B, SIGKILL it; return the
    checkpoint path, the copy of checkpoint A, and the size B would have had."""
    path = tmp_path / "checkpoints" / "supernet.pt"
    marker, reference = tmp_path / "marker", tmp_path / "a.pt"
    script = tmp_path / "child.py"
    script.write_text(f"TINY = {TINY!r}\nOBJECTIVE = {OBJECTIVE!r}\n" + textwrap.dedent(CHILD))
    process = subprocess.Popen(
        [sys.executable, str(script), mode, str(path), str(marker), str(reference)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():
            if process.poll() is not None:
                output = process.stdout.read().decode() if process.stdout else ""
                pytest.fail(f"the child exited ({process.returncode}) before hanging:\n{output}")
            if time.monotonic() > deadline:
                pytest.fail("the child did not reach the middle of the save in two minutes")
            time.sleep(0.02)
        # In the middle of the save: the destination still holds A, byte for byte.
        assert path.read_bytes() == reference.read_bytes()
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
        if process.stdout:
            process.stdout.close()
    assert process.returncode == -signal.SIGKILL
    return path, reference, int(Path(f"{marker}.size").read_text())


def _leftovers(path: Path) -> list[Path]:
    return sorted(path.parent.glob(f".{path.name}.*.tmp"))


def _check_killed_save(path: Path, reference: Path, full_size: int) -> None:
    """The destination is A, whole; B's half-written bytes are only in a temporary file."""
    assert path.read_bytes() == reference.read_bytes()
    partial = _leftovers(path)
    assert len(partial) == 1, partial
    assert 0 < partial[0].stat().st_size < full_size  # the kill did land mid-save
    assert sorted(p.name for p in path.parent.iterdir()) == sorted([path.name, partial[0].name])


def test_a_kill_during_save_checkpoint_leaves_the_previous_checkpoint(tmp_path: Path) -> None:
    path, reference, full_size = _kill_in_the_middle_of_a_save("save_checkpoint", tmp_path)
    _check_killed_save(path, reference, full_size)

    state = load_checkpoint(path, None)
    assert state is not None and set(state) == {"step", "weights"}
    assert state["step"] == 1
    assert torch.equal(state["weights"], torch.arange(10_000, dtype=torch.float32))

    # The leftover temporary file breaks nothing: the next save replaces A, and loads.
    weights_c = torch.full((5,), 3.0)
    state_c = {"step": 3, "weights": weights_c}
    save_checkpoint(path, state_c, None)
    loaded = load_checkpoint(path, None)
    assert loaded is not None and loaded["step"] == 3
    assert torch.equal(loaded["weights"], weights_c)
    assert len(_leftovers(path)) == 1  # only the killed save's; this save left none


def test_a_kill_during_an_objective_save_resumes_from_the_previous_one(tmp_path: Path) -> None:
    path, reference, full_size = _kill_in_the_middle_of_a_save("objective", tmp_path)
    _check_killed_save(path, reference, full_size)

    split = TensorDataset(torch.randn(16, 1, 8, 8), torch.arange(16) % 10)
    data = ImageData(split, split, None, 10, 1, 8)
    seed_everything(0)
    objective = WeightSharingObjective(
        Supernet(NasBench201Space(), **TINY), data, checkpoint=path, **OBJECTIVE  # type: ignore[arg-type]
    )
    with torch.no_grad():  # Weights unlike A's, so that loading A is seen.
        for parameter in objective.supernet.parameters():
            parameter.sub_(1.0)
    assert objective.load()
    assert objective.trials == 0 and objective.step == 0  # A's position, not B's (10, 30)
    saved = torch.load(reference, weights_only=True)["supernet"]
    for name, tensor in objective.supernet.state_dict().items():
        assert torch.equal(tensor, saved[name]), name

    # The search goes on from A and checkpoints again beside the leftover temporary file.
    objective.step, objective.trials = 3, 1
    objective.save()
    resumed = WeightSharingObjective(
        Supernet(NasBench201Space(), **TINY), data, checkpoint=path, **OBJECTIVE  # type: ignore[arg-type]
    )
    assert resumed.load() and resumed.trials == 1 and resumed.step == 3
    assert len(_leftovers(path)) == 1
