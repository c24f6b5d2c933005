"""`archprof report`: the papers' tables reproduced, as CSV, Markdown and LaTeX, with figures.

Every table with a published column shows the published value, the counted value and their
difference; where a publication contradicts itself or another, the row says so in a note. The
count is never bent to match.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from archprof.analysis import papers
from archprof.analysis.papers import Profiles
from archprof.analysis.profile import Conditions
from archprof.analysis.training import FIRST_LAYER, RULE_OF_THUMB, backward_ratios, backward_reason
from archprof.rendering.figures import FIGURE_FORMATS, FigureData, group_figure, write_figure
from archprof.rendering.names import profile_names
from archprof.rendering.output import all_or_nothing, make_dirs, write_atomic
from archprof.rendering.tables import Column, Table, conditions_text, profiles_conditions
from archprof.rendering.writers import CONDITION_COLUMNS, Layout, to_latex, to_markdown


@dataclass
class Report:
    name: str  # file stem
    table: Table
    # The conditions of the profiles behind the table, per CSV column; a value that differs between
    # them lists each (the rows say which is theirs: a resolution column, a width).
    conditions: dict[str, str] = field(default_factory=dict)


def merged_conditions(conditions: list[Conditions]) -> dict[str, str]:
    values = [c.as_dict() for c in conditions]
    return {k: " | ".join(dict.fromkeys("" if v[k] is None else str(v[k]) for v in values)) for k in CONDITION_COLUMNS}


def v1_against_v2(ps: Profiles) -> Report:
    table = Table(
        "MobileNet V1 against V2 (the V2 paper's Table 4), 224 x 224",
        [Column("model"), Column("params published", "params"), Column("params", "params"),
         Column("MACs published", "macs"), Column("MACs", "macs"), Column("activations", "activations"),
         Column("peak activation memory (fp32)", "bytes"), Column("largest materialized tensor (16-bit)", "bytes"),
         Column("note")],
    )
    compared = papers.v2_table4(ps)
    for r in compared.rows:
        t = r.profile.totals
        table.rows.append([profile_names([r.profile])[0], r.params.printed, t.params, r.macs.printed, t.macs, t.activations,
                           t.peak_activation_bytes, r.profile.materialized_peak_bytes(), r.note])
    table.notes.append("V2 / V1: " + ", ".join(f"{what} {ratio:.3f}x" for what, ratio in compared.ratios.items()))
    return Report("v1_vs_v2", table)


def v1_layer_types(ps: Profiles) -> Report:
    table = Table(
        "MobileNet V1 resource per layer type (the V1 paper's Table 2), 1.0 MobileNet-224",
        [Column("type"), Column("% MACs published", "float"), Column("% MACs", "float"), Column("difference", "float"),
         Column("% params published", "float"), Column("% params", "float"), Column("difference", "float"), Column("note")],
    )
    shares = papers.v1_table2(ps)
    for r in shares.rows:
        table.rows.append([r.layer_type, r.macs_share.printed, r.macs_share.counted, r.macs_share.difference,
                           r.params_share.printed, r.params_share.counted, r.params_share.difference, r.note])
    table.notes += [
        f"The printed mult-add shares sum to {shares.published_macs_sum:.2f} %; the counted ones to {shares.counted_macs_sum:.2f} %.",
        "Parameter shares count conv and FC weights as the paper does: BN's affine terms and the FC bias are left out.",
    ]
    return Report("v1_layer_types", table)


def v1_grid(ps: Profiles) -> Report:
    table = Table(
        "MobileNet V1 width x resolution (the V1 paper's Tables 6 and 7)",
        [Column("width"), Column("resolution", "int"), Column("MACs published", "macs"), Column("MACs", "macs"),
         Column("difference", "macs"), Column("params published", "params"), Column("params", "params"), Column("note")],
    )
    for g in papers.v1_tables6_7(ps):
        table.rows.append([g.width, g.resolution, g.macs.printed, g.macs.counted, g.macs.difference, g.params.printed,
                           g.params.counted, g.note])
    return Report("v1_width_resolution", table)


def v2_grid(ps: Profiles) -> Report:
    table = Table(
        "MobileNet V2 width x resolution",
        [Column("width"), Column("resolution", "int"), Column("MACs published", "macs"), Column("MACs", "macs"),
         Column("params published", "params"), Column("params", "params"), Column("note")],
    )
    for g in papers.v2_grid(ps):
        table.rows.append([g.width, g.resolution, g.macs.printed, g.macs.counted, g.params.printed, g.params.counted, g.note])
    table.notes.append("Widths below 1.0 keep the last conv at 1280 channels; channels are rounded to multiples of 8.")
    return Report("v2_width_resolution", table)


def resnet_table(ps: Profiles) -> Report:
    table = Table(
        "ResNet-18/34/50/101/152 against the ResNet paper's Table 1 and torchvision, 224 x 224",
        [Column("depth", "int"), Column("Table 1 FLOPs (mult-adds)", "macs"), Column("MACs, stride in 1x1 (MSRA)", "macs"),
         Column("MACs, stride in 3x3 (v1.5)", "macs"), Column("torchvision GFLOPS", "macs"), Column("params", "params"),
         Column("torchvision params", "params"), Column("note")],
    )
    for r in papers.resnet_table1(ps):
        table.rows.append([r.depth, r.table1.printed, r.table1.counted, r.torchvision_macs.counted, r.torchvision_macs.printed,
                           r.params.counted, r.params.printed, r.note])
    table.notes += [
        "ResNet-18 and -34 use basic blocks, whose stride is in the first 3x3 conv either way.",
        "torchvision's GFLOPS are GMACs of convolutions and linear layers (no BN, ReLU, pooling or bias): equal to "
        "the counted MACs with the v1.5 stride placement, to the printed precision.",
    ]
    return Report("resnet", table)


def seed_variants(ps: Profiles) -> Report:
    table = Table(
        "The seed's backbone variants (maskrcnn-benchmark / FCOS defaults: stride in 1x1, frozen BN, "
        "FREEZE_CONV_BODY_AT 2, no pooling or fc), 224 x 224",
        [Column("variant"), Column("MACs", "macs"), Column("FLOPs", "flops"), Column("params", "params"),
         Column("trainable params", "params"), Column("buffers", "params"), Column("deformable conv MACs", "macs")],
    )
    for v in papers.seed_variants(ps):
        t = v.profile.totals
        table.rows.append([v.variant, t.macs, t.flops, t.params, t.trainable_params, t.buffers, v.deformable_macs])
    table.notes.append("The FPN neck itself is not built: FPN rows are the backbone that returns every stage's output. "
                       "GN rows train their norms (freeze_at 0), as the seed's GN configurations do.")
    return Report("resnet_seed_variants", table)


# The training step of the report: SGD with momentum in fp32, as the ResNet paper and the seed train.
TRAIN_STEP = dict(mode="train", optimizer="momentum", precision="fp32")
TRAINING_MODELS = (
    ("ResNet-50", "resnet50", {}), ("ResNet-101", "resnet101", {}), ("ResNet-152", "resnet152", {}),
    ("MobileNetV1", "mobilenet_v1", {}), ("MobileNetV2", "mobilenet_v2", {}),
    ("R-50-FPN backbone, freeze_at 2 (the seed's)", "resnet50", {**papers.SEED_DEFAULTS, "stages": "FPN"}),
    ("R-50-FPN backbone, freeze_at 0", "resnet50", {**papers.SEED_DEFAULTS, "stages": "FPN", "freeze_at": 0}),
)


def training_report(ps: Profiles) -> tuple[Report, Report]:
    """A training step's cost against the rule of thumb "backward = 2 x forward" (calflops,
    DeepSpeed), per model and per layer type."""
    table = Table(
        "A training step (forward in training mode, a summed loss, backward; SGD with momentum, fp32), 224 x 224, "
        "against the rule of thumb backward = 2 x forward",
        [Column("model"), Column("forward FLOPs", "flops"), Column("backward FLOPs", "flops"), Column("backward / forward", "ratio"),
         Column("2 x forward (the rule)", "flops"), Column("rule's error", "share"), Column("forward MACs", "macs"),
         Column("backward MACs", "macs"), Column("saved for backward", "bytes"), Column("step memory", "bytes")],
    )
    for label, name, options in TRAINING_MODELS:
        p = ps.get(name, step=TRAIN_STEP, **options)
        t = p.totals
        (ratio,) = backward_ratios([t], "flops")
        table.rows.append([label, ratio.forward, ratio.backward, ratio.ratio, RULE_OF_THUMB * ratio.forward,
                           ratio.rule_error / ratio.backward, t.forward_macs, t.backward_macs, t.saved_bytes, p.training.total])
    table.notes += [
        "rule's error: (2 x forward - backward) / backward, positive where the rule over-counts.",
        "Step memory: weights, gradients and the optimizer's momentum (one copy of the trainable parameters), plus the "
        "peak of activations and their gradients over the forward and backward.",
    ]
    types = Table(
        "Where the rule is wrong: a training step's FLOPs per layer type (and the first layer), backward against forward",
        [Column("model"), Column("layers"), Column("forward FLOPs", "flops"), Column("backward FLOPs", "flops"),
         Column("backward / forward", "ratio"), Column("why")],
        scale="M",  # layer types from the first layer's 0.2 G down to the loss's thousand FLOPs
    )
    for label, name, options in (TRAINING_MODELS[0], TRAINING_MODELS[4], TRAINING_MODELS[5]):
        p = ps.get(name, step=TRAIN_STEP, **options)
        first = next(r for r in p.group("layer") if r.macs)  # the first layer that computes: its input is the image
        rows = [(f"{FIRST_LAYER} ({first.name})", first), *((r.name, r) for r in p.group("type"))]
        frozen = [r for r in p.group("stage") if r.params and not r.backward_flops]
        rows += [(f"frozen stage {r.name}", r) for r in frozen]
        for what, r in rows:
            (ratio,) = backward_ratios([r], "flops")
            types.rows.append([label, what, ratio.forward, ratio.backward, ratio.ratio, backward_reason(what, r, ratio)])
    return Report("training", table), Report("training_by_type", types)


def blocks_report(_: Profiles) -> Report:
    table = Table(
        f"Bottleneck against inverted residual (t = {papers.EXPANSION}) where they occur in ResNet-50 and MobileNetV2, stride 1",
        [Column("where"), Column("channels", "int"), Column("size", "int"), Column("bottleneck MACs", "macs"),
         Column("bottleneck closed form", "macs"), Column("inverted residual MACs", "macs"), Column("IR closed form", "macs"),
         Column("IR / bottleneck", "ratio"), Column("bottleneck params", "params"), Column("IR params", "params")],
        scale="M",  # the blocks' MACs reach G and their parameters stay in K: M keeps both readable
    )
    compared = papers.bottleneck_against_inverted_residual()
    for r in compared.rows:
        bottleneck, ir = r.bottleneck, r.inverted_residual
        table.rows.append([r.where, r.channels, r.size, bottleneck.macs, bottleneck.closed_form_macs, ir.macs, ir.closed_form_macs,
                           r.ratio, bottleneck.params, ir.params])
    agree = all(b.macs == b.closed_form_macs for r in compared.rows for b in (r.bottleneck, r.inverted_residual))
    (ir_least, ir_most), (bottleneck_least, bottleneck_most) = compared.inverted_residual_channels, compared.bottleneck_channels
    table.notes += [
        "Closed forms: bottleneck h*w*(C*b + 9*b^2 + b*C') with b = C'/4 (ResNet paper, figure 5); inverted residual "
        "h*w*d'*t*(d' + k^2 + d'') (MobileNet V2 paper, section 3.3). "
        + ("Traced and closed form agree at every shape." if agree else "Traced and closed form differ: see the rows."),
        f"At matched width the inverted residual costs about {compared.inverted_residual_per_c2 / compared.bottleneck_per_c2:.0f}x "
        f"the bottleneck: its two 1x1 convs run at t = {papers.EXPANSION} times the width (about "
        f"{compared.inverted_residual_per_c2:.0f} C^2 MACs per position) where the bottleneck's run at a quarter of it "
        f"(about {compared.bottleneck_per_c2:.2f} C^2). MobileNetV2 stays cheap by running it at {ir_least}-{ir_most} "
        f"channels where ResNet-50 runs {bottleneck_least}-{bottleneck_most}.",
    ]
    conditions = [(r.where, r.conditions) for r in compared.rows]
    table.conditions = conditions_text(conditions)
    return Report("blocks", table, merged_conditions([c for _, c in conditions]))


def memory_report(ps: Profiles) -> tuple[Report, Report]:
    table = Table(
        "Activation memory of MobileNet V1 against V2 (the V2 paper's measure, section 5.1 and Table 3: 16-bit "
        "activations, only tensors between blocks materialized), with the naive liveness peak beside it",
        [Column("resolution", "int"), Column("V1 published", "bytes"), Column("V1 largest materialized", "bytes"),
         Column("V2 published", "bytes"), Column("V2 largest materialized", "bytes"), Column("V2 / V1", "ratio"),
         Column("V1 naive peak (16-bit)", "bytes"), Column("V2 naive peak (16-bit)", "bytes"), Column("note")],
    )
    compared = papers.v2_table3(ps)
    for r in compared.rows:
        table.rows.append([r.resolution, r.v1.printed, r.v1.counted, r.v2.printed, r.v2.counted, r.ratio,
                           r.v1_naive_peak, r.v2_naive_peak, r.note])
    sizes = Table(
        "Largest materialized tensor per spatial size at 224 x 224 (16-bit), V1 and V2",
        [Column("size"), Column("V1 channels", "int"), Column("V1", "bytes"), Column("V2 channels", "int"), Column("V2", "bytes")],
    )
    for s in compared.sizes:
        sizes.rows.append([f"{s.height}x{s.width}", s.v1.channels if s.v1 else None, s.v1.bytes if s.v1 else None,
                           s.v2.channels if s.v2 else None, s.v2.bytes if s.v2 else None])
    (p1, m1), (p2, m2) = compared.max_row
    where = {f"{m.height} x {m.width}" for m in (m1, m2)}
    table.notes += [
        f"The paper's {p1.value / 1e3:.0f}K and {p2.value / 1e3:.0f}K are the {m1.channels}-channel (V1) and "
        f"{m2.channels}-channel (V2) tensors at {' and '.join(sorted(where))} (K = 1000 bytes).",
        "V2 streams each inverted residual's expansion, the stem (its first block has t = 1) and the last 1x1 conv "
        "(into the global pool); V1 materializes every layer's output. The naive peak frees each tensor after its last "
        "use but streams nothing, which is why V2's naive peak is higher than V1's.",
    ]
    return Report("memory", table), Report("memory_by_size", sizes)


def figures(ps: Profiles) -> dict[str, FigureData]:
    v1, v2, r50 = ps.get("mobilenet_v1"), ps.get("mobilenet_v2"), ps.get("resnet50")
    stages = group_figure([v1, v2], "stage", title="MobileNet V1 against V2: MACs per stage (224 x 224)")
    stages.series = dict(zip(("MobileNet V1", "MobileNet V2"), stages.series.values(), strict=True))
    strides = group_figure([r50, v2], "stride", title="ResNet-50 against MobileNetV2: MACs per stage, by output stride (224 x 224)")
    strides.series = dict(zip(("ResNet-50", "MobileNetV2"), strides.series.values(), strict=True))
    series: dict[str, list[float]] = {}
    labels: list[str] = []
    labelled: list[bool] = []
    for family, name, configs in (
        ("MobileNet V1", "mobilenet_v1", [dict(width=w, resolution=r) for w in papers.V1_WIDTHS for r in papers.V1_RESOLUTIONS]),
        ("MobileNet V2", "mobilenet_v2", [dict(width=w, resolution=r) for w in papers.V2_WIDTHS for r in papers.V2_RESOLUTIONS]),
        ("ResNet", "", [dict(depth=d) for d in papers.DEPTHS]),
    ):
        points: list[float] = []
        for options in configs:
            if family == "ResNet":
                p = ps.get(f"resnet{options['depth']}")
                labels.append(f"ResNet-{options['depth']}")
                labelled.append(True)
            else:
                p = ps.get(name, **options)
                labels.append(f"{family[-2:]} {options['width']}")
                labelled.append(options["resolution"] == 224)
            points += [p.totals.params, p.totals.macs]
        series[family] = points
    scatter = FigureData("scatter", "MACs against parameters, every architecture and multiplier (labels: width at 224 x 224)",
                         "parameters", "MACs", labels, series, labelled)
    shares_models = [("MobileNet V1", v1), ("MobileNet V2", v2), ("ResNet-50", ps.get("resnet50"))]
    types: list[str] = []
    for _, p in shares_models:
        types += [r.name for r in p.group("type") if r.macs and r.name not in types]
    shares = FigureData(
        "share_bars", "Share of MACs per layer type (224 x 224)", "% of MACs", "",
        [label for label, _ in shares_models],
        {t: [100 * next((r.macs for r in p.group("type") if r.name == t), 0) / p.totals.macs for _, p in shares_models] for t in types},
    )
    return {"v1_v2_stages": stages, "resnet50_v2_strides": strides, "macs_params": scatter, "layer_type_shares": shares}


PYRAMID_LEVELS = ("P3", "P4", "P5", "P6", "P7")


def detectors_report(ps: Profiles) -> Report:
    table = Table(
        "Where a one-stage detector's compute goes: FCOS per part and per pyramid level (the seed's configuration), "
        "beside torchvision's published FCOS and RetinaNet",
        [Column("detector"), Column("backbone"), Column("head channels", "int"), Column("input"),
         Column("MACs published", "macs"), Column("MACs", "macs"), Column("params published", "params"),
         Column("params", "params"), Column("backbone", "share"), Column("neck", "share"), Column("head", "share"),
         *(Column(level, "share") for level in PYRAMID_LEVELS), Column("note")],
    )
    for r in papers.detectors(ps):
        p = r.profile
        table.rows.append([r.detector, r.backbone, p.config["head_channels"], "x".join(map(str, p.input_shapes[0][2:])),
                           r.macs.printed, r.macs.counted, r.params.printed, r.params.counted, r.parts["backbone"],
                           r.parts["neck"], r.parts["head"], *(r.levels.get(level) for level in PYRAMID_LEVELS), r.note])
    table.notes += [
        "Shares are of the total MACs. A level's share is its FPN convs (lateral, merge, output; P6 and P7 their "
        "stride-2 convs) plus the shared head's run on that level; backbone and P3..P7 add up to 100 %.",
        "torchvision rows: preset='torchvision' (FrozenBatchNorm2d ResNet-50 v1.5, P6 from P5, 91 classes; FCOS with "
        "centerness on the regression tower), at 800 x 800 as the published _ops (GMACs of convs and matmuls) are.",
        "Seed rows: the FCOS code base's configs (frozen-BN ResNet with the stride in the 1x1, P6 from P5, 4-conv GN "
        "towers, 80 classes, centerness on the classification tower, per-level scales); 128 channels is its "
        "c128 MobileNetV2 config, where the FPN and the head both run at 128 channels.",
    ]
    return Report("detectors", table)


def table_to_csv(table: Table, conditions: dict[str, str] | None = None) -> str:
    """The table's exact numbers, each row ending with the conditions they were counted at."""
    conditions = conditions or {}
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([c.header for c in table.columns] + list(conditions))
    for row in table.rows:
        writer.writerow(["" if v is None else (f"{v:.6g}" if isinstance(v, float) else v) for v in row] + list(conditions.values()))
    return buffer.getvalue()


