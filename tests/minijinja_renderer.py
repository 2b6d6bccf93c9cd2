"""Render a generated case with minijinja (the Rust engine of TGI and mistral.rs).

The relax tests use it to check that the constructs relax writes render the same there.
"""

from __future__ import annotations

from typing import Any

from templatekit.strategies import DEFAULT_SPECIAL_TOKENS


def minijinja_render(template: str, case: dict[str, Any]) -> tuple[str, str]:
    """``("ok", text)`` or ``("error", message)`` for ``case`` rendered by minijinja."""
    import minijinja

    def raise_exception(message: str) -> None:
        raise RuntimeError(f"raise_exception: {message}")

    env = minijinja.Environment(trim_blocks=True, lstrip_blocks=True)
    env.add_function("raise_exception", raise_exception)
    try:
        return "ok", env.render_str(template, messages=case["messages"], tools=case.get("tools"),
                                    add_generation_prompt=case.get("add_generation_prompt", False),
                                    **{**DEFAULT_SPECIAL_TOKENS, **case.get("kwargs", {})})
    except Exception as error:  # noqa: BLE001 - minijinja reports template errors as plain exceptions
        return "error", str(error)
