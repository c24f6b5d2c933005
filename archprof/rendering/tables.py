"""Analysis results laid out as tables: the one shape every human-readable writer prints.

Cells hold numbers, not strings: a :class:`Column` says what a number is (its unit), and each
writer formats it (human K/M/G units by default, exact integers with ``raw``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from archprof.analysis.blocks import BlockComparison
from archprof.analysis.compare import compare_groups, compare_totals
from archprof.analysis.crosscheck import Crosscheck
from archprof.analysis.latency import LatencyReport
from archprof.analysis.profile import Conditions, Profile
from archprof.rendering.names import profile_names

# Units a column can carry; "share" is a fraction shown as a percentage with a bar on a console.
COUNT_UNITS = {"macs": "MACs", "flops": "FLOPs", "params": "params", "activations": "activations", "bytes": "B"}


@dataclass(frozen=True)
class Column:
    header: str
    unit: str | None = None  # a COUNT_UNITS key, "share", "ratio", "float", or None for text
    display: str | None = None  # the header as a paper prints it (display names of models); LaTeX uses it


@dataclass
class Table:
    title: str
    columns: list[Column]
    rows: list[list[Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # For columns whose unit is "row": the unit of each row (the totals table mixes metrics).
    row_units: list[str] = field(default_factory=list)
    key: str = ""  # the table's name for --table and in LaTeX labels: "totals", "stages", ...
    conditions: str = ""  # what every number was counted at, one line under the table and in its caption
    scale: str | None = None  # the unit of its counts in Markdown and LaTeX (G, M, K, 1); None: the largest count's


GROUP_KEYS = {"stage": "stages", "block": "blocks", "type": "types", "layer": "layers", "part": "parts", "level": "levels", "stride": "strides"}


def conditions_text(named: list[tuple[str, Conditions]]) -> str:
    """The conditions of one or several models in one line: what they share said once; what differs
    said per model (up to three models), else each value there is, in order of first use."""
    if not named:
        return ""
    fields = {  # each field's prefix, and its value
        "input": ("input ", lambda c: c.shapes or "none"),
        "dtype": ("", lambda c: c.dtypes or "no tensor"),
        "batch": ("batch ", lambda c: "-" if c.batch is None else str(c.batch)),
        "device": ("on ", lambda c: c.device),
        "mode": ("", lambda c: c.mode),
    }
    values = {k: list(dict.fromkeys(f(c) for _, c in named)) for k, (_, f) in fields.items()}
    differ = [k for k, v in values.items() if len(v) > 1]
    if differ and len(named) <= 3:
        parts = [f"{name}: " + ", ".join(fields[k][0] + fields[k][1](c) for k in differ) for name, c in named]
        parts.append(", ".join(fields[k][0] + v[0] for k, v in values.items() if k not in differ))
    else:
        parts = [", ".join(fields[k][0] + " | ".join(v) for k, v in values.items())]
    versions = ", ".join(dict.fromkeys(c.version for _, c in named))
    return "; ".join([p for p in parts if p] + [named[0][1].convention, f"archprof {versions}"])


def profiles_conditions(profiles: list[Profile]) -> str:
    return conditions_text([(p.model, p.conditions) for p in profiles])


TOTAL_LABELS = {
    "macs": ("MACs", "macs"),
    "flops": ("FLOPs", "flops"),
    "params": ("parameters", "params"),
    "trainable_params": ("trainable parameters", "params"),
    "activations": ("activations", "activations"),
    "peak_activation_bytes": ("peak activation memory", "bytes"),
    "materialized_peak_bytes": ("largest materialized tensor (V2 paper, 16-bit)", "bytes"),
    "arithmetic_intensity": ("arithmetic intensity (FLOPs/B)", "float"),
    "forward_macs": ("  forward MACs", "macs"),
    "backward_macs": ("  backward MACs", "macs"),
    "forward_flops": ("  forward FLOPs", "flops"),
    "backward_flops": ("  backward FLOPs", "flops"),
    "saved_bytes": ("saved for backward", "bytes"),
    "weight_bytes": ("training memory: weights", "bytes"),
    "gradient_bytes": ("training memory: gradients", "bytes"),
    "optimizer_state_bytes": ("training memory: optimizer state", "bytes"),
    "training_step_bytes": ("training memory: step total (+ peak activations)", "bytes"),
}


def totals_table(profiles: list[Profile]) -> Table:
    """Metrics down, models across; with several models each one's ratio to the first."""
    names = profile_names(profiles)
    columns = [Column("metric")]
    for i, p in enumerate(profiles):
        columns.append(Column(p.model, "row", names[i]))
        if i:
            columns.append(Column(f"x {profiles[0].model}", "ratio", f"\u00d7 {names[0]}"))
    table = Table("totals", columns, key="totals", conditions=profiles_conditions(profiles))
    for row in compare_totals(profiles):
        label, unit = TOTAL_LABELS[row.metric]
        table.row_units.append(unit)
        cells: list[Any] = [label]
        for i, (value, ratio) in enumerate(zip(row.values, row.ratios, strict=True)):
            cells.append(value)
            if i:
                cells.append(ratio)
        table.rows.append(cells)
    for p in profiles:
        if p.uncounted:
            listed = ", ".join(f"{op} x{n}" for op, n in p.uncounted.items())
            table.notes.append(f"{p.model}: ops with no cost rule, not counted: {listed}")
        table.notes.extend(f"{p.model}: {notice}" for notice in p.notices)
    return table


