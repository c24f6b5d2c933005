"""archprof's speed and memory against fvcore, thop, ptflops, torchinfo and FlopCounterMode.

    .venv/bin/pip install -e '.[bench]'     # ptflops and torchinfo
    .venv/bin/python benchmarks/run.py      # writes reports/benchmarks.md and reports/benchmarks.csv

Every measurement runs in a process of its own (benchmarks/_worker.py), so memory figures do not
mix; peers run a real CPU forward, archprof runs on the meta device. Times are medians over
--repeats runs after one warm-up (min and max beside them); a peer at the large input runs once,
cold, under --timeout seconds and an address-space limit, and is reported as a timeout or as out
of memory when it passes either. Three measurements:

1. in-process profiling time of resnet50, resnet152 and mobilenet_v2 at 1x3x224x224 and at
   8x3x1024x1024, for every tool;
2. whole-process wall time and peak resident memory of `archprof compare mobilenet_v1
   mobilenet_v2` against `python -c "import torch"`;
3. how archprof's time and memory grow on resnet152 from 224 to 4096 and from batch 1 to 64.
"""

from __future__ import annotations

import argparse
import csv
import importlib.metadata
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from rich.progress import Progress

ROOT = Path(__file__).resolve().parent.parent
WORKER = ROOT / "benchmarks" / "_worker.py"
PYTHON = sys.executable
ARCHPROF = str(Path(PYTHON).parent / "archprof")
TOOLS = ["archprof", "fvcore", "thop", "ptflops", "torchinfo", "FlopCounterMode"]
MODELS = ["resnet50", "resnet152", "mobilenet_v2"]
SMALL, LARGE = "1x3x224x224", "8x3x1024x1024"
SCALING = [f"1x3x{r}x{r}" for r in (224, 512, 1024, 2048, 4096)] + [f"{b}x3x224x224" for b in (8, 64)] + ["64x3x4096x4096"]
MEMORY_LIMIT_GB = 18  # of the machine's 24 GB: a peer past it fails alone instead of the machine


@dataclass
class Result:
    section: str
    tool: str
    model: str
    input: str
    status: str = "ok"
    times: list[float] = field(default_factory=list)
    peak_rss_mb: float | None = None

    @property
    def median(self) -> float | None:
        return statistics.median(self.times) if self.times else None


def limit_memory() -> None:
    limit = MEMORY_LIMIT_GB * 1024**3
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def run_worker(tool: str, model: str, shape: str, repeats: int, warmup: int, timeout: float) -> Result:
    result = Result("profile", tool, model, shape)
    try:
        done = subprocess.run(
            [PYTHON, str(WORKER), tool, model, shape, str(repeats), str(warmup)],
            capture_output=True, text=True, timeout=timeout, preexec_fn=limit_memory, check=False,
        )
    except subprocess.TimeoutExpired:
        result.status = f"timeout (> {timeout:.0f} s)"
        return result
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["?"])[-1]
        memory = "memory" in tail.lower() or "alloc" in tail.lower() or done.returncode < 0
        result.status = f"out of memory (> {MEMORY_LIMIT_GB} GB)" if memory else f"failed: {tail[:80]}"
        return result
    data = json.loads(done.stdout.strip().splitlines()[-1])
    result.times, result.peak_rss_mb = data["times"], data["peak_rss_mb"]
    return result


def run_process(argv: list[str], repeats: int, label: str) -> Result:
    """Whole-process wall time of a command over repeats (after one run that warms the file cache)."""
    result = Result("startup", label, "", "")
    for i in range(repeats + 1):
        start = time.perf_counter()
        done = subprocess.run(argv, capture_output=True, check=False)
        elapsed = time.perf_counter() - start
        if done.returncode != 0:
            result.status = f"failed: exit {done.returncode}"
            return result
        if i:
            result.times.append(elapsed)
    return result


