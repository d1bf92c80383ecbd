"""Zero-cost proxies on NAS-Bench-201: the proxy table, and the proxies' rank correlations.

Every architecture is built as the benchmark trains it (16 channels, 5 cells per stage,
10 classes, 32x32 inputs) from ``torch.manual_seed(seed)``, and scored with
:func:`optuna_nas.zero_cost.score` under the same seed, so a row of the table can be
recomputed from its architecture string alone.
"""

from __future__ import annotations

import argparse
import csv
import functools
import json
import math
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from optuna.samplers import BaseSampler
from torch import nn

from optuna_nas.benchmarks import _asha
from optuna_nas.benchmarks._args import positive_int
from optuna_nas.benchmarks._nasbench201 import NasBench201Table
from optuna_nas.errors import TableError
from optuna_nas.samplers._controller import ControllerSampler
from optuna_nas.samplers._registry import register_sampler
from optuna_nas.spaces import NasBench201Space
from optuna_nas.spaces._base import Architecture, SearchSpace
from optuna_nas.zero_cost import DATA_FREE_PROXIES, list_proxies, score

#: The proxy table that ships with the package (all 15,625 architectures, seed 0).
PROXY_TABLE_PATH = Path(__file__).with_name("nasbench201_proxies.csv")

#: The network the benchmark trains.
NETWORK = {"channels": 16, "cells_per_stage": 5, "num_classes": 10, "in_channels": 3}
IMAGE_SIZE = 32


def nasbench201_network(arch: str, *, seed: int = 0,
                        space: NasBench201Space | None = None) -> nn.Module:
    """The benchmark's network for an architecture string, initialised from ``seed``."""
    space = space if space is not None else NasBench201Space()
    parsed = space.parse(arch)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return space.build(parsed, **NETWORK)


def _data_free_batch() -> tuple[torch.Tensor, torch.Tensor]:
    # The data-free proxies only read the sample shape.
    return torch.zeros(1, NETWORK["in_channels"], IMAGE_SIZE, IMAGE_SIZE), torch.zeros(
        1, dtype=torch.long)


def proxy_scores(arch: str, proxies: Sequence[str], *, seed: int = 0,
                 batch: tuple[torch.Tensor, torch.Tensor] | None = None,
                 space: NasBench201Space | None = None) -> dict[str, float]:
    """Score one architecture with several proxies (one network, built once)."""
    model = nasbench201_network(arch, seed=seed, space=space)
    inputs, targets = batch if batch is not None else _data_free_batch()
    return {p: score(model, inputs, targets, proxy=p, seed=seed) for p in proxies}


# ----------------------------------------------------------------------------------------
# The proxy table.


