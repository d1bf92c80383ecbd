"""Time and peak memory of one DARTS search iteration, this package's and xautodl's.

``python -m optuna_nas.benchmarks darts`` times one first-order DARTS iteration (an
architecture step on a validation batch, then a weight step on a training batch) on the
NAS-Bench-201 space for two sides, each built and run in its own fresh Python process:

* ``ours``: :class:`~optuna_nas.darts.DartsSearch` (``order="first"``), one
  :meth:`~optuna_nas.darts.DartsSearch.step` per iteration;
* ``peer``: xautodl's DARTS-V1 supernet (``get_cell_based_tiny_net`` with name
  ``DARTS-V1``), built with the settings of its NAS-Bench-201 reproduction
  (``scripts-search/NAS-Bench-201-algos/DARTS-V1.sh cifar10 1 -1``): ``affine=False``,
  ``track_running_stats=True``; its iteration is that of ``search_func`` in
  ``exps/NAS-Bench-201-algos/DARTS-V1.py``: the architecture step ``a_optimizer.zero_grad()``,
  forward, ``backward()``, ``a_optimizer.step()`` with Adam over ``network.get_alphas()``;
  the weight step ``w_optimizer.zero_grad()``, forward, ``backward()``,
  ``clip_grad_norm_(network.parameters(), 5)``, ``w_optimizer.step()`` with SGD over
  ``network.get_weights()``. (The script runs the weight step first; an iteration here runs
  the architecture step first, as ours and DARTS' Algorithm 1 do: the same two steps.)
  Install it with ``pip install --no-deps xautodl==1.0.0``; nothing here installs it.

Both sides use identical hyperparameters: SGD for the weights with lr 0.025, momentum 0.9,
weight decay 3e-4 (no Nesterov; the peer's own ``DARTS.config`` uses Nesterov momentum and
weight decay 5e-4, which change little of a step's time and nothing of its memory), the
gradient clipped at norm 5; Adam for the alphas with lr 3e-4, betas (0.5, 0.999), weight
decay 1e-3. Both train on the same seeded random batches (``torch.manual_seed(seed)``: a
training batch, then a validation batch) with the same number of torch threads. The first
``warmup`` iterations (default 1) run untimed, then ``steps`` iterations (default 2: an
iteration takes seconds on a CPU) are timed one each; each
iteration's architecture step and weight step are timed separately too (ours: the
architecture step is :meth:`~optuna_nas.darts.DartsSearch.arch_gradient`, the rest of
:meth:`~optuna_nas.darts.DartsSearch.step`, Adam's tiny update included, counts as the
weight step).

Parameters. Each side records its weights and its alphas; the benchmark prints both sides'
totals and their relative difference, and flags a difference above 1% (the two networks
differ only in details such as the stem's batch norm).

Peak memory is measured as in :mod:`optuna_nas.benchmarks._peer`: a tiny runtime
warm-up step before the baseline, then on the CPU ``VmHWM - VmRSS(baseline) - growth of
RssFile + RssShmem`` (``VmHWM`` reset at the baseline), on CUDA
``max_memory_allocated - memory_allocated(baseline)``.

``--json FILE`` writes ``ours_ms``, ``peer_ms``, ``time_ratio`` (ours/peer),
``ours_peak_mb``, ``peer_peak_mb``, ``memory_ratio`` (ours/peer), the parameter counts and
every run. With ``rounds`` above 1 each round starts one fresh process per side, the order
rotated; a side's time is its lowest round mean and its peak the highest over the rounds.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from optuna_nas.benchmarks import _peer
from optuna_nas.benchmarks._peer import PEER_INSTALL, PeerMissingError, StepConfig, peer_available

__all__ = [
    "ARCH_BETAS",
    "ARCH_LEARNING_RATE",
    "ARCH_WEIGHT_DECAY",
    "GRAD_CLIP",
    "PARAMETER_TOLERANCE",
    "PEER_INSTALL",
    "SIDES",
    "DartsBenchmark",
    "DartsBenchmarkError",
    "DartsRun",
    "PeerMissingError",
    "darts_config",
    "measure_darts_side",
    "peer_available",
    "run_darts_benchmark",
]

SIDES: tuple[str, ...] = ("ours", "peer")
"""``ours``: :class:`~optuna_nas.darts.DartsSearch`; ``peer``: xautodl's DARTS-V1."""

