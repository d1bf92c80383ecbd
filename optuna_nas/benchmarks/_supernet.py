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

import statistics
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from optuna_nas.benchmarks import _peer
from optuna_nas.benchmarks._peer import (
    PEER_INSTALL,
    PEER_PACKAGE,
    PeerMissingError,
    StepConfig,
    peer_available,
)

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

SupernetBenchmarkError = _peer.PeerBenchmarkError
"""A benchmark process failed (e.g. out of memory); the message ends with its error.

The name this module has always given the peer benchmarks' base error, kept for its users.
"""

_HARNESS = _peer.Harness("optuna_nas.benchmarks._supernet", SIDES, SupernetBenchmarkError)


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
        return _peer.run_document(self, mean_ms=self.mean_ms, median_ms=self.median_ms)

    def line(self) -> str:
        """A progress line."""
        timing = f"mean {self.mean_ms:9.1f} ms  median {self.median_ms:9.1f} ms"
        return _peer.run_line(self, timing)


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
            **_peer.headline_figures(ours_ms, peer_ms, ours_mb, peer_mb),
            "child_ms": child_ms,
            "child_peak_mb": child_mb,
            "memory_vs_child": _peer.ratio(ours_mb, child_mb),
        }

    def as_dict(self) -> dict[str, Any]:
        """The JSON document: the figures, the settings and every run."""
        return {
            "benchmark": "supernet",
            **self.figures(),
            "time": "per side, the lowest round mean of the timed steps (ms)",
            "memory": _peer.MEMORY_NOTE,
            "config": asdict(self.config),
            "rounds": self.rounds,
            "optimizer": {
                "name": "SGD",
                "lr": _peer.LEARNING_RATE,
                "momentum": _peer.MOMENTUM,
                "weight_decay": _peer.WEIGHT_DECAY,
            },
            "peer": _peer.peer_document(self.peer_version, "RANDOM (get_cell_based_tiny_net)"),
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
        return out + _peer.ratio_lines(
            self.figures(),
            ("time ratio ours/peer", "time_ratio"),
            ("memory ratio ours/peer", "memory_ratio"),
            ("memory ratio ours/child", "memory_vs_child"),
        )


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
    archs = list(config.architectures() if architectures is None else architectures)
    if len(archs) != config.warmup + config.steps:
        raise ValueError(
            f"expected {config.warmup + config.steps} architectures (warmup + steps), "
            f"got {len(archs)}."
        )
    spec = {"side": side, "config": asdict(config), "architectures": archs}
    fields, document = _HARNESS.measure(side, spec, round_index=round_index)
    return SideRun(**fields, parameters=int(document["parameters"]))


def run_supernet_benchmark(
    config: StepConfig | None = None, *, rounds: int = 2, peer: bool = True,
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
    architectures = config.architectures()

    def measure(side: str, round_index: int) -> SideRun:
        return measure_side(side, config, architectures, round_index=round_index)

    runs, machine = _HARNESS.run_rounds(measure, rounds=rounds, peer=peer, progress=progress)
    return SupernetBenchmark(
        config=config,
        rounds=rounds,
        architectures=tuple(architectures),
        sides={side: SideSummary(side, side_runs) for side, side_runs in runs.items()},
        peer_version=_HARNESS.peer_version(peer),
        machine=machine,
    )


# ---- The worker: ``python -m optuna_nas.benchmarks._supernet SPEC_JSON`` -----------------


def _worker(spec: Mapping[str, Any]) -> dict[str, Any]:
    import importlib

    import torch
    from torch import nn

    from optuna_nas.spaces import NasBench201Space
    from optuna_nas.supernet import Supernet

    process = _peer.SideProcess(spec)
    side, config, device = process.side, process.config, process.device
    strings: list[str] = [str(text) for text in spec["architectures"]]
    space = NasBench201Space()
    archs = [space.parse(text) for text in strings]
    options = {
        "channels": config.channels,
        "cells_per_stage": config.cells_per_stage,
        "num_classes": config.num_classes,
    }
    ((x, y),) = process.batches(1)
    loss_fn = nn.CrossEntropyLoss()
    process.start_memory()

    def train_step(
        forward: Callable[[], torch.Tensor], optimizer: torch.optim.Optimizer
    ) -> float:
        def step() -> None:
            optimizer.zero_grad(set_to_none=True)
            loss_fn(forward(), y).backward()
            optimizer.step()

        return process.timed(step)[1]

    step_ms: list[float] = []
    parameters = 0
    if side == "child":
        for k, arch in enumerate(archs):
            child = space.build(arch, **options).to(device).train()
            parameters = max(parameters, sum(p.numel() for p in child.parameters()))
            optimizer = _peer.weight_sgd(child.parameters())

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
            model = _peer.peer_network("RANDOM", config, space.ops)
            structure = importlib.import_module("xautodl.models").CellStructure.str2structure
            paths = [structure(text) for text in strings]
        model = model.to(device).train()
        parameters = sum(p.numel() for p in model.parameters())
        optimizer = _peer.weight_sgd(model.parameters())

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

    return process.result(step_ms=step_ms, parameters=parameters)


if __name__ == "__main__":
    sys.exit(_peer.worker_main(sys.argv[1:], _HARNESS.module, _worker))
