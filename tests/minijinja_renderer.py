"""Render a generated case with minijinja (the Rust engine of TGI and mistral.rs).

The relax tests use it to check that the constructs relax writes render the same there; the engine
itself is set up in one place, :mod:`templatekit.engines`.
"""

from __future__ import annotations

from typing import Any

from templatekit.engines import EngineError, render_with
from templatekit.probes.harness import DEFAULT_SPECIAL_TOKENS


def minijinja_render(template: str, case: dict[str, Any]) -> tuple[str, str]:
    """``("ok", text)`` or ``("error", message)`` for ``case`` rendered by minijinja.

    ``tools`` is always defined (``none`` when absent), as the jinja2 side renders it.
    """
    variables = {**DEFAULT_SPECIAL_TOKENS, **case.get("kwargs", {}), "tools": case.get("tools")}
    try:
        return "ok", render_with(
            "minijinja",
            template,
            case["messages"],
            tools=None,
            add_generation_prompt=case.get("add_generation_prompt", False),
            variables=variables,
        )
    except EngineError as error:
        return "error", error.message
