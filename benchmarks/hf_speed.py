"""How long Hugging Face language models take to build and to profile on the meta device (issue 11).

    .venv/bin/python benchmarks/hf_speed.py [--repeats 7]

For each configuration: the import of transformers (once, the first case), the first build
(which imports the model's modeling code) and a later one, and one profile: the first (a
warm-up) and the median, min and max of ``--repeats`` more. The target is a profile under 1 s for
GPT-2 small at 1 x 1024 and a 7 B Llama at 1 x 4096.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch

import archprof
from archprof.architectures.spec import build_from_spec, parse_spec

CASES = [
    ("hf:gpt2:seq_len=1024", "GPT-2 small, 1 x 1024"),
    # LLaMA 7B (Touvron et al. 2023, Table 2): d 4096, 32 layers, 32 heads, SwiGLU 11008, vocab 32000.
    ("hf:llama:hidden_size=4096,num_hidden_layers=32,num_attention_heads=32,intermediate_size=11008,"
     "vocab_size=32000,seq_len=4096", "Llama 7B, 1 x 4096"),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    start = time.perf_counter()
    import transformers

    imported = time.perf_counter() - start
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, Python {platform.python_version()}, "
          f"{platform.processor() or platform.machine()}; import transformers {imported:.2f} s")
    print(f"{'model':<22}{'params':>16}{'MACs':>20}{'build 1st s':>12}{'build s':>9}{'profile 1st s':>14}"
          f"{'median s':>9}{'min s':>7}{'max s':>7}")
    for text, label in CASES:
        spec = parse_spec(text)
        start = time.perf_counter()
        build_from_spec(spec)
        first_build = time.perf_counter() - start
        start = time.perf_counter()
        model = build_from_spec(spec)
        build = time.perf_counter() - start
        start = time.perf_counter()
        p = archprof.profile(model)
        first = time.perf_counter() - start
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            archprof.profile(model)
            times.append(time.perf_counter() - start)
        print(f"{label:<22}{p.totals.params:>16,}{p.totals.macs:>20,}{first_build:>12.2f}{build:>9.2f}{first:>14.2f}"
              f"{statistics.median(times):>9.3f}{min(times):>7.3f}{max(times):>7.3f}")


if __name__ == "__main__":
    main()
