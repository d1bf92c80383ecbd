"""Training-step time and peak memory of the single-path supernet, a peer's, and a child.

``python -m optuna_nas.benchmarks supernet`` times one weight-sharing training step
(forward, cross-entropy loss, backward, optimizer step) on the NAS-Bench-201 space for three
sides, each built and run in its own fresh Python process:

* ``ours``: :class:`~optuna_nas.supernet.Supernet` run on one architecture per step
  (``supernet(x, arch)``, single path);
* ``peer``: xautodl's RANDOM supernet (``get_cell_based_tiny_net`` with name ``RANDOM``, the
  random-search-with-weight-sharing network of the NAS-Bench-201 paper's code), run on the
  same architecture (``net.arch_cache = Structure.str2structure(arch)``, then
  ``net(x)[1]``). It is built with the settings of the peer's NAS-Bench-201 reproduction
  (``scripts-search/algos/RANDOM-NAS.sh cifar10 1 -1`` in its ``docs/NAS-Bench-201.md``):
  ``affine=False`` and ``track_running_stats=True``. Install it with
  ``pip install --no-deps xautodl==1.0.0``; nothing here installs it.
* ``child``: the fixed network of each architecture (``NasBench201Space().build(arch)``),
  built afresh for every architecture, for the memory (and time) a single path should
  stay close to.

Every side draws the same seeded sequence of architectures (``NasBench201Space().sample``
with ``random.Random(seed)``; the architecture strings of this package and xautodl are the
same), trains on the same random batch (``torch.manual_seed(seed)``), with the same SGD
over all parameters (lr 0.025, momentum 0.9, weight decay 3e-4, as in DARTS' weight
training; ``zero_grad(set_to_none=True)``; no gradient clipping on any side: the peer's own
RANDOM-NAS script clips at norm 5 and uses Nesterov momentum and weight decay 5e-4, which
change little of a step's time and nothing of its memory). Every process uses the same
number of torch threads (``threads``, or torch's default). The
first ``warmup`` architectures run untimed, then ``steps`` architectures are timed one step
each. The child side builds each child network untimed, runs it one untimed step (its
warm-up), then the timed step.

Peak memory. Every process first runs one step of a tiny network with every op (2 channels,
2 images of 8x8): a process's first step initialises the runtime (thread pools, oneDNN and
BLAS state, CUDA handles; some 170 MiB of RSS on the CPU, the same for every side), which is
no memory of the network under test. The baseline is taken after it, after the imports and
the input batch, just before the model is built. On the CPU the peak is the highest resident
set size (RSS) of the run over the RSS at the baseline, less what the file-backed part of
the RSS grew by (library code paged in as new kernels run): ``VmHWM - VmRSS(baseline) -
growth of RssFile + RssShmem`` from ``/proc/self/status``, with the high-water mark
``VmHWM`` reset at the baseline (``/proc/self/clear_refs``). It is the peak of the memory
the training holds (parameters, gradients, optimizer state, activations, allocator
overhead), warm-up steps included. Where ``/proc`` is missing the growth of ``ru_maxrss``
from the baseline is used instead; each run records its method. On CUDA the peak is
``torch.cuda.max_memory_allocated`` over ``torch.cuda.memory_allocated`` at the baseline
(the peak statistics reset there).

``python -m optuna_nas.benchmarks supernet --json FILE`` writes ``ours_ms``, ``peer_ms``,
``time_ratio`` (ours/peer), ``ours_peak_mb``, ``peer_peak_mb``, ``memory_ratio``
(ours/peer), ``child_ms``, ``child_peak_mb`` and ``memory_vs_child`` (ours/child); with
``--device cuda`` the same on a GPU.

Noise. The sides run one after the other, in ``rounds`` rounds (default 2), each round
starting one fresh process per side with the order rotated (``ours, peer, child``; then
``peer, child, ours``; ...), so a slow spell of a shared machine does not always hit the same
side. A side's time is its lowest round mean (the mean step time of a round: every round
times the same architectures), its median the median step time of that round; its peak
memory is the highest over the rounds. All rounds are in the JSON document.
"""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from optuna_nas.errors import NasError

