"""The render budget's overhead: budgeted renders against jinja2's plain sandbox, same run.

    python benchmarks/render_budget.py [--runs R] [--max-ratio X]

Baseline (same run): every corpus template (../shared/corpus) compiled by a plain
``ImmutableSandboxedEnvironment`` configured as transformers configures it (trim_blocks,
lstrip_blocks, loop controls, ``{% generation %}``, ``tojson``, ``raise_exception``,
``strftime_now``), rendering the 44 conversations of fixtures/conversations/parity.json.
Measured: the same renders through ``templatekit.environment.render_compiled`` (metered loops,
calls, operators, ``~``, filters and output, under the default budget).  Both render the
same compiled-once templates; the best of R runs each.  Target: ratio <= 1.3 (exit 1 when
missed).  Outputs are compared too: the budget never changes a byte.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CORPUS = REPO.parent / "shared" / "corpus"
CONVERSATIONS = REPO / "fixtures" / "conversations" / "parity.json"


def plain_environment():  # noqa: ANN201 - jinja2 type
    import jinja2.ext
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    from templatekit import environment as tk

    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[tk.GenerationExtension, jinja2.ext.loopcontrols]
    )
    env.filters["tojson"] = tk._tojson
    env.globals["raise_exception"] = tk._raise_exception
    env.globals["strftime_now"] = tk._strftime_now
    return env


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--max-ratio", type=float, default=1.3)
    args = parser.parse_args()
    if not CORPUS.is_dir():
        print(f"no corpus at {CORPUS}")
        return 2
    from templatekit.environment import compile_template, render_compiled

    cases = json.loads(CONVERSATIONS.read_text())
    plain = plain_environment()
    pairs = []
    for path in sorted(CORPUS.glob("*.jinja")):
        text = path.read_text(encoding="utf-8")
        try:
            pairs.append((plain.from_string(text), compile_template(text)))
        except Exception:  # noqa: BLE001 - a template that does not compile is skipped by both
            continue
    tokens = {"bos_token": "<s>", "eos_token": "</s>"}

    def run(index: int) -> tuple[float, list[str]]:
        outputs = []
        start = time.perf_counter()
        for pair in pairs:
            for case in cases:
                variables = {
                    "messages": case["messages"],
                    "add_generation_prompt": case["add_generation_prompt"],
                    "tools": case.get("tools"),
                    "documents": None,
                    **tokens,
                }
                try:
                    outputs.append(render_compiled(pair[1], variables) if index else pair[0].render(**variables))
                except Exception as error:  # noqa: BLE001 - errors are outcomes, compared too
                    outputs.append(f"{type(error).__name__}: {error}")
        return time.perf_counter() - start, outputs

    plain_times, budget_times = [], []
    for _ in range(args.runs):
        plain_seconds, plain_outputs = run(0)
        budget_seconds, budget_outputs = run(1)
        plain_times.append(plain_seconds)
        budget_times.append(budget_seconds)
    renders = len(pairs) * len(cases)
    ratio = min(budget_times) / min(plain_times)
    identical = plain_outputs == budget_outputs
    print(f"{renders} renders ({len(pairs)} templates x {len(cases)} conversations), best of {args.runs}")
    print(f"plain sandbox     {min(plain_times) * 1000:8.1f} ms  ({min(plain_times) / renders * 1e6:6.1f} us/render)")
    print(f"with the budget   {min(budget_times) * 1000:8.1f} ms  ({min(budget_times) / renders * 1e6:6.1f} us/render)")
    print(f"ratio {ratio:.3f} (target <= {args.max_ratio}); outputs identical: {identical}")
    return 0 if ratio <= args.max_ratio and identical else 1


if __name__ == "__main__":
    sys.exit(main())
