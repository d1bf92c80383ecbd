"""Paths the tests share: the read-only ``shared/`` folder beside the checkout."""

from __future__ import annotations

from pathlib import Path

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
NASBENCH201_TABLE = SHARED / "benchmarks" / "nasbench201" / "cifar10.csv"
FCNET_TABLE = SHARED / "benchmarks" / "fcnet" / "slice_localization.csv"
