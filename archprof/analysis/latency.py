"""Real per-layer latency beside the counted cost: where MACs and time disagree.

Compute and latency disagree most for depthwise convolutions, whose few MACs per byte leave them
memory-bound: a layer type's share of the time can be many times its share of the MACs. The
forward runs for real (CPU, or CUDA when asked and present) with a timer around every leaf
module; each layer's time is the median over the repeats, after warm-up runs.
"""

from __future__ import annotations

import copy
import math
import statistics
import time
from collections import defaultdict
from dataclasses import dataclass

import torch
from torch import nn

from archprof.analysis.profile import ROOT, Profile, ProfileError
from archprof.errors import ArchprofValueError
from archprof.tracing.inputs import Inputs, float_dtype, materialize, vocabulary_size
from archprof.tracing.state import left_as_found


@dataclass(frozen=True)
class LayerLatency:
    name: str
    layer_type: str
    calls: int
    macs: int
    bytes: int  # read + written
    median_ms: float

    @property
    def gmacs_per_s(self) -> float | None:
        return self.macs / self.median_ms / 1e6 if self.median_ms > 0 and self.macs else None

    @property
    def gbytes_per_s(self) -> float | None:
        return self.bytes / self.median_ms / 1e6 if self.median_ms > 0 and self.bytes else None


@dataclass(frozen=True)
class LatencyReport:
    device: str
    warmup: int
    repeats: int
    forward_ms: float  # median of whole forward passes, without per-layer timers
    layers: list[LayerLatency]

    @property
    def timed_ms(self) -> float:
        return sum(layer.median_ms for layer in self.layers)

    def by_type(self) -> list[LayerLatency]:
        """The layers summed per layer type (time: the sum of the layers' medians)."""
        sums: dict[str, list[float]] = defaultdict(lambda: [0, 0, 0, 0.0])
        for layer in self.layers:
            row = sums[layer.layer_type]
            row[0] += layer.calls
            row[1] += layer.macs
            row[2] += layer.bytes
            row[3] += layer.median_ms
        return [LayerLatency(t, t, int(c), int(m), int(b), ms) for t, (c, m, b, ms) in sums.items()]


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def measure_latency(
    model: nn.Module, counted: Profile, device: str = "cpu", warmup: int = 3, repeats: int = 10
) -> LatencyReport:
    """Time every leaf module of ``model`` at the input of ``counted`` (its profile).

    The model is left as it was found: its device (a model elsewhere is timed as a copy on
    ``device``), training flags, parameters, gradients, buffers and hooks."""
    if device not in ("cpu", "cuda"):
        raise ArchprofValueError(f"latency is measured on cpu or cuda, not {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise ProfileError("--device cuda: CUDA is not available on this machine")
    if warmup < 0 or repeats < 1:
        raise ArchprofValueError(f"warmup must be >= 0 and repeats >= 1, got {warmup} and {repeats}")
    if any(p.is_meta for p in model.parameters()):
        raise ProfileError("latency needs real weights: build the model on the CPU, not on the meta device")
    elements = sum(math.prod(shape) for shape in counted.input_shapes)
    if elements > 2**28:
        raise ProfileError(f"latency runs real forwards: an input of {elements:,} elements is too large (at most {2**28:,})")
    tensors = [*model.parameters(), *model.buffers()]
    if any(t.device.type != device for t in tensors):  # timed as a copy on the device: the user's model stays where it is
        model = copy.deepcopy(model).to(device)
    inputs = materialize(counted.call, device, float_dtype(model), vocabulary=vocabulary_size(model))
    with left_as_found(model):  # eval(), and whatever the timed forwards write (a step counter), undone after
        model.eval()
        return _timed(model, inputs, device, warmup, repeats, counted)


def _timed(model: nn.Module, inputs: Inputs, device: str, warmup: int, repeats: int, counted: Profile) -> LatencyReport:
    leaves = {m: path for path, m in model.named_modules() if not any(True for _ in m.children())}
    elapsed: dict[str, float] = defaultdict(float)
    starts: dict[int, list[float]] = defaultdict(list)

    def before(module: nn.Module, args: object) -> None:
        _sync(device)
        starts[id(module)].append(time.perf_counter())

    def after(module: nn.Module, args: object, output: object) -> None:
        _sync(device)
        elapsed[leaves[module]] += time.perf_counter() - starts[id(module)].pop()

    def forward() -> None:
        with torch.no_grad():
            model(*inputs.args, **inputs.kwargs)
        _sync(device)

    for _ in range(warmup):
        forward()
    whole = []
    for _ in range(repeats):
        start = time.perf_counter()
        forward()
        whole.append(time.perf_counter() - start)
    handles = [h for m in leaves for h in (m.register_forward_pre_hook(before), m.register_forward_hook(after))]
    per_layer: dict[str, list[float]] = defaultdict(list)
    try:
        for _ in range(repeats):
            elapsed.clear()
            forward()
            for path in leaves.values():
                per_layer[path].append(elapsed.get(path, 0.0))
    finally:
        for h in handles:
            h.remove()
    rows = {r.name: r for r in counted.group("layer")}
    layers = []
    for path, times in per_layer.items():
        row = rows.get(path or ROOT)
        if row is None:  # a leaf that never ran
            continue
        info = counted.modules[path]
        layers.append(LayerLatency(path, info.layer_type, row.calls, row.macs, row.bytes_read + row.bytes_written,
                                   statistics.median(times) * 1000))
    return LatencyReport(device, warmup, repeats, statistics.median(whole) * 1000, layers)
