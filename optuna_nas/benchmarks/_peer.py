"""The per-side process harness of the peer speed benchmarks (``supernet``, ``darts``).

A peer benchmark times this package against a peer (xautodl) on the same work, each side
built and run in its own fresh Python process, so that no side inherits another's memory or
warm caches. This module holds what every such benchmark does the same way:

* the parent: :class:`Harness` runs one side as ``python -m <worker module> SPEC_JSON``,
  times the process, reads the result line it prints and turns a failure into the
  benchmark's error (a missing peer into :class:`PeerMissingError`);
  :meth:`Harness.run_rounds` runs every side once a round, the order rotated, and records
  the machine;
* the worker: :class:`SideProcess` sets the threads and the device, imports the peer before
  the baseline, draws the seeded batches, runs the runtime warm-up, takes the memory
  baseline, times steps and returns the record with the peak memory; :func:`worker_main`
  is the worker module's entry point;
* the report: the shared headline figures, the memory note, the peer's record and the ratio
  lines of the printed table.

A new peer comparison is then a :class:`Harness` (its worker module, sides and error) and
two functions: the parent's ``measure`` (spec in, run record out) and the worker's
(a :class:`SideProcess` in, the timed steps out).

Peak memory. Every process first runs one step of a tiny network with every op (2 channels,
2 images of 8x8): a process's first step initialises the runtime (thread pools, oneDNN and
BLAS state, CUDA handles), the same for every side, which is no memory of the network under
test. The baseline is taken after it, just before the model is built. On the CPU the peak is
``VmHWM - VmRSS(baseline) - growth of RssFile + RssShmem`` from ``/proc/self/status``, with
``VmHWM`` reset at the baseline (``/proc/self/clear_refs``); where ``/proc`` is missing, the
growth of ``ru_maxrss``. On CUDA it is ``max_memory_allocated - memory_allocated`` at the
baseline (the peak statistics reset there).
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import platform
import random
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from optuna_nas.errors import NasError

if TYPE_CHECKING:
    import torch
    from _typeshed import DataclassInstance

__all__ = [
    "LEARNING_RATE",
    "MEMORY_NOTE",
    "MOMENTUM",
    "PEER_INSTALL",
    "PEER_PACKAGE",
    "PEER_SETTINGS",
    "WEIGHT_DECAY",
    "Harness",
    "PeerBenchmarkError",
    "PeerMissingError",
    "SideProcess",
    "StepConfig",
    "headline_figures",
    "peer_available",
    "peer_document",
    "peer_network",
    "ratio",
    "ratio_lines",
    "run_document",
    "run_line",
    "weight_sgd",
    "worker_main",
]

PEER_PACKAGE = "xautodl"
"""The peer's import name."""

PEER_INSTALL = "pip install --no-deps xautodl==1.0.0"
"""How to install the peer (its own dependencies are this package's already)."""

PEER_SETTINGS: Mapping[str, Any] = {"affine": False, "track_running_stats": True}
"""The peer's batch-norm settings, those of its NAS-Bench-201 reproductions."""

LEARNING_RATE = 0.025
MOMENTUM = 0.9
WEIGHT_DECAY = 3e-4

MEMORY_NOTE = (
    "per side, the highest over the rounds of the peak memory over the baseline "
    "(MiB), the baseline taken just before the model is built: CPU: VmHWM - "
    "VmRSS(baseline) - growth of RssFile + RssShmem (VmHWM reset at the "
    "baseline); CUDA: max_memory_allocated - memory_allocated(baseline)"
)
"""How the JSON documents' peak memory was measured."""

WARMUP_ARCHITECTURE = (
    "|nor_conv_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|skip_connect~0|none~1|nor_conv_3x3~2|"
)
"""Every op of the space: the tiny network run before the baseline uses all of them."""

_RESULT_MARK = "PEER-WORKER-RESULT "
_MIB = 2.0**20

_T = TypeVar("_T")


class PeerBenchmarkError(NasError, RuntimeError):
    """A benchmark process failed (e.g. out of memory); the message ends with its error."""


class PeerMissingError(PeerBenchmarkError):
    """The peer, xautodl, is not installed."""

    def __init__(self) -> None:
        super().__init__(
            f"the peer, xautodl, is not installed; install it with: {PEER_INSTALL} "
            "(or leave the peer out with --skip-peer)"
        )


