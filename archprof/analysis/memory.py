"""Activation memory: the naive liveness peak, and the MobileNetV2 paper's materialized measure."""

from __future__ import annotations

import math
from collections.abc import Set
from dataclasses import dataclass

from archprof.tracing.tracer import Trace


def peak_live_bytes(trace: Trace, exclude: Set[int] = frozenset()) -> int:
    """Peak bytes of live activation tensors, each freed right after its last use.

    The input is live from the start; the model's outputs stay live to the end. Weights are not
    activations, nor are the storages in ``exclude`` (a training step's weight gradients). In-place ops and views share their base's storage, so they extend its life
    instead of allocating.
    """
    last_use: dict[int, int] = {}
    for i, (reads, fresh) in enumerate(zip(trace.reads, trace.allocations, strict=True)):
        for key in reads:
            last_use[key] = i
        for key, _ in fresh:
            last_use[key] = i
    end = len(trace.events)
    for key in trace.output_storages:
        last_use[key] = end
    sizes = dict(trace.input_storages)
    live = sum(sizes.values())
    peak = live
    frees: dict[int, list[int]] = {}
    for key, i in last_use.items():
        frees.setdefault(i, []).append(key)
    for i, fresh in enumerate(trace.allocations):
        for key, nbytes in fresh:
            if key in exclude:
                continue
            sizes[key] = nbytes
            live += nbytes
        peak = max(peak, live)
        for key in frees.get(i, ()):
            live -= sizes.pop(key, 0)
    return peak


@dataclass(frozen=True)
class MaterializedRow:
    """The largest tensor that must exist in memory at one spatial size (the V2 paper's Table 3)."""

    height: int
    width: int
    channels: int
    bytes: int


def materialized_by_resolution(
    tensors: list[tuple[str, tuple[int, ...]]], bytes_per_element: int = 2
) -> list[MaterializedRow]:
    """Per spatial size, the widest materialized (N, C, H, W) or (N, C) tensor, largest size first.

    ``bytes_per_element`` defaults to 2: the paper assumes 16-bit activations.
    """
    widest: dict[tuple[int, int], tuple[int, int]] = {}
    for _, shape in tensors:
        if len(shape) < 2:
            continue
        spatial = shape[2:] if len(shape) > 2 else (1, 1)
        h, w = (spatial[0], spatial[1]) if len(spatial) >= 2 else (spatial[0], 1)
        elements = math.prod(shape[1:])
        if elements > widest.get((h, w), (0, 0))[1]:
            widest[(h, w)] = (shape[1], elements)
    return [
        MaterializedRow(h, w, channels, elements * bytes_per_element)
        for (h, w), (channels, elements) in sorted(widest.items(), key=lambda kv: -kv[0][0] * kv[0][1])
    ]
