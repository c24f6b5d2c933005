"""Cost rules: one registered function per aten operator, a pure function of shapes.

A rule takes one :class:`Call`: the operator's arguments by their schema names, defaults filled in
(as ``torch.utils.flop_counter``'s ``shape_wrapper`` hands its formulas named shapes), and its
output (on the meta device these carry shapes and dtypes only). It returns a :class:`Cost`, or
``None`` when this call cannot be costed (the op is then reported as uncounted, never as a silent
zero). Reading ``args[8]`` by position breaks silently when a schema changes; ``call["groups"]``
does not.

Each rule is registered by a call below its definition rather than by the decorator form users
write (``@register_cost_rule(...)``): mutmut, which measures how well the tests pin these rules
(``benchmarks/mutation.py``), mutates only undecorated functions.

Conventions (the README's table states them for users):

- **MAC**: one multiply-accumulate of a convolution, linear layer, matmul or attention; bias
  excluded. These are the papers' "mult-adds" and torchvision's "GFLOPS".
- **FLOP**: one floating-point operation: 2 per MAC, plus 1 per bias add, plus the per-element
  costs below for everything else. A special function (exp, log, erf, tanh, sqrt, rsqrt) counts 1.
"""

from __future__ import annotations

import inspect
import math
import sys
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, NamedTuple

import torch
from torch.utils.flop_counter import flop_registry as _torch_flop_registry

aten = torch.ops.aten


class Cost(NamedTuple):
    macs: int = 0
    flops: int = 0


_NO_DEFAULT = object()
# Per overload, its schema's arguments: (name, position or -1 when keyword-only, default).
_PLANS: dict[Any, tuple[tuple[str, int, Any], ...]] = {}


def _plan(overload: torch._ops.OpOverload) -> tuple[tuple[str, int, Any], ...]:
    plan = _PLANS.get(overload)
    if plan is None:
        plan = tuple(
            (a.name, -1 if a.kwarg_only else i, a.default_value if a.has_default_value() else _NO_DEFAULT)
            for i, a in enumerate(overload._schema.arguments)
        )
        _PLANS[overload] = plan
    return plan


def bind(overload: torch._ops.OpOverload, args: tuple, kwargs: dict) -> dict[str, Any]:
    """A call's arguments by their schema names, defaults filled in (reading ``args[8]`` by
    position breaks silently when a schema changes). The schema is read once per overload."""
    named: dict[str, Any] = {}
    given = len(args)
    for name, position, default in _plan(overload):
        if 0 <= position < given:
            named[name] = args[position]
        elif name in kwargs:
            named[name] = kwargs[name]
        elif default is not _NO_DEFAULT:
            named[name] = default
    return named


class Call(Mapping[str, Any]):
    """One op call as a rule sees it: ``call["groups"]`` is the argument the op's schema names
    ``groups`` (its default when the caller left it out), ``call.out`` the op's output.

    The arguments are bound on the first read, so a rule that reads only ``call.out`` costs no
    binding; ``call.args`` and ``call.kwargs`` are the call as the dispatcher passed it.
    """

    __slots__ = ("_named", "args", "kwargs", "out", "overload")

    def __init__(self, overload: torch._ops.OpOverload, args: tuple, kwargs: dict, out: Any) -> None:
        self.overload, self.args, self.kwargs, self.out = overload, args, kwargs, out
        self._named: dict[str, Any] | None = None

    def _bound(self) -> dict[str, Any]:
        if self._named is None:
            self._named = bind(self.overload, self.args, self.kwargs)
        return self._named

    def __getitem__(self, name: str) -> Any:
        return self._bound()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._bound())

    def __len__(self) -> int:
        return len(self._bound())

    def __repr__(self) -> str:
        return f"Call({self.overload}, {self._bound()!r})"


# A rule: ``fn(call) -> Cost | None``, or as archprof 0.1 took it, ``fn(args, kwargs, out)`` with
# the arguments exactly as __torch_dispatch__ saw them.
CostFunction = Callable[[Call], "Cost | None"] | Callable[[tuple, dict, Any], "Cost | None"]
LayerType = str | Callable[[Call], str] | Callable[[tuple, dict], str]


def takes_call(fn: Callable[..., Any]) -> bool:
    """Whether a rule (or layer-type function) takes one :class:`Call` rather than (args, kwargs, ...)."""
    try:
        parameters = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):  # a builtin without a signature: the 0.1 form
        return False
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    variadic = any(p.kind is p.VAR_POSITIONAL for p in parameters)
    return len(positional) == 1 and not variadic


@dataclass(frozen=True)
class CostRule:
    cost: Callable[[Call], Cost | None]
    # What the op is when it runs outside a layer that names its own type (e.g. ``a + b`` in a
    # block's forward): a layer-type name, or a function of the call for convolutions.
    layer_type: str | Callable[[Call], str]
    # Ops that also return saved statistics, pool indices or log-sum-exp for backward: only the
    # first output is an activation, so the meta and CPU paths (which differ there) agree.
    first_output_only: bool = False
    # A composite op that devices take apart into different kernels (an LSTM is one mkldnn kernel on
    # CPU and matmuls and gates on meta): costed whole, at its call, so that every device counts it
    # once and the same. Its rule gets the call's own arguments, as the op's schema names them.
    whole: bool = False

    def _category(self) -> str | Callable[[Call], str]:
        """Deprecated name of :attr:`layer_type`."""
        return self.layer_type

    category = property(_category)  # not decorated: within mutmut's reach (benchmarks/mutation.py)

    def apply(self, overload: torch._ops.OpOverload, args: tuple, kwargs: dict, out: Any) -> tuple[Cost | None, str]:
        """This call's cost and layer type; (None, "uncounted") when the rule cannot read the call
        (report, don't guess)."""
        call = Call(overload, args, kwargs, out)
        try:
            cost = self.cost(call)
        except Exception:
            return None, "uncounted"
        if cost is None:
            return None, "uncounted"
        return cost, self.layer_type(call) if callable(self.layer_type) else self.layer_type


def make_rule(cost: CostFunction, layer_type: LayerType, *, first_output_only: bool = False, whole: bool = False) -> CostRule:
    """A :class:`CostRule` for ``cost`` in either form, ``fn(call)`` or ``fn(args, kwargs, out)``
    (the latter, and a layer-type function of (args, kwargs), handed the call as the dispatcher
    passed it)."""
    if not takes_call(cost):
        legacy_cost = cost

        def cost(call: Call) -> Cost | None:
            return legacy_cost(call.args, call.kwargs, call.out)

        cost.__wrapped__ = legacy_cost  # type: ignore[attr-defined]
    if callable(layer_type) and not takes_call(layer_type):
        legacy_type = layer_type

        def layer_type(call: Call) -> str:
            return legacy_type(call.args, call.kwargs)

        layer_type.__wrapped__ = legacy_type  # type: ignore[attr-defined]
    return CostRule(cost, layer_type, first_output_only, whole)


