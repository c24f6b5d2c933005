"""The architectures, pinned to torchvision's metadata, the papers and the seed's backbone.

Sources: ../shared/reference/published-numbers.md (torchvision 0.29 weights metadata, the
MobileNet V1 paper's Table 4) and torchvision's resnet.py / mobilenetv2.py for module names.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

import archprof
from archprof.architectures.deformable import DeformConv2d
from archprof.architectures.norm import FrozenBatchNorm2d


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize(
    ("name", "params"),
    [
        # torchvision weights metadata, num_params
        ("resnet18", 11_689_512),
        ("resnet34", 21_797_672),
        ("resnet50", 25_557_032),
        ("resnet101", 44_549_160),
        ("resnet152", 60_192_808),
        ("mobilenet_v2", 3_504_872),
    ],
)
def test_params_match_torchvision_metadata(name, params):
    assert n_params(archprof.build_model(name, device="meta")) == params


def test_mobilenet_v1_params_round_to_paper_table4():
    # Paper Table 4: 4.2 M parameters for 1.0 MobileNet-224 (BN affine terms included here).
    params = n_params(archprof.build_model("mobilenet_v1", device="meta"))
    assert params == 4_231_976
    assert round(params / 1e6, 1) == 4.2


@pytest.mark.parametrize(("width", "published_m"), [(1.0, 4.2), (0.75, 2.6), (0.5, 1.3), (0.25, 0.5)])
def test_mobilenet_v1_width_params_round_to_paper_table6(width, published_m):
    params = n_params(archprof.build_model("mobilenet_v1", width=width, device="meta"))
    assert round(params / 1e6, 1) == published_m


def test_mobilenet_v2_width_keeps_last_conv_at_1280_below_one():
    narrow = archprof.build_model("mobilenet_v2", width=0.5, device="meta")
    wide = archprof.build_model("mobilenet_v2", width=1.4, device="meta")
    assert narrow.features[-1][0].out_channels == 1280
    assert wide.features[-1][0].out_channels == 1792  # make_divisible(1280 * 1.4)
    # channels are multiples of 8: 0.5 * 24 = 12 rounds to 16 (torchvision's _make_divisible)
    assert narrow.features[2].conv[-1].num_features == 16


def test_mobilenet_v2_14_params_and_the_papers_table4_contradiction():
    # Paper Table 4 prints 6.9 M parameters for MobileNetV2 (1.4), but Table 2's layers at width
    # 1.4 (channels rounded to multiples of 8, last conv 1792) hold 6.1 M; the count is not bent.
    params = n_params(archprof.build_model("mobilenet_v2", width=1.4, device="meta"))
    assert params == 6_108_776
    assert round(params / 1e6, 1) == 6.1


def test_frozen_bn_has_exactly_the_bn_affine_count_fewer_params():
    bn = archprof.build_model("resnet50", device="meta")
    frozen = archprof.build_model("resnet50", norm="frozen_bn", device="meta")
    affine = sum(m.weight.numel() + m.bias.numel() for m in bn.modules() if isinstance(m, nn.BatchNorm2d))
    assert affine == 53_120
    assert n_params(bn) - n_params(frozen) == affine
    assert all(not any(True for _ in m.parameters()) for m in frozen.modules() if isinstance(m, FrozenBatchNorm2d))


def torchvision_resnet_keys(layers: list[int]) -> list[str]:
    """state_dict keys of torchvision.models.resnet (Bottleneck), written out from its source."""
    bn = ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    keys = ["conv1.weight"] + [f"bn1.{k}" for k in bn]
    for stage, blocks in enumerate(layers, start=1):
        for b in range(blocks):
            p = f"layer{stage}.{b}"
            for i in (1, 2, 3):
                keys += [f"{p}.conv{i}.weight"] + [f"{p}.bn{i}.{k}" for k in bn]
            if b == 0:
                keys += [f"{p}.downsample.0.weight"] + [f"{p}.downsample.1.{k}" for k in bn]
    return keys + ["fc.weight", "fc.bias"]


def torchvision_mobilenet_v2_keys() -> list[str]:
    """state_dict keys of torchvision.models.mobilenet_v2, written out from its source."""
    bn = ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]

    def cbr(prefix: str) -> list[str]:
        return [f"{prefix}.0.weight"] + [f"{prefix}.1.{k}" for k in bn]

    keys = cbr("features.0")
    keys += cbr("features.1.conv.0") + ["features.1.conv.1.weight"] + [f"features.1.conv.2.{k}" for k in bn]
    for i in range(2, 18):
        keys += cbr(f"features.{i}.conv.0") + cbr(f"features.{i}.conv.1")
        keys += [f"features.{i}.conv.2.weight"] + [f"features.{i}.conv.3.{k}" for k in bn]
    return keys + cbr("features.18") + ["classifier.1.weight", "classifier.1.bias"]


def test_resnet50_state_dict_keys_follow_torchvision():
    assert list(archprof.build_model("resnet50", device="meta").state_dict()) == torchvision_resnet_keys([3, 4, 6, 3])


def test_mobilenet_v2_state_dict_keys_follow_torchvision():
    assert list(archprof.build_model("mobilenet_v2", device="meta").state_dict()) == torchvision_mobilenet_v2_keys()


def test_frozen_bn_loads_a_batchnorm_checkpoint():
    source = archprof.build_model("resnet18")
    frozen = archprof.build_model("resnet18", norm="frozen_bn")
    frozen.load_state_dict(source.state_dict())
    x = torch.randn(1, 3, 64, 64)
    # FrozenBatchNorm2d applies no eps (as the seed), BatchNorm2d 1e-5: close, not equal.
    torch.testing.assert_close(frozen(x), source(x), rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("name", ["resnet50", "mobilenet_v2"])
def test_torchvision_checkpoint_loads_when_torchvision_is_present(name):
    models = pytest.importorskip("torchvision.models", exc_type=ImportError)
    ours = archprof.build_model(name)
    ours.load_state_dict(getattr(models, name)().state_dict())


@pytest.mark.parametrize("name", archprof.list_models())
def test_every_model_builds_on_meta_without_weight_memory(name):
    model = archprof.build_model(name, device="meta")
    assert all(p.device.type == "meta" for p in model.parameters())


@pytest.mark.parametrize("name", [n for n in archprof.list_models() if n not in ("fcos", "retinanet")])  # detectors: test_detectors.py
def test_every_model_runs_on_cpu_with_the_expected_shape(name):
    model = archprof.build_model(name, resolution=64, num_classes=7)
    assert model.default_input_shape == (1, 3, 64, 64)
    with torch.no_grad():
        assert model(torch.randn(model.default_input_shape)).shape == (1, 7)


@pytest.mark.parametrize(
    ("stages", "shapes"),
    [
        ("C4", [(1, 1024, 4, 4)]),
        ("C5", [(1, 2048, 2, 2)]),
        ("FPN", [(1, 256, 16, 16), (1, 512, 8, 8), (1, 1024, 4, 4), (1, 2048, 2, 2)]),
    ],
)
def test_resnet_backbone_returns_the_seed_stage_features(stages, shapes):
    model = archprof.build_model("resnet50", backbone=True, stages=stages, resolution=64)
    with torch.no_grad():
        features = model(torch.randn(1, 3, 64, 64))
    assert [tuple(f.shape) for f in features] == shapes
    assert not hasattr(model, "fc")


def test_stride_placement_moves_the_stride_between_1x1_and_3x3():
    msra = archprof.build_model("resnet50", stride_in_1x1=True, device="meta")
    v15 = archprof.build_model("resnet50", device="meta")
    assert (msra.layer2[0].conv1.stride, msra.layer2[0].conv2.stride) == ((2, 2), (1, 1))
    assert (v15.layer2[0].conv1.stride, v15.layer2[0].conv2.stride) == ((1, 1), (2, 2))


def test_resnext_32x8d_bottleneck_width_and_groups():
    model = archprof.build_model("resnet101", groups=32, width_per_group=8, device="meta")
    conv = model.layer1[0].conv2
    assert (conv.in_channels, conv.groups) == (256, 32)  # 32 groups x 8 channels in conv2_x
    assert model.layer4[0].conv2.in_channels == 2048


def test_group_norm_uses_32_groups():
    model = archprof.build_model("resnet50", norm="gn", device="meta")
    assert isinstance(model.bn1, nn.GroupNorm) and model.bn1.num_groups == 32


def test_freeze_at_two_freezes_stem_and_conv2_x_only():
    model = archprof.build_model("resnet50", freeze_at=2, device="meta")
    frozen = {n.split(".")[0] for n, p in model.named_parameters() if not p.requires_grad}
    assert frozen == {"conv1", "bn1", "layer1"}


def test_deformable_conv_with_zero_offsets_is_the_plain_conv():
    torch.manual_seed(0)
    conv = DeformConv2d(8, 16, 3, stride=2, padding=1, groups=2, deformable_groups=2, modulated=False)
    x = torch.randn(2, 8, 9, 11)
    expected = nn.functional.conv2d(x, conv.weight, stride=2, padding=1, groups=2)
    torch.testing.assert_close(conv(x), expected, rtol=1e-4, atol=1e-5)


def test_deformable_conv_follows_a_learned_shift():
    # An offset of exactly one pixel to the right on every tap reads columns j..j+2 instead of
    # j-1..j+1: the plain conv of the input padded by 0 columns on the left and 2 on the right.
    torch.manual_seed(0)
    conv = DeformConv2d(4, 4, 3, padding=1)
    with torch.no_grad():
        conv.conv_offset.bias.view(9, 2)[:, 1] = 1.0
    x = torch.randn(1, 4, 7, 7)
    expected = nn.functional.conv2d(nn.functional.pad(x, (0, 2, 1, 1)), conv.weight)
    torch.testing.assert_close(conv(x), expected, rtol=1e-4, atol=1e-5)


def test_resnet_dcn_stages_replace_the_3x3_convs():
    model = archprof.build_model("resnet50", dcn_stages=[3, 4], modulated_dcn=True, device="meta")
    assert isinstance(model.layer2[0].conv2, DeformConv2d) and isinstance(model.layer3[5].conv2, DeformConv2d)
    assert isinstance(model.layer1[0].conv2, nn.Conv2d) and isinstance(model.layer4[0].conv2, nn.Conv2d)
    assert model.layer2[0].conv2.conv_offset.out_channels == 27  # 3 * k * k, modulated


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("resnet51", {}, "unknown model 'resnet51'; did you mean resnet50"),
        ("resnet50", {"norm": "ln"}, "norm must be one of bn, frozen_bn, gn"),
        ("resnet50", {"stages": "C3"}, "stages must be one of C4, C5, FPN"),
        ("resnet50", {"dcn_stages": [6]}, "each of dcn_stages must be one of 2, 3, 4, 5"),
        ("resnet50", {"colour": 1}, "resnet50 has no option colour"),
        ("resnet18", {"groups": 32}, "resnet18 uses basic blocks"),
        ("mobilenet_v1", {"width": 0}, "width must be a number in (0, 4]"),
        ("mobilenet_v2", {"resolution": 8}, "resolution must be an integer >= 32"),
        ("resnet50", {"norm": "gn", "groups": 2, "width_per_group": 4}, "divisible by 32"),
    ],
)
def test_bad_names_and_options_raise_value_error_naming_the_choices(name, options, message):
    with pytest.raises(ValueError, match=None) as info:
        archprof.build_model(name, device="meta", **options)
    assert message in str(info.value)


def test_the_mobile_nets_and_the_blocks_share_one_conv_norm_activation():
    # torchvision's Conv2dNormActivation: children 0 (conv, no bias), 1 (batch norm), 2 (activation),
    # ReLU in MobileNet V1 (the paper's Figure 3) and the blocks' standard conv, ReLU6 in V2 (section 3.1)
    from archprof.analysis.blocks import StandardConv
    from archprof.architectures.layers import ConvNormAct

    v1 = archprof.build_model("mobilenet_v1", device="meta")
    v2 = archprof.build_model("mobilenet_v2", device="meta")
    standard = StandardConv(32, 64, 3, 2)
    layers = [v1.stem, v1.features[0].dw, v1.features[0].pw, v2.features[0], v2.features[1].conv[0], v2.features[18], standard]
    assert all(type(layer) in (ConvNormAct, StandardConv) for layer in layers)
    assert [type(layer[2]) for layer in layers] == [nn.ReLU] * 3 + [nn.ReLU6] * 3 + [nn.ReLU]
    assert [name for name, _ in v1.named_modules()][:9] == [
        "", "stem", "stem.0", "stem.1", "stem.2", "features", "features.0", "features.0.dw", "features.0.dw.0",
    ]
    assert (standard[0].padding, standard[0].stride, standard[0].bias) == ((1, 1), (2, 2), None)
