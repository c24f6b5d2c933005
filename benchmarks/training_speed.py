"""A training step's profile against the forward-only one, and against FlopCounterMode (issue 13).

    .venv/bin/python benchmarks/training_speed.py [--repeats 7] [--report reports/benchmarks.md]

In one process, on meta-built models, interleaved rounds (one call of each per round, after one
warm-up each; ``gc.collect()`` before every timed call), medians with min and max:

- ``archprof forward``: ``archprof.profile(model, shape)``;
- ``archprof train``: ``archprof.profile(model, shape, mode="train")`` (forward, loss, backward,
  saved-tensor accounting);
- ``FlopCounterMode train``: ``with FlopCounterMode(display=False): model(x).sum().backward()``
  on the meta device, torch's own count of a training step.

Targets: train within 4x of the forward-only profile on resnet152, and a time independent of batch
and resolution (64x3x1024x1024 within 1.2x of 1x3x224x224). The counts are checked: archprof's
training MACs must equal FlopCounterMode's FLOPs / 2 on every ResNet (both count convolutions,
their backward and the classifier's matmuls, and nothing else with MACs).
"""

from __future__ import annotations

import argparse
import functools
import gc
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from _sections import write_section  # benchmarks/, the script's own folder
from torch.utils.flop_counter import FlopCounterMode

import archprof

CASES = [
    ("resnet50", (1, 3, 224, 224)),
    ("resnet152", (1, 3, 224, 224)),
    ("resnet152", (64, 3, 1024, 1024)),
    ("mobilenet_v2", (1, 3, 224, 224)),
]
HEADING = "## A training step (`--mode train`) on the meta device"


def _fcm_train(model: torch.nn.Module, shape: tuple[int, ...]) -> int:
    with FlopCounterMode(display=False) as counter:
        model(torch.empty(shape, device="meta")).sum().backward()
    for p in model.parameters():
        p.grad = None
    return counter.get_total_flops()


def _timed(fn: Callable[[], object]) -> float:
    gc.collect()
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure(repeats: int) -> list[dict[str, object]]:
    results = []
    for name, shape in CASES:
        model = archprof.build_model(name)
        meta = archprof.build_model(name).to("meta").train()
        calls = {
            "archprof forward": functools.partial(archprof.profile, model, shape),
            "archprof train": functools.partial(archprof.profile, model, shape, mode="train"),
            "FlopCounterMode train": functools.partial(_fcm_train, meta, shape),
        }
        train = archprof.profile(model, shape, mode="train")
        fcm = _fcm_train(meta, shape)
        if name.startswith("resnet") and train.totals.macs * 2 != fcm:
            sys.exit(f"{name}: archprof's training MACs x 2 = {train.totals.macs * 2} != FlopCounterMode's {fcm}")
        times: dict[str, list[float]] = {tool: [] for tool in calls}
        for fn in calls.values():  # warm-up
            fn()
        tools = list(calls)
        for i in range(repeats):
            for tool in tools[i % len(tools):] + tools[: i % len(tools)]:
                times[tool].append(_timed(calls[tool]))
        results.append({"model": name, "shape": shape, "times": times, "macs": train.totals.macs,
                        "backward_macs": train.totals.backward_macs})
    return results


def _ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1e3:.0f} ms ({min(values) * 1e3:.0f}-{max(values) * 1e3:.0f})"


def render(results: list[dict[str, object]], repeats: int) -> str:
    lines = [
        HEADING, "",
        f"`.venv/bin/python benchmarks/training_speed.py --repeats {repeats}` (torch {torch.__version__}, "
        f"{os.cpu_count()} CPUs; medians of {repeats} interleaved rounds, min-max in brackets):", "",
        "| model | input | archprof forward | archprof train | train / forward | FlopCounterMode train | FCM / archprof train |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        t = r["times"]
        forward, train, fcm = (statistics.median(t[k]) for k in ("archprof forward", "archprof train", "FlopCounterMode train"))
        lines.append(
            f"| {r['model']} | {'x'.join(map(str, r['shape']))} | {_ms(t['archprof forward'])} | {_ms(t['archprof train'])} "
            f"| {train / forward:.2f}x | {_ms(t['FlopCounterMode train'])} | {fcm / train:.2f}x |"
        )
    big = {tuple(r["shape"]): statistics.median(r["times"]["archprof train"]) for r in results if r["model"] == "resnet152"}
    lines += ["", f"resnet152 train at 64x3x1024x1024 / at 1x3x224x224: "
              f"{big[(64, 3, 1024, 1024)] / big[(1, 3, 224, 224)]:.2f}x (target: within 1.2x).", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--report", type=Path)
    options = parser.parse_args()
    section = render(measure(options.repeats), options.repeats)
    print(section)
    if options.report:
        write_section(options.report, HEADING, section)


if __name__ == "__main__":
    main()