COST_RULES: dict[torch._ops.OpOverloadPacket, CostRule] = {}


def register_cost_rule(
    ops: torch._ops.OpOverloadPacket | Iterable[torch._ops.OpOverloadPacket],
    layer_type: LayerType | None = None,
    *,
    first_output_only: bool = False,
    whole: bool = False,
    category: LayerType | None = None,
) -> Callable[[CostFunction], CostFunction]:
    """Register ``fn(call) -> Cost | None`` as the cost of ``ops``.

    The public way to cost a custom operator::

        @archprof.register_cost_rule(torch.ops.mylib.fused_gelu, layer_type="activation")
        def fused_gelu_cost(call):
            return archprof.Cost(flops=5 * call.out.numel())

    ``call["name"]`` reads an argument by the op's schema name, its default filled in. A rule written
    as ``fn(args, kwargs, out)`` (the arguments as the dispatcher passed them) works too, and
    ``category=`` is the deprecated name of ``layer_type=``. ``whole=True`` costs a composite op
    (one with no kernel of its own, which the dispatcher takes apart before any dispatch mode sees
    it) at its call, as one op, instead of its parts.
    """
    if category is not None:
        if layer_type is not None:
            raise TypeError("register_cost_rule takes layer_type or its deprecated name category, not both")
        warnings.warn("register_cost_rule(category=...) is deprecated: use layer_type=", DeprecationWarning, stacklevel=2)
        layer_type = category
    if layer_type is None:
        raise TypeError("register_cost_rule needs the ops' layer_type (e.g. layer_type=\"activation\")")
    packets = [ops] if isinstance(ops, torch._ops.OpOverloadPacket) else list(ops)

    def register(fn: CostFunction) -> CostFunction:
        rule = make_rule(fn, layer_type, first_output_only=first_output_only, whole=whole)
        for packet in packets:
            if not isinstance(packet, torch._ops.OpOverloadPacket):
                raise TypeError(f"register_cost_rule expects torch.ops.<namespace>.<op> packets, got {packet!r}")
            if packet in COST_RULES:
                raise ValueError(f"{packet} already has a cost rule")
            COST_RULES[packet] = rule
        return fn

    return register


def ops_costed_by(*fns: CostFunction) -> frozenset[torch._ops.OpOverloadPacket]:
    """The ops whose registered rule is one of ``fns`` (for observers such as crosscheck, which
    must name the same ops as the rules do)."""
    return frozenset(packet for packet, rule in COST_RULES.items() if rule.cost in fns)


def per_element(
    flops_per_element: int, layer_type: str, ops: Iterable[torch._ops.OpOverloadPacket], first_output_only: bool = False
) -> None:
    """Register ops whose cost is a fixed number of FLOPs per element of their (first) output."""
    cost = partial(per_element_cost, flops_per_element=flops_per_element, first_output_only=first_output_only)
    register_cost_rule(list(ops), layer_type, first_output_only=first_output_only)(cost)


# The rules that families of ops share take their family's constants as keywords, bound with
# functools.partial where the family is registered.


def per_element_cost(call: Call, flops_per_element: int, first_output_only: bool) -> Cost:
    return Cost(0, flops_per_element * (numel(first_tensor(call.out)) if first_output_only else numel(call.out)))


def numel(value: Any) -> int:
    if isinstance(value, torch.Tensor):
        return value.numel()
    if isinstance(value, (tuple, list)):
        return sum(numel(v) for v in value)
    return 0


def _packets_of(*names: str) -> list[torch._ops.OpOverloadPacket]:
    # Some operators exist only in some torch builds; a rule covers those that exist.
    return [getattr(aten, n) for n in names if hasattr(aten, n)]


def first_tensor(value: Any) -> torch.Tensor:
    return value if isinstance(value, torch.Tensor) else next(v for v in value if isinstance(v, torch.Tensor))


def _torch_macs(packet: torch._ops.OpOverloadPacket, args: tuple, kwargs: dict, out: Any) -> int:
    # torch.utils.flop_counter counts 2 FLOPs per multiply-accumulate and nothing else.
    return _torch_flop_registry[packet](*args, **kwargs, out_val=out) // 2


# --- convolution -------------------------------------------------------------------------------

# The dispatch mode sees convolutions at the top of the dispatcher, before a backend kernel is chosen.
CONV_OPS = (aten.convolution, aten._convolution)


def conv_type(kernel: Sequence[int], groups: int, in_channels: int, transposed: bool) -> str:
    k = "x".join(str(int(s)) for s in kernel)
    if transposed:
        return f"transposed conv {k}"
    if groups > 1 and groups == in_channels:
        return f"depthwise {k}"
    if groups > 1:
        return f"grouped conv {k}"
    return f"conv {k}"


def conv_call_type(call: Call) -> str:
    return conv_type(call["weight"].shape[2:], int(call["groups"]), call["input"].shape[1], bool(call["transposed"]))


def conv_cost(call: Call) -> Cost:
    forward = (call["input"], call["weight"], None, call["stride"], call["padding"], call["dilation"], call["transposed"])
    macs = _torch_macs(aten.convolution, forward, {}, call.out)
    return Cost(macs, 2 * macs + (call.out.numel() if call["bias"] is not None else 0))


register_cost_rule(list(CONV_OPS), layer_type=conv_call_type)(conv_cost)


# --- matrix products ---------------------------------------------------------------------------


def matmul_cost(call: Call) -> Cost:
    a = call["self"]
    macs = _torch_macs(aten.mm if a.dim() == 2 else aten.bmm, (a, call["mat2"]), {}, call.out)
    return Cost(macs, 2 * macs)


register_cost_rule([aten.mm, aten.bmm], layer_type="matmul")(matmul_cost)


def addmm_cost(call: Call) -> Cost:
    # out = beta * self + alpha * (mat1 @ mat2): the add of ``self`` is the linear layer's bias add.
    macs = _torch_macs(aten.mm, (call["mat1"], call["mat2"]), {}, call.out)
    return Cost(macs, 2 * macs + call.out.numel())


register_cost_rule(aten.addmm, layer_type="matmul")(addmm_cost)


