"""The architectures' configurations: one dataclass per architecture is the builder's signature, the
model's and the profile's config, the catalogue's defaults and the command line's options.

Sources: the defaults and options as the README's Architectures table lists them (torchvision's
ResNet and MobileNetV2 layouts, the seed's FCOS and RetinaNet presets); the validation messages
as the builders raised them before the configurations held them (tests/test_architectures.py,
tests/test_traps.py pin more of them through the command line).
"""

from __future__ import annotations

import dataclasses

import pytest
import typer.main

import archprof
from archprof.architectures.configs import (
    BUILTIN_MODELS,
    NORM_NAMES,
    DetectorConfig,
    FCOSConfig,
    MobileNetV1Config,
    MobileNetV2Config,
    ResNetConfig,
    RetinaNetConfig,
    cli_options,
)
from archprof.architectures.registry import model_entry, model_info, natural_key
from archprof.cli import run
from archprof.cli.app import app

RESNET_DEFAULTS = dict(
    depth=50, norm="bn", stride_in_1x1=False, groups=1, width_per_group=64, dcn_stages=(), modulated_dcn=False,
    deformable_groups=1, freeze_at=0, stages="C5", backbone=False, num_classes=1000, resolution=224,
)


def test_resnet_defaults_are_torchvisions_resnet50():
    # the v1.5 stride (in the 3x3 conv), batch norm, no ResNeXt groups, the classifier at 224 x 224
    assert dataclasses.asdict(ResNetConfig()) == RESNET_DEFAULTS


def test_mobilenet_defaults_are_the_papers_baselines():
    assert dataclasses.asdict(MobileNetV1Config()) == dict(width=1.0, resolution=224, num_classes=1000)
    assert dataclasses.asdict(MobileNetV2Config()) == dict(width=1.0, resolution=224, num_classes=1000, backbone=False)


def test_detector_defaults_resolve_the_seed_preset():
    # None is "as the preset sets it": the configuration holds the resolved options
    fcos, retinanet = FCOSConfig(), RetinaNetConfig()
    assert (fcos.num_classes, fcos.centerness, fcos.scales, fcos.box_activation) == (80, "cls", True, "exp")
    assert (retinanet.num_classes, retinanet.extra_from, retinanet.norm, retinanet.num_anchors) == (80, "c5", "none", 9)
    assert fcos.levels == retinanet.levels == (3, 4, 5, 6, 7) and fcos.resolution == (800, 1333)
    assert fcos.backbone_options == {"norm": "frozen_bn", "stride_in_1x1": True, "freeze_at": 2}
    assert FCOSConfig(preset="torchvision").backbone_options == {"norm": "frozen_bn", "stride_in_1x1": False, "freeze_at": 2}


@pytest.mark.parametrize(
    ("config", "options", "message"),
    [
        (ResNetConfig, {"depth": 51}, "depth must be one of 18, 34, 50, 101, 152, got 51"),
        (ResNetConfig, {"norm": "ln"}, "norm must be one of bn, frozen_bn, gn, got 'ln'"),
        (ResNetConfig, {"stages": "C3"}, "stages must be one of C4, C5, FPN, got 'C3'"),
        (ResNetConfig, {"groups": 0}, "groups must be an integer >= 1, got 0"),
        (ResNetConfig, {"resolution": 31}, "resolution must be an integer >= 32, got 31"),
        (ResNetConfig, {"freeze_at": 6}, "freeze_at must be one of 0, 1, 2, 3, 4, 5, got 6"),
        (ResNetConfig, {"dcn_stages": (1,)}, "each of dcn_stages must be one of 2, 3, 4, 5, got 1"),
        (ResNetConfig, {"modulated_dcn": True},
         "modulated_dcn and deformable_groups shape deformable convs: give dcn_stages (e.g. 3,4,5) too"),
        (ResNetConfig, {"depth": 34, "stride_in_1x1": True},
         "resnet34 uses basic blocks: groups, width_per_group and stride_in_1x1 apply to depths 50, 101, 152"),
        (ResNetConfig, {"stages": "C4", "dcn_stages": (5,)}, "dcn_stages [5] name a stage that stages='C4' does not build"),
        (MobileNetV1Config, {"width": 4.5}, "width must be a number in (0, 4], got 4.5"),
        (MobileNetV2Config, {"width": True}, "width must be a number in (0, 4], got True"),
        (MobileNetV2Config, {"num_classes": 0}, "num_classes must be an integer >= 1, got 0"),
        (FCOSConfig, {"preset": "mmdet"}, "preset must be one of seed, torchvision, got 'mmdet'"),
        (FCOSConfig, {"levels": "P3-P8"}, "levels must start at P2..P5 and end at P7 or below, got P3-P8"),
        (FCOSConfig, {"scales": 1}, "scales must be True or False, got 1"),
        (RetinaNetConfig, {"backbone_options": {"stages": "C4"}},
         "backbone_options may not set stages: the detector takes every stage's features itself"),
        (RetinaNetConfig, {"num_anchors": 0}, "num_anchors must be an integer >= 1, got 0"),
    ],
)
def test_each_configuration_validates_itself_with_one_line(config, options, message):
    with pytest.raises(ValueError) as info:
        config(**options)
    assert str(info.value) == message


def test_dcn_stages_are_kept_sorted_once():
    assert ResNetConfig(dcn_stages=[5, 3, 5]).dcn_stages == (3, 5)


