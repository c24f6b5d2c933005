"""Hardening: a fuzzer over every command's arguments, user code that prints, exits, raises or
loops, the files a failed run must not leave, strict counting, huge configurations on meta, and
checkpoints that would run code."""

from __future__ import annotations

import contextlib
import csv
import errno
import io
import itertools
import json
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
import typer.main
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import archprof
from archprof.architectures.checkpoint import check_checkpoint
from archprof.architectures.spec import SpecError
from archprof.cli import run
from archprof.cli.app import app
from archprof.rendering.output import all_or_nothing, make_dirs, write_atomic

REPO = Path(__file__).resolve().parent.parent

# User code that misbehaves, written to files by each test: "{user}" in a command line is their
# directory, "{tmp}" the test's own. Whatever it prints starts with "user-print:".
USER_CODE = {
    "chatty.py": """
        import torch
        from torch import nn

        print("user-print: import")


        class Chatty(nn.Module):
            def __init__(self):
                super().__init__()
                self.scale = nn.Parameter(torch.ones(1))

            def forward(self, x):
                print("user-print: forward")
                return x * self.scale


        def build():
            print("user-print: factory")
            return Chatty()
    """,
    "exits.py": """
        import sys
        from torch import nn


        class ExitsInForward(nn.Module):
            def __init__(self, code):
                super().__init__()
                self.code = code

            def forward(self, x):
                sys.exit(self.code)


        def in_factory(code=0):
            sys.exit(code)


        def in_forward(code=0):
            return ExitsInForward(code)


        def bare():
            sys.exit()
    """,
    "exits_on_import.py": """
        import sys

        sys.exit(3)


        def build():
            pass
    """,
    "raises.py": """
        from torch import nn


        class RaisesInForward(nn.Module):
            def forward(self, x):
                raise ValueError("user bug in forward")


        def in_factory():
            raise RuntimeError("user bug in factory")


        def in_forward():
            return RaisesInForward()
    """,
    "loops.py": """
        from pathlib import Path

        from torch import nn

        STARTED = Path(__file__).with_suffix(".started")  # the test interrupts once this exists


        def loop():
            STARTED.touch()
            while True:
                pass


        class LoopsInForward(nn.Module):
            def forward(self, x):
                loop()


        def in_factory():
            loop()


        def in_forward():
            return LoopsInForward()
    """,
}
CHATTY = "{user}/chatty.py:build"
EXITS = ["{user}/exits.py:in_factory", "{user}/exits.py:in_factory:code=3", "{user}/exits.py:in_forward",
         "{user}/exits.py:in_forward:code=3", "{user}/exits_on_import.py:build"]
RAISES = ["{user}/raises.py:in_factory", "{user}/raises.py:in_forward"]
USER_FACTORIES = [CHATTY, *EXITS, *RAISES]


def write_user_code(directory: Path) -> Path:
    directory.mkdir(exist_ok=True)
    for name, source in USER_CODE.items():
        (directory / name).write_text(textwrap.dedent(source))
    return directory


MODELS = [
    "mobilenet_v1", "mobilenet_v2", "resnet18", "resnet50", "resnet152", "resnet51", "mobilenet", "", "RESNET50",
    "mobilenet_v2:width=0.5,resolution=96", "mobilenet_v2:width=abc", "mobilenet_v2:width", "resnet50:norm=gn",
    "resnet50:dcn_stages=[3,4],modulated_dcn=true", "resnet50:stages=C9", "resnet50:colour=red",
    "torch.nn:Linear:in_features=4,out_features=2", "torch.nn:Linear", "json:dumps:obj=1", "no_such_mod:f",
    "os.path:join", "torch.nn:functional", "/nonexistent/file.py:build", "mobilenet_v1:resolution=-5", "mobilenet_v1@1x3x64x64",
    "torch.nn:Linear:in_features=4,out_features=2@2x4", "mobilenet_v2@abc", *USER_FACTORIES, f"{CHATTY}@2x4",
]
# crosscheck runs real CPU forwards: small models, and options that keep them small
CROSSCHECK_MODELS = [*USER_FACTORIES, "torch.nn:Linear:in_features=4,out_features=2@2x4", "mobilenet_v2:width=0.35,resolution=32",
                     "resnet18:resolution=32", "mobilenet_v1", "no_such_model", ""]
