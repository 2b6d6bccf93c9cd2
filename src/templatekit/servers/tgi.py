"""Text Generation Inference (TGI): messages flattened to ``{role, content}`` text, rendered by minijinja.

Source: huggingface/text-generation-inference ``router/src/infer/chat_template.rs`` (``ChatTemplate``)
and ``router/src/lib.rs`` (``TextMessage: From<Message>``, ``ChatTemplateInputs``), v3.x (main at
0581626):

- the environment is ``minijinja::Environment::new()`` with ``pycompat`` methods and
  ``raise_exception`` — **no** ``trim_blocks``/``lstrip_blocks`` (transformers sets both), so block
  tags keep their newlines and indentation unless the template strips them with ``-``;
- every message becomes ``{role, content}``: list-of-parts text joined with no separator (an image
  part becomes ``![](url)``), a tool-call message's content is its calls as JSON; every other key
  (``name``, ``tool_call_id``, ``reasoning_content``, ...) is dropped;
- ``add_generation_prompt`` is always true; ``bos_token``/``eos_token`` come from the tokenizer
  config (``none`` when absent); ``tools`` is ``none`` without tools.  With tools, TGI also appends a
  tool prompt to the last message (not modelled here: the profile passes ``tools`` through).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from templatekit.servers import Prepared

NAME = "tgi"
ENGINE = "minijinja"
ENGINE_OPTIONS = {"trim_blocks": False, "lstrip_blocks": False}


def prepare(
    template: str,
    messages: Sequence[Mapping[str, Any]],
    *,
    tools: Sequence[Mapping[str, Any]] | None,
    add_generation_prompt: bool,
    variables: Mapping[str, Any],
) -> Prepared:
    """TGI's ``ChatTemplate::apply`` inputs (see the module docstring)."""
    flattened = [{"role": message.get("role"), "content": _text(message)} for message in messages]
    kept = {
        "bos_token": variables.get("bos_token"),
        "eos_token": variables.get("eos_token"),
        "tools": None if tools is None else [dict(tool) for tool in tools],
    }
    return Prepared(flattened, None, True, kept)


def _text(message: Mapping[str, Any]) -> str:
    content = message.get("content")
    if message.get("tool_calls") and not content:
        return json.dumps(message["tool_calls"], separators=(",", ":"), ensure_ascii=False)
    if isinstance(content, list):
        return "".join(
            part.get("text", "")
            if part.get("type") == "text"
            else f"![]({(part.get('image_url') or {}).get('url', '')})"
            if part.get("type") == "image_url"
            else ""
            for part in content
        )
    return "" if content is None else str(content)