@pytest.mark.parametrize(
    ("name", "options", "config"),
    [
        ("resnet101", dict(groups=32, width_per_group=8, dcn_stages=[5, 4], norm="frozen_bn"),
         ResNetConfig(depth=101, groups=32, width_per_group=8, dcn_stages=(4, 5), norm="frozen_bn")),
        ("resnet18", dict(stages="FPN", backbone=True, freeze_at=2), ResNetConfig(depth=18, stages="FPN", backbone=True, freeze_at=2)),
        ("mobilenet_v1", dict(width=0.5, resolution=160), MobileNetV1Config(width=0.5, resolution=160)),
        ("mobilenet_v2", dict(backbone=True), MobileNetV2Config(backbone=True)),
        ("fcos", dict(preset="torchvision", head_channels=128), FCOSConfig(preset="torchvision", head_channels=128)),
        ("retinanet", dict(backbone="mobilenet_v2", levels=(3, 4, 5)), RetinaNetConfig(backbone="mobilenet_v2", levels="P3-P5")),
    ],
)
def test_config_to_model_to_profile_and_back(name, options, config):
    model = archprof.build_model(name, device="meta", **options)
    assert model.config == config
    profiled = archprof.profile(model).config
    assert profiled == {f.name: _plain(getattr(config, f.name)) for f in dataclasses.fields(config)}
    assert list(profiled) == [f.name for f in dataclasses.fields(config)]  # in the configuration's order
    assert type(config)(**profiled) == config  # the profile's config builds the same configuration


def _plain(value):
    """As a profile writes values (JSON data): tuples are lists."""
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def test_the_catalogue_defaults_are_the_configurations():
    for name, row in BUILTIN_MODELS.items():
        fields = {f.name: f.default for f in dataclasses.fields(row.config) if f.name not in row.fixed}
        assert model_info(name).defaults == fields
        assert model_entry(name).defaults == fields  # the registered builder takes exactly these
    assert model_info("resnet152").defaults == {k: v for k, v in RESNET_DEFAULTS.items() if k != "depth"}


def test_the_norm_names_are_the_norm_layers():
    from archprof.architectures.norm import NORMS

    assert tuple(NORMS) == NORM_NAMES == ("bn", "frozen_bn", "gn")


def resnet_options() -> dict[str, object]:
    command = typer.main.get_command(app).commands["resnet"]
    return {param.name: param for param in command.params}


def test_every_resnet_field_is_an_option_with_its_help():
    params = resnet_options()
    for option in cli_options(ResNetConfig):
        param = params[option.name]
        assert param.help == option.help and param.help.endswith(".")
        assert "/".join([*param.opts, *param.secondary_opts]) == option.flag
    assert [o.flag for o in cli_options(ResNetConfig)] == [
        "--depth", "--norm", "--stride-in-1x1/--stride-in-3x3", "--groups", "--width-per-group", "--dcn-stages",
        "--modulated-dcn", "--deformable-groups", "--freeze-at", "--stages", "--backbone", "--num-classes", "--resolution",
    ]


def test_resnet_options_keep_their_help_and_defaults():
    params = resnet_options()
    assert params["depth"].help == "18, 34, 50, 101 or 152." and params["depth"].default == 50
    assert params["norm"].help == "bn, frozen_bn or gn." and params["stages"].help == "C4, C5 or FPN."
    # given or not matters (--num-classes beside --backbone, --resolution beside --input): not given is None
    assert params["num_classes"].help == "Classifier outputs (default 1000)." and params["num_classes"].default is None
    assert params["resolution"].help == "Input height and width (default 224)." and params["resolution"].default is None
    assert params["dcn_stages"].default == ""  # the text, read as stage numbers


def test_resnet_help_lists_every_configuration_option(capsys):
    assert run(["resnet", "--help"]) == 0
    out = capsys.readouterr().out
    for option in cli_options(ResNetConfig):
        assert option.flag.split("/")[0] in out and option.help[:30] in " ".join(out.split())


def test_a_resnet_option_reaches_the_configuration(capsys):
    import json

    assert run(["resnet", "--depth", "101", "--dcn-stages", "5+4", "--stages", "FPN", "--backbone", "--format", "json"]) == 0
    model = json.loads(capsys.readouterr().out)["models"][0]
    assert model["name"] == "resnet101:dcn_stages=[5,4],stages=FPN,backbone=true"  # the label: as given
    assert model["config"] == {**RESNET_DEFAULTS, "depth": 101, "dcn_stages": [4, 5], "stages": "FPN", "backbone": True}


def test_an_unreadable_parsed_option_is_one_line(capsys):
    assert run(["resnet", "--dcn-stages", "3,x"]) == 2
    assert capsys.readouterr().err == "archprof: error: --dcn-stages '3,x' is not a list of stage numbers like 3,4,5\n"


def test_models_are_listed_in_natural_order(capsys):
    assert archprof.list_models() == [
        "fcos", "mobilenet_v1", "mobilenet_v2", "resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "retinanet",
    ]
    assert sorted(["resnet101", "resnet18", "resnet2"], key=natural_key) == ["resnet2", "resnet18", "resnet101"]
    assert run(["list"]) == 0
    rows = [line.split("│")[1].strip() for line in capsys.readouterr().out.splitlines() if line.startswith("│")]
    assert [name for name in rows if name] == archprof.list_models()


def test_the_detectors_shared_options_come_from_their_configuration():
    command = typer.main.get_command(app).commands["detector"]
    params = {param.name: param for param in command.params}
    derived = cli_options(DetectorConfig, ("preset", "levels", "extra_from", "head_channels", "head_depth", "norm"), given=True)
    for option in derived:
        # not given is None: the preset sets the default (RetinaNet's extra_from, FCOS's num_classes)
        assert (params[option.name].help, params[option.name].default) == (option.help, None)
        assert params[option.name].opts == [option.flag]
    assert params["levels"].help == "Pyramid levels, e.g. P3-P7." and option.flag == "--norm"  # the last, in order