NUMBERS = ["-1", "0", "0.5", "1", "2", "3", "32", "64", "97", "1e9", "abc", "", "nan", "inf", "18", "50", "152",
           "1000000000", "99999999999999999999", "9223372036854775807"]
SHAPES = ["1x3x64x64", "2x3x96x96", "1x4x224x224", "0x3x8x8", "1x3", "2x4", "abc", "1,3,64,64", "-1x3x8x8", "1x3x64x64x2", "",
          "1x3x99999999999999999999x1", "4096x3x4096x4096"]
FORMATS = ["table", "csv", "json", "markdown", "latex", "xml", ""]
FLAGS = ["--per-stage", "--per-block", "--per-type", "--per-layer", "--raw", "--strict", "--stride-in-1x1", "--backbone", "--modulated-dcn"]
PLOTS = ["{tmp}/stages-{n}.svg", "{tmp}/stages-{n}.png", "{tmp}/stages-{n}.gif", "/proc/archprof-plot-{n}.svg",
         "{tmp}/missing/stages-{n}.svg"]
OPTIONS_WITH_VALUES = {
    "--width": NUMBERS, "--resolution": NUMBERS, "--num-classes": NUMBERS, "--batch": NUMBERS, "--depth": NUMBERS,
    "--input-shape": SHAPES, "--format": FORMATS, "--unit": ["macs", "flops", "watts"], "--device": ["meta", "gpu", ""],
    "--norm": ["bn", "frozen_bn", "gn", "ln"], "--groups": NUMBERS, "--width-per-group": NUMBERS,
    "--stages": ["C4", "C5", "FPN", "C3"], "--dcn-stages": ["3,4", "5", "6", "x", ""], "--freeze-at": NUMBERS,
    "--channels": NUMBERS, "--out-channels": NUMBERS, "--size": NUMBERS, "--stride": NUMBERS, "--expansion": NUMBERS,
    "--layer-depth": NUMBERS, "--deformable-groups": NUMBERS, "--plot": PLOTS,
    "--input": ["1x3x64x64", "2x4", "x=2x4:int64:0..10", "1x3x64x64:float16", "1x3x8x8:int64:5..1", "abc", ""],
    "--seq-len": NUMBERS, "--seed": ["0", "7", "-1", "abc"], "--max-memory": ["8GB", "512MiB", "1", "0", "abc", ""],
    "--checkpoint": ["{tmp}/a-file", "/nonexistent/weights.pt"],
    "--mode": ["train", "inference", "eval", ""], "--optimizer": ["sgd", "momentum", "adam", "adamw", "lion", ""],
    "--precision": ["fp32", "bf16", "fp16", "amp", "fp8", ""], "--scale": ["G", "M", "K", "1", "T", ""],
    "--table": ["totals", "stages", "totals,types", "nonsense", ""], "--caption": ["Costs", "50% & more", ""],
    "--label": ["tab:costs", "tab:a_b", ""], "--warmup": ["0", "1", "-1", "abc"], "--repeats": ["0", "1", "-1", "abc"],
    "--preset": ["seed", "torchvision", "detectron", ""], "--levels": ["P3-P7", "P3-P6", "P2-P5", "P7-P3", "x", ""],
    "--extra-from": ["c5", "p5", "c4", ""], "--head-channels": NUMBERS, "--head-depth": NUMBERS,
}
# per command where its option takes other values: resnet's --backbone is a flag, detector's a model
COMMAND_VALUES = {"detector": {"--backbone": ["resnet50", "resnet101", "mobilenet_v2:width=0.5", "mobilenet_v2:width=x", "vgg", ""],
                               "--input-shape": ["1x3x128x128", "1x3x96x160", "1x3x8x8", "0x3x64x64", "abc", ""]}}
