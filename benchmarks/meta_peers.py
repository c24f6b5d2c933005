"""archprof against the fastest peer and the floor, all three on the meta device (issue 16).

    .venv/bin/python benchmarks/meta_peers.py [--repeats 21] [--report reports/benchmarks.md] [--mode inference]

For each model, in one process, three calls on the same meta-built model and the same meta inputs:

- ``archprof``: ``archprof.profile(model, ...)``, as a user calls it;
- ``FlopCounterMode``: ``with FlopCounterMode(display=False): model(...)``, torch's own counter,
  the fastest peer (the only one that runs on meta);
- ``bare forward``: ``model(...)`` and nothing else, the floor of any count made at the dispatcher;
  ``bare forward, GC off`` is the same with the garbage collector paused, as archprof's trace does.

The non-archprof calls run under ``torch.no_grad()``, as archprof's own trace does. Repeats are
interleaved (one call of each, in an order that rotates every round, after one warm-up of each), so
load from other work on a shared machine falls on all alike; ``gc.collect()`` runs before every
timed call. Medians, with min and max. The counts are checked as well: archprof's MACs must equal
FlopCounterMode's FLOPs / 2 on every model, so both did the same work.

With ``--report``, the markdown section is written into that file in place of an earlier one
(from its heading to the next ``## `` heading), or appended.

``--mode`` picks what is timed: ``inference`` (an eval-mode forward) or ``train`` (a training step:
``archprof.profile(..., mode="train")`` against ``FlopCounterMode`` around the same meta forward in
training mode, archprof's loss (``tracing.autograd.scalar_loss``) and ``backward()``, and a bare meta
forward and backward as the floor); its section is written under its own heading.
"""

from __future__ import annotations

import argparse
import gc
import importlib.metadata
import logging
import os
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from _sections import write_section  # benchmarks/, the script's own folder
from torch.utils.flop_counter import FlopCounterMode

import archprof
from archprof.architectures.spec import build_from_spec, parse_spec
from archprof.tracing.autograd import scalar_loss

IMAGE = (1, 3, 224, 224)
# (label, how it is built, what it is)
MODELS = [
    ("resnet50", "resnet50", "archprof's builder, 1x3x224x224"),
    ("resnet152", "resnet152", "archprof's builder, 1x3x224x224"),
    ("mobilenet_v2", "mobilenet_v2", "archprof's builder, 1x3x224x224"),
    # transformers' ViTConfig defaults are ViT-B/16 at 224 (d 768, 12 layers, 12 heads, MLP 3072):
    # the bare encoder (ViTModel, with its pooler), 197 tokens.
    ("vit_b_16", "hf:vit", "transformers ViTModel from ViTConfig(), 1x3x224x224"),
    # A small Llama-style decoder: RMSNorm, rotary embeddings, grouped-query attention, SwiGLU.
    ("llama_small", "hf:llama:hidden_size=512,num_hidden_layers=8,num_attention_heads=8,num_key_value_heads=2,"
     "intermediate_size=1376,vocab_size=32000,seq_len=128",
     "transformers LlamaForCausalLM: d 512, 8 layers, 8 heads, 2 KV heads, SwiGLU 1376, vocab 32000, 1x128 tokens"),
]
TOOLS = ["archprof", "FlopCounterMode", "bare forward", "bare forward, GC off"]
MODES = ("inference", "train")
HEADINGS = {
    "inference": "## On the meta device: archprof, FlopCounterMode and a bare forward",
    "train": "## A training step on the meta device: archprof, FlopCounterMode and a bare forward and backward",
}


CALLS = {
    "inference": "`archprof` is `archprof.profile(model, ...)`; `FlopCounterMode` is `with torch.no_grad(), "
                 "FlopCounterMode(display=False): model(...)`; `bare forward` is `with torch.no_grad(): model(...)`, the "
                 "floor of any count made at the dispatcher; `GC off` is the same with the garbage collector paused, as "
                 "archprof's trace pauses it.",
    "train": "`archprof` is `archprof.profile(model, ..., mode=\"train\")`; `FlopCounterMode` is `with "
             "FlopCounterMode(display=False): scalar_loss(model(...)).backward()` with the model in training mode; `bare "
             "forward` is the same forward and backward without a counter, the floor; `GC off` pauses the collector.",
}


