"""Analysis: a traced forward pass turned into totals and groupings that add up."""

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

__all__ = ["GROUPINGS", "ArchprofNotice", "Profile", "ProfileError", "Row", "Totals", "UncountedOpsError", "profile"]
