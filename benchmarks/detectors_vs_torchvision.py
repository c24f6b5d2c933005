"""archprof's ``fcos`` and ``retinanet`` with ``preset="torchvision"`` beside torchvision's own models.

torchvision needs a torch build other than the project's CPU one, so this runs in its own
environment (not in CI)::

    /work/tvenv/bin/python benchmarks/detectors_vs_torchvision.py [--size 800]

torchvision's models are built as ``fcos_resnet50_fpn`` / ``retinanet_resnet50_fpn`` build them with
pretrained weights (FrozenBatchNorm2d, returned layers 2-4, ``LastLevelP6P7(256, 256)``, three
trainable layers) but without downloading any: the parameter counts are the weights' metadata. Their
backbone and head run under ``FlopCounterMode`` (FLOPs of convolutions and matmuls, 2 per MAC) on
one image tensor, skipping the transform and the post-processing as the published ``_ops`` do at
800 x 800. archprof's counts come from the meta device. Then torchvision's (randomly initialized)
weights are loaded into archprof's model under its own names and both run one real image: their
head outputs must agree. The script exits 1 on any difference.
"""

from __future__ import annotations

import argparse
import re
import sys

import torch

import archprof


def torchvision_model(name: str) -> torch.nn.Module:
    from torchvision.models import resnet50
    from torchvision.models.detection import FCOS, RetinaNet
    from torchvision.models.detection.backbone_utils import _resnet_fpn_extractor
    from torchvision.ops import FrozenBatchNorm2d
    from torchvision.ops.feature_pyramid_network import LastLevelP6P7

    body = resnet50(norm_layer=FrozenBatchNorm2d)
    backbone = _resnet_fpn_extractor(body, 3, returned_layers=[2, 3, 4], extra_blocks=LastLevelP6P7(256, 256))
    return (FCOS if name == "fcos" else RetinaNet)(backbone, num_classes=91).eval()


def torchvision_counts(model: torch.nn.Module, size: int) -> tuple[int, int, list[tuple[int, ...]]]:
    from torch.utils.flop_counter import FlopCounterMode

    image = torch.rand(1, 3, size, size)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        features = list(model.backbone(image).values())
        model.head(features)
    params = sum(p.numel() for p in model.parameters())
    return counter.get_total_flops() // 2, params, [tuple(f.shape) for f in features]


def torchvision_to_archprof(name: str, key: str) -> str:
    """A torchvision state-dict key as the name of the same tensor in archprof's model."""
    rules = [
        (r"^backbone\.body\.", "backbone."),
        (r"^backbone\.fpn\.inner_blocks\.(\d)\.0\.", lambda m: f"neck.P{int(m[1]) + 3}.lateral."),
        (r"^backbone\.fpn\.layer_blocks\.(\d)\.0\.", lambda m: f"neck.P{int(m[1]) + 3}.output."),
        (r"^backbone\.fpn\.extra_blocks\.p(\d)\.", lambda m: f"neck.P{m[1]}.conv."),
        (r"^head\.classification_head\.cls_logits\.", "head.shared.cls_logits."),
        (r"^head\.regression_head\.bbox_reg\.", "head.shared.bbox_pred."),
        (r"^head\.regression_head\.bbox_ctrness\.", "head.shared.centerness."),
    ]
    tower = {"fcos": lambda m: f"head.shared.{TOWERS[m[1]]}.{m[2]}.",  # conv, norm, relu: the same indices
             "retinanet": lambda m: f"head.shared.{TOWERS[m[1]]}.{2 * int(m[2])}."}  # Conv2dNormActivation(conv, relu)
    pattern = r"^head\.(classification_head|regression_head)\.conv\.(\d+)\.(?:0\.)?" if name == "retinanet" else \
        r"^head\.(classification_head|regression_head)\.conv\.(\d+)\."
    for regex, replacement in [*rules, (pattern, tower[name])]:
        if re.match(regex, key):
            return re.sub(regex, replacement, key)
    return key


TOWERS = {"classification_head": "cls_tower", "regression_head": "bbox_tower"}


def same_outputs(name: str, theirs: torch.nn.Module, size: int) -> float:
    """Both models on one image with torchvision's weights: the largest difference of their head outputs."""
    ours = archprof.build_model(name, preset="torchvision").eval()
    state = {torchvision_to_archprof(name, k): v for k, v in theirs.state_dict().items()}
    missing, unexpected = ours.load_state_dict(state, strict=False)
    assert not unexpected, unexpected
    assert all(re.match(r"head\.P\d\.", k) for k in missing), missing  # the levels' tied copies of head.shared
    image = torch.rand(1, 3, size, size)
    with torch.no_grad():
        expected = theirs.head(list(theirs.backbone(image).values()))
        got = ours(image)
    worst = 0.0
    for key, per_level in zip(expected, got, strict=True):  # cls_logits, bbox_regression[, bbox_ctrness]
        classes = expected[key].shape[-1]
        flat = torch.cat([t.view(t.shape[0], -1, classes, *t.shape[-2:]).permute(0, 3, 4, 1, 2).reshape(t.shape[0], -1, classes)
                          for t in per_level], dim=1)
        worst = max(worst, (flat - expected[key]).abs().max().item())
    return worst


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=800, help="image height and width (the published _ops are at 800x800)")
    parser.add_argument("--outputs-size", type=int, default=256, help="image size of the real forward comparing outputs")
    args = parser.parse_args()
    published = {"fcos": (128.207e9, 32_269_600), "retinanet": (151.54e9, 34_014_999)}
    failed = False
    print(f"torch {torch.__version__}; image 1x3x{args.size}x{args.size}")
    for name in ("fcos", "retinanet"):
        torch.manual_seed(0)
        theirs = torchvision_model(name)
        theirs_macs, theirs_params, shapes = torchvision_counts(theirs, args.size)
        model = archprof.build_model(name, preset="torchvision", device="meta")
        p = archprof.profile(model, (1, 3, args.size, args.size))
        ours_macs = sum(op.macs for op in p.ops if op.layer_type.startswith(("conv", "matmul")))
        levels = [r for r in p.group("level") if r.name.startswith("P")]
        same = ours_macs == theirs_macs and p.totals.params == theirs_params
        failed |= not same
        print(f"{name}: MACs archprof {ours_macs:,} torchvision {theirs_macs:,} (published {published[name][0] / 1e9:.3f} G); "
              f"params archprof {p.totals.params:,} torchvision {theirs_params:,} (published {published[name][1]:,}); "
              f"{'same' if same else 'DIFFERENT'}")
        print(f"  torchvision's pyramid: {[s[-2:] for s in shapes]}; archprof's levels: {[r.name for r in levels]}")
        worst = same_outputs(name, theirs, args.outputs_size)
        failed |= worst > 1e-3
        print(f"  with torchvision's weights at 1x3x{args.outputs_size}x{args.outputs_size}: outputs differ by at most {worst:.2e}"
              " (archprof's frozen batch norm has no eps, torchvision's has 1e-5)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