# options the fuzzer leaves out, and why
NOT_FUZZED = {
    "--output": "the output place below gives it", "--out": "the output place below gives it",
    "--latency": "times real CPU forwards of the drawn model (seconds each); tests/test_latency.py covers it",
}
DETECTORS = ["fcos", "retinanet", "fcos:centerness=reg", "retinanet:bogus=1", "fcos:", "yolo", ""]
# detectors profile at 800x1333 unless told: the fuzzer gives them a small input first
DETECTOR_INPUT = ["--input-shape", "1x3x128x128"]
CROSSCHECK_OPTIONS = {
    "--width": ["0.25", "0.5", "-1", "abc"], "--resolution": ["32", "64", "8", "abc"], "--num-classes": ["10", "0", "abc"],
    "--input-shape": ["2x4", "1x3x32x32", "1x3x64x64", "0x3x8x8", "abc", "", "1x3x99999999999999999999x1"],
    "--format": FORMATS, "--unit": ["macs", "flops", "watts"],
}
OUTPUT_PLACES = ["ok", "missing-dir", "file-as-dir", "proc", "existing", "dev-full", None]
# report never gets a place it can write: a successful report takes seconds (tests/test_reports.py
# runs one); "blocked" fails at its second file, after the first has been written
REPORT_PLACES = ["proc", "missing-dir", "file-as-dir", "a-file", "blocked"]
OLD_CONTENTS = "old contents\n"


def command_options() -> dict[str, tuple[dict[str, list[str]], list[str]]]:
    """Each command of the app (as `archprof --help` lists them): its options with values, from
    this file's vocabulary, and its flags; read from the app, so a new command or option is fuzzed
    (or named in NOT_FUZZED) as soon as it exists."""
    import typer.main

    from archprof.cli.app import app

    commands = {}
    for name, command in typer.main.get_command(app).commands.items():
        values, flags = {}, []
        for param in command.params:
            if param.param_type_name == "argument" or param.opts[0] in NOT_FUZZED:
                continue
            option = param.opts[0]
            if param.is_flag:
                flags.append(option)
            else:
                vocabulary = CROSSCHECK_OPTIONS if name == "crosscheck" else OPTIONS_WITH_VALUES
                values[option] = COMMAND_VALUES.get(name, {}).get(option) or vocabulary.get(option) or OPTIONS_WITH_VALUES[option]
        commands[name] = (values, flags)
    return commands


COMMANDS = command_options()


@st.composite
def command_lines(draw):
    command = draw(st.sampled_from([*COMMANDS, "prof", ""]))
    args = [command] if command else []
    options, flags = COMMANDS.get(command, (OPTIONS_WITH_VALUES, FLAGS))
    flags = [*flags, "--bogus"]
    if command == "compare":
        args += draw(st.lists(st.sampled_from(MODELS), min_size=0, max_size=3))
    elif command == "profile":
        args.append(draw(st.sampled_from(MODELS)))
    elif command == "crosscheck":
        args.append(draw(st.sampled_from(CROSSCHECK_MODELS)))
    elif command == "detector":
        args += [draw(st.sampled_from(DETECTORS)), *DETECTOR_INPUT]
    for _ in range(draw(st.integers(0, 4))):
        option = draw(st.sampled_from(sorted(options) + flags))
        args.append(option)
        if option in options:
            args.append(draw(st.sampled_from(options[option])))
    places = REPORT_PLACES if command == "report" else OUTPUT_PLACES
    return args, draw(st.sampled_from(places))


