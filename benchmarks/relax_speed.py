"""Relax with default verification on the Gemma 3 template: wall time, and verification speed
against raw rendering measured in the same run.

    python benchmarks/relax_speed.py [--template PATH] [--runs N]

Prints the wall time of `templatekit relax TEMPLATE -o OUT` (default verification: 500
conversations, merge property included; target < 2 s) against `python -c "import jinja2"`,
and the verification's conversations per second against the rate at which the compiled
original and relaxed templates render the same conversations (target ratio >= 0.25).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

# benchmarks/ is on sys.path when run as a script
from lint_speed import medians
from startup import console_script
from verify_throughput import DEFAULT_TEMPLATE, TARGET_RATIO, raw_rate, verify_rate

TARGET_SECONDS = 2.0
EXAMPLES = 2000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--template", type=Path, default=DEFAULT_TEMPLATE)
    parser.add_argument("--runs", type=int, default=5)
    options = parser.parse_args()
    if not options.template.is_file():
        print(f"template not found: {options.template} (clone with ../shared beside the checkout)")
        return 2

    from templatekit.probes.harness import DEFAULT_SPECIAL_TOKENS
    from templatekit.rewrite import relax
    from templatekit.verification import cases_for

    with tempfile.TemporaryDirectory(prefix="templatekit-relax-") as folder:
        out = str(Path(folder) / "relaxed.jinja")
        times = medians(
            {
                "baseline": [sys.executable, "-c", "import jinja2"],
                "relax": [console_script("templatekit"), "relax", str(options.template), "-o", out],
            },
            options.runs,
            dict(os.environ),
        )
    original = options.template.read_text(encoding="utf-8")
    relaxed = relax(original).text
    raw = raw_rate(original, relaxed, cases_for(original, EXAMPLES, seed=1), dict(DEFAULT_SPECIAL_TOKENS))
    verified = verify_rate(original, relaxed, EXAMPLES, normalize="merge")

    baseline, wall = times["baseline"], times["relax"]
    print(f"template: {options.template.name}; median of {options.runs} runs")
    print(f"python -c 'import jinja2' (baseline)      {baseline * 1000:6.0f} ms")
    print(
        f"templatekit relax -o OUT (500 verified)   {wall * 1000:6.0f} ms ({wall / baseline:.1f}x baseline; "
        f"target < {TARGET_SECONDS:.0f} s: {'met' if wall < TARGET_SECONDS else 'MISSED'})"
    )
    print(f"raw rendering, both templates             {raw:6.0f} conversations/s")
    print(
        f"verification as relax runs it (merge)    {verified:6.0f} conversations/s "
        f"({verified / raw:.2f}x raw; target >= {TARGET_RATIO}x)"
    )
    return 0 if wall < TARGET_SECONDS and verified / raw >= TARGET_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())