def build(source: str, mode: str = "inference") -> tuple[torch.nn.Module, dict[str, Any], Callable[[], Any]]:
    """The meta-built model, the meta keyword inputs every tool gets, and archprof's call."""
    if source.startswith("hf:"):
        model = build_from_spec(parse_spec(source))
        specs = model.archprof_inputs.kwargs
        kwargs = {k: torch.empty(s.shape, dtype=s.dtype or torch.float32, device="meta") for k, s in specs.items()}
        return model, kwargs, lambda: archprof.profile(model, kwargs=kwargs, mode=mode)
    model = archprof.build_model(source, device="meta")
    x = torch.empty(IMAGE, device="meta")
    return model, {"x": x}, lambda: archprof.profile(model, inputs=x, mode=mode)


def run_model(model: torch.nn.Module, args: tuple, kwargs: dict[str, Any], mode: str) -> None:
    """The model's forward, or for a training step its forward, archprof's loss and the backward."""
    if mode == "inference":
        with torch.no_grad():
            model(*args, **kwargs)
        return
    model.train()
    scalar_loss(model(*args, **kwargs)).backward()
    for p in model.parameters():
        p.grad = None


def calls(
    model: torch.nn.Module, kwargs: dict[str, Any], profile: Callable[[], Any], mode: str = "inference"
) -> dict[str, Callable[[], Any]]:
    if mode not in MODES:
        raise ValueError(f"mode {mode!r} is not measured yet (measured: {', '.join(MODES)})")
    args, kw = ((kwargs["x"],), {}) if list(kwargs) == ["x"] else ((), kwargs)

    def flop_counter() -> None:
        with FlopCounterMode(display=False) as counter:
            run_model(model, args, kw, mode)
        counter.get_total_flops()

    def bare() -> None:
        run_model(model, args, kw, mode)

    def bare_gc_off() -> None:
        gc.disable()
        try:
            bare()
        finally:
            gc.enable()

    return {"archprof": profile, "FlopCounterMode": flop_counter, "bare forward": bare, "bare forward, GC off": bare_gc_off}


def check_counts(model: torch.nn.Module, kwargs: dict[str, Any], profile: Callable[[], Any], mode: str) -> tuple[int, int]:
    macs = profile().totals.macs
    args, kw = ((kwargs["x"],), {}) if list(kwargs) == ["x"] else ((), kwargs)
    with FlopCounterMode(display=False) as counter:
        run_model(model, args, kw, mode)
    return macs, counter.get_total_flops() // 2


def measure(repeats: int, mode: str = "inference") -> list[dict[str, Any]]:
    rows = []
    for label, source, what in MODELS:
        model, kwargs, profile = build(source, mode)
        runs = calls(model, kwargs, profile, mode)
        macs, fcm_macs = check_counts(model, kwargs, profile, mode)
        for run in runs.values():  # warm-up: the first meta call of a kind imports and caches
            run()
        times: dict[str, list[float]] = {tool: [] for tool in TOOLS}
        for i in range(repeats):
            order = TOOLS[i % len(TOOLS):] + TOOLS[:i % len(TOOLS)]
            for tool in order:
                gc.collect()
                start = time.perf_counter()
                runs[tool]()
                times[tool].append(time.perf_counter() - start)
        rows.append({"model": label, "what": what, "macs": macs, "fcm_macs": fcm_macs, "times": times})
        print(f"{label:<13}" + "".join(f"{tool} {statistics.median(times[tool]) * 1000:7.1f} ms   " for tool in TOOLS)
              + f"archprof/FCM {ratio(rows[-1], 'archprof', 'FlopCounterMode'):.2f}x  "
              f"archprof/bare {ratio(rows[-1], 'archprof', 'bare forward'):.2f}x"
              + ("" if macs == fcm_macs else f"   MACs differ: archprof {macs:,}, FCM {fcm_macs:,}"), flush=True)
    return rows


def median_ms(row: dict[str, Any], tool: str) -> float:
    return statistics.median(row["times"][tool]) * 1000


def ratio(row: dict[str, Any], tool: str, reference: str) -> float:
    return median_ms(row, tool) / median_ms(row, reference)