GROUP_TITLES = {"stage": "per stage", "block": "per block type", "type": "per layer type", "layer": "per layer",
                "part": "per part", "level": "per pyramid level", "stride": "per stage, by output stride"}


def group_table(profiles: list[Profile], by: str, unit: str = "macs", depth: int | None = None) -> Table:
    """One model: every metric of each group. Several: the unit's value and share per model."""
    rows = compare_groups(profiles, by, unit, depth)
    title = GROUP_TITLES[by] + (f" (depth {depth})" if depth else "")
    keyed = {"key": GROUP_KEYS[by], "conditions": profiles_conditions(profiles)}
    named = [Column("stages")] if by == "stride" else []  # the names the regrouped stages had
    trains = [p.mode == "train" for p in profiles]  # a training step: its backward share and saved bytes too
    if len(profiles) == 1:
        p = profiles[0]
        step = [Column(f"backward {COUNT_UNITS[unit]}", unit), Column("saved", "bytes")] if trains[0] else []
        table = Table(title, [
            Column(by), *named, Column("calls", "int"), Column(COUNT_UNITS[unit], unit), Column("share", "share"), *step,
            Column("params", "params"), Column("params share", "share"), Column("activations", "activations"),
            Column("bytes moved", "bytes"),
        ], **keyed)
        for g in rows:
            r = g.rows[0]
            params_share = r.params / p.totals.params if p.totals.params else 0.0
            table.rows.append([g.name, *[g.stages][:len(named)], r.calls, getattr(r, unit), g.shares[0],
                               *[getattr(r, f"backward_{unit}"), r.saved_bytes][:len(step)], r.params, params_share,
                               r.activations, r.bytes_read + r.bytes_written])
        return table
    columns = [Column(by), *named]
    names = profile_names(profiles)
    for p, name, trains_ in zip(profiles, names, trains, strict=True):
        columns += [Column(f"{p.model} {COUNT_UNITS[unit]}", unit, f"{name} {COUNT_UNITS[unit]}"),
                    Column(f"{p.model} share", "share", f"{name} share")]
        if trains_:
            columns.append(Column(f"{p.model} backward {COUNT_UNITS[unit]}", unit, f"{name} backward {COUNT_UNITS[unit]}"))
    table = Table(title, columns, **keyed)
    for g in rows:
        cells: list[Any] = [g.name, *[g.stages][:len(named)]]
        for r, share, trains_ in zip(g.rows, g.shares, trains, strict=True):
            cells += [getattr(r, unit) if r is not None else None, share]
            if trains_:
                cells.append(getattr(r, f"backward_{unit}") if r is not None else None)
        table.rows.append(cells)
    return table


def model_tables(
    profiles: list[Profile], groupings: list[str], unit: str = "macs", depth: int | None = None,
    latencies: list[LatencyReport] | None = None,
) -> list[Table]:
    """What ``profile``, ``resnet``, ``detector`` and ``compare`` lay out: the totals, one table per
    grouping (``depth`` folds the layer view), then the measured latency of each model if any."""
    made = [totals_table(profiles)]
    made += [group_table(profiles, by, unit, depth if by == "layer" else None) for by in groupings]
    for p, report in zip(profiles, latencies or [], strict=False):
        timed = latency_tables(report, "layer" in groupings)
        for table in timed:  # the MACs beside the times are the count's: its conditions
            table.conditions = profiles_conditions([p])
        made += timed
    return made


