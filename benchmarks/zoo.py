"""The torchvision model zoo as a published check: archprof's parameters and MACs against the
numbers torchvision publishes with each model's weights (issue 16).

torchvision needs its own torch build, so this runs in an environment of its own, not in CI:

    python3 -m venv /tmp/tvenv && /tmp/tvenv/bin/pip install torch==2.14.1 torchvision==0.29.1
    /tmp/tvenv/bin/pip install -e . && /tmp/tvenv/bin/python benchmarks/zoo.py

Every classification model (``torchvision.models.list_models(module=torchvision.models)``), then
the segmentation and video models whose weights carry ``_ops``, is built with ``weights=None`` on
the meta device (no weight memory, nothing downloaded) with the options its default weights imply
(ViT's ``image_size``, the segmentation models' auxiliary classifier), and profiled at its weights'
evaluation input: ``weights.DEFAULT.transforms().crop_size`` for classification and video (16 frames,
the clip torchvision measured its video ``_ops`` on), ``resize_size`` for segmentation. Its
parameters and MACs are compared with ``weights.meta["num_params"]`` and ``weights.meta["_ops"]``:
torchvision's "GFLOPS" are multiply-accumulates (conv, linear and matmul), archprof's ``macs``,
published to three decimals. Writes reports/zoo.md and reports/zoo.csv.
"""

from __future__ import annotations

import argparse
import csv
import importlib.metadata
import logging
import platform
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torchvision
from torchvision.models import get_model, get_model_builder, get_model_weights, list_models

import archprof

ROOT = Path(__file__).resolve().parent.parent
DECIMALS = 3  # torchvision's _ops are GFLOPS rounded to three decimals
# torchvision measured every video model's _ops on a 16-frame clip, though S3D's and Swin3D's weights
# document evaluation on 128 and 32 frames (their MACs grow linearly with frames: 8x and 2x).
VIDEO_FRAMES = 16


@dataclass
class Row:
    family: str
    model: str
    input: str
    params: int | None = None
    published_params: int | None = None
    macs: int | None = None
    published_gflops: float | None = None
    uncounted: str = ""
    built_on: str = "meta"
    traced_on: str = ""
    build_s: float = 0.0
    profile_s: float = 0.0
    error: str = ""

    @property
    def params_agree(self) -> bool:
        return self.params is not None and self.params == self.published_params

    @property
    def macs_agree(self) -> bool:
        return self.macs is not None and self.published_gflops is not None and \
            round(self.macs / 1e9, DECIMALS) == round(self.published_gflops, DECIMALS)

    @property
    def agreement(self) -> str:
        if self.error:
            return "error"
        if self.params_agree and self.macs_agree:
            return "both"
        parts = []
        if not self.params_agree:
            parts.append(f"params {self.params - self.published_params:+,}")
        if not self.macs_agree:
            parts.append(f"GMACs {self.macs / 1e9 - self.published_gflops:+.3f}")
        return "differs: " + ", ".join(parts)


def build_options(family: str, name: str, weights: Any) -> dict[str, Any]:
    """The options torchvision's builder sets itself when it is given these weights."""
    options: dict[str, Any] = {}
    if name.startswith("vit_"):  # the SWAG weights are for larger images; the builder overwrites image_size
        options["image_size"] = weights.meta["min_size"][0]
    # With weights, GoogLeNet's builder drops the auxiliary classifiers after loading (Inception v3's keeps them).
    if name == "googlenet":
        options["aux_logits"] = False
    if family == "segmentation":
        options["weights_backbone"] = None  # else the builder downloads ImageNet weights for the backbone
        if not name.startswith("lraspp"):
            options["aux_loss"] = True  # the published weights (and num_params) include the auxiliary classifier
    return options


def input_shape(family: str, weights: Any) -> tuple[int, ...]:
    transforms = weights.transforms()
    if family == "segmentation":
        size = transforms.resize_size[0]
        return (1, 3, size, size)
    height, width = (transforms.crop_size * 2)[:2] if len(transforms.crop_size) == 1 else transforms.crop_size
    if family == "video":
        return (1, 3, VIDEO_FRAMES, height, width)
    return (1, 3, height, width)


