"""Architectures archprof profiles, built as their papers and the seed's backbone define them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from archprof.architectures.registry import build_model, list_models, model_entry, model_info, register_model

if TYPE_CHECKING:
    from archprof.architectures.base import Architecture

__all__ = ["Architecture", "build_model", "list_models", "model_entry", "model_info", "register_model"]


def __getattr__(name: str) -> Any:
    # Architecture subclasses nn.Module: loaded on first use, so naming the models needs no torch.
    if name == "Architecture":
        from archprof.architectures.base import Architecture

        return Architecture
    raise AttributeError(f"module 'archprof.architectures' has no attribute {name!r}")