def baddbmm_cost(call: Call) -> Cost:
    # out = beta * self + alpha * (batch1 @ batch2), one add per output as addmm.
    macs = _torch_macs(aten.bmm, (call["batch1"], call["batch2"]), {}, call.out)
    return Cost(macs, 2 * macs + call.out.numel())


register_cost_rule(aten.baddbmm, layer_type="matmul")(baddbmm_cost)


def vector_product_cost(call: Call) -> Cost:
    macs = call["self"].numel()
    return Cost(macs, 2 * macs)


register_cost_rule([aten.mv, aten.dot, aten.vdot], layer_type="matmul")(vector_product_cost)


def addmv_cost(call: Call) -> Cost:
    # beta * self + alpha * (mat @ vec): the matrix-vector product plus one add per output.
    macs = call["mat"].numel()
    return Cost(macs, 2 * macs + call.out.numel())


register_cost_rule(_packets_of("addmv", "addmv_"), layer_type="matmul")(addmv_cost)


def addr_cost(call: Call) -> Cost:
    # beta * self + alpha * outer(vec1, vec2): one multiply-accumulate into self per element.
    macs = call["vec1"].numel() * call["vec2"].numel()
    return Cost(macs, 2 * macs)


register_cost_rule(_packets_of("addr", "addr_"), layer_type="matmul")(addr_cost)


def addbmm_cost(call: Call) -> Cost:
    # beta * self + alpha * sum_b (batch1[b] @ batch2[b]): the batched product, summed into self.
    b, n, m = call["batch1"].shape
    macs = b * n * m * call["batch2"].shape[-1]
    return Cost(macs, 2 * macs + call.out.numel())


register_cost_rule(_packets_of("addbmm", "addbmm_"), layer_type="matmul")(addbmm_cost)


# --- attention ---------------------------------------------------------------------------------

FUSED_ATTENTION_OPS = (
    aten._scaled_dot_product_flash_attention_for_cpu,
    aten._scaled_dot_product_flash_attention,
    aten._scaled_dot_product_efficient_attention,
    aten._scaled_dot_product_cudnn_attention,
    aten._scaled_dot_product_fused_attention_overrideable,
)
SOFTMAX_FLOPS = 5  # max, subtract, exp, sum, divide per element


def fused_attention_cost(call: Call) -> Cost:
    """softmax(q k^T * scale) v, costed as the math path that the meta device runs.

    That path scales q and k by sqrt(scale) each, so both devices count the same FLOPs.
    """
    q, k, v = call["query"], call["key"], call["value"]
    *batch, s_q, d = q.shape
    s_k, d_v = k.shape[-2], v.shape[-1]
    heads = math.prod(batch)
    macs = heads * s_q * s_k * (d + d_v)
    scores = heads * s_q * s_k
    flops = 2 * macs + heads * (s_q + s_k) * d + SOFTMAX_FLOPS * scores
    # The CPU kernel calls the mask attn_mask, the GPU kernels attn_bias (flash takes none); the
    # math path adds the causal mask too.
    mask = call.get("attn_mask", call.get("attn_bias"))
    if mask is not None or call["is_causal"]:
        flops += scores
    return Cost(macs, flops)


register_cost_rule(list(FUSED_ATTENTION_OPS), layer_type="attention", first_output_only=True)(fused_attention_cost)


# --- normalization -----------------------------------------------------------------------------

NORM_STATISTICS_FLOPS = 5  # mean (1 add), centre (1 sub), square (1 mul), variance (1 add), scale by rsqrt (1 mul)
AFFINE_FLOPS = 2  # gamma * x + beta
INFERENCE_BN_FLOPS = 2  # statistics and affine fold into one multiply and one add per element


def inference_batch_norm_cost(call: Call) -> Cost:
    return Cost(0, INFERENCE_BN_FLOPS * call["input"].numel())


register_cost_rule(
    _packets_of("_native_batch_norm_legit_no_training", "_batch_norm_no_update"), layer_type="normalization", first_output_only=True
)(inference_batch_norm_cost)


def batch_norm_cost(call: Call) -> Cost:
    # _batch_norm_with_update has no training flag: it trains.
    if not call.get("training", True):
        return Cost(0, INFERENCE_BN_FLOPS * call["input"].numel())
    affine = AFFINE_FLOPS if call["weight"] is not None else 0
    return Cost(0, (NORM_STATISTICS_FLOPS + affine) * call["input"].numel())


register_cost_rule(
    _packets_of("native_batch_norm", "_native_batch_norm_legit", "_batch_norm_with_update", "cudnn_batch_norm", "miopen_batch_norm"),
    layer_type="normalization",
    first_output_only=True,
)(batch_norm_cost)


def group_layer_norm_cost(call: Call) -> Cost:
    affine = AFFINE_FLOPS if call["weight"] is not None else 0
    return Cost(0, (NORM_STATISTICS_FLOPS + affine) * call["input"].numel())


register_cost_rule([aten.native_group_norm, aten.native_layer_norm], layer_type="normalization", first_output_only=True)(group_layer_norm_cost)


# --- activations and element-wise arithmetic ---------------------------------------------------