__all__ = [
    "PEER_INSTALL",
    "PEER_PACKAGE",
    "SIDES",
    "PeerMissingError",
    "SideRun",
    "SideSummary",
    "StepConfig",
    "SupernetBenchmark",
    "SupernetBenchmarkError",
    "measure_side",
    "peer_available",
    "run_supernet_benchmark",
]

SIDES: tuple[str, ...] = ("ours", "peer", "child")
"""``ours``: the single-path supernet; ``peer``: xautodl's RANDOM supernet; ``child``: the
fixed network of each architecture."""

PEER_PACKAGE = "xautodl"
"""The peer's import name."""

PEER_INSTALL = "pip install --no-deps xautodl==1.0.0"
"""How to install the peer (its own dependencies are this package's already)."""

PEER_SETTINGS: Mapping[str, Any] = {"affine": False, "track_running_stats": True}
"""The peer's batch-norm settings, those of its NAS-Bench-201 RANDOM-NAS reproduction."""

LEARNING_RATE = 0.025
MOMENTUM = 0.9
WEIGHT_DECAY = 3e-4

_WORKER_MODULE = "optuna_nas.benchmarks._supernet"
_RESULT_MARK = "SUPERNET-WORKER-RESULT "
_MIB = 2.0**20


class SupernetBenchmarkError(NasError, RuntimeError):
    """A benchmark process failed (e.g. out of memory); the message ends with its error."""


class PeerMissingError(SupernetBenchmarkError):
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


@dataclass(frozen=True)
class SideRun:
    """One side's run in one fresh process.

    Args:
        side: ``"ours"``, ``"peer"`` or ``"child"``.
        round: The round, from 0.
        step_ms: Milliseconds of each timed step, in order.
        peak_mb: Peak memory of the run over its baseline, MiB (see the module's docs).
        baseline_mb: RSS (CPU) or allocated memory (CUDA) at the baseline, MiB.
        memory_method: How the peak was measured.
        threads: ``torch.get_num_threads()`` in the process.
        parameters: Parameters of the model (the child side: the largest child's).
        wall_s: Seconds the process took, start-up included.
    """

    side: str
    round: int
    step_ms: tuple[float, ...]
    peak_mb: float
    baseline_mb: float
    memory_method: str
    threads: int
    parameters: int
    wall_s: float

    @property
    def mean_ms(self) -> float:
        """Mean milliseconds per timed step."""
        return statistics.fmean(self.step_ms)

    @property
    def median_ms(self) -> float:
        """Median milliseconds per timed step."""
        return statistics.median(self.step_ms)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready record, with the mean and median."""
        document = asdict(self)
        document["step_ms"] = list(self.step_ms)
        document["mean_ms"] = self.mean_ms
        document["median_ms"] = self.median_ms
        return document

    def line(self) -> str:
        """A progress line."""
        return (
            f"round {self.round + 1} {self.side:<5}  mean {self.mean_ms:9.1f} ms  "
            f"median {self.median_ms:9.1f} ms  peak {self.peak_mb:8.1f} MiB  "
            f"({self.threads} threads, {self.wall_s:.0f} s)"
        )


@dataclass(frozen=True)
class SideSummary:
    """A side's figures over its rounds: best round mean time, highest peak memory."""

    side: str
    runs: tuple[SideRun, ...]

    @property
    def best(self) -> SideRun:
        """The round with the lowest mean step time."""
        return min(self.runs, key=lambda run: run.mean_ms)

    @property
    def ms(self) -> float:
        """Milliseconds per step: the lowest round mean."""
        return self.best.mean_ms

    @property
    def median_ms(self) -> float:
        """The median step time of the best round."""
        return self.best.median_ms

    @property
    def peak_mb(self) -> float:
        """Peak memory, MiB: the highest over the rounds."""
        return max(run.peak_mb for run in self.runs)


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b <= 0:
        return None
    return a / b


