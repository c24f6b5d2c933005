"""archprof beside fvcore, thop and torch's FlopCounterMode, with every difference explained.

Each peer is run on a real CPU forward (none of them traces on the meta device) and read per
layer. Beside it, archprof predicts what that peer *should* report from archprof's own trace of
the same forward and the peer's known conventions: what the peer charges for each op, module call
or function call, and why. Where a peer differs from archprof, the difference is the sum of those
charges' departures, each named ("BN at 4 per element", "no bias", "activation not counted", ...).
A difference that comes from archprof itself is named as archprof's: an op archprof has no rule
for ("archprof: no rule for aten.X (N calls)"), or a layer archprof counts differently on the
meta device (what ``archprof profile`` runs) than on the CPU forward the peers ran. Where a peer's
actual number differs from its prediction and archprof costed every op of that layer, no known
convention explains it and the row is flagged.

fvcore and thop are imported here only, and only when a cross-check runs.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import io
import logging
import math
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812
from torch.nn.utils.rnn import PackedSequence
from torch.overrides import TorchFunctionMode
from torch.utils.flop_counter import flop_registry as _torch_flop_registry

from archprof.analysis.profile import ROOT, Conditions, Profile, ProfileError, profile
from archprof.tracing.inputs import Inputs, InputSpec, as_inputs, float_dtype, materialize, vocabulary_size
from archprof.tracing.rules import (
    FUSED_ATTENTION_OPS,
    batch_norm_cost,
    conv_cost,
    group_layer_norm_cost,
    inference_batch_norm_cost,
    ops_costed_by,
)
from archprof.tracing.state import left_as_found
from archprof.tracing.tracer import OpEvent, Tracer, running_tracer

MAX_INPUT_ELEMENTS = 2**28  # 1 GiB of float32: the peers each run a real forward on it
INPUT_SEED = 0  # one seeded input for every tool, so data-dependent paths agree


def _op_name(packet: Any) -> str:
    return packet._qualified_op_name.replace("::", ".")


# The ops archprof's rules cost as a convolution, a batch norm, a group or layer norm: named by the
# rule registry, so an op given to a rule is known here too.
CONV_OPS = {_op_name(op) for op in ops_costed_by(conv_cost)}
BN_OPS = {_op_name(op) for op in ops_costed_by(batch_norm_cost, inference_batch_norm_cost)}
NORM_OPS = {_op_name(op) for op in ops_costed_by(group_layer_norm_cost)}
FUSED_ATTENTION = {_op_name(op) for op in FUSED_ATTENTION_OPS}
CPU_ATTENTION = "aten._scaled_dot_product_flash_attention_for_cpu"
# The ops torch/utils/flop_counter.py has a formula for, from its own registry (backward ops and
# kernels a dispatch mode never sees on CPU included); conv, matmul and GPU attention.
FLOP_COUNTER_FORMULAS = {_op_name(op) for op in _torch_flop_registry if isinstance(op, torch._ops.OpOverloadPacket)}
# fvcore/nn/flop_count.py _DEFAULT_SUPPORTED_OPS: aten::addmm, bmm, mm, matmul and linear, none for
# baddbmm; its jit trace keeps torch.matmul whole, which the dispatcher runs as mm, bmm, mv or dot.
FVCORE_MATMUL = {"aten.mm", "aten.bmm", "aten.addmm", "aten.mv", "aten.dot"}
NOT_COUNTED = {
    "activation": "activation not counted",
    "elementwise": "element-wise op (residual add, scaling) not counted",
    "normalization": "normalization not counted",
    "pooling": "pooling not counted",
    "softmax": "softmax not counted",
    "reduction": "reduction not counted",
    "resampling": "resampling not counted",
}


@dataclass(frozen=True)
class Charge:
    """What a peer charges for some of archprof's ops, in the peer's unit, and the convention why.

    ``layer`` is where the peer books it when that is not where archprof does (thop books the
    products its function counter sees on the model itself).
    """

    amount: float
    why: str
    layer: str | None = None


def not_counted(layer_type: str, what: str = "") -> Charge:
    return Charge(0.0, what or NOT_COUNTED.get(layer_type, f"{layer_type} not counted"))


def has_affine(chain: list[nn.Module]) -> bool:
    module = chain[0] if chain else None
    return bool(getattr(module, "affine", getattr(module, "elementwise_affine", True)))


# --- what archprof saw of the forward the peers ran ---------------------------------------------


@dataclass(frozen=True)
class Packed:
    """A PackedSequence's shape: its rows are the cell evaluations a recurrent layer runs."""

    rows: int


def shapes_of(value: Any) -> Any:
    """A call's arguments or outputs with every tensor replaced by its shape (nothing kept alive)."""
    if isinstance(value, torch.Tensor):
        return torch.Size(value.shape)
    if isinstance(value, PackedSequence):
        return Packed(value.data.shape[0])
    if isinstance(value, (tuple, list)):
        return tuple(shapes_of(v) for v in value)
    if isinstance(value, dict):
        return {k: shapes_of(v) for k, v in value.items()}
    return value if isinstance(value, (bool, int, float, str, type(None))) else None


@dataclass(frozen=True)
class ModuleCall:
    """One call of a module that thop hooks: its arguments (positional, as thop reads them) and output, as shapes."""

    path: str
    module: nn.Module
    args: tuple
    output: Any


@dataclass(frozen=True)
class FunctionCall:
    """One top-level call of a torch function a peer sees whole: archprof's ops ``start:end`` ran inside it.

    ``thop`` is what thop's function counter charges for it (None where thop does not count it:
    not one of its functions, or run inside a module that thop's hooks already charge).
    """

    function: str
    start: int
    end: int
    thop: float | None = None


