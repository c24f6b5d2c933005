"""archprof: FLOPs, MACs, parameters and memory of PyTorch architectures, traced at the dispatcher."""

from archprof.analysis import (
    GROUPINGS,
    ArchprofNotice,
    Comparison,
    Profile,
    ProfileError,
    Row,
    Totals,
    UncountedOpsError,
    compare,
    profile,
)
from archprof.architectures import build_model, list_models, register_model
from archprof.tracing import Cost, register_cost_rule
from archprof.tracing.inputs import Inputs, InputSpec

__all__ = [
    "GROUPINGS",
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
__version__ = "0.1.0"