BUILDERS: tuple[Callable[[Profiles], Any], ...] = (
    v1_against_v2, v1_layer_types, v1_grid, v2_grid, resnet_table, seed_variants, blocks_report, memory_report,
    detectors_report, training_report,
)
PROFILE_COUNT = (1 + 2 + 16 + 30 + 5 + 3 + len(papers.SEED_VARIANTS) + 2 * len(papers.V2_RESOLUTIONS)
                 + 2 + len(TRAINING_MODELS) + len(papers.DETECTOR_BACKBONES) * len(papers.DETECTOR_HEAD_CHANNELS) * len(papers.DETECTOR_INPUTS))  # progress-bar total, roughly


def reports(ps: Profiles) -> Iterator[Report]:
    """Every report, each table keyed by its file name and captioned with the conditions of the
    profiles it was made from (unless it says its own)."""
    for build in BUILDERS:
        ps.used = []
        made = build(ps)
        for report in made if isinstance(made, tuple) else (made,):
            report.table.key = report.name.replace("_", "-")
            report.table.conditions = report.table.conditions or profiles_conditions(ps.used)
            report.conditions = report.conditions or merged_conditions([p.conditions for p in ps.used])
            yield report


def write_reports(out: Path, advance: Callable[[str], None] | None = None) -> list[Path]:
    """Regenerate every report under ``out``; return the files written (all of them, or none on failure)."""
    with all_or_nothing():
        return _write_reports(out, advance)


