"""Analysis: a traced forward pass turned into totals and groupings that add up."""

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

__all__ = [
    "GROUPINGS", "ArchprofNotice", "Comparison", "Profile", "ProfileError", "Row", "Totals", "UncountedOpsError", "compare",
    "profile",
]
