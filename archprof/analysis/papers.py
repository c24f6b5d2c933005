"""The papers' tables reproduced: counted values beside their publications, and why they differ.

One function per published table. Each row holds the counted value, the published one
(:mod:`archprof.analysis.published`) and their difference; where they depart, the row's note says
how, read from the two numbers (a truncation, two digits swapped, another table of the same paper)
and never typed. The count is never bent to match. ``archprof report`` lays these rows out.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from archprof.analysis import published as pub
from archprof.analysis.blocks import BlockCost, BlockShapes, compare_blocks
from archprof.analysis.memory import MaterializedRow
from archprof.analysis.profile import Conditions, Profile, profile
from archprof.analysis.published import Published

V1_WIDTHS = (1.0, 0.75, 0.5, 0.25)
V1_RESOLUTIONS = (224, 192, 160, 128)
V2_WIDTHS = (1.4, 1.3, 1.0, 0.75, 0.5, 0.35)
V2_RESOLUTIONS = (224, 192, 160, 128, 96)
DEPTHS = (18, 34, 50, 101, 152)


class Profiles:
    """Profiles by (name, options), each traced once however many tables use it."""

    def __init__(self, advance: Callable[[str], None] | None = None) -> None:
        self.cache: dict[tuple, Profile] = {}
        self.advance = advance or (lambda _: None)
        self.used: list[Profile] = []  # the profiles asked for since the last reset: a table's conditions

    def get(self, name: str, step: dict[str, str] | None = None, **options: Any) -> Profile:
        """The profile of ``name`` built with ``options``; ``step``: a training step's profile()
        arguments (mode, optimizer, precision)."""
        from archprof.architectures import build_model

        key = (name, tuple(sorted(options.items())), tuple(sorted((step or {}).items())))
        if key not in self.cache:
            self.advance(f"{name} {options}" if options else name)
            label = name + (":" + ",".join(f"{k}={v}" for k, v in options.items()) if options else "")
            self.cache[key] = profile(build_model(name, device="meta", **options), name=label, **(step or {}))
        if self.cache[key] not in self.used:
            self.used.append(self.cache[key])
        return self.cache[key]


# --- one counted value against its publication ---------------------------------------------------


@dataclass(frozen=True)
class Against:
    """A counted value beside the value a publication prints for it (None: it prints none)."""

    counted: float
    published: Published | None = None

    @property
    def printed(self) -> float | None:
        return None if self.published is None else self.published.value

    @property
    def difference(self) -> float | None:
        """Counted minus published."""
        return None if self.published is None else self.counted - self.published.value

    @property
    def departs(self) -> bool:
        """Published, and the count does not round to it at its printed precision."""
        return self.published is not None and not self.published.matches(self.counted)

    @property
    def truncated(self) -> bool:
        """The publication is the count cut (not rounded) at its last printed digit."""
        return self.published is not None and _cut(self.counted, self.published.step) == _cut(self.published.value, self.published.step)

    @property
    def digits_swapped(self) -> bool:
        """The publication is the count at its printed precision with two of its digits swapped."""
        if self.published is None:
            return False
        counted, printed = (_digits(v, self.published.step) for v in (self.counted, self.published.value))
        wrong = [i for i, (a, b) in enumerate(zip(counted, printed, strict=False)) if a != b]
        return len(counted) == len(printed) and len(wrong) == 2 and sorted(counted) == sorted(printed)


def _cut(value: float, step: float) -> int:
    return math.floor(value / step + 1e-9)


def _digits(value: float, step: float) -> str:
    return str(round(value / step))


PREFIXES = ((1e9, "G"), (1e6, "M"), (1e3, "K"))


def at_precision(value: float, step: float) -> str:
    """``value`` with its last digit at ``step`` (a power of ten), in K/M/G: ``569 M``, ``3.664 G``."""
    scale, prefix = next(((s, p) for s, p in PREFIXES if abs(value) >= s), (1.0, ""))
    decimals = max(0, round(-math.log10(step / scale)))
    return f"{value / scale:.{decimals}f} {prefix}".rstrip()


def printed(published: Published) -> str:
    """A published value as it is printed: ``4.2 M``."""
    return at_precision(published.value, published.step)


def percent(value: float, step: float) -> str:
    return f"{value:.{max(0, round(-math.log10(step)))}f} %"


# --- MobileNet V2 paper, Table 4: V1 against V2 --------------------------------------------------


@dataclass(frozen=True)
class ModelAgainstPaper:
    model: str  # the paper's row: "MobileNetV1", "MobileNetV2 (1.4)"
    profile: Profile
    params: Against
    macs: Against
    note: str


@dataclass(frozen=True)
class V1AgainstV2:
    rows: list[ModelAgainstPaper]
    # V2 / V1 (width 1.0, 224): params, MACs, activations, peak activation memory, largest materialized tensor
    ratios: dict[str, float]


# The V2 paper's Table 4 rows, as built: (name, options)
V2_TABLE4_MODELS = {"MobileNetV1": ("mobilenet_v1", {}), "MobileNetV2": ("mobilenet_v2", {}),
                    "MobileNetV2 (1.4)": ("mobilenet_v2", {"width": 1.4})}
# Another publication of a Table 4 row's count: the V1 paper's own figure for V1.
OWN_PAPER = {"MobileNetV1": ("V1", pub.V1_TABLE4)}


def v2_table4(ps: Profiles) -> V1AgainstV2:
    """MobileNet V1 and V2 against the V2 paper's Table 4 (224 x 224)."""
    rows = []
    for model, (name, options) in V2_TABLE4_MODELS.items():
        p = ps.get(name, **options)
        params_pub, macs_pub = pub.V2_TABLE4[model]
        params, macs = Against(p.totals.params, params_pub), Against(p.totals.macs, macs_pub)
        rows.append(ModelAgainstPaper(model, p, params, macs, _table4_note(model, p, params, macs)))
    v1, v2 = rows[0].profile, rows[1].profile
    ratios = {
        "params": v2.totals.params / v1.totals.params,
        "MACs": v2.totals.macs / v1.totals.macs,
        "activations": v2.totals.activations / v1.totals.activations,
        "peak activation memory": v2.totals.peak_activation_bytes / v1.totals.peak_activation_bytes,
        "largest materialized tensor": v2.materialized_peak_bytes() / v1.materialized_peak_bytes(),
    }
    return V1AgainstV2(rows, ratios)


