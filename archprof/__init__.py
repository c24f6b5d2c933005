"""archprof: FLOPs, MACs, parameters and memory of PyTorch architectures, traced at the dispatcher.

The public names load on first use (PEP 562), so ``archprof --help``, ``--version``, ``list`` and
shell completion start without importing torch; ``from archprof import profile`` works as before.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "GROUPINGS",
    "ArchprofError",
    "ArchprofNotice",
    "Comparison",
    "Cost",
    "InputSpec",
    "Inputs",
    "Profile",
    "ProfileError",
    "Row",
    "Totals",
    "UncountedOpsError",
    "build_model",
    "compare",
    "list_models",
    "profile",
    "register_cost_rule",
    "register_model",
]
# The modules the public names come from, searched in order on first use.
_SOURCES = ("archprof.errors", "archprof.analysis.profile", "archprof.analysis.compare", "archprof.architectures", "archprof.tracing",
            "archprof.tracing.inputs")

if TYPE_CHECKING:
    from archprof.analysis.compare import Comparison, compare
    from archprof.analysis.profile import (
        GROUPINGS,
        ArchprofNotice,
        Profile,
        ProfileError,
        Row,
        Totals,
        UncountedOpsError,
        profile,
    )
    from archprof.architectures import build_model, list_models, register_model
    from archprof.errors import ArchprofError
    from archprof.tracing import Cost, register_cost_rule
    from archprof.tracing.inputs import Inputs, InputSpec


def __getattr__(name: str) -> Any:
    if name in __all__:
        for source in _SOURCES:
            module = importlib.import_module(source)
            if hasattr(module, name):
                globals()[name] = value = getattr(module, name)  # later lookups skip this function
                return value
    raise AttributeError(f"module 'archprof' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
