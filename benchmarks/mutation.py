"""Mutation score of the cost rules and the profile: mutmut 3 over the files pyproject.toml's
[tool.mutmut] names, then killed / total per file.

    .venv/bin/pip install -e '.[mutation]'
    .venv/bin/python benchmarks/mutation.py                 # run every mutant not yet run, then the score
    .venv/bin/python benchmarks/mutation.py 'archprof.tracing.rules.*'   # only these mutants (mutmut's globs)
    .venv/bin/python benchmarks/mutation.py --score         # the score of what has run, running nothing

mutmut copies the package into mutants/ and runs, for each mutant, the tests that reached the
mutated function, fastest first, stopping at the first failure (at most two workers, at nice 10,
one thread each: the machine is shared). A mutant is killed when a test fails or it times out (a
mutated loop that never ends); it survives when every test passes. Each survivor is either killed
by a test or listed with the reason it cannot be, in benchmarks/mutation_equivalent.md; this
script prints the ones that are neither. Not part of CI: a full run takes about three hours on two
cores, most of it in the mutants of ``profile()`` and the functions it calls, which some 300 tests
reach. mutmut keeps every verdict in mutants/, so a run stopped part-way goes on where it stopped.

mutmut's fork server imports archprof and collects the tests once ([tool.mutmut] says why), so a
function that runs only when archprof is imported (``per_element``, ``register_cost_rule`` and
the ``_register_*`` helpers, which register the rules) runs unmutated there, and its mutants
survive whatever they break. ``--recheck GLOB ...`` runs such survivors again in fresh processes,
against the whole selection, as mutmut runs a mutant (``MUTANT_UNDER_TEST`` set, in mutants/);
the verdicts go to mutants/recheck.json and into the score. ``--recheck GLOB --tests TEST ...``
does it with a few tests (tests added after the run, which mutmut has not yet tied to the
functions they reach): kills count, survivals are left as mutmut found them.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import re
import subprocess
import sys
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
EQUIVALENT = REPO / "benchmarks" / "mutation_equivalent.md"
RECHECK = REPO / "mutants" / "recheck.json"
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
# mutmut's exit codes (mutmut/stats.py): 1 and 3 a failing test; these a time or CPU limit
KILLED, TIMEOUT = {1, 3}, {36, 24, -24, 152, 255}
SURVIVED, NO_TESTS = {0}, {5, 33}


def status(code: int | None) -> str:
    if code is None:
        return "not run"
    if code in KILLED:
        return "killed"
    if code in TIMEOUT:
        return "timeout"
    if code in SURVIVED:
        return "survived"
    if code in NO_TESTS:
        return "no tests"
    return "other"


def listed_equivalent() -> dict[str, str]:
    """Mutant name -> reason, from the table rows of mutation_equivalent.md."""
    if not EQUIVALENT.exists():
        return {}
    rows = re.findall(r"^\| `([\w.ǁ]+)` \| (.+?) \|$", EQUIVALENT.read_text(encoding="utf-8"), re.M)
    return dict(rows)


def results() -> dict[str, dict[str, int | None]]:
    """Source file -> mutant name -> exit code, from mutmut's mutants/*.meta files."""
    rechecked = json.loads(RECHECK.read_text(encoding="utf-8")) if RECHECK.exists() else {}
    files = {}
    for meta in sorted((REPO / "mutants").rglob("*.py.meta")):
        codes = json.loads(meta.read_text(encoding="utf-8"))["exit_code_by_key"]
        if codes:
            files[str(meta.relative_to(REPO / "mutants"))[: -len(".meta")]] = {
                name: rechecked.get(name, code) if code in SURVIVED | NO_TESTS else code for name, code in codes.items()}
    return files


