"""Wall time and peak memory of the command line's fast paths, each in a process of its own.

`archprof --help`, `archprof COMMAND --help`, `--version`, `list` and shell completion import no
torch; this prints how long each takes and how much memory its process peaks at, beside
`python -c "import torch"` and a command that profiles (which imports torch). Medians of
``--repeats`` runs, run in turn so that load from other work falls on all alike.

    .venv/bin/python benchmarks/cli_speed.py [--repeats 7] [--report reports/benchmarks.md]

With ``--report``, the markdown section is written into that file in place of an earlier one
(``benchmarks/run.py`` rewrites the whole file: run this after it).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _sections import write_section  # benchmarks/, the script's own folder

HEADING = "## The command line's fast paths: help, version, list, completion"

ARCHPROF = str(Path(sys.executable).with_name("archprof"))  # the console script, as a user runs it

COMPLETE = {"_ARCHPROF_COMPLETE": "complete_bash", "COMP_WORDS": "archprof profile mobilenet", "COMP_CWORD": "2"}

CASES: list[tuple[str, list[str], dict[str, str]]] = [
    ("archprof --help", [ARCHPROF, "--help"], {}),
    ("archprof --version", [ARCHPROF, "--version"], {}),
    ("archprof list", [ARCHPROF, "list"], {}),
    *[(f"archprof {c} --help", [ARCHPROF, c, "--help"], {})
      for c in ("compare", "profile", "resnet", "blocks", "detector", "crosscheck", "report", "list")],
    ("completion: archprof profile mobilenet<TAB>", [ARCHPROF], COMPLETE),
    ('python -c "import torch"', [sys.executable, "-c", "import torch"], {}),
    ("archprof profile mobilenet_v2 --format csv", [ARCHPROF, "profile", "mobilenet_v2", "--format", "csv"], {}),
]


def run_once(argv: list[str], env: dict[str, str]) -> tuple[float, int]:
    """Seconds of wall time and the peak resident memory (bytes) of one process."""
    start = time.perf_counter()
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, **env})
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited with {process.returncode}")
    return elapsed, usage.ru_maxrss * 1024  # Linux reports kilobytes


def section(times: dict[str, list[float]], memory: dict[str, list[int]], repeats: int) -> str:
    load = os.getloadavg()[0]
    lines = [
        HEADING, "",
        f"Written by `.venv/bin/python benchmarks/cli_speed.py --repeats {repeats} --report reports/benchmarks.md`. Each",
        "command line runs in a process of its own through the `archprof` console script, the cases in turn,",
        f"medians of {repeats}; peak memory is the process's maximum resident set (`wait4`). {os.cpu_count()} CPUs",
        f"({platform.processor() or platform.machine()}), load average {load:.1f} at the end, Python {sys.version.split()[0]}.",
        "None but the last two imports torch (`tests/test_cli_fast.py` checks it).", "",
        "| command | wall time | peak memory |", "|---|---|---|",
    ]
    for name, _, _ in CASES:
        lines.append(f"| `{name}` | {statistics.median(times[name]):.2f} s | {statistics.median(memory[name]) / 1e6:.0f} MB |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--report", type=Path, help="markdown file to write the section into")
    args = parser.parse_args()
    times: dict[str, list[float]] = {name: [] for name, _, _ in CASES}
    memory: dict[str, list[int]] = {name: [] for name, _, _ in CASES}
    for _ in range(args.repeats):
        for name, argv, env in CASES:
            elapsed, rss = run_once(argv, env)
            times[name].append(elapsed)
            memory[name].append(rss)
    text = section(times, memory, args.repeats)
    print(text)
    if args.report:
        write_section(args.report, HEADING, text)


if __name__ == "__main__":
    main()