ARCH_LEARNING_RATE = 3e-4
ARCH_BETAS = (0.5, 0.999)
ARCH_WEIGHT_DECAY = 1e-3
GRAD_CLIP = 5.0

PARAMETER_TOLERANCE = 0.01
"""The largest relative difference of the sides' parameter counts of a like-for-like run."""



class DartsBenchmarkError(_peer.PeerBenchmarkError):
    """A benchmark process failed (e.g. out of memory); the message ends with its error."""


_HARNESS = _peer.Harness("optuna_nas.benchmarks._darts", SIDES, DartsBenchmarkError)


def darts_config(**overrides: Any) -> StepConfig:
    """The settings of the issue's run (2 timed iterations after 1 warm-up), overridden.

    Args:
        **overrides: Fields of :class:`~optuna_nas.benchmarks._supernet.StepConfig`.
    """
    return StepConfig(**{"steps": 2, "warmup": 1, **overrides})


@dataclass(frozen=True)
class DartsRun:
    """One side's run in one fresh process.

    Args:
        side: ``"ours"`` or ``"peer"``.
        round: The round, from 0.
        step_ms: Milliseconds of each timed iteration, in order.
        arch_ms: Milliseconds of each timed iteration's architecture step.
        weight_ms: Milliseconds of each timed iteration's weight step.
        peak_mb: Peak memory of the run over its baseline, MiB.
        baseline_mb: RSS (CPU) or allocated memory (CUDA) at the baseline, MiB.
        memory_method: How the peak was measured.
        threads: ``torch.get_num_threads()`` in the process.
        weights: Parameters trained by the weight step.
        alphas: Parameters trained by the architecture step.
        wall_s: Seconds the process took, start-up included.
    """

    side: str
    round: int
    step_ms: tuple[float, ...]
    arch_ms: tuple[float, ...]
    weight_ms: tuple[float, ...]
    peak_mb: float
    baseline_mb: float
    memory_method: str
    threads: int
    weights: int
    alphas: int
    wall_s: float

    @property
    def parameters(self) -> int:
        """Weights and alphas."""
        return self.weights + self.alphas

    @property
    def mean_ms(self) -> float:
        """Mean milliseconds per timed iteration."""
        return sum(self.step_ms) / len(self.step_ms)

    @property
    def mean_arch_ms(self) -> float:
        """Mean milliseconds of the architecture step."""
        return sum(self.arch_ms) / len(self.arch_ms)

    @property
    def mean_weight_ms(self) -> float:
        """Mean milliseconds of the weight step."""
        return sum(self.weight_ms) / len(self.weight_ms)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready record, with the means and the parameter total."""
        return _peer.run_document(
            self,
            mean_ms=self.mean_ms,
            mean_arch_ms=self.mean_arch_ms,
            mean_weight_ms=self.mean_weight_ms,
            parameters=self.parameters,
        )

    def line(self) -> str:
        """A progress line."""
        return _peer.run_line(
            self,
            f"iteration {self.mean_ms:9.1f} ms  "
            f"(arch {self.mean_arch_ms:.1f} + weights {self.mean_weight_ms:.1f})",
        )


@dataclass(frozen=True)
class DartsBenchmark:
    """The result of :func:`run_darts_benchmark`."""

    config: StepConfig
    rounds: int
    runs: Mapping[str, tuple[DartsRun, ...]]
    peer_version: str | None = None
    machine: Mapping[str, Any] = field(default_factory=dict)

    def best(self, side: str) -> DartsRun | None:
        """The side's round with the lowest mean iteration time, or ``None``."""
        runs = self.runs.get(side, ())
        return min(runs, key=lambda run: run.mean_ms) if runs else None

    def peak_mb(self, side: str) -> float | None:
        """The side's highest peak memory over the rounds, MiB, or ``None``."""
        runs = self.runs.get(side, ())
        return max(run.peak_mb for run in runs) if runs else None

    def parameter_difference(self) -> float | None:
        """``|ours - peer| / peer`` of the parameter counts (weights and alphas)."""
        ours, peer = self.best("ours"), self.best("peer")
        if ours is None or peer is None:
            return None
        return abs(ours.parameters - peer.parameters) / peer.parameters

    def figures(self) -> dict[str, float | None]:
        """The headline figures; ``None`` for a side that did not run."""
        ours, peer = self.best("ours"), self.best("peer")
        ours_ms = None if ours is None else ours.mean_ms
        peer_ms = None if peer is None else peer.mean_ms
        return _peer.headline_figures(ours_ms, peer_ms, self.peak_mb("ours"), self.peak_mb("peer"))

    def as_dict(self) -> dict[str, Any]:
        """The JSON document: the figures, the settings and every run."""
        ours, peer = self.best("ours"), self.best("peer")
        difference = self.parameter_difference()
        return {
            "benchmark": "darts",
            **self.figures(),
            "ours_parameters": None if ours is None else ours.parameters,
            "peer_parameters": None if peer is None else peer.parameters,
            "parameter_difference": difference,
            "parameters_match": None if difference is None else difference <= PARAMETER_TOLERANCE,
            "time": (
                "per side, the lowest round mean of the timed iterations (ms); an iteration is "
                "a first-order architecture step on the validation batch then a weight step "
                "on the training batch"
            ),
            "memory": _peer.MEMORY_NOTE,
            "config": asdict(self.config),
            "rounds": self.rounds,
            "weight_optimizer": {
                "name": "SGD",
                "lr": _peer.LEARNING_RATE,
                "momentum": _peer.MOMENTUM,
                "weight_decay": _peer.WEIGHT_DECAY,
                "grad_clip": GRAD_CLIP,
            },
            "arch_optimizer": {
                "name": "Adam",
                "lr": ARCH_LEARNING_RATE,
                "betas": list(ARCH_BETAS),
                "weight_decay": ARCH_WEIGHT_DECAY,
            },
            "peer": _peer.peer_document(self.peer_version, "DARTS-V1 (get_cell_based_tiny_net)"),
            "machine": dict(self.machine),
            "runs": {side: [run.as_dict() for run in runs] for side, runs in self.runs.items()},
        }

    def lines(self) -> list[str]:
        """The table, the parameter check and the ratios, for printing."""
        names = {"ours": "ours (DartsSearch)", "peer": "xautodl DARTS-V1"}
        out = [
            f"{'side':<20}{'ms/iter':>10}{'arch ms':>10}{'weight ms':>11}{'peak MiB':>10}"
            f"{'params':>12}",
        ]
        for side in SIDES:
            run = self.best(side)
            peak = self.peak_mb(side)
            if run is None or peak is None:
                continue
            out.append(
                f"{names[side]:<20}{run.mean_ms:>10.1f}{run.mean_arch_ms:>10.1f}"
                f"{run.mean_weight_ms:>11.1f}{peak:>10.1f}{run.parameters:>12,}"
            )
        difference = self.parameter_difference()
        if difference is not None:
            verdict = (
                "within 1%" if difference <= PARAMETER_TOLERANCE
                else "MORE THAN 1%: not the same configuration"
            )
            out.append(f"parameter difference:      {difference:.2%} ({verdict})")
        return out + _peer.ratio_lines(
            self.figures(),
            ("time ratio ours/peer", "time_ratio"),
            ("memory ratio ours/peer", "memory_ratio"),
        )


