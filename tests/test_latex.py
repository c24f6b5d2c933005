"""The LaTeX archprof writes compiles as a paper would \\input it: pdflatex with booktabs alone
(texlive-latex-base and texlive-latex-recommended; .ci/run installs them). Skipped without pdflatex."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from archprof.cli import run

REPORTS = Path(__file__).resolve().parent.parent / "reports"
PDFLATEX = shutil.which("pdflatex")
needs_pdflatex = pytest.mark.skipif(PDFLATEX is None, reason="pdflatex is not installed (apt-get install texlive-latex-base texlive-latex-recommended)")


def has_package(name: str) -> bool:
    kpsewhich = shutil.which("kpsewhich")
    found = subprocess.run([kpsewhich, f"{name}.sty"], capture_output=True, text=True) if kpsewhich else None
    return bool(found and found.stdout.strip())


def compile_input(tmp_path: Path, tex: str, packages: tuple[str, ...] = ("booktabs",)) -> str:
    """``tex`` as ``\\input`` by a minimal document; the log of a pdflatex run that must succeed."""
    (tmp_path / "table.tex").write_text(tex)
    uses = "".join(f"\\usepackage{{{p}}}" for p in packages)
    (tmp_path / "paper.tex").write_text(f"\\documentclass{{article}}{uses}\\begin{{document}}\\input{{table.tex}}\\end{{document}}\n")
    done = subprocess.run([PDFLATEX, "-interaction=nonstopmode", "-halt-on-error", "paper.tex"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    log = (tmp_path / "paper.log").read_text(errors="replace") if (tmp_path / "paper.log").exists() else done.stdout
    assert done.returncode == 0, log[-3000:]
    assert (tmp_path / "paper.pdf").stat().st_size > 0
    return log


def latex_of(capsys, *args: str) -> str:
    assert run([*args, "--format", "latex"]) == 0
    return capsys.readouterr().out


@needs_pdflatex
def test_compare_resnet50_mobilenet_v2_latex_compiles_with_booktabs_alone(tmp_path, capsys):
    log = compile_input(tmp_path, latex_of(capsys, "compare", "resnet50", "mobilenet_v2"))
    assert "Undefined control sequence" not in log


@needs_pdflatex
@pytest.mark.parametrize("tex", sorted(REPORTS.glob("*.tex")), ids=lambda p: p.name)
def test_every_committed_report_compiles_with_booktabs_alone(tmp_path, tex):
    compile_input(tmp_path, tex.read_text())


@needs_pdflatex
def test_every_command_s_latex_compiles(tmp_path, capsys):
    for i, args in enumerate([
        ("profile", "mobilenet_v1", "--width", "0.5", "--resolution", "160", "--per-layer", "--layer-depth", "1"),
        ("resnet", "--depth", "18", "--caption", "ResNet-18 & friends: 100% of it", "--label", "tab:r18"),
        ("blocks",),
        ("detector", "fcos", "--input-shape", "1x3x256x256", "--scale", "G"),
    ]):
        (tmp_path / str(i)).mkdir()
        compile_input(tmp_path / str(i), latex_of(capsys, *args))


@needs_pdflatex
@pytest.mark.skipif(not has_package("siunitx"), reason="siunitx is not installed (texlive-science)")
def test_siunitx_columns_compile_with_siunitx(tmp_path, capsys):
    compile_input(tmp_path, latex_of(capsys, "compare", "resnet50", "mobilenet_v2", "--siunitx"), ("booktabs", "siunitx"))
