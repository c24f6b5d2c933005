"""How long archprof.profile takes after import, on the meta device (issue: traced counting).

    .venv/bin/python benchmarks/tracing_speed.py [--repeats 15]

Prints the median, min and max wall time of one profile per configuration. Model building is
not timed (it happens once per configuration); the first profile of each is a warm-up.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch

import archprof

CASES = [
    ("resnet152", (1, 3, 224, 224)),
    ("resnet152", (64, 3, 4096, 4096)),
    ("resnet50", (1, 3, 224, 224)),
    ("mobilenet_v2", (1, 3, 224, 224)),
    ("mobilenet_v1", (1, 3, 224, 224)),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, Python {platform.python_version()}, {platform.processor() or platform.machine()}")
    print(f"{'model':<14}{'input':<22}{'median ms':>10}{'min ms':>9}{'max ms':>9}")
    for name, shape in CASES:
        model = archprof.build_model(name, device="meta")
        archprof.profile(model, shape)
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            archprof.profile(model, shape)
            times.append((time.perf_counter() - start) * 1000)
        print(f"{name:<14}{'x'.join(map(str, shape)):<22}{statistics.median(times):>10.1f}{min(times):>9.1f}{max(times):>9.1f}")


if __name__ == "__main__":
    main()
