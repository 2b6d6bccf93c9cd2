"""Wall time of ``templatekit lint``, against ``python -c "import jinja2"`` in the same run.

Usage: python benchmarks/lint_speed.py [--runs N] [--corpus-runs M]

Measures (medians, commands interleaved so load drifts hit all alike):

* ``python -c "import jinja2"`` - the baseline;
* ``templatekit lint <corpus>/google--gemma-3-27b-it.jinja`` - one template, as the pre-commit
  hook runs it (interpreter start included); target < 0.25 s;
* ``templatekit lint <corpus>`` - every corpus template in one process; target < 10 s.

Bytecode is written to a temporary ``PYTHONPYCACHEPREFIX`` and warmed up first, as in an
installed package (the commands would otherwise recompile templatekit on every start when
``PYTHONDONTWRITEBYTECODE`` is set).  Exits 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from startup import console_script  # benchmarks/ is on sys.path when run as a script

CORPUS = Path(__file__).resolve().parent.parent.parent / "shared" / "corpus"
GEMMA3 = CORPUS / "google--gemma-3-27b-it.jinja"
ONE_TEMPLATE_TARGET = 0.25
CORPUS_TARGET = 10.0


def wall_time(command: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, check=False)
    return time.perf_counter() - start


def medians(commands: dict[str, list[str]], runs: int, env: dict[str, str]) -> dict[str, float]:
    for command in commands.values():
        wall_time(command, env)  # warm up: bytecode and file system cache
    samples: dict[str, list[float]] = {label: [] for label in commands}
    for _ in range(runs):
        for label, command in commands.items():
            samples[label].append(wall_time(command, env))
    return {label: statistics.median(times) for label, times in samples.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="runs of the baseline and one-template lint")
    parser.add_argument("--corpus-runs", type=int, default=3, help="runs of the whole-corpus lint")
    arguments = parser.parse_args()
    if not GEMMA3.is_file():
        raise SystemExit(f"corpus not found at {CORPUS} (clone with ../shared beside the checkout)")
    templatekit = console_script("templatekit")
    with tempfile.TemporaryDirectory(prefix="templatekit-pycache-") as cache:
        env = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPYCACHEPREFIX"] = cache
        baseline_label = 'python -c "import jinja2" (baseline)'
        one_label = "templatekit lint gemma-3-27b-it.jinja"
        corpus_label = f"templatekit lint corpus ({len(list(CORPUS.glob('*.jinja')))} templates)"
        quick = medians(
            {baseline_label: [sys.executable, "-c", "import jinja2"], one_label: [templatekit, "lint", str(GEMMA3)]},
            arguments.runs,
            env,
        )
        whole = medians(
            {corpus_label: [templatekit, "lint", str(CORPUS), "--format", "json"]}, arguments.corpus_runs, env
        )
    results = {**quick, **whole}
    baseline = results[baseline_label]
    print(
        f"lint speed, medians ({arguments.runs} runs; corpus {arguments.corpus_runs}) "
        f"({sys.executable}, Python {sys.version.split()[0]})"
    )
    print(f"{'command':<46} {'median':>10} {'ratio':>9}")
    for label, median in results.items():
        print(f"{label:<46} {median * 1000:>8.1f}ms {median / baseline:>8.2f}x")
    verdicts = {
        f"one template < {ONE_TEMPLATE_TARGET * 1000:.0f} ms": results[one_label] < ONE_TEMPLATE_TARGET,
        f"whole corpus < {CORPUS_TARGET:.0f} s": results[corpus_label] < CORPUS_TARGET,
    }
    for target, met in verdicts.items():
        print(f"target: {target}: {'OK' if met else 'MISSED'}")
    return 0 if all(verdicts.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