def blocks_tables(comparison: BlockComparison) -> list[Table]:
    """The traced costs with each block type's share of its network, then the closed forms."""
    s = comparison.shapes
    costs = Table(
        f"blocks at matched input: {s.channels} -> {s.out_channels} channels, {s.size}x{s.size}, "
        f"stride {s.stride}, expansion t = {s.expansion}",
        [
            Column("block"), Column("MACs", "macs"), Column("closed form", "macs"),
            Column("/ std conv", "ratio"), Column("params", "params"), Column("activations", "activations"),
            Column("peak memory", "bytes"), Column("network"), Column("network share", "share"),
        ],
        key="costs", conditions=_own_conditions(comparison.conditions),
    )
    standard = comparison.blocks[0].macs
    for b in comparison.blocks:
        costs.rows.append([b.block, b.macs, b.closed_form_macs, b.macs / standard, b.params, b.activations,
                           b.peak_activation_bytes, b.network, b.network_share])
    costs.notes.append(
        f"depthwise separable / standard conv: {comparison.separable_ratio:.4f} traced, "
        f"1/N + 1/Dk^2 = {comparison.separable_ratio_closed_form:.4f} (MobileNet V1 paper, section 3.1)"
    )
    forms = Table("closed forms", [Column("block"), Column("layers"), Column("multiply-adds")], key="closed-forms",
                  conditions=costs.conditions)
    forms.rows = [[b.block, b.layers, b.formula] for b in comparison.blocks]
    return [costs, forms]


def crosscheck_tables(check: Crosscheck) -> list[Table]:
    """Totals per tool, the conventions behind each difference, and the layers that differ."""
    unit = check.unit
    common = COUNT_UNITS[unit]
    totals = Table(
        f"{check.model}: archprof beside the peers, one real CPU forward at batch 1 (common unit: {common})",
        [Column("tool"), Column("reports"), Column("reported", unit), Column(f"as {common}", unit),
         Column("difference", unit), Column("explained", unit), Column("unexplained", unit), Column("verdict")],
        key="totals", conditions=_own_conditions(check.conditions),
    )
    conventions = Table("what each difference is made of", [Column("tool"), Column("convention"), Column(common, unit)],
                        key="conventions", conditions=totals.conditions)
    for v in check.verdicts():
        totals.rows.append([v.tool, v.unit or common, v.reported, v.common, v.difference, v.explained, v.unexplained, v.verdict])
        conventions.rows += [[v.tool, why, amount] for why, amount in v.conventions.items()]
    totals.notes.append("fvcore labels its counts 'flops' but counts multiply-adds; FlopCounterMode counts FLOPs = 2 x MACs")
    if check.uncounted:
        listed = ", ".join(f"{op} x{n}" for op, n in check.uncounted.items())
        totals.notes.append(f"archprof: ops with no cost rule, not counted: {listed}")
    if check.meta_error is not None:
        totals.notes.append(f"archprof on meta (what `archprof profile` runs) not compared: {check.meta_error}")
    ran = [p.name for p in check.peers if p.error is None]
    meta = [Column("archprof on meta", unit)] if check.device_gaps else []
    layers = Table("layers where a tool differs from archprof",
                   [Column("layer"), Column("archprof", unit), *meta] + [Column(name, unit) for name in ran] + [Column("why")],
                   key="layers", conditions=totals.conditions)
    for d in check.differing_layers():
        layers.rows.append([d.layer, d.archprof, *([d.meta] if meta else []), *(d.peers[name] for name in ran), "; ".join(d.why)])
    return [totals, conventions, layers]


def _own_conditions(conditions: Conditions | None) -> str:
    return "" if conditions is None else conditions_text([("", conditions)])


def latency_tables(report: LatencyReport, per_layer: bool) -> list[Table]:
    """Time per layer type (and per layer) beside MACs: achieved GMAC/s and GB/s."""
    title = (f"measured latency on {report.device}: median of {report.repeats} forwards after "
             f"{report.warmup} warm-up, per layer type")
    columns = [Column("type"), Column("calls", "int"), Column("MACs", "macs"), Column("MACs share", "share"),
               Column("time (ms)", "float"), Column("time share", "share"), Column("GMAC/s", "float"), Column("GB/s", "float")]
    types = report.by_type()
    total_macs = sum(t.macs for t in types) or 1
    timed = report.timed_ms or 1.0
    table = Table(title, columns, key="latency")
    for t in sorted(types, key=lambda t: -t.median_ms):
        table.rows.append([t.name, t.calls, t.macs, t.macs / total_macs, t.median_ms, t.median_ms / timed,
                           t.gmacs_per_s, t.gbytes_per_s])
    table.notes.append(
        f"whole forward without per-layer timers: {report.forward_ms:.2f} ms; the timed layers add up to "
        f"{report.timed_ms:.2f} ms (ops outside leaf layers, such as residual adds, are not in the layers; "
        "the timers add their own overhead)"
    )
    tables = [table]
    if per_layer:
        layers = Table(f"measured latency on {report.device}, per layer",
                       [Column("layer"), Column("type"), Column("MACs", "macs"), Column("time (ms)", "float"),
                        Column("GMAC/s", "float"), Column("GB/s", "float")], key="latency-layers")
        layers.rows = [[r.name, r.layer_type, r.macs, r.median_ms, r.gmacs_per_s, r.gbytes_per_s] for r in report.layers]
        tables.append(layers)
    return tables
