"""archprof beside fvcore, thop and torch's FlopCounterMode, with every difference explained.

Each peer is run on a real CPU forward at batch 1 (none of them traces on the meta device) and read
per layer. Beside it, archprof predicts what that peer *should* report from archprof's own trace of
the same forward and the peer's known conventions (one rule per op: what the peer charges for it and
why). Where a peer differs from archprof, the difference is the sum of those rules' departures,
each named ("BN at 4 per element", "no bias", "activation not counted", ...). Where a peer's actual
number differs from its prediction, no known convention explains it and the row is flagged.

fvcore and thop are imported here only, and only when a cross-check runs.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import warnings
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from archprof.analysis.profile import ROOT, Profile, ProfileError, profile
from archprof.tracing.tracer import OpEvent

MAX_INPUT_ELEMENTS = 2**28  # 1 GiB of float32: the peers each run a real forward on it

MATMUL_OPS = {"aten.mm", "aten.bmm", "aten.addmm", "aten.baddbmm", "aten.mv", "aten.dot"}
CONV_OPS = {"aten.convolution", "aten._convolution"}
BN_OPS = {"aten.native_batch_norm", "aten._native_batch_norm_legit_no_training", "aten._native_batch_norm_legit",
          "aten.cudnn_batch_norm", "aten._batch_norm_no_update", "aten._batch_norm_with_update"}
NORM_OPS = {"aten.native_group_norm", "aten.native_layer_norm"}
FUSED_ATTENTION = {
    "aten._scaled_dot_product_flash_attention", "aten._scaled_dot_product_efficient_attention",
    "aten._scaled_dot_product_cudnn_attention", "aten._scaled_dot_product_flash_attention_for_cpu",
}
NOT_COUNTED = {
    "activation": "activation not counted",
    "elementwise": "element-wise op (residual add, scaling) not counted",
    "normalization": "normalization not counted",
    "pooling": "pooling not counted",
    "softmax": "softmax not counted",
    "reduction": "reduction not counted",
    "resampling": "resampling not counted",
}

# A peer's rule: (op, the modules around it, innermost first, the op's layer type) -> (amount in
# the peer's unit, why).
Rule = Callable[[OpEvent, list[nn.Module], str], tuple[float, str]]


def not_counted(op_type: str, what: str = "") -> tuple[float, str]:
    return 0.0, what or NOT_COUNTED.get(op_type, f"{op_type} not counted")


def has_affine(chain: list[nn.Module]) -> bool:
    module = chain[0] if chain else None
    return bool(getattr(module, "affine", getattr(module, "elementwise_affine", True)))


def fvcore_rule(op: OpEvent, chain: list[nn.Module], op_type: str) -> tuple[float, str]:
    """fvcore's default handles (fvcore/nn/flop_count.py), counting 'flops' that are MACs."""
    if op.op in CONV_OPS:
        return op.macs, "conv: multiply-adds, no bias"
    if op.op in MATMUL_OPS:
        return op.macs, "matmul / linear: multiply-adds, no bias"
    if op.op in BN_OPS:
        return op.activations * (2 if has_affine(chain) else 1), "BN at 2 per element (1 without affine)"
    if op.op in NORM_OPS:
        return op.activations * (5 if has_affine(chain) else 4), "GN / LN at 5 per element (4 without affine)"
    if op.op in ("aten.mean", "aten._adaptive_avg_pool2d") and chain and isinstance(chain[0], nn.AdaptiveAvgPool2d):
        return op.flops, "adaptive average pool at 1 per input element"
    if op.op == "aten.upsample_bilinear2d":
        return 4 * op.activations, "bilinear upsampling at 4 per output element"
    if op.op == "aten.upsample_nearest2d":
        return op.activations, "nearest upsampling at 1 per output element"
    if op.op == "aten.grid_sampler_2d":
        return 4 * op.activations, "grid sampling at 4 per output element"
    if op.op in FUSED_ATTENTION:
        return not_counted(op_type, "attention not counted")
    return not_counted(op_type)


