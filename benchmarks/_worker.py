"""One tool profiling one model at one input, in a process of its own (benchmarks/run.py runs it).

Prints one JSON line: the wall time of each repeat of the in-process profiling call, and the
process's peak resident memory. Peers run a real CPU forward; archprof runs on the meta device.
"""

from __future__ import annotations

import json
import logging
import resource
import sys
import time
import warnings


def main() -> None:
    tool, model_name, shape_text, repeats, warmup = sys.argv[1:6]
    shape = tuple(int(s) for s in shape_text.split("x"))
    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    import torch

    import archprof

    torch.set_num_threads(max(1, torch.get_num_threads()))
    if tool == "archprof":
        model = archprof.build_model(model_name, device="meta")

        def run() -> None:
            archprof.profile(model, shape)
    else:
        model = archprof.build_model(model_name).eval()
        x = torch.randn(shape)
        run = PEERS[tool](model, x)
    times = []
    for i in range(int(warmup) + int(repeats)):
        start = time.perf_counter()
        with torch.no_grad():
            run()
        if i >= int(warmup):
            times.append(time.perf_counter() - start)
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"times": times, "peak_rss_mb": peak_kib / 1024}))


def fvcore_run(model, x):
    from fvcore.nn import FlopCountAnalysis

    def run():
        analysis = FlopCountAnalysis(model, x)
        analysis.unsupported_ops_warnings(False)
        analysis.uncalled_modules_warnings(False)
        analysis.total()

    return run


def thop_run(model, x):
    import thop

    return lambda: thop.profile(model, inputs=(x,), verbose=False)


def ptflops_run(model, x):
    from ptflops import get_model_complexity_info

    return lambda: get_model_complexity_info(
        model, tuple(x.shape[1:]), input_constructor=lambda _: x, as_strings=False,
        print_per_layer_stat=False, verbose=False, backend="pytorch",
    )


def torchinfo_run(model, x):
    from torchinfo import summary

    return lambda: summary(model, input_data=x, verbose=0)


def flop_counter_run(model, x):
    from torch.utils.flop_counter import FlopCounterMode

    def run():
        with FlopCounterMode(display=False) as counter:
            model(x)
        counter.get_total_flops()

    return run


PEERS = {
    "fvcore": fvcore_run,
    "thop": thop_run,
    "ptflops": ptflops_run,
    "torchinfo": torchinfo_run,
    "FlopCounterMode": flop_counter_run,
}

if __name__ == "__main__":
    main()