class ProxyTable(Mapping[str, Mapping[str, float]]):
    """Proxy scores per NAS-Bench-201 architecture string, read from a proxy table CSV.

    The CSV has an ``arch`` column and one column per proxy; ``seed`` (first line comment
    free) is the seed every row was computed with.

    Args:
        scores: ``{arch: {proxy: value}}``.
        seed: The seed the rows were computed with.
        path: Where the table was read from, for messages.
    """

    def __init__(self, scores: Mapping[str, Mapping[str, float]], *, seed: int,
                 path: Path | None = None) -> None:
        self._scores = {a: dict(v) for a, v in scores.items()}
        self.seed = seed
        self.path = path
        self.proxies: tuple[str, ...] = tuple(next(iter(self._scores.values()), {}))

    def __getitem__(self, arch: str) -> Mapping[str, float]:
        try:
            return self._scores[arch]
        except KeyError:
            where = f" {str(self.path)!r}" if self.path else ""
            raise TableError(
                f"The proxy table{where} has no row for {arch!r}; write the missing rows "
                f"with 'python -m optuna_nas.benchmarks zero-cost-table'."
            ) from None

    def __iter__(self) -> Any:
        return iter(self._scores)

    def __len__(self) -> int:
        return len(self._scores)

    def column(self, proxy: str) -> dict[str, float]:
        """``{arch: value}`` of one proxy."""
        if proxy not in self.proxies:
            raise TableError(
                f"The proxy table has no {proxy!r} column; its proxies are "
                f"{list(self.proxies)}. Write it with 'python -m optuna_nas.benchmarks "
                f"zero-cost-table --proxies {proxy}'."
            )
        return {a: v[proxy] for a, v in self._scores.items()}

    @classmethod
    def load(cls, path: str | os.PathLike[str] = PROXY_TABLE_PATH) -> ProxyTable:
        """Read and check a proxy table (by default the one shipped with the package).

        Raises:
            TableError: The file is missing, or a column or value is malformed.
        """
        file = Path(path)
        what = ("a proxy table written by 'python -m optuna_nas.benchmarks zero-cost-table' "
                "(columns arch, seed and one per proxy)")
        if not file.is_file():
            raise TableError(f"Proxy table {str(file)!r} does not exist; expected {what}.")
        header, rows = _read_rows(file)
        if header is None:
            raise TableError(f"Proxy table {str(file)!r} is empty; expected {what}.")
        proxies = _check_header(header, file, what)
        scores: dict[str, dict[str, float]] = {}
        seeds: set[str] = set()
        for number, row in enumerate(rows, start=2):
            values: dict[str, float] = {}
            for proxy in proxies:
                try:
                    value = float(row[proxy])
                except (TypeError, ValueError):
                    value = math.nan
                if not math.isfinite(value):
                    raise TableError(
                        f"Proxy table {str(file)!r}, line {number}: {proxy} is "
                        f"{row.get(proxy)!r}, not a finite number; delete the line and run "
                        f"zero-cost-table again to recompute it."
                    )
                values[proxy] = value
            scores[row["arch"]] = values
            seeds.add(row["seed"])
        if not scores:
            raise TableError(f"Proxy table {str(file)!r} has no rows; expected {what}.")
        if len(seeds) != 1 or not next(iter(seeds)).lstrip("-").isdigit():
            raise TableError(
                f"Proxy table {str(file)!r} mixes seeds {sorted(seeds)}; every row must be "
                f"computed with one integer seed."
            )
        return cls(scores, seed=int(next(iter(seeds))), path=file)


def _read_rows(file: Path) -> tuple[list[str] | None, list[dict[str, str]]]:
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise TableError(f"Proxy table {str(file)!r} cannot be read ({error}).") from None
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines.pop()  # Cut short by a killed writer: dropped here, rewritten on resume.
    reader = csv.DictReader(lines)
    rows = [r for r in reader if None not in r.values() and None not in r]
    return (list(reader.fieldnames) if reader.fieldnames else None), rows


def _check_header(header: Sequence[str], file: Path, what: str) -> list[str]:
    if header[:2] != ["arch", "seed"] or len(header) < 3:
        raise TableError(
            f"Proxy table {str(file)!r} has columns {list(header)}; expected {what}."
        )
    proxies = list(header[2:])
    unknown = [p for p in proxies if p not in list_proxies()]
    if unknown:
        raise TableError(
            f"Proxy table {str(file)!r} has columns {unknown} that are not zero-cost proxies; "
            f"known proxies: {list_proxies()}."
        )
    return proxies


