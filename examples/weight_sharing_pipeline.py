"""Li & Talwalkar's three stages on the digits data: weight-sharing search, retrain the top
architectures from scratch, evaluate the best with several seeds.

Run (about two minutes on 2 CPU cores; a second run prints the same numbers):
      python examples/weight_sharing_pipeline.py
ENAS instead of random search:
      python examples/weight_sharing_pipeline.py --enas
Keep the studies and the supernet checkpoint (a rerun resumes them):
      python examples/weight_sharing_pipeline.py --storage sqlite:///pipeline.db \
          --checkpoint pipeline_supernet.pt
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import optuna
import torch

import optuna_nas as nas
from optuna_nas.pipeline import PipelineResult, run_pipeline


def run(args: argparse.Namespace) -> PipelineResult:
    """Run the pipeline with the command line's settings."""
    space = nas.spaces.NasBench201Space()
    data = nas.load_digits(seed=0)
    sampler = (
        nas.ControllerSampler(space, preset="enas", seed=args.seed) if args.enas else None
    )
    return run_pipeline(
        space,
        data,
        search_trials=args.search_trials,
        steps_per_trial=args.steps_per_trial,
        eval_batches=None,  # digits' validation split is small: score on all of it
        top_k=args.top_k,
        retrain_epochs=args.retrain_epochs,
        evaluate_epochs=args.evaluate_epochs,
        seeds=args.seeds,
        seed=args.seed,
        supernet_options={"channels": args.channels, "cells_per_stage": 1},
        network_options={"channels": args.channels, "cells_per_stage": 1},
        search_options={"lr": 0.05},
        train_options={"lr": 0.05},
        sampler=sampler,
        storage=args.storage,
        checkpoint=args.checkpoint,
    )


def report(result: PipelineResult) -> str:
    """The pipeline's result as printed lines."""
    lines = ["stage 1: weight-sharing search", "  top architectures (shared-weight accuracy):"]
    lines += [f"    {acc:.4f}  {arch}" for arch, acc in result.candidates]
    lines.append("stage 2: retrained from scratch (validation accuracy):")
    for t in result.retrain.get_trials(deepcopy=False):
        lines.append(f"    {t.value:.4f}  {t.user_attrs.get('architecture')}")
    lines.append(f"stage 3: best {result.best}")
    per_seed = ", ".join(
        f"seed {s}: {a:.4f}" for s, a in zip(result.seeds, result.test_accuracies, strict=True)
    )
    lines.append(f"  test accuracy {result.mean:.4f} ± {result.std:.4f} ({per_seed})")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--search-trials", type=int, default=100)
    parser.add_argument("--steps-per-trial", type=int, default=5)
    parser.add_argument("--top-k", type=int, default=3)
    parser.add_argument("--retrain-epochs", type=int, default=4)
    parser.add_argument("--evaluate-epochs", type=int, default=6)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--channels", type=int, default=8)
    parser.add_argument("--enas", action="store_true", help="ControllerSampler(preset='enas')")
    parser.add_argument("--storage", default=None, help="Optuna storage URL (default: memory)")
    parser.add_argument("--checkpoint", default=None, help="supernet checkpoint file")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # tiny tensors: one thread is fastest and repeats exactly
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    print(report(run(args)))


if __name__ == "__main__":
    main()
