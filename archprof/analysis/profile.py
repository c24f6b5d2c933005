"""``archprof.profile``: trace a model once and group its costs by layer, block, stage and type."""

from __future__ import annotations

import inspect
import math
import os
import re
import warnings
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from copy import deepcopy
from dataclasses import dataclass, field, fields, is_dataclass
from functools import cached_property
from typing import Any

import torch
from torch import nn
from torch.nn.modules.lazy import LazyModuleMixin
from torch.nn.parameter import UninitializedBuffer, UninitializedParameter

from archprof.analysis.layer_types import module_layer_type
from archprof.analysis.memory import MaterializedRow, materialized_by_resolution, peak_live_bytes
from archprof.analysis.training import PRECISIONS, TrainingMemory, check_mode, check_training_options, training_memory
from archprof.architectures.base import Architecture
from archprof.errors import EXIT_UNCOUNTED, ArchprofError, ArchprofNotice, ArchprofValueError
from archprof.tracing.autograd import TrainingError, TrainingStep
from archprof.tracing.inputs import (
    InputError,
    Inputs,
    InputSpec,
    as_inputs,
    describe,
    float_dtype,
    materialize,
    vocabulary_size,
)
from archprof.tracing.rules import rules_with
from archprof.tracing.state import ModuleSnapshot
from archprof.tracing.tracer import OpEvent, Tracer

GROUPINGS = ("layer", "block", "stage", "type", "part", "level", "stride")
DEFAULT_GROUPINGS = ("stage", "block", "type")  # what `archprof profile` shows when no view is asked for
ROOT = "(model)"


class ProfileError(ArchprofError):
    """The model could not be profiled at this input (one readable line)."""


class UncountedOpsError(ProfileError):
    """Strict mode: the forward pass ran ops that have no cost rule."""

    exit_code = EXIT_UNCOUNTED

    def __init__(self, uncounted: dict[str, int]) -> None:
        self.uncounted = uncounted
        listed = ", ".join(f"{op} x{n}" for op, n in uncounted.items())
        super().__init__(f"ops with no cost rule: {listed}")


# The properties below are written as ``name = property(fn)``: mutmut (benchmarks/mutation.py)
# does not mutate decorated functions, and this keeps them within its reach.


def _arithmetic_intensity(counts: Totals | Row) -> float:
    """FLOPs per byte moved (read + written)."""
    moved = counts.bytes_read + counts.bytes_written
    return counts.flops / moved if moved else 0.0


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
    # A training step (mode "train"): the backward pass's share of macs and flops, which include it.
    backward_macs: int = 0
    backward_flops: int = 0
    saved_bytes: int = 0  # activations the forward saved for backward

    def _forward_macs(self) -> int:
        return self.macs - self.backward_macs

    forward_macs = property(_forward_macs)

    def _forward_flops(self) -> int:
        return self.flops - self.backward_flops

    forward_flops = property(_forward_flops)

    arithmetic_intensity = property(_arithmetic_intensity)


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
    # A training step (mode "train"): the backward pass's share of macs and flops (which include
    # it), and the bytes the group's layers saved for backward.
    backward_macs: int = 0
    backward_flops: int = 0
    saved_bytes: int = 0
    stages: tuple[str, ...] = ()  # the stride grouping: the declared stages this row regroups

    arithmetic_intensity = property(_arithmetic_intensity)


SUMMED = tuple(f.name for f in fields(Row) if f.name not in ("grouping", "name", "stages"))
TRAINING_FIELDS = ("backward_macs", "backward_flops", "saved_bytes")  # zero unless the profile is of a training step


@dataclass(frozen=True)
class InputInfo:
    """One tensor the forward was called with: ``kwargs["input_ids"]``, (1, 128), "int64"."""

    path: str
    shape: tuple[int, ...]
    dtype: str


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
    part: str = ROOT  # the innermost ``archprof_part`` declared on it or an ancestor (a detector's backbone, neck, head)
    level: str = ROOT  # the innermost ``archprof_level`` (a pyramid level, "P3"), else its part
    saved_bytes: int = 0  # a training step: the activations its forward saved for backward


# The unit convention every count follows (README, "What is counted"); written beside every number.
CONVENTION = "MAC = one multiply-accumulate; FLOP = 2 per MAC, plus bias and element-wise ops"


@dataclass(frozen=True)
class Conditions:
    """What a count was made at, to be written beside every number: the inputs (shapes, dtypes),
    the batch, the device the forward ran on, the mode, the unit convention and archprof's version."""

    inputs: tuple[InputInfo, ...]
    batch: int | None  # the first dimension every input tensor shares; None where they differ or there is none
    device: str
    mode: str
    convention: str = CONVENTION
    version: str = ""

    def _shapes(self) -> str:
        """``1x3x224x224``; several inputs joined with ``, ``, a keyword input as the command line's
        ``--input`` names it (``input_ids=1x128``)."""
        shown = []
        for i in self.inputs:
            shape = "x".join(map(str, i.shape)) or "scalar"
            keyword = re.fullmatch(r'kwargs\["([^"]+)"\]', i.path)
            shown.append(f"{keyword[1]}={shape}" if keyword else shape)
        return ", ".join(shown)

    shapes = property(_shapes)

    def _dtypes(self) -> str:
        """``float32``: the inputs' dtype, or each input's in order where they differ."""
        dtypes = [i.dtype for i in self.inputs]
        return dtypes[0] if len(set(dtypes)) == 1 else ", ".join(dtypes)

    dtypes = property(_dtypes)

    def as_dict(self) -> dict[str, Any]:
        return {"input": self.shapes, "dtype": self.dtypes, "batch": self.batch, "device": self.device,
                "mode": self.mode, "convention": self.convention, "version": self.version}


