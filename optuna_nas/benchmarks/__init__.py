"""Benchmarks: score search strategies on tabular NAS benchmarks with any Optuna sampler.

``python -m optuna_nas.benchmarks nasbench201 --table PATH`` runs the NAS-Bench-201
protocol (see ``docs/benchmarks.md``); the classes below are the same runner as a library.
"""

from __future__ import annotations

from optuna_nas.benchmarks._nasbench201 import (
    NUMERIC_COLUMNS,
    NasBench201Objective,
    NasBench201Row,
    NasBench201Run,
    NasBench201Summary,
    NasBench201Table,
    run_nasbench201,
)
from optuna_nas.benchmarks._nasbench201_mo import (
    CostRun,
    CostSummary,
    FrontScore,
    run_nasbench201_constrained,
    run_nasbench201_mo,
)
from optuna_nas.benchmarks._zero_cost import (
    PROXY_TABLE_PATH,
    ProxyTable,
    TableScreen,
    ZeroCostReport,
    run_zero_cost,
    write_proxy_table,
)

# The sampler registry lives with the samplers; these names stay here because the
# benchmarks' public API has always offered them.
from optuna_nas.samplers import (
    SamplerFactory,
    UnknownSamplerError,
    list_samplers,
    make_sampler,
    register_sampler,
    unregister_sampler,
)

__all__ = [
    "PROXY_TABLE_PATH",
    "ProxyTable",
    "TableScreen",
    "ZeroCostReport",
    "run_zero_cost",
    "write_proxy_table",
    "CostRun",
    "CostSummary",
    "FrontScore",
    "NUMERIC_COLUMNS",
    "NasBench201Objective",
    "NasBench201Row",
    "NasBench201Run",
    "NasBench201Summary",
    "NasBench201Table",
    "SamplerFactory",
    "UnknownSamplerError",
    "list_samplers",
    "make_sampler",
    "register_sampler",
    "run_nasbench201",
    "run_nasbench201_constrained",
    "run_nasbench201_mo",
    "unregister_sampler",
]
