"""`archprof list` and the command line's error contract."""

from __future__ import annotations

import subprocess
import sys

from archprof.cli import run


def test_list_names_every_architecture_with_its_defaults(capsys):
    assert run(["list"]) == 0
    out = capsys.readouterr().out
    for name in ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "mobilenet_v1", "mobilenet_v2"]:
        assert name in out
    assert "stride_in_1x1=False" in out and "width=1.0" in out


def test_unknown_command_is_one_line_on_stderr_with_exit_2(capsys):
    assert run(["lst"]) == 2
    captured = capsys.readouterr()
    assert captured.err.strip().splitlines() == ["archprof: error: No such command 'lst'. Did you mean 'list'?"]
    assert captured.out == ""


def test_python_dash_m_runs_the_same_command_line():
    done = subprocess.run([sys.executable, "-m", "archprof", "list"], capture_output=True, text=True, check=False)
    assert done.returncode == 0 and "mobilenet_v2" in done.stdout
