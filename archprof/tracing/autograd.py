"""The backward half of a traced training step: which layer owns each autograd node, and what the
forward saves for it.

The forward runs with gradients on. Each autograd node is claimed, as the call that created it
returns, by the module whose forward made that call (the innermost one running, as for the forward's
ops), so every backward op is charged to the layer whose forward created its node: a convolution's
``convolution_backward`` to that convolution, a residual ``add``'s gradient to its block. Ops the
autograd engine runs between nodes (summing the gradients of a tensor used twice) go to the node
that ran last. Tensors the forward saves for backward are seen through
``torch.autograd.graph.saved_tensors_hooks``: measured, not estimated.
"""

from __future__ import annotations

import functools
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import torch
from torch.overrides import TorchFunctionMode

from archprof.errors import ArchprofError

if TYPE_CHECKING:
    from archprof.tracing.tracer import Tracer


class TrainingError(ArchprofError):
    """A training step cannot be traced: no loss to differentiate (one readable line)."""


class _Claims(TorchFunctionMode):
    """Claims the autograd nodes each torch function call creates for the module running it."""

    def __init__(self, step: TrainingStep) -> None:
        super().__init__()
        self.step = step

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        self.step.claim(out)
        return out


class TrainingStep:
    """The autograd bookkeeping of one traced training step of ``tracer``'s model."""

    def __init__(self, tracer: Tracer) -> None:
        self.tracer = tracer
        self.owners: dict[Any, str] = {}  # autograd node -> path of the module that created it
        self.saved_bytes: dict[str, int] = {}  # module path -> bytes the forward saved for backward there
        self._saved: set[int] = set()  # storages already saved (a tensor saved twice is kept once)
        self.weight_grads: set[int] = set()  # storages of the parameters' gradients

    def forward_modes(self) -> list[Any]:
        """The context managers the forward runs under (entered in order)."""
        return [torch.enable_grad(), _Claims(self), torch.autograd.graph.saved_tensors_hooks(self._pack, _unpack)]

    def claim(self, value: Any) -> None:
        """Give the nodes behind ``value``'s tensors, and any unclaimed node before them, to the
        module running now."""
        from archprof.tracing.tracer import tensors_in

        path = self.tracer.current_module()
        pending = [t.grad_fn for t in tensors_in(value) if t.grad_fn is not None]
        while pending:
            node = pending.pop()
            if node is None or node in self.owners:
                continue
            self.owners[node] = path
            pending.extend(parent for parent, _ in node.next_functions)

    def _pack(self, t: torch.Tensor) -> torch.Tensor:
        from archprof.tracing.tracer import storage_key

        key = storage_key(t)
        if key not in self._saved and key not in self.tracer.weights:
            self._saved.add(key)
            path = self.tracer.current_module()
            self.saved_bytes[path] = self.saved_bytes.get(path, 0) + self.tracer.storage_bytes(t)
        return t

    def backward(self, out: Any, parameters: list[torch.Tensor]) -> None:
        """A scalar loss on ``out``, then its backward pass, each op charged to its node's owner."""
        from archprof.tracing.tracer import storage_key

        events = self.tracer.trace.events
        start = len(events)
        loss = scalar_loss(out)
        # The loss is the step's, not a layer's: its ops are charged to the model as type "loss".
        events[start:] = [replace(e, layer_type="loss") for e in events[start:]]
        self.claim(loss)
        self.tracer.phase = "backward"
        for node, path in self.owners.items():
            node.register_prehook(functools.partial(self._enter_node, path))
        torch.autograd.backward(loss)
        self.weight_grads = {storage_key(p.grad) for p in parameters if p.grad is not None}

    def _enter_node(self, path: str, grad_outputs: Any) -> None:
        self.tracer.stack[:] = [path]


def _unpack(t: torch.Tensor) -> torch.Tensor:
    return t


def scalar_loss(out: Any) -> torch.Tensor:
    """The loss a training step differentiates: the output's own scalar ``loss`` where it has one (a
    Hugging Face model given labels), else the sum of every floating output that needs a gradient."""
    from archprof.tracing.tracer import tensors_in

    own = out.get("loss") if isinstance(out, dict) else getattr(out, "loss", None)
    if isinstance(own, torch.Tensor) and own.numel() == 1 and own.requires_grad:
        return own.sum()
    floating = [t for t in tensors_in(out) if t.is_floating_point() or t.is_complex()]
    if not floating:
        raise TrainingError("mode train: the model's output has no floating tensor to put a loss on")
    trained = [t for t in floating if t.requires_grad]
    if not trained:
        raise TrainingError("mode train: no output depends on a trainable parameter (are all parameters frozen?)")
    loss = trained[0].sum()
    for t in trained[1:]:
        loss = loss + t.sum()
    return loss