def flop_counter_rule(op: OpEvent, chain: list[nn.Module], op_type: str) -> tuple[float, str]:
    """torch.utils.flop_counter: 2 FLOPs per MAC of conv, matmul and GPU attention; nothing else."""
    if op.op in CONV_OPS or op.op in MATMUL_OPS - {"aten.mv", "aten.dot"}:
        return 2 * op.macs, "FLOPs = 2 x MACs of conv / matmul, no bias"
    if op.op in FUSED_ATTENTION - {"aten._scaled_dot_product_flash_attention_for_cpu"}:
        return 2 * op.macs, "FLOPs = 2 x MACs of attention, no softmax"
    if op.op == "aten._scaled_dot_product_flash_attention_for_cpu":
        return not_counted(op_type, "CPU attention kernel not counted (pytorch #195460)")
    return not_counted(op_type)


def _thop_module_rule(chain: list[nn.Module]) -> nn.Module | None:
    """The innermost module that thop counts with a non-zero hook (its own rule table)."""
    counted = (nn.modules.conv._ConvNd, nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm, nn.Linear,
               nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d, nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d,
               nn.AdaptiveAvgPool3d, nn.Upsample, nn.Softmax, nn.LogSoftmax, nn.PReLU, nn.MultiheadAttention)
    return next((m for m in chain if isinstance(m, counted)), None)


THOP_UPSAMPLE = {"nearest": 0, "nearest-exact": 0, "linear": 5, "bilinear": 11, "bicubic": 259, "trilinear": 31}


def thop_rule(op: OpEvent, chain: list[nn.Module], op_type: str) -> tuple[float, str]:
    """thop (ultralytics-thop 2.x): module forward hooks, plus matmul-like functions run outside them."""
    owner = _thop_module_rule(chain)
    if owner is None:
        if op.op in MATMUL_OPS or op.op in FUSED_ATTENTION:
            return op.macs, "functional matmul counted, no bias"
        if op.macs:
            return not_counted(op_type, "functional op invisible to module hooks")
        return not_counted(op_type)
    if isinstance(owner, (nn.modules.conv._ConvNd, nn.Linear)):
        return (op.macs, "conv / linear hook: multiply-adds, no bias") if op.macs else not_counted(op_type)
    if isinstance(owner, (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm)):
        if op.op in BN_OPS | NORM_OPS:
            return op.activations * (4 if has_affine([owner]) else 2), "normalization at 4 per element (2 without affine)"
        return not_counted(op_type)
    if isinstance(owner, (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d)):
        return op.flops + op.activations, "average pool at 1 per input plus 1 per output"
    if isinstance(owner, nn.PReLU):
        return op.activations, "PReLU at 1 per element"
    if isinstance(owner, nn.Upsample):
        return THOP_UPSAMPLE.get(owner.mode, 0) * op.activations, f"{owner.mode} upsampling at {THOP_UPSAMPLE.get(owner.mode, 0)} per output"
    return op.macs, "module hook"


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
    archprof: dict[str, int]  # per layer, in the common unit
    peers: list[PeerReport]
    uncounted: dict[str, int] = field(default_factory=dict)  # ops archprof itself has no rule for

    @property
    def archprof_total(self) -> int:
        return sum(self.archprof.values())

    def layers(self) -> list[str]:
        names = list(self.archprof)
        for peer in self.peers:
            names += [n for n in peer.actual if n not in names]
        return names

    def unexplained(self, peer: PeerReport, layer: str | None = None) -> float:
        """Actual minus predicted, in the common unit: what no known convention accounts for."""
        if peer.error is not None:
            return 0.0
        if layer is None:
            return (peer.total - sum(peer.predicted.values())) * peer.factor(self.unit)
        return (peer.actual.get(layer, 0.0) - peer.predicted.get(layer, 0.0)) * peer.factor(self.unit)


def _own_counts(cumulative: dict[str, float], total: float) -> dict[str, float]:
    """Per-module counts that include submodules -> each module's own (the innermost charge)."""
    own = {}
    paths = set(cumulative) | {""}
    for path in paths:
        value = total if path == "" else cumulative[path]
        children = [p for p in paths if p and p != path and p.rpartition(".")[0] == path]
        own[path or ROOT] = value - sum(cumulative[c] for c in children)
    return {k: v for k, v in own.items() if v}


def run_fvcore(model: nn.Module, x: torch.Tensor) -> tuple[float, dict[str, float]]:
    from fvcore.nn import FlopCountAnalysis

    analysis = FlopCountAnalysis(model, x)
    analysis.unsupported_ops_warnings(False)
    analysis.uncalled_modules_warnings(False)
    analysis.tracer_warnings("none")
    by_module = {k: float(v) for k, v in analysis.by_module().items() if k}
    total = float(analysis.total())
    return total, _own_counts(by_module, total)


