"""Relax with default verification on the Gemma 3 template: wall time, and verification speed
against raw rendering measured in the same run.

    python benchmarks/relax_speed.py [--template PATH] [--runs N]

Prints: the CLI's wall time for `templatekit relax TEMPLATE -o OUT` (default 500 verified
conversations; target < 2 s), the baseline `python -c "import jinja2"`, and the verifier's
conversations per second against the rate at which the compiled original and relaxed templates
render the same conversations (raw two-template rendering; target ratio >= 0.25).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_TEMPLATE = REPO.parent / "shared" / "corpus" / "google--gemma-3-27b-it.jinja"


def wall(command: list[str], runs: int) -> float:
    """Median wall time of ``command`` over ``runs`` runs, in seconds."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def raw_render_rate(original: str, relaxed: str, cases: list[dict]) -> float:
    """Conversations per second for rendering each case with both compiled templates."""
    from templatekit.environment import render

    start = time.perf_counter()
    for case in cases:
        for text in (original, relaxed):
            try:
                render(text, case["messages"], add_generation_prompt=case.get("add_generation_prompt", False),
                       special_tokens={"bos_token": "<bos>"})
            except Exception:  # noqa: BLE001 - a refusal is an outcome, as in the verifier
                pass
    return len(cases) / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--template", type=Path, default=DEFAULT_TEMPLATE)
    parser.add_argument("--runs", type=int, default=5)
    options = parser.parse_args()
    if not options.template.is_file():
        print(f"template not found: {options.template} (clone with ../shared beside the checkout)")
        return 2

    from templatekit.relax import relax
    from templatekit.verify import verify
    from templatekit.strategies import cases_for

    original = options.template.read_text(encoding="utf-8")
    relaxed = relax(original).text

    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "relaxed.jinja"
        cli = wall([sys.executable, "-m", "templatekit_cli", "relax", str(options.template), "-o", str(out)],
                   options.runs)
    baseline = wall([sys.executable, "-c", "import jinja2"], options.runs)

    examples = 2000
    start = time.perf_counter()
    result = verify(original, relaxed, examples=examples, seed=1, normalize="merge")
    verify_rate = examples / (time.perf_counter() - start)
    assert result.ok, result.counterexample
    raw_rate = raw_render_rate(original, relaxed, cases_for(original, examples, seed=1))

    print(f"template: {options.template.name}")
    print(f"python -c 'import jinja2'          {baseline * 1000:8.0f} ms (baseline)")
    print(f"templatekit relax -o OUT (500 ex.) {cli * 1000:8.0f} ms ({cli / baseline:.1f}x baseline; "
          f"target < 2000 ms: {'met' if cli < 2 else 'MISSED'})")
    print(f"verify, merge, {examples} conversations  {verify_rate:8.0f} conv/s")
    print(f"raw rendering, both templates      {raw_rate:8.0f} conv/s")
    print(f"verifier / raw rendering           {verify_rate / raw_rate:8.2f} (target >= 0.25)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
