"""Device lists, and each GPU worker seeing only its own GPU."""

from __future__ import annotations

import pytest

from optuna_nas.errors import WorkerError
from optuna_nas.worker import (
    parse_devices,
)
from optuna_nas.worker._devices import _child_env
from tests._postgres import postgres_study_name, postgres_url, storage  # noqa: F401


def test_devices() -> None:
    assert parse_devices("cpu,cpu") == ["cpu", "cpu"]
    assert parse_devices(["cpu"]) == ["cpu"]
    with pytest.raises(WorkerError, match="Unknown device 'gpu0'"):
        parse_devices("cpu,gpu0")
    with pytest.raises(WorkerError, match="No device"):
        parse_devices([])
    import torch

    if torch.cuda.device_count() < 8:
        with pytest.raises(WorkerError, match="visible GPU"):
            parse_devices("cuda:7")


def test_each_gpu_worker_sees_only_its_own_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    env = _child_env("cuda:1", 1, 0)
    assert env["CUDA_VISIBLE_DEVICES"] == "1" and env["OPTUNA_NAS_DEVICE"] == "cuda:0"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,5")
    assert _child_env("cuda:1", 1, 0)["CUDA_VISIBLE_DEVICES"] == "5"
    cpu = _child_env("cpu", 0, 2)
    assert cpu["CUDA_VISIBLE_DEVICES"] == "" and cpu["OPTUNA_NAS_DEVICE"] == "cpu"