def _table4_note(model: str, p: Profile, params: Against, macs: Against) -> str:
    if not (params.departs or macs.departs):
        return ""
    if model in OWN_PAPER:
        paper, (own_params, own_macs) = OWN_PAPER[model]
        if own_params.matches(params.counted) and own_macs.matches(macs.counted):
            return (f"the V2 paper prints {printed(macs.published)} mult-adds for {paper}; the {paper} paper's own "
                    f"{own_macs.source.rpartition(' paper ')[2]} prints {printed(own_macs)}, which the count matches")
    assert params.published is not None and macs.published is not None
    near = all(abs(a.difference) <= 1.5 * a.published.step for a in (params, macs))
    if near:  # one more digit shows how near the count is; BN's affine terms do not close the gap
        affine = sum(r.params for r in p.group("type") if r.name == "normalization")
        step = params.published.step / 10
        return (f"printed {printed(params.published)} parameters and {printed(macs.published)} mult-adds; counted "
                f"{at_precision(params.counted, step)} ({at_precision(params.counted - affine, step)} without BN's "
                f"affine terms) and {at_precision(macs.counted, macs.published.step / 10)}")
    counted = f"{at_precision(params.counted, params.published.step)} and {at_precision(macs.counted, macs.published.step)}"
    if model.startswith("MobileNetV2"):  # built from the V2 paper's own Table 2: the paper contradicts itself
        return (f"printed {printed(params.published)} and {printed(macs.published)}; Table 2's layers at width "
                f"{p.config['width']} (channels rounded to multiples of 8) hold {counted}")
    return f"printed {printed(params.published)} and {printed(macs.published)}; counted {counted}"


