"""Shared fixtures: the search spaces every generic test runs on, and a toy conditional space.

Add a factory to :data:`SPACE_FACTORIES` and every round-trip, study, sampling and network
test runs on the new space; ``test_every_exported_space_is_covered`` fails until a new
public space is listed here.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import optuna
import pytest
import sqlalchemy
import torch
from torch import nn

from optuna_nas.errors import ArchitectureError
from optuna_nas.nn import create_op
from optuna_nas.spaces import (
    Architecture,
    Choice,
    DartsCells,
    DartsRecurrentSpace,
    Decision,
    NasBench201Space,
    NasNetCells,
    NasRLMacroSpace,
    NasRLRecurrentSpace,
    SearchSpace,
)


class ToyConditionalSpace(SearchSpace):
    """A conditional space: ``num_layers`` gates each layer's op, a conv's stride is gated
    by its op, and a boolean is always made.

    Strings read ``conv_3x3@2-avg_pool_3x3/dropout=False``: one token per layer, ``@s`` only
    where the layer is a conv.
    """

    name = "toy"
    OPS = ("conv_3x3", "avg_pool_3x3", "skip_connect")

    def __init__(self, *, prefix: str = "arch/") -> None:
        super().__init__(prefix=prefix)
        decisions = [Decision("num_layers", (1, 2, 3))]
        for i in range(3):
            decisions.append(
                Decision(f"layer{i}/op", self.OPS, condition=lambda v, i=i: v["num_layers"] > i)
            )
            decisions.append(
                Decision(
                    f"layer{i}/stride",
                    (1, 2),
                    condition=lambda v, i=i: (
                        v["num_layers"] > i and v[f"layer{i}/op"] == "conv_3x3"
                    ),
                )
            )
        decisions.append(Decision("dropout", (False, True)))
        self._decisions = tuple(decisions)

    @property
    def decisions(self) -> Sequence[Decision]:
        return self._decisions

    def format(self, values: Mapping[str, Choice]) -> str:
        tokens = []
        for i in range(int(str(values["num_layers"]))):
            token = str(values[f"layer{i}/op"])
            if f"layer{i}/stride" in values:
                token += f"@{values[f'layer{i}/stride']}"
            tokens.append(token)
        return "-".join(tokens) + f"/dropout={values['dropout']}"

    def _parse_values(self, string: str) -> dict[str, Choice]:
        match = re.fullmatch(r"([\w@-]+)/dropout=(True|False)", string)
        if not match:
            raise ArchitectureError(f"Malformed toy string {string!r}.")
        tokens = match.group(1).split("-")
        values: dict[str, Choice] = {"num_layers": len(tokens)}
        for i, token in enumerate(tokens):
            op, sep, stride = token.partition("@")
            values[f"layer{i}/op"] = op
            if sep:
                if not stride.isdigit():
                    raise ArchitectureError(f"Malformed stride {stride!r} in {string!r}.")
                values[f"layer{i}/stride"] = int(stride)
        values["dropout"] = match.group(2) == "True"
        return values

    def build(self, arch: Architecture, **network_options: Any) -> nn.Module:
        self._check_space(arch)
        channels = network_options.get("channels", 4)
        layers: list[nn.Module] = [
            nn.Conv2d(network_options.get("in_channels", 3), channels, 3, padding=1)
        ]
        made = arch.as_dict()
        for i in range(int(str(made["num_layers"]))):
            stride = int(str(made.get(f"layer{i}/stride", 1)))
            layers.append(create_op(str(made[f"layer{i}/op"]), channels, stride))
        if arch["dropout"]:
            layers.append(nn.Dropout(0.1))
        layers += [
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(channels, network_options.get("num_classes", 10)),
        ]
        return nn.Sequential(*layers)


#: Every space the generic tests run on, by test id.
SPACE_FACTORIES: dict[str, Callable[[], SearchSpace]] = {
    "nasbench201": NasBench201Space,
    "darts": DartsCells,
    "darts-enas-steps2": lambda: DartsCells(ops="enas", steps=2),
    "darts-combine-nondistinct": lambda: DartsCells(
        steps=2, distinct_inputs=False, combine=True, concat="unused"
    ),
    "nasnet": NasNetCells,
    "nasnet-enas": lambda: NasNetCells(ops="enas"),
    "toy-conditional": ToyConditionalSpace,
    "nasrl-macro": lambda: NasRLMacroSpace(layers=3),
    "nasrl-macro-growing-strided": lambda: NasRLMacroSpace(
        min_layers=2, max_layers=4, strides=True
    ),
    "nasrl-recurrent": NasRLRecurrentSpace,
    "nasrl-recurrent-base2": lambda: NasRLRecurrentSpace(base=2),
    "darts-recurrent": DartsRecurrentSpace,
    "darts-recurrent-steps3-two-ops": lambda: DartsRecurrentSpace(
        steps=3, ops=("relu", "identity")
    ),
}


@pytest.fixture(params=list(SPACE_FACTORIES.values()), ids=list(SPACE_FACTORIES))
def space(request: pytest.FixtureRequest) -> SearchSpace:
    """Each registered space, freshly made."""
    factory: Callable[[], SearchSpace] = request.param
    return factory()


def tiny_network_options(space: SearchSpace, channels: int = 4) -> dict[str, Any]:
    """Network options that make a space's network tiny (a fraction of a second to run)."""
    if isinstance(space, NasBench201Space):
        return {"channels": channels, "cells_per_stage": 1, "num_classes": 5}
    if isinstance(space, DartsCells):
        return {"channels": channels, "layers": 3, "num_classes": 5}
    if isinstance(space, NasRLMacroSpace):
        return {"channel_scale": channels / 32, "num_classes": 5}  # 24-64 filters -> 3-12
    if isinstance(space, NasRLRecurrentSpace):
        return {"hidden_size": channels, "num_classes": 5}
    return {"channels": channels, "num_classes": 5}