@dataclass
class Forward:
    """archprof's trace of the CPU forward the peers ran, with the module and function calls around its ops."""

    ops: list[OpEvent]
    layer_types: list[str]
    chain: Callable[[str], list[nn.Module]]
    module_calls: list[ModuleCall]
    function_calls: list[FunctionCall]
    uncounted: dict[str, int]

    def layer(self, i: int) -> str:
        return self.ops[i].module or ROOT

    def value(self, i: int, unit: str) -> int:
        return self.ops[i].macs if unit == "macs" else self.ops[i].flops

    def uncounted_by_layer(self) -> dict[str, set[str]]:
        layers: dict[str, set[str]] = defaultdict(set)
        for i, op in enumerate(self.ops):
            if not op.counted:
                layers[self.layer(i)].add(op.op)
        return layers


def archprof_miss(ops: set[str] | list[str], calls: dict[str, int]) -> str:
    """The name of a difference that is archprof's: ops its own trace could not cost."""
    named = ", ".join(f"{op} ({calls[op]} call{'s' if calls[op] != 1 else ''})" for op in sorted(ops))
    return f"archprof: no rule for {named}"


# --- thop (ultralytics-thop 2.x): module hooks, plus the products a function counter sees outside them ---


def _numel(shape: Any) -> int:
    return math.prod(shape) if isinstance(shape, torch.Size) else 0


