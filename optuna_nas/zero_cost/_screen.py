"""A ready screen for ``ControllerSampler(screen=...)``: build the network, score it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from optuna_nas.errors import ZeroCostError
from optuna_nas.spaces._base import Architecture, SearchSpace
from optuna_nas.zero_cost._proxies import DATA_FREE_PROXIES, list_proxies, score


class ProxyScreen:
    """Score an architecture at initialisation: ``screen(arch) -> float``, higher is better.

    Builds ``space.build(arch, **network_options)`` from ``torch.manual_seed(seed)`` (the
    global random state is restored afterwards) and scores it with :func:`score`. Give it
    to :class:`~optuna_nas.samplers.ControllerSampler` as ``screen`` to rank the
    controller's candidates before one is trained: Abdelfattah et al.'s zero-cost warm-up
    and move proposal ("Zero-Cost Proxies for Lightweight NAS", ICLR 2021,
    https://arxiv.org/abs/2101.08134).

    Args:
        space: The search space whose architectures are screened.
        proxy: The proxy (:func:`list_proxies`); ``"synflow"`` needs no data.
        batch: ``(inputs, targets)``, one minibatch, for the proxies that read data;
            the data-free ones (``synflow``, ``params``, ``flops``) only use its sample
            shape and may go without it.
        input_shape: The sample shape ``(channels, height, width)`` when there is no batch.
        seed: Seeds each network's initialisation and the scoring.
        network_options: Passed to ``space.build`` (``channels``, ``num_classes``, ...).

    Raises:
        ZeroCostError: The proxy is unknown, or it needs data and no batch is given.
    """

    def __init__(
        self,
        space: SearchSpace,
        *,
        proxy: str = "synflow",
        batch: tuple[torch.Tensor, torch.Tensor] | None = None,
        input_shape: Sequence[int] = (3, 32, 32),
        seed: int = 0,
        **network_options: Any,
    ) -> None:
        if proxy not in list_proxies():
            raise ZeroCostError(f"Unknown zero-cost proxy {proxy!r}; known: {list_proxies()}.")
        if batch is None and proxy not in DATA_FREE_PROXIES:
            raise ZeroCostError(
                f"{proxy} reads a minibatch: pass batch=(inputs, targets), or screen with a "
                f"data-free proxy ({', '.join(DATA_FREE_PROXIES)})."
            )
        if batch is None:
            shape = tuple(int(d) for d in input_shape)
            batch = torch.zeros(1, *shape), torch.zeros(1, dtype=torch.long)
        self.space = space
        self.proxy = proxy
        self.batch = batch
        self.seed = seed
        self.network_options = network_options

    def __call__(self, arch: Architecture) -> float:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            model = self.space.build(arch, **self.network_options)
        return score(model, *self.batch, proxy=self.proxy, seed=self.seed)

    def __repr__(self) -> str:
        return f"ProxyScreen({self.space.name}, proxy={self.proxy!r}, seed={self.seed})"