def check(family: str, name: str) -> Row:
    weights = get_model_weights(name).DEFAULT
    shape = input_shape(family, weights)
    row = Row(family, name, "x".join(map(str, shape)), published_params=weights.meta["num_params"],
              published_gflops=weights.meta.get("_ops"))
    options = build_options(family, name, weights)
    try:
        start = time.perf_counter()
        try:
            with torch.device("meta"):
                model = get_model(name, weights=None, **options).eval()
        except NotImplementedError:  # RegNet's builder reads its widths out of a tensor: only a real one will do
            row.built_on = "cpu"
            model = get_model(name, weights=None, **options).eval()
        row.build_s = time.perf_counter() - start
        start = time.perf_counter()
        p = archprof.profile(model, shape, build=lambda: get_model(name, weights=None, **options).eval())
        row.profile_s = time.perf_counter() - start
    except Exception as err:  # one model's failure is a row of the report, not the end of the run
        row.error = f"{type(err).__name__}: {str(err).strip().splitlines()[0] if str(err).strip() else ''}"[:200]
        return row
    row.params, row.macs, row.traced_on = p.totals.params, p.totals.macs, p.device
    row.uncounted = "; ".join(f"{op} x{n}" for op, n in sorted(p.uncounted.items()))
    return row


def models() -> list[tuple[str, str]]:
    jobs = [("classification", n) for n in list_models(module=torchvision.models)]
    for family, module in (("segmentation", torchvision.models.segmentation), ("video", torchvision.models.video)):
        jobs += [(family, n) for n in list_models(module=module)
                 if "_ops" in get_model_weights(n).DEFAULT.meta]
    return jobs


def summary(rows: list[Row]) -> str:
    families = ", ".join(f"{sum(r.family == f for r in rows)} {f}" for f in dict.fromkeys(r.family for r in rows))
    both = sum(r.agreement == "both" for r in rows)
    params = sum(r.params_agree for r in rows)
    macs = sum(r.macs_agree for r in rows)
    return (f"{both} of {len(rows)} torchvision models ({families}) match the parameters and MACs their weights "
            f"publish ({params} on parameters, exactly; {macs} on MACs, to the published {DECIMALS} decimals of "
            f"GFLOPS), in {sum(r.profile_s for r in rows):.1f} s of profiling on the meta device")


def write_csv(rows: list[Row], path: Path) -> None:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["family", "model", "input", "params", "published_params", "macs", "published_gflops",
                         "agreement", "uncounted_ops", "built_on", "traced_on", "build_s", "profile_s", "error"])
        for r in rows:
            writer.writerow([r.family, r.model, r.input, r.params if r.params is not None else "", r.published_params,
                             r.macs if r.macs is not None else "", r.published_gflops, r.agreement, r.uncounted,
                             r.built_on, r.traced_on, f"{r.build_s:.3f}", f"{r.profile_s:.3f}", r.error])


