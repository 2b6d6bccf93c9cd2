"""Render templates with a real transformers installation: the oracle of the parity tests.

Run as ``PYTHON tests/transformers_oracle.py < job.json`` by any interpreter that has
transformers (the test environment's own one, or a separate venv with another release), so
the oracle never shares a process, a clock or an import with templatekit.

The job is ``{"templates": [path, ...], "cases": [...], "special_tokens": {...}, "now": ISO}``
where cases are the objects of ``fixtures/conversations/parity.json``.  Each case is rendered
by ``tokenizer.apply_chat_template(tokenize=False)`` on a real in-memory tokenizer whose
special tokens are ``special_tokens``: the path servers take, which passes the special tokens
to ``render_jinja_template`` as template variables, overridden by the case's kwargs.
transformers' ``strftime_now`` calls ``datetime.now()``; its module's ``datetime`` is replaced
by one whose ``now()`` is ``now``, so both renderers see the same date.

Prints ``{"version": ..., "jinja2": ..., "outcomes": [[outcome per case] per template]}``, an outcome being
``{"text": rendered}`` or ``{"error": "module.QualName", "message": str(error)}``.
"""

from __future__ import annotations

import datetime as _datetime
import json
import sys
from typing import Any


def outcome_of_error(error: BaseException) -> dict[str, str]:
    kind = type(error)
    return {"error": f"{kind.__module__}.{kind.__qualname__}", "message": str(error)}


def build_tokenizer(special_tokens: dict[str, str]) -> Any:
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    vocabulary = {token: index for index, token in enumerate(special_tokens.values())}
    backend = Tokenizer(models.WordLevel(vocabulary, unk_token=special_tokens["unk_token"]))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, **special_tokens)
    if tokenizer.special_tokens_map != special_tokens:
        raise SystemExit(f"oracle tokenizer has special tokens {tokenizer.special_tokens_map}, not {special_tokens}")
    return tokenizer


def fix_clock(now: _datetime.datetime) -> None:
    import transformers.utils.chat_template_utils as chat_template_utils

    class FixedDatetime(_datetime.datetime):
        @classmethod
        def now(cls, tz: Any = None) -> _datetime.datetime:
            return now

    chat_template_utils.datetime = FixedDatetime


def render_case(tokenizer: Any, template: str, case: dict[str, Any]) -> dict[str, str]:
    try:
        text = tokenizer.apply_chat_template(
            case["messages"],
            tools=case.get("tools"),
            documents=case.get("documents"),
            chat_template=template,
            add_generation_prompt=case.get("add_generation_prompt", False),
            tokenize=False,
            **case.get("kwargs", {}),
        )
    except Exception as error:  # noqa: BLE001 - every error is an outcome to compare
        return outcome_of_error(error)
    return {"text": text}


def main() -> None:
    import jinja2
    import transformers

    job = json.load(sys.stdin)
    fix_clock(_datetime.datetime.fromisoformat(job["now"]))
    tokenizer = build_tokenizer(job["special_tokens"])
    outcomes = []
    for path in job["templates"]:
        with open(path, encoding="utf-8", newline="") as handle:
            template = handle.read()
        # a fresh copy of every case, so no render can see another's mutations
        outcomes.append([render_case(tokenizer, template, case) for case in json.loads(json.dumps(job["cases"]))])
    json.dump(
        {"version": transformers.__version__, "jinja2": jinja2.__version__, "outcomes": outcomes},
        sys.stdout,
        ensure_ascii=False,
    )


if __name__ == "__main__":
    main()