def write_proxy_table(
    table: NasBench201Table,
    out: str | os.PathLike[str],
    *,
    proxies: Sequence[str] = DATA_FREE_PROXIES,
    seed: int = 0,
    limit: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Write (or go on writing) the proxy table of every architecture of ``table``.

    Rows go out one by one and are flushed, so the run can be killed at any time; a later
    call with the same ``out``, ``proxies`` and ``seed`` skips the architectures already
    written (and rewrites a last line cut short) and goes on.

    Args:
        table: The NAS-Bench-201 table whose architectures are scored, in its order.
        out: The CSV to write.
        proxies: Data-free proxies to compute (see :data:`DATA_FREE_PROXIES`).
        seed: Initialisation and scoring seed of every row.
        limit: Stop after writing this many new rows (``None``: all).
        progress: Called as ``progress(done, total)`` after each row.

    Returns:
        The number of rows written by this call.

    Raises:
        TableError: ``out`` holds a table with other proxies or another seed, or a proxy
            needs images.
    """
    file = Path(out)
    header = ["arch", "seed", *proxies]
    needs_data = [p for p in proxies if p not in DATA_FREE_PROXIES]
    if needs_data:
        raise TableError(
            f"The proxy table holds data-free proxies only ({list(DATA_FREE_PROXIES)}); "
            f"{needs_data} need images: score them with the 'zero-cost' benchmark instead."
        )
    done: list[dict[str, str]] = []
    if file.is_file() and file.stat().st_size > 0:
        old_header, done = _read_rows(file)
        if old_header != header:
            raise TableError(
                f"{str(file)!r} holds columns {old_header}, not {header}; write to another "
                f"file or delete it to start again."
            )
        seeds = {r["seed"] for r in done}
        if seeds and seeds != {str(seed)}:
            raise TableError(
                f"{str(file)!r} was written with seed {sorted(seeds)}, not {seed}; pass "
                f"--seed {next(iter(seeds))} to go on with it."
            )
    # Rewrite the finished rows, so that a last line cut short disappears.
    finished = {r["arch"] for r in done}
    temporary = file.with_name(file.name + ".tmp")
    with temporary.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        writer.writerows([r[c] for c in header] for r in done)
    os.replace(temporary, file)
    space = table.space
    total, written = len(table), 0
    with file.open("a", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        for row in table:
            arch = str(row.arch)
            if arch in finished:
                continue
            if limit is not None and written >= limit:
                break
            values = proxy_scores(arch, proxies, seed=seed, space=space)
            writer.writerow([arch, seed, *(repr(values[p]) for p in proxies)])
            handle.flush()
            written += 1
            if progress is not None:
                progress(len(finished) + written, total)
    return written


class TableScreen:
    """``screen(arch) -> float`` read from a proxy table: screening as a table look-up.

    Args:
        proxy: The table's column.
        table: The proxy table; by default the one shipped with the package.
    """

    def __init__(self, proxy: str = "synflow", table: ProxyTable | None = None) -> None:
        self.proxy = proxy
        self._column = (table if table is not None else shipped_proxy_table()).column(proxy)

    def __call__(self, arch: Architecture) -> float:
        value = self._column.get(str(arch))
        if value is None:
            raise TableError(
                f"The proxy table has no row for {str(arch)!r}; it covers the NAS-Bench-201 "
                f"cell space only."
            )
        return value

    def __repr__(self) -> str:
        return f"TableScreen({self.proxy!r})"


@functools.cache
def shipped_proxy_table() -> ProxyTable:
    """The package's proxy table, read once."""
    return ProxyTable.load(PROXY_TABLE_PATH)


def _screened_controller(proxy: str) -> Callable[[int, SearchSpace], BaseSampler]:
    def factory(seed: int, space: SearchSpace) -> BaseSampler:
        # The NAS-Bench-201 controller whose candidates the proxy table screens.
        return ControllerSampler(space, seed=seed, screen=TableScreen(proxy))

    return factory


for _proxy in DATA_FREE_PROXIES:
    register_sampler(f"controller-{_proxy}", _screened_controller(_proxy), overwrite=True)


# ----------------------------------------------------------------------------------------
# Rank correlations.


def _ranks(values: np.ndarray) -> np.ndarray:
    # Average ranks of ties, as Spearman's correlation with ties takes them.
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(len(values), dtype=np.float64)
    sorted_values = values[order]
    start = 0
    while start < len(values):
        stop = start
        while stop + 1 < len(values) and sorted_values[stop + 1] == sorted_values[start]:
            stop += 1
        ranks[order[start:stop + 1]] = 0.5 * (start + stop)
        start = stop + 1
    return ranks


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rank correlation (ties get their average rank)."""
    rx, ry = _ranks(np.asarray(x, float)), _ranks(np.asarray(y, float))
    rx, ry = rx - rx.mean(), ry - ry.mean()
    denominator = math.sqrt(float((rx * rx).sum() * (ry * ry).sum()))
    return float((rx * ry).sum()) / denominator if denominator > 0 else math.nan


def kendall(x: Sequence[float], y: Sequence[float]) -> float:
    """Kendall's tau-b (ties corrected), over all pairs."""
    a, b = np.asarray(x, float), np.asarray(y, float)
    dx = np.sign(a[:, None] - a[None, :])
    dy = np.sign(b[:, None] - b[None, :])
    upper = np.triu_indices(len(a), k=1)
    sx, sy = dx[upper], dy[upper]
    concordance = float((sx * sy).sum())
    denominator = math.sqrt(float((sx != 0).sum()) * float((sy != 0).sum()))
    return concordance / denominator if denominator > 0 else math.nan


@dataclass(frozen=True)
class ProxyCorrelation:
    """How one proxy ranks the sampled architectures against ``final_test_acc``."""

    proxy: str
    spearman: float
    kendall: float
    seconds_per_arch: float
    failures: int = 0


@dataclass(frozen=True)
class ZeroCostReport:
    """The result of :func:`run_zero_cost`."""

    archs: int
    data: str
    batch_size: int
    seed: int
    correlations: tuple[ProxyCorrelation, ...]
    scores: dict[str, dict[str, float]] = field(repr=False)

    def as_dict(self) -> dict[str, Any]:
        return {
            "benchmark": "nasbench201-zero-cost",
            "archs": self.archs,
            "data": self.data,
            "batch_size": self.batch_size,
            "seed": self.seed,
            "network": dict(NETWORK, image_size=IMAGE_SIZE),
            "correlations": {
                c.proxy: {"spearman": c.spearman, "kendall": c.kendall,
                          "seconds_per_arch": c.seconds_per_arch, "failures": c.failures}
                for c in self.correlations
            },
            "scores": self.scores,
        }


def load_batch(data: str | os.PathLike[str] | None, *, batch_size: int,
               seed: int) -> tuple[torch.Tensor, torch.Tensor, str]:
    """One minibatch of CIFAR-10 training images from ``data``, or a synthetic one.

    Returns:
        ``(inputs, targets, description)``, the description saying which it is.
    """
    generator = torch.Generator().manual_seed(seed)
    if data is None:
        inputs = torch.randn(batch_size, NETWORK["in_channels"], IMAGE_SIZE, IMAGE_SIZE,
                             generator=generator)
        targets = torch.randint(0, NETWORK["num_classes"], (batch_size,), generator=generator)
        return inputs, targets, (
            f"synthetic: {batch_size} standard-normal images with random labels (no --data "
            f"given), so the data-dependent proxies do not see CIFAR-10")
    from optuna_nas.data import load_cifar10

    images = load_cifar10(Path(data), augment=False, seed=seed).train
    count = len(images)  # type: ignore[arg-type]
    index = torch.randperm(count, generator=generator)[:batch_size].tolist()
    pairs = [images[i] for i in index]
    inputs = torch.stack([p[0] for p in pairs])
    targets = torch.tensor([int(p[1]) for p in pairs])
    return inputs, targets, f"CIFAR-10 from {str(data)!r}: {batch_size} training images"


def run_zero_cost(
    table: NasBench201Table,
    *,
    archs: int = 1000,
    proxies: Sequence[str] | None = None,
    data: str | os.PathLike[str] | None = None,
    batch_size: int = 64,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> ZeroCostReport:
    """Score ``archs`` architectures sampled from ``table`` with each proxy, and correlate.

    Args:
        table: The NAS-Bench-201 table (its ``final_test_acc`` is the ground truth).
        archs: How many distinct architectures to sample (uniformly, from ``seed``).
        proxies: The proxies (default: all of :func:`~optuna_nas.zero_cost.list_proxies`).
        data: CIFAR-10 folder for the data-dependent proxies; ``None``: a synthetic batch.
        batch_size: Images in the minibatch of the data-dependent proxies.
        seed: Seeds the sample, the batch, each network's initialisation and the scoring.
        progress: Called as ``progress(done, archs)`` after each architecture.
    """
    names = list(proxies) if proxies is not None else list_proxies()
    unknown = [p for p in names if p not in list_proxies()]
    if unknown:
        raise TableError(f"Unknown zero-cost proxies {unknown}; known: {list_proxies()}.")
    rows = table.rows
    if not 1 <= archs <= len(rows):
        raise TableError(f"archs must be in [1, {len(rows)}], got {archs}.")
    picked = np.random.default_rng(seed).choice(len(rows), size=archs, replace=False)
    inputs, targets, description = load_batch(data, batch_size=batch_size, seed=seed)
    free_batch = _data_free_batch()
    values: dict[str, dict[str, float]] = {p: {} for p in names}
    seconds = dict.fromkeys(names, 0.0)
    failures = dict.fromkeys(names, 0)
    accuracy: dict[str, float] = {}
    for done, index in enumerate(picked, start=1):
        row = rows[int(index)]
        arch = str(row.arch)
        accuracy[arch] = row.final_test_acc
        model = nasbench201_network(arch, seed=seed, space=table.space)
        for proxy in names:
            batch = free_batch if proxy in DATA_FREE_PROXIES else (inputs, targets)
            start = time.perf_counter()
            try:
                values[proxy][arch] = score(model, *batch, proxy=proxy, seed=seed)
            except ValueError:  # A ZeroCostError: this network has no finite score.
                failures[proxy] += 1
            seconds[proxy] += time.perf_counter() - start
        if progress is not None:
            progress(done, archs)
    correlations = []
    for proxy in names:
        scored = list(values[proxy])
        # A network a proxy cannot score ranks last, as a search would treat it.
        xs = [values[proxy].get(a, -math.inf) for a in accuracy]
        xs = [x if math.isfinite(x) else -1e308 for x in xs]
        ys = list(accuracy.values())
        correlations.append(ProxyCorrelation(
            proxy, spearman(xs, ys), kendall(xs, ys), seconds[proxy] / archs,
            archs - len(scored)))
    return ZeroCostReport(archs, description, batch_size, seed, tuple(correlations), values)


def format_report(report: ZeroCostReport) -> Iterable[str]:
    """Lines of the correlation table, each proxy beside ``params``."""
    yield (f"NAS-Bench-201 CIFAR-10, {report.archs} architectures (16 channels, 5 cells per "
           f"stage, 32x32), seed {report.seed}")
    yield f"data-dependent proxies' batch: {report.data}"
    by_name = {c.proxy: c for c in report.correlations}
    baseline = by_name.get("params")
    yield f"{'proxy':<10} {'spearman':>9} {'kendall':>8} {'s/arch':>8}  vs params"
    for c in sorted(report.correlations, key=lambda c: -c.spearman):
        if baseline is None or c.proxy == "params":
            versus = "(baseline)" if c.proxy == "params" else ""
        else:
            versus = "beats" if c.spearman > baseline.spearman else "does not beat"
        failed = f"  ({c.failures} networks failed)" if c.failures else ""
        yield (f"{c.proxy:<10} {c.spearman:>9.3f} {c.kendall:>8.3f} "
               f"{c.seconds_per_arch:>8.3f}  {versus}{failed}")


# ----------------------------------------------------------------------------------------
# Command line: ``zero-cost`` and ``zero-cost-table``.


def _proxy_names(text: str) -> list[str]:
    if text.strip() == "all":
        return list_proxies()
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [n for n in names if n not in list_proxies()]
    if not names or unknown:
        raise argparse.ArgumentTypeError(
            f"expected 'all' or comma-separated proxies among {list_proxies()}, got {text!r}")
    return names


def add_parsers(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``zero-cost`` and ``zero-cost-table`` subcommands."""
    parser = subparsers.add_parser(
        "zero-cost",
        help="rank correlation of zero-cost proxies with NAS-Bench-201's test accuracy",
        description=(
            "Sample architectures of the NAS-Bench-201 table, build each network (16 "
            "channels, 5 cells per stage, 10 classes, 32x32), score it with each proxy and "
            "print the Spearman and Kendall correlations with final_test_acc and the seconds "
            "per architecture, each proxy beside the params baseline."
        ),
    )
    parser.add_argument("--table", required=True, type=Path,
                        help="the NAS-Bench-201 CSV table (cifar10.csv)")
    parser.add_argument("--archs", type=positive_int, default=1000,
                        help="architectures to sample (default: 1000)")
    parser.add_argument("--proxies", type=_proxy_names, default=list_proxies(),
                        help="'all' (default) or comma-separated proxy names")
    parser.add_argument("--data", type=Path, default=None,
                        help="CIFAR-10 folder (holding cifar-10-batches-py) for the "
                             "data-dependent proxies; default: a synthetic batch")
    parser.add_argument("--batch-size", type=positive_int, default=64,
                        help="images per minibatch of the data-dependent proxies (default: 64)")
    parser.add_argument("--seed", type=int, default=0, help="seed of everything (default: 0)")
    parser.add_argument("--json", type=Path, default=None, help="also write the report here")
    parser.set_defaults(handler=_run_zero_cost)

    table = subparsers.add_parser(
        "zero-cost-table",
        help="write (or resume writing) the data-free proxy table of all NAS-Bench-201 cells",
        description=(
            "Score every architecture of the NAS-Bench-201 table with the data-free proxies "
            "(synflow, params, flops) and append one CSV row per architecture, flushed as it "
            "goes; run it again to resume where it stopped."
        ),
    )
    table.add_argument("--table", required=True, type=Path,
                       help="the NAS-Bench-201 CSV table (cifar10.csv)")
    table.add_argument("--out", type=Path, default=PROXY_TABLE_PATH,
                       help=f"the proxy table to write (default: {PROXY_TABLE_PATH.name} in "
                            f"the package)")
    table.add_argument("--proxies", type=_proxy_names, default=list(DATA_FREE_PROXIES),
                       help="comma-separated data-free proxies (default: synflow,params,flops)")
    table.add_argument("--seed", type=int, default=0, help="seed of every row (default: 0)")
    table.add_argument("--limit", type=positive_int, default=None,
                       help="stop after this many new rows (default: all)")
    table.set_defaults(handler=_run_zero_cost_table)

    asha = subparsers.add_parser(
        "zero-cost-asha",
        help="ASHA alone vs ASHA behind ZeroCostPruner, trained on the digits data (CPU)",
        description=(
            "For each seed k in 0..N-1, run random search over the NAS-Bench-201 space on "
            "the digits data twice with the same architectures: pruned by ASHA, and by a "
            "ZeroCostPruner wrapping the same ASHA, which also stops a trial before its "
            "first epoch when its zero-cost score is below a percentile of the earlier "
            "trials'. Print per arm the best trial's test accuracy (mean ± population std) "
            "and the epochs trained."
        ),
    )
    asha.add_argument("--seeds", type=positive_int, default=5, help="seeds 0..N-1 (default: 5)")
    asha.add_argument("--trials", type=positive_int, default=_asha.DEFAULT_TRIALS,
                      help=f"trials per arm and seed (default: {_asha.DEFAULT_TRIALS})")
    asha.add_argument("--max-epochs", type=positive_int, default=_asha.DEFAULT_MAX_EPOCHS,
                      help=f"epochs of an unpruned trial (default: {_asha.DEFAULT_MAX_EPOCHS})")
    asha.add_argument("--proxy", choices=list_proxies(), default="synflow",
                      help="the pruner's proxy (default: synflow)")
    asha.add_argument("--percentile", type=float, default=25.0,
                      help="prune below this percentile of the earlier scores (default: 25)")
    asha.add_argument("--startup-trials", type=int, default=5,
                      help="trials completed before pruning at initialisation (default: 5)")
    asha.add_argument("--json", type=Path, default=None, help="also write the runs here")
    asha.set_defaults(handler=_run_zero_cost_asha)


def _run_zero_cost(args: argparse.Namespace) -> int:
    table = NasBench201Table.load(args.table)
    torch.set_num_threads(1)  # One thread: the seconds per architecture compare.
    start = time.perf_counter()

    def progress(done: int, total: int) -> None:
        if done % 50 == 0 or done == total:
            print(f"  {done}/{total} architectures, {time.perf_counter() - start:.0f} s",
                  flush=True)

    report = run_zero_cost(table, archs=args.archs, proxies=args.proxies, data=args.data,
                           batch_size=args.batch_size, seed=args.seed, progress=progress)
    for line in format_report(report):
        print(line)
    if args.json is not None:
        try:
            args.json.write_text(json.dumps(report.as_dict(), indent=1) + "\n",
                                 encoding="utf-8")
        except OSError as error:
            raise TableError(f"cannot write {str(args.json)!r}: {error.strerror}") from error
    return 0


def _run_zero_cost_table(args: argparse.Namespace) -> int:
    table = NasBench201Table.load(args.table)
    torch.set_num_threads(1)  # One thread fixes the floating-point order of every row.
    start = time.perf_counter()
    first: list[int] = []

    def progress(done: int, total: int) -> None:
        first.append(done)
        if done % 250 == 0 or done == total:
            rate = (time.perf_counter() - start) / len(first)
            print(f"  {done}/{total} rows, {rate:.2f} s per architecture", flush=True)

    written = write_proxy_table(table, args.out, proxies=args.proxies, seed=args.seed,
                                limit=args.limit, progress=progress)
    rows = len(ProxyTable.load(args.out))
    print(f"{args.out}: {written} rows written now, {rows} of {len(table)} in all")
    return 0


def _run_zero_cost_asha(args: argparse.Namespace) -> int:
    from optuna_nas.data import load_digits

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # Tiny networks: one thread, a fixed floating-point order.
    data = load_digits(seed=_asha.DATA_SEED)
    arms = ("asha", _asha.ZERO_COST_ARM)
    runs: dict[str, list[_asha.AshaRun]] = {arm: [] for arm in arms}
    try:
        for seed in range(args.seeds):
            for arm in arms:
                run = _asha.run_asha_arm(
                    arm, seed, data, n_trials=args.trials, max_epochs=args.max_epochs,
                    zero_cost=args.proxy, zero_cost_percentile=args.percentile,
                    zero_cost_startup_trials=args.startup_trials,
                )
                runs[arm].append(run)
                print(run.line(), flush=True)
    finally:
        torch.set_num_threads(threads)
    summaries = {arm: _asha.AshaArm(arm, tuple(r)) for arm, r in runs.items()}
    for summary in summaries.values():
        print(summary.line())
    plain, screened = summaries["asha"], summaries[_asha.ZERO_COST_ARM]
    print(f"epochs {_asha.ZERO_COST_ARM}/asha: {screened.epochs / plain.epochs:.3f}; best test "
          f"accuracy {100 * (screened.mean - plain.mean):+.2f} points (seeds' std "
          f"{100 * plain.std:.2f} / {100 * screened.std:.2f})")
    if args.json is not None:
        document = {
            "benchmark": "zero-cost-asha",
            "data": f"digits (load_digits(seed={_asha.DATA_SEED}))",
            "proxy": args.proxy, "percentile": args.percentile,
            "startup_trials": args.startup_trials, "trials": args.trials,
            "max_epochs": args.max_epochs, "torch_threads": 1,
            "epoch_ratio": screened.epochs / plain.epochs,
            "arms": {arm: summary.as_dict() for arm, summary in summaries.items()},
        }
        try:
            args.json.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
        except OSError as error:
            raise TableError(f"cannot write {str(args.json)!r}: {error.strerror}") from error
    return 0
