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

from optuna_nas.zero_cost._proxies import ZeroCostError, list_proxies, register_proxy, score
from optuna_nas.zero_cost._pruner import PROXY_ATTR, SCORE_ATTR, ZeroCostPruner, report

__all__ = [
    "PROXY_ATTR",
    "SCORE_ATTR",
    "ZeroCostError",
    "ZeroCostPruner",
    "list_proxies",
    "register_proxy",
    "report",
    "score",
]
