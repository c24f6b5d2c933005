"""``archprof.profile``: trace a model once and group its costs by layer, block, stage and type."""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from functools import cached_property
from typing import Any

import torch
from torch import nn

from archprof.analysis.layer_types import module_layer_type
from archprof.analysis.memory import MaterializedRow, materialized_by_resolution, peak_live_bytes
from archprof.architectures.base import Architecture
from archprof.tracing.tracer import OpEvent, Tracer

GROUPINGS = ("layer", "block", "stage", "type")
ROOT = "(model)"


class ProfileError(Exception):
    """The model could not be profiled at this input (one readable line)."""


class UncountedOpsError(ProfileError):
    """Strict mode: the forward pass ran ops that have no cost rule."""

    def __init__(self, uncounted: dict[str, int]) -> None:
        self.uncounted = uncounted
        listed = ", ".join(f"{op} x{n}" for op, n in uncounted.items())
        super().__init__(f"ops with no cost rule: {listed}")


class ArchprofNotice(UserWarning):
    """Something the user should know about how a profile was made (e.g. a CPU fallback)."""


@dataclass(frozen=True)
class Totals:
    macs: int
    flops: int
    params: int
    trainable_params: int
    frozen_params: int
    buffers: int
    activations: int
    bytes_read: int
    bytes_written: int
    peak_activation_bytes: int

    @property
    def arithmetic_intensity(self) -> float:
        """FLOPs per byte moved (read + written)."""
        moved = self.bytes_read + self.bytes_written
        return self.flops / moved if moved else 0.0


@dataclass(frozen=True)
class Row:
    """One group of a grouping; its numeric fields add up over rows to the profile's totals."""

    grouping: str
    name: str
    calls: int = 0
    macs: int = 0
    flops: int = 0
    params: int = 0
    activations: int = 0
    bytes_read: int = 0
    bytes_written: int = 0

    @property
    def arithmetic_intensity(self) -> float:
        moved = self.bytes_read + self.bytes_written
        return self.flops / moved if moved else 0.0


SUMMED = tuple(f.name for f in fields(Row) if f.name not in ("grouping", "name"))


@dataclass(frozen=True)
class ModuleInfo:
    path: str
    cls: str
    block: str
    stage: str
    layer_type: str  # of its own parameters
    params: int
    trainable_params: int
    buffers: int


@dataclass
class Profile:
    """The result of one traced forward pass: plain data, no strings to parse."""

    model: str
    config: dict[str, Any]
    input_shapes: list[tuple[int, ...]]
    dtype: str
    device: str
    ops: list[OpEvent]
    op_types: list[str]  # the layer type of each op, parallel to ``ops``
    modules: dict[str, ModuleInfo]
    peak_activation_bytes: int
    materialized_tensors: list[tuple[str, tuple[int, ...]]]
    notices: list[str] = field(default_factory=list)

    @cached_property
    def totals(self) -> Totals:
        params = sum(m.params for m in self.modules.values())
        trainable = sum(m.trainable_params for m in self.modules.values())
        return Totals(
            macs=sum(op.macs for op in self.ops),
            flops=sum(op.flops for op in self.ops),
            params=params,
            trainable_params=trainable,
            frozen_params=params - trainable,
            buffers=sum(m.buffers for m in self.modules.values()),
            activations=sum(op.activations for op in self.ops),
            bytes_read=sum(op.bytes_read for op in self.ops),
            bytes_written=sum(op.bytes_written for op in self.ops),
            peak_activation_bytes=self.peak_activation_bytes,
        )

    @property
    def uncounted(self) -> dict[str, int]:
        """Ops that ran but have no cost rule: name -> call count, never a silent zero."""
        return dict(Counter(op.op for op in self.ops if not op.counted))

    def group(self, by: str, depth: int | None = None) -> list[Row]:
        """Rows for ``by`` in "layer", "block", "stage", "type", in forward order.

        ``depth`` folds the layer view to that many levels of the module tree ("layer1.0.conv1"
        at depth 2 is charged to "layer1.0").
        """
        if by not in GROUPINGS:
            raise ValueError(f"unknown grouping {by!r} (choose from {', '.join(GROUPINGS)})")
        if depth is not None and (isinstance(depth, bool) or not isinstance(depth, int) or depth < 1):
            raise ValueError(f"depth must be an integer >= 1, got {depth!r}")
        sums: dict[str, dict[str, int]] = {}
        keys = {path: self._key(info, by, depth) for path, info in self.modules.items()}

        def bucket(name: str) -> dict[str, int]:
            return sums.setdefault(name, dict.fromkeys(SUMMED, 0))

        for op, op_type in zip(self.ops, self.op_types, strict=True):
            row = bucket(op_type if by == "type" else keys[op.module])
            row["calls"] += 1
            row["macs"] += op.macs
            row["flops"] += op.flops
            row["activations"] += op.activations
            row["bytes_read"] += op.bytes_read
            row["bytes_written"] += op.bytes_written
        for path, info in self.modules.items():
            if info.params:
                bucket(info.layer_type if by == "type" else keys[path])["params"] += info.params
        return [Row(by, name, **values) for name, values in sums.items()]

    @staticmethod
    def _key(info: ModuleInfo, by: str, depth: int | None) -> str:
        if by == "block":
            return info.block
        if by == "stage":
            return info.stage
        path = ".".join(info.path.split(".")[:depth]) if depth else info.path
        return path or ROOT

    def materialized_memory(self, bytes_per_element: int = 2) -> list[MaterializedRow]:
        """Largest materialized tensor per spatial size (the MobileNetV2 paper's Table 3 measure)."""
        return materialized_by_resolution(self.materialized_tensors, bytes_per_element)

    def materialized_peak_bytes(self, bytes_per_element: int = 2) -> int:
        """The largest materialized tensor: the max row of the V2 paper's Table 3."""
        return max((r.bytes for r in self.materialized_memory(bytes_per_element)), default=0)