def conditions_of(inputs: Sequence[InputInfo], device: str, mode: str) -> Conditions:
    from archprof import __version__

    firsts = {i.shape[0] for i in inputs if i.shape}
    return Conditions(tuple(inputs), firsts.pop() if len(firsts) == 1 else None, device, mode, CONVENTION, __version__)


@dataclass
class Profile:
    """The result of one traced forward pass: plain data, no strings to parse."""

    model: str
    config: dict[str, Any]
    input_shapes: list[tuple[int, ...]]
    dtype: str
    device: str
    ops: list[OpEvent]
    layer_types: list[str]  # the layer type of each op, parallel to ``ops``
    modules: dict[str, ModuleInfo]
    peak_activation_bytes: int
    materialized_tensors: list[tuple[str, tuple[int, ...]]]
    notices: list[str] = field(default_factory=list)
    inputs: list[InputInfo] = field(default_factory=list)  # every input tensor, by its path in the call
    call: Inputs = field(default_factory=Inputs, repr=False)  # the call as asked for (specs, tensors, values)
    # Per stage, the shapes output by the stage's last module to run (every call of it): the stride grouping's input.
    stage_outputs: dict[str, list[tuple[int, ...]]] = field(default_factory=dict, repr=False)
    mode: str = "inference"  # one of MODES: an eval-mode forward, or a training step (forward and backward)
    training: TrainingMemory | None = None  # mode "train": what the step holds in memory
    architecture: str | None = None  # the registered name the model was built from ("resnet50"), if any

    def __post_init__(self) -> None:
        check_mode(self.mode)

    def _conditions(self) -> Conditions:
        """The conditions of every number of this profile (its inputs, batch, device, mode, ...)."""
        mode = self.mode if self.training is None else f"train ({self.training.optimizer}, {self.training.precision})"
        return conditions_of(self.inputs, self.device, mode)

    conditions = property(_conditions)

    def _row_fields(self) -> tuple[str, ...]:
        """The summed fields of this profile's rows: a training step's backward and saved-bytes fields only in train mode."""
        return SUMMED if self.mode == "train" else tuple(k for k in SUMMED if k not in TRAINING_FIELDS)

    row_fields = property(_row_fields)

    def _totals(self) -> Totals:
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
            backward_macs=sum(op.macs for op in self.ops if op.phase == "backward"),
            backward_flops=sum(op.flops for op in self.ops if op.phase == "backward"),
            saved_bytes=sum(m.saved_bytes for m in self.modules.values()),
        )

    totals = cached_property(_totals)

    def _uncounted(self) -> dict[str, int]:
        """Ops that ran but have no cost rule: name -> call count, never a silent zero."""
        return dict(Counter(op.op for op in self.ops if not op.counted))

    uncounted = property(_uncounted)

    def group(self, by: str, depth: int | None = None) -> list[Row]:
        """Rows for ``by`` in "layer", "block", "stage", "type" (in forward order), "part" or
        "level" (in the order the model declares its modules: backbone, neck, head; P3 .. P7), or
        "stride" (the stages regrouped by output stride: stem, /2, /4, ..., head; see :meth:`stage_strides`).

        ``depth`` folds the layer view to that many levels of the module tree ("layer1.0.conv1"
        at depth 2 is charged to "layer1.0").
        """
        if by not in GROUPINGS:
            raise ArchprofValueError(f"unknown grouping {by!r} (choose from {', '.join(GROUPINGS)})")
        if depth is not None and (isinstance(depth, bool) or not isinstance(depth, int) or depth < 1):
            raise ArchprofValueError(f"depth must be an integer >= 1, got {depth!r}")
        sums: dict[str, dict[str, int]] = {}
        strides = self.stage_strides() if by == "stride" else {}
        keys = {path: strides[info.stage] if by == "stride" else self._key(info, by, depth) for path, info in self.modules.items()}

        def bucket(name: str) -> dict[str, int]:
            return sums.setdefault(name, dict.fromkeys(SUMMED, 0))

        for op, layer_type in zip(self.ops, self.layer_types, strict=True):
            row = bucket(layer_type if by == "type" else keys[op.module])
            row["calls"] += 1
            row["macs"] += op.macs
            row["flops"] += op.flops
            row["activations"] += op.activations
            row["bytes_read"] += op.bytes_read
            row["bytes_written"] += op.bytes_written
            if op.phase == "backward":
                row["backward_macs"] += op.macs
                row["backward_flops"] += op.flops
        for path, info in self.modules.items():
            if info.params:
                bucket(info.layer_type if by == "type" else keys[path])["params"] += info.params
            if info.saved_bytes:
                bucket(info.layer_type if by == "type" else keys[path])["saved_bytes"] += info.saved_bytes
        if by in ("part", "level"):  # the top-down pass runs P5 before P4: list levels as declared
            declared = list(dict.fromkeys(keys.values()))
            sums = dict(sorted(sums.items(), key=lambda item: declared.index(item[0])))
        if by == "stride":
            regrouped: dict[str, tuple[str, ...]] = {}
            for stage, key in strides.items():
                regrouped[key] = regrouped.get(key, ()) + (stage,)
            return [Row(by, name, **sums[name], stages=regrouped[name]) for name in sorted(sums, key=stride_order)]
        return [Row(by, name, **values) for name, values in sums.items()]

    def stage_strides(self) -> dict[str, str]:
        """Each declared stage's row in the stride grouping, so that stages of different families line up.

        A stage is keyed by its output stride, the input's spatial size over the spatial size of
        what the stage's last module outputs ("/4": 224 -> 56), rounded to a power of two where the
        sizes do not divide (225 -> 15 is "/16"). Two stages keep a name of their own, as RegNet
        splits a network into stem, body and head: a stage named "stem" (ResNet's ends at the
        max pool, at /4, and stays apart from conv2_x) and "head", a stage that ends in one vector
        per sample (global pool and classifier). A stage whose outputs span several strides (an FPN
        neck, a head shared across pyramid levels: see the ``level`` grouping) or have no spatial
        dims it can be measured by keeps its own name; ops outside every stage stay ``(model)``.
        Raises ``ValueError`` when no input has spatial dims (N, C, H[, W, ...]).
        """
        reference = next((i.shape for i in self.inputs if len(i.shape) >= 3), None)
        if reference is None:
            shapes = ", ".join("x".join(map(str, i.shape)) for i in self.inputs) or "none"
            raise ArchprofValueError(f"the stride grouping needs a spatial input (N, C, H, W); {self.model}'s input is {shapes}: "
                             "group by stage instead")
        stages = list(dict.fromkeys(info.stage for info in self.modules.values()))
        return {stage: _stride_key(stage, self.stage_outputs.get(stage, []), reference) for stage in stages}

    @staticmethod
    def _key(info: ModuleInfo, by: str, depth: int | None) -> str:
        if by == "block":
            return info.block
        if by == "stage":
            return info.stage
        if by == "part":
            return info.part
        if by == "level":
            return info.level
        path = ".".join(info.path.split(".")[:depth]) if depth else info.path
        return path or ROOT

    def materialized_memory(self, bytes_per_element: int = 2) -> list[MaterializedRow]:
        """Largest materialized tensor per spatial size (the MobileNetV2 paper's Table 3 measure)."""
        return materialized_by_resolution(self.materialized_tensors, bytes_per_element)

    def materialized_peak_bytes(self, bytes_per_element: int = 2) -> int:
        """The largest materialized tensor: the max row of the V2 paper's Table 3."""
        return max((r.bytes for r in self.materialized_memory(bytes_per_element)), default=0)

    # --- in a notebook: the same data and text the command line prints -----------------------

    def __repr__(self) -> str:
        from archprof.rendering.writers import count_text

        t = self.totals
        shapes = ", ".join("x".join(map(str, shape)) for shape in self.input_shapes)
        uncounted = f", {sum(self.uncounted.values())} uncounted ops" if self.uncounted else ""
        return (f"<Profile {self.model}: {count_text(t.macs)} MACs, {count_text(t.flops)} FLOPs, "
                f"{count_text(t.params)} params; input {shapes or 'none'} ({self.dtype}) on {self.device}{uncounted}>")

    def _repr_html_(self) -> str:
        return self.to_html()

    def to_html(self, by: str = "stage", unit: str = "macs", depth: int | None = None) -> str:
        """The totals and the ``by`` grouping as HTML tables."""
        return self._text("html", [by], unit, depth, raw=False)

    def to_dataframe(self, by: str = "stage", depth: int | None = None) -> Any:
        """``group(by, depth)`` as a pandas DataFrame: one row per group, one column per summed field."""
        pandas = _pandas("Profile.to_dataframe")
        rows = self.group(by, depth)
        keys = self.row_fields
        frame = pandas.DataFrame([[r.name, *(getattr(r, k) for k in keys)] for r in rows], columns=[by, *keys])
        if by == "stride":  # the declared stages each row regroups
            frame.insert(1, "stages", [", ".join(r.stages) for r in rows])
        return frame

    def to_csv(self, by: str | Sequence[str] = DEFAULT_GROUPINGS, depth: int | None = None) -> str:
        """The CSV ``archprof profile --format csv`` writes (``by``: its views, stage, block and type by default)."""
        from archprof.rendering.writers import models_to_csv

        return models_to_csv([self], _groupings(by), depth)

    def to_latex(self, by: str | Sequence[str] = DEFAULT_GROUPINGS, unit: str = "macs", depth: int | None = None,
                 raw: bool = False, *, scale: str | None = None, tables: Sequence[str] | None = None,
                 caption: str | None = None, label: str | None = None, siunitx: bool = False) -> str:
        """The booktabs tables ``archprof profile --format latex`` writes (``scale``, ``tables``,
        ``caption``, ``label``, ``siunitx``: its --scale, --table, --caption, --label, --siunitx)."""
        return self._text("latex", _groupings(by), unit, depth, raw, layout(scale, tables, caption, label, siunitx, command="profile"))

    def to_markdown(self, by: str | Sequence[str] = DEFAULT_GROUPINGS, unit: str = "macs", depth: int | None = None,
                    raw: bool = False, *, scale: str | None = None, tables: Sequence[str] | None = None) -> str:
        """The tables ``archprof profile --format markdown`` writes."""
        return self._text("markdown", _groupings(by), unit, depth, raw, layout(scale, tables))

    def _text(self, fmt: str, groupings: list[str], unit: str, depth: int | None, raw: bool, how: Any = None) -> str:
        from archprof.rendering.tables import model_tables
        from archprof.rendering.writers import TEXT_WRITERS, to_html

        made = model_tables([self], groupings, _unit(unit), depth)
        return to_html(made, raw) if fmt == "html" else TEXT_WRITERS[fmt](made, raw, how)


