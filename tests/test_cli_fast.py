"""The command line's fast paths and its help.

`archprof --help`, `archprof COMMAND --help`, `--version`, `list` and shell completion run without
importing torch (about 1.3 s and 230 MB on its own); the commands that profile import it. Each
command's help opens with examples that run, every option says what it does, and the help fits an
80-column terminal.
"""

from __future__ import annotations

import importlib.metadata
import os
import shlex
import subprocess
import sys

import click
import pytest
import typer.main

import archprof
from archprof.cli import run
from archprof.cli.app import app

COMMANDS = sorted(typer.main.get_command(app).commands)


def imported_modules(*argv: str, env: dict[str, str] | None = None) -> tuple[subprocess.CompletedProcess, set[str]]:
    """Run ``python -X importtime -m archprof ARGV`` (the real entry point) and name every module it imported."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "archprof", *argv],
        capture_output=True, text=True, check=False, env={**os.environ, "COLUMNS": "80", **(env or {})},
    )
    # importtime writes "import time: self [us] | cumulative | imported package" lines to stderr
    names = {line.rsplit("|", 1)[1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}
    return done, names


FAST = [("--help",), ("--version",), ("list",), *[(command, "--help") for command in COMMANDS]]


@pytest.mark.parametrize("argv", FAST, ids=" ".join)
def test_help_version_and_list_do_not_import_torch(argv):
    done, modules = imported_modules(*argv)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout
    assert "torch" not in modules
    assert "archprof.cli.commands" in modules  # the command line itself was loaded


COMPLETIONS = [
    # bash: the words so far and the index of the word being completed
    ({"_ARCHPROF_COMPLETE": "complete_bash", "COMP_WORDS": "archprof pro", "COMP_CWORD": "1"}, ["profile"]),
    ({"_ARCHPROF_COMPLETE": "complete_bash", "COMP_WORDS": "archprof resnet --dep", "COMP_CWORD": "2"}, ["--depth"]),
    ({"_ARCHPROF_COMPLETE": "complete_bash", "COMP_WORDS": "archprof profile mobilenet", "COMP_CWORD": "2"},
     ["mobilenet_v1", "mobilenet_v2"]),
    ({"_ARCHPROF_COMPLETE": "complete_bash", "COMP_WORDS": "archprof compare resnet50 resnet1", "COMP_CWORD": "3"},
     ["resnet18", "resnet101", "resnet152"]),  # natural order, as `archprof list`
    ({"_ARCHPROF_COMPLETE": "complete_bash", "COMP_WORDS": "archprof detector ", "COMP_CWORD": "2"}, ["fcos", "retinanet"]),
]


@pytest.mark.parametrize(("env", "expected"), COMPLETIONS, ids=[env["COMP_WORDS"] for env, _ in COMPLETIONS])
def test_shell_completion_does_not_import_torch(env, expected):
    done, modules = imported_modules(env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == expected
    assert "torch" not in modules


def test_a_command_that_profiles_imports_torch():
    # the check above can fail: the same probe sees torch where a command needs it
    done, modules = imported_modules("profile", "mobilenet_v1", "--format", "json")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "torch" in modules


def test_import_archprof_loads_the_library_on_first_use():
    code = ("import sys, archprof; before = 'torch' in sys.modules; from archprof import profile, Profile; "
            "print(before, 'torch' in sys.modules, profile.__module__, Profile.__module__)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False", "True", "archprof.analysis.profile", "archprof.analysis.profile"]


def test_version_is_the_packages_version(capsys):
    assert run(["--version"]) == 0
    # one place: archprof.__version__, which pyproject.toml reads as the distribution's version
    assert capsys.readouterr().out == "archprof 0.1.0\n"
    assert archprof.__version__ == "0.1.0" == importlib.metadata.version("archprof")


def test_the_builtin_models_are_described_as_their_builders_declare_them():
    # `list` reads registry.BUILTIN_MODELS; building a model imports its module, whose
    # @register_model checks its description and defaults against that row
    from archprof.architectures.registry import BUILTIN_MODELS, model_entry, model_info

    for name in BUILTIN_MODELS:
        entry = model_entry(name)
        assert (entry.description, entry.defaults) == (model_info(name).description, model_info(name).defaults)
        assert entry.builder.__module__ == BUILTIN_MODELS[name].module


def test_a_builtin_registered_unlike_its_row_is_an_error():
    from archprof.architectures.registry import register_model

    with pytest.raises(RuntimeError, match="its row in BUILTIN_MODELS"):
        register_model("mobilenet_v1", "MobileNet V1")(lambda *, width=1.0: None)


def help_text(*argv: str, columns: int = 80) -> str:
    done = subprocess.run([sys.executable, "-m", "archprof", *argv, "--help"], capture_output=True, text=True, check=True,
                          env={**os.environ, "COLUMNS": str(columns)})
    return done.stdout


def examples(*command: str) -> list[str]:
    """The command lines of the help's third paragraph, which follows the usage and the summary."""
    usage, _summary, third, *_ = help_text(*command).split("\n\n")
    assert usage.startswith("Usage: archprof")
    heading, *lines = third.splitlines()
    assert heading == "  Examples:"
    assert all(line.startswith("    archprof ") for line in lines)
    return [line.strip() for line in lines]


