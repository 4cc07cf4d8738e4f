"""Line and branch coverage of shared/ and asgi_gateway/, one test directory at a time.

Usage (through `./dev.sh coverage`, which sets up like `./dev.sh test`):

    scripts/measure_coverage.py                      # every test directory, then the report
    scripts/measure_coverage.py tests/shared         # rerun one directory, report on all data
    scripts/measure_coverage.py --report             # combine and report what is measured
    scripts/measure_coverage.py tests/shared -- -x   # pytest arguments after `--`

Each directory's data lives under var/coverage/<directory>/ and is replaced only when that
directory runs again; the report combines every directory's data. Code run in the uvicorn
servers and CLI commands the tests start is measured too (see [tool.coverage.run]).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "var" / "coverage"
DIRECTORIES = (
    "tests/shared",
    "tests/asgi_gateway",
    "tests/parity",
    "tests/legacy_flask",
    "tests/admin_assistant",
    "tests/test_dependencies.py",
)
PACKAGES = ("shared", "asgi_gateway")
TARGET_PERCENT = 95.0


def measure(directory: str, pytest_args: list[str]) -> int:
    """Run one test directory under coverage into its own data folder; pytest's exit code."""
    folder = DATA / directory.removeprefix("tests/").replace("/", "_")
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    environ = {**os.environ, "COVERAGE_FILE": str(folder / ".coverage")}
    command = [sys.executable, "-m", "coverage", "run", "-m", "pytest", "-p", "no:cacheprovider"]
    print(f"== {directory}", flush=True)
    return subprocess.run([*command, directory, *pytest_args], cwd=ROOT, env=environ).returncode


def combine() -> Path:
    """Combine every directory's data (kept for later reruns) into one file."""
    folders = sorted(p for p in DATA.iterdir() if p.is_dir() and any(p.glob(".coverage.*")))
    if not folders:
        sys.exit("no coverage data yet: run `./dev.sh coverage` first")
    combined = DATA / ".coverage"
    combined.unlink(missing_ok=True)
    coverage = [sys.executable, "-m", "coverage"]
    subprocess.run(
        [
            *coverage,
            "combine",
            "--keep",
            "--quiet",
            "--data-file",
            str(combined),
            *map(str, folders),
        ],
        cwd=ROOT,
        check=True,
    )
    print("measured: " + ", ".join(p.name for p in folders))
    return combined


def summarize(combined: Path) -> list[str]:
    """Per-package line and branch figures; the modules under the target, per package."""
    report = DATA / "coverage.json"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "coverage",
            "json",
            "--quiet",
            "--data-file",
            str(combined),
            "-o",
            str(report),
        ],
        cwd=ROOT,
        check=True,
    )
    files = json.loads(report.read_text())["files"]
    below: list[str] = []
    print(f"\n{'package':<14}{'lines':>22}{'branches':>22}")
    for package in PACKAGES:
        mine = {name: f["summary"] for name, f in files.items() if name.startswith(package + "/")}
        lines = sum(s["covered_lines"] for s in mine.values())
        statements = sum(s["num_statements"] for s in mine.values())
        branches = sum(s["covered_branches"] for s in mine.values())
        arcs = sum(s["num_branches"] for s in mine.values())
        print(
            f"{package:<14}{_percent(lines, statements):>8} {lines:>6}/{statements:<6}"
            f"{_percent(branches, arcs):>8} {branches:>6}/{arcs:<6}"
        )
        for name, summary in sorted(mine.items()):
            if not summary["num_statements"]:
                continue  # a package's __init__ holding only its docstring
            percent = 100.0 * summary["covered_lines"] / summary["num_statements"]
            if percent < TARGET_PERCENT:
                below.append(f"  {name}: {percent:.1f}% of lines")
    return below


def _percent(part: int, whole: int) -> str:
    return f"{100.0 * part / whole:.1f}%" if whole else "-"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directories", nargs="*", help="test directories (default: all)")
    parser.add_argument("--report", action="store_true", help="only combine and report")
    args, pytest_args = argv, []
    if "--" in argv:
        cut = argv.index("--")
        args, pytest_args = argv[:cut], argv[cut + 1 :]
    options = parser.parse_args(args)
    failed: list[str] = []
    directories = [] if options.report else options.directories or list(DIRECTORIES)
    for directory in directories:
        if not (ROOT / directory).exists():
            parser.error(
                f"{directory}: no such test directory (expected one of {', '.join(DIRECTORIES)})"
            )
    for directory in directories:
        if measure(directory, pytest_args) not in (0, 5):
            failed.append(directory)
    combined = combine()
    subprocess.run(
        [sys.executable, "-m", "coverage", "report", "--data-file", str(combined), "--sort=cover"],
        cwd=ROOT,
        check=False,
    )
    subprocess.run(
        [sys.executable, "-m", "coverage", "html", "--quiet", "--data-file", str(combined)],
        cwd=ROOT,
        check=True,
    )
    below = summarize(combined)
    if below:
        print(f"\nmodules under {TARGET_PERCENT:.0f}% of lines:\n" + "\n".join(below))
    print(f"\nHTML report: {DATA / 'html' / 'index.html'}")
    if failed:
        print("tests failed in: " + ", ".join(failed), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