# --- MobileNet V1 paper, Table 2: resources per layer type ----------------------------------------


@dataclass(frozen=True)
class LayerTypeShare:
    layer_type: str
    macs_share: Against  # % of the model's MACs
    params_share: Against  # % of its conv and FC weights
    note: str


@dataclass(frozen=True)
class V1LayerTypes:
    rows: list[LayerTypeShare]
    published_macs_sum: float  # what the printed shares of mult-adds add up to
    counted_macs_sum: float


def v1_table2(ps: Profiles) -> V1LayerTypes:
    """1.0 MobileNet-224's share of mult-adds and parameters per layer type (the V1 paper's Table 2).
    Parameter shares count conv and FC weights as the paper does: BN's affine terms and the FC bias
    are left out."""
    p = ps.get("mobilenet_v1")
    groups = {r.name: r for r in p.group("type")}
    weights = {t: groups[t].params for t in pub.V1_LAYER_TYPES}
    weights["fully connected"] -= p.config["num_classes"]  # the FC bias, which the paper leaves out
    total_weights = sum(weights.values())
    rows = []
    for t, (macs_pub, params_pub) in pub.V1_LAYER_TYPES.items():
        macs = Against(100 * groups[t].macs / p.totals.macs, macs_pub)
        params = Against(100 * weights[t] / total_weights, params_pub)
        note = ""
        if macs.digits_swapped and not params.departs:
            note = (f"printed {percent(macs_pub.value, macs_pub.step)}: the counted "
                    f"{percent(macs.counted, macs_pub.step)} with two digits swapped")
        elif macs.departs or params.departs:
            note = "differs beyond the printed rounding"
        rows.append(LayerTypeShare(t, macs, params, note))
    return V1LayerTypes(rows, sum(m.value for m, _ in pub.V1_LAYER_TYPES.values()), sum(r.macs_share.counted for r in rows))


# --- MobileNet V1 paper, Tables 6 and 7: width x resolution ---------------------------------------


@dataclass(frozen=True)
class GridPoint:
    width: float
    resolution: int
    profile: Profile
    macs: Against
    params: Against
    note: str


def truncation_notes(printed_as: list[tuple[str, Against]]) -> list[str]:
    """Per (label, count) of one published table, why the count departs: the table cut it at the
    printed digit (and, if it rounds others, which), or more than that; "" where it matches."""
    rounded = [label for label, a in printed_as if a.published is not None and not a.departs and not a.truncated]
    where = f"where {_and(rounded)} {'is' if len(rounded) == 1 else 'are'} rounded" if rounded else "not rounded"
    notes = []
    for _, a in printed_as:
        if not a.departs:
            notes.append("")
        elif a.truncated:
            assert a.published is not None
            notes.append(f"printed {printed(a.published)} for {at_precision(a.counted, a.published.step / 100)}: truncated, {where}")
        else:
            notes.append("differs beyond the printed rounding")
    return notes


def _and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def v1_tables6_7(ps: Profiles) -> list[GridPoint]:
    """MobileNet V1 at every width and resolution; Table 6 prints width at 224, Table 7 resolution at 1.0."""
    points = []
    for w in V1_WIDTHS:
        for r in V1_RESOLUTIONS:
            p = ps.get("mobilenet_v1", width=w, resolution=r)
            macs_pub = pub.V1_WIDTH[w][0] if r == 224 else (pub.V1_RESOLUTION.get(r) if w == 1.0 else None)
            params_pub = pub.V1_WIDTH[w][1] if r == 224 else None
            points.append(GridPoint(w, r, p, Against(p.totals.macs, macs_pub), Against(p.totals.params, params_pub), ""))
    notes = truncation_notes([(f"{g.width} at {g.resolution}", g.macs) for g in points])
    return [replace(g, note=note) for g, note in zip(points, notes, strict=True)]