def measure_darts_side(side: str, config: StepConfig, *, round_index: int = 0) -> DartsRun:
    """Run one side in a fresh Python process and return its figures.

    Args:
        side: ``"ours"`` or ``"peer"``.
        config: The settings.
        round_index: Recorded in the result.

    Raises:
        PeerMissingError: ``side`` is ``"peer"`` and xautodl cannot be imported.
        DartsBenchmarkError: The process failed.
    """
    spec = {"side": side, "config": asdict(config)}
    fields, document = _HARNESS.measure(side, spec, round_index=round_index)
    return DartsRun(
        **fields,
        arch_ms=tuple(float(v) for v in document["arch_ms"]),
        weight_ms=tuple(float(v) for v in document["weight_ms"]),
        weights=int(document["weights"]),
        alphas=int(document["alphas"]),
    )


def run_darts_benchmark(
    config: StepConfig | None = None, *, rounds: int = 1, peer: bool = True,
    progress: Callable[[DartsRun], None] | None = None,
) -> DartsBenchmark:
    """Time and measure DartsSearch and xautodl's DARTS-V1, each in its own process, by rounds.

    Args:
        config: The settings (default: :func:`darts_config`, the issue's size).
        rounds: Rounds; each runs every side once, the order rotated.
        peer: Whether to run the peer (xautodl); ``False`` runs ``ours`` only.
        progress: Called with each run as it finishes.

    Raises:
        PeerMissingError: ``peer`` is true and xautodl is not installed (checked first).
        DartsBenchmarkError: A process failed.
    """
    chosen = darts_config() if config is None else config

    def measure(side: str, round_index: int) -> DartsRun:
        return measure_darts_side(side, chosen, round_index=round_index)

    runs, machine = _HARNESS.run_rounds(measure, rounds=rounds, peer=peer, progress=progress)
    return DartsBenchmark(
        config=chosen,
        rounds=rounds,
        runs=runs,
        peer_version=_HARNESS.peer_version(peer),
        machine=machine,
    )