def run_thop(model: nn.Module, x: torch.Tensor) -> tuple[float, dict[str, float]]:
    import thop

    total, _, tree = thop.profile(model, inputs=(x,), verbose=False, ret_layer_info=True)
    cumulative: dict[str, float] = {}

    def walk(prefix: str, node: dict) -> None:
        for name, (ops, _params, children) in node.items():
            path = f"{prefix}.{name}" if prefix else name
            cumulative[path] = float(ops)
            walk(path, children)

    walk("", tree)
    # Functional products counted outside every module land in thop's total only: the root's own.
    return float(total), _own_counts(cumulative, float(total))


def run_flop_counter(model: nn.Module, x: torch.Tensor) -> tuple[float, dict[str, float]]:
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        model(x)
    root = type(model).__name__
    cumulative = {}
    for fqn, counts in counter.get_flop_counts().items():
        if fqn in ("Global", root):
            continue
        cumulative[fqn.removeprefix(root + ".")] = float(sum(counts.values()))
    return float(counter.get_total_flops()), _own_counts(cumulative, float(counter.get_total_flops()))


PEERS: list[tuple[str, str, Callable[[nn.Module, torch.Tensor], tuple[float, dict[str, float]]], Rule]] = [
    ("fvcore", "MACs", run_fvcore, fvcore_rule),  # fvcore labels them "flops"; they are multiply-adds
    ("thop", "MACs", run_thop, thop_rule),
    ("FlopCounterMode", "FLOPs", run_flop_counter, flop_counter_rule),
]


def _chains(model: nn.Module) -> Callable[[str], list[nn.Module]]:
    by_path = dict(model.named_modules())

    def chain(path: str) -> list[nn.Module]:
        parts = path.split(".") if path else []
        return [by_path[".".join(parts[:i])] for i in range(len(parts), -1, -1)]

    return chain


def crosscheck(model: nn.Module, input_shape: tuple[int, ...], unit: str = "macs", name: str | None = None) -> Crosscheck:
    """Run archprof and every peer on one real CPU forward of ``model`` at ``input_shape``."""
    if unit not in ("macs", "flops"):
        raise ValueError(f"unit must be macs or flops, got {unit!r}")
    elements = math.prod(input_shape)
    if elements > MAX_INPUT_ELEMENTS:
        raise ProfileError(f"crosscheck runs real CPU forwards: an input of {elements:,} elements is too large "
                           f"(at most {MAX_INPUT_ELEMENTS:,})")
    model.eval()
    x = torch.randn(input_shape)  # one input for every tool, so data-dependent paths agree
    ours: Profile = profile(model, inputs=(x,), device="cpu", name=name)
    chain = _chains(model)
    layer_of = {op.module: (op.module or ROOT) for op in ours.ops}
    archprof_layers: dict[str, int] = defaultdict(int)
    for op in ours.ops:
        archprof_layers[layer_of[op.module]] += op.macs if unit == "macs" else op.flops
    peers = []
    for peer_name, peer_unit, run, rule in PEERS:
        report = PeerReport(peer_name, peer_unit)
        try:
            with torch.no_grad(), warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
                    contextlib.redirect_stderr(io.StringIO()), _quiet_logging():
                warnings.simplefilter("ignore")
                report.total, report.actual = run(model, x)
        except Exception as err:  # a peer that fails is shown as failed, with its error
            lines = str(err).strip().splitlines()
            report.error = f"{type(err).__name__}: {lines[0] if lines else ''}"
            peers.append(report)
            continue
        factor = report.factor(unit)
        predicted: dict[str, float] = defaultdict(float)
        explained: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        for op, op_type in zip(ours.ops, ours.op_types, strict=True):
            amount, why = rule(op, chain(op.module), op_type)
            layer = layer_of[op.module]
            predicted[layer] += amount
            ours_value = op.macs if unit == "macs" else op.flops
            difference = amount * factor - ours_value
            if difference:
                explained[layer][why] += difference
        report.predicted = dict(predicted)
        report.explained = {k: dict(v) for k, v in explained.items()}
        peers.append(report)
    return Crosscheck(ours.model, unit, dict(archprof_layers), peers, ours.uncounted)


@contextlib.contextmanager
def _quiet_logging():
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(previous)