@pytest.mark.parametrize("command", ["", *COMMANDS])
def test_help_opens_with_examples(command):
    assert len(examples(*filter(None, [command]))) >= 2


# Parsed, not run: `report` profiles every model of the papers' tables and draws the figures
# (test_reports.py runs it), and `crosscheck` runs four real forwards per line (test_crosscheck.py).
PARSED_ONLY = {"report", "crosscheck"}


@pytest.mark.parametrize("command", COMMANDS)
def test_every_example_runs(command, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # examples that write -o FILE write it here
    group = typer.main.get_command(app)
    for line in examples(command):
        argv = shlex.split(line)[1:]
        if argv[0] in PARSED_ONLY:
            group.commands[argv[0]].make_context(argv[0], argv[1:])  # raises on an unknown option or a bad value
            continue
        assert run(argv) == 0, f"{line}: {capsys.readouterr().err}"
    capsys.readouterr()


def test_every_option_says_what_it_does():
    group = typer.main.get_command(app)
    for command in [group, *group.commands.values()]:
        for param in command.params:
            if getattr(param, "hidden", False):
                continue  # --depth under profile and detector: refused with a pointer, never offered
            assert param.help and param.help.strip(), f"{command.name} {param.opts} has no help"


@pytest.mark.parametrize("command", ["", *COMMANDS])
def test_help_fits_80_columns_and_cuts_no_option_name(command):
    text = help_text(*filter(None, [command]))
    assert max(map(len, text.splitlines())) <= 80
    group = typer.main.get_command(app)
    params = (group.commands[command] if command else group).params
    for param in params:
        if isinstance(param, click.Option) and not param.hidden:
            for name in (*param.opts, *param.secondary_opts):
                assert name in text.split(), f"{name} is missing or cut in the help of {command or 'archprof'}"


def test_help_uses_a_wide_terminal():
    wide = help_text("resnet", columns=200).splitlines()
    # a description that wraps at 80 columns stays on its option's line at 200
    assert any(line.startswith("  --deformable-groups") and "--dcn-stages" in line for line in wide)
    assert max(map(len, wide)) > 100


TABLE_LINE = tuple("┏┃┡│└")  # rich's box characters open every line of a table


@pytest.mark.parametrize("argv", [["compare", "mobilenet_v1", "mobilenet_v2"], ["resnet", "--depth", "50", "--per-stage"],
                                  ["compare", "mobilenet_v1", "mobilenet_v2", "resnet50", "--per-layer"]], ids=" ".join)
def test_tables_fit_80_columns_and_use_200(argv, monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", "80")
    assert run(argv) == 0
    narrow = [line for line in capsys.readouterr().out.splitlines() if line.startswith(TABLE_LINE)]
    assert narrow and max(map(len, narrow)) <= 80
    monkeypatch.setenv("COLUMNS", "200")
    assert run(argv) == 0
    wide = [line for line in capsys.readouterr().out.splitlines() if line.startswith(TABLE_LINE)]
    assert max(map(len, wide)) > 80
    if argv[0] == "compare" and len(argv) == 3:  # the per-stage shares keep their bars when there is room
        assert "█" in "".join(wide) and "█" not in "".join(narrow)


@pytest.mark.parametrize("argv", [("--help",), ("--version",), ("list",), ("resnet", "--help")], ids=" ".join)
def test_a_full_standard_output_is_one_line_and_exit_code_2(argv):
    with open("/dev/full", "w") as full:
        done = subprocess.run([sys.executable, "-m", "archprof", *argv], stdout=full, stderr=subprocess.PIPE, text=True,
                              check=False)
    assert done.returncode == 2
    assert done.stderr == "archprof: error: cannot write the results to standard output: No space left on device\n"
