"""Leave the user's model as it was found, whatever a forward pass writes into it.

A forward may cache tensors in plain attributes (torchvision's anchor generators do), append to
lists, add attributes, swap a lazy module's class, or flip training flags. A :class:`ModuleSnapshot`
taken before a forward attempt puts every module's attributes, its parameter, buffer and child
tables, and the contents of the lists, dicts and sets it holds back as they were, on success and
on failure, along with the helper objects a module holds (their attributes) and the values of
plain tensor attributes written in place. Parameters and buffers are not copied: the tracer never
runs the user's own weights through a forward that could write to them (it swaps in meta tensors or
copies).
"""

from __future__ import annotations

import contextlib
import functools
import types
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

_CONTAINERS = (list, dict, set)
_ATOMS = {bool, int, float, str, type(None), torch.dtype, torch.device, torch.Size}
# Not copied: atoms, and tuples (a layer's kernel size, its padding), which are not traversed either.
_KEPT_AS_THEY_ARE = frozenset({*_ATOMS, tuple})
# Every module's own tables, copied one level deep (their values are modules, weights and names).
_TABLES = frozenset({"_parameters", "_buffers", "_modules", "_non_persistent_buffers_set"})
_MAX_DEPTH = 4  # nested containers deeper than this are not module state worth a copy


class ModuleSnapshot:
    def __init__(self, model: nn.Module) -> None:
        self._modules: list[tuple[nn.Module, type, dict[str, Any]]] = []
        self._containers: list[tuple[Any, Any]] = []
        self._objects: list[tuple[Any, dict[str, Any]]] = []
        self._tensors: list[tuple[torch.Tensor, int, torch.Tensor]] = []
        self._empty: list[dict] = []  # tables empty before the forward: emptied again after it
        self._model = model
        self._weights: set[int] | None = None  # ids of the parameters and buffers, once a tensor attribute is seen
        seen: set[int] = set()
        for module in model.modules():
            attributes = module.__dict__.copy()
            self._modules.append((module, type(module), attributes))
            for key, value in attributes.items():
                kind = type(value)
                if kind in _KEPT_AS_THEY_ARE:  # most of a module's attributes: flags, sizes, names
                    continue
                if (kind is dict or kind is OrderedDict) and not value:  # an empty table (hooks, caches)
                    self._empty.append(value)  # one held twice is emptied twice
                elif key in _TABLES:
                    self._save_container_only(value, seen)
                else:
                    self._save(value, seen, 0)

    def _is_weight(self, t: torch.Tensor) -> bool:
        if self._weights is None:
            self._weights = {id(w) for m in self._model.modules() for w in [*m._parameters.values(), *m._buffers.values()]}
        return id(t) in self._weights

    def _save_container_only(self, table: dict | set, seen: set[int]) -> None:
        if id(table) not in seen:
            seen.add(id(table))
            self._containers.append((table, table.copy()))

    def _save(self, value: Any, seen: set[int], depth: int) -> None:
        if id(value) in seen or depth > _MAX_DEPTH or isinstance(value, nn.Module):
            return
        if isinstance(value, torch.Tensor):
            # a plain tensor attribute (an anchor cache, a step counter) that a forward may write in place
            if value.device.type != "meta" and not value.is_inference() and not self._is_weight(value):
                seen.add(id(value))
                self._tensors.append((value, value._version, value.detach().clone()))
            return
        if isinstance(value, _CONTAINERS):
            seen.add(id(value))
            if isinstance(value, list):
                self._containers.append((value, list(value)))
                items = list(value)
            elif isinstance(value, dict):
                self._containers.append((value, dict(value)))
                items = list(value.values())
            else:
                self._containers.append((value, set(value)))
                items = []
        elif _is_plain_object(value):  # a helper object the module holds (a cache, a state namespace)
            seen.add(id(value))
            self._objects.append((value, dict(vars(value))))
            items = list(vars(value).values())
        else:
            return
        for item in items:
            self._save(item, seen, depth + 1)

    def restore(self) -> None:
        for table in self._empty:
            if table:
                table.clear()
        for container, saved in self._containers:
            if isinstance(container, list):
                container[:] = saved
            else:
                container.clear()
                container.update(saved)
        for obj, attributes in self._objects:
            vars(obj).clear()
            vars(obj).update(attributes)
        with torch.no_grad():
            for tensor, version, saved in self._tensors:
                if tensor._version != version:
                    tensor.copy_(saved)
        for module, cls, attributes in self._modules:
            if type(module) is not cls:  # a lazy module becomes its eager class on its first forward
                module.__class__ = cls
            module.__dict__.clear()
            module.__dict__.update(attributes)


def _is_plain_object(value: Any) -> bool:
    """An instance of a user class holding state in its ``__dict__``: not a class, function or
    Python module, and not a torch object (whose state is not the model's to keep)."""
    if isinstance(value, (type, types.ModuleType, types.FunctionType, types.MethodType, functools.partial)):
        return False
    if not hasattr(value, "__dict__") or not isinstance(getattr(value, "__dict__", None), dict):
        return False
    return not type(value).__module__.startswith("torch")


def _version(t: torch.Tensor) -> int | None:
    try:
        return t._version
    except RuntimeError:  # an inference tensor: no version counter, and no in-place write outside inference mode
        return None


@contextlib.contextmanager
def left_as_found(model: nn.Module) -> Iterator[None]:
    """A :class:`ModuleSnapshot` (attributes, training flags, hooks), plus the values of the
    parameters, their gradients, the buffers and tensor attributes, put back on exit: for code that
    runs the user's own tensors through real forwards (the cross-check's peers, latency's timers),
    which may update them in place (a step counter, running statistics)."""
    snapshot = ModuleSnapshot(model)
    tensors: dict[int, tuple[torch.Tensor, int, torch.Tensor]] = {}
    grads = [(p, p.grad) for p in model.parameters()]
    held = [t for m in model.modules() for t in [*m._parameters.values(), *m._buffers.values(), *vars(m).values()]]
    for t in held + [g for _, g in grads]:
        if isinstance(t, torch.Tensor) and id(t) not in tensors and (version := _version(t)) is not None:
            tensors[id(t)] = (t, version, t.detach().clone())
    try:
        yield
    finally:
        snapshot.restore()
        with torch.no_grad():
            for t, version, saved in tensors.values():
                if t._version != version:
                    t.copy_(saved)
            for p, grad in grads:
                if p.grad is not grad:
                    p.grad = grad
