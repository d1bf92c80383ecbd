"""Cost-aware DARTS on digits: ``python -m optuna_nas.benchmarks darts-cost``.

For each cost weight, one DARTS search of NAS-Bench-201's cell space on scikit-learn's
digits at tiny width (the same seed for every weight) with the FBNet / ProxylessNAS cost
term (:func:`optuna_nas.darts.search` with ``cost_weight`` and ``op_costs``); then the
derived cell's network is built, its FLOPs, parameters and CPU latency measured, and it is
trained from scratch and scored on the test split. One line per weight.

Papers: Wu et al., "FBNet", CVPR 2019, https://arxiv.org/abs/1812.03443; Cai et al.,
"ProxylessNAS", ICLR 2019, https://arxiv.org/abs/1812.00332.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from optuna_nas.benchmarks._args import positive_int as _positive_int

__all__ = ["CostRow", "add_parser", "format_rows", "run_darts_cost"]


@dataclass(frozen=True)
class CostRow:
    """What one cost weight found.

    Args:
        cost_weight: The cost term's weight.
        architecture: The derived cell (NAS-Bench-201's string).
        flops: FLOPs of the derived network on one image (a multiply-add counts two).
        params: Its trainable parameters.
        latency_ms: Its CPU latency at batch 1, one thread (median of the best round).
        expected_cost: The supernet's expected normalised cost at the end (0 to 1), or
            ``None`` for weight 0.
        supernet_accuracy: The weighted supernet's validation accuracy.
        test_accuracy: The derived network's test accuracy, trained from scratch.
        search_s: Seconds of the search.
    """

    cost_weight: float
    architecture: str
    flops: int
    params: int
    latency_ms: float
    expected_cost: float | None
    supernet_accuracy: float
    test_accuracy: float
    search_s: float


def run_darts_cost(
    weights: Sequence[float],
    *,
    seed: int = 0,
    epochs: int = 6,
    retrain_epochs: int = 6,
    channels: int = 8,
    cells_per_stage: int = 1,
    arch_lr: float = 1e-2,
    weight_lr: float = 0.05,
    order: str = "first",
    op_costs: str = "flops",
    batch_size: int = 64,
    latency_rounds: int = 3,
    device: str = "cpu",
    log: bool = False,
) -> list[CostRow]:
    """Search, derive, measure and retrain once per cost weight.

    Args:
        weights: The cost weights, e.g. ``(0, 0.1, 1)``.
        seed: Seed of the data split, the searches and the retraining.
        epochs: Search epochs.
        retrain_epochs: Epochs of training each derived network from scratch.
        channels: Channels of the first stage.
        cells_per_stage: NAS-Bench-201 cells per stage.
        arch_lr: Adam's learning rate for the alphas.
        weight_lr: The supernet's and the retraining's SGD learning rate.
        order: ``"first"`` or ``"second"``.
        op_costs: ``"flops"`` or ``"latency"`` (the cost table).
        batch_size: Minibatch size of the search and the retraining.
        latency_rounds: Rounds of :func:`~optuna_nas.measure_latency`; the fastest counts.
        device: Where to search and retrain (the latency is always the CPU's).
        log: Print each row as it is found.

    Returns:
        One row per weight, in the given order.
    """
    import optuna_nas as nas
    from optuna_nas.spaces import NasBench201Space

    space = NasBench201Space()
    data = nas.load_digits(seed=seed)
    assert data.test is not None
    sizing = {"channels": channels, "cells_per_stage": cells_per_stage,
              "in_channels": data.in_channels, "num_classes": data.num_classes}
    rows: list[CostRow] = []
    for weight in weights:
        result = nas.darts.search(
            space, data, epochs=epochs, order=order, arch_lr=arch_lr, weight_lr=weight_lr,
            channels=channels, cells_per_stage=cells_per_stage, batch_size=batch_size,
            seed=seed, cost_weight=weight, op_costs=op_costs, device=device,
        )
        nas.seed_everything(seed)
        model = space.build(result.architecture, **sizing)
        shape = (data.in_channels, data.image_size, data.image_size)
        flops = nas.count_flops(model, shape)
        params = nas.count_parameters(model)
        latency = min(nas.measure_latency(model, shape, device="cpu")
                      for _ in range(latency_rounds))
        nas.train(model, data, epochs=retrain_epochs, lr=weight_lr, batch_size=batch_size,
                  seed=seed, device=device, costs=())
        rows.append(CostRow(
            cost_weight=float(weight),
            architecture=str(result.architecture),
            flops=flops,
            params=params,
            latency_ms=latency * 1e3,
            expected_cost=result.expected_cost,
            supernet_accuracy=result.valid_accuracy,
            test_accuracy=nas.evaluate(model, data.test, device=device),
            search_s=result.seconds,
        ))
        if log:
            print(format_rows(rows[-1:], header=not rows[:-1]), flush=True)
    return rows


def format_rows(rows: Sequence[CostRow], *, header: bool = True) -> str:
    """The rows as a table: weight, FLOPs, params, latency, accuracies, the cell."""
    lines = ["weight    FLOPs  params  latency ms  exp. cost  supernet  test acc  search s  "
             "derived cell"] if header else []
    for r in rows:
        cost = "-" if r.expected_cost is None else f"{r.expected_cost:.3f}"
        lines.append(
            f"{r.cost_weight:6g} {r.flops:8d} {r.params:7d} {r.latency_ms:11.3f} {cost:>10} "
            f"{r.supernet_accuracy:9.4f} {r.test_accuracy:9.4f} {r.search_s:9.1f}  "
            f"{r.architecture}"
        )
    return "\n".join(lines)


def _weights(text: str) -> list[float]:
    try:
        values = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        values = []
    if not values or not all(math.isfinite(v) and v >= 0 for v in values):
        raise argparse.ArgumentTypeError(
            f"expected comma-separated non-negative cost weights, e.g. 0,0.1,1; got {text!r}"
        )
    return values


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``darts-cost`` subcommand to the benchmarks' command line."""
    parser = subparsers.add_parser(
        "darts-cost",
        help="cost-aware DARTS (FBNet / ProxylessNAS cost term) on digits, per cost weight",
        description=(
            "For each cost weight, search NAS-Bench-201's cell space on the digits data with "
            "DARTS plus cost_weight times the expected cost (same seed for every weight), "
            "then print the derived cell, its FLOPs, parameters, CPU latency (batch 1, one "
            "thread) and its test accuracy after training it from scratch."
        ),
    )
    parser.add_argument("--weights", type=_weights, default=[0.0, 0.1, 1.0],
                        help="comma-separated cost weights (default: 0,0.1,1)")
    parser.add_argument("--seed", type=int, default=0, help="seed of everything (default: 0)")
    parser.add_argument("--epochs", type=_positive_int, default=6,
                        help="search epochs (default: 6)")
    parser.add_argument("--retrain-epochs", type=_positive_int, default=6,
                        help="epochs of training each derived cell from scratch (default: 6)")
    parser.add_argument("--channels", type=_positive_int, default=8,
                        help="channels of the first stage (default: 8)")
    parser.add_argument("--cells-per-stage", type=_positive_int, default=1,
                        help="cells per stage (default: 1)")
    parser.add_argument("--arch-lr", type=float, default=1e-2,
                        help="Adam's learning rate for the alphas (default: 0.01)")
    parser.add_argument("--weight-lr", type=float, default=0.05,
                        help="SGD learning rate of the weights (default: 0.05)")
    parser.add_argument("--order", choices=["first", "second"], default="first")
    parser.add_argument("--op-costs", choices=["flops", "latency"], default="flops",
                        help="the cost table (default: flops)")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    print(f"darts-cost: NAS-Bench-201 cells on digits, {args.channels} channels, "
          f"{args.cells_per_stage} cell(s) per stage, {args.epochs} search epochs "
          f"({args.order} order, op_costs={args.op_costs}), {args.retrain_epochs} retraining "
          f"epochs, seed {args.seed}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads", flush=True)
    rows = run_darts_cost(
        args.weights, seed=args.seed, epochs=args.epochs, retrain_epochs=args.retrain_epochs,
        channels=args.channels, cells_per_stage=args.cells_per_stage, arch_lr=args.arch_lr,
        weight_lr=args.weight_lr, order=args.order, op_costs=args.op_costs, log=True,
    )
    print(f"total {time.perf_counter() - start:.0f} s", flush=True)
    if args.json is not None:
        args.json.write_text(json.dumps([asdict(r) for r in rows], indent=2) + "\n",
                             encoding="utf-8")
    return 0
