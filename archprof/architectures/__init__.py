"""Architectures archprof profiles, built as their papers and the seed's backbone define them."""

from archprof.architectures.base import Architecture
from archprof.architectures.registry import build_model, list_models, model_entry, register_model

__all__ = ["Architecture", "build_model", "list_models", "model_entry", "register_model"]
