"""Startup time of the ``templatekit`` command, against ``python -c "import jinja2"`` in the same run.

Usage: python benchmarks/startup.py [--runs N]

Runs each command N times (after one warm-up run), in turn, and prints the median wall time
and its ratio to the baseline.  Exits 1 when ``templatekit --help`` misses its target
(a median under 0.5 s).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HELP_TARGET_SECONDS = 0.5


def console_script(name: str) -> str:
    """The console script installed beside this interpreter (not a pyenv/asdf shim), else on PATH."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if found is None:
        raise SystemExit(f"{name} is not installed for {sys.executable} (pip install -e .)")
    return found


def wall_time(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="runs per command (default 20)")
    runs = parser.parse_args().runs
    templatekit = console_script("templatekit")
    commands = {
        'python -c "import jinja2" (baseline)': [sys.executable, "-c", "import jinja2"],
        "templatekit --help": [templatekit, "--help"],
        "templatekit --version": [templatekit, "--version"],
    }
    samples: dict[str, list[float]] = {label: [] for label in commands}
    for command in commands.values():
        wall_time(command)  # warm the file system cache
    for _ in range(runs):  # interleaved, so drifts in machine load hit every command alike
        for label, command in commands.items():
            samples[label].append(wall_time(command))
    medians = {label: statistics.median(times) for label, times in samples.items()}
    baseline = next(iter(medians.values()))
    print(f"startup, median of {runs} runs ({sys.executable}, Python {sys.version.split()[0]})")
    print(f"{'command':<40} {'median':>10} {'ratio':>8}")
    for label, median in medians.items():
        print(f"{label:<40} {median * 1000:>8.1f}ms {median / baseline:>7.2f}x")
    help_median = medians["templatekit --help"]
    verdict = "OK" if help_median < HELP_TARGET_SECONDS else "MISSED"
    print(f"target: templatekit --help < {HELP_TARGET_SECONDS * 1000:.0f} ms: {verdict}")
    return 0 if verdict == "OK" else 1


if __name__ == "__main__":
    sys.exit(main())
