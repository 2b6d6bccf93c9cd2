"""transformers' ``apply_chat_template(tokenize=False)``: the inputs reach the template as given.

Source: transformers ``src/transformers/utils/chat_template_utils.py`` (``render_jinja_template``),
5.16-5.20 — what :func:`templatekit.environment.render` reproduces (its default profile).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from templatekit.servers import Prepared

NAME = "transformers"
ENGINE = "jinja2"


def prepare(
    template: str,
    messages: Sequence[Mapping[str, Any]],
    *,
    tools: Sequence[Mapping[str, Any]] | None,
    add_generation_prompt: bool,
    variables: Mapping[str, Any],
) -> Prepared:
    """Identity: transformers passes everything through (``tools=None`` stays defined, ``none``)."""
    return Prepared(
        [dict(message) for message in messages],
        None if tools is None else [dict(t) for t in tools],
        add_generation_prompt,
        {"tools": None, **variables} if tools is None else dict(variables),
    )
