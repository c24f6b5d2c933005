"""Side-by-side comparison of profiles: totals with ratios, groupings with shares."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from archprof.analysis.profile import (
    DEFAULT_GROUPINGS,
    ROOT,
    Conditions,
    Profile,
    Row,
    _groupings,
    _pandas,
    _unit,
    layout,
    profile,
    stride_order,
)
from archprof.errors import ArchprofValueError

TOTAL_METRICS = (
    "macs", "flops", "params", "activations", "peak_activation_bytes", "materialized_peak_bytes", "arithmetic_intensity",
)


# A training step's split and memory, listed where any profile is of one (``mode="train"``).
TRAINING_METRICS = {
    "macs": ("forward_macs", "backward_macs"),
    "flops": ("forward_flops", "backward_flops"),
    "peak_activation_bytes": ("saved_bytes", "weight_bytes", "gradient_bytes", "optimizer_state_bytes", "training_step_bytes"),
}
# Profile.training's fields, by metric name.
MEMORY_METRICS = {"weight_bytes": "weights", "gradient_bytes": "gradients", "optimizer_state_bytes": "optimizer_state",
                  "training_step_bytes": "total"}


def total_value(p: Profile, metric: str) -> float:
    if metric == "materialized_peak_bytes":
        return p.materialized_peak_bytes()
    if metric in MEMORY_METRICS:
        return getattr(p.training, MEMORY_METRICS[metric]) if p.training is not None else 0
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

    @property
    def stages(self) -> str:
        """The stride grouping: the stages each profile's row regroups, "conv2_x | stage2" ("-": none)."""
        return " | ".join(", ".join(r.stages) if r else "-" for r in self.rows)


def compare_totals(profiles: list[Profile]) -> list[TotalsRow]:
    """One row per metric; trainable parameters too where any profile freezes some (``freeze_at``)."""
    metrics = TOTAL_METRICS
    if any(p.totals.frozen_params for p in profiles):
        metrics = (*metrics[:3], "trainable_params", *metrics[3:])
    if any(p.mode == "train" for p in profiles):
        metrics = tuple(m for metric in metrics for m in (metric, *TRAINING_METRICS.get(metric, ())))
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
    if by == "stride":  # /2 of one model and /4 of the other: in the order the image flows
        names.sort(key=stride_order)
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


def lined_up(profiles: list[Profile], by: Sequence[str]) -> list[str]:
    """``by`` with "stage" read as "stride" where the models' stages have different names (ResNet's
    conv2_x, MobileNet's stage2) and every model has a spatial input: stages of different families
    share a row when they end at the same output stride. Same-family models keep their stage names."""
    names = {frozenset(info.stage for info in p.modules.values()) - {ROOT} for p in profiles}
    spatial = all(any(len(i.shape) >= 3 for i in p.inputs) for p in profiles)
    if len(names) < 2 or not spatial:
        return list(by)
    return list(dict.fromkeys("stride" if g == "stage" else g for g in by))