def test_the_fuzzer_draws_every_command_and_has_values_for_every_option():
    app_commands = typer.main.get_command(app).commands
    assert set(COMMANDS) == set(app_commands)
    for name, command in app_commands.items():
        values, flags = COMMANDS[name]
        for param in command.params:
            option = param.opts[0] if param.param_type_name != "argument" else None
            assert option is None or option in NOT_FUZZED or option in values or option in flags, (name, option)
            assert option not in values or len(values[option]) >= 2, (name, option)  # a valid value and an invalid one


def output_path(place: str | None, workdir: Path, counter: int) -> Path | None:
    if place is None:
        return None
    blocker = workdir / "a-file"
    blocker.touch()
    out = {
        "ok": workdir / f"out-{counter}.txt",
        "missing-dir": workdir / "missing" / f"out-{counter}.txt",
        "file-as-dir": blocker / f"out-{counter}.txt",
        "proc": Path("/proc") / f"archprof-out-{counter}.txt",  # a read-only place, even for root
        "existing": workdir / f"existing-{counter}.txt",
        "dev-full": Path("/dev/full"),  # every write fails: no space left on device
        "a-file": blocker,
        "blocked": workdir / f"reports-{counter}",
    }[place]
    if place == "existing":
        out.write_text(OLD_CONTENTS)
        out.chmod(0o600)
    elif place == "blocked":
        (out / "v1_vs_v2.md").mkdir(parents=True)
    return out


