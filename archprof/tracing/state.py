"""Leave the user's model as it was found, whatever a forward pass writes into it.

A forward may cache tensors in plain attributes (torchvision's anchor generators do), append to
lists, add attributes, swap a lazy module's class, or flip training flags. A :class:`ModuleSnapshot`
taken before a forward attempt puts every module's attributes, its parameter, buffer and child
tables, and the contents of the lists, dicts and sets it holds back as they were, on success and
on failure. Parameters and buffers are not copied: the tracer never runs the user's own tensors
through a forward that could write to them (it swaps in meta tensors or copies).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

_CONTAINERS = (list, dict, set)
_MAX_DEPTH = 4  # nested containers deeper than this are not module state worth a copy


class ModuleSnapshot:
    def __init__(self, model: nn.Module) -> None:
        self._modules: list[tuple[nn.Module, type, dict[str, Any]]] = []
        self._containers: list[tuple[Any, Any]] = []
        seen: set[int] = set()
        for module in model.modules():
            attributes = dict(module.__dict__)
            self._modules.append((module, type(module), attributes))
            for value in attributes.values():
                self._save(value, seen, 0)

    def _save(self, value: Any, seen: set[int], depth: int) -> None:
        if not isinstance(value, _CONTAINERS) or id(value) in seen or depth > _MAX_DEPTH:
            return
        seen.add(id(value))
        if isinstance(value, list):
            self._containers.append((value, list(value)))
            items = value
        elif isinstance(value, dict):
            self._containers.append((value, dict(value)))
            items = value.values()
        else:
            self._containers.append((value, set(value)))
            items = ()
        for item in items:
            if not isinstance(item, (torch.Tensor, nn.Module)):
                self._save(item, seen, depth + 1)

    def restore(self) -> None:
        for container, saved in self._containers:
            if isinstance(container, list):
                container[:] = saved
            else:
                container.clear()
                container.update(saved)
        for module, cls, attributes in self._modules:
            if type(module) is not cls:  # a lazy module becomes its eager class on its first forward
                module.__class__ = cls
            module.__dict__.clear()
            module.__dict__.update(attributes)