def min_ratio(row: dict[str, Any], tool: str, reference: str) -> float:
    """The ratio of the fastest calls: the least disturbed by other work on a shared machine."""
    return min(row["times"][tool]) / min(row["times"][reference])


def cell(row: dict[str, Any], tool: str) -> str:
    t = row["times"][tool]
    return f"{median_ms(row, tool):.1f} ms ({min(t) * 1000:.1f} - {max(t) * 1000:.1f})"


def markdown(rows: list[dict[str, Any]], repeats: int, argv: list[str], mode: str = "inference") -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), "") if Path("/proc/cpuinfo").exists() else platform.processor()
    versions = ", ".join(f"{p} {importlib.metadata.version(p)}" for p in ("torch", "transformers", "archprof"))
    lines = [
        HEADINGS[mode], "",
        f"Generated by `{' '.join(argv)}` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: {cpu}, "
        f"{os.cpu_count()} cores shared with other work, Python {platform.python_version()}, {versions}, "
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}.", "",
        "One process; every tool runs on the same meta-built model with the same meta inputs. "
        f"Median (min - max) of {repeats} repeats, interleaved: one call of each tool per round, in an order "
        "that rotates each round, after one warm-up of each, with `gc.collect()` before every call, so that "
        "load from other work falls on all tools alike. "
        + (CALLS[mode] + " ")
        + ("archprof's MACs equal FlopCounterMode's FLOPs / 2 on every model (checked in the run), so both "
           "counted the same work." if all(r["macs"] == r["fcm_macs"] for r in rows) else
           "archprof's MACs differ from FlopCounterMode's FLOPs / 2 on " + ", ".join(
               f"{r['model']} ({r['macs']:,} against {r['fcm_macs']:,})" for r in rows if r["macs"] != r["fcm_macs"])
           + (": FlopCounterMode's convolution_backward formula ignores groups, so it counts a depthwise "
              "convolution's gradients as a dense convolution's (torch/utils/flop_counter.py, conv_backward_flop; "
              "tests/test_training.py pins it)." if mode == "train" else ".")),
        "",
        "| model | MACs | " + " | ".join(TOOLS) + " | archprof / FCM | archprof / bare forward "
        "| of the minimums: archprof / FCM, / bare |",
        "|---" * (len(TOOLS) + 5) + "|",
    ]
    for row in rows:
        lines.append(f"| {row['model']} | {row['macs'] / 1e9:.3f} G | " + " | ".join(cell(row, t) for t in TOOLS)
                     + f" | **{ratio(row, 'archprof', 'FlopCounterMode'):.2f}x** "
                     f"({1 / ratio(row, 'archprof', 'FlopCounterMode'):.1f}x faster) "
                     f"| **{ratio(row, 'archprof', 'bare forward'):.2f}x** "
                     f"| {min_ratio(row, 'archprof', 'FlopCounterMode'):.2f}x, {min_ratio(row, 'archprof', 'bare forward'):.2f}x |")
    lines += ["", "Models: " + "; ".join(f"{row['model']}: {row['what']}" for row in rows) + "."]
    behind = [row["model"] for row in rows if ratio(row, "archprof", "FlopCounterMode") > 1 / 3]
    slower = [row["model"] for row in rows if ratio(row, "archprof", "bare forward") > 1]
    lines += ["", "Against the targets of issue 16 (at least 3x faster than FlopCounterMode on meta, no slower "
              "than a bare meta forward): "
              + (f"short of 3x on {', '.join(behind)}" if behind else "3x or more on every model")
              + "; " + (f"slower than a bare forward on {', '.join(slower)}." if slower
                        else "no slower than a bare forward on any.")]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=21, help="timed calls per tool and model")
    parser.add_argument("--report", type=Path, help="markdown file to write the section into")
    parser.add_argument("--mode", choices=MODES, default="inference", help="what is timed: an inference forward or a training step")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    rows = measure(args.repeats, args.mode)
    section = markdown(rows, args.repeats, [".venv/bin/python", "benchmarks/" + Path(__file__).name, *sys.argv[1:]], args.mode)
    print()
    print(section)
    if args.report:
        write_section(args.report, HEADINGS[args.mode], section)


if __name__ == "__main__":
    main()