@dataclass(frozen=True)
class SupernetBenchmark:
    """The result of :func:`run_supernet_benchmark`."""

    config: StepConfig
    rounds: int
    architectures: tuple[str, ...]
    sides: Mapping[str, SideSummary]
    peer_version: str | None = None
    machine: Mapping[str, Any] = field(default_factory=dict)

    def _ms(self, side: str) -> float | None:
        return self.sides[side].ms if side in self.sides else None

    def _peak(self, side: str) -> float | None:
        return self.sides[side].peak_mb if side in self.sides else None

    def figures(self) -> dict[str, float | None]:
        """The headline figures; ``None`` for a side that did not run."""
        ours_ms, peer_ms, child_ms = self._ms("ours"), self._ms("peer"), self._ms("child")
        ours_mb, peer_mb, child_mb = self._peak("ours"), self._peak("peer"), self._peak("child")
        return {
            "ours_ms": ours_ms,
            "peer_ms": peer_ms,
            "time_ratio": _ratio(ours_ms, peer_ms),
            "ours_peak_mb": ours_mb,
            "peer_peak_mb": peer_mb,
            "memory_ratio": _ratio(ours_mb, peer_mb),
            "child_ms": child_ms,
            "child_peak_mb": child_mb,
            "memory_vs_child": _ratio(ours_mb, child_mb),
        }

    def as_dict(self) -> dict[str, Any]:
        """The JSON document: the figures, the settings and every run."""
        return {
            "benchmark": "supernet",
            **self.figures(),
            "time": "per side, the lowest round mean of the timed steps (ms)",
            "memory": (
                "per side, the highest over the rounds of the peak memory over the baseline "
                "(MiB), the baseline taken just before the model is built: CPU: VmHWM - "
                "VmRSS(baseline) - growth of RssFile + RssShmem (VmHWM reset at the "
                "baseline); CUDA: max_memory_allocated - memory_allocated(baseline)"
            ),
            "config": asdict(self.config),
            "rounds": self.rounds,
            "optimizer": {
                "name": "SGD",
                "lr": LEARNING_RATE,
                "momentum": MOMENTUM,
                "weight_decay": WEIGHT_DECAY,
            },
            "peer": {
                "package": PEER_PACKAGE,
                "version": self.peer_version,
                "network": "RANDOM (get_cell_based_tiny_net)",
                **PEER_SETTINGS,
            },
            "architectures": list(self.architectures),
            "machine": dict(self.machine),
            "runs": {
                side: [run.as_dict() for run in summary.runs]
                for side, summary in self.sides.items()
            },
        }

    def lines(self) -> list[str]:
        """The table and the ratios, for printing."""
        names = {"ours": "ours (single path)", "peer": "xautodl RANDOM", "child": "child network"}
        out = [
            f"{'side':<20}{'ms/step':>10}{'median':>10}{'peak MiB':>10}{'params':>11}",
        ]
        for side in SIDES:
            if side not in self.sides:
                continue
            summary = self.sides[side]
            out.append(
                f"{names[side]:<20}{summary.ms:>10.1f}{summary.median_ms:>10.1f}"
                f"{summary.peak_mb:>10.1f}{summary.best.parameters:>11,}"
            )
        figures = self.figures()

        def show(value: float | None) -> str:
            return "n/a" if value is None else f"{value:.3f}"

        out.append(f"time ratio ours/peer:      {show(figures['time_ratio'])}")
        out.append(f"memory ratio ours/peer:    {show(figures['memory_ratio'])}")
        out.append(f"memory ratio ours/child:   {show(figures['memory_vs_child'])}")
        return out


def _worker_env() -> dict[str, str]:
    # The worker imports this package from the same place as this process.
    root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [root, *([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])]
    )
    return env