def write_markdown(rows: list[Row], path: Path, argv: str) -> None:
    versions = ", ".join(f"{p} {importlib.metadata.version(p)}" for p in ("torch", "torchvision", "archprof"))
    lines = [
        "# The torchvision model zoo as a published check", "",
        f"Generated by `{argv}` on {time.strftime('%Y-%m-%d')} ({versions}, Python {platform.python_version()}, "
        "CPU). Raw figures: [zoo.csv](zoo.csv).", "",
        f"**{summary(rows)}.**", "",
    ]
    families = list(dict.fromkeys(r.family for r in rows))
    lines += [f"- {family}: {sum(r.agreement == 'both' for r in rows if r.family == family)} of "
              f"{sum(r.family == family for r in rows)} agree, "
              f"{sum(r.profile_s for r in rows if r.family == family):.1f} s of profiling." for family in families]
    on_cpu = [r.model for r in rows if r.built_on != "meta"]
    traced = sorted({r.traced_on for r in rows if r.traced_on})
    lines += [
        "", "Each model is built with `weights=None` under `torch.device(\"meta\")`, with the options its builder "
        "sets when given the default weights (ViT's `image_size` for the SWAG weights at 384 and 518, the "
        "segmentation models' auxiliary classifier, GoogLeNet without the auxiliary classifiers its builder drops "
        "after loading the weights: `googlenet(weights=None)` keeps them, 6,379,984 parameters more), and profiled with `archprof.profile` at its weights' "
        "evaluation input: `weights.DEFAULT.transforms().crop_size` (classification; video, on 16 frames), "
        "`resize_size` (segmentation). Video is profiled on 16 frames because torchvision measured every video "
        "model's `_ops` on a 16-frame clip: S3D's and Swin3D's weights document evaluation on 128 and 32 frames "
        "(`clip_len` in their `_docs`), and at those archprof counts 8x and 2x the published figure "
        "(s3d at 128 frames: 143.833 G, and 8 x 17.979 = 143.832; swin3d_t at 32 frames: 87.764 G = 2 x 43.882), "
        "their MACs being linear in frames. Published figures are "
        "`weights.meta[\"num_params\"]` and `weights.meta[\"_ops\"]`, torchvision's GFLOPS, which count "
        "multiply-accumulates of convolutions, linear layers and matrix products, the quantity archprof calls "
        "MACs; agreement means parameters equal and MACs equal at the published 3 decimals of G. Time is "
        "`archprof.profile`'s wall time, once, cold, on a 2-core machine shared with other work.", "",
        f"Every profile traced on: {', '.join(traced)}. "
        + (f"{len(on_cpu)} models ({', '.join(on_cpu)}) are built on the CPU and traced on meta, because their "
           "builder reads the stage widths out of a tensor (`.tolist()`), which a meta tensor cannot give."
           if on_cpu else "Every model is built on meta."), "",
    ]
    differing = [r for r in rows if r.agreement != "both"]
    if differing:
        lines += ["## Where archprof and torchvision differ, and why", ""]
        for r in differing:
            lines.append(f"- **{r.model}** ({r.input}): {r.agreement}"
                         + (f" ({r.error})" if r.error else "") + ".")
        lines.append("")
    for family in families:
        lines += [f"## {family.capitalize()}", "",
                  "| model | input | params | published params | MACs | published GFLOPS | agreement | uncounted ops | time |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for r in (r for r in rows if r.family == family):
            params = f"{r.params:,}" if r.params is not None else "-"
            macs = f"{r.macs:,}" if r.macs is not None else "-"
            lines.append(f"| {r.model} | {r.input} | {params} | {r.published_params:,} | {macs} | "
                         f"{r.published_gflops:.3f} | {r.agreement} | {r.uncounted or '-'} | {r.profile_s * 1000:.0f} ms"
                         + (" (built on cpu)" if r.built_on != "meta" else "") + " |")
        lines.append("")
    path.write_text("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "reports")
    parser.add_argument("--only", help="comma-separated model names (default: all)")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    jobs = models()
    if args.only:
        wanted = set(args.only.split(","))
        jobs = [(f, n) for f, n in jobs if n in wanted]
    assert all(get_model_builder(n) for _, n in jobs)
    rows = []
    for family, name in jobs:
        row = check(family, name)
        rows.append(row)
        print(f"{family:<15}{name:<32}{row.input:<18}{row.agreement:<40}{row.profile_s * 1000:8.0f} ms"
              + (f"  uncounted: {row.uncounted}" if row.uncounted else ""), flush=True)
    print(summary(rows))
    if not args.only:
        args.out.mkdir(parents=True, exist_ok=True)
        write_csv(rows, args.out / "zoo.csv")
        write_markdown(rows, args.out / "zoo.md", "python benchmarks/zoo.py")


if __name__ == "__main__":
    main()
