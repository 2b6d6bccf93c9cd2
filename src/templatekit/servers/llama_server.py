"""llama-server ``--jinja``: llama.cpp rewrites the request from the template's capabilities, then
renders with its own engine (``common/jinja``).

Sources: llama.cpp as vendored by llama-cpp-python 0.3.36 — ``common/chat.cpp``
(``common_chat_msgs_parse_oaicompat``, ``common_chat_msg::to_json_oaicompat``,
``messages_inp_normalizer``, ``common_chat_templates_apply_jinja``, the ``workaround::`` functions,
``common_chat_template_direct_apply_impl``), ``common/jinja/caps.cpp`` (:mod:`.llama_caps`) and
``tools/server/server-common.cpp`` (``oaicompat_chat_params_parse``):

- each message is rebuilt as ``{role, content, reasoning_content?, name?, tool_call_id?, tool_calls?}``
  (empty fields left out, a missing/``null`` content becomes ``""``, tool-call arguments as strings);
- list-of-parts content is joined with ``"\\n"`` when the template takes only strings; a string is
  wrapped as ``[{"type": "text", "text": ...}]`` when it takes only parts (caps ``supports_*_content``);
- ``developer`` becomes ``system`` unless the template contains ``<|channel|>`` (gpt-oss);
- without ``supports_system_role`` a leading system message is folded into the next one
  (``system + "\\n" + next``) or dropped if alone;
- with ``supports_object_arguments`` string arguments are parsed to objects;
- ``tools`` is left undefined when there are none, ``add_generation_prompt`` is set only when true
  (the server's default is true), ``enable_thinking`` is true unless given; ``bos_token``/``eos_token``
  come from the model, ``chat_template_kwargs`` pass through;
- a leading ``bos_token`` in the output is stripped (the tokenizer adds it again).

Not modelled: the specialised template handlers (``common_chat_try_specialized_template``: DeepSeek
V3.2, Gemma 4, MiniCPM5, Qwen3-Coder formats) and ``datetime``/``date_string`` (the server's clock).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from templatekit.servers import Prepared
from templatekit.servers.llama_caps import Caps, llama_cpp_caps

NAME = "llama-server"
ENGINE = "llama.cpp"

__all__ = ["ENGINE", "NAME", "Caps", "llama_cpp_caps", "prepare"]


def prepare(
    template: str,
    messages: Sequence[Mapping[str, Any]],
    *,
    tools: Sequence[Mapping[str, Any]] | None,
    add_generation_prompt: bool,
    variables: Mapping[str, Any],
) -> Prepared:
    """llama-server's inputs for this request (see the module docstring)."""
    caps = llama_cpp_caps(template)
    rebuilt = [_normalized(_oaicompat(message), caps) for message in messages]
    if "<|channel|>" not in template:
        rebuilt = [{**message, "role": "system"} if message["role"] == "developer" else message for message in rebuilt]
    if not caps.supports_system_role and rebuilt and rebuilt[0]["role"] == "system":
        first, rebuilt = rebuilt[0], rebuilt[1:]
        if rebuilt:
            rebuilt[0] = {**rebuilt[0], "content": f"{first['content']}\n{rebuilt[0]['content']}"}
    if caps.supports_object_arguments:
        rebuilt = [_object_arguments(message) for message in rebuilt]
    context = {"enable_thinking": True, **variables}
    return Prepared(
        rebuilt,
        [dict(tool) for tool in tools] if tools else None,
        True if add_generation_prompt else None,
        context,
        strip_leading=str(variables.get("bos_token") or ""),
    )


def _oaicompat(message: Mapping[str, Any]) -> dict[str, Any]:
    """``common_chat_msgs_parse_oaicompat`` then ``to_json_oaicompat(concat_typed_text=false)``."""
    content = message.get("content")
    rebuilt: dict[str, Any] = {"role": message["role"]}
    if isinstance(content, list):
        for part in content:
            if part.get("type") not in ("text", "media_marker"):
                raise ValueError(f"Failed to parse messages: Unsupported content part type: {part.get('type')!r}")
        parts = [{"type": part["type"], "text": part.get("text", "")} for part in content]
        rebuilt["content"] = parts if parts else ""
    else:
        rebuilt["content"] = content if content else ""
    for key in ("reasoning_content", "name", "tool_call_id"):
        if message.get(key):
            rebuilt[key] = message[key]
    if message.get("tool_calls"):
        calls = []
        for call in message["tool_calls"]:
            arguments = call["function"].get("arguments")
            entry: dict[str, Any] = {
                "type": "function",
                "function": {
                    "name": call["function"]["name"],
                    "arguments": arguments
                    if isinstance(arguments, str)
                    else json.dumps(arguments, separators=(",", ":")),
                },
            }
            if call.get("id"):
                entry["id"] = call["id"]
            calls.append(entry)
        rebuilt["tool_calls"] = calls
    return rebuilt


def _normalized(message: dict[str, Any], caps: Caps) -> dict[str, Any]:
    """``messages_inp_normalizer``: string-only templates get joined text, parts-only get parts."""
    only_string = caps.supports_string_content and not caps.supports_typed_content
    only_typed = caps.supports_typed_content and not caps.supports_string_content
    content = message["content"]
    if only_typed and isinstance(content, str):
        return {**message, "content": [{"type": "text", "text": content}]}
    if only_string and isinstance(content, list):
        return {**message, "content": _concat_parts(content)}
    return message


def _concat_parts(parts: list[dict[str, Any]]) -> str:
    """``concat_content_parts``: text parts joined by newlines, none next to a media marker."""
    text, after_marker = "", False
    for part in parts:
        if part["type"] == "text":
            newline, after_marker = not after_marker and bool(text), False
        else:
            newline, after_marker = False, True
        text += ("\n" if newline else "") + part["text"]
    return text


def _object_arguments(message: dict[str, Any]) -> dict[str, Any]:
    if not message.get("tool_calls"):
        return message
    calls = [
        {**call, "function": {**call["function"], "arguments": json.loads(call["function"]["arguments"])}}
        if isinstance(call["function"].get("arguments"), str)
        else call
        for call in message["tool_calls"]
    ]
    return {**message, "tool_calls": calls}