def _write_reports(out: Path, advance: Callable[[str], None] | None) -> list[Path]:
    make_dirs(out)
    ps = Profiles(advance)
    written: list[Path] = []
    index = ["# archprof reports", "", "Regenerate with `archprof report` (or `archprof report --out DIR`). "
             "Every table comes as CSV (exact numbers), Markdown and LaTeX (booktabs).", ""]
    for report in reports(ps):
        for suffix, text in ((".csv", table_to_csv(report.table, report.conditions)), (".md", to_markdown([report.table], raw=False)),
                             (".tex", to_latex([report.table], raw=False, layout=Layout(command="report")))):
            path = out / f"{report.name}{suffix}"
            write_atomic(path, text)
            written.append(path)
        index.append(f"- {report.table.title}: [{report.name}.md]({report.name}.md), "
                     f"[CSV]({report.name}.csv), [LaTeX]({report.name}.tex)")
    index += ["", "## Figures", ""]
    for stem, data in figures(ps).items():
        written += write_figure(data, out / stem)
        drawn = ", ".join(f"[{suffix[1:].upper()}]({stem}{suffix})" for suffix in FIGURE_FORMATS)
        index.append(f"- {data.title}: {drawn}, [data]({stem}.json)")
    index += ["", "![MobileNet V1 against V2, MACs per stage](v1_v2_stages.svg)", "",
              "![ResNet-50 against MobileNetV2, MACs per stage by output stride](resnet50_v2_strides.svg)", ""]
    write_atomic(out / "README.md", "\n".join(index))
    written.append(out / "README.md")
    return written
