"""Side-by-side comparison of profiles: totals with ratios, groupings with shares."""

from __future__ import annotations

from dataclasses import dataclass

from archprof.analysis.profile import Profile, Row

TOTAL_METRICS = (
    "macs", "flops", "params", "activations", "peak_activation_bytes", "materialized_peak_bytes", "arithmetic_intensity",
)


def total_value(p: Profile, metric: str) -> float:
    if metric == "materialized_peak_bytes":
        return p.materialized_peak_bytes()
    return getattr(p.totals, metric)


@dataclass(frozen=True)
class TotalsRow:
    metric: str
    values: tuple[float, ...]  # one per profile, in the order given
    ratios: tuple[float | None, ...]  # each value over the first profile's (None where that is 0)


@dataclass(frozen=True)
class GroupRow:
    name: str
    rows: tuple[Row | None, ...]  # one per profile; None where that profile has no such group
    shares: tuple[float | None, ...]  # the row's fraction of that profile's total of the metric


def compare_totals(profiles: list[Profile]) -> list[TotalsRow]:
    """One row per metric; trainable parameters too where any profile freezes some (``freeze_at``)."""
    metrics = TOTAL_METRICS
    if any(p.totals.frozen_params for p in profiles):
        metrics = (*metrics[:3], "trainable_params", *metrics[3:])
    result = []
    for metric in metrics:
        values = tuple(total_value(p, metric) for p in profiles)
        first = values[0]
        result.append(TotalsRow(metric, values, tuple(v / first if first else None for v in values)))
    return result


def compare_groups(profiles: list[Profile], by: str, metric: str = "macs", depth: int | None = None) -> list[GroupRow]:
    """The union of the profiles' groups (in first-appearance order), with each one's share."""
    grouped = [{r.name: r for r in p.group(by, depth)} for p in profiles]
    names: list[str] = []
    for rows in grouped:
        names += [n for n in rows if n not in names]
    totals = [getattr(p.totals, metric) for p in profiles]
    result = []
    for name in names:
        rows = tuple(g.get(name) for g in grouped)
        shares = tuple(
            getattr(r, metric) / t if r is not None and t else (0.0 if r is not None else None)
            for r, t in zip(rows, totals, strict=True)
        )
        result.append(GroupRow(name, rows, shares))
    return result