def peer_available() -> bool:
    """Whether xautodl can be found (without importing it in this process)."""
    try:
        return importlib.util.find_spec(PEER_PACKAGE) is not None
    except (ImportError, ValueError):
        return False


@dataclass(frozen=True)
class StepConfig:
    """What every side trains, and how.

    Args:
        device: ``"cpu"`` or ``"cuda"``.
        steps: Timed steps (one architecture each).
        warmup: Untimed steps before them (architectures of their own).
        batch_size: Images per step.
        channels: Channels of the first stage (16 in NAS-Bench-201).
        cells_per_stage: Cells per stage (5 in NAS-Bench-201).
        image_size: Height and width of the (random) images.
        num_classes: Output classes.
        threads: ``torch.set_num_threads`` in every process; ``None`` keeps torch's default.
        seed: Seed of the architecture sequence and of the batch.
    """

    device: str = "cpu"
    steps: int = 10
    warmup: int = 2
    batch_size: int = 64
    channels: int = 16
    cells_per_stage: int = 5
    image_size: int = 32
    num_classes: int = 10
    threads: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.device not in ("cpu", "cuda"):
            raise ValueError(f"device must be 'cpu' or 'cuda', got {self.device!r}.")
        for name in ("steps", "batch_size", "channels", "cells_per_stage", "image_size",
                     "num_classes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}.")
        if self.warmup < 0:
            raise ValueError(f"warmup must be at least 0, got {self.warmup}.")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"threads must be at least 1, got {self.threads}.")

    def architectures(self) -> list[str]:
        """The architecture strings of the warm-up then the timed steps, the same everywhere."""
        from optuna_nas.spaces import NasBench201Space

        space = NasBench201Space()
        rng = random.Random(self.seed)
        return [space.sample(rng).string for _ in range(self.warmup + self.steps)]


def ratio(a: float | None, b: float | None) -> float | None:
    """``a / b``, or ``None`` where a side is missing or ``b`` is not positive."""
    if a is None or b is None or b <= 0:
        return None
    return a / b


def headline_figures(
    ours_ms: float | None, peer_ms: float | None, ours_mb: float | None, peer_mb: float | None
) -> dict[str, float | None]:
    """The figures every peer benchmark leads with: both sides' time and peak, and ratios."""
    return {
        "ours_ms": ours_ms,
        "peer_ms": peer_ms,
        "time_ratio": ratio(ours_ms, peer_ms),
        "ours_peak_mb": ours_mb,
        "peer_peak_mb": peer_mb,
        "memory_ratio": ratio(ours_mb, peer_mb),
    }


def peer_document(version: str | None, network: str) -> dict[str, Any]:
    """The JSON record of the peer: package, version, network and batch-norm settings."""
    return {"package": PEER_PACKAGE, "version": version, "network": network, **PEER_SETTINGS}


def ratio_lines(figures: Mapping[str, float | None], *rows: tuple[str, str]) -> list[str]:
    """The printed ratio lines: ``(label, figure key)`` each, ``n/a`` for a missing one."""

    def show(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.3f}"

    return [f"{label + ':':<27}{show(figures[key])}" for label, key in rows]


class _SideRecord(Protocol):
    # What a progress line reads of a side's run record (a frozen dataclass).
    @property
    def side(self) -> str: ...
    @property
    def round(self) -> int: ...
    @property
    def peak_mb(self) -> float: ...
    @property
    def threads(self) -> int: ...
    @property
    def wall_s(self) -> float: ...


def run_document(run: DataclassInstance, **extra: Any) -> dict[str, Any]:
    """A run record as JSON-ready fields (tuples as lists), then ``extra`` (its means)."""
    document = {
        key: list(value) if isinstance(value, tuple) else value
        for key, value in asdict(run).items()
    }
    document.update(extra)
    return document


def run_line(run: _SideRecord, timing: str) -> str:
    """A run's progress line: its round and side, ``timing``, its peak, threads and time."""
    return (
        f"round {run.round + 1} {run.side:<5}  {timing}  peak {run.peak_mb:8.1f} MiB  "
        f"({run.threads} threads, {run.wall_s:.0f} s)"
    )


