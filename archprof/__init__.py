"""archprof: FLOPs, MACs, parameters and memory of PyTorch architectures, traced at the dispatcher."""

from archprof.architectures import build_model, list_models, register_model

__all__ = ["build_model", "list_models", "register_model"]
__version__ = "0.1.0"