# ---- The worker: ``python -m optuna_nas.benchmarks._darts SPEC_JSON`` ---------------------


def _worker(spec: Mapping[str, Any]) -> dict[str, Any]:
    import torch
    from torch import nn

    from optuna_nas.darts import DartsSearch
    from optuna_nas.spaces import NasBench201Space

    process = _peer.SideProcess(spec)
    side, config, device = process.side, process.config, process.device
    space = NasBench201Space()
    train, valid = process.batches(2)
    process.start_memory()

    arch_times: list[float] = []
    iteration: Callable[[], None]
    if side == "ours":
        searcher = DartsSearch(
            space,
            num_classes=config.num_classes,
            in_channels=3,
            channels=config.channels,
            cells_per_stage=config.cells_per_stage,
            order="first",
            arch_lr=ARCH_LEARNING_RATE,
            arch_betas=ARCH_BETAS,
            arch_weight_decay=ARCH_WEIGHT_DECAY,
            weight_lr=_peer.LEARNING_RATE,
            momentum=_peer.MOMENTUM,
            weight_decay=_peer.WEIGHT_DECAY,
            grad_clip=GRAD_CLIP,
            seed=config.seed,
            device=device,
        )
        weights = sum(p.numel() for p in searcher.supernet.parameters())
        alphas = sum(a.numel() for a in searcher.alphas.values())
        arch_gradient = searcher.arch_gradient

        def timed_arch_gradient(
            train_batch: tuple[torch.Tensor, torch.Tensor],
            valid_batch: tuple[torch.Tensor, torch.Tensor],
        ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
            found, ms = process.timed(lambda: arch_gradient(train_batch, valid_batch))
            arch_times.append(ms)
            return found

        # Times the architecture step inside step(); the instance attribute shadows the method.
        setattr(searcher, "arch_gradient", timed_arch_gradient)  # noqa: B010

        def iteration() -> None:
            searcher.step(train, valid)

    else:
        network = _peer.peer_network("DARTS-V1", config, space.ops).to(device).train()
        weights = sum(p.numel() for p in network.get_weights())
        alphas = sum(p.numel() for p in network.get_alphas())
        w_optimizer = _peer.weight_sgd(network.get_weights())
        a_optimizer = torch.optim.Adam(
            network.get_alphas(),
            lr=ARCH_LEARNING_RATE,
            betas=ARCH_BETAS,
            weight_decay=ARCH_WEIGHT_DECAY,
        )
        criterion = nn.CrossEntropyLoss()

        def arch_step() -> None:
            a_optimizer.zero_grad()
            _, logits = network(valid[0])
            criterion(logits, valid[1]).backward()
            a_optimizer.step()

        def iteration() -> None:
            # search_func of xautodl's exps/NAS-Bench-201-algos/DARTS-V1.py, arch step first.
            arch_times.append(process.timed(arch_step)[1])
            w_optimizer.zero_grad()
            _, logits = network(train[0])
            criterion(logits, train[1]).backward()
            nn.utils.clip_grad_norm_(network.parameters(), GRAD_CLIP)
            w_optimizer.step()

    step_ms: list[float] = []
    arch_ms: list[float] = []
    weight_ms: list[float] = []
    for k in range(config.warmup + config.steps):
        total = process.timed(iteration)[1]
        if k >= config.warmup:
            step_ms.append(total)
            arch_ms.append(arch_times[-1])
            weight_ms.append(total - arch_times[-1])
    return process.result(
        step_ms=step_ms, arch_ms=arch_ms, weight_ms=weight_ms, weights=weights, alphas=alphas
    )


if __name__ == "__main__":
    sys.exit(_peer.worker_main(sys.argv[1:], _HARNESS.module, _worker))
