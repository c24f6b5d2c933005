"""One forward pass under a ``TorchDispatchMode``: every aten op, its cost, and the module that ran it.

The tracer knows no operator: it looks each one up in :data:`archprof.tracing.rules.COST_RULES`.
Global module hooks keep a stack of the modules whose ``forward`` is running, so an op is charged
to the innermost one, functional calls and ``a + b`` included, and a module called twice is
charged twice.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import sys
from dataclasses import dataclass, field
from types import BuiltinFunctionType, CodeType, FunctionType, MethodType
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

from archprof.tracing.autograd import TrainingStep
from archprof.tracing.meta_shapes import MetaOutputs
from archprof.tracing.rules import COST_RULES, CostRule, register_library_rules

# Metadata queries, not computations (as FlopCounterMode skips them).
_QUERIES = {
    torch.ops.aten.is_contiguous.default,
    torch.ops.aten.is_contiguous.memory_format,
    torch.ops.aten.is_strides_like_format.default,
    torch.ops.aten.is_non_overlapping_and_dense.default,
    torch.ops.aten.size.default,
    torch.ops.aten.sym_size.default,
    torch.ops.aten.stride.default,
    torch.ops.aten.sym_stride.default,
    torch.ops.aten.storage_offset.default,
    torch.ops.aten.sym_storage_offset.default,
    torch.ops.aten.numel.default,
    torch.ops.aten.sym_numel.default,
    torch.ops.aten.dim.default,
    torch.ops.prim.layout.default,
    torch.ops.prim.device.default,
}


@dataclass(frozen=True, slots=True)
class OpEvent:
    """One aten op call as it ran: what it cost and where."""

    op: str  # overload packet name, e.g. "aten.convolution"
    module: str  # path of the innermost module whose forward ran it ("" for the model itself)
    layer_type: str  # the rule's layer type for this call, or "uncounted"
    macs: int
    flops: int
    activations: int  # elements written (0 for views)
    bytes_read: int
    bytes_written: int
    counted: bool
    phase: str = "forward"  # "backward" for the ops of a training step's backward pass

    @property
    def category(self) -> str:
        """Deprecated name of :attr:`layer_type`."""
        return self.layer_type


@dataclass
class Trace:
    events: list[OpEvent] = field(default_factory=list)
    # Per event: storages read, storages first written (key, bytes); for activation liveness.
    reads: list[tuple[int, ...]] = field(default_factory=list)
    allocations: list[tuple[tuple[int, int], ...]] = field(default_factory=list)
    input_storages: dict[int, int] = field(default_factory=dict)
    output_storages: set[int] = field(default_factory=set)
    # (module path, output shape) of every tensor output by a watched module.
    module_outputs: list[tuple[str, tuple[int, ...]]] = field(default_factory=list)


def tensors_in(value: Any) -> list[torch.Tensor]:
    """The tensors in an op's arguments or outputs (tuples, lists and dicts of them), in order.

    A plain recursion: torch's pytree is general and about five times slower on these shapes.
    """
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (tuple, list)):
        if not value:
            return []
        out: list[torch.Tensor] = []
        for v in value:
            if isinstance(v, torch.Tensor):
                out.append(v)
            elif isinstance(v, (tuple, list, dict)):
                out.extend(tensors_in(v))
        return out
    if isinstance(value, dict):
        return tensors_in(list(value.values()))
    return []


def storage_key(t: torch.Tensor) -> int:
    return t.untyped_storage()._cdata


def tensor_bytes(t: torch.Tensor) -> int:
    return t.numel() * t.element_size()


class _Recorder(TorchDispatchMode):
    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        # torch wraps a mode's __torch_dispatch__ to keep torch.compile out of it, which imports
        # torch._dynamo (over a second) on the first op; nothing here is ever compiled.
        return False

    def __init__(self, tracer: Tracer) -> None:
        super().__init__()
        self.tracer = tracer

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _QUERIES or self.tracer.inside_whole:
            return func(*args, **kwargs)
        rule = self.tracer.rules.get(func._overloadpacket)
        if rule is None:
            # An op with no rule may decompose into ops that have one (as FlopCounterMode does).
            with self:
                out = func.decompose(*args, **kwargs)
            if out is not NotImplemented:
                return out
        inputs = tensors_in(args) + (tensors_in(kwargs) if kwargs else [])
        out, signature = self.tracer.outputs.run(func, args, kwargs, inputs)
        self.tracer.record(func, rule, args, kwargs, out, inputs, signature)
        return out


class _WholeOps(TorchFunctionMode):
    """Records a composite op whose rule is ``whole`` as one op, at its call, instead of its parts.

    The dispatcher takes a composite op apart before any dispatch mode sees it, and each device may
    take it apart differently (an LSTM is one mkldnn kernel per layer on CPU, matmuls and gates on
    meta); seen here, as torch's function of the same name, it is one op on every device.
    """

    def __init__(self, tracer: Tracer) -> None:
        super().__init__()
        self.tracer = tracer

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        packet = self.tracer.whole.get(func.__name__) if type(func) is BuiltinFunctionType else None
        if packet is None:
            return func(*args, **kwargs)
        self.tracer.inside_whole += 1
        try:
            out = func(*args, **kwargs)
        finally:
            self.tracer.inside_whole -= 1
        overload = getattr(packet, "default" if "default" in packet.overloads() else packet.overloads()[0])
        inputs = tensors_in(args) + (tensors_in(kwargs) if kwargs else [])
        self.tracer.record(overload, self.tracer.rules[packet], args, kwargs, out, inputs)
        return out


_NAMED_BY_CLASS: dict[type, frozenset[str]] = {}  # per module class: the names its code reaches
_CALL_DEPTH = 2  # functions followed from a method: a helper, and the helpers it calls


def names_in_code(model: nn.Module) -> frozenset[str]:
    """Every name the model's Python code mentions: its module classes' methods, the functions its
    modules hold, and the Python functions those call by a global name (two calls deep), their
    closures and nested functions (``F.one_hot`` mentions ``one_hot``; ``nn.LSTM`` calls ``_VF.lstm``).

    How the tracer knows, before running it, whether a forward may call a function costed whole:
    the torch-function mode that catches those calls costs every torch call of the forward.
    """
    names: set[str] = set()
    held = []
    for module in model.modules():
        cls = type(module)
        if cls not in _NAMED_BY_CLASS:
            _NAMED_BY_CLASS[cls] = _reached([v for k in cls.__mro__ if k not in (nn.Module, object) for v in vars(k).values()])
        names |= _NAMED_BY_CLASS[cls]
        held.extend(v for v in module.__dict__.values() if callable(v) and not isinstance(v, (nn.Module, type)))
    return frozenset(names | _reached(held))


def _reached(values: list[Any]) -> frozenset[str]:
    names: set[str] = set()
    seen: set[int] = set()
    pending = [(v, None, 0) for v in values]
    while pending:
        value, scope, depth = pending.pop()
        if isinstance(value, (staticmethod, classmethod, MethodType)):
            value = value.__func__
        elif isinstance(value, property):
            pending.extend((f, scope, depth) for f in (value.fget, value.fset) if f is not None)
            continue
        elif isinstance(value, functools.partial):
            value = value.func
        if id(value) in seen:
            continue
        seen.add(id(value))
        if isinstance(value, FunctionType):
            code, scope = value.__code__, value.__globals__
            pending.extend((c.cell_contents, scope, depth) for c in value.__closure__ or () if _filled(c))
        elif isinstance(value, CodeType) and scope is not None:
            code = value
        else:
            continue
        names.update(code.co_names)
        pending.extend((c, scope, depth) for c in code.co_consts if isinstance(c, CodeType))
        if depth < _CALL_DEPTH:
            pending.extend((scope[n], scope, depth + 1) for n in code.co_names if isinstance(scope.get(n), FunctionType))
    return frozenset(names)


def _filled(cell: Any) -> bool:
    try:
        cell.cell_contents  # noqa: B018
    except ValueError:  # an empty cell
        return False
    return True


class _ForwardAndBackward(nn.Module):
    """A training step as one call: the model's forward, then the loss and its backward pass."""

    def __init__(self, model: nn.Module, step: TrainingStep, leaves: list[torch.Tensor]) -> None:
        super().__init__()
        self.model = model
        self.step, self.leaves = step, leaves

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        out = self.model(*args, **kwargs)
        self.step.backward(out, self.leaves)
        return out


