"""What a relaxed template costs per request: R's render time against T's, measured in one run.

    python benchmarks/relaxed_render.py [--examples N] [--runs R] [TEMPLATE ...]

For each template (default: every corpus template with a role-structure check), the verifier's
generated conversations are split into those the original T renders ("accepted") and those it
refuses by a role-structure check ("rejected"). Prints, per template and strategy, the median
over R runs of the per-conversation render CPU time (process time: other load on the machine does not count) of T and of R on the accepted ones (target: R
within 1.3x of T), and R's time on the rejected ones against T's time on the normalised
conversation (the work the rejected path replaces). Exits 1 when the accepted target is missed.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

TARGET = 1.3
CORPUS = Path(__file__).resolve().parent.parent.parent / "shared" / "corpus"


def _per_render(template: str, cases: list[dict[str, Any]], runs: int, messages: list | None = None) -> float:
    from templatekit.environment import render
    from templatekit.probes.harness import DEFAULT_SPECIAL_TOKENS

    def once() -> float:
        start = time.process_time()
        for index, case in enumerate(cases):
            render(
                template,
                messages[index] if messages else case["messages"],
                tools=case.get("tools"),
                add_generation_prompt=bool(case.get("add_generation_prompt")),
                special_tokens=DEFAULT_SPECIAL_TOKENS,
                **case.get("kwargs", {}),
            )
        return (time.process_time() - start) / max(1, len(cases))

    once()  # compile and warm up
    return statistics.median(once() for _ in range(runs))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("templates", nargs="*", type=Path)
    parser.add_argument("--examples", type=int, default=400)
    parser.add_argument("--runs", type=int, default=5)
    options = parser.parse_args()

    from templatekit.analysis import ROLE_STRUCTURE, analyze
    from templatekit.environment import render
    from templatekit.normalization import apply_policy
    from templatekit.probes.harness import DEFAULT_SPECIAL_TOKENS, FIXED_NOW
    from templatekit.probes.merge_policy import role_policy, role_rejection
    from templatekit.rewrite import relax
    from templatekit.syntax import parse
    from templatekit.verification import cases_for

    paths = options.templates or sorted(CORPUS.glob("*.jinja"))
    if not paths:
        print(f"no templates given and no corpus at {CORPUS}")
        return 2
    ratios: list[float] = []
    print(
        f"{'template':48} {'strategy':8} {'accepted':>8} {'T µs':>8} {'R µs':>8} {'R/T':>6} "
        f"{'rejected':>8} {'T(N) µs':>8} {'R µs':>8} {'R/T(N)':>6}"
    )
    for path in paths:
        original = path.read_text(encoding="utf-8")
        if not any(site.check_class in ROLE_STRUCTURE for site in analyze(parse(original)).sites):
            continue
        cases = cases_for(original, options.examples, seed=1)
        accepted, rejected = [], []
        for case in cases:
            try:
                render(
                    original,
                    case["messages"],
                    tools=case.get("tools"),
                    add_generation_prompt=bool(case.get("add_generation_prompt")),
                    special_tokens=DEFAULT_SPECIAL_TOKENS,
                    **case.get("kwargs", {}),
                )
                accepted.append(case)
            except Exception:  # noqa: BLE001 - sorting cases by outcome
                if (
                    role_rejection(
                        original,
                        case["messages"],
                        tools=case.get("tools"),
                        add_generation_prompt=bool(case.get("add_generation_prompt")),
                        variables=case.get("kwargs", {}),
                        special_tokens=DEFAULT_SPECIAL_TOKENS,
                        now=FIXED_NOW,
                    )
                    is not None
                ):
                    rejected.append(case)
        for strategy in ("merge", "skip"):
            relaxed = relax(original, strategy=strategy).text
            t_accepted = _per_render(original, accepted, options.runs)
            r_accepted = _per_render(relaxed, accepted, options.runs)
            ratios.append(r_accepted / t_accepted)
            policy = role_policy(original)
            normalized, renderable = [], []
            for case in rejected:
                messages = apply_policy(case["messages"], strategy, policy)
                try:
                    render(
                        original,
                        messages,
                        tools=case.get("tools"),
                        add_generation_prompt=bool(case.get("add_generation_prompt")),
                        special_tokens=DEFAULT_SPECIAL_TOKENS,
                        **case.get("kwargs", {}),
                    )
                except Exception:  # noqa: BLE001 - only normalised histories T renders are timed
                    continue
                normalized.append(messages)
                renderable.append(case)
            t_normal = _per_render(original, renderable, options.runs, normalized) if renderable else float("nan")
            r_rejected = _per_render(relaxed, renderable, options.runs) if renderable else float("nan")
            print(
                f"{path.name[:48]:48} {strategy:8} {len(accepted):8} {t_accepted * 1e6:8.1f} "
                f"{r_accepted * 1e6:8.1f} {r_accepted / t_accepted:6.2f} {len(renderable):8} "
                f"{t_normal * 1e6:8.1f} {r_rejected * 1e6:8.1f} {r_rejected / t_normal:6.2f}"
            )
    worst = max(ratios)
    print(
        f"accepted conversations, R/T: median {statistics.median(ratios):.2f}, max {worst:.2f} "
        f"(target <= {TARGET}: {'met' if worst <= TARGET else 'MISSED'})"
    )
    return 0 if worst <= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