def _module_tables(model: nn.Module) -> tuple[dict[int, str], dict[str, nn.Module]]:
    by_path = dict(model.named_modules())
    return {id(m): path for path, m in by_path.items()}, by_path


def _stage_lookup(model: nn.Module, by_path: dict[str, nn.Module]) -> dict[str, str]:
    if isinstance(model, Architecture):
        prefixes = [(p, stage) for stage, paths in model.stage_modules().items() for p in paths]
    else:  # a user model: its top-level children are its stages
        prefixes = [(name, name) for name, _ in model.named_children()]
    stages = {}
    for path in by_path:
        match = [(len(p), stage) for p, stage in prefixes if path == p or path.startswith(p + ".")]
        stages[path] = max(match)[1] if match else ROOT
    return stages


def _module_infos(model: nn.Module, by_path: dict[str, nn.Module]) -> dict[str, ModuleInfo]:
    stages = _stage_lookup(model, by_path)
    seen: set[int] = set()  # a shared parameter is counted once, at its first owner (as named_parameters)
    infos = {}
    for path, module in by_path.items():
        params = trainable = 0
        for p in module._parameters.values():
            if p is not None and id(p) not in seen:
                seen.add(id(p))
                params += p.numel()
                trainable += p.numel() if p.requires_grad else 0
        buffers = 0
        for b in module._buffers.values():
            if b is not None and id(b) not in seen:
                seen.add(id(b))
                buffers += b.numel()
        chain = _ancestors(path, by_path)
        block = next((getattr(m, "archprof_block", None) for m in chain if getattr(m, "archprof_block", None)), None)
        if block is None:
            block = stages[path] if isinstance(model, Architecture) or not path else type(chain[-2]).__name__
        declared = next((m.archprof_layer_type for m in chain if getattr(m, "archprof_layer_type", None)), None)
        infos[path] = ModuleInfo(
            path=path,
            cls=type(module).__name__,
            block=block,
            stage=stages[path],
            layer_type=declared or module_layer_type(module) or "other",
            params=params,
            trainable_params=trainable,
            buffers=buffers,
        )
    return infos


def _ancestors(path: str, by_path: dict[str, nn.Module]) -> list[nn.Module]:
    """The module at ``path`` and its ancestors, innermost first, the model last."""
    parts = path.split(".") if path else []
    return [by_path[".".join(parts[:i])] for i in range(len(parts), -1, -1)]


def _op_types(ops: list[OpEvent], by_path: dict[str, nn.Module]) -> list[str]:
    """An op's layer type: a type declared by its module or an ancestor (a deformable conv's
    offset conv is part of the deformable conv), else its leaf layer's class (the mean inside an
    AdaptiveAvgPool2d is pooling), else what the op itself is (``a + b`` is element-wise)."""
    cache: dict[str, str | None] = {}
    for path in {op.module for op in ops}:
        chain = _ancestors(path, by_path)
        declared = next((m.archprof_layer_type for m in chain if getattr(m, "archprof_layer_type", None)), None)
        cache[path] = declared or module_layer_type(chain[0])
    return [cache[op.module] or op.category for op in ops]


def _resolve_inputs(model: nn.Module, input_shape: Sequence[int] | None, inputs: Any) -> tuple[torch.Tensor, ...]:
    if inputs is not None:
        return tuple(inputs) if isinstance(inputs, (tuple, list)) else (inputs,)
    if input_shape is None:
        input_shape = getattr(model, "default_input_shape", None)
        if input_shape is None:
            raise ProfileError("this model has no default input shape: pass input_shape or inputs")
    shape = tuple(input_shape)
    if not shape or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in shape):
        raise ProfileError(f"input shape must be positive integers, got {list(shape)}")
    try:
        return (torch.empty(shape, dtype=_dtype(model), device="meta"),)
    except (RuntimeError, OverflowError, TypeError) as err:  # more elements than an index can hold
        raise ProfileError(f"input shape {list(shape)} is too large to index (at most 2^63 - 1 elements)") from err