def v2_grid(ps: Profiles) -> list[GridPoint]:
    """MobileNet V2 at every width and resolution; the V2 paper's Table 4 prints two of them."""
    published = {(1.0, 224): pub.V2_TABLE4["MobileNetV2"], (1.4, 224): pub.V2_TABLE4["MobileNetV2 (1.4)"]}
    points = []
    for w in V2_WIDTHS:
        for r in V2_RESOLUTIONS:
            p = ps.get("mobilenet_v2", width=w, resolution=r)
            params_pub, macs_pub = published.get((w, r), (None, None))
            macs, params = Against(p.totals.macs, macs_pub), Against(p.totals.params, params_pub)
            note = "see v1_vs_v2: the V2 paper's Table 4 differs from its own Table 2" if macs.departs or params.departs else ""
            points.append(GridPoint(w, r, p, macs, params, note))
    return points


# --- ResNet paper, Table 1, and torchvision's metadata --------------------------------------------


@dataclass(frozen=True)
class ResNetDepth:
    depth: int
    table1: Against  # MACs with the stride in the 1x1 (MSRA, as the paper) against Table 1's FLOPs (mult-adds)
    torchvision_macs: Against  # MACs with the stride in the 3x3 (v1.5) against torchvision's GFLOPS
    params: Against  # against torchvision's num_params
    note: str


def resnet_table1(ps: Profiles) -> list[ResNetDepth]:
    """ResNet-18 to -152 at 224 x 224 against the ResNet paper's Table 1 and torchvision."""
    rows = []
    for d in DEPTHS:
        v15 = ps.get(f"resnet{d}")
        msra = ps.get(f"resnet{d}", stride_in_1x1=True) if d >= 50 else v15  # basic blocks: the stride is in a 3x3 either way
        tv = pub.TORCHVISION.get(f"resnet{d}")
        rows.append(ResNetDepth(d, Against(msra.totals.macs, pub.RESNET_TABLE1[d]),
                                Against(v15.totals.macs, tv[1] if tv else None),
                                Against(v15.totals.params, tv[0] if tv else None), ""))
    notes = truncation_notes([(str(r.depth), r.table1) for r in rows])
    return [replace(r, note=note) for r, note in zip(rows, notes, strict=True)]


# --- MobileNet V2 paper, Table 3: the largest materialized tensor ---------------------------------


@dataclass(frozen=True)
class MaterializedAt:
    resolution: int
    v1: Against  # the largest materialized tensor (16-bit), against Table 3's max row
    v2: Against
    v1_naive_peak: int  # the liveness peak of every tensor, 16-bit
    v2_naive_peak: int
    note: str

    @property
    def ratio(self) -> float:
        return self.v2.counted / self.v1.counted


@dataclass(frozen=True)
class SizeRow:
    height: int
    width: int
    v1: MaterializedRow | None
    v2: MaterializedRow | None


@dataclass(frozen=True)
class V2Table3:
    rows: list[MaterializedAt]
    sizes: list[SizeRow]  # at 224, largest spatial size first
    # which tensors Table 3's max row is: (published, the counted largest tensor), V1 then V2
    max_row: list[tuple[Published, MaterializedRow]] = field(default_factory=list)


