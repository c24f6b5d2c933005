"""torchvision's four detection models through archprof's default path, and the model usable after.

torchvision needs a torch build other than the project's CPU one, so this runs in its own
environment (not in CI)::

    python3 -m venv /tmp/tv && /tmp/tv/bin/pip install torch==2.14.1 torchvision==0.29.1
    /tmp/tv/bin/pip install -e .
    /tmp/tv/bin/python benchmarks/detection_models.py [--size 800]

Each model takes a list of images (``inputs=([image],)``). The meta device cannot run their
post-processing (``nonzero`` over the anchors' scores), so archprof falls back to a real CPU forward
on the seeded image and says so. Each model caches anchors in a plain attribute during forward;
afterwards the script runs the model itself, to show it was left usable (issue 12). Prints the
MACs beside torchvision's published ``_ops`` (GFLOPS, which are MACs) where the weights carry them.
The two-stage models' box and mask heads run on as many proposals and detections as survive NMS,
which depends on the image and the (here untrained) weights: their counts are data-dependent, as
archprof's notice says, while RetinaNet's and FCOS's are not.
"""

from __future__ import annotations

import argparse
import time
import warnings

import torch

import archprof

MODELS = {
    # name: the weights enum whose metadata publishes _ops and num_params
    "fasterrcnn_resnet50_fpn": "FasterRCNN_ResNet50_FPN_Weights",
    "maskrcnn_resnet50_fpn": "MaskRCNN_ResNet50_FPN_Weights",
    "retinanet_resnet50_fpn": "RetinaNet_ResNet50_FPN_Weights",
    "fcos_resnet50_fpn": "FCOS_ResNet50_FPN_Weights",
}


def main() -> None:
    from torchvision.models import detection

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=800, help="image height and width (the published _ops are at 800x800)")
    args = parser.parse_args()
    print(f"torch {torch.__version__}; image 3x{args.size}x{args.size}")
    print(f"{'model':<26}{'device':<8}{'GMACs':>10}{'published':>11}{'params':>12}{'seconds':>9}  usable after  uncounted")
    for name, weights_name in MODELS.items():
        published = getattr(detection, weights_name).DEFAULT.meta.get("_ops")
        torch.manual_seed(0)  # the image; the weights are torchvision's own initialization, seeded too
        model = getattr(detection, name)(weights=None, weights_backbone=None).eval()
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", archprof.ArchprofNotice)
            p = archprof.profile(model, inputs=([torch.rand(3, args.size, args.size)],))
        seconds = time.perf_counter() - start
        with torch.no_grad():
            usable = isinstance(model([torch.rand(3, 320, 320)]), list)
        uncounted = ", ".join(f"{op} x{n}" for op, n in p.uncounted.items()) or "-"
        print(f"{name:<26}{p.device:<8}{p.totals.macs / 1e9:>10.3f}{published or float('nan'):>11.3f}"
              f"{p.totals.params:>12,}{seconds:>9.1f}  {'yes' if usable else 'NO':<13} {uncounted}")


if __name__ == "__main__":
    main()