def _dtype(model: nn.Module) -> torch.dtype:
    return next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.get_default_dtype())


def _on_device(
    model: nn.Module, inputs: tuple[torch.Tensor, ...], device: str
) -> tuple[tuple[torch.Tensor, ...], dict[str, torch.Tensor] | None]:
    """Inputs and a parameter/buffer state on ``device``, without touching the user's module."""
    moved: dict[int, torch.Tensor] = {}

    def to(t: torch.Tensor) -> torch.Tensor:
        if t.device.type == device:
            return t
        if id(t) not in moved:  # tied weights stay tied
            moved[id(t)] = torch.zeros_like(t, device=device) if device != "meta" else torch.empty_like(t, device="meta")
        return moved[id(t)]

    named = list(model.named_parameters(remove_duplicate=False)) + list(model.named_buffers(remove_duplicate=False))
    state = {name: to(t) for name, t in named}
    if all(state[name] is t for name, t in named):
        state = None
    return tuple(to(t) for t in inputs), state


def _trace(model, inputs, device, module_paths, watched):
    inputs, state = _on_device(model, inputs, device)
    tracer = Tracer(model, module_paths, watched)
    weights = list(state.values()) if state is not None else [*model.parameters(), *model.buffers()]
    tracer.mark_known(weights)
    return tracer.run(inputs, state), inputs


def profile(
    model: nn.Module,
    input_shape: Sequence[int] | None = None,
    *,
    inputs: Any = None,
    device: str | None = None,
    strict: bool = False,
    name: str | None = None,
) -> Profile:
    """Trace one forward pass of ``model`` and attribute every op's cost.

    ``device=None`` runs on the meta device (no weight or activation memory, a cost independent of
    batch and resolution) and falls back to a real CPU forward, with a notice, when the model
    cannot run on meta (data-dependent control flow). ``"meta"``, ``"cpu"`` or ``"cuda"`` force one.
    ``strict=True`` raises :class:`UncountedOpsError` if any op has no cost rule.
    """
    if device not in (None, "meta", "cpu", "cuda"):
        raise ValueError(f"device must be 'meta', 'cpu' or 'cuda', got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise ProfileError("device 'cuda': CUDA is not available on this machine")
    inputs = _resolve_inputs(model, input_shape, inputs)
    module_paths, by_path = _module_tables(model)
    declared = model.materialized_modules() if isinstance(model, Architecture) else None
    leaves = [p for p, m in by_path.items() if not any(True for _ in m.children())]
    watched = set(declared if declared is not None else leaves)
    notices: list[str] = []
    training = {m: m.training for m in by_path.values()}  # each module's own flag, restored as it was
    model.eval()
    try:
        try:
            trace, used = _trace(model, inputs, device or "meta", module_paths, watched)
            used_device = device or "meta"
        except Exception as err:
            if device is not None:
                raise ProfileError(f"forward failed on {device} at input {_shapes(inputs)}: {_one_line(err)}") from err
            try:
                trace, used = _trace(model, inputs, "cpu", module_paths, watched)
            except Exception as cpu_err:  # not a meta limitation: the model fails at this input
                raise ProfileError(f"forward failed at input {_shapes(inputs)}: {_one_line(cpu_err)}") from cpu_err
            notice = f"the model cannot run on the meta device ({_one_line(err)}); profiled with a real CPU forward"
            warnings.warn(notice, ArchprofNotice, stacklevel=2)
            notices.append(notice)
            used_device = "cpu"
    finally:
        for module, flag in training.items():
            module.training = flag
    materialized = [("input", tuple(t.shape)) for t in used] + trace.module_outputs
    result = Profile(
        model=name or getattr(model, "archprof_name", None) or type(model).__name__,
        config=dict(getattr(model, "config", {})),
        input_shapes=[tuple(t.shape) for t in used],
        dtype=str(_dtype(model)).replace("torch.", ""),
        device=used_device,
        ops=trace.events,
        op_types=_op_types(trace.events, by_path),
        modules=_module_infos(model, by_path),
        peak_activation_bytes=peak_live_bytes(trace),
        materialized_tensors=materialized,
        notices=notices,
    )
    if strict and result.uncounted:
        raise UncountedOpsError(result.uncounted)
    return result


def _shapes(inputs: tuple[torch.Tensor, ...]) -> str:
    return ", ".join(str(list(t.shape)) for t in inputs)


def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}".rstrip(": ")
