"""One error type: every expected failure is an ``archprof.ArchprofError``, which the command line
turns into one line on stderr and its exit code in one place (``reports_user_errors``); anything
else is a bug and keeps its traceback. The commands register themselves where they are defined, and
a model's label (``resnet50:freeze_at=2``) is built by the library, not the command line."""

from __future__ import annotations

import inspect
import subprocess
import sys

import pytest
import typer.main

import archprof
from archprof.analysis.blocks import BlockShapes, compare_blocks
from archprof.architectures.huggingface import HuggingFaceError
from archprof.architectures.spec import (
    ModelSpec,
    build_from_spec,
    configured,
    option_text,
    parse_spec,
    spec_label,
    with_options,
)
from archprof.cli import app, commands, run
from archprof.cli.guard import UserCodeExit
from archprof.errors import ArchprofError, ArchprofValueError, SpecError
from archprof.rendering.figures import FigureError
from archprof.rendering.output import OutputError
from archprof.tracing.autograd import TrainingError
from archprof.tracing.inputs import InputError

# Each with the exit code the command line gives it: 3 is --strict's, the rest are bad input.
EXPECTED_FAILURES = [
    (archprof.ProfileError, 2),
    (archprof.UncountedOpsError, 3),
    (InputError, 2),
    (SpecError, 2),
    (OutputError, 2),
    (FigureError, 2),
    (HuggingFaceError, 2),
    (TrainingError, 2),
    (UserCodeExit, 2),
    (commands.UserError, 2),
]
# Raised for a bad argument before ArchprofError existed: still ValueErrors, for the code that catches one.
VALUE_ERRORS = [InputError, SpecError, OutputError, FigureError, HuggingFaceError]


@pytest.mark.parametrize(("error", "exit_code"), EXPECTED_FAILURES, ids=lambda e: getattr(e, "__name__", str(e)))
def test_every_expected_failure_is_an_archprof_error_with_its_exit_code(error, exit_code):
    assert issubclass(error, ArchprofError)
    assert error.exit_code == exit_code


@pytest.mark.parametrize("error", VALUE_ERRORS, ids=lambda e: e.__name__)
def test_the_errors_that_were_value_errors_still_are(error):
    assert issubclass(error, ArchprofValueError) and issubclass(error, ValueError)


def test_archprof_error_is_exported_and_its_module_imports_no_torch():
    assert archprof.ArchprofError is ArchprofError
    assert "ArchprofError" in archprof.__all__
    code = "import sys, archprof.errors; print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_library_bad_arguments_are_archprof_value_errors():
    p = archprof.profile(build_from_spec(parse_spec("mobilenet_v1:width=0.25,resolution=128")))
    with pytest.raises(ArchprofValueError, match="unknown grouping 'stages' \\(choose from layer, block"):
        p.group("stages")
    with pytest.raises(ArchprofValueError, match="mode must be one of inference, train, got 'eval'"):
        archprof.profile(build_from_spec(parse_spec("mobilenet_v1")), mode="eval")
    with pytest.raises(ArchprofValueError, match="out_channels must be divisible by 4 for the bottleneck"):
        compare_blocks(BlockShapes(out_channels=6))
    with pytest.raises(ArchprofValueError, match="channels must be an integer >= 1, got 0"):
        compare_blocks(BlockShapes(channels=0))


def test_an_unknown_model_is_a_spec_error_naming_the_closest():
    with pytest.raises(SpecError, match=r"unknown model 'resnet51'; did you mean resnet50"):
        archprof.build_model("resnet51")
    with pytest.raises(SpecError, match=r"resnet18 has no option foo \(options: norm,"):
        archprof.build_model("resnet18", foo=1)


@pytest.mark.parametrize(("error", "exit_code"), EXPECTED_FAILURES, ids=lambda e: getattr(e, "__name__", str(e)))
def test_a_command_reports_an_archprof_error_as_one_line_and_its_exit_code(error, exit_code, monkeypatch, capsys):
    def fail(*args, **kwargs):
        raise error({"aten.special_bessel_j0": 1}) if exit_code == 3 else error("the first line\n  and the second")

    monkeypatch.setattr(commands, "views", fail)  # profile_command calls it once its options are read
    assert run(["profile", "mobilenet_v1"]) == exit_code
    out, err = capsys.readouterr()
    assert out == ""
    expected = "ops with no cost rule: aten.special_bessel_j0 x1" if exit_code == 3 else "the first line and the second"
    assert err == f"archprof: error: {expected}\n"


@pytest.mark.parametrize("bug", [ValueError, TypeError, KeyError])
def test_a_failure_that_is_not_an_archprof_error_is_a_bug_and_keeps_its_traceback(bug, monkeypatch):
    def fail(*args, **kwargs):
        raise bug("a bug")

    monkeypatch.setattr(commands, "views", fail)
    with pytest.raises(bug, match="a bug"):
        run(["profile", "mobilenet_v1"])


def test_the_commands_are_registered_where_they_are_defined_and_listed_in_that_order():
    group = typer.main.get_command(app)
    defined = sorted((inspect.unwrap(f) for name, f in vars(commands).items() if name.endswith("_command")),
                     key=lambda f: f.__code__.co_firstlineno)
    assert [inspect.unwrap(command.callback) for command in group.commands.values()] == defined
    assert [f"{name}_command" for name in group.commands] == [f.__name__ for f in defined]
    # today's help, as it was before the commands registered themselves
    assert list(group.commands)[:8] == ["compare", "profile", "resnet", "blocks", "detector", "crosscheck", "report", "list"]


def test_labels_are_the_spec_as_the_user_would_type_every_option():
    assert configured("resnet50", {"freeze_at": 2, "groups": 1, "backbone": False}).text == "resnet50:freeze_at=2"
    assert configured("resnet50", {"groups": 1}) == ModelSpec("resnet50", "resnet50", {"groups": 1})
    assert with_options(parse_spec("fcos:centerness=reg"), {"norm": "none"}) == ModelSpec(
        "fcos:centerness=reg,norm=none", "fcos", {"centerness": "reg", "norm": "none"})
    assert spec_label(parse_spec("fcos"), {"levels": "P3-P6", "backbone_options": {"width": 0.5}}) == (
        "fcos:levels=P3-P6,backbone_options={'width': 0.5}")
    assert spec_label(parse_spec("torch.nn:Linear"), {"bias": False}) == "torch.nn:Linear:bias=false"
    assert spec_label(parse_spec("torch.nn:Linear:in_features=8"), {"out_features": 4}) == "torch.nn:Linear:in_features=8,out_features=4"
    assert spec_label(parse_spec("mobilenet_v2"), {}) == "mobilenet_v2"
    assert [option_text(v) for v in (True, [3, 4, 5], (1, 2), 0.5, "reg")] == ["true", "[3,4,5]", "[1,2]", "0.5", "reg"]


def test_the_command_line_labels_its_models_with_the_librarys_label(capsys):
    import json

    assert run(["resnet", "--depth", "50", "--freeze-at", "2", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["models"][0]["name"] == "resnet50:freeze_at=2"
    assert run(["profile", "mobilenet_v2:width=0.5", "--resolution", "160", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["models"][0]["name"] == "mobilenet_v2:width=0.5,resolution=160"