def make_study(sampler: str, storage: str, tmp_path: Any, seed: int = 0) -> optuna.Study:
    """A study with a named sampler (``random``, ``tpe``, ``tpe-group``) and storage
    (``memory`` or ``sqlite`` in ``tmp_path``)."""
    samplers: dict[str, Callable[[], optuna.samplers.BaseSampler]] = {
        "random": lambda: optuna.samplers.RandomSampler(seed=seed),
        "tpe": lambda: optuna.samplers.TPESampler(n_startup_trials=2, seed=seed),
        "tpe-group": lambda: optuna.samplers.TPESampler(
            n_startup_trials=2, multivariate=True, group=True, seed=seed
        ),
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        chosen = samplers[sampler]()
    if storage == "memory":
        return optuna.create_study(sampler=chosen)
    rdb = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'study.db'}")
    # A real SQLite file, without an fsync per commit (a commit per param otherwise costs
    # ~10 ms on slow disks); what the tests read back is unaffected.
    sqlalchemy.event.listen(rdb.engine, "connect", _no_sync)
    rdb.engine.dispose()
    return optuna.create_study(sampler=chosen, storage=rdb)


def _no_sync(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA synchronous=OFF")
    cursor.execute("PRAGMA journal_mode=MEMORY")
    cursor.close()


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread() -> Iterator[None]:
    """Tiny networks run fastest on one thread; more only contend with other processes."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _quiet_and_seeded() -> Iterator[None]:
    """Seed torch and keep Optuna's per-trial log lines out of the test output."""
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    torch.manual_seed(0)
    yield
    optuna.logging.set_verbosity(verbosity)


@pytest.fixture(scope="session")
def nasbench201_table() -> Any:
    """The shared NAS-Bench-201 table; a failure in CI, a skip elsewhere, if it is missing."""
    from optuna_nas.benchmarks import NasBench201Table
    from tests._shared import NASBENCH201_TABLE

    if not NASBENCH201_TABLE.is_file():
        if os.environ.get("CI"):
            pytest.fail(f"The shared NAS-Bench-201 table is missing at {NASBENCH201_TABLE}.")
        pytest.skip(f"The shared NAS-Bench-201 table is not at {NASBENCH201_TABLE}.")
    return NasBench201Table.load(NASBENCH201_TABLE)


def digits_slice(train: int, held_out: int) -> Any:
    """A slice of the digits data (``train`` training images, ``held_out`` validation and
    test images), so that a trial takes a fraction of a second."""
    from torch.utils.data import Subset

    from optuna_nas.data import ImageData, load_digits

    full = load_digits(seed=0)
    assert full.test is not None
    return ImageData(
        Subset(full.train, range(train)),
        Subset(full.valid, range(held_out)),
        Subset(full.test, range(held_out)),
        full.num_classes,
        full.in_channels,
        full.image_size,
        name="digits-slice",
    )