def measure_side(
    side: str,
    config: StepConfig,
    architectures: Sequence[str] | None = None,
    *,
    round_index: int = 0,
) -> SideRun:
    """Run one side in a fresh Python process and return its figures.

    Args:
        side: ``"ours"``, ``"peer"`` or ``"child"``.
        config: The settings.
        architectures: The warm-up then timed architecture strings; by default
            ``config.architectures()``.
        round_index: Recorded in the result.

    Raises:
        PeerMissingError: ``side`` is ``"peer"`` and xautodl cannot be imported.
        SupernetBenchmarkError: The process failed.
    """
    if side not in SIDES:
        raise ValueError(f"side must be one of {SIDES}, got {side!r}.")
    archs = list(config.architectures() if architectures is None else architectures)
    if len(archs) != config.warmup + config.steps:
        raise ValueError(
            f"expected {config.warmup + config.steps} architectures (warmup + steps), "
            f"got {len(archs)}."
        )
    if side == "peer" and not peer_available():
        raise PeerMissingError()
    spec = {"side": side, "config": asdict(config), "architectures": archs}
    start = time.perf_counter()
    process = subprocess.run(
        [sys.executable, "-m", _WORKER_MODULE, json.dumps(spec)],
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
        raise SupernetBenchmarkError(f"the {side} process failed: {last}")
    document = json.loads(results[-1])
    return SideRun(
        side=side,
        round=round_index,
        step_ms=tuple(float(v) for v in document["step_ms"]),
        peak_mb=float(document["peak_mb"]),
        baseline_mb=float(document["baseline_mb"]),
        memory_method=str(document["memory_method"]),
        threads=int(document["threads"]),
        parameters=int(document["parameters"]),
        wall_s=wall_s,
    )


def _version(package: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _load_average() -> list[float] | None:
    # The 1, 5 and 15 minute load averages: how busy the machine was.
    return list(os.getloadavg()) if hasattr(os, "getloadavg") else None


def run_supernet_benchmark(
    config: StepConfig | None = None,
    *,
    rounds: int = 2,
    peer: bool = True,
    progress: Callable[[SideRun], None] | None = None,
) -> SupernetBenchmark:
    """Time and measure the sides, each in its own process, over ``rounds`` rounds.

    Args:
        config: The settings (default: :class:`StepConfig`'s, the issue's size).
        rounds: Rounds; each runs every side once, in a rotated order.
        peer: Whether to run the peer (xautodl); ``False`` runs ``ours`` and ``child`` only.
        progress: Called with each run as it finishes.

    Raises:
        PeerMissingError: ``peer`` is true and xautodl is not installed (checked first).
        SupernetBenchmarkError: A process failed.
    """
    config = StepConfig() if config is None else config
    if rounds < 1:
        raise ValueError(f"rounds must be at least 1, got {rounds}.")
    if peer and not peer_available():
        raise PeerMissingError()
    load_start = _load_average()
    sides = [side for side in SIDES if peer or side != "peer"]
    architectures = config.architectures()
    runs: dict[str, list[SideRun]] = {side: [] for side in sides}
    for r in range(rounds):
        shift = r % len(sides)
        for side in sides[shift:] + sides[:shift]:
            run = measure_side(side, config, architectures, round_index=r)
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
    return SupernetBenchmark(
        config=config,
        rounds=rounds,
        architectures=tuple(architectures),
        sides={side: SideSummary(side, tuple(runs[side])) for side in sides},
        peer_version=_version(PEER_PACKAGE) if peer else None,
        machine=machine,
    )


# ---- The worker: ``python -m optuna_nas.benchmarks._supernet SPEC_JSON`` -----------------


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


WARMUP_ARCHITECTURE = (
    "|nor_conv_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|skip_connect~0|none~1|nor_conv_3x3~2|"
)
"""Every op of the space: the tiny network run before the baseline uses all of them."""


def _runtime_warmup(device: Any) -> None:
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
    optimizer = torch.optim.SGD(
        net.parameters(), lr=LEARNING_RATE, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY
    )
    x = torch.randn(2, 3, 8, 8, device=device)
    y = torch.tensor([0, 1], device=device)
    optimizer.zero_grad(set_to_none=True)
    nn.CrossEntropyLoss()(net(x), y).backward()
    optimizer.step()


def _peer_network(config: StepConfig, ops: Sequence[str]) -> tuple[Any, Callable[[str], Any]]:
    # xautodl has no type information: it is used through importlib, as Any.
    config_utils = importlib.import_module("xautodl.config_utils")
    models = importlib.import_module("xautodl.models")
    options = config_utils.dict2config(
        {
            "name": "RANDOM",
            "C": config.channels,
            "N": config.cells_per_stage,
            "max_nodes": 4,
            "num_classes": config.num_classes,
            "space": list(ops),
            **PEER_SETTINGS,
        },
        None,
    )
    return models.get_cell_based_tiny_net(options), models.CellStructure.str2structure


def _worker(spec: Mapping[str, Any]) -> dict[str, Any]:
    import gc

    import torch
    from torch import nn

    from optuna_nas.spaces import NasBench201Space
    from optuna_nas.supernet import Supernet

    side = str(spec["side"])
    config = StepConfig(**spec["config"])
    strings: list[str] = [str(text) for text in spec["architectures"]]
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    device = torch.device(config.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SupernetBenchmarkError("--device cuda, but torch sees no CUDA device")
    space = NasBench201Space()
    archs = [space.parse(text) for text in strings]
    options = {
        "channels": config.channels,
        "cells_per_stage": config.cells_per_stage,
        "num_classes": config.num_classes,
    }
    if side == "peer":
        importlib.import_module("xautodl.models")  # Imported before the baseline, as ours.

    torch.manual_seed(config.seed)
    size = config.image_size
    x = torch.randn(config.batch_size, 3, size, size, device=device)
    y = torch.randint(0, config.num_classes, (config.batch_size,), device=device)
    loss_fn = nn.CrossEntropyLoss()

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    _runtime_warmup(device)
    gc.collect()
    sync()
    cpu_memory: _CpuMemory | None = None
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        baseline = float(torch.cuda.memory_allocated(device))
        method = "torch.cuda.max_memory_allocated - memory_allocated at the baseline"
    else:
        cpu_memory = _CpuMemory()
        baseline, method = cpu_memory.baseline, cpu_memory.method

    def sgd(model: nn.Module) -> torch.optim.Optimizer:
        return torch.optim.SGD(
            model.parameters(), lr=LEARNING_RATE, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY
        )

    def train_step(
        forward: Callable[[], torch.Tensor], optimizer: torch.optim.Optimizer
    ) -> float:
        sync()
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss_fn(forward(), y).backward()
        optimizer.step()
        sync()
        return (time.perf_counter() - start) * 1000.0

    step_ms: list[float] = []
    parameters = 0
    if side == "child":
        for k, arch in enumerate(archs):
            child = space.build(arch, **options).to(device).train()
            parameters = max(parameters, sum(p.numel() for p in child.parameters()))
            optimizer = sgd(child)

            def forward_child(net: nn.Module = child) -> torch.Tensor:
                out: torch.Tensor = net(x)
                return out

            train_step(forward_child, optimizer)  # The fresh network's warm-up.
            if k >= config.warmup:
                step_ms.append(train_step(forward_child, optimizer))
            del child, optimizer, forward_child
    else:
        if side == "ours":
            model: nn.Module = Supernet(space, **options)
            paths: list[Any] = list(archs)
        else:
            model, structure = _peer_network(config, space.ops)
            paths = [structure(text) for text in strings]
        model = model.to(device).train()
        parameters = sum(p.numel() for p in model.parameters())
        optimizer = sgd(model)

        for k, path in enumerate(paths):

            def forward(path: Any = path) -> torch.Tensor:
                if side == "ours":
                    out: torch.Tensor = model(x, path)
                    return out
                model.arch_cache = path  # The peer's way to set the path (random_genotype).
                logits: torch.Tensor = model(x)[1]
                return logits

            ms = train_step(forward, optimizer)
            if k >= config.warmup:
                step_ms.append(ms)

    sync()
    if device.type == "cuda":
        peak = float(torch.cuda.max_memory_allocated(device)) - baseline
    else:
        assert cpu_memory is not None
        peak = cpu_memory.peak()
    return {
        "side": side,
        "step_ms": step_ms,
        "peak_mb": peak / _MIB,
        "baseline_mb": baseline / _MIB,
        "memory_method": method,
        "threads": torch.get_num_threads(),
        "parameters": parameters,
    }


def _worker_main(argv: Sequence[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m optuna_nas.benchmarks._supernet SPEC_JSON", file=sys.stderr)
        return 2
    try:
        result = _worker(json.loads(argv[0]))
    except NasError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(_RESULT_MARK + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(_worker_main(sys.argv[1:]))
