"""A benchmark's section of a markdown report, written in place (``benchmarks/run.py`` writes the rest)."""

from __future__ import annotations

from pathlib import Path


def write_section(path: Path, heading: str, section: str) -> None:
    """``section``, which opens with ``heading``, in place of an earlier one in ``path``, else appended."""
    text = path.read_text() if path.exists() else ""
    start = text.find(heading)
    if start < 0:
        path.write_text(text.rstrip("\n") + "\n\n" + section)
        return
    end = text.find("\n## ", start + len(heading))
    rest = text[end + 1:] if end >= 0 else ""
    path.write_text(text[:start] + section + ("\n" + rest if rest else ""))
