"""Outcomes of the corpus x parity conversations under each engine, computed once per test run.

Every engine gets the same variables (special tokens, ``tools``/``documents`` defined, ``none``
when absent), so differences are the engines' own.  Two errors count as the same outcome (the
template refuses the input either way); texts must be identical.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from conftest import FIXTURES, corpus_files, read_template

from templatekit.engines import EngineError, render_with

PARITY_CASES: list[dict[str, Any]] = json.loads(
    (FIXTURES / "conversations" / "parity.json").read_text(encoding="utf-8")
)
TOKENS = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>"}


def outcome(engine: str, template: str, case: dict[str, Any]) -> tuple[str, str]:
    """``("ok", text)`` or ``("error", the engine's message)``."""
    variables = {**TOKENS, **case.get("kwargs", {}), "tools": case.get("tools"), "documents": case.get("documents")}
    try:
        return "ok", render_with(
            engine,
            template,
            case["messages"],
            tools=None,
            add_generation_prompt=case.get("add_generation_prompt", False),
            variables=variables,
        )
    except EngineError as error:
        return "error", error.message


def same(expected: tuple[str, str], actual: tuple[str, str]) -> bool:
    return expected == actual or expected[0] == actual[0] == "error"


@lru_cache(maxsize=None)
def corpus_outcomes(engine: str, extra: str = "[]") -> dict[tuple[str, str], tuple[str, str]]:
    """(template file, case id) -> outcome, for every corpus template x parity case (+ ``extra``,
    JSON cases of the caller's)."""
    cases = PARITY_CASES + json.loads(extra)
    return {
        (path.name, case["id"]): outcome(engine, read_template(path), case) for path in corpus_files() for case in cases
    }