def _worker_env() -> dict[str, str]:
    # The worker imports this package from the same place as this process.
    root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [root, *([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])]
    )
    return env


def _version(package: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _load_average() -> list[float] | None:
    # The 1, 5 and 15 minute load averages: how busy the machine was.
    return list(os.getloadavg()) if hasattr(os, "getloadavg") else None


@dataclass(frozen=True)
class Harness:
    """How one peer benchmark runs its sides, each in a fresh process.

    Args:
        module: The worker module, run as ``python -m module SPEC_JSON``; it calls
            :func:`worker_main` with its worker.
        sides: The sides, in the first round's order; ``"peer"`` is xautodl's.
        error: Raised when a side's process fails.
    """

    module: str
    sides: tuple[str, ...]
    error: type[PeerBenchmarkError]

    def measure(
        self, side: str, spec: Mapping[str, Any], *, round_index: int = 0
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Run one side's worker on ``spec`` (which names the side too).

        Args:
            side: The side.
            spec: The worker's spec (see :class:`SideProcess`).
            round_index: The round, recorded in the fields.

        Returns:
            The fields every run record has (``side``, ``round``, ``step_ms``, ``peak_mb``,
            ``baseline_mb``, ``memory_method``, ``threads``, and ``wall_s``: the seconds the
            process took, start-up included), and the worker's whole result document.

        Raises:
            ValueError: ``side`` is not one of :attr:`sides`.
            PeerMissingError: ``side`` is ``"peer"`` and xautodl cannot be imported.
            PeerBenchmarkError: The process failed (as :attr:`error`).
        """
        if side not in self.sides:
            raise ValueError(f"side must be one of {self.sides}, got {side!r}.")
        if side == "peer" and not peer_available():
            raise PeerMissingError()
        start = time.perf_counter()
        process = subprocess.run(
            [sys.executable, "-m", self.module, json.dumps(spec)],
            capture_output=True,
            text=True,
            env=_worker_env(),
            check=False,
        )
        wall_s = time.perf_counter() - start
        results = [
            line[len(_RESULT_MARK):]
            for line in process.stdout.splitlines()
            if line.startswith(_RESULT_MARK)
        ]
        if process.returncode != 0 or not results:
            lines = [line for line in process.stderr.strip().splitlines() if line.strip()]
            last = lines[-1].strip() if lines else f"exit status {process.returncode}"
            if side == "peer" and "No module named 'xautodl" in last:
                raise PeerMissingError()
            raise self.error(f"the {side} process failed: {last}")
        document: dict[str, Any] = json.loads(results[-1])
        fields = {
            "side": side,
            "round": round_index,
            "step_ms": tuple(float(v) for v in document["step_ms"]),
            "peak_mb": float(document["peak_mb"]),
            "baseline_mb": float(document["baseline_mb"]),
            "memory_method": str(document["memory_method"]),
            "threads": int(document["threads"]),
            "wall_s": wall_s,
        }
        return fields, document

    def run_rounds(
        self,
        measure: Callable[[str, int], _T],
        *,
        rounds: int,
        peer: bool,
        progress: Callable[[_T], None] | None = None,
    ) -> tuple[dict[str, tuple[_T, ...]], dict[str, Any]]:
        """Run every side once a round, the order rotated, so no side always meets a slow spell.

        Args:
            measure: Runs a side in a round (from 0) and returns its record.
            rounds: Rounds, at least 1.
            peer: Whether to run the peer side.
            progress: Called with each record as it comes.

        Returns:
            Each side's records in round order, and the machine's description.

        Raises:
            ValueError: ``rounds`` is below 1.
            PeerMissingError: ``peer`` is true and xautodl is not installed (checked first).
        """
        if rounds < 1:
            raise ValueError(f"rounds must be at least 1, got {rounds}.")
        if peer and not peer_available():
            raise PeerMissingError()
        load_start = _load_average()
        sides = [side for side in self.sides if peer or side != "peer"]
        runs: dict[str, list[_T]] = {side: [] for side in sides}
        for r in range(rounds):
            shift = r % len(sides)
            for side in sides[shift:] + sides[:shift]:
                run = measure(side, r)
                runs[side].append(run)
                if progress is not None:
                    progress(run)
        machine = {
            "python": platform.python_version(),
            "torch": _version("torch"),
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "load_average_start": load_start,
            "load_average_end": _load_average(),
        }
        return {side: tuple(side_runs) for side, side_runs in runs.items()}, machine

    @staticmethod
    def peer_version(peer: bool) -> str | None:
        """The installed peer's version where the peer ran, else ``None``."""
        return _version(PEER_PACKAGE) if peer else None


# ---- The worker side ----------------------------------------------------------------------


def _proc_status() -> dict[str, float]:
    # Sizes from /proc/self/status, in bytes; empty where there is no /proc.
    sizes: dict[str, float] = {}
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                key, _, rest = line.partition(":")
                parts = rest.split()
                if len(parts) == 2 and parts[1] == "kB":
                    sizes[key] = float(parts[0]) * 1024.0
    except OSError:
        return {}
    return sizes


def _maxrss() -> float:
    import resource

    value = float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    return value if sys.platform == "darwin" else value * 1024.0  # bytes there, KiB here


class _CpuMemory:
    """The peak of the process's anonymous memory over a baseline (see the module's docs).

    Linux: ``VmHWM - VmRSS(baseline) - growth of RssFile + RssShmem``, with ``VmHWM`` reset
    at the baseline; elsewhere the growth of ``ru_maxrss``.
    """

    def __init__(self) -> None:
        reset = False
        try:
            with open("/proc/self/clear_refs", "w", encoding="ascii") as clear:
                clear.write("5")  # Resets VmHWM to the current RSS (Linux >= 4.0).
            reset = True
        except OSError:
            reset = False
        self._base = _proc_status()
        self._reset = reset and {"VmRSS", "VmHWM", "RssFile"} <= set(self._base)
        if self._reset:
            self.baseline = self._base["VmRSS"]
            self.method = (
                "VmHWM - VmRSS at the baseline (VmHWM reset there) - growth of RssFile + "
                "RssShmem (library code paged in)"
            )
        else:
            self.baseline = _maxrss()
            self.method = "growth of ru_maxrss from the baseline"

    def peak(self) -> float:
        if not self._reset:
            return max(0.0, _maxrss() - self.baseline)
        now = _proc_status()
        shared = now.get("RssFile", 0.0) + now.get("RssShmem", 0.0)
        shared_base = self._base.get("RssFile", 0.0) + self._base.get("RssShmem", 0.0)
        return max(0.0, now["VmHWM"] - self.baseline - (shared - shared_base))


def weight_sgd(parameters: Iterable[torch.nn.Parameter]) -> torch.optim.Optimizer:
    """The weights' SGD every side uses (lr 0.025, momentum 0.9, weight decay 3e-4)."""
    import torch

    return torch.optim.SGD(
        parameters, lr=LEARNING_RATE, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY
    )


def _runtime_warmup(device: torch.device) -> None:
    # One step of a tiny child network with every op (2 channels, 2 images of 8x8), before
    # the baseline: the first step of a process initialises the runtime (thread pools,
    # oneDNN and BLAS state, CUDA handles), the same for every side, which is not memory of
    # the network under test.
    import torch
    from torch import nn

    from optuna_nas.spaces import NasBench201Space

    space = NasBench201Space()
    net = space.build(space.parse(WARMUP_ARCHITECTURE), channels=2, cells_per_stage=1)
    net = net.to(device).train()
    optimizer = weight_sgd(net.parameters())
    x = torch.randn(2, 3, 8, 8, device=device)
    y = torch.tensor([0, 1], device=device)
    optimizer.zero_grad(set_to_none=True)
    nn.CrossEntropyLoss()(net(x), y).backward()
    optimizer.step()


def peer_network(name: str, config: StepConfig, ops: Sequence[str]) -> Any:
    """xautodl's NAS-Bench-201 supernet ``name`` (``get_cell_based_tiny_net``) at ``config``.

    Built with :data:`PEER_SETTINGS`, four nodes a cell and the space's ``ops``.
    """
    # xautodl has no type information: it is used through importlib, as Any.
    config_utils = importlib.import_module("xautodl.config_utils")
    models = importlib.import_module("xautodl.models")
    options = config_utils.dict2config(
        {
            "name": name,
            "C": config.channels,
            "N": config.cells_per_stage,
            "max_nodes": 4,
            "num_classes": config.num_classes,
            "space": list(ops),
            **PEER_SETTINGS,
        },
        None,
    )
    return models.get_cell_based_tiny_net(options)


class SideProcess:
    """One side's worker process: its settings, its device, and what it measures.

    Creating it sets the torch threads, checks the device and imports the peer (before the
    baseline, as ours is); then :meth:`batches` draws the seeded data, :meth:`start_memory`
    takes the baseline, :meth:`timed` times steps and :meth:`result` adds the peak memory.

    Args:
        spec: The worker's spec: ``side`` and ``config`` (a :class:`StepConfig`'s fields).

    Raises:
        PeerBenchmarkError: The device is CUDA and torch sees none.
    """

    def __init__(self, spec: Mapping[str, Any]) -> None:
        import torch

        self.side = str(spec["side"])
        self.config = StepConfig(**spec["config"])
        if self.config.threads is not None:
            torch.set_num_threads(self.config.threads)
        self.device = torch.device(self.config.device)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise PeerBenchmarkError("--device cuda, but torch sees no CUDA device")
        if self.side == "peer":
            importlib.import_module("xautodl.models")  # Imported before the baseline, as ours.
        self._cpu_memory: _CpuMemory | None = None
        self._baseline = 0.0
        self._method = ""

    def batches(self, count: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """``count`` random batches (images, labels), drawn after ``manual_seed(seed)``."""
        import torch

        config, device = self.config, self.device
        torch.manual_seed(config.seed)
        size, n = config.image_size, config.batch_size
        return [
            (
                torch.randn(n, 3, size, size, device=device),
                torch.randint(0, config.num_classes, (n,), device=device),
            )
            for _ in range(count)
        ]

    def sync(self) -> None:
        """Wait for the device's queued work (CUDA), so that a clock reads finished work."""
        import torch

        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def start_memory(self) -> None:
        """Run the runtime warm-up, then take the memory baseline (just before the model)."""
        import gc

        import torch

        _runtime_warmup(self.device)
        gc.collect()
        self.sync()
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
            self._baseline = float(torch.cuda.memory_allocated(self.device))
            self._method = "torch.cuda.max_memory_allocated - memory_allocated at the baseline"
        else:
            self._cpu_memory = _CpuMemory()
            self._baseline, self._method = self._cpu_memory.baseline, self._cpu_memory.method

    def timed(self, work: Callable[[], _T]) -> tuple[_T, float]:
        """Run ``work`` between two device syncs; its value and milliseconds."""
        self.sync()
        start = time.perf_counter()
        value = work()
        self.sync()
        return value, (time.perf_counter() - start) * 1000.0

    def result(self, **fields: Any) -> dict[str, Any]:
        """The result document: the side, ``fields``, the peak memory and the threads."""
        import torch

        self.sync()
        if self.device.type == "cuda":
            peak = float(torch.cuda.max_memory_allocated(self.device)) - self._baseline
        else:
            assert self._cpu_memory is not None, "start_memory() was not called"
            peak = self._cpu_memory.peak()
        return {
            "side": self.side,
            **fields,
            "peak_mb": peak / _MIB,
            "baseline_mb": self._baseline / _MIB,
            "memory_method": self._method,
            "threads": torch.get_num_threads(),
        }


def worker_main(
    argv: Sequence[str], module: str, worker: Callable[[Mapping[str, Any]], dict[str, Any]]
) -> int:
    """The worker module's entry point: run ``worker`` on the spec, print its result line.

    Args:
        argv: The arguments after the module: one spec, as JSON.
        module: The worker module's name, for the usage line.
        worker: Turns the spec into the result document.

    Returns:
        The exit status: 0, 1 for a benchmark error (printed on stderr), 2 for bad usage.
    """
    if len(argv) != 1:
        print(f"usage: python -m {module} SPEC_JSON", file=sys.stderr)
        return 2
    try:
        result = worker(json.loads(argv[0]))
    except NasError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(_RESULT_MARK + json.dumps(result), flush=True)
    return 0
