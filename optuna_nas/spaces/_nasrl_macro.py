from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from torch import nn

from optuna_nas.errors import ArchitectureError, _short_repr
from optuna_nas.nn._nasrl_macro import MacroLayerSpec, NasRLMacroNetwork
from optuna_nas.spaces._base import Architecture, Choice, Condition, Decision, SearchSpace

__all__ = ["DepthSchedule", "NasRLMacroSpace", "nasrl_depth_schedule"]

FILTER_SIZES: tuple[int, ...] = (1, 3, 5, 7)
FILTER_COUNTS: tuple[int, ...] = (24, 36, 48, 64)
STRIDES: tuple[int, ...] = (1, 2)

_HUGE_NUMBER = re.compile(r"[0-9]{10,}")
_LAYER = re.compile(r"([0-9]+)x([0-9]+)x([0-9]+)(?:/([0-9]+))?(?:<([0-9]+(?:,[0-9]+)*))?")


@dataclass(frozen=True)
class DepthSchedule:
    """NAS-RL's depth schedule: the layer count forced after a number of samples.

    Calling it with the number of architectures sampled so far gives the values to force,
    keyed by decision name (without the param prefix): ``{"num_layers": depth}`` with
    ``depth = start + step * (sampled // every)``, capped at ``stop``.

    Paper: Zoph & Le, "Neural Architecture Search with Reinforcement Learning", ICLR 2017,
    https://arxiv.org/abs/1611.01578 ("we start at 6 layers and increase by 2 every 1,600
    samples", section 4.1).

    Args:
        start: The depth of the first architectures.
        step: Layers added at each growth.
        every: Architectures sampled between two growths.
        stop: The largest depth, or ``None`` for no cap.
    """

    start: int = 6
    step: int = 2
    every: int = 1600
    stop: int | None = None

    def __post_init__(self) -> None:
        if self.start < 1 or self.step < 0 or self.every < 1:
            raise ValueError(
                "A depth schedule needs start >= 1, step >= 0 and every >= 1, got "
                f"start={self.start}, step={self.step}, every={self.every}."
            )
        if self.stop is not None and self.stop < self.start:
            raise ValueError(f"stop ({self.stop}) is below start ({self.start}).")

    def depth(self, sampled: int) -> int:
        """The depth after ``sampled`` architectures."""
        if sampled < 0:
            raise ValueError(f"The number of sampled architectures is negative: {sampled}.")
        depth = self.start + self.step * (sampled // self.every)
        return depth if self.stop is None else min(depth, self.stop)

    def __call__(self, sampled: int) -> dict[str, Choice]:
        return {"num_layers": self.depth(sampled)}


def nasrl_depth_schedule(
    start: int = 6, step: int = 2, every: int = 1600, *, stop: int | None = None
) -> DepthSchedule:
    """NAS-RL's schedule of the layer count: start at 6 layers, add 2 every 1,600 samples.

    Maps the count of architectures sampled so far to the values a sampler forces, e.g.
    ``nasrl_depth_schedule()(1600) == {"num_layers": 8}``. Use it with a
    :class:`NasRLMacroSpace` made with ``max_layers``; its ``num_layers`` choices must hold
    every depth the schedule reaches (pass ``stop`` to cap it, or use
    :meth:`NasRLMacroSpace.depth_schedule`).

    Paper: Zoph & Le, "Neural Architecture Search with Reinforcement Learning", ICLR 2017,
    https://arxiv.org/abs/1611.01578.

    Args:
        start: The depth of the first architectures.
        step: Layers added at each growth.
        every: Architectures sampled between two growths.
        stop: The largest depth, or ``None`` for no cap.
    """
    return DepthSchedule(start, step, every, stop)


def _layer_gate(i: int) -> Condition:
    def active(values: Mapping[str, Choice]) -> bool:
        depth = values.get("num_layers")
        return isinstance(depth, int) and not isinstance(depth, bool) and depth > i

    return active


class NasRLMacroSpace(SearchSpace):
    """NAS-RL's convolutional (macro) search space: a whole network, layer by layer.

    Per layer ``i`` (from 0) the decisions are ``layer{i}/filter_height`` and
    ``layer{i}/filter_width`` (1, 3, 5, 7), ``layer{i}/filters`` (24, 36, 48, 64),
    ``layer{i}/stride`` (1, 2; only with ``strides=True``), then one anchor decision
    ``layer{i}/skip{j}`` (``False``/``True``, ``Decision.anchor == (i, j)``) per earlier
    layer ``j``: whether layer ``i`` reads layer ``j``. The controller decides anchors with
    the paper's attention, sigmoid(v^T tanh(W_prev h_j + W_curr h_i)); any other sampler
    sees plain categoricals.

    The layer count is fixed (``layers``, 6 by default) or a first decision ``num_layers``
    with the choices ``min_layers, min_layers + layer_step, ..., max_layers`` that gates
    the deeper layers' decisions. The paper grows the depth during the search ("start at
    6 layers, add 2 every 1,600 samples"): :meth:`depth_schedule` gives the values a
    sampler forces for that.

    Strings have one token per layer, joined by ``|``: ``HxWxF`` (filter height, width and
    count), then ``/S`` (the stride; exactly when strides are searched), then ``<j,k``
    (the earlier layers it reads, increasing; omitted when it reads the image). For
    example ``3x3x36|5x5x48<0|1x7x24<0,1``: layer 0 reads the image, layer 1 reads layer
    0, and layer 2 reads both. The depth is the number of tokens.

    The network (:meth:`build`) follows the paper; see
    :class:`~optuna_nas.nn._nasrl_macro.NasRLMacroNetwork`.

    Paper: Zoph & Le, "Neural Architecture Search with Reinforcement Learning", ICLR 2017,
    https://arxiv.org/abs/1611.01578 (section 3.3).

    Args:
        layers: A fixed layer count (6 when neither this nor ``max_layers`` is given).
        max_layers: Search the depth up to this many layers (a ``num_layers`` decision).
        min_layers: The smallest searched depth (with ``max_layers``).
        layer_step: The step between searched depths (with ``max_layers``).
        strides: Whether each layer also chooses its stride (1 or 2).
        prefix: The prefix of the Optuna param names.
    """

    name = "nasrl_macro"

    def __init__(
        self,
        *,
        layers: int | None = None,
        max_layers: int | None = None,
        min_layers: int = 6,
        layer_step: int = 2,
        strides: bool = False,
        prefix: str = "arch/",
    ) -> None:
        super().__init__(prefix=prefix)
        if layers is not None and max_layers is not None:
            raise ArchitectureError(
                "Give either layers (a fixed depth) or max_layers (a searched depth), not both."
            )
        if max_layers is None:
            depth = 6 if layers is None else layers
            if not _positive_int(depth):
                raise ArchitectureError(f"layers must be a positive integer, got {depth!r}.")
            self.depth_choices: tuple[int, ...] = (depth,)
        else:
            if not (
                _positive_int(max_layers) and _positive_int(min_layers)
                and _positive_int(layer_step)
            ):
                raise ArchitectureError(
                    "max_layers, min_layers and layer_step must be positive integers, got "
                    f"{max_layers!r}, {min_layers!r} and {layer_step!r}."
                )
            if max_layers <= min_layers or (max_layers - min_layers) % layer_step:
                raise ArchitectureError(
                    f"max_layers ({max_layers}) must exceed min_layers ({min_layers}) by a "
                    f"multiple of layer_step ({layer_step}), e.g. min_layers=6, layer_step=2, "
                    "max_layers=12."
                )
            self.depth_choices = tuple(range(min_layers, max_layers + 1, layer_step))
        self.searched_depth = max_layers is not None
        self.min_layers = self.depth_choices[0]
        self.max_layers = self.depth_choices[-1]
        self.layer_step = layer_step
        self.strides = strides
        decisions: list[Decision] = []
        if self.searched_depth:
            decisions.append(Decision("num_layers", self.depth_choices))
        for i in range(self.max_layers):
            gate = None if i < self.min_layers else _layer_gate(i)
            decisions.append(Decision(f"layer{i}/filter_height", FILTER_SIZES, condition=gate))
            decisions.append(Decision(f"layer{i}/filter_width", FILTER_SIZES, condition=gate))
            decisions.append(Decision(f"layer{i}/filters", FILTER_COUNTS, condition=gate))
            if strides:
                decisions.append(Decision(f"layer{i}/stride", STRIDES, condition=gate))
            for j in range(i):
                decisions.append(
                    Decision(f"layer{i}/skip{j}", (False, True), condition=gate, anchor=(i, j))
                )
        self._decisions = tuple(decisions)

    @property
    def decisions(self) -> Sequence[Decision]:
        return self._decisions

    def depth_schedule(self, every: int = 1600) -> DepthSchedule:
        """The paper's growing depth over this space's ``num_layers`` choices.

        Starts at ``min_layers``, adds ``layer_step`` every ``every`` sampled
        architectures and stops at ``max_layers``.

        Args:
            every: Architectures sampled between two growths (1,600 in the paper).

        Raises:
            ArchitectureError: The space has a fixed depth.
        """
        if not self.searched_depth:
            raise ArchitectureError(
                "This NasRLMacroSpace has a fixed depth; make it with max_layers=... (e.g. "
                "NasRLMacroSpace(max_layers=12)) to grow the depth on a schedule."
            )
        return DepthSchedule(self.min_layers, self.layer_step, every, self.max_layers)

    # ---- values <-> strings ----------------------------------------------------------
    def _depth(self, values: Mapping[str, Choice]) -> int:
        return int(values["num_layers"]) if self.searched_depth else self.min_layers  # type: ignore[arg-type]

    def layer_specs(self, arch: Architecture) -> list[MacroLayerSpec]:
        """The layers of an architecture, in order (filter counts before any scaling)."""
        self._check_space(arch)
        return self._specs(arch.as_dict())

    def _specs(self, values: Mapping[str, Choice]) -> list[MacroLayerSpec]:
        specs = []
        for i in range(self._depth(values)):
            specs.append(
                MacroLayerSpec(
                    filter_height=int(values[f"layer{i}/filter_height"]),  # type: ignore[arg-type]
                    filter_width=int(values[f"layer{i}/filter_width"]),  # type: ignore[arg-type]
                    filters=int(values[f"layer{i}/filters"]),  # type: ignore[arg-type]
                    stride=int(values[f"layer{i}/stride"]) if self.strides else 1,  # type: ignore[arg-type]
                    inputs=tuple(j for j in range(i) if values[f"layer{i}/skip{j}"] is True),
                )
            )
        return specs

    def format(self, values: Mapping[str, Choice]) -> str:
        tokens = []
        for spec in self._specs(values):
            token = f"{spec.filter_height}x{spec.filter_width}x{spec.filters}"
            if self.strides:
                token += f"/{spec.stride}"
            if spec.inputs:
                token += "<" + ",".join(str(j) for j in spec.inputs)
            tokens.append(token)
        return "|".join(tokens)

    def _example(self) -> str:
        if self.strides:
            return "3x3x36/1|5x5x48/2<0|1x7x24/1<0,1"
        return "3x3x36|5x5x48<0|1x7x24<0,1"

    def _malformed(self, string: str, problem: str) -> ArchitectureError:
        stride = "/S (the stride), " if self.strides else ""
        return ArchitectureError(
            f"Malformed NAS-RL macro string {_short_repr(string, 200)}: {problem}. Write one "
            f"token per layer joined by '|': HxWxF (filter height, width, count), {stride}then "
            f"'<j,k' for the earlier layers it reads, e.g. {self._example()!r}."
        )

    def _parse_values(self, string: str) -> dict[str, Choice]:
        # int() refuses numbers of over 4,300 digits; no size, count, stride or layer index
        # comes near nine, so a longer number is an error here already.
        huge = _HUGE_NUMBER.search(string)
        if huge is not None:
            raise self._malformed(
                string,
                f"the number {huge.group()[:12]}... has {len(huge.group())} digits, too many "
                "for a filter size, filter count, stride or layer index",
            )
        tokens = string.split("|")
        matches = []
        for i, token in enumerate(tokens):
            match = _LAYER.fullmatch(token)
            if match is None:
                raise self._malformed(string, f"layer {i} reads {_short_repr(token)}")
            matches.append(match)
        depth = len(tokens)
        if depth not in self.depth_choices:
            *most, last = (str(d) for d in self.depth_choices)
            expected = f"{', '.join(most)} or {last}" if most else last
            raise self._malformed(string, f"it has {depth} layer(s), this space has {expected}")
        values: dict[str, Choice] = {}
        if self.searched_depth:
            values["num_layers"] = depth
        for i, (token, match) in enumerate(zip(tokens, matches, strict=True)):
            height, width, filters, stride, inputs = match.groups()
            for what, text, choices in (
                ("filter height", height, FILTER_SIZES),
                ("filter width", width, FILTER_SIZES),
                ("filter count", filters, FILTER_COUNTS),
            ):
                if int(text) not in choices:
                    raise self._malformed(
                        string, f"layer {i} has {what} {text}; choose one of {list(choices)}"
                    )
            values[f"layer{i}/filter_height"] = int(height)
            values[f"layer{i}/filter_width"] = int(width)
            values[f"layer{i}/filters"] = int(filters)
            if self.strides:
                if stride is None:
                    raise self._malformed(
                        string, f"layer {i} ({_short_repr(token)}) has no stride"
                    )
                if int(stride) not in STRIDES:
                    raise self._malformed(
                        string, f"layer {i} has stride {stride}; choose one of {list(STRIDES)}"
                    )
                values[f"layer{i}/stride"] = int(stride)
            elif stride is not None:
                raise self._malformed(
                    string,
                    f"layer {i} ({_short_repr(token)}) gives a stride, but this space searches "
                    "none (make it with strides=True)",
                )
            read = [int(j) for j in inputs.split(",")] if inputs else []
            if any(j >= i for j in read):
                raise self._malformed(
                    string, f"layer {i} reads layer(s) {read}; a layer reads only earlier layers"
                )
            if read != sorted(set(read)):
                raise self._malformed(
                    string, f"layer {i} lists its inputs {read} out of order or twice"
                )
            for j in range(i):
                values[f"layer{i}/skip{j}"] = j in read
        return values

    def build(self, arch: Architecture, **network_options: Any) -> nn.Module:
        """Build the paper's network of an architecture.

        Args:
            arch: An architecture of this space.
            network_options: ``num_classes`` (10), ``in_channels`` (3) and
                ``channel_scale`` (1.0; multiplies every filter count, e.g. 0.125 for tiny
                test networks).
        """
        return NasRLMacroNetwork(self.layer_specs(arch), **network_options)

    def __repr__(self) -> str:
        if self.searched_depth:
            depth = (
                f"min_layers={self.min_layers}, max_layers={self.max_layers}, "
                f"layer_step={self.layer_step}"
            )
        else:
            depth = f"layers={self.min_layers}"
        return f"NasRLMacroSpace({depth}, strides={self.strides}, prefix={self.prefix!r})"


def _positive_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1
