"""Verifier throughput on the Gemma 3 template against raw rendering, and peak memory.

    python benchmarks/verify_throughput.py [--template PATH] [--examples N] [--runs R]

Baseline (same run): the rate at which the compiled original and relaxed templates render the
very conversations the verifier generates (two renders per conversation, no generation, no
comparison).  Measured: ``templatekit.verify`` conversations per second with fidelity and
tolerance (``normalize=None``), with the merge property as ``relax`` runs it
(``normalize="merge"``), and with ``jobs=2``; the best of R runs each.  Peak memory: Python
allocations during one verify run (tracemalloc, a separate run since tracing slows it down)
and the process's maximum resident set size.  Target: verify rate >= 0.25 x the raw rate
(exit 1 when missed).
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
import tracemalloc
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_TEMPLATE = REPO.parent / "shared" / "corpus" / "google--gemma-3-27b-it.jinja"
TARGET_RATIO = 0.25


def raw_rate(original: str, relaxed: str, cases: list[dict], special_tokens: dict[str, str]) -> float:
    """Conversations per second rendering each case with both compiled templates."""
    from templatekit.environment import compile_template

    compiled = [compile_template(original), compile_template(relaxed)]
    start = time.perf_counter()
    for case in cases:
        for template in compiled:
            try:
                template.render(
                    messages=case["messages"],
                    tools=case["tools"],
                    add_generation_prompt=case["add_generation_prompt"],
                    **special_tokens,
                    **case["kwargs"],
                )
            except Exception:  # noqa: BLE001 - a refusal is an outcome, as in the verifier
                pass
    return len(cases) / (time.perf_counter() - start)


def verify_rate(original: str, relaxed: str, examples: int, **options: object) -> float:
    from templatekit.verification import verify

    start = time.perf_counter()
    result = verify(original, relaxed, examples=examples, seed=1, **options)
    elapsed = time.perf_counter() - start
    if not result.ok:
        raise SystemExit(f"unexpected counterexample: {result.counterexample.summary}")
    return examples / elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--template", type=Path, default=DEFAULT_TEMPLATE)
    parser.add_argument("--examples", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=3)
    options = parser.parse_args()
    if not options.template.is_file():
        print(f"template not found: {options.template} (clone with ../shared beside the checkout)")
        return 2

    from templatekit.probes.harness import DEFAULT_SPECIAL_TOKENS
    from templatekit.rewrite import relax
    from templatekit.verification import cases_for, verify

    original = options.template.read_text(encoding="utf-8")
    relaxed = relax(original).text
    start = time.perf_counter()
    verify(original, relaxed, examples=1)  # first call: compile both, probe the shape, analyse
    setup = time.perf_counter() - start

    examples, runs = options.examples, options.runs
    cases = cases_for(original, examples, seed=1)
    raw = max(raw_rate(original, relaxed, cases, dict(DEFAULT_SPECIAL_TOKENS)) for _ in range(runs))
    plain = max(verify_rate(original, relaxed, examples) for _ in range(runs))
    merge = max(verify_rate(original, relaxed, examples, normalize="merge") for _ in range(runs))
    parallel = max(verify_rate(original, relaxed, examples, normalize="merge", jobs=2) for _ in range(runs))

    tracemalloc.start()
    verify(original, relaxed, examples=examples, seed=1, normalize="merge")
    traced_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    max_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux

    print(f"template: {options.template.name}; {examples} conversations, best of {runs} runs")
    print(f"first-call set-up (compile, shape probes, analysis): {setup * 1000:.0f} ms")
    print(f"raw two-template rendering (baseline): {raw:8.0f} conversations/s")
    print(f"verify, fidelity + tolerance:          {plain:8.0f} conversations/s  ({plain / raw:.2f}x)")
    print(f"verify, + merge normalize (as relax):  {merge:8.0f} conversations/s  ({merge / raw:.2f}x)")
    print(f"verify, + merge normalize, jobs=2:     {parallel:8.0f} conversations/s  ({parallel / raw:.2f}x)")
    print(
        f"peak Python allocations during one verify run: {traced_peak / 2**20:.1f} MiB; "
        f"process max RSS: {max_rss:.0f} MiB"
    )
    ratio = min(plain, merge) / raw
    print(f"target: verify >= {TARGET_RATIO}x raw: {'met' if ratio >= TARGET_RATIO else 'MISSED'} ({ratio:.2f}x)")
    return 0 if ratio >= TARGET_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())
