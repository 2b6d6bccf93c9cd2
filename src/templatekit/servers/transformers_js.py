"""transformers.js (and Hugging Face chat UIs): ``tokenizer.apply_chat_template`` on ``@huggingface/jinja``.

Source: huggingface/transformers.js ``src/tokenizers.js`` (``apply_chat_template``, 3.x): the template
renders with ``{messages, add_generation_prompt, tools, documents, ...special_tokens_map, ...kwargs}``
through ``new Template(chat_template)`` of ``@huggingface/jinja`` (0.5.x, huggingface/huggingface.js
``packages/jinja``).  Messages are not rewritten; a ``tools`` the caller does not give is JavaScript
``undefined``, i.e. undefined in the template.  Where the engine renders differently from jinja2 is
the engine's doing (see :mod:`templatekit.rules.portability`): ``dict()`` is missing, ``none`` prints
as an empty string, lists and dicts print as JSON, booleans as ``true``/``false``, ...
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from templatekit.servers import Prepared

NAME = "transformers.js"
ENGINE = "hf-jinja"


def prepare(
    template: str,
    messages: Sequence[Mapping[str, Any]],
    *,
    tools: Sequence[Mapping[str, Any]] | None,
    add_generation_prompt: bool,
    variables: Mapping[str, Any],
) -> Prepared:
    """Messages as given; ``tools`` undefined when absent; ``add_generation_prompt`` always defined."""
    return Prepared(
        [dict(message) for message in messages],
        None if tools is None else [dict(t) for t in tools],
        bool(add_generation_prompt),
        dict(variables),
    )