per_element(1, "activation", _packets_of("relu", "relu_", "threshold", "clamp_min", "clamp_min_", "clamp_max", "clamp_max_"))
per_element(2, "activation", _packets_of("hardtanh", "hardtanh_", "clamp", "clamp_", "leaky_relu", "leaky_relu_"))  # two comparisons; compare + scale
SIGMOID_FLOPS = 4  # neg, exp, add, div; hardsigmoid: add, 2 clamps, div
per_element(SIGMOID_FLOPS, "activation", _packets_of("sigmoid", "sigmoid_", "hardsigmoid", "hardsigmoid_"))
per_element(5, "activation", _packets_of("silu", "silu_", "hardswish", "hardswish_", "gelu", "gelu_", "elu", "elu_", "mish"))
per_element(3, "activation", _packets_of("softplus", "prelu", "_prelu_kernel"))
# log(sigmoid(x)): its second output is a buffer kept for backward, not an activation.
per_element(3, "activation", _packets_of("log_sigmoid_forward"), first_output_only=True)
per_element(1, "reduction", _packets_of("cumsum", "cumprod"))  # one add (multiply) per element of the running total
per_element(1, "activation", _packets_of("tanh", "tanh_"))
per_element(5, "activation", _packets_of("celu", "celu_"))  # as ELU: compare, exp, subtract, scale, select
per_element(2, "activation", _packets_of("hardshrink", "softshrink"))  # compare, then select or subtract
per_element(5, "activation", _packets_of("glu"))  # per output: the gate's sigmoid (4) and the product (1)
per_element(
    1,
    "elementwise",
    _packets_of(
        "add", "add_", "sub", "sub_", "rsub", "mul", "mul_", "div", "div_", "neg", "neg_", "abs", "abs_",
        "pow", "pow_", "sqrt", "sqrt_", "rsqrt", "rsqrt_", "exp", "exp_", "log", "log_", "reciprocal",
        "reciprocal_", "erf", "erf_", "maximum", "minimum", "eq", "ne", "lt", "le", "gt", "ge", "sign",
        "floor", "ceil", "round", "trunc", "frac", "square", "logical_not", "logical_and", "logical_or",
    ),
)
# Trigonometric, hyperbolic and the other special functions (log2, expm1, ...): 1 each, as exp and log.
per_element(
    1,
    "elementwise",
    _packets_of(
        "sin", "sin_", "cos", "cos_", "tan", "tan_", "asin", "asin_", "acos", "acos_", "atan", "atan_", "atan2",
        "atan2_", "sinh", "sinh_", "cosh", "cosh_", "asinh", "asinh_", "acosh", "acosh_", "atanh", "atanh_",
        "log2", "log2_", "log10", "log10_", "log1p", "log1p_", "expm1", "expm1_", "exp2", "exp2_", "sgn", "sgn_",
    ),
)
# Integer and bitwise arithmetic (masks, hashing, position bucketing): one operation per element.
per_element(
    1,
    "elementwise",
    _packets_of(
        "bitwise_and", "bitwise_and_", "bitwise_or", "bitwise_or_", "bitwise_xor", "bitwise_xor_", "bitwise_not",
        "bitwise_not_", "bitwise_left_shift", "bitwise_left_shift_", "bitwise_right_shift", "bitwise_right_shift_",
        "__lshift__", "__rshift__", "__ilshift__", "__irshift__", "remainder", "remainder_", "fmod", "fmod_",
        "floor_divide", "floor_divide_", "logical_xor", "logical_xor_",
    ),
)
per_element(2, "elementwise", _packets_of("addcmul", "addcmul_", "addcdiv", "addcdiv_", "lerp", "lerp_"))
per_element(SOFTMAX_FLOPS, "softmax", _packets_of("_softmax", "_safe_softmax", "_log_softmax"))


# --- reductions --------------------------------------------------------------------------------


def reduce_cost(call: Call) -> Cost:
    # n - 1 operations per output of a reduction over n inputs.
    return Cost(0, max(call["self"].numel() - numel(first_tensor(call.out)), 0))


register_cost_rule(_packets_of("sum", "amax", "amin", "max", "min", "prod", "argmax", "argmin"), layer_type="reduction")(reduce_cost)


def logsumexp_cost(call: Call) -> Cost:
    # log(sum(exp(x - max))) + max, as torch computes it: per output over n inputs, the max (n - 1
    # comparisons), the subtraction (n), exp (n), the sum (n - 1 adds), the log and the max added
    # back (2): 4n, 4 per input element.
    return Cost(0, 4 * call["self"].numel())


register_cost_rule(aten.logsumexp, layer_type="reduction")(logsumexp_cost)


def mean_cost(call: Call) -> Cost:
    # n - 1 adds and one division per output: n per output, the input's size in total.
    return Cost(0, call["self"].numel())


register_cost_rule(aten.mean, layer_type="reduction")(mean_cost)


def moment_cost(call: Call) -> Cost:
    # mean (1 add), centre (1 sub), square (1 mul), accumulate (1 add) per input element.
    return Cost(0, 4 * call["self"].numel())


register_cost_rule(_packets_of("var", "std", "var_mean", "std_mean"), layer_type="reduction")(moment_cost)


def norm_cost(call: Call) -> Cost:
    # square and accumulate per input element (the root per output is negligible and not counted).
    return Cost(0, 2 * call["self"].numel())


register_cost_rule(_packets_of("linalg_vector_norm", "norm"), layer_type="reduction")(norm_cost)


# --- losses --------------------------------------------------------------------------------------
# An element-wise loss is its per-element terms plus, reduced (mean or sum), one add per element.


def _reduced(call: Call) -> bool:
    return call["reduction"] != 0  # at::Reduction: 0 none, 1 mean (the schemas' default), 2 sum


def loss_cost(call: Call, per_element_flops: int) -> Cost:
    n = call["self"].numel()
    return Cost(0, per_element_flops * n + (n if _reduced(call) else 0))


def _register_loss(names: Sequence[str], per_element_flops: int) -> None:
    register_cost_rule(_packets_of(*names), "loss")(partial(loss_cost, per_element_flops=per_element_flops))


_register_loss(["mse_loss"], 2)  # subtract, square
_register_loss(["l1_loss"], 2)  # subtract, absolute value
_register_loss(["smooth_l1_loss", "huber_loss"], 5)  # subtract, abs, compare, square or subtract, scale
_register_loss(["binary_cross_entropy"], 6)  # two logs, two products, the complement, the sum
_register_loss(["binary_cross_entropy_with_logits"], 7)  # a log-sigmoid (3) and the products above


def nll_loss_cost(call: Call) -> Cost:
    # A gather per target, negated and, reduced, summed: 2 per target element (the weighting adds
    # none it cannot see in the shapes).
    targets = call["target"].numel()
    return Cost(0, targets + (targets if _reduced(call) else 0))


register_cost_rule(_packets_of("nll_loss_forward", "nll_loss2d_forward"), layer_type="loss", first_output_only=True)(nll_loss_cost)


# --- sorting, selection, searching and indexing -------------------------------------------------
# Comparisons of the textbook algorithm on the shapes alone (the data never changes them): a sort
# of k values ceil(log2 k) per value, a top-k selection a heap of k over the row, a search ceil(log2 n)
# per query, a mask or histogram one per element. Detectors' post-processing runs these.


def _log2(n: int) -> int:
    return max(math.ceil(math.log2(n)), 1) if n > 1 else 0


def _row_length(x: torch.Tensor, dim: int) -> int:
    return x.shape[dim] if x.dim() else 1


def sort_cost(call: Call) -> Cost:
    x = call["self"]
    return Cost(0, x.numel() * _log2(_row_length(x, call["dim"])))


# (msort is a composite: the dispatcher sees it as sort along dim 0)
register_cost_rule(aten.sort, layer_type="reduction")(sort_cost)


def topk_cost(call: Call) -> Cost:
    # Every value offered to a heap of the k best.
    return Cost(0, call["self"].numel() * max(_log2(call["k"]), 1))