def _thop_conv(m: nn.Module, args: tuple, y: Any) -> float:
    # thop/vision/calc_func.py calculate_conv2d_flops: a transpose walks the input, a conv the output.
    kernel = m.weight.shape
    volume, channels = (args[0], y) if m.transposed else (y, args[0])
    return math.prod(volume) * (channels[-(len(kernel) - 1)] // m.groups) * math.prod(kernel[2:])


def _thop_norm(m: nn.Module, args: tuple, y: Any) -> float:
    affine = getattr(m, "affine", False) or getattr(m, "elementwise_affine", False)
    return 2 * _numel(args[0]) * (2 if affine else 1)


def thop_softmax_ops(rows: int, n: int) -> int:
    """thop's calculate_softmax: n exponentials, n - 1 additions and n divisions per row of n."""
    return rows * (n + max(n - 1, 0) + n)


def _thop_softmax(m: nn.Module, args: tuple, y: Any) -> float:
    x = args[0]
    dim = -3 if isinstance(m, nn.Softmax2d) else m.dim
    if dim is None:  # torch's deprecated implicit dimension
        dim = 0 if len(x) in (0, 1, 3) else 1
    n = x[dim] if len(x) else 1
    rows = _numel(x) // n if n else 0
    extra = _numel(x) if isinstance(m, nn.Softmin) else rows if isinstance(m, nn.LogSoftmax) else 0
    return thop_softmax_ops(rows, n) + extra


def _thop_avgpool(m: nn.Module, args: tuple, y: Any) -> float:
    x = args[0]
    kernel = m.kernel_size
    if isinstance(kernel, int):
        kernel = (kernel,) * (3 if isinstance(m, nn.AvgPool3d) else 2)
    dims = len(kernel)
    stride = (m.stride,) * dims if isinstance(m.stride, int) else m.stride
    padding = (m.padding,) * dims if isinstance(m.padding, int) else m.padding
    windows = 1
    for size, output, k, s, p in zip(x[-dims:], y[-dims:], kernel, stride, padding, strict=True):
        lower, upper = (-p, size + p) if m.count_include_pad else (0, size)
        windows *= sum(max(min(i * s - p + k, upper) - max(i * s - p, lower), 0) for i in range(output))
    return math.prod(x[:-dims]) * windows + _numel(y)  # one add per input in a window, one divide per output


def _thop_adaptive_avgpool(m: nn.Module, args: tuple, y: Any) -> float:
    windows = math.prod(
        o if i == o else sum(-(-(j + 1) * i // o) - j * i // o for j in range(o)) for i, o in zip(args[0], y, strict=True)
    )
    return windows + _numel(y)


THOP_UPSAMPLE = {"nearest": 0, "nearest-exact": 0, "linear": 5, "bilinear": 11, "bicubic": 259, "trilinear": 31}


def _thop_rnn_cell(kind: str, input_size: int, hidden_size: int, bias: bool, proj_size: int = 0) -> int:
    """thop/rnn_hooks.py: one cell evaluation's gate products, bias adds and gate arithmetic."""
    def gate(inputs: int) -> int:
        return inputs * hidden_size + hidden_size + (2 * hidden_size if bias else 0)

    if kind == "RNN":
        return gate(input_size + hidden_size)
    if kind == "GRU":
        return 3 * gate(input_size + hidden_size) + hidden_size + 3 * hidden_size
    return 4 * gate(input_size + (proj_size or hidden_size)) + 3 * hidden_size + hidden_size + hidden_size * proj_size


RNN_KINDS = {nn.RNN: "RNN", nn.GRU: "GRU", nn.LSTM: "LSTM", nn.RNNCell: "RNN", nn.GRUCell: "GRU", nn.LSTMCell: "LSTM"}


def _thop_rnn(m: nn.Module, args: tuple, y: Any) -> float:
    kind = next(k for t, k in RNN_KINDS.items() if isinstance(m, t))
    x = args[0]
    if isinstance(m, nn.RNNCellBase):  # the cell rules pass no projection
        return _thop_rnn_cell(kind, m.input_size, m.hidden_size, m.bias) * (x[0] if len(x) == 2 else 1)
    evaluations = x.rows if isinstance(x, Packed) else x[0] if len(x) == 2 else x[0] * x[1]
    proj = getattr(m, "proj_size", 0)
    directions = 2 if m.bidirectional else 1
    per_step = directions * _thop_rnn_cell(kind, m.input_size, m.hidden_size, m.bias, proj)
    # thop widens the stacked layers' input by the projection for the LSTM only
    stacked = directions * ((proj or m.hidden_size) if kind == "LSTM" else m.hidden_size)
    per_step += (m.num_layers - 1) * directions * _thop_rnn_cell(kind, stacked, m.hidden_size, m.bias, proj)
    return per_step * evaluations


def thop_attention(embed_dim: int, num_heads: int, kdim: int, vdim: int, appended: int, batch_first: bool,
                   out: torch.Size, weights: torch.Size | None, key: torch.Size) -> int:
    """thop's count_multihead_attention: projections and both attention products (no bias), and its softmax."""
    tgt_len = out[-2] if batch_first or len(out) == 2 else out[0]
    batch = 1 if len(out) == 2 else out[0 if batch_first else 1]
    attended = weights[-1] if weights is not None else (key[-2] if batch_first or len(key) == 2 else key[0]) + appended
    projections = embed_dim * (2 * tgt_len * embed_dim + (attended - appended) * (kdim + vdim))
    attention = 2 * tgt_len * attended * embed_dim
    return batch * (projections + attention) + thop_softmax_ops(batch * num_heads * tgt_len, attended)


def _thop_mha(m: nn.Module, args: tuple, y: Any) -> float:
    out, weights = y if isinstance(y, tuple) else (y, None)
    appended = (m.bias_k is not None) + m.add_zero_attn
    return thop_attention(m.embed_dim, m.num_heads, m.kdim, m.vdim, appended, m.batch_first, out, weights, args[1])


def _upsample_why(m: nn.Module) -> str:
    return f"{m.mode} upsampling at {THOP_UPSAMPLE.get(m.mode, 0)} per output"


@dataclass(frozen=True)
class ThopHook:
    """One row of thop's module rule table (``register_hooks`` in thop/profile.py): what its hook
    charges for one call, and the convention's name. ``cost=None`` is thop's ``zero_ops``."""

    cost: Callable[[nn.Module, tuple, Any], float] | None
    why: str | Callable[[nn.Module], str] = ""


CONV_LINEAR = "conv / linear hook: multiply-adds, no bias"
NORMALIZATION = "normalization at 4 per element (2 without affine)"
AVERAGE_POOL = "average pool at 1 per input plus 1 per output"
ZERO = ThopHook(None)
_padding = nn.modules.padding
THOP_HOOKS: dict[type, ThopHook] = {
    **dict.fromkeys([_padding._ConstantPadNd, _padding._ReflectionPadNd, _padding._ReplicationPadNd,
                     _padding._CircularPadNd, nn.modules.dropout._DropoutNd, nn.ReLU, nn.ReLU6, nn.LeakyReLU,
                     nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d,
                     nn.AdaptiveMaxPool3d, nn.FractionalMaxPool2d, nn.FractionalMaxPool3d,
                     nn.modules.pooling._MaxUnpoolNd, nn.Sequential, nn.ModuleList, nn.ModuleDict, nn.ParameterList,
                     nn.ParameterDict, nn.Identity, nn.Flatten, nn.Unflatten, nn.Unfold, nn.PixelShuffle,
                     nn.PixelUnshuffle, nn.ChannelShuffle], ZERO),
    **dict.fromkeys([nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d,
                     ], ThopHook(_thop_conv, CONV_LINEAR)),
    nn.Linear: ThopHook(lambda m, args, y: m.in_features * _numel(y), CONV_LINEAR),
    nn.Bilinear: ThopHook(lambda m, args, y: (m.in1_features + 1) * m.in2_features * _numel(y),
                          "bilinear hook: (in1 + 1) x in2 multiply-adds per output, bias counted"),
    **dict.fromkeys([nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm, nn.RMSNorm],
                    ThopHook(_thop_norm, NORMALIZATION)),
    nn.PReLU: ThopHook(lambda m, args, y: 0 if m.training else _numel(args[0]), "PReLU at 1 per element"),
    **dict.fromkeys([nn.Softmax, nn.Softmax2d], ThopHook(_thop_softmax, "softmax module at 3n - 1 per row of n")),
    nn.LogSoftmax: ThopHook(_thop_softmax, "log-softmax module at 3n per row of n"),
    nn.Softmin: ThopHook(_thop_softmax, "softmin module at 3n - 1 per row of n plus 1 per element"),
    **dict.fromkeys([nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d], ThopHook(_thop_avgpool, AVERAGE_POOL)),
    **dict.fromkeys([nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d],
                    ThopHook(_thop_adaptive_avgpool, AVERAGE_POOL)),
    **dict.fromkeys([nn.Upsample, nn.UpsamplingBilinear2d, nn.UpsamplingNearest2d],
                    ThopHook(lambda m, args, y: THOP_UPSAMPLE.get(m.mode, 0) * _numel(y), _upsample_why)),
    **{t: ThopHook(_thop_rnn, f"{kind} hook: gate products, bias adds and gate arithmetic per step")
       for t, kind in RNN_KINDS.items()},
    nn.MultiheadAttention: ThopHook(
        _thop_mha, "MultiheadAttention hook: projections and attention products, no bias; softmax at 3n - 1 per row of n"),
    # a gather: thop registers a hook that adds nothing, so it still hides the products run inside it
    nn.Embedding: ThopHook(lambda m, args, y: 0, "embedding not counted"),
}


def thop_hook(module: nn.Module) -> ThopHook:
    """thop's rule for a module: its class's, else the nearest base class's (thop walks the MRO too)."""
    return _thop_hook_of(type(module))


@functools.cache
def _thop_hook_of(cls: type) -> ThopHook:
    return next((THOP_HOOKS[t] for t in cls.__mro__ if t in THOP_HOOKS), ZERO)


def _count_matmul(args: tuple, kwargs: dict, y: Any) -> float:
    return y.numel() * (args[0] if args else kwargs["input"]).shape[-1]


def _count_sdpa(args: tuple, kwargs: dict, y: Any) -> float:
    q, k, v = (*args, *(kwargs[n] for n in ("query", "key", "value")[len(args):]))[:3]
    return y.numel() // v.shape[-1] * k.shape[-2] * (q.shape[-1] + v.shape[-1])


def _count_functional_mha(args: tuple, kwargs: dict, y: Any) -> float:
    _, key, value, embed_dim, num_heads, _, _, bias_k, _, add_zero_attn = args[:10]
    out, weights = y if isinstance(y, tuple) else (y, None)
    return thop_attention(embed_dim, num_heads, key.shape[-1], value.shape[-1], (bias_k is not None) + add_zero_attn,
                          False, out.shape, None if weights is None else weights.shape, key.shape)


def _count_einsum(args: tuple, kwargs: dict, y: Any) -> float:
    # thop's _count_einsum: a two-operand contraction's multiply-adds; other operand counts are not counted
    equation, *operands = args
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = list(operands[0])
    if len(operands) != 2:
        return 0
    lhs, arrow, out = equation.replace(" ", "").partition("->")
    if not arrow:
        out = "..." + "".join(c for c in lhs if lhs.count(c) == 1)
    sizes = []
    for subscripts, t in zip(lhs.split(","), operands, strict=True):
        head, _, tail = subscripts.partition("...")
        n = t.dim() - len(head) - len(tail)
        sizes.append({k: d for k, d in zip([*head, *range(n, 0, -1), *tail], t.shape, strict=True) if d != 1})
    total = 1
    for k in sizes[0].keys() | sizes[1].keys():
        if (k in sizes[0] and k in sizes[1]) or (k in out if isinstance(k, str) else "..." in out):
            total *= sizes[0].get(k, sizes[1].get(k))
    return total


# thop's functional_hooks: what its function counter charges, outside every module with a rule of its own
THOP_FUNCTIONS: dict[Any, Callable[[tuple, dict, Any], float]] = {
    torch.matmul: _count_matmul, torch.Tensor.matmul: _count_matmul, torch.Tensor.__matmul__: _count_matmul,
    torch.bmm: _count_matmul, torch.Tensor.bmm: _count_matmul, F.linear: _count_matmul,
    torch.einsum: _count_einsum, F.multi_head_attention_forward: _count_functional_mha,
    F.scaled_dot_product_attention: _count_sdpa,
}
THOP_FUNCTION_WHY = {
    "scaled_dot_product_attention": "scaled dot-product attention counted by thop's function counter, on the model",
    "multi_head_attention_forward": "functional multi-head attention counted with thop's MultiheadAttention rule, on the model",
}
THOP_MATMUL_WHY = "functional matmul / linear counted by thop's function counter, on the model, no bias"
# the functions a peer sees whole: thop's, scaled dot-product attention among them (fvcore's trace keeps it as one node)
WATCHED_FUNCTIONS = {f: f.__name__ for f in THOP_FUNCTIONS}


def thop_charges(forward: Forward) -> list[tuple[list[int], Charge]]:
    """Module hooks charge each hooked module's call; the function counter charges products outside them."""
    groups: list[tuple[list[int], Charge]] = []
    covered: set[int] = set()
    for call in forward.function_calls:
        if call.thop is not None:
            indices = list(range(call.start, call.end))
            covered.update(indices)
            groups.append((indices, Charge(call.thop, THOP_FUNCTION_WHY.get(call.function, THOP_MATMUL_WHY), ROOT)))
    owners: dict[str, list[int]] = defaultdict(list)
    rest = []
    for i, op in enumerate(forward.ops):
        if i in covered:
            continue
        chain = forward.chain(op.module)
        depth = next((len(chain) - 1 - d for d, m in enumerate(chain) if thop_hook(m).cost is not None), None)
        if depth is None:
            rest.append(i)
        else:
            owners[".".join(op.module.split(".")[:depth]) if depth else ""].append(i)
    amounts: dict[str, float] = defaultdict(float)
    modules: dict[str, nn.Module] = {}
    unmodelled: set[str] = set()
    for call in forward.module_calls:
        hook = thop_hook(call.module)
        if hook.cost is not None:
            modules[call.path] = call.module
            try:
                amounts[call.path] += hook.cost(call.module, call.args, call.output)
            except Exception:  # a call this model of thop cannot read: left for the residual to flag
                unmodelled.add(call.path)
    for path in amounts.keys() | owners.keys() | unmodelled:
        module = modules[path] if path in modules else forward.chain(path)[0]
        why = thop_hook(module).why
        why = why(module) if callable(why) else why
        if path in unmodelled:
            why = f"{type(module).__name__} hook: call not modelled"
        groups.append((owners.get(path, []), Charge(amounts.get(path, 0.0), why, path or ROOT)))
    for i in rest:
        op = forward.ops[i]
        if op.macs:
            groups.append(([i], not_counted(forward.layer_types[i], "functional op invisible to module hooks")))
        else:
            groups.append(([i], not_counted(forward.layer_types[i])))
    return groups


# --- fvcore and FlopCounterMode: one charge per op ---------------------------------------------

SDPA_NO_FVCORE_HANDLE = "scaled dot-product attention: no fvcore handle"


def fvcore_rule(op: OpEvent, chain: list[nn.Module], layer_type: str) -> Charge:
    """fvcore's default handles (fvcore/nn/flop_count.py), counting 'flops' that are MACs."""
    if op.op in CONV_OPS:
        return Charge(op.macs, "conv: multiply-adds, no bias")
    if op.op in FVCORE_MATMUL:
        return Charge(op.macs, "matmul / linear: multiply-adds, no bias")
    if op.op == "aten.baddbmm":
        return not_counted(layer_type, "batched matmul plus input (aten::baddbmm): no fvcore handle")
    if op.op in BN_OPS:
        return Charge(op.activations * (2 if has_affine(chain) else 1), "BN at 2 per element (1 without affine)")
    if op.op in NORM_OPS:
        return Charge(op.activations * (5 if has_affine(chain) else 4), "GN / LN at 5 per element (4 without affine)")
    if op.op in ("aten.mean", "aten._adaptive_avg_pool2d") and chain and isinstance(chain[0], nn.AdaptiveAvgPool2d):
        return Charge(op.flops, "adaptive average pool at 1 per input element")
    if op.op == "aten.upsample_bilinear2d":
        return Charge(4 * op.activations, "bilinear upsampling at 4 per output element")
    if op.op == "aten.upsample_nearest2d":
        return Charge(op.activations, "nearest upsampling at 1 per output element")
    if op.op == "aten.grid_sampler_2d":
        return Charge(4 * op.activations, "grid sampling at 4 per output element")
    if op.op in FUSED_ATTENTION:
        return not_counted(layer_type, SDPA_NO_FVCORE_HANDLE)
    return not_counted(layer_type)


def fvcore_charges(forward: Forward) -> list[tuple[list[int], Charge]]:
    """One charge per op, except scaled dot-product attention: fvcore's jit trace keeps it as one
    node (aten::scaled_dot_product_attention) with no handle, whichever kernels run inside it."""
    groups = []
    covered: set[int] = set()
    for call in forward.function_calls:
        if call.function == "scaled_dot_product_attention":
            indices = list(range(call.start, call.end))
            covered.update(indices)
            groups.append((indices, Charge(0.0, SDPA_NO_FVCORE_HANDLE)))
    for i, op in enumerate(forward.ops):
        if i not in covered:
            groups.append(([i], fvcore_rule(op, forward.chain(op.module), forward.layer_types[i])))
    return groups


def flop_counter_rule(op: OpEvent, chain: list[nn.Module], layer_type: str) -> Charge:
    """torch.utils.flop_counter: 2 FLOPs per MAC of conv, matmul and GPU attention; nothing else."""
    if op.op in FLOP_COUNTER_FORMULAS and op.op not in FUSED_ATTENTION:
        return Charge(2 * op.macs, "FLOPs = 2 x MACs of conv / matmul, no bias")
    if op.op in FLOP_COUNTER_FORMULAS:
        return Charge(2 * op.macs, "FLOPs = 2 x MACs of attention, no softmax")
    if op.op == CPU_ATTENTION:
        return not_counted(layer_type, f"CPU fused attention kernel counted 0: no formula for {CPU_ATTENTION} (pytorch #195460)")
    if op.op in FUSED_ATTENTION:
        return not_counted(layer_type, f"fused attention kernel counted 0: no formula for {op.op}")
    return not_counted(layer_type)


def flop_counter_charges(forward: Forward) -> list[tuple[list[int], Charge]]:
    """A dispatch mode like archprof's: it sees the same ops, one charge each."""
    return [([i], flop_counter_rule(op, forward.chain(op.module), forward.layer_types[i])) for i, op in enumerate(forward.ops)]


# --- the peers' own runs ------------------------------------------------------------------------


@dataclass
class PeerReport:
    """One peer's numbers: actual (as it reports them) and predicted (from its conventions)."""

    name: str
    unit: str  # the unit the peer reports in: "MACs" or "FLOPs"
    error: str | None = None
    total: float | None = None
    actual: dict[str, float] = field(default_factory=dict)  # per layer, the peer's own unit
    predicted: dict[str, float] = field(default_factory=dict)
    # per layer: convention -> its part of the difference from archprof, in the common unit
    explained: dict[str, dict[str, float]] = field(default_factory=dict)

    def factor(self, common: str) -> float:
        """Multiplier from the peer's unit to the common one (FLOPs = 2 x MACs)."""
        peer_flops = self.unit == "FLOPs"
        return {(False, "macs"): 1.0, (False, "flops"): 2.0, (True, "macs"): 0.5, (True, "flops"): 1.0}[(peer_flops, common)]


@dataclass
class Crosscheck:
    model: str
    unit: str  # the common unit, "macs" or "flops"
    archprof: dict[str, int]  # per layer, in the common unit, on the CPU forward the peers ran
    peers: list[PeerReport]
    uncounted: dict[str, int] = field(default_factory=dict)  # ops archprof itself has no rule for
    # archprof on the meta device (what `archprof profile` runs): per layer, None where meta cannot run the model
    meta: dict[str, int] | None = None
    meta_error: str | None = None
    # per layer: archprof's own reason -> meta minus CPU, in the common unit
    device_gaps: dict[str, dict[str, int]] = field(default_factory=dict)
    conditions: Conditions | None = None  # of the CPU forward every tool ran

    @property
    def archprof_total(self) -> int:
        return sum(self.archprof.values())

    @property
    def meta_total(self) -> int | None:
        return None if self.meta is None else sum(self.meta.values())

    def layers(self) -> list[str]:
        names = list(self.archprof)
        for other in [*(p.actual for p in self.peers), self.meta or {}]:
            names += [n for n in other if n not in names]
        return names

    def unexplained(self, peer: PeerReport, layer: str | None = None) -> float:
        """Actual minus predicted, in the common unit: what no known convention accounts for."""
        if peer.error is not None:
            return 0.0
        if layer is None:
            return (peer.total - sum(peer.predicted.values())) * peer.factor(self.unit)
        return (peer.actual.get(layer, 0.0) - peer.predicted.get(layer, 0.0)) * peer.factor(self.unit)


    def verdicts(self) -> list[Verdict]:
        """One per tool: archprof (the reference), archprof on meta where it counts differently, then
        each peer, with its difference from archprof split into what its conventions explain and
        what nothing explains."""
        ours = self.archprof_total
        made = [Verdict("archprof", None, ours, ours, 0, 0, 0, ARCHPROF)]
        if self.device_gaps:
            gap = self.meta_total - ours
            made.append(Verdict("archprof on meta", None, self.meta_total, self.meta_total, gap, gap, 0, DEVICE_GAP,
                                by_convention(self.device_gaps)))
        for peer in self.peers:
            if peer.error is not None:
                made.append(Verdict(peer.name, peer.unit, None, None, None, None, None, f"{FAILED}: {peer.error}"))
                continue
            common = peer.total * peer.factor(self.unit)
            residual = self.unexplained(peer)
            made.append(Verdict(peer.name, peer.unit, peer.total, common, common - ours,
                                sum(sum(d.values()) for d in peer.explained.values()), residual,
                                EXPLAINED if abs(residual) < TOLERANCE else UNEXPLAINED, by_convention(peer.explained)))
        return made

    def differing_layers(self) -> list[LayerDifference]:
        """The layers where a peer that ran, or archprof on meta, counts other than archprof, each
        with the conventions (and any unexplained part) behind it."""
        ran = [p for p in self.peers if p.error is None]
        made = []
        for name in self.layers():
            ours = self.archprof.get(name, 0)
            values = [p.actual.get(name, 0.0) * p.factor(self.unit) for p in ran]
            gaps = self.device_gaps.get(name, {})
            if all(abs(v - ours) < TOLERANCE for v in values) and not gaps:
                continue
            why = [", ".join(gaps)] if gaps else []
            for p in ran:
                parts = [w for w, a in p.explained.get(name, {}).items() if a]
                if abs(self.unexplained(p, name)) >= TOLERANCE:
                    parts.append(UNEXPLAINED_PART)
                if parts:
                    why.append(f"{p.name}: {', '.join(parts)}")
            made.append(LayerDifference(name, ours, self.meta.get(name, 0) if self.device_gaps else None,
                                        dict(zip((p.name for p in ran), values, strict=True)), why))
        return made


# Verdicts, and the tolerance under which a difference (in the common unit) is none: counts are
# integers, a peer's float total rounds.
TOLERANCE = 0.5
ARCHPROF = "-"
DEVICE_GAP = "archprof's own: counts differ by device"
EXPLAINED = "all explained"
UNEXPLAINED = "UNEXPLAINED difference"
UNEXPLAINED_PART = "UNEXPLAINED"
FAILED = "failed"


@dataclass(frozen=True)
class Verdict:
    """One tool's total beside archprof's, in the common unit, and what explains the difference."""

    tool: str
    unit: str | None  # the unit the tool reports in; None: archprof's own rows, in the common unit
    reported: float | None  # None: the tool failed
    common: float | None
    difference: float | None
    explained: float | None
    unexplained: float | None
    verdict: str
    conventions: dict[str, float] = field(default_factory=dict)  # the difference per convention, over all layers


@dataclass(frozen=True)
class LayerDifference:
    layer: str
    archprof: int
    meta: int | None  # archprof on meta, where it counts any layer differently there
    peers: dict[str, float]  # per peer that ran, in the common unit
    why: list[str]  # "archprof's reason" and "peer: convention, ..." per tool that differs


def by_convention(explained: dict[str, dict[str, float]]) -> dict[str, float]:
    """Per-layer parts summed per convention; parts that cancel across layers (a count booked on
    another layer) are left out."""
    totals: dict[str, float] = {}
    for layer in explained.values():
        for why, amount in layer.items():
            totals[why] = totals.get(why, 0.0) + amount
    return {why: amount for why, amount in totals.items() if abs(amount) >= TOLERANCE}


def _own_counts(cumulative: dict[str, float], total: float) -> dict[str, float]:
    """Per-module counts that include submodules -> each module's own (the innermost charge)."""
    own = {}
    paths = set(cumulative) | {""}
    for path in paths:
        value = total if path == "" else cumulative[path]
        children = [p for p in paths if p and p != path and p.rpartition(".")[0] == path]
        own[path or ROOT] = value - sum(cumulative[c] for c in children)
    return {k: v for k, v in own.items() if v}


def run_fvcore(model: nn.Module, x: tuple) -> tuple[float, dict[str, float]]:
    from fvcore.nn import FlopCountAnalysis

    analysis = FlopCountAnalysis(model, x)  # a tuple: the forward's positional arguments
    analysis.unsupported_ops_warnings(False)
    analysis.uncalled_modules_warnings(False)
    analysis.tracer_warnings("none")
    by_module = {k: float(v) for k, v in analysis.by_module().items() if k}
    total = float(analysis.total())
    return total, _own_counts(by_module, total)


def run_thop(model: nn.Module, x: tuple) -> tuple[float, dict[str, float]]:
    import thop

    total, _, tree = thop.profile(model, inputs=x, verbose=False, ret_layer_info=True)
    cumulative: dict[str, float] = {}

    def walk(prefix: str, node: dict) -> None:
        for name, (ops, _params, children) in node.items():
            path = f"{prefix}.{name}" if prefix else name
            cumulative[path] = float(ops)
            walk(path, children)

    walk("", tree)
    # Functional products counted outside every module land in thop's total only: the root's own.
    return float(total), _own_counts(cumulative, float(total))


def run_flop_counter(model: nn.Module, x: tuple) -> tuple[float, dict[str, float]]:
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        model(*x)
    root = type(model).__name__
    cumulative = {}
    for fqn, counts in counter.get_flop_counts().items():
        if fqn in ("Global", root):
            continue
        cumulative[fqn.removeprefix(root + ".")] = float(sum(counts.values()))
    return float(counter.get_total_flops()), _own_counts(cumulative, float(counter.get_total_flops()))


Runner = Callable[[nn.Module, torch.Tensor], tuple[float, dict[str, float]]]
Predictor = Callable[[Forward], list[tuple[list[int], Charge]]]
PEERS: list[tuple[str, str, Runner, Predictor]] = [
    ("fvcore", "MACs", run_fvcore, fvcore_charges),  # fvcore labels them "flops"; they are multiply-adds
    ("thop", "MACs", run_thop, thop_charges),
    ("FlopCounterMode", "FLOPs", run_flop_counter, flop_counter_charges),
]


# --- the cross-check ----------------------------------------------------------------------------


def _running_tracer() -> Tracer:
    """archprof's tracer of the forward now running: its op count places a call in the trace."""
    tracer = running_tracer()
    if tracer is None:
        raise RuntimeError("crosscheck: no archprof trace is running")
    return tracer


def _positional(module: nn.Module, args: tuple, kwargs: dict) -> tuple:
    """A call's arguments in the order ``forward`` declares them, as thop hands them to its hooks."""
    try:
        bound = inspect.signature(module.forward).bind(*args, **kwargs)
    except (TypeError, ValueError):
        return ()
    values: list[Any] = []
    for name, value in bound.arguments.items():
        kind = bound.signature.parameters[name].kind
        if kind == inspect.Parameter.VAR_POSITIONAL:
            values.extend(value)
        elif kind != inspect.Parameter.VAR_KEYWORD:
            values.append(value)
    return tuple(values)


class _Observer(TorchFunctionMode):
    """Watches archprof's CPU trace from above the op level: each top-level call of a function a
    peer sees whole, and each call of a module that thop hooks, with the shapes its hook reads."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.paths = {id(m): p for p, m in model.named_modules()}
        self.function_calls: list[FunctionCall] = []
        self.module_calls: list[ModuleCall] = []
        self._hooked: list[bool] = []  # per module whose forward is running: does a thop hook charge it?

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = WATCHED_FUNCTIONS.get(func)
        if name is None:
            return func(*args, **kwargs)
        events = _running_tracer().trace.events
        start = len(events)
        out = func(*args, **kwargs)  # this mode is off inside: nested calls are part of this one, as for thop
        end = len(events)
        if start == end and name in getattr(_running_tracer(), "whole", {}):
            end += 1  # an op the tracer costs whole: it records it as one op as soon as this call returns
        thop = None if any(self._hooked) else THOP_FUNCTIONS[func](args, kwargs, out)
        self.function_calls.append(FunctionCall(name, start, end, thop))
        return out

    def _enter(self, module: nn.Module, args: Any) -> None:
        self._hooked.append(thop_hook(module).cost is not None)

    def _exit(self, module: nn.Module, args: Any, output: Any) -> None:
        if self._hooked:
            self._hooked.pop()

    def _record(self, module: nn.Module, args: Any, kwargs: dict, output: Any) -> None:
        if thop_hook(module).cost is not None and id(module) in self.paths:
            positional = _positional(module, args, kwargs) if kwargs else args
            self.module_calls.append(ModuleCall(self.paths[id(module)], module, shapes_of(positional), shapes_of(output)))

    @contextlib.contextmanager
    def watching(self) -> Iterator[_Observer]:
        # torch calls an always_call hook without keyword arguments when a forward raises: two hooks
        handles = [nn.modules.module.register_module_forward_pre_hook(self._enter),
                   nn.modules.module.register_module_forward_hook(self._record, with_kwargs=True),
                   nn.modules.module.register_module_forward_hook(self._exit, always_call=True)]
        try:
            with self:
                yield self
        finally:
            for handle in handles:
                handle.remove()


def _chains(model: nn.Module) -> Callable[[str], list[nn.Module]]:
    by_path = dict(model.named_modules())

    def chain(path: str) -> list[nn.Module]:
        parts = path.split(".") if path else []
        return [by_path[".".join(parts[:i])] for i in range(len(parts), -1, -1)]

    return chain


def _attribute(report: PeerReport, forward: Forward, groups: list[tuple[list[int], Charge]], unit: str) -> None:
    """Split the peer's difference from archprof into its charges' departures, per layer.

    A charge for ops that archprof could not cost is archprof's miss, whatever the peer charged;
    so is whatever the peer reports beyond its prediction at a layer where archprof missed an op.
    """
    factor = report.factor(unit)
    predicted: dict[str, float] = defaultdict(float)
    explained: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for indices, charge in groups:
        missed = {forward.ops[i].op for i in indices if not forward.ops[i].counted}
        why = archprof_miss(missed, forward.uncounted) if missed else charge.why
        booked = charge.layer or (forward.layer(indices[0]) if indices else ROOT)
        predicted[booked] += charge.amount
        explained[booked][why] += charge.amount * factor
        for i in indices:
            explained[forward.layer(i)][why] -= forward.value(i, unit)
    for layer, missed in forward.uncounted_by_layer().items():
        residual = report.actual.get(layer, 0.0) - predicted[layer]
        if residual:
            explained[layer][archprof_miss(missed, forward.uncounted)] += residual * factor
            predicted[layer] += residual
    report.predicted = {k: v for k, v in predicted.items() if v}
    report.explained = {k: kept for k, v in explained.items() if (kept := {w: a for w, a in v.items() if a})}


def _per_layer(p: Profile, unit: str) -> dict[str, int]:
    layers: dict[str, int] = defaultdict(int)
    for op in p.ops:
        layers[op.module or ROOT] += op.macs if unit == "macs" else op.flops
    return dict(layers)


def _device_gaps(cpu: Profile, meta: Profile, unit: str) -> dict[str, dict[str, int]]:
    """Per layer, why archprof counts it differently on meta than on the CPU forward (meta minus CPU)."""
    values = {"cpu": _per_layer(cpu, unit), "meta": _per_layer(meta, unit)}
    ran: dict[str, dict[str, set[str]]] = {"cpu": defaultdict(set), "meta": defaultdict(set)}
    missed: dict[str, dict[str, set[str]]] = {"cpu": defaultdict(set), "meta": defaultdict(set)}
    for device, p in (("cpu", cpu), ("meta", meta)):
        for op in p.ops:
            ran[device][op.module or ROOT].add(op.op)
            if not op.counted:
                missed[device][op.module or ROOT].add(op.op)
    gaps = {}
    for layer in values["cpu"].keys() | values["meta"].keys():
        gap = values["meta"].get(layer, 0) - values["cpu"].get(layer, 0)
        if not gap:
            continue
        if missed["cpu"][layer]:
            why = archprof_miss(missed["cpu"][layer], cpu.uncounted)
        elif missed["meta"][layer]:
            why = archprof_miss(missed["meta"][layer], meta.uncounted) + " on meta"
        else:
            only_cpu = ", ".join(sorted(ran["cpu"][layer] - ran["meta"][layer])) or "the same ops"
            only_meta = ", ".join(sorted(ran["meta"][layer] - ran["cpu"][layer])) or "the same ops"
            why = f"archprof: counts differently on cpu ({only_cpu}) than on meta ({only_meta})"
        gaps[layer] = {why: gap}
    return gaps


@contextlib.contextmanager
def _mha_fast_path_off() -> Iterator[None]:
    # In eval under no_grad, nn.MultiheadAttention and the transformer layers run one fused op
    # (aten._native_multi_head_attention) that no fvcore handle or FlopCounterMode formula prices,
    # and that archprof's trace turns off: every tool counts the regular path here.
    enabled = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        yield
    finally:
        torch.backends.mha.set_fastpath_enabled(enabled)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
                contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(previous)


def _run_peer(name: str, unit: str, run: Runner, model: nn.Module, x: tuple) -> PeerReport:
    report = PeerReport(name, unit)
    try:
        with torch.no_grad(), _quiet():
            report.total, report.actual = run(model, x)
    except Exception as err:  # a peer that fails is shown as failed, with its error
        lines = str(err).strip().splitlines()
        report.error = f"{type(err).__name__}: {lines[0] if lines else ''}"
    return report


def crosscheck(
    model: nn.Module, input_shape: tuple[int, ...] | None = None, unit: str = "macs", name: str | None = None,
    *, inputs: Any = None,
) -> Crosscheck:
    """Run archprof and every peer on one real CPU forward of ``model`` at ``input_shape`` (one
    float input) or ``inputs`` (positional arguments, tensors or input specs: fvcore and thop call
    ``model(*inputs)``, so keyword inputs cannot be cross-checked).

    The model is left as it was found: training flags, parameters, buffers and attributes.
    """
    if unit not in ("macs", "flops"):
        raise ValueError(f"unit must be macs or flops, got {unit!r}")
    call = as_inputs(inputs) if inputs is not None else Inputs((InputSpec(tuple(input_shape)),))
    if call.kwargs:
        raise ProfileError(f"crosscheck runs fvcore and thop, which call model(*inputs): keyword inputs "
                           f"({', '.join(call.kwargs)}) cannot be cross-checked")
    elements = sum(math.prod(t.shape) for _, t in [*call.tensors(), *call.specs()])
    if elements > MAX_INPUT_ELEMENTS:
        raise ProfileError(f"crosscheck runs real CPU forwards: an input of {elements:,} elements is too large "
                           f"(at most {MAX_INPUT_ELEMENTS:,})")
    x = materialize(call, "cpu", float_dtype(model), seed=INPUT_SEED, vocabulary=vocabulary_size(model)).args
    with left_as_found(model), _mha_fast_path_off():
        model.eval()
        with _Observer(model).watching() as observer:
            ours: Profile = profile(model, inputs=x, device="cpu", name=name)
        forward = Forward(ours.ops, ours.layer_types, _chains(model), observer.module_calls, observer.function_calls,
                          ours.uncounted)
        meta: dict[str, int] | None = None
        meta_error = None
        gaps: dict[str, dict[str, int]] = {}
        try:
            on_meta = profile(model, inputs=x, device="meta", name=name)
            meta, gaps = _per_layer(on_meta, unit), _device_gaps(ours, on_meta, unit)
        except ProfileError as err:
            meta_error = str(err)
        peers = []
        for peer_name, peer_unit, run, predict in PEERS:
            report = _run_peer(peer_name, peer_unit, run, model, x)
            if report.error is None:
                _attribute(report, forward, predict(forward), unit)
            peers.append(report)
    return Crosscheck(ours.model, unit, _per_layer(ours, unit), peers, ours.uncounted, meta, meta_error, gaps,
                      ours.conditions)