@dataclass
class Comparison:
    """Profiles side by side: each total with its ratio to the first profile's, and each grouping's
    rows with their shares. What ``archprof compare`` prints, as data."""

    profiles: list[Profile]
    by: tuple[str, ...] = DEFAULT_GROUPINGS
    unit: str = "macs"  # the metric of the groupings' values and shares
    depth: int | None = None  # folds the layer view
    totals: list[TotalsRow] = field(init=False)
    groups: dict[str, list[GroupRow]] = field(init=False)

    def __post_init__(self) -> None:
        if not self.profiles:
            raise ArchprofValueError("a comparison needs at least one profile")
        self.by = tuple(_groupings(self.by))
        self.unit = _unit(self.unit)
        self.totals = compare_totals(self.profiles)
        self.groups = {by: compare_groups(self.profiles, by, self.unit, self.depth if by == "layer" else None) for by in self.by}

    def ratio(self, metric: str = "macs") -> tuple[float | None, ...]:
        """Each profile's ``metric`` over the first profile's."""
        row = next((r for r in self.totals if r.metric == metric), None)
        if row is None:
            raise ArchprofValueError(f"unknown metric {metric!r} (choose from {', '.join(r.metric for r in self.totals)})")
        return row.ratios

    def __repr__(self) -> str:
        from archprof.rendering.writers import count_text

        macs = next(r for r in self.totals if r.metric == "macs")
        shown = [f"{p.model} {count_text(v)}" + (f" ({ratio:.3f}x)" if i and ratio is not None else "")
                 for i, (p, v, ratio) in enumerate(zip(self.profiles, macs.values, macs.ratios, strict=True))]
        return f"<Comparison of {len(self.profiles)} profiles, MACs: {', '.join(shown)}; groupings: {', '.join(self.by)}>"

    def _repr_html_(self) -> str:
        return self._text("html", list(self.by[:1]), raw=False)

    def to_dataframe(self, by: str = "totals") -> Any:
        """``"totals"``: one row per metric, a column per profile and its ratio to the first; a
        grouping: one row per group, each profile's value (of ``unit``) and share."""
        pandas = _pandas("Comparison.to_dataframe")
        names = [p.model for p in self.profiles]
        if by == "totals":
            columns = ["metric", *names, *(f"{n} / {names[0]}" for n in names[1:])]
            rows = [[r.metric, *r.values, *r.ratios[1:]] for r in self.totals]
            return pandas.DataFrame(rows, columns=columns)
        groups = self.groups[by] if by in self.groups else compare_groups(self.profiles, by, self.unit, self.depth)
        columns = [by, *(f"{n} {self.unit}" for n in names), *(f"{n} share" for n in names)]
        rows = [[g.name, *(None if r is None else getattr(r, self.unit) for r in g.rows), *g.shares] for g in groups]
        frame = pandas.DataFrame(rows, columns=columns)
        if by == "stride":  # the stages each row regroups, per model
            frame.insert(1, "stages", [g.stages for g in groups])
        return frame

    def to_csv(self) -> str:
        """The CSV ``archprof compare --format csv`` writes."""
        from archprof.rendering.writers import models_to_csv

        return models_to_csv(self.profiles, list(self.by), self.depth)

    def to_latex(self, raw: bool = False, *, scale: str | None = None, tables: Sequence[str] | None = None,
                 caption: str | None = None, label: str | None = None, siunitx: bool = False) -> str:
        """The booktabs tables ``archprof compare --format latex`` writes (``scale``, ``tables``,
        ``caption``, ``label``, ``siunitx``: its --scale, --table, --caption, --label, --siunitx)."""
        return self._text("latex", list(self.by), raw, layout(scale, tables, caption, label, siunitx, command="compare"))

    def to_markdown(self, raw: bool = False, *, scale: str | None = None, tables: Sequence[str] | None = None) -> str:
        return self._text("markdown", list(self.by), raw, layout(scale, tables))

    @property
    def conditions(self) -> list[Conditions]:
        """Each profile's conditions (inputs, batch, device, mode, convention, version), in order."""
        return [p.conditions for p in self.profiles]

    def _text(self, fmt: str, groupings: list[str], raw: bool, how: Any = None) -> str:
        from archprof.rendering.tables import model_tables
        from archprof.rendering.writers import TEXT_WRITERS, to_html

        made = model_tables(self.profiles, groupings, self.unit, self.depth)
        return to_html(made, raw) if fmt == "html" else TEXT_WRITERS[fmt](made, raw, how)


def compare(
    models: Sequence[Any],
    input_shape: Sequence[int] | None = None,
    *,
    inputs: Any = None,
    by: str | Sequence[str] | None = None,
    unit: str = "macs",
    depth: int | None = None,
    device: str | None = None,
    strict: bool = False,
) -> Comparison:
    """Profile ``models`` at the same input and compare them (``archprof compare`` from Python).

    Each model is a :class:`Profile` (taken as it is), an ``nn.Module``, or a name the command line
    takes (``"resnet50"``, ``"mobilenet_v2:width=0.5"``, ``"pkg.mod:factory"``, ``"mobilenet_v2@1x3x160x160"``).
    ``input_shape``, ``inputs``, ``device`` and ``strict`` are :func:`~archprof.profile`'s. ``by``
    defaults to stage, block and type, the stages lined up by output stride across families (:func:`lined_up`).
    """
    profiles = [m if isinstance(m, Profile) else _profile_one(m, input_shape, inputs, device, strict) for m in models]
    return Comparison(profiles, tuple(_groupings(lined_up(profiles, DEFAULT_GROUPINGS) if by is None else by)), unit, depth)


def _profile_one(model: Any, input_shape: Sequence[int] | None, inputs: Any, device: str | None, strict: bool) -> Profile:
    if not isinstance(model, str):
        return profile(model, input_shape, inputs=inputs, device=device, strict=strict)
    from archprof.architectures.spec import build_from_spec, parse_spec
    from archprof.tracing.inputs import inputs_from_specs, parse_input

    spec = parse_spec(model)
    own = inputs_from_specs([parse_input(text) for text in spec.inputs]) if spec.inputs else None
    return profile(
        build_from_spec(spec, "meta"), None if own else input_shape, inputs=own or inputs, device=device, strict=strict,
        name=spec.text, build=lambda: build_from_spec(spec, "cpu"),
    )
