"""Devices: one worker process per entry, each seeing only its own GPU."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from optuna_nas.errors import WorkerError
from optuna_nas.worker._storage import STORAGE_FILE_ENV

DEVICE_ENV = "OPTUNA_NAS_DEVICE"
"""Environment variable telling a worker process its device (``cpu`` or ``cuda:0``)."""


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