def v2_table3(ps: Profiles) -> V2Table3:
    """The V2 paper's activation memory (section 5.1, Table 3: 16-bit, only the tensors between
    blocks materialized) for V1 and V2 at each resolution."""
    rows = []
    for r in V2_RESOLUTIONS:
        v1, v2 = ps.get("mobilenet_v1", resolution=r), ps.get("mobilenet_v2", resolution=r)
        p1 = pub.V2_TABLE3_MAX["MobileNetV1"] if r == 224 else None
        p2 = pub.V2_TABLE3_MAX["MobileNetV2"] if r == 224 else None
        a1, a2 = Against(v1.materialized_peak_bytes(), p1), Against(v2.materialized_peak_bytes(), p2)
        note = "differs from the printed max row" if a1.departs or a2.departs else ""
        rows.append(MaterializedAt(r, a1, a2, v1.totals.peak_activation_bytes // 2, v2.totals.peak_activation_bytes // 2, note))
    tensors = [ps.get("mobilenet_v1").materialized_memory(), ps.get("mobilenet_v2").materialized_memory()]
    v1, v2 = ({(m.height, m.width): m for m in t} for t in tensors)
    sizes = [SizeRow(*key, v1.get(key), v2.get(key)) for key in sorted(set(v1) | set(v2), key=lambda k: -k[0] * k[1])]
    max_row = [(pub.V2_TABLE3_MAX[model], max(t, key=lambda m: m.bytes)) for model, t in zip(("MobileNetV1", "MobileNetV2"), tensors, strict=True)]
    return V2Table3(rows, sizes, max_row)


# --- torchvision's detectors ----------------------------------------------------------------------


@dataclass(frozen=True)
class DetectorRow:
    detector: str
    backbone: str
    profile: Profile
    macs: Against
    params: Against
    parts: dict[str, float]  # share of the MACs per part (backbone, neck, head)
    levels: dict[str, float]  # share of the MACs per pyramid level
    note: str


DETECTOR_BACKBONES = (("ResNet-50", "resnet50"), ("ResNet-101", "resnet101"), ("MobileNetV2", "mobilenet_v2"))
DETECTOR_HEAD_CHANNELS = (256, 128)
DETECTOR_INPUTS = ((800, 1333), 512)  # the papers' test scale, and a small square input


def detectors(ps: Profiles) -> list[DetectorRow]:
    """FCOS and RetinaNet as torchvision publishes them (800 x 800), then the seed's FCOS per
    backbone, head width and input, each split per part and per pyramid level."""
    runs: list[tuple[str, str, Profile, tuple[Published, Published] | None]] = [
        ("FCOS (torchvision)", "ResNet-50", ps.get("fcos", preset="torchvision", resolution=800),
         pub.TORCHVISION_DETECTION["fcos_resnet50_fpn"]),
        ("RetinaNet (torchvision)", "ResNet-50", ps.get("retinanet", preset="torchvision", resolution=800),
         pub.TORCHVISION_DETECTION["retinanet_resnet50_fpn"]),
    ]
    for label, backbone in DETECTOR_BACKBONES:
        for channels in DETECTOR_HEAD_CHANNELS:
            for size in DETECTOR_INPUTS:
                runs.append(("FCOS (seed)", label, ps.get("fcos", backbone=backbone, head_channels=channels, resolution=size), None))
    rows = []
    for detector, backbone, p, published in runs:
        params_pub, macs_pub = published or (None, None)
        macs, params = Against(p.totals.macs, macs_pub), Against(p.totals.params, params_pub)
        note = "differs from the published count beyond its printed precision" if macs.departs else ""
        if params.departs:
            note = "the parameter count differs from the published one"
        rows.append(DetectorRow(detector, backbone, p, macs, params,
                                {r.name: r.macs / p.totals.macs for r in p.group("part")},
                                {r.name: r.macs / p.totals.macs for r in p.group("level")}, note))
    return rows


# --- the seed's backbone variants (no publication: the counts alone) -------------------------------


SEED_VARIANTS = (
    ("R-50-C4", "resnet50", dict(stages="C4")),
    ("R-50-C5", "resnet50", dict(stages="C5")),
    ("R-50-FPN", "resnet50", dict(stages="FPN")),
    ("R-101-FPN", "resnet101", dict(stages="FPN")),
    ("R-50-FPN, GN", "resnet50", dict(stages="FPN", norm="gn", freeze_at=0)),
    ("X-101-32x8d-FPN", "resnet101", dict(stages="FPN", groups=32, width_per_group=8)),
    ("R-50-FPN, DCN conv3-5", "resnet50", dict(stages="FPN", dcn_stages=(3, 4, 5))),
    ("R-50-FPN, MDCN conv3-5", "resnet50", dict(stages="FPN", dcn_stages=(3, 4, 5), modulated_dcn=True)),
)
SEED_DEFAULTS = dict(backbone=True, stride_in_1x1=True, norm="frozen_bn", freeze_at=2)


@dataclass(frozen=True)
class SeedVariant:
    variant: str
    profile: Profile
    deformable_macs: int


def seed_variants(ps: Profiles) -> list[SeedVariant]:
    """The maskrcnn-benchmark / FCOS backbone variants at their defaults (stride in the 1x1, frozen
    BN, FREEZE_CONV_BODY_AT 2, no pooling or fc)."""
    rows = []
    for label, name, options in SEED_VARIANTS:
        p = ps.get(name, **{**SEED_DEFAULTS, **options})
        rows.append(SeedVariant(label, p, sum(r.macs for r in p.group("type") if r.name == "deformable conv")))
    return rows


# --- the ResNet bottleneck against the MobileNet V2 inverted residual, where each occurs -----------


BLOCK_SHAPES = (
    ("ResNet-50 conv2_x", 256, 56), ("ResNet-50 conv3_x", 512, 28), ("ResNet-50 conv4_x", 1024, 14),
    ("ResNet-50 conv5_x", 2048, 7), ("MobileNetV2 56x56", 24, 56), ("MobileNetV2 28x28", 32, 28),
    ("MobileNetV2 14x14 (64)", 64, 14), ("MobileNetV2 14x14 (96)", 96, 14), ("MobileNetV2 7x7", 160, 7),
)
EXPANSION = 6  # the inverted residual's t, as MobileNetV2 runs it


@dataclass(frozen=True)
class BlocksAt:
    where: str
    channels: int
    size: int
    bottleneck: BlockCost
    inverted_residual: BlockCost
    conditions: Conditions | None

    @property
    def ratio(self) -> float:
        return self.inverted_residual.macs / self.bottleneck.macs


@dataclass(frozen=True)
class BlocksWhereTheyOccur:
    rows: list[BlocksAt]
    # MACs per output position over C^2 at the widest row: the inverted residual's two 1x1 convs at t
    # times the width (2t, plus its depthwise), the bottleneck's at a quarter of it (1/4 + 9/16 + 1/4)
    inverted_residual_per_c2: float
    bottleneck_per_c2: float
    # the least and most output channels of each network's blocks (MobileNetV2's that expand)
    inverted_residual_channels: tuple[int, int]
    bottleneck_channels: tuple[int, int]


def bottleneck_against_inverted_residual() -> BlocksWhereTheyOccur:
    """Both blocks at stride 1 at each width and size where ResNet-50 or MobileNetV2 runs one."""
    rows = []
    for where, channels, size in BLOCK_SHAPES:
        comparison = compare_blocks(BlockShapes(channels, channels, size, 1, EXPANSION))
        blocks = {b.block: b for b in comparison.blocks}
        rows.append(BlocksAt(where, channels, size, blocks["Bottleneck"], blocks["InvertedResidual"], comparison.conditions))
    widest = max(rows, key=lambda r: r.channels)
    per_c2 = widest.size * widest.size * widest.channels**2
    return BlocksWhereTheyOccur(rows, widest.inverted_residual.macs / per_c2, widest.bottleneck.macs / per_c2,
                                _block_channels("mobilenet_v2", "InvertedResidual"), _block_channels("resnet50", "Bottleneck"))


def _block_channels(network: str, block: str) -> tuple[int, int]:
    """The least and most output channels of ``network``'s ``block`` modules that open with a full
    (not depthwise) conv: MobileNetV2's expanding inverted residuals, every bottleneck."""
    from torch import nn

    from archprof.architectures import build_model

    outs = []
    for module in build_model(network, device="meta").modules():
        convs = [m for m in module.modules() if isinstance(m, nn.Conv2d)]
        if getattr(module, "archprof_block", None) == block and convs[0].groups == 1:
            outs.append(convs[-1].out_channels)
    return min(outs), max(outs)