_RUNNING: list[Tracer] = []  # the tracers whose forward is running, innermost last


def running_tracer() -> Tracer | None:
    """The tracer whose forward is running now (for observers such as crosscheck's hooks)."""
    return _RUNNING[-1] if _RUNNING else None


class Tracer:
    """Runs ``model(*inputs)`` and returns its :class:`Trace`."""

    def __init__(
        self,
        model: nn.Module,
        module_paths: dict[int, str],
        watched: set[str],
        rules: dict[Any, CostRule] | None = None,
        *,
        train: bool = False,
        float_bytes: int | None = None,
    ) -> None:
        self.model = model
        # A training step: the forward with gradients on, a scalar loss, and its backward pass.
        self.step = TrainingStep(self) if train else None
        self.phase = "forward"
        # Bytes per element of floating activations, if not the traced dtype's (a training step's precision).
        self.float_bytes = float_bytes
        self.weights: set[int] = set()  # storages of the parameters and buffers
        self.paths = module_paths
        self.watched = watched
        if rules is None:
            register_library_rules()
        self.rules = COST_RULES if rules is None else rules
        # Composite aten ops costed whole, by the name of the torch function that calls them.
        self.whole = {
            p._qualified_op_name[len("aten::") :]: p
            for p, rule in self.rules.items()
            if rule.whole and p._qualified_op_name.startswith("aten::")
        }
        self.inside_whole = 0  # >0 while a whole op runs: its parts are not recorded
        self.outputs = MetaOutputs()  # runs each op, from shapes where it can on meta
        self._measured: dict[tuple, tuple] = {}  # per op signature on meta: its OpEvent fields (see record)
        self.stack: list[str] = []
        self.trace = Trace()
        self._known: set[int] = set()
        self._alive: list[torch.Tensor] = []  # keeps storages alive so their keys stay unique
        self._view_ops: dict[Any, bool] = {}
        self._write_ops: dict[Any, bool] = {}
        self.failed_in: str | None = None  # the innermost module running when the forward raised

    def run(self, args: tuple, kwargs: dict[str, Any], state: dict[str, torch.Tensor] | None) -> Trace:
        """``model(*args, **kwargs)`` under the recorder; ``state`` swaps in parameters and buffers.

        If the forward raises, :attr:`failed_in` names the innermost module that was running.
        """
        inputs = tensors_in(args) + tensors_in(kwargs)
        for t in inputs:
            self.trace.input_storages[storage_key(t)] = self.storage_bytes(t)
        self._known.update(self.trace.input_storages)
        self._alive.extend(inputs)
        pre = nn.modules.module.register_module_forward_pre_hook(self._enter)
        post = nn.modules.module.register_module_forward_hook(self._exit, always_call=True)
        # The trace allocates thousands of small objects that all stay alive until it ends: a
        # collection in the middle finds nothing to free and can triple a profile's time.
        collecting = gc.isenabled()
        gc.disable()
        # Real tensors in eval mode under no_grad take nn.MultiheadAttention's and the transformer
        # layers' fused fast path, one opaque op; the regular path is what every device can cost.
        fastpath = torch.backends.mha.get_fastpath_enabled()
        torch.backends.mha.set_fastpath_enabled(False)
        _RUNNING.append(self)
        try:
            with contextlib.ExitStack() as modes:
                for mode in self.step.forward_modes() if self.step else [torch.no_grad()]:
                    modes.enter_context(mode)
                modes.enter_context(_Recorder(self))
                if self.whole.keys() & names_in_code(self.model):  # it costs every torch call: only where one is named
                    modes.enter_context(_WholeOps(self))
                model = self.model
                if self.step is not None:  # the backward runs inside the same call: a checkpointed
                    # layer's recomputation in the backward must still see the swapped-in state
                    leaves = list(state.values()) if state is not None else list(self.model.parameters())
                    model = _ForwardAndBackward(self.model, self.step, leaves)
                    state = None if state is None else {f"model.{name}": t for name, t in state.items()}
                if state is None:
                    out = model(*args, **kwargs)
                else:  # functional_call swaps in the state for the call without touching the user's module
                    out = torch.func.functional_call(model, state, args, kwargs)
        finally:
            _RUNNING.pop()
            pre.remove()
            post.remove()
            torch.backends.mha.set_fastpath_enabled(fastpath)
            if collecting:
                gc.enable()
        self.trace.output_storages = {storage_key(t) for t in tensors_in(out)}
        return self.trace

    def mark_known(self, tensors: list[torch.Tensor]) -> None:
        """Tensors that exist before the forward (weights): neither allocated nor activations."""
        self._known.update(storage_key(t) for t in tensors)
        self.weights.update(storage_key(t) for t in tensors)
        self._alive.extend(tensors)

    def current_module(self) -> str:
        """The path of the innermost module running now ("" for the model itself)."""
        return self.stack[-1] if self.stack else ""

    def storage_bytes(self, t: torch.Tensor) -> int:
        """Bytes of ``t``'s storage, floating storages at :attr:`float_bytes` per element when set."""
        nbytes = t.untyped_storage().nbytes()
        if self.float_bytes is not None and t.is_floating_point():
            return nbytes // t.element_size() * self.float_bytes
        return nbytes

    def _enter(self, module: nn.Module, args: Any) -> None:
        self.stack.append(self.paths.get(id(module), self.stack[-1] if self.stack else ""))

    def _exit(self, module: nn.Module, args: Any, output: Any) -> None:
        path = self.stack.pop() if self.stack else ""
        # torch calls an always_call hook from inside its except clause when forward raised: the
        # first module to exit that way is the innermost one, where the error happened.
        if self.failed_in is None and sys.exc_info()[1] is not None:
            self.failed_in = path
            return
        if path in self.watched and id(module) in self.paths:
            self.trace.module_outputs.extend((path, tuple(t.shape)) for t in tensors_in(output))

    def _measure(
        self, func: Any, rule: CostRule | None, args: tuple, kwargs: dict, out: Any, inputs: list[torch.Tensor],
        tensors_out: list[torch.Tensor], in_keys: set[int], out_keys: list[int],
    ) -> tuple[str, str, int, int, int, int, int, bool]:
        """An op call's OpEvent fields but its module and phase: name, layer type, macs, flops,
        activations, bytes read and written, counted."""
        name = func._overloadpacket._qualified_op_name.replace("::", ".")
        cost, layer_type = rule.apply(func, args, kwargs, out) if rule is not None else (None, "uncounted")
        # An op that returns an input's storage without writing to it is a view, whatever its schema
        # says (aten._unsafe_view carries no alias annotation).
        view = self._is_view(func) or (bool(out_keys) and in_keys.issuperset(out_keys) and not self._writes(func))
        macs, flops = (cost.macs, cost.flops) if cost is not None else (0, 0)
        if view:
            activations = bytes_read = bytes_written = 0
        else:
            activations = sum(t.numel() for t in tensors_out)
            bytes_read = sum(tensor_bytes(t) for t in inputs)
            bytes_written = sum(tensor_bytes(t) for t in tensors_out)
        return name, layer_type, int(macs), int(flops), activations, bytes_read, bytes_written, cost is not None

    def _writes(self, func: Any) -> bool:
        """In-place or out= ops: they write into a storage they were given."""
        writes = self._write_ops.get(func)
        if writes is None:
            writes = any(a.alias_info is not None and a.alias_info.is_write for a in func._schema.arguments)
            self._write_ops[func] = writes
        return writes

    def _is_view(self, func: Any) -> bool:
        view = self._view_ops.get(func)
        if view is None:
            returns = func._schema.returns
            view = bool(returns) and all(r.alias_info is not None and not r.alias_info.is_write for r in returns)
            view = view or torch.Tag.inplace_view in func.tags  # as_strided_, transpose_: metadata only
            self._view_ops[func] = view
        return view

    def record(
        self,
        func: Any,
        rule: CostRule | None,
        args: tuple,
        kwargs: dict,
        out: Any,
        inputs: list[torch.Tensor],
        signature: tuple | None = None,
    ) -> None:
        """Record one op call; ``signature`` (from :class:`MetaOutputs`) decides all but its storages."""
        tensors_out = [out] if type(out) is torch.Tensor else tensors_in(out)
        if rule is not None and rule.first_output_only:
            tensors_out = tensors_out[:1]
        in_keys = {t.untyped_storage()._cdata for t in inputs}
        out_keys = [t.untyped_storage()._cdata for t in tensors_out]
        measured = self._measured.get(signature) if signature is not None else None
        if measured is None:
            measured = self._measure(func, rule, args, kwargs, out, inputs, tensors_out, in_keys, out_keys)
            if signature is not None:
                self._measured[signature] = measured
        name, category, macs, flops, activations, bytes_read, bytes_written, counted = measured
        self.trace.events.append(OpEvent(name, self.stack[-1] if self.stack else "", category, macs, flops, activations,
                                         bytes_read, bytes_written, counted, self.phase))
        fresh = []
        for t, key in zip(tensors_out, out_keys, strict=True):
            if key not in self._known:
                self._known.add(key)
                fresh.append((key, self.storage_bytes(t)))
        self.trace.reads.append(tuple(in_keys))
        self.trace.allocations.append(tuple(fresh))
        self._alive.extend(tensors_out)
