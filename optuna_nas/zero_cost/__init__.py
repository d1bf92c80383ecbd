"""Zero-cost proxies: score an untrained network from one minibatch.

``score(model, inputs, targets, proxy="synflow")`` returns a float, higher meaning a
better architecture by that proxy; :func:`list_proxies` names the proxies. Papers:
Abdelfattah et al., "Zero-Cost Proxies for Lightweight NAS", ICLR 2021,
https://arxiv.org/abs/2101.08134; Mellor et al., "Neural Architecture Search without
Training", ICML 2021, https://arxiv.org/abs/2006.04647; Tanaka et al., "Pruning neural
networks without any data by iteratively conserving synaptic flow", NeurIPS 2020,
https://arxiv.org/abs/2006.05467.
"""

from __future__ import annotations

from optuna_nas.zero_cost._proxies import (
    DATA_FREE_PROXIES,
    ZeroCostError,
    list_proxies,
    register_proxy,
    score,
)
from optuna_nas.zero_cost._pruner import PROXY_ATTR, SCORE_ATTR, ZeroCostPruner, report
from optuna_nas.zero_cost._screen import ProxyScreen

__all__ = [
    "DATA_FREE_PROXIES",
    "PROXY_ATTR",
    "ProxyScreen",
    "SCORE_ATTR",
    "ZeroCostError",
    "ZeroCostPruner",
    "list_proxies",
    "register_proxy",
    "report",
    "score",
]