def run_interrupted(args: list[str], started: Path) -> tuple[int, str, str]:
    """Run archprof in a subprocess, wait until the user's code loops, then press Ctrl-C."""
    started.unlink(missing_ok=True)
    proc = subprocess.Popen([sys.executable, "-m", "archprof", *args], cwd=REPO, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not started.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert started.exists(), (args, proc.poll())
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return proc.returncode, stdout, stderr


def last_value(args: list[str], option: str) -> str | None:
    values = [args[i + 1] for i, a in enumerate(args[:-1]) if a == option]
    return values[-1] if values else None


def test_fuzzed_command_lines_exit_0_2_or_3_with_no_traceback_and_no_partial_file(tmp_path):
    """Every command, with user factories that print, exit, raise and loop among the models.

    On exit 2 or 3, stderr is notices (one line each) and then exactly one error line; what the
    user's code printed is on stderr too, never on stdout. A failed run leaves no output file or
    figure, an existing file untouched, and no temporary file anywhere.
    """
    counter = itertools.count()
    user = write_user_code(tmp_path / "user")

    @settings(max_examples=500, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    @given(command_lines())
    # Loops run in a subprocess, interrupted by SIGINT once the user's code is looping.
    @example((["profile", "{user}/loops.py:in_factory", "--format", "json"], "ok"))
    @example((["compare", "mobilenet_v1", "{user}/loops.py:in_forward", "--plot", "{tmp}/stages-{n}.svg"], "existing"))
    @example((["crosscheck", "{user}/loops.py:in_forward", "--format", "csv"], "ok"))
    def check(case):
        n = next(counter)
        args, place = case
        args = [a.replace("{user}", str(user)).replace("{tmp}", str(tmp_path)).replace("{n}", str(n)) for a in args]
        out = output_path(place, tmp_path, n)
        if out is not None:
            args = [*args, "--out" if args[:1] == ["report"] else "-o", str(out)]
        looping = any("loops.py" in a for a in args)
        if looping:
            code, stdout, stderr = run_interrupted(args, user / "loops.started")
            assert code == 130, (args, code, stderr)  # as Ctrl-C on any command
        else:
            out_buffer, err_buffer = io.StringIO(), io.StringIO()
            with contextlib.redirect_stdout(out_buffer), contextlib.redirect_stderr(err_buffer):
                code = run(args)
            stdout, stderr = out_buffer.getvalue(), err_buffer.getvalue()
            assert code in (0, 2, 3), (args, code, stderr)
            assert code != 3 or "--strict" in args, (args, stderr)  # 3 is --strict's uncounted ops, nothing else
        assert "Traceback" not in stderr + stdout, args
        assert "user-print" not in stdout, args
        lines = [line for line in stderr.splitlines() if not line.startswith("user-print: ")]
        notices = lines[:-1] if code in (2, 3) else lines
        assert all(line.startswith("archprof: notice: ") for line in notices), (args, stderr)
        if code in (2, 3):
            assert lines and lines[-1].startswith("archprof: error: "), (args, stderr)
        if any(a.replace(str(user), "{user}") in EXITS for a in args):
            assert code == 2, (args, code, stderr)  # the model's sys.exit is never archprof's exit
        if code == 0 and out is None and last_value(args, "--format") == "json":
            json.loads(stdout)
        plot = last_value(args, "--plot") if args[:1] == ["compare"] else None
        if plot is not None:
            assert Path(plot).exists() == (code == 0), args  # drawn only by a run that succeeds
        if place == "existing":
            assert out.stat().st_mode & 0o777 == 0o600, args  # replaced or not, the file keeps its mode
            assert (out.read_text() == OLD_CONTENTS) == (code != 0), args
        elif place == "blocked":
            assert code == 2 and [p.name for p in out.iterdir()] == ["v1_vs_v2.md"], args  # v1_vs_v2.csv not left
        elif place == "a-file":
            assert code == 2 and out.is_file() and out.stat().st_size == 0, args
        elif code != 0 and out is not None and out.parent != Path("/dev"):
            assert not out.exists(), args
        elif code == 0 and out is not None and out.parent != Path("/dev") and args[0] != "list":
            assert out.exists() and out.stat().st_size > 0, args
        assert not list(tmp_path.rglob("*.tmp")), args  # no temporary files left
        assert not (tmp_path / "missing").exists(), args

    check()
    assert next(counter) >= 503  # every example ran, the three loops included


@pytest.fixture
def user(tmp_path) -> Path:
    return write_user_code(tmp_path / "user")


def run_captured(args: list[str]) -> tuple[int, str, str]:
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = run(args)
    return code, stdout.getvalue(), stderr.getvalue()


USER_PRINTS = ["user-print: import", "user-print: factory", "user-print: forward"]


def printed_in_order(stderr: str) -> bool:
    """The chatty model's prints in the order its code first ran them, and beside them notices only."""
    lines = [line for line in stderr.splitlines() if not line.startswith("archprof: notice: ")]
    return set(lines) == set(USER_PRINTS) and sorted(set(lines), key=lines.index) == USER_PRINTS


@pytest.mark.parametrize(
    ("command", "fmt"),
    [("profile", "json"), ("profile", "csv"), ("compare", "json"), ("crosscheck", "json"), ("crosscheck", "csv")],
)
def test_what_the_models_code_prints_goes_to_stderr_and_stdout_still_parses(user, command, fmt):
    model = f"{user}/chatty.py:build"
    models = [model, "mobilenet_v1"] if command == "compare" else [model]
    code, stdout, stderr = run_captured([command, *models, "--format", fmt])
    assert code == 0, stderr
    assert printed_in_order(stderr)
    if fmt == "json":
        data = json.loads(stdout)
        if command == "crosscheck":
            assert data["model"] == model and data["archprof"]["total"] == 0  # x * scale: no multiply-adds
        else:
            # x * scale at the default input 1x3x224x224: one FLOP per element, no multiply-adds
            assert data["models"][0]["totals"]["flops"] == 3 * 224 * 224 and data["models"][0]["totals"]["macs"] == 0
    else:
        rows = list(csv.reader(io.StringIO(stdout)))
        assert rows[0][0] in ("model", "tool") and all(len(r) == len(rows[0]) for r in rows), stdout


def test_the_installed_command_keeps_the_models_prints_off_stdout(user):
    done = subprocess.run([sys.executable, "-m", "archprof", "profile", f"{user}/chatty.py:build", "--format", "json"],
                          cwd=REPO, capture_output=True, text=True, check=False)
    assert done.returncode == 0 and printed_in_order(done.stderr), done.stderr
    assert json.loads(done.stdout)["models"][0]["totals"]["flops"] == 3 * 224 * 224


@pytest.mark.parametrize(
    ("args", "called"),
    [
        (["profile", "{user}/exits.py:in_factory"], "sys.exit(0)"),
        (["profile", "{user}/exits.py:in_factory:code=3"], "sys.exit(3)"),
        (["profile", "{user}/exits.py:in_factory:code=stop"], "sys.exit('stop')"),
        (["profile", "{user}/exits.py:bare"], "sys.exit()"),
        (["profile", "{user}/exits.py:in_forward", "--input-shape", "2x4"], "sys.exit(0)"),
        (["profile", "{user}/exits.py:in_forward:code=3", "--input-shape", "2x4", "--device", "cpu"], "sys.exit(3)"),
        (["profile", "{user}/exits_on_import.py:build"], "sys.exit(3)"),
        (["compare", "mobilenet_v1", "{user}/exits.py:in_forward@2x4", "--plot", "{tmp}/stages.svg"], "sys.exit(0)"),
        (["crosscheck", "{user}/exits.py:in_forward:code=3", "--input-shape", "2x4", "--format", "json"], "sys.exit(3)"),
        (["crosscheck", "{user}/exits_on_import.py:build"], "sys.exit(3)"),
    ],
)
def test_sys_exit_in_the_models_code_is_one_line_and_exit_2(user, tmp_path, args, called):
    out = tmp_path / "out.txt"
    args = [a.replace("{user}", str(user)).replace("{tmp}", str(tmp_path)) for a in args]
    code, stdout, stderr = run_captured([*args, "-o", str(out)])
    assert (code, stdout) == (2, "")
    assert stderr.splitlines() == [f"archprof: error: the model's code called {called}"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["user"]  # no output file, no figure


def test_verbose_shows_where_the_models_code_called_sys_exit(user, capsys):
    assert run(["--verbose", "profile", f"{user}/exits.py:in_forward:code=3"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and "sys.exit(self.code)" in err
    assert err.splitlines()[-1] == "archprof: error: the model's code called sys.exit(3)"


class FullStream(io.StringIO):
    """A standard output on a full disk: every write fails."""

    def write(self, text: str) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["report", "--out", "/proc/archprof-reports"], "cannot create directory /proc/archprof-reports: "),
        (["report", "--out", "{tmp}/a-file"], "--out {tmp}/a-file is a file, not a directory"),
        (["report", "--out", "{tmp}/missing/reports"], "--out {tmp}/missing/reports: directory {tmp}/missing does not exist"),
        (["profile", "mobilenet_v1", "-o", "/proc/archprof-out.csv"], "cannot write /proc/archprof-out.csv: "),
        (["profile", "mobilenet_v1", "-o", "/dev/full"], "cannot write /dev/full: No space left on device"),
        (["compare", "mobilenet_v1", "mobilenet_v2", "--plot", "/proc/archprof-plot.svg"], "cannot write /proc/archprof-plot.svg: "),
        (["compare", "mobilenet_v1", "mobilenet_v2", "--plot", "{tmp}/a-file/x.svg"], "cannot write {tmp}/a-file/x.svg: directory"),
        (["crosscheck", "mobilenet_v2:width=0.35,resolution=32", "-o", "/dev/full"], "cannot write /dev/full: No space left on device"),
    ],
)
def test_every_path_archprof_writes_fails_as_one_line_and_exit_2(tmp_path, args, message):
    (tmp_path / "a-file").write_text("mine\n")
    code, stdout, stderr = run_captured([a.replace("{tmp}", str(tmp_path)) for a in args])
    assert (code, stdout) == (2, "")
    lines = stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("archprof: error: " + message.replace("{tmp}", str(tmp_path))), stderr
    assert [p.name for p in tmp_path.iterdir()] == ["a-file"] and (tmp_path / "a-file").read_text() == "mine\n"


def test_a_full_standard_output_is_one_line_and_exit_2_and_leaves_no_figure(tmp_path):
    stderr = io.StringIO()
    with contextlib.redirect_stdout(FullStream()), contextlib.redirect_stderr(stderr):
        code = run(["compare", "mobilenet_v1", "mobilenet_v2", "--format", "csv", "--plot", str(tmp_path / "x.svg")])
    assert code == 2
    assert stderr.getvalue().splitlines() == ["archprof: error: cannot write the results to standard output: No space left on device"]
    assert list(tmp_path.iterdir()) == []


def test_a_failed_output_leaves_no_figure_behind(tmp_path, capsys):
    figure = tmp_path / "x.svg"
    assert run(["compare", "mobilenet_v1", "mobilenet_v2", "--plot", str(figure), "-o", "/dev/full"]) == 2
    assert capsys.readouterr().err == "archprof: error: cannot write /dev/full: No space left on device\n"
    assert list(tmp_path.iterdir()) == []
    # the same command with a writable output draws both
    assert run(["compare", "mobilenet_v1", "mobilenet_v2", "--plot", str(figure), "-o", str(tmp_path / "out.txt")]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt", "x.svg"]


def test_a_report_that_fails_midway_leaves_none_of_its_files(tmp_path, capsys):
    out = tmp_path / "reports"
    (out / "v1_vs_v2.md").mkdir(parents=True)  # the second file of the first table cannot be written
    assert run(["report", "--out", str(out)]) == 2
    assert capsys.readouterr().err == f"archprof: error: cannot write {out}/v1_vs_v2.md: it is a directory\n"
    assert [p.name for p in out.iterdir()] == ["v1_vs_v2.md"]  # v1_vs_v2.csv was written, then taken back


def test_all_or_nothing_takes_back_its_files_and_directories_on_failure(tmp_path):
    existing = tmp_path / "kept.txt"
    existing.write_text("before\n")
    with pytest.raises(RuntimeError, match="later failure"), all_or_nothing():
        write_atomic(make_dirs(tmp_path / "new" / "deeper") / "a.csv", "a\n")
        write_atomic(existing, "after\n")
        assert existing.read_text() == "before\n"  # nothing is in place before the block ends
        raise RuntimeError("later failure")
    assert [p.name for p in tmp_path.iterdir()] == ["kept.txt"] and existing.read_text() == "before\n"
    with all_or_nothing():
        write_atomic(make_dirs(tmp_path / "new" / "deeper") / "a.csv", "a\n")
        write_atomic(existing, b"after\n")
    assert (tmp_path / "new" / "deeper" / "a.csv").read_text() == "a\n" and existing.read_text() == "after\n"


def test_an_overwritten_file_keeps_its_mode_and_a_new_one_follows_the_umask(tmp_path):
    out, figure = tmp_path / "out.csv", tmp_path / "stages.svg"
    out.write_text("old\n")
    out.chmod(0o600)
    figure.write_text("old\n")
    figure.chmod(0o640)
    assert run(["compare", "mobilenet_v1", "mobilenet_v2", "--format", "csv", "-o", str(out), "--plot", str(figure)]) == 0
    assert out.read_text().startswith("model,grouping,name") and figure.read_text().lstrip().startswith("<?xml")
    assert (out.stat().st_mode & 0o777, figure.stat().st_mode & 0o777) == (0o600, 0o640)
    real, link = tmp_path / "real.json", tmp_path / "link.json"
    real.write_text("old\n")
    real.chmod(0o600)
    link.symlink_to(real)
    write_atomic(link, "{}\n")
    assert link.is_symlink() and real.read_text() == "{}\n" and real.stat().st_mode & 0o777 == 0o600
    previous = os.umask(0o027)
    try:
        write_atomic(tmp_path / "new.csv", "a\n")
    finally:
        os.umask(previous)
    assert (tmp_path / "new.csv").stat().st_mode & 0o777 == 0o640  # 0666 & ~027, as open() would give


HUGE = textwrap.dedent(
    """
    import resource, archprof
    for name, options, shape in [
        ("resnet50", {}, (1024, 3, 224, 224)),
        ("mobilenet_v2", {}, (1, 3, 16384, 16384)),
        ("resnet152", {"width_per_group": 256}, (1, 3, 224, 224)),
    ]:
        model = archprof.build_model(name, device="meta", **options)
        archprof.profile(model, (1, 3, 64, 64))
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        p = archprof.profile(model, shape)
        growth = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
        print(name, p.totals.params, p.totals.peak_activation_bytes, growth)
    """
)


def test_huge_configurations_profile_on_meta_without_allocating():
    done = subprocess.run([sys.executable, "-c", HUGE], capture_output=True, text=True, check=True)
    rows = [line.split() for line in done.stdout.splitlines()]
    assert [r[0] for r in rows] == ["resnet50", "mobilenet_v2", "resnet152"]
    for name, _, _, growth_kib in rows:
        assert int(growth_kib) < 50 * 1024, name  # resident memory grew by less than 50 MiB
    # What a real run would need, reported and not allocated: the activation peak of batch 1024 is
    # 1024 times batch 1's (9,633,792 bytes), 51 GB for 16384^2, and 581 M parameters (2.3 GB of
    # weights) for the widened resnet152.
    assert int(rows[0][2]) == 1024 * 9_633_792
    assert int(rows[1][2]) > 50 * 10**9
    assert int(rows[2][1]) == 581_200_168


class RunsCode:
    def __reduce__(self):
        return (Path.touch, (Path("/tmp/archprof-pwned-marker"),))


def test_a_checkpoint_that_would_run_code_is_refused(tmp_path):
    marker = Path("/tmp/archprof-pwned-marker")
    marker.unlink(missing_ok=True)
    evil = tmp_path / "evil.pt"
    with evil.open("wb") as f:
        pickle.dump({"conv1.weight": RunsCode()}, f, protocol=2)
    model = archprof.build_model("resnet18", device="meta")
    with pytest.raises(SpecError, match="refused: it is not weights-only"):
        check_checkpoint(model, evil)
    assert not marker.exists()
    assert run(["profile", "resnet18", "--checkpoint", str(evil)]) == 2
    assert not marker.exists()


def test_a_fitting_checkpoint_passes_and_a_mismatched_one_is_named(tmp_path, capsys):
    good = tmp_path / "r18.pt"
    torch.save({"state_dict": archprof.build_model("resnet18").state_dict()}, good)
    assert run(["profile", "resnet18", "--checkpoint", str(good), "--format", "csv"]) == 0
    assert run(["profile", "resnet34", "--checkpoint", str(good)]) == 2
    err = capsys.readouterr().err
    assert "does not fit the model: missing: layer1.2.conv1.weight" in err and err.count("\n") == 1


def test_verbose_shows_the_users_own_traceback(tmp_path, capsys):
    factory = tmp_path / "broken.py"
    factory.write_text("def build():\n    raise RuntimeError('my bug')\n")
    assert run(["profile", f"{factory}:build"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [f"archprof: error: {factory}:build raised RuntimeError: my bug"]
    assert run(["--verbose", "profile", f"{factory}:build"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and "raise RuntimeError('my bug')" in err


def test_explicit_device_cpu_runs_a_real_forward_with_the_same_counts():
    meta = archprof.profile(archprof.build_model("mobilenet_v2", device="meta", resolution=64))
    cpu = archprof.profile(archprof.build_model("mobilenet_v2", resolution=64), device="cpu")
    assert cpu.device == "cpu" and meta.device == "meta"
    assert cpu.totals == meta.totals
