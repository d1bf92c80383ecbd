"""Auto-DeepLab end to end on the generated shapes set, on the CPU.

Search the hierarchical space (cell alphas and network betas, first order, the architecture
step after a warm-up), decode the path with Viterbi and the cell as in DARTS, then build
the decoded network with its ASPP head, train it from scratch and compare its test mean
IoU with predicting the most frequent class everywhere.

Run (about two minutes on 2 CPU cores, four and a half when other jobs share them; a
second run prints the same numbers):
      python examples/autodeeplab_synthetic.py
The paper's sizes on real data need a GPU and VOC or Cityscapes in a local folder:
      optuna_nas.autodeeplab.search(load_cityscapes("data/cityscapes"))   # L=12, B=5, F=8
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from collections.abc import Sequence

import torch
from torch.utils.data import Subset

from optuna_nas.autodeeplab import (
    constant_baseline,
    evaluate_miou,
    search,
    synthetic_segmentation,
    train_segmentation,
)
from optuna_nas.training import count_parameters, seed_everything


def run(args: argparse.Namespace) -> list[str]:
    """Search, decode, train and evaluate; the printed lines."""
    start = time.perf_counter()
    data = synthetic_segmentation(args.images, size=args.image_size,
                                  num_classes=args.classes, seed=args.seed)
    assert data.test is not None
    # The search runs on the first images of the training and validation splits only: its
    # supernet costs over ten times the decoded network per image.
    search_data = dataclasses.replace(
        data,
        train=Subset(data.train, range(min(args.search_images, len(data.train)))),
        valid=Subset(data.valid, range(min(args.search_images // 4, len(data.valid)))),
    )
    lines = [
        f"data: {data.name}, {len(data.train)} train / {len(data.valid)} valid / "
        f"{len(data.test)} test images of {args.image_size}x{args.image_size}, "
        f"classes {', '.join(data.class_names)}",
        f"search: L={args.layers}, B={args.blocks}, F={args.filter_multiplier}, "
        f"{args.search_epochs} epochs (architecture steps from epoch {args.warmup_epochs}) "
        f"on {len(search_data.train)} training and {len(search_data.valid)} validation "
        "images",
    ]
    result = search(
        search_data,
        layers=args.layers,
        blocks=args.blocks,
        filter_multiplier=args.filter_multiplier,
        epochs=args.search_epochs,
        warmup_epochs=args.warmup_epochs,
        batch_size=args.search_batch_size,
        weight_lr=args.search_lr,
        # The paper's rates suit 500-pixel crops; these 32-pixel images have 8x8 features
        # at rate 4: rate 2 there (and 1 at coarser levels).
        aspp_rates=(0.5,),
        seed=args.seed,
        device="cpu",
    )
    searched = time.perf_counter()
    history = ", ".join(f"{m:.3f}" for m in result.history)
    lines += [
        f"  supernet valid mIoU per epoch: {history}",
        f"  path (downsampling rate per layer): {result.rates}",
        f"  cell: {result.cell}",
        f"  architecture: {result.architecture}",
    ]
    seed_everything(args.seed)
    model = result.space.build(
        result.architecture,
        num_classes=data.num_classes,
        filter_multiplier=args.train_filter_multiplier,
        aspp_channels=args.aspp_channels,
        aspp_rates=(0.25, 0.5, 0.75),  # rates 1, 2, 3 at rate 4 (1, 2 at rate 8)
    )
    valid = train_segmentation(model, data, epochs=args.train_epochs, lr=args.lr,
                               batch_size=args.batch_size, seed=args.seed, device="cpu")
    test = evaluate_miou(model, data.test, data.num_classes, device="cpu")
    majority, baseline = constant_baseline(data.train, data.test, data.num_classes)
    lines += [
        f"decoded network: F={args.train_filter_multiplier}, "
        f"{count_parameters(model):,} parameters, {args.train_epochs} epochs",
        f"  valid mIoU {valid:.4f}",
        f"  test mIoU {test:.4f}",
        f"  constant predictor (class {majority}, {data.class_names[majority]}) test mIoU "
        f"{baseline:.4f}",
        f"time: search {searched - start:.0f} s, total {time.perf_counter() - start:.0f} s",
    ]
    return lines


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--search-images", type=int, default=160)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--classes", type=int, default=4)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--blocks", type=int, default=2)
    parser.add_argument("--filter-multiplier", type=int, default=4)
    parser.add_argument("--search-epochs", type=int, default=6)
    parser.add_argument("--warmup-epochs", type=int, default=3)
    parser.add_argument("--search-batch-size", type=int, default=8)
    parser.add_argument("--search-lr", type=float, default=0.1)
    parser.add_argument("--train-filter-multiplier", type=int, default=8)
    parser.add_argument("--aspp-channels", type=int, default=32)
    parser.add_argument("--train-epochs", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # tiny tensors: one thread is fastest and repeats exactly
    print("\n".join(run(args)), flush=True)


if __name__ == "__main__":
    main()