register_cost_rule(aten.topk, layer_type="reduction")(topk_cost)


def selection_cost(call: Call) -> Cost:
    # quickselect: about one comparison per value of the row.
    return Cost(0, call["self"].numel())


register_cost_rule(_packets_of("kthvalue", "median", "nanmedian"), layer_type="reduction")(selection_cost)


def unique_cost(call: Call) -> Cost:
    # a sort of the n values, then one comparison of each with its neighbour.
    n = call["self"].numel()
    return Cost(0, n * _log2(n) + n)


register_cost_rule(_packets_of("_unique2", "unique_dim", "_unique"), layer_type="reduction")(unique_cost)


def scan_cost(call: Call) -> Cost:
    # one comparison (or bin update) per input element; the output's size is data, not cost.
    return Cost(0, call["self"].numel())


register_cost_rule(
    _packets_of("unique_consecutive", "nonzero", "nonzero_static", "argwhere", "masked_select", "histc", "bincount"),
    layer_type="reduction",
)(scan_cost)


def searchsorted_cost(call: Call) -> Cost:
    # A binary search of each value in its row of the sorted sequence.
    return Cost(0, numel(call.out) * _log2(call["sorted_sequence"].shape[-1]))


register_cost_rule(aten.searchsorted, layer_type="reduction")(searchsorted_cost)


def bucketize_cost(call: Call) -> Cost:
    # A binary search of each value among the boundaries.
    return Cost(0, numel(call.out) * _log2(call["boundaries"].numel()))


register_cost_rule(aten.bucketize, layer_type="reduction")(bucketize_cost)


def index_put_cost(call: Call) -> Cost | None:
    # A copy; with accumulate, one add per element written: the indexed region, whose size the
    # integer indices' shapes give (broadcast together, times the dimensions left unindexed). A
    # boolean mask selects as many elements as it holds True: data, which the values' own size
    # gives when they are not one broadcast value.
    if not call["accumulate"]:
        return Cost()
    x, indices = call["self"], list(call["indices"])
    if any(i is not None and i.dtype in (torch.bool, torch.uint8) for i in indices):
        values = call["values"]
        return Cost(0, values.numel()) if values.numel() > 1 else None
    selected = math.prod(torch.broadcast_shapes(*(i.shape for i in indices if i is not None)))
    return Cost(0, selected * math.prod(x.shape[d] for d in range(x.dim()) if d >= len(indices) or indices[d] is None))


register_cost_rule(_packets_of("index_put", "index_put_", "_index_put_impl_"), layer_type="data movement")(index_put_cost)


def scatter_add_cost(call: Call) -> Cost:
    # One add (or reduction step) per index entry.
    return Cost(0, call["index"].numel())


register_cost_rule(_packets_of("scatter_add", "scatter_add_", "scatter_reduce", "scatter_reduce_"), layer_type="elementwise")(scatter_add_cost)


def index_add_cost(call: Call) -> Cost:
    # One add per source element.
    return Cost(0, call["source"].numel())


register_cost_rule(_packets_of("index_add", "index_add_"), layer_type="elementwise")(index_add_cost)


per_element(0, "data movement", _packets_of("scatter", "scatter_", "index_copy", "index_copy_", "masked_scatter", "masked_scatter_", "index_fill", "index_fill_"))


# --- recurrent layers --------------------------------------------------------------------------

# Per step and hidden unit, the element-wise work of a cell after its two products, as PyTorch's
# reference cells (aten/src/ATen/native/RNN.cpp) do it, each op at its own rule's price.
LSTM_CELL_FLOPS = 4 + 3 * SIGMOID_FLOPS + 2 + 3 + 1  # sum the 4 gates, 3 sigmoids, 2 tanh, 3 multiplies, 1 add
GRU_CELL_FLOPS = 4 + 2 * SIGMOID_FLOPS + 1 + 2 + 1  # 4 adds, 2 sigmoids, 1 tanh, 2 multiplies, 1 subtraction
RNN_CELL_FLOPS = 2  # sum the two products, then tanh or ReLU


def recurrent_cost(call: Call, packet: torch._ops.OpOverloadPacket, gates: int, cell_flops: int) -> Cost:
    """Every layer and direction runs its cell once per step of every sequence (its rows).

    Each row multiplies every weight matrix once (input-hidden, hidden-hidden and an LSTM's
    projection) and adds each bias element once; the cell then works per hidden unit.
    """
    # Seen at the torch function, the call is bound here to the overload the dispatcher would
    # pick: a packed sequence's (data, batch_sizes, hx, params, ...) has its params fourth, a padded
    # batch's (input, hx, params, has_biases, ...) a flag.
    packed = isinstance(call.args[3], (list, tuple))
    named = bind(packet.data if packed else packet.input, call.args, call.kwargs)
    x, weights = named["data" if packed else "input"], named["params"]
    rows = x.numel() // x.shape[-1]  # steps x sequences, padded or packed
    hidden = weights[0].shape[0] // gates  # the first layer's input-hidden matrix: gates x hidden rows
    cells = named["num_layers"] * (2 if named["bidirectional"] else 1)
    macs = rows * sum(w.numel() for w in weights if w.dim() == 2)
    biases = rows * sum(b.numel() for b in weights if b.dim() == 1)
    return Cost(macs, 2 * macs + biases + rows * cells * hidden * cell_flops)


def _register_recurrent(name: str, gates: int, cell_flops: int) -> None:
    packet = getattr(aten, name)
    # On CPU an LSTM is one mkldnn kernel per layer, on meta matmuls and gates: costed at the call.
    register_cost_rule(packet, "recurrent", whole=True)(partial(recurrent_cost, packet=packet, gates=gates, cell_flops=cell_flops))


_register_recurrent("lstm", 4, LSTM_CELL_FLOPS)
_register_recurrent("gru", 3, GRU_CELL_FLOPS)
_register_recurrent("rnn_tanh", 1, RNN_CELL_FLOPS)
_register_recurrent("rnn_relu", 1, RNN_CELL_FLOPS)


# --- pooling -----------------------------------------------------------------------------------