def recheck(patterns: list[str], only: list[str], workers: int = 2) -> None:
    """Run the survivors matching any of ``patterns`` against the whole test selection (or only the tests
    in ``only``: then a kill is recorded, and a survivor left as it was), as mutmut runs one,
    ``workers`` at a time."""
    try:
        from tomllib import loads
    except ModuleNotFoundError:  # Python 3.10: mutmut reads its configuration with toml there
        from toml import loads
    config = loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["mutmut"]
    tests = [*(only or config["pytest_add_cli_args_test_selection"]), *config.get("pytest_add_cli_args", [])]
    survivors = [name for codes in results().values() for name, code in codes.items()
                 if any(fnmatch.fnmatch(name, p) for p in patterns) and status(code) in ("survived", "no tests")]
    lock = threading.Lock()

    def run(name: str) -> None:
        command = ["nice", "-n", "10", sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:randomly", *tests]
        done = subprocess.run(command, cwd=REPO / "mutants", env={**ENV, "MUTANT_UNDER_TEST": name},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        print(f"{name}: {status(done.returncode)}", file=sys.stderr)
        if only and status(done.returncode) not in ("killed", "timeout"):
            return
        with lock:  # read again before writing: another recheck may have written since
            verdicts = {**(json.loads(RECHECK.read_text(encoding="utf-8")) if RECHECK.exists() else {}), name: done.returncode}
            RECHECK.write_text(json.dumps(verdicts, indent=1), encoding="utf-8")

    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(run, survivors))


def print_score(files: dict[str, dict[str, int | None]]) -> list[str]:
    """Print killed / total per file; return the survivors neither killed nor listed."""
    equivalent = listed_equivalent()
    unexplained = []
    print(f"{'file':36} {'killed':>7} {'timeout':>8} {'survived':>9} {'no tests':>9} {'not run':>8} "
          f"{'total':>6} {'score':>7} {'equivalent':>11} {'score less equivalent':>22}")
    for path, codes in files.items():
        counts = Counter(status(c) for c in codes.values())
        run = len(codes) - counts["not run"]
        detected = counts["killed"] + counts["timeout"]
        equal = sum(1 for name, c in codes.items() if name in equivalent and status(c) in ("survived", "no tests"))
        score = f"{100 * detected / run:.1f} %" if run else "-"
        less = f"{100 * detected / (run - equal):.1f} %" if run - equal else "-"
        print(f"{path:36} {counts['killed']:>7} {counts['timeout']:>8} {counts['survived']:>9} {counts['no tests']:>9} "
              f"{counts['not run']:>8} {len(codes):>6} {score:>7} {equal:>11} {less:>22}")
        unexplained += [n for n, c in codes.items() if status(c) in ("survived", "no tests", "other") and n not in equivalent]
    return unexplained


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mutants", nargs="*", help="mutmut's mutant names or globs (default: every mutant)")
    parser.add_argument("--score", action="store_true", help="print the score of the mutants already run; run none")
    parser.add_argument("--workers", type=int, default=2, help="mutmut's --max-children (default 2)")
    parser.add_argument("--recheck", metavar="GLOB", nargs="+", help="run the survivors matching a GLOB against every selected test")
    parser.add_argument("--tests", nargs="+", default=[], help="with --recheck: only these tests (kills count, survivals not)")
    args = parser.parse_args(argv)
    if args.recheck:
        recheck(args.recheck, args.tests, args.workers)
    elif not args.score:
        mutmut = Path(sys.executable).with_name("mutmut")
        command = ["nice", "-n", "10", str(mutmut), "run", "--max-children", str(args.workers), *args.mutants]
        print("$", " ".join(command), file=sys.stderr)
        # mutmut's own exit status says nothing about the score (it exits 0 with survivors)
        subprocess.run(command, cwd=REPO, env=ENV, check=False)
    files = results()
    if not files:
        print("no mutation results under mutants/: run without --score first", file=sys.stderr)
        return 2
    unexplained = print_score(files)
    equivalent = listed_equivalent()
    if equivalent:
        print(f"\nlisted as equivalent or out of the tests' reach ({EQUIVALENT.relative_to(REPO)}):")
        for name, reason in equivalent.items():
            print(f"  {name}: {reason}")
    if unexplained:
        print(f"\nsurvivors neither killed nor listed ({len(unexplained)}; `mutmut show NAME` shows one):")
        by_function: dict[str, list[str]] = {}
        for name in unexplained:
            function, _, number = name.rpartition("__mutmut_")
            by_function.setdefault(function, []).append(number)
        for function, numbers in by_function.items():
            print(f"  {function}__mutmut_{{{','.join(numbers)}}}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