def run_peak_process(argv: list[str]) -> float:
    """Peak RSS of one run of a command, measured alone (RUSAGE_CHILDREN keeps the max of all)."""
    script = (
        "import resource, subprocess, sys\n"
        "subprocess.run(sys.argv[1:], capture_output=True, check=True)\n"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
    )
    done = subprocess.run([PYTHON, "-c", script, *argv], capture_output=True, text=True, check=True)
    return int(done.stdout.strip()) / 1024


def machine() -> dict[str, str]:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else platform.processor()
    memory = ""
    if Path("/proc/meminfo").exists():
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f"{kib / 1024**2:.1f} GiB"
    versions = {}
    for package in ("archprof", "torch", "fvcore", "ultralytics-thop", "ptflops", "torchinfo", "rich", "typer"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return {
        "cpu": cpu, "cores": str(os.cpu_count()), "memory": memory, "python": platform.python_version(),
        "os": f"{platform.system()} {platform.release()}", **versions,
    }


def fmt_time(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds * 1000:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


def write_reports(results: list[Result], info: dict[str, str], out: Path, argv: list[str]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with (out / "benchmarks.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["section", "tool", "model", "input", "status", "runs", "median_s", "min_s", "max_s", "peak_rss_mb"])
        for r in results:
            writer.writerow([r.section, r.tool, r.model, r.input, r.status, len(r.times),
                             f"{r.median:.6f}" if r.times else "", f"{min(r.times):.6f}" if r.times else "",
                             f"{max(r.times):.6f}" if r.times else "", f"{r.peak_rss_mb:.1f}" if r.peak_rss_mb else ""])
    lines = ["# Benchmarks", "", f"Generated by `python benchmarks/{' '.join(argv)}` "
             f"on {time.strftime('%Y-%m-%d')}. Raw figures: [benchmarks.csv](benchmarks.csv).", "",
             "## Machine", "", "| | |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in info.items()]

    def get(section: str, tool: str, model: str = "", shape: str = "") -> Result | None:
        return next((r for r in results if (r.section, r.tool, r.model, r.input) == (section, tool, model, shape)), None)

    for shape in (SMALL, LARGE):
        lines += ["", f"## In-process profiling time, input {shape}", "",
                  "Median (min - max) of the profiling call, and the worker process's peak resident memory. "
                  "Peers run a real CPU forward under torch.no_grad(); archprof traces on the meta device.", "",
                  "| tool | " + " | ".join(MODELS) + " | peak RSS (" + MODELS[1] + ") |", "|---" * (len(MODELS) + 2) + "|"]
        for tool in TOOLS:
            cells = []
            for model in MODELS:
                r = get("profile", tool, model, shape)
                if r is None:
                    cells.append("not run")
                elif r.status != "ok":
                    cells.append(r.status)
                else:
                    spread = f" ({fmt_time(min(r.times))} - {fmt_time(max(r.times))})" if len(r.times) > 1 else ""
                    cells.append(fmt_time(r.median) + spread)
            big = get("profile", tool, MODELS[1], shape)
            peak = f"{big.peak_rss_mb:.0f} MB" if big and big.peak_rss_mb else "-"
            lines.append(f"| {tool} | " + " | ".join(cells) + f" | {peak} |")
        ours = get("profile", "archprof", "resnet152", shape)
        fv = get("profile", "fvcore", "resnet152", shape)
        if ours and fv and ours.median and fv.median:
            lines += ["", f"archprof is **{fv.median / ours.median:,.0f}x** faster than fvcore on resnet152 at {shape} "
                      f"({fmt_time(ours.median)} against {fmt_time(fv.median)})."]
        elif fv and fv.status != "ok":
            lines += ["", f"fvcore on resnet152 at {shape}: {fv.status}; archprof: {fmt_time(ours.median if ours else None)}."]

    torch_only = get("startup", "python -c \"import torch\"")
    compare = get("startup", "archprof compare mobilenet_v1 mobilenet_v2")
    if torch_only and compare and torch_only.times and compare.times:
        lines += ["", "## Whole-process cost of the main job", "",
                  "| command | wall time, median (min - max) | peak RSS |", "|---|---|---|"]
        for r in (torch_only, compare):
            lines.append(f"| `{r.tool}` | {fmt_time(r.median)} ({fmt_time(min(r.times))} - {fmt_time(max(r.times))}) "
                         f"| {r.peak_rss_mb:.0f} MB |")
        lines += ["", f"Ratios: wall time **{compare.median / torch_only.median:.2f}x**, peak memory "
                  f"**{compare.peak_rss_mb / torch_only.peak_rss_mb:.2f}x** of a bare torch import "
                  "(targets: at most 1.3x and 1.25x)."]

    base = get("scaling", "archprof", "resnet152", SCALING[0])
    if base and base.median:
        lines += ["", "## How archprof grows with input size and batch (resnet152, meta device)", "",
                  "| input | profiling time, median | x 1x3x224x224 | worker peak RSS |", "|---|---|---|---|"]
        for shape in SCALING:
            r = get("scaling", "archprof", "resnet152", shape)
            if r and r.median:
                lines.append(f"| {shape} | {fmt_time(r.median)} | {r.median / base.median:.2f}x | {r.peak_rss_mb:.0f} MB |")
        last = get("scaling", "archprof", "resnet152", "64x3x4096x4096")
        if last and last.median:
            lines += ["", f"Batch 64 x 4096^2 takes **{last.median / base.median:.2f}x** the time of batch 1 x 224^2 "
                      "(target: at most 1.2x)."]
    (out / "benchmarks.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description="archprof against its peers: speed and memory.")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per measurement (after a warm-up)")
    parser.add_argument("--timeout", type=float, default=300, help="seconds a peer may take at one input")
    parser.add_argument("--tools", default=",".join(TOOLS), help="comma-separated tools to time")
    parser.add_argument("--skip-large", action="store_true", help="skip the 8x3x1024x1024 input")
    parser.add_argument("--out", default=str(ROOT / "reports"))
    args = parser.parse_args()
    tools = [t for t in args.tools.split(",") if t]
    unknown = sorted(set(tools) - set(TOOLS))
    if unknown:
        parser.error(f"unknown tools {unknown}; choose from {TOOLS}")
    shapes = [SMALL] if args.skip_large else [SMALL, LARGE]
    jobs = [(t, m, s) for s in shapes for m in MODELS for t in tools]
    results: list[Result] = []
    with Progress() as progress:
        task = progress.add_task("benchmarks", total=len(jobs) + len(SCALING) + 2)
        for tool, model, shape in jobs:
            progress.update(task, description=f"{tool} {model} {shape}")
            large_peer = shape == LARGE and tool != "archprof"
            repeats, warmup = (1, 0) if large_peer else (args.repeats, 1)
            results.append(run_worker(tool, model, shape, repeats, warmup, args.timeout))
            progress.advance(task)
        for shape in SCALING:
            progress.update(task, description=f"archprof resnet152 {shape}")
            r = run_worker("archprof", "resnet152", shape, args.repeats, 1, args.timeout)
            r.section = "scaling"
            results.append(r)
            progress.advance(task)
        for label, argv in (('python -c "import torch"', [PYTHON, "-c", "import torch"]),
                            ("archprof compare mobilenet_v1 mobilenet_v2", [ARCHPROF, "compare", "mobilenet_v1", "mobilenet_v2"])):
            progress.update(task, description=label)
            r = run_process(argv, args.repeats, label)
            r.peak_rss_mb = statistics.median(run_peak_process(argv) for _ in range(3))
            results.append(r)
            progress.advance(task)
    write_reports(results, machine(), Path(args.out), [Path(__file__).name, *sys.argv[1:]])
    print((Path(args.out) / "benchmarks.md").read_text())


if __name__ == "__main__":
    main()
