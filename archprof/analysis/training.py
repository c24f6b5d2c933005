"""A training step's memory: weights, gradients, optimizer state and activations, at a precision."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from archprof.errors import ArchprofValueError

# What a count assumes the model runs as: an eval-mode forward, or a training step (the forward in
# training mode, a scalar loss, the backward pass).
MODES = ("inference", "train")
# Copies of the trainable parameters an optimizer keeps: momentum keeps one velocity, Adam(W) the
# first and second moments.
OPTIMIZER_STATES = {"sgd": 0, "momentum": 1, "adam": 2, "adamw": 2}


@dataclass(frozen=True)
class Precision:
    """Bytes per element of each kind of tensor a training step holds."""

    activation: int
    weight: int
    gradient: int
    optimizer_state: int


# fp32: everything in 4 bytes. bf16 / fp16: the model cast to 16 bits, its gradients and optimizer
# state too. amp (mixed precision, autocast): 16-bit activations, fp32 weights, gradients and state.
PRECISIONS = {
    "fp32": Precision(4, 4, 4, 4),
    "bf16": Precision(2, 2, 2, 2),
    "fp16": Precision(2, 2, 2, 2),
    "amp": Precision(2, 4, 4, 4),
}


@dataclass(frozen=True)
class TrainingMemory:
    """What one training step must hold, in bytes.

    ``saved_activations`` are the tensors the forward saves for backward (seen through autograd's
    saved-tensor hooks); ``peak_activations`` is the most that activations and their gradients hold
    at once over the forward and backward together (the parameters' gradients counted apart).
    """

    optimizer: str
    precision: str
    weights: int
    gradients: int
    optimizer_state: int
    saved_activations: int
    peak_activations: int

    @property
    def total(self) -> int:
        """Weights, gradients and optimizer state held throughout, plus the activations' peak."""
        return self.weights + self.gradients + self.optimizer_state + self.peak_activations

    def rows(self) -> list[tuple[str, int]]:
        """(what, bytes) in the order a table lists them."""
        return [
            ("weights", self.weights),
            ("gradients", self.gradients),
            (f"optimizer state ({self.optimizer})", self.optimizer_state),
            ("saved for backward", self.saved_activations),
            ("peak activations (forward + backward)", self.peak_activations),
            ("training step total", self.total),
        ]


def check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ArchprofValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")


def check_training_options(optimizer: str, precision: str) -> None:
    if optimizer not in OPTIMIZER_STATES:
        raise ArchprofValueError(f"optimizer must be one of {', '.join(OPTIMIZER_STATES)}, got {optimizer!r}")
    if precision not in PRECISIONS:
        raise ArchprofValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")


def training_memory(
    optimizer: str, precision: str, params: int, trainable: int, saved: int, peak: int
) -> TrainingMemory:
    """The memory of a step that trains ``trainable`` of ``params`` parameters (counts of elements);
    ``saved`` and ``peak`` are activation bytes, already at the precision's activation size."""
    bytes_ = PRECISIONS[precision]
    return TrainingMemory(
        optimizer=optimizer,
        precision=precision,
        weights=params * bytes_.weight,
        gradients=trainable * bytes_.gradient,
        optimizer_state=OPTIMIZER_STATES[optimizer] * trainable * bytes_.optimizer_state,
        saved_activations=saved,
        peak_activations=peak,
    )


# The rule of thumb that calflops and DeepSpeed apply: a backward pass costs twice the forward.
RULE_OF_THUMB = 2


@dataclass(frozen=True)
class BackwardRatio:
    """One group of a training step against the rule of thumb "backward = 2 x forward"."""

    name: str
    forward: int  # the forward's count (MACs or FLOPs, as asked)
    backward: int

    @property
    def ratio(self) -> float | None:
        """backward / forward; None where the group has no forward cost."""
        return self.backward / self.forward if self.forward else None

    @property
    def rule_error(self) -> int:
        """How far the rule of thumb is off: 2 x forward minus the traced backward (positive: it over-counts)."""
        return RULE_OF_THUMB * self.forward - self.backward


def backward_ratios(rows: list, unit: str = "flops") -> list[BackwardRatio]:
    """Per row of a training profile's grouping (``Profile.group(by)``, or its ``totals``), its
    forward and backward ``unit`` ("macs" or "flops") beside the rule of thumb."""
    if unit not in ("macs", "flops"):
        raise ArchprofValueError(f"unit must be 'macs' or 'flops', got {unit!r}")
    return [
        BackwardRatio(getattr(r, "name", "total"), getattr(r, unit) - getattr(r, f"backward_{unit}"), getattr(r, f"backward_{unit}"))
        for r in rows
    ]


# Layer types whose backward has no arithmetic: an add's gradient passes to both operands, a sum's is broadcast.
PASS_THROUGH = ("elementwise", "loss", "data movement")
FIRST_LAYER = "first layer"  # a group name backward_reason knows: the layer whose input is the model's input


def backward_reason(name: str, row: Any, ratio: BackwardRatio) -> str:
    """Why a group's backward departs from twice its forward, read from its counts."""
    from archprof.tracing.rules import AFFINE_FLOPS, NORM_STATISTICS_FLOPS, norm_backward_flops

    if name.startswith(FIRST_LAYER):
        return ("no gradient: frozen" if not ratio.backward else "weight gradient only: the model's input needs no gradient")
    if not ratio.backward:
        if name in PASS_THROUGH:
            return "its gradient passes on unchanged or broadcast (an add's, a sum's): no arithmetic"
        return "no gradient: frozen, or nothing before it trains"
    if row.backward_macs:
        if row.backward_macs == RULE_OF_THUMB * (row.macs - row.backward_macs):
            return "weight and input gradients, each the forward's MACs"
        return "some layers compute no input gradient (the first layer, or those after frozen layers)"
    if name == "normalization":
        training = norm_backward_flops(1, (True, True, True), True)
        forward = NORM_STATISTICS_FLOPS + AFFINE_FLOPS
        if ratio.ratio is not None and abs(ratio.ratio - training / forward) < 0.01:
            return f"batch statistics: {training} FLOPs per element backward, {forward} forward"
        return "frozen batch norm (a fixed scale and shift): the input gradient only, where anything before it trains"
    if name == "pooling":
        return ("max pool: one add per output into the input that won (taps - 1 comparisons forward); "
                "average pool: each output's gradient spread over its taps")
    if name == "activation":
        return "the derivative costs what the function does per element (a select for ReLU, two compares for ReLU6)"
    return ""
