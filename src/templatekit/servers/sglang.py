"""SGLang: OpenAI messages rewritten for the template's content format, rendered by transformers.

Sources (sgl-project/sglang main, 2026): ``python/sglang/srt/entrypoints/openai/serving_chat.py``
(``_process_messages``, ``_apply_jinja_template``), ``python/sglang/srt/parser/jinja_template_utils.py``
(``detect_jinja_template_content_format``, ``process_content_for_template_format``) and
``python/sglang/srt/entrypoints/openai/protocol.py`` (the request models):

- content format: ``"openai"`` if the template text mentions image/audio/video/vision, or loops over
  ``message.content`` (also ``msg``/``m``), else ``"string"``;
- messages pass through pydantic: a user message keeps ``role`` and ``content`` only; others keep
  ``role, content, tool_call_id, name, reasoning_content, tool_calls`` (a call gains ``index: None``);
  ``None``-valued keys are dropped; roles outside system/user/assistant/tool/function/developer are
  rejected (HTTP 400);
- list content: ``"string"`` joins the text parts with a space (other parts dropped); ``"openai"`` keeps
  text parts and turns image parts into ``{"type": "image"}`` (video/audio parts are not modelled);
- an assistant's string tool-call arguments are parsed to dicts;
- ``tools`` are the ``function`` objects only (``description, name, parameters, strict``), not the
  OpenAI ``{"type": "function", "function": ...}`` wrappers; ``add_generation_prompt`` is always true;
  ``reasoning_effort`` is passed (``none`` unless given); ``chat_template_kwargs`` pass through.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import jinja2.nodes

from templatekit.servers import Prepared

NAME = "sglang"
ENGINE = "jinja2"

_ROLES = ("system", "user", "assistant", "tool", "function", "developer", "latest_reminder")
# image parts the template sees as {"type": "image"} ("image" itself: already in that form, so that
# preparing twice changes nothing; SGLang's request model would refuse it from a client)
_IMAGE_PARTS = ("image_url", "input_image", "image")
_GENERIC_KEYS = ("role", "content", "tool_call_id", "name", "reasoning_content", "tool_calls")


def content_format(template: str) -> str:
    """SGLang's ``detect_jinja_template_content_format``: ``"openai"`` or ``"string"``."""
    if any(keyword in template for keyword in ("image", "audio", "video", "vision")):
        return "openai"
    from templatekit.environment import make_environment

    try:
        parsed = make_environment().parse(template)
    except jinja2.TemplateSyntaxError:
        return "string"
    for loop in parsed.find_all(jinja2.nodes.For):
        if any(_reads(loop.iter, name) for name in ("message", "msg", "m")):
            return "openai"
    return "string"


def _reads(node: jinja2.nodes.Node, name: str) -> bool:
    """``name.content`` / ``name['content']``, possibly under filters, tests or a slice."""
    if isinstance(node, (jinja2.nodes.Filter, jinja2.nodes.Test)):
        return node.node is not None and _reads(node.node, name)
    if isinstance(node, jinja2.nodes.Getitem) and isinstance(node.arg, jinja2.nodes.Slice):
        return _reads(node.node, name)
    target = node.node if isinstance(node, (jinja2.nodes.Getitem, jinja2.nodes.Getattr)) else None
    key = (
        node.arg.value
        if isinstance(node, jinja2.nodes.Getitem) and isinstance(node.arg, jinja2.nodes.Const)
        else node.attr
        if isinstance(node, jinja2.nodes.Getattr)
        else None
    )
    return key == "content" and isinstance(target, jinja2.nodes.Name) and target.name == name and target.ctx == "load"


def prepare(
    template: str,
    messages: Sequence[Mapping[str, Any]],
    *,
    tools: Sequence[Mapping[str, Any]] | None,
    add_generation_prompt: bool,
    variables: Mapping[str, Any],
) -> Prepared:
    """SGLang's ``_apply_jinja_template`` inputs; ``ValueError`` for a request it rejects."""
    fmt = content_format(template)
    processed = [_message(message, fmt) for message in messages]
    functions = None if not tools else [_function(tool) for tool in tools]
    return Prepared(
        processed,
        functions,
        True,
        {"reasoning_effort": None, **variables, **({"tools": None} if functions is None else {})},
    )


def _message(message: Mapping[str, Any], fmt: str) -> dict[str, Any]:
    role = message.get("role")
    if role not in _ROLES:
        raise ValueError(f"'role' must be one of {', '.join(repr(r) for r in _ROLES)} (case-insensitive).")
    keys = ("role", "content") if role == "user" else _GENERIC_KEYS
    dumped = {key: message.get(key) for key in keys}
    if dumped.get("tool_calls"):
        dumped["tool_calls"] = [
            {
                "id": call.get("id"),
                "index": call.get("index"),
                "type": "function",
                "function": dict(call.get("function") or {}),
            }
            for call in dumped["tool_calls"]
        ]
    content = dumped.get("content")
    if isinstance(content, list):
        if fmt == "openai":
            dumped["content"] = [
                {"type": "image"} if part.get("type") in _IMAGE_PARTS else {"type": "text", "text": part["text"]}
                for part in content
                if part.get("type") in (*_IMAGE_PARTS, "text", "input_text")
            ]
        else:
            dumped["content"] = " ".join(part["text"] for part in content if part.get("type") in ("text", "input_text"))
    processed = {key: value for key, value in dumped.items() if value is not None}
    if processed.get("role") == "assistant" and isinstance(processed.get("tool_calls"), list):
        for call in processed["tool_calls"]:
            if isinstance(call["function"].get("arguments"), str):
                call["function"]["arguments"] = json.loads(call["function"]["arguments"])
    return processed


def _function(tool: Mapping[str, Any]) -> dict[str, Any]:
    function = tool.get("function", tool)
    return {
        "description": function.get("description"),
        "name": function.get("name"),
        "parameters": function.get("parameters"),
        "strict": function.get("strict", False),
    }