def _window_counts(size: int, out: int, kernel: int, stride: int, padding: int, dilation: int) -> int:
    """Sum over output positions of the taps that fall inside the input (padding is not data)."""
    # Windows wholly inside the input hold every tap; only those at the borders need counting.
    first = -(-padding // stride)  # the first window starting at or after the input's start
    last = (size - 1 + padding - (kernel - 1) * dilation) // stride  # the last ending inside it
    lo, hi = max(first, 0), min(last, out - 1)
    interior = range(lo, hi + 1) if lo <= hi else range(0)
    total = len(interior) * kernel
    for i in (i for i in range(out) if i not in interior):
        start = i * stride - padding
        total += sum(1 for j in range(kernel) if 0 <= start + j * dilation < size)
    return total


def _adaptive_counts(size: int, out: int) -> int:
    return sum(math.ceil((i + 1) * size / out) - (i * size) // out for i in range(out))


def _tuple(value: Sequence[int] | None, n: int, default: int | None = None) -> list[int]:
    """A pool's int[n] argument as n ints: absent or [] is ``default``, one int stands for all n."""
    if value is None or len(value) == 0:
        return [default] * n
    return [value[0]] * n if len(value) == 1 else list(value)


def _pool_taps(call: Mapping[str, Any], out: torch.Tensor, dims: int, adaptive: bool) -> tuple[int, int]:
    """(taps read in total, output elements) of a pool of ``call["self"]`` over its last ``dims``
    dimensions, from the call's kernel_size, stride, padding and dilation (as the schema names them)."""
    x = call["self"]
    in_sizes, out_sizes = x.shape[-dims:], out.shape[-dims:]
    lead = out.numel() // max(math.prod(out_sizes), 1)
    taps = lead
    for d in range(dims):
        if adaptive:
            taps *= _adaptive_counts(in_sizes[d], out_sizes[d])
        else:
            kernel = _tuple(call["kernel_size"], dims)[d]
            stride = _tuple(call.get("stride"), dims, kernel)[d]  # the schemas' default [] is the kernel
            padding = _tuple(call["padding"], dims)[d]
            dilation = _tuple(call.get("dilation"), dims, 1)[d]  # average pools have none
            taps *= _window_counts(in_sizes[d], out_sizes[d], kernel, stride, padding, dilation)
    return taps, out.numel()


def pool_cost(call: Call, dims: int, adaptive: bool, is_max: bool) -> Cost:
    taps, outputs = _pool_taps(call, first_tensor(call.out), dims, adaptive)
    # max: taps - 1 comparisons per output; average: taps - 1 adds and one division.
    return Cost(0, taps - outputs if is_max else taps)


def _register_pool(names: Sequence[str], dims: int, adaptive: bool, is_max: bool) -> None:
    cost = partial(pool_cost, dims=dims, adaptive=adaptive, is_max=is_max)
    register_cost_rule(_packets_of(*names), "pooling", first_output_only=True)(cost)


for _dims in (1, 2, 3):
    _register_pool([f"max_pool{_dims}d", f"max_pool{_dims}d_with_indices"], _dims, adaptive=False, is_max=True)
    _register_pool([f"avg_pool{_dims}d"], _dims, adaptive=False, is_max=False)
    _register_pool([f"adaptive_max_pool{_dims}d"], _dims, adaptive=True, is_max=True)
    _register_pool([f"_adaptive_avg_pool{_dims}d"], _dims, adaptive=True, is_max=False)


# --- resampling --------------------------------------------------------------------------------

per_element(0, "resampling", _packets_of("upsample_nearest1d", "upsample_nearest2d", "upsample_nearest3d", "_upsample_nearest_exact2d", "_unsafe_index"))
per_element(3, "resampling", _packets_of("upsample_linear1d"))  # 2 mul + 1 add per output
per_element(7, "resampling", _packets_of("upsample_bilinear2d", "_upsample_bilinear2d_aa"))  # 4 mul + 3 add
per_element(31, "resampling", _packets_of("upsample_bicubic2d"))  # 16 mul + 15 add
per_element(15, "resampling", _packets_of("upsample_trilinear3d"))  # 8 mul + 7 add

GRID_POINT_FLOPS = 12  # per sampling point: unnormalize x, y (4), floor (2), fractions (2), corner weights (4)


def grid_sample_cost(call: Call) -> Cost | None:
    mode = call["interpolation_mode"]
    points = call["grid"].numel() // 2
    if mode == 0:  # bilinear: 4 mul + 3 add per output element
        return Cost(0, GRID_POINT_FLOPS * points + 7 * call.out.numel())
    if mode == 1:  # nearest: unnormalize and round the coordinates only
        return Cost(0, 6 * points)
    return None  # bicubic: no rule; reported as uncounted


register_cost_rule(aten.grid_sampler_2d, layer_type="resampling")(grid_sample_cost)


# --- embeddings --------------------------------------------------------------------------------


def embedding_bag_cost(call: Call) -> Cost:
    """Gather n rows of d features (no arithmetic), then reduce them into b bags.

    From shapes alone, so that the meta device, which cannot see the offsets or ``padding_idx``
    entries, counts what CPU counts: every bag is taken to hold at least one index.
    """
    # CPU training runs _embedding_bag, meta and inference _embedding_bag_forward_only: one schema.
    n = call["indices"].numel()
    bags, d = first_tensor(call.out).shape
    merges = max(n - bags, 0) * d  # n - 1 per bag: adds (sum, mean) or comparisons (max)
    mean = bags * d if call["mode"] == 1 else 0  # one division per bag and feature
    weighted = n * d if call["per_sample_weights"] is not None else 0  # one multiply per gathered element
    return Cost(0, merges + mean + weighted)


register_cost_rule(_packets_of("_embedding_bag", "_embedding_bag_forward_only"), layer_type="embedding", first_output_only=True)(embedding_bag_cost)


def one_hot_cost(call: Call) -> Cost:
    # Writing a one at each index is data movement. Costed at the call: on meta torch compares
    # every index with every class (eq against arange), on CPU it scatters into zeros.
    return Cost()


register_cost_rule(aten.one_hot, layer_type="data movement", whole=True)(one_hot_cost)


# --- backward: the gradients of a training step ----------------------------------------------
#
# Each gradient an op's output mask asks for is costed; one autograd does not ask for (a frozen
# weight, an input that needs no gradient, such as the image into the first convolution) is not.


def conv_backward_cost(call: Call) -> Cost:
    """The input gradient (a transposed convolution) and the weight gradient each take the forward's
    MACs; the bias gradient sums the output gradient over batch and positions."""
    grad_output, mask = call["grad_output"], call["output_mask"]
    forward = (call["input"], call["weight"], None, call["stride"], call["padding"], call["dilation"], call["transposed"])
    forward_macs = _torch_macs(aten.convolution, forward, {}, grad_output)
    macs = forward_macs * (int(mask[0]) + int(mask[1]))
    bias = grad_output.numel() - grad_output.shape[1] if mask[2] else 0
    return Cost(macs, 2 * macs + bias)


register_cost_rule(aten.convolution_backward, layer_type=conv_call_type)(conv_backward_cost)


# Per element of the input, as autograd's formulas compute them: x_hat = (x - mean) * rstd (2);
# sum(dy) (1) and sum(dy * x_hat) (2), which are the bias and weight gradients; with batch
# statistics the input gradient rstd * w * (dy - mean(dy) - x_hat * mean(dy * x_hat)) needs both
# sums and 4 more, with running statistics it is dy * (w * rstd) (1).
NORM_BACKWARD_X_HAT_FLOPS = 2
NORM_BACKWARD_SUM_DY_FLOPS = 1
NORM_BACKWARD_SUM_DY_X_HAT_FLOPS = 2
NORM_BACKWARD_INPUT_FLOPS = 4
NORM_BACKWARD_INPUT_RUNNING_FLOPS = 1


def norm_backward_flops(elements: int, mask: Sequence[bool], batch_statistics: bool) -> int:
    """FLOPs of a normalization's backward over ``elements`` inputs, for the gradients in ``mask``
    (input, weight, bias)."""
    grad_input, grad_weight, grad_bias = (bool(m) for m in mask)
    statistics_input = grad_input and batch_statistics
    per_element = (
        NORM_BACKWARD_X_HAT_FLOPS * (statistics_input or grad_weight)
        + NORM_BACKWARD_SUM_DY_FLOPS * (statistics_input or grad_bias)
        + NORM_BACKWARD_SUM_DY_X_HAT_FLOPS * (statistics_input or grad_weight)
        + (NORM_BACKWARD_INPUT_FLOPS if batch_statistics else NORM_BACKWARD_INPUT_RUNNING_FLOPS) * grad_input
    )
    return per_element * elements


def batch_norm_backward_cost(call: Call, training: str) -> Cost:
    # ``training``: the argument that says whether the forward used batch statistics
    return Cost(0, norm_backward_flops(call["input"].numel(), call["output_mask"], bool(call[training])))


def _register_batch_norm_backward(name: str, training: str) -> None:
    if hasattr(aten, name):
        register_cost_rule(getattr(aten, name), "normalization", first_output_only=True)(partial(batch_norm_backward_cost, training=training))


_register_batch_norm_backward("native_batch_norm_backward", training="train")
_register_batch_norm_backward("batch_norm_backward", training="update")


def layer_group_norm_backward_cost(call: Call) -> Cost:
    return Cost(0, norm_backward_flops(call["input"].numel(), call["output_mask"], batch_statistics=True))


register_cost_rule([aten.native_layer_norm_backward, aten.native_group_norm_backward], layer_type="normalization", first_output_only=True)(layer_group_norm_backward_cost)


# An activation's gradient, per element: the derivative times the incoming gradient.
per_element(1, "activation", _packets_of("threshold_backward"))  # select dy where x > 0
per_element(2, "activation", _packets_of("hardtanh_backward", "leaky_relu_backward", "hardsigmoid_backward"))  # compare (x2) or compare + scale
per_element(3, "activation", _packets_of("sigmoid_backward", "tanh_backward", "elu_backward"))  # dy * y * (1 - y); dy * (1 - y^2)
per_element(4, "activation", _packets_of("hardswish_backward"))  # compare, (2x + 3) / 6, times dy
per_element(5, "activation", _packets_of("softplus_backward"))  # sigmoid(beta x) (4), times dy
per_element(9, "activation", _packets_of("silu_backward", "mish_backward"))  # sigmoid (4), dy * s * (1 + x (1 - s)) (5)
per_element(11, "activation", _packets_of("gelu_backward"))  # Phi(x) (4), phi(x) (4), dy * (Phi + x phi) (3)
per_element(4, "softmax", _packets_of("_softmax_backward_data", "_log_softmax_backward_data"))  # y * (dy - sum(dy y)); dy - exp(y) sum(dy)
per_element(2, "elementwise", _packets_of("native_dropout_backward"))  # dy * mask * scale


def max_pool_backward_cost(call: Call) -> Cost:
    # Each output's gradient is added into the input position that won: one add per output.
    return Cost(0, call["grad_output"].numel())


register_cost_rule(_packets_of("max_pool1d_with_indices_backward", "max_pool2d_with_indices_backward", "max_pool3d_with_indices_backward",
                                "adaptive_max_pool2d_backward", "adaptive_max_pool3d_backward"), layer_type="pooling")(max_pool_backward_cost)


def avg_pool_backward_cost(call: Call, dims: int, adaptive: bool) -> Cost:
    # Each output's gradient divided by its window (1) and added into each of its taps.
    taps, outputs = _pool_taps(call, call["grad_output"], dims, adaptive)
    return Cost(0, taps + outputs)


def _register_avg_pool_backward(name: str, dims: int, adaptive: bool) -> None:
    register_cost_rule(_packets_of(name), "pooling")(partial(avg_pool_backward_cost, dims=dims, adaptive=adaptive))


for _dims in (2, 3):
    _register_avg_pool_backward(f"avg_pool{_dims}d_backward", _dims, adaptive=False)
    _register_avg_pool_backward(f"_adaptive_avg_pool{_dims}d_backward", _dims, adaptive=True)


def embedding_backward_cost(call: Call) -> Cost:
    # Each looked-up row's gradient is added into its row of the weight gradient.
    return Cost(0, call["grad_output"].numel())


register_cost_rule(_packets_of("embedding_dense_backward"), layer_type="embedding")(embedding_backward_cost)


def upsample_nearest_backward_cost(call: Call) -> Cost:
    return Cost(0, call["grad_output"].numel())  # one add per output gradient into its source


register_cost_rule(_packets_of("upsample_nearest1d_backward", "upsample_nearest2d_backward", "upsample_nearest3d_backward",
                                "_upsample_nearest_exact2d_backward"), layer_type="resampling")(upsample_nearest_backward_cost)


def upsample_bilinear_backward_cost(call: Call) -> Cost:
    return Cost(0, 8 * call["grad_output"].numel())  # per output gradient: 4 weighted (mul) adds into its corners


register_cost_rule(_packets_of("upsample_bilinear2d_backward"), layer_type="resampling")(upsample_bilinear_backward_cost)


# A loss's gradient, per element of its input: mse 2 (the difference, times the scaled incoming
# gradient), smooth L1 / Huber 4 (difference, compare, select or clamp, scale), binary cross-entropy
# 5 (difference, complement, product, quotient, scale); NLL writes one value per target.
per_element(2, "loss", _packets_of("mse_loss_backward"))
per_element(4, "loss", _packets_of("smooth_l1_loss_backward", "huber_loss_backward"))
per_element(5, "loss", _packets_of("binary_cross_entropy_backward"))


def nll_loss_backward_cost(call: Call) -> Cost:
    # -grad * weight / total_weight written at each target's class (the zeros around it are a fill).
    return Cost(0, call["target"].numel())


register_cost_rule(_packets_of("nll_loss_backward", "nll_loss2d_backward"), layer_type="loss")(nll_loss_backward_cost)


# --- data movement: no arithmetic --------------------------------------------------------------

DATA_MOVEMENT = _packets_of(
    "view", "_unsafe_view", "reshape", "_reshape_alias", "t", "transpose", "permute", "expand", "squeeze",
    "unsqueeze", "slice", "select", "split", "split_with_sizes", "unbind", "chunk", "narrow", "cat", "stack",
    "clone", "contiguous", "copy", "copy_", "_to_copy", "detach", "alias", "as_strided", "empty", "empty_like",
    "empty_strided", "zeros", "zeros_like", "ones", "ones_like", "full", "full_like", "fill", "fill_", "zero_",
    "arange", "repeat", "repeat_interleave", "index_select", "gather", "index", "constant_pad_nd", "masked_fill",
    "masked_fill_", "where", "lift_fresh", "lift_fresh_copy", "new_empty", "new_zeros", "new_ones", "new_full",
    "scalar_tensor", "unfold", "roll", "flip", "native_dropout", "randn", "rand", "randint", "normal_",
    "uniform_", "bernoulli_", "_local_scalar_dense", "tril", "triu", "diagonal", "view_as_real", "view_as_complex",
    "embedding", "pixel_shuffle", "pixel_unshuffle", "im2col", "col2im",
    # in-place views (recurrent layers, Swin's pooling), splits, padding, shuffles, lazy conjugation
    "as_strided_", "transpose_", "t_", "squeeze_", "unsqueeze_", "swapdims_", "swapaxes_", "detach_",
    "unsafe_split", "unsafe_split_with_sizes", "unsafe_chunk", "reflection_pad1d", "reflection_pad2d",
    "reflection_pad3d", "replication_pad1d", "replication_pad2d", "replication_pad3d", "_pad_circular", "pad",
    "channel_shuffle", "native_channel_shuffle", "_conj", "conj", "resolve_conj", "resolve_neg", "_neg_view",
    "_pack_padded_sequence", "_pad_packed_sequence",
    # a training step's gradient plumbing: new buffers, gradients scattered back into a slice's base
    "new_empty_strided", "slice_backward", "select_backward", "slice_scatter", "select_scatter",
    "as_strided_scatter", "diagonal_backward", "unfold_backward",
)
per_element(0, "data movement", DATA_MOVEMENT)


# --- torchvision's operators -------------------------------------------------------------------


def roi_align_cost(call: Call) -> Cost | None:
    """Bilinear samples averaged per bin, as torchvision's kernel (csrc/ops/cpu/roi_align_kernel.cpp).

    Each box's bins hold a grid of sampling points: ``sampling_ratio`` squared, or when it is not
    positive ceil(box height / pooled height) x ceil(box width / pooled width), which depends on the
    boxes: the meta device cannot see them, and reports the op as uncounted.
    """
    x, rois, ratio = call["input"], call["rois"], call["sampling_ratio"]
    ph, pw = call["pooled_height"], call["pooled_width"]
    if ratio > 0:
        grid = rois.shape[0] * ratio * ratio
    elif rois.device.type == "meta":
        return None
    else:
        # (torchvision shifts both corners by half a pixel when aligned, which a size does not see)
        box = rois[:, 1:] * call["spatial_scale"]  # (batch index, x1, y1, x2, y2) per box
        width, height = box[:, 2] - box[:, 0], box[:, 3] - box[:, 1]
        if not call["aligned"]:  # a box is at least one pixel
            width, height = width.clamp(min=1.0), height.clamp(min=1.0)
        rows, cols = torch.ceil(height / ph).clamp(min=0), torch.ceil(width / pw).clamp(min=0)
        grid = int((rows * cols).sum().item())
    points = grid * ph * pw
    # Per point its coordinates and corner weights, shared by the channels (as grid_sample); per
    # channel 7 for the bilinear sample and 1 towards the bin's average (its adds and division).
    return Cost(0, GRID_POINT_FLOPS * points + (7 + 1) * x.shape[1] * points)


def rules_with(overrides: Mapping[Any, CostFunction | CostRule | None]) -> dict[Any, CostRule]:
    """The registry with ``overrides`` applied, for one profile, the global registry untouched (as
    FlopCounterMode's ``custom_mapping`` and fvcore's ``set_op_handle``).

    A key is an op packet (``torch.ops.aten.gelu``) or one of its overloads; a value is a cost
    function ``fn(call) -> Cost | None`` or ``fn(args, kwargs, out)`` (keeping the op's layer type,
    else "other"), a :class:`CostRule`, or None to leave the op without a rule (reported as uncounted).
    """
    register_library_rules()
    rules = dict(COST_RULES)
    for op, rule in overrides.items():
        packet = getattr(op, "overloadpacket", op)
        if not isinstance(packet, torch._ops.OpOverloadPacket):
            raise TypeError(f"a rule override is keyed by a torch.ops op, got {op!r}")
        if rule is None:
            rules.pop(packet, None)
        elif isinstance(rule, CostRule):
            rules[packet] = rule
        elif callable(rule):
            known = COST_RULES.get(packet)
            layer_type, first_output_only = (known.layer_type, known.first_output_only) if known else ("other", False)
            rules[packet] = make_rule(rule, layer_type, first_output_only=first_output_only)
        else:
            raise TypeError(f"the rule override for {packet} must be a cost function, a CostRule or None, got {rule!r}")
    return rules


def register_library_rules() -> None:
    """Register the rules for an optional library's operators once that library is imported.

    A model that runs torchvision's operators has imported torchvision; importing it here would
    double archprof's start-up for everyone else, so the tracer calls this before each trace.
    """
    if "torchvision" not in sys.modules:
        return
    try:
        roi_align = torch.ops.torchvision.roi_align
    except (AttributeError, RuntimeError):  # a torchvision built for another torch has no operators
        return
    if roi_align not in COST_RULES:
        register_cost_rule(roi_align, layer_type="pooling")(roi_align_cost)