STEM, HEAD = "stem", "head"


def _stride_key(stage: str, outputs: list[tuple[int, ...]], reference: tuple[int, ...]) -> str:
    if stage in (ROOT, STEM):
        return stage
    spatial = {_stride(shape[2:], reference[2:]) for shape in outputs if len(shape) == len(reference)}
    if not spatial:
        return HEAD if outputs and all(len(shape) == 2 for shape in outputs) else stage
    return spatial.pop() if len(spatial) == 1 else stage


def _stride(size: tuple[int, ...], input_size: tuple[int, ...]) -> str:
    """``/8`` for 28x28 out of 224x224; ``/8x16`` where the dims differ; ``x2`` for an upsampled output."""
    per_dim = []
    for out, full in zip(size, input_size, strict=True):
        if out >= full or out == 0:
            per_dim.append(f"x{round(out / full)}" if out > full else "/1")
            continue
        power = 2 ** round(math.log2(full / out))
        per_dim.append(f"/{power}" if out in (full // power, -(-full // power)) else f"/{round(full / out)}")
    if len(set(per_dim)) == 1:
        return per_dim[0]
    return per_dim[0][0] + "x".join(d[1:] for d in per_dim)


def stride_order(name: str) -> tuple[int, float]:
    """Rows of the stride grouping in the order the image flows: stem, /1, /2, ... /32, the stages
    keyed by their own names (an FPN neck), head, then ``(model)``."""
    if name == STEM:
        return (0, 0.0)
    if re.fullmatch(r"/\d+", name):
        return (1, float(name[1:]))
    if re.fullmatch(r"x\d+", name):
        return (1, 1 / float(name[1:]))
    return {HEAD: (3, 0.0), ROOT: (4, 0.0)}.get(name, (2, 0.0))


def layout(scale: str | None, tables: Sequence[str] | None, caption: str | None = None, label: str | None = None,
           siunitx: bool = False, command: str = "archprof") -> Any:
    """The writers' :class:`~archprof.rendering.writers.Layout` from ``to_latex``'s and ``to_markdown``'s
    keywords (``caption``, ``label``, ``siunitx`` and ``command``, whose name the labels carry, are LaTeX's)."""
    from archprof.rendering.writers import Layout

    return Layout(scale, None if tables is None else tuple([tables] if isinstance(tables, str) else tables), caption,
                  label, siunitx, command)


def _groupings(by: str | Sequence[str]) -> list[str]:
    # (group() refuses an unknown one)
    chosen = [by] if isinstance(by, str) else list(by)
    if not chosen:
        raise ArchprofValueError(f"no grouping given (choose from {', '.join(GROUPINGS)})")
    return chosen


def _unit(unit: str) -> str:
    if unit not in ("macs", "flops"):
        raise ArchprofValueError(f"unit must be 'macs' or 'flops', got {unit!r}")
    return unit


def _pandas(what: str) -> Any:
    try:
        import pandas
    except ImportError:
        raise ImportError(f"{what} needs pandas: pip install pandas") from None
    return pandas


def _module_tables(model: nn.Module) -> tuple[dict[int, str], dict[str, nn.Module]]:
    by_path = dict(model.named_modules())
    return {id(m): path for path, m in by_path.items()}, by_path


def _stage_roots(model: nn.Module) -> dict[str, tuple[str, ...]]:
    """Stage name -> the module paths it covers: an architecture's declared stages, else a user
    model's top-level children."""
    if isinstance(model, Architecture):
        return model.stage_modules()
    return {name: (name,) for name, _ in model.named_children()}


def _stage_outputs(roots: dict[str, tuple[str, ...]], outputs: list[tuple[str, tuple[int, ...]]]) -> dict[str, list[tuple[int, ...]]]:
    """Per stage, every shape output by the stage's module that finished last (all its calls)."""
    stage_of = {path: stage for stage, paths in roots.items() for path in paths}
    last = {stage_of[path]: path for path, _ in outputs if path in stage_of}
    return {stage: [shape for path, shape in outputs if path == root] for stage, root in last.items()}


def _stage_lookup(model: nn.Module, by_path: dict[str, nn.Module]) -> dict[str, str]:
    prefixes = [(p, stage) for stage, paths in _stage_roots(model).items() for p in paths]
    stages = {}
    for path in by_path:
        match = [(len(p), stage) for p, stage in prefixes if path == p or path.startswith(p + ".")]
        stages[path] = max(match)[1] if match else ROOT
    return stages


# Attributes a module declares for itself and its descendants, the innermost declaration winning.
DECLARED = ("archprof_block", "archprof_layer_type", "archprof_part", "archprof_level")


def _declarations(by_path: dict[str, nn.Module]) -> dict[str, dict[str, Any]]:
    """Per module path, each of :data:`DECLARED` as the module or its nearest ancestor sets it.

    One pass from the model down (``named_modules`` lists parents first), reading each attribute
    from the instance or its class without ``nn.Module.__getattr__``'s slow path for a miss.
    """
    declared: dict[str, dict[str, Any]] = {}
    for path, module in by_path.items():
        parent = declared.get(path.rpartition(".")[0])  # the model itself ("") has none: it comes first
        own = module.__dict__
        cls = type(module)
        values = {name: own.get(name) or getattr(cls, name, None) for name in DECLARED}
        for name, value in values.items():
            if isinstance(value, property):  # declared by a property: its value, through the instance
                values[name] = getattr(module, name, None)
        declared[path] = {name: value or (parent[name] if parent else None) for name, value in values.items()}
    return declared


def _module_infos(
    model: nn.Module, by_path: dict[str, nn.Module], declared: dict[str, dict[str, Any]], saved: dict[str, int]
) -> dict[str, ModuleInfo]:
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
        own = declared[path]
        block = own["archprof_block"]
        if block is None:  # an architecture's stage, else the class of the model's top-level child
            block = stages[path] if isinstance(model, Architecture) or not path else type(by_path[path.split(".")[0]]).__name__
        part = own["archprof_part"] or ROOT
        infos[path] = ModuleInfo(
            path=path,
            cls=type(module).__name__,
            block=block,
            stage=stages[path],
            layer_type=own["archprof_layer_type"] or module_layer_type(module) or "other",
            params=params,
            trainable_params=trainable,
            buffers=buffers,
            part=part,
            level=own["archprof_level"] or part,
            saved_bytes=saved.get(path, 0),
        )
    return infos


def _layer_types(ops: list[OpEvent], by_path: dict[str, nn.Module], declared: dict[str, dict[str, Any]]) -> list[str]:
    """An op's layer type: a type declared by its module or an ancestor (a deformable conv's
    offset conv is part of the deformable conv), else its leaf layer's class (the mean inside an
    AdaptiveAvgPool2d is pooling), else what the op itself is (``a + b`` is element-wise)."""
    cache = {path: declared[path]["archprof_layer_type"] or module_layer_type(by_path[path]) for path in {op.module for op in ops}}
    return [cache[op.module] or op.layer_type for op in ops]


def _resolve_inputs(model: nn.Module, input_shape: Sequence[int] | None, given: Inputs | None) -> Inputs:
    if given is not None and (given.args or given.kwargs):
        return given
    if input_shape is None:
        declared = getattr(model, "archprof_inputs", None)
        if declared is not None:
            return as_inputs(declared)
        input_shape = getattr(model, "default_input_shape", None)
        if input_shape is None:
            raise ProfileError("this model has no default input: pass input_shape or inputs")
    shape = tuple(input_shape)
    if not shape or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in shape):
        raise ProfileError(f"input shape must be positive integers, got {list(shape)}")
    if math.prod(shape) >= 2**63:
        raise ProfileError(f"input shape {list(shape)} is too large to index (at most 2^63 - 1 elements)")
    return Inputs((InputSpec(shape),), {})


def _check_binds(model: nn.Module, inputs: Inputs) -> None:
    """Name the input the forward does not take before running it."""
    try:
        signature = inspect.signature(model.forward)
    except (TypeError, ValueError):  # a builtin or C forward: let the call itself say
        return
    params = signature.parameters
    takes = ", ".join(params) or "no arguments"
    open_keywords = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    unknown = [k for k in inputs.kwargs if k not in params and not open_keywords]
    if unknown:
        raise ProfileError(f"the model's forward takes no input {unknown[0]!r} (it takes: {takes})")
    try:
        signature.bind(*inputs.args, **inputs.kwargs)
    except TypeError as err:
        raise ProfileError(f"the model's forward rejects these inputs: {err} (it takes: {takes})") from None


def _check_layouts(model: nn.Module) -> None:
    """Refuse sparse (or other non-strided) weights and buffers by name: the tracer follows tensors
    by their storage, which a sparse tensor does not have."""
    for name, t in [*model.named_parameters(), *model.named_buffers()]:
        if t.layout != torch.strided:
            raise ProfileError(f"{name} is a {str(t.layout).replace('torch.', '')} tensor: archprof profiles models whose weights and buffers are dense")


def _weight_bytes(model: nn.Module) -> int:
    tensors = {id(t): t for t in [*model.parameters(), *model.buffers()]}
    return sum(t.numel() * t.element_size() for t in tensors.values())


def default_max_memory() -> int:
    """Half of this machine's physical memory: the default limit of a real forward's allocations."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2
    except (ValueError, OSError, AttributeError):  # not a POSIX system: 8 GiB
        return 8 * 2**30


def _check_memory(model: nn.Module, inputs: Inputs, device: str, max_memory: int | None) -> None:
    limit = default_max_memory() if max_memory is None else max_memory
    weights, data = _weight_bytes(model), inputs.nbytes()
    if weights + data > limit:
        raise ProfileError(
            f"a real {device} forward needs at least {_gib(weights + data)} (inputs {_gib(data)} + weights "
            f"{_gib(weights)}), above the limit of {_gib(limit)}; raise max_memory (--max-memory) to allow it"
        )


def _gib(n: int) -> str:
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.2f} {unit}"
    return f"{n} B"


def _real_state(model: nn.Module, device: str, seed: int, build: Callable[[], nn.Module] | None) -> dict[str, torch.Tensor] | None:
    """Parameters and buffers with real values on ``device`` for ``model``, without touching it.

    Weights that exist (the user's) are used, on ``device``. A model built on meta gets the
    weights of ``build()`` (the model built again on the CPU with its own initialization) or, with
    no builder, of a copy initialized by each layer's ``reset_parameters`` (seeded), other
    parameters from N(0, 0.02) and other buffers zero. Buffers are copies: a forward that updates
    a buffer in place (a step counter, running statistics) must not change the user's model.
    """
    named = list(model.named_parameters(remove_duplicate=False)) + list(model.named_buffers(remove_duplicate=False))
    source = model
    if any(t.device.type == "meta" for _, t in named):
        if build is None:
            source = _initialized_copy(model, seed)
        else:
            with torch.random.fork_rng(devices=[]):  # the builder's own initialization, seeded
                torch.manual_seed(seed)
                source = build()
    real = dict(source.named_parameters(remove_duplicate=False)) | dict(source.named_buffers(remove_duplicate=False))
    buffers = {name for name, _ in model.named_buffers(remove_duplicate=False)}
    # Tied weights stay tied: every name of one of the model's tensors takes the real tensor of its
    # first name (a copy made by to_empty, or a rebuilt model, may have untied them).
    first: dict[int, str] = {}
    for name, t in named:
        first.setdefault(id(t), name)
    missing = [name for name in first.values() if name not in real]
    if missing:
        raise ProfileError(f"the model built for the real forward has no tensor {missing[0]!r}")
    # The user's own tensors run as copies: a forward may write to its weights or buffers.
    moved = {name: _moved(real[name].detach(), device, copy=source is model or name in buffers) for name in first.values()}
    return {name: moved[first[id(t)]] for name, t in named}


def _laid_out_as(t: torch.Tensor, device: str) -> torch.Tensor:
    """An uninitialized tensor on ``device`` with ``t``'s shape, dtype and strides: a sliced or
    expanded view stays one (``empty_like`` and ``to`` make it contiguous), so a forward's
    ``.contiguous()`` copies it as it would the model's own tensor."""
    return torch.empty_strided(t.shape, t.stride(), dtype=t.dtype, device=device)


def _moved(t: torch.Tensor, device: str, copy: bool) -> torch.Tensor:
    """``t`` on ``device`` (a copy if ``copy``) with its strides: a view that ``to`` would lay out
    anew is the same view of a copy of its storage."""
    moved = t.to(device, copy=copy)
    if moved.stride() == t.stride():
        return moved
    storage = torch.empty(0, dtype=t.dtype, device=t.device).set_(t.untyped_storage())
    return storage.to(device, copy=True).as_strided(t.shape, t.stride(), t.storage_offset())


def _initialized_copy(model: nn.Module, seed: int) -> nn.Module:
    copy = deepcopy(model).to_empty(device="cpu")
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in copy.parameters():
            p.copy_(torch.randn(p.shape, generator=generator, dtype=p.dtype, device="cpu") * 0.02 if p.is_floating_point() else 0)
        for b in copy.buffers():
            b.zero_()
        state = torch.random.get_rng_state()
        torch.manual_seed(seed)
        try:
            for module in copy.modules():
                reset = getattr(module, "reset_parameters", None)
                if callable(reset):
                    reset()
        finally:
            torch.random.set_rng_state(state)
    return copy


def _meta_state(model: nn.Module, fresh: bool = False) -> dict[str, torch.Tensor] | None:
    """Meta tensors standing in for the model's parameters and buffers (tied ones stay tied):
    ``fresh`` ones even for those on meta already (a training step's leaves, whose gradients must
    not land on the model's own parameters)."""
    named = list(model.named_parameters(remove_duplicate=False)) + list(model.named_buffers(remove_duplicate=False))
    if not fresh and all(t.device.type == "meta" for _, t in named):
        return None
    moved: dict[int, torch.Tensor] = {}
    for _, t in named:
        if id(t) not in moved:
            moved[id(t)] = t if t.device.type == "meta" and not fresh else _laid_out_as(t, "meta")
    return {name: moved[id(t)] for name, t in named}


def materialize_lazy(model: nn.Module, inputs: Inputs) -> nn.Module:
    """A copy of ``model`` with its lazy modules initialized, as their first forward would: on meta,
    or on the CPU (seeded inputs) when the model cannot run on meta. The user's model stays lazy."""
    lazy = [m for m in model.modules() if isinstance(m, LazyModuleMixin) and m.has_uninitialized_params()]
    if not lazy:
        return model
    try:
        return _initialized_lazy_copy(model, inputs, "meta")
    except Exception as err:
        if not _is_meta_limitation(err):
            raise ProfileError(f"cannot initialize the model's lazy modules at these inputs: {_one_line(err)}") from err
    try:
        return _initialized_lazy_copy(model, inputs, "cpu")
    except Exception as err:
        raise ProfileError(f"cannot initialize the model's lazy modules at these inputs: {_one_line(err)}") from err


def _initialized_lazy_copy(model: nn.Module, inputs: Inputs, device: str) -> nn.Module:
    # Placeholders cannot be deep-copied: the copy gets fresh ones on ``device`` in their place.
    memo: dict[int, Any] = {}
    for module in model.modules():
        for value in module._parameters.values():
            if isinstance(value, UninitializedParameter):
                memo[id(value)] = UninitializedParameter(requires_grad=value.requires_grad, device=device, dtype=value.dtype)
        for value in module._buffers.values():
            if isinstance(value, UninitializedBuffer):
                memo[id(value)] = UninitializedBuffer(device=device, dtype=value.dtype)
    copy = deepcopy(model, memo)
    if device == "meta":  # the initialized layers beside the lazy ones too
        copy.to("meta")
    used = materialize(inputs, device, float_dtype(copy), vocabulary=vocabulary_size(copy))
    with torch.no_grad():
        copy(*used.args, **used.kwargs)
    return copy


def _is_meta_limitation(err: BaseException) -> bool:
    """Whether ``err`` says the meta device cannot run this model, not that the model is wrong.

    Data-dependent control flow (``.item()``, ``bool(tensor)``, ``nonzero``, boolean masks), ops
    with no meta kernel and tensors made on another device all say so by naming the meta device;
    an error that would happen on any device (a shape mismatch, a bad argument) does not.
    """
    return isinstance(err, NotImplementedError) or re.search(r"\bmeta\b", str(err), re.IGNORECASE) is not None


@dataclass
class _Run:
    trace: Any
    inputs: Inputs
    device: str
    step: TrainingStep | None = None  # a training step's autograd bookkeeping


@dataclass(frozen=True)
class _Training:
    """What a training step is traced at (``profile(mode="train")``)."""

    optimizer: str
    precision: str


def _trace(
    model, inputs: Inputs, device: str, module_paths, watched, seed, build, snapshot: ModuleSnapshot,
    training: _Training | None = None,
    rules: dict[Any, Any] | None = None,
) -> _Run:
    """One traced forward in eval mode on ``device`` (a training step in train mode with
    ``training``), the model restored to ``snapshot`` after it; raises ``_ForwardError`` naming the
    layer that failed."""
    if device == "meta":
        state = _meta_state(model, fresh=training is not None)
        used = materialize(inputs, "meta", float_dtype(model))
    else:
        state = _real_state(model, device, seed, build)
        used = materialize(inputs, device, float_dtype(model), seed=seed, vocabulary=vocabulary_size(model))
    if training is not None:  # the step's own leaves, trainable where the model's parameters are
        for name, p in model.named_parameters(remove_duplicate=False):
            state[name].requires_grad_(p.requires_grad and state[name].is_floating_point())
    float_bytes = PRECISIONS[training.precision].activation if training is not None else None
    tracer = Tracer(model, module_paths, watched, rules, train=training is not None, float_bytes=float_bytes)
    tracer.mark_known(list(state.values()) if state is not None else [*model.parameters(), *model.buffers()])
    model.train(training is not None)
    try:
        trace = tracer.run(used.args, used.kwargs, state)
    except TrainingError as err:
        raise ProfileError(str(err)) from None
    except Exception as err:
        raise _ForwardError(err, tracer.failed_in) from err
    finally:
        snapshot.restore()
    return _Run(trace, used, device, tracer.step)


class _ForwardError(Exception):
    """The forward (or a training step) raised ``err`` in module ``layer``: the innermost one
    running, the model itself ("") at least, None for an error outside its call."""

    def __init__(self, err: Exception, layer: str | None) -> None:
        self.err, self.layer = err, layer

    def describe(self, by_path: dict[str, nn.Module]) -> str:
        where = "" if self.layer is None else f" in {self.layer or ROOT} ({type(by_path[self.layer]).__name__})"
        return f"{where}: {_one_line(self.err)}"


def profile(
    model: nn.Module,
    input_shape: Sequence[int] | None = None,
    *,
    inputs: Any = None,
    args: Any = None,
    kwargs: dict[str, Any] | None = None,
    device: str | None = None,
    strict: bool = False,
    name: str | None = None,
    seed: int = 0,
    max_memory: int | None = None,
    build: Callable[[], nn.Module] | None = None,
    mode: str = "inference",
    optimizer: str = "sgd",
    precision: str = "fp32",
    rules: Mapping[Any, Any] | None = None,
) -> Profile:
    """Trace one forward pass of ``model`` and attribute every op's cost.

    The forward is called as ``model(*args, **kwargs)``. ``inputs`` is what ``model(...)`` takes: a
    tuple of positional arguments, a dict of keyword arguments, or one argument (a tensor, a list
    of images); ``args=`` and ``kwargs=`` give both. Tensors may be nested in lists, tuples and
    dicts, and an :class:`~archprof.tracing.inputs.InputSpec` may stand for any of them. With no
    inputs, ``input_shape`` (one float tensor), else the model's own ``archprof_inputs`` or
    ``default_input_shape``.

    ``device=None`` runs on the meta device (no weight or activation memory, a cost independent of
    batch and resolution) and, only when the model cannot run there (data-dependent control flow,
    ``.item()``, an op with no meta kernel), falls back to a real CPU forward on seeded inputs
    (``seed``) and real weights (the user's, else ``build()``'s, else each layer's own
    initialization), with a notice. A real forward that would need more than ``max_memory`` bytes
    for its inputs and weights is refused (default: half the machine's memory). ``"meta"``,
    ``"cpu"`` or ``"cuda"`` force one device. ``strict=True`` raises :class:`UncountedOpsError` if
    any op has no cost rule. The model is left as it was found.

    ``mode="train"`` traces a training step instead: the forward in training mode (batch norm
    computes batch statistics, dropout runs), a scalar loss on the output (its own ``loss`` if it
    has one, else the sum of its floating outputs) and the backward pass, each backward op charged
    to the layer whose forward created it; frozen parameters (``requires_grad=False``) get no
    gradient, as autograd runs it. ``Profile.training`` then holds the step's memory for
    ``optimizer`` ("sgd", "momentum", "adam", "adamw") at ``precision`` ("fp32", "bf16", "fp16",
    "amp").

    ``rules`` changes the counting convention for this profile only: ``{torch.ops.aten.gelu:
    fn}`` costs GELU with ``fn(args, kwargs, out) -> Cost``, ``{op: None}`` leaves an op uncounted
    (see :func:`archprof.tracing.rules.rules_with`); the global registry is untouched.
    """
    check_mode(mode)
    check_training_options(optimizer, precision)
    training = _Training(optimizer, precision) if mode == "train" else None
    chosen = rules_with(rules) if rules else None
    if device not in (None, "meta", "cpu", "cuda"):
        raise ArchprofValueError(f"device must be 'meta', 'cpu' or 'cuda', got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise ProfileError("device 'cuda': CUDA is not available on this machine")
    try:
        given = as_inputs(inputs, args, kwargs) if (inputs, args, kwargs) != (None, None, None) else None
        wanted = _resolve_inputs(model, input_shape, given)
    except InputError as err:
        raise ProfileError(str(err)) from None
    original = model
    model = materialize_lazy(model, wanted)
    _check_binds(model, wanted)
    _check_layouts(model)
    module_paths, by_path = _module_tables(model)
    declared = model.materialized_modules() if isinstance(model, Architecture) else None
    leaves = [p for p, m in by_path.items() if not any(True for _ in m.children())]
    watched = set(declared if declared is not None else leaves)
    roots = _stage_roots(model)
    shaped = watched | {path for paths in roots.values() for path in paths}  # the stride grouping reads the stages' outputs
    notices: list[str] = []
    snapshot = ModuleSnapshot(model)
    try:
        run = _run(model, wanted, device, (module_paths, shaped, seed, build, snapshot, training, chosen), by_path, max_memory, notices)
    except InputError as err:
        raise ProfileError(str(err)) from None
    trace, used = run.trace, run.inputs
    declarations = _declarations(by_path)
    materialized = [("input", tuple(t.shape)) for _, t in used.tensors()] + [o for o in trace.module_outputs if o[0] in watched]
    result = Profile(
        model=name or getattr(original, "archprof_name", None) or type(original).__name__,
        config=config_of(original),
        input_shapes=[tuple(t.shape) for _, t in used.tensors()],
        dtype=str(float_dtype(model)).replace("torch.", ""),
        device=run.device,
        ops=trace.events,
        layer_types=_layer_types(trace.events, by_path, declarations),
        modules=_module_infos(model, by_path, declarations, run.step.saved_bytes if run.step else {}),
        peak_activation_bytes=peak_live_bytes(trace, exclude=run.step.weight_grads if run.step else frozenset()),
        materialized_tensors=materialized,
        notices=notices,
        inputs=[InputInfo(path, tuple(t.shape), str(t.dtype).replace("torch.", "")) for path, t in used.tensors()],
        call=wanted,
        stage_outputs=_stage_outputs(roots, trace.module_outputs),
        architecture=getattr(original, "archprof_name", None),
        mode=mode,
    )
    if training is not None:
        t = result.totals
        result.training = training_memory(training.optimizer, training.precision, t.params, t.trainable_params,
                                          t.saved_bytes, t.peak_activation_bytes)
    if strict and result.uncounted:
        raise UncountedOpsError(result.uncounted)
    return result


def _run(model, wanted, device, how, by_path, max_memory, notices) -> _Run:
    if device not in (None, "meta"):
        _check_memory(model, wanted, device, max_memory)
        try:
            return _trace(model, wanted, device, *how)
        except _ForwardError as err:
            raise ProfileError(f"forward failed on {device}{err.describe(by_path)}") from err.err
    try:
        return _trace(model, wanted, "meta", *how)
    except _ForwardError as err:
        if device == "meta" or not _is_meta_limitation(err.err):
            # An error any device would raise: report it from the meta attempt, allocating nothing.
            on = " on meta" if device == "meta" else ""
            raise ProfileError(f"forward failed{on} at input {describe(wanted)}{err.describe(by_path)}") from err.err
        meta_error = err
    _check_memory(model, wanted, "CPU", max_memory)
    try:
        run = _trace(model, wanted, "cpu", *how)
    except _ForwardError as err:
        raise ProfileError(f"forward failed on cpu{err.describe(by_path)}") from err.err
    data = f"seeded inputs (seed {how[2]})" if any(True for _ in wanted.specs()) else "the inputs given"
    notice = (
        f"the model cannot run on the meta device ({_one_line(meta_error.err)}); profiled with a real CPU "
        f"forward on {data}: a data-dependent model's count depends on its data"
    )
    warnings.warn(notice, ArchprofNotice, stacklevel=3)
    notices.append(notice)
    return run


def config_of(model: nn.Module) -> dict[str, Any]:
    """The model's ``config`` as plain data, whatever it is; never fails a profile.

    A dict, a dataclass, a ``SimpleNamespace``, a transformers ``PretrainedConfig`` (its
    ``to_dict()``) or any object (its public attributes); dtypes, devices and other values that are
    not JSON data become strings.
    """
    try:
        config = getattr(model, "config", None)
    except Exception:  # a property that raises: the profile does not depend on it
        return {}
    if config is None or isinstance(config, (nn.Module, torch.Tensor)):
        return {}
    try:
        if isinstance(config, Mapping):
            raw = dict(config)
        elif callable(getattr(config, "to_dict", None)):
            raw = config.to_dict()
        elif is_dataclass(config) and not isinstance(config, type):
            raw = {f.name: getattr(config, f.name) for f in fields(config)}
        elif hasattr(config, "__dict__"):
            raw = {k: v for k, v in vars(config).items() if not k.startswith("_")}
        else:
            return {"value": _plain(config)}
        return {str(k): _plain(v) for k, v in raw.items()}
    except Exception:  # a config whose accessors raise: the profile does not depend on it
        return {}


def _plain(value: Any, depth: int = 0) -> Any:
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if depth < 8 and isinstance(value, Mapping):
        return {str(k): _plain(v, depth + 1) for k, v in value.items()}
    if depth < 8 and isinstance(value, (list, tuple, set, frozenset)):
        return [_plain(v, depth + 1) for v in value]
    return str(value).replace("torch.", "") if isinstance(value, (torch.dtype, torch.device)) else str(value)


def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}".rstrip(": ")
