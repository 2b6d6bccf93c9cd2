"""What a template does with each kind of input, learned by rendering probe conversations.

Capabilities (as minja's chat_template caps), silent drops, Python values and injected text
that reach the prompt, the tool formats it renders, where it breaks a server's prefix cache,
the format it writes tool calls in, whether it reads the clock, and its ``bos``/``eos`` tokens.
"""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

from ..cases import Case
from ..records import Record
from .harness import CALL_ID, HI, PROBE_TOOL, TOOL_FORMATS, Harness, Outcome, probe_call

__all__ = [
    "Capability",
    "Drop",
    "Leak",
    "PrefixBreak",
    "ToolCallFormat",
    "capabilities",
    "silent_drops",
    "tool_formats",
    "renders_tool",
    "python_values",
    "content_triggered_text",
    "prefix_break",
    "tool_call_format",
    "clock_dependence",
    "leading_bos_count",
    "eos_after_assistant",
]


class Capability(Record):
    """Whether the template renders one kind of input; ``None`` when it cannot be told.

    ``detail`` says what happened (``renders``, ``raise_exception at line 3: '...'``,
    ``accepted but not in the output``); ``witness`` is the probe conversation.
    """

    name: str
    supported: bool | None
    detail: str
    witness: Case
    site: int | None = None


_USER = {"role": "user", "content": "tkprobe-user"}
_RESULT = {"role": "tool", "tool_call_id": CALL_ID, "name": "get_weather", "content": "tkprobe-result"}


def capabilities(harness: Harness) -> dict[str, Capability]:
    """Probe what the template renders, as minja/llama.cpp do when they load a template.

    A capability is supported when a marker string of the probe input appears in the
    output (for tool calls: more often than without the call, since the tool's definition
    shows its name too); unsupported when the render raises or the marker is missing;
    unknown (``None``) when even ``[user]`` does not render.
    """
    baseline = harness.run(harness.witness([_USER]))

    def probe(name: str, witness: Case, marker: str, before: Outcome | None = None) -> Capability:
        """``before``: the render without the probed message, which may show ``marker`` already."""
        outcome = harness.run(witness)
        if outcome.ok:
            if _shows_python_value(outcome.output, witness):
                return Capability(name, False, "renders the Python representation of the input", witness)
            supported = outcome.output.count(marker) > (before.output.count(marker) if before and before.ok else 0)
            return Capability(name, supported, "renders" if supported else "accepted but not in the output", witness)
        if not baseline.ok:
            return Capability(name, None, f"cannot tell: [user] alone {harness.describe(baseline)}", witness)
        return Capability(name, False, harness.describe(outcome), witness, outcome.site)

    calls = [
        probe(
            "tool-calls",
            harness.witness(
                [_USER, {"role": "assistant", "content": content, "tool_calls": [probe_call(arguments=arguments)]}],
                tools=tools,
            ),
            "get_weather",
            asked,
        )
        for tools in (None, (PROBE_TOOL,))
        for asked in [harness.run(harness.witness([_USER], tools=tools))]
        for arguments in (None, '{"city": "Paris"}')
        for content in ("", None)
    ]
    tool_calls = next((result for result in calls if result.supported), calls[0])
    prompted = harness.witness([_USER], add_generation_prompt=True)
    return {
        "system-role": probe(
            "system-role", harness.witness([{"role": "system", "content": "tkprobe-system"}, _USER]), "tkprobe-system"
        ),
        "tools": probe("tools", harness.witness([_USER], tools=(PROBE_TOOL,)), "get_weather"),
        "tool-calls": tool_calls,
        "tool-results": probe(
            "tool-results",
            harness.witness([*tool_calls.witness.messages, _RESULT], tools=tool_calls.witness.tools),
            "tkprobe-result",
        ),
        "content-parts": probe(
            "content-parts",
            harness.witness([{"role": "user", "content": [{"type": "text", "text": "tkprobe-user"}]}]),
            "tkprobe-user",
        ),
        "generation-prompt": _generation_prompt(harness, baseline, prompted),
    }


def _shows_python_value(output: str, witness: Case) -> bool:
    """Whether list content was printed whole (``[{'type': 'text', ...}]``) instead of rendered."""
    return any(
        isinstance(message.get("content"), list) and str(message["content"]) in output for message in witness.messages
    )


def _generation_prompt(harness: Harness, baseline: Outcome, prompted: Case) -> Capability:
    outcome = harness.run(prompted)
    if baseline.ok and outcome.ok:
        changes = baseline.output != outcome.output
        return Capability(
            "generation-prompt",
            changes,
            "changes the output" if changes else "the output is the same with and without it",
            prompted,
        )
    failing = baseline if not baseline.ok else outcome
    return Capability("generation-prompt", None, harness.describe(failing), prompted, failing.site)


# --- silent drops --------------------------------------------------------------------------


class Drop(Record):
    """A message the template accepted but whose text is not in the output."""

    description: str
    witness: Case
    message_index: int


def silent_drops(harness: Harness, roles: Sequence[str] = ()) -> list[Drop]:
    """Messages whose text never reaches the output although the render succeeds.

    Probes: every conversation of three user/assistant/system messages (each message at
    every position; the first drop of each role is reported), a second text part of list
    content, assistant text beside tool calls, and one message of each extra role in
    ``roles`` (roles the template compares against).  A leading system message is left to
    the ``system-role`` capability.  Each message carries a unique marker string; a marker
    missing from a successful render is a drop.
    """
    drops = _positional_drops(harness)
    probes: list[tuple[str, Case, tuple[int, ...]]] = [
        (
            "the second text part of list content",
            harness.witness(
                [
                    {
                        "role": "user",
                        "content": [{"type": "text", "text": "tkmark-0a"}, {"type": "text", "text": "tkmark-0b"}],
                    }
                ]
            ),
            (0,),
        ),
        (
            "assistant text beside tool calls",
            harness.witness(
                [
                    {"role": "user", "content": "tkmark-0"},
                    {"role": "assistant", "content": "tkmark-1", "tool_calls": [probe_call()]},
                    {"role": "tool", "tool_call_id": CALL_ID, "name": "get_weather", "content": "tkmark-2"},
                ],
                tools=(PROBE_TOOL,),
            ),
            (1,),
        ),
    ]
    probes += [
        (f"a message with role {role!r}", _marked(harness, ["user", role, "user"]), (1,))
        for role in sorted(set(roles) - {"user", "assistant", "system", "tool"})
    ]
    for description, witness, indices in probes:
        outcome = harness.run(witness)
        if not outcome.ok:
            continue
        for index in indices:
            marker = _marker_of(witness.messages[index])
            if marker is not None and marker not in outcome.output:
                drops.append(Drop(description.format(role=witness.messages[index]["role"]), witness, index))
    return drops


def _positional_drops(harness: Harness) -> list[Drop]:
    """The first message of each role (a leading system message aside) that some conversation
    of three user/assistant/system messages drops."""
    drops: dict[str, Drop] = {}
    for roles in itertools.product(("user", "assistant", "system"), repeat=3):
        witness = _marked(harness, roles)
        outcome = harness.run(witness)
        for index, role in enumerate(roles):
            if (
                outcome.ok
                and role not in drops
                and not (index == 0 and role == "system")
                and f"tkmark-{index}" not in outcome.output
            ):
                drops[role] = Drop(f"a {role} message at position {index + 1}", witness, index)
    return list(drops.values())


def _marked(harness: Harness, roles: Sequence[str]) -> Case:
    return harness.witness([{"role": role, "content": f"tkmark-{index}"} for index, role in enumerate(roles)])


def _marker_of(message: Mapping[str, Any]) -> str | None:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list) and len(content) > 1:
        return content[-1].get("text")
    return None


# --- what else reaches the prompt ---------------------------------------------------------


class Leak(Record):
    """Text in the prompt that no message, tool or role header of the probe put there."""

    description: str
    text: str
    witness: Case


def tool_formats(harness: Harness) -> dict[str, Outcome]:
    """``[user]`` rendered with one tool written in each of :data:`TOOL_FORMATS`."""
    return {name: harness.run(harness.witness([_USER], tools=(tool,))) for name, tool in TOOL_FORMATS.items()}


def renders_tool(outcome: Outcome) -> bool:
    """Whether a :func:`tool_formats` render shows the tool."""
    return outcome.ok and "get_weather" in outcome.output


_SCHEMA_TOOL: Mapping[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the weather.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "The city."},
                "unit": {"type": "string", "enum": ["c", "f"], "default": None},
                "detailed": {"type": "boolean", "default": False},
            },
            "required": ["city"],
            "additionalProperties": False,
        },
    },
}
_PLAIN_SCHEMA_TOOL: Mapping[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the weather.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "The city."},
                "unit": {"type": "string", "description": "The unit."},
                "detailed": {"type": "string", "description": "Whether in detail."},
            },
            "required": ["city", "unit"],
        },
    },
}
_PYTHON_REPRS = ("['c', 'f']", "['city']", "{'type': ", "{'city': ")


def python_values(harness: Harness) -> list[Leak]:
    """Python values rendered as Python (``None``, ``['c', 'f']``, ``False``), not as JSON or text.

    Probes an assistant message with ``content: null`` beside a tool call (what OpenAI clients
    send), then alone (each compared with ``content: ""``), and a tool whose schema holds a
    list, ``null`` and booleans (compared with a schema of strings only).  A ``content: null``
    beside a tool call that makes the template fail while ``""`` renders is reported too
    (``text`` is then the error).
    """
    leaks = []
    for extra, where in (({"tool_calls": [probe_call()]}, " (beside a tool call)"), ({}, "")):
        null = harness.witness([_USER, {"role": "assistant", "content": None, **extra}], tools=(PROBE_TOOL,))
        empty = harness.run(
            harness.witness([_USER, {"role": "assistant", "content": "", **extra}], tools=(PROBE_TOOL,))
        )
        rendered = harness.run(null)
        if empty.ok and rendered.ok and rendered.output.count("None") > empty.output.count("None"):
            leaks.append(Leak(f"content null{where} renders as the text", "None", null))
            break
        if extra and empty.ok and rendered.error is not None:
            leaks.append(Leak(f"content null{where} makes the template fail", rendered.error, null))
            break
    schema = harness.witness([_USER], tools=(_SCHEMA_TOOL,))
    rendered, plain = harness.run(schema), harness.run(harness.witness([_USER], tools=(_PLAIN_SCHEMA_TOOL,)))
    if rendered.ok and plain.ok:
        found = [text for text in _PYTHON_REPRS if text in rendered.output]
        found += [word for word in ("None", "False") if rendered.output.count(word) > plain.output.count(word)]
        if found:
            leaks.append(Leak("the tool schema is rendered as Python, not JSON", ", ".join(found), schema))
    return leaks


def content_triggered_text(harness: Harness, triggers: Sequence[str]) -> list[Leak]:
    """Text the template adds to the prompt only when a message contains one of ``triggers``.

    For each trigger (a string the template looks for in content) and each of a user and a
    system message, the conversation is rendered with and without the trigger in that
    message; text the triggered render has and the plain one lacks, beyond the trigger
    itself, is injected.  Only text with at least three words is reported: special tokens
    and role headers that a trigger switches (an image placeholder) are not instructions.
    """
    leaks = []
    for where, roles in (("a user message", ["user"]), ("a system message", ["system", "user"])):
        plain = _marked(harness, roles)._replace(add_generation_prompt=True)
        before = harness.run(plain) if triggers else None
        for trigger in triggers:
            messages = [dict(message) for message in plain.messages]
            messages[0]["content"] = f"tkmark-0 {trigger}"
            triggered = plain._replace(messages=tuple(messages))
            after = harness.run(triggered)
            if before.ok and after.ok:
                leaks += _injected(where, trigger, triggered, before.output, after.output)
    return leaks


def _injected(where: str, trigger: str, triggered: Case, before: str, after: str) -> list[Leak]:
    """The :class:`Leak` of ``trigger``, if ``after`` has text (3+ words) where ``before`` has none.

    The changed stretch is what lies between the common prefix and the common suffix of the
    two prompts (``after`` without the trigger itself): linear, unlike a full diff.
    """
    after = after.replace(f"tkmark-0 {trigger}", "tkmark-0")
    start = len(os.path.commonprefix([before, after]))
    end = len(os.path.commonprefix([before[start:][::-1], after[start:][::-1]]))
    added, removed = after[start : len(after) - end].strip(), before[start : len(before) - end].strip()
    if len(re.findall(r"[^\W\d_]{2,}", added)) < 3 or len(removed) >= len(added):
        return []
    return [Leak(f"{where} containing {trigger!r}", added, triggered)]


class PrefixBreak(Record):
    """A conversation whose prompt does not start with the prompt of its first turns."""

    earlier: Case
    later: Case
    offset: int
    was: str
    now: str


_REASONING_TURNS: tuple[Mapping[str, Any], ...] = (
    {"role": "assistant", "content": "tkmark-1", "reasoning_content": "tkmark-think"},
    {"role": "assistant", "content": "tkmark-1", "thinking": "tkmark-think"},
    {"role": "assistant", "content": "<think>tkmark-think</think>tkmark-1"},
)


def prefix_break(harness: Harness) -> PrefixBreak | None:
    """A conversation whose prompt does not extend the prompt of its beginning, or ``None``.

    A server's prefix (KV) cache reuses the prompt of a request when the next request
    extends the conversation: the prompt of ``C + [assistant, user]`` must start with the
    prompt of ``C`` (``C`` = ``[user]`` and ``[user, assistant, user]``, with the generation
    prompt), and an answer with reasoning (``reasoning_content``, ``thinking``, ``<think>`` in
    the content) rendered as the last message must keep its reasoning once the next user
    turn arrives.
    """
    user, reply, again = (
        {"role": "user", "content": "tkmark-0"},
        {"role": "assistant", "content": "tkmark-1"},
        {"role": "user", "content": "tkmark-2"},
    )
    pairs = [
        (
            harness.witness(start, add_generation_prompt=True),
            harness.witness(
                [*start, {**reply, "content": "tkmark-3"}, {**again, "content": "tkmark-4"}], add_generation_prompt=True
            ),
        )
        for start in ([user], [user, reply, again])
    ]
    pairs += [
        (harness.witness([user, answer]), harness.witness([user, answer, again], add_generation_prompt=True))
        for answer in _REASONING_TURNS
    ]
    for number, (earlier, later) in enumerate(pairs):
        first, second = harness.run(earlier), harness.run(later)
        if not (first.ok and second.ok) or second.output.startswith(first.output):
            continue
        if number >= 2 and ("tkmark-think" not in first.output or "tkmark-think" in second.output):
            continue  # only the reasoning that disappears counts for answers rendered last
        offset = len(os.path.commonprefix([first.output, second.output]))
        return PrefixBreak(
            earlier, later, offset, first.output[offset : offset + 40], second.output[offset : offset + 40]
        )
    return None


class ToolCallFormat(Record):
    """How a template writes an assistant tool call, and the server parsers that read it back."""

    name: str
    vllm: str | None
    sglang: str | None
    rendered: str
    witness: Case


# (name, regular expression searched in the rendered call, vLLM --tool-call-parser, SGLang
# --tool-call-parser); first match wins.  Compiled on first use (re's cache), by templates that
# render the call
_TOOL_CALL_FORMATS: tuple[tuple[str, str, str | None, str | None], ...] = (
    (
        "Qwen3-Coder XML (<function=NAME><parameter=KEY>)",
        r"<function=get_weather>\s*<parameter=city>",
        "qwen3_coder",
        "qwen3_coder",
    ),
    ("GLM-4.5 (<tool_call>NAME\\n<arg_key>)", r"<tool_call>\s*get_weather\n\s*<arg_key>", "glm45", "glm45"),
    ("GLM-4.7 (<tool_call>NAME<arg_key>)", r"<tool_call>\s*get_weather<arg_key>", "glm47", "glm47"),
    (
        "Hermes (<tool_call>{JSON}</tool_call>)",
        r"<tool_call>\s*\{\s*\"name\"\s*:\s*\"get_weather\"",
        "hermes",
        "hermes",
    ),
    ("Mistral ([TOOL_CALLS])", r"\[TOOL_CALLS\]", "mistral", "mistral"),
    ("gpt-oss harmony (to=functions.NAME)", r"to=functions\.get_weather", "openai", "gpt-oss"),
    (
        "DeepSeek V3 (function<｜tool▁sep｜>NAME, ```json)",
        r"function<｜tool▁sep｜>get_weather",
        "deepseek_v3",
        "deepseekv3",
    ),
    (
        "DeepSeek V3.1 (NAME<｜tool▁sep｜>{JSON})",
        r"<｜tool▁call▁begin｜>get_weather<｜tool▁sep｜>",
        "deepseek_v31",
        "deepseekv31",
    ),
    ("Kimi K2 (<|tool_calls_section_begin|>)", r"<\|tool_calls_section_begin\|>", "kimi_k2", "kimi_k2"),
    (
        "MiniMax M2 (<minimax:tool_call><invoke name=NAME>)",
        r"<minimax:tool_call>\s*<invoke name=",
        "minimax_m2",
        "minimax-m2",
    ),
    (
        'Cohere Command (<|START_ACTION|> or Action: ```json, [{"tool_name": NAME}])',
        r"<\|START_ACTION\|>|Action:\s*```json\s*\[\s*\{\s*\"tool_name\"",
        None,
        None,
    ),
    ("Gemma 4 (<|tool_call>call:NAME{...})", r"<\|tool_call>call:get_weather\{", "gemma4", "gemma4"),
    (
        "pythonic ([NAME(key=value)])",
        r"get_weather\(\s*city\s*=\s*['\"]Paris['\"]\s*\)",
        "pythonic",
        "pythonic",
    ),
    (
        'Llama 3 JSON ({"name": NAME, "parameters": {...}})',
        r"\{\s*\"name\"\s*:\s*\"get_weather\"\s*,\s*\"(parameters|arguments)\"\s*:",
        "llama3_json",
        "llama3",
    ),
)


def tool_call_format(harness: Harness, call: Case) -> ToolCallFormat | None:
    """The format ``call`` (a conversation ending in an assistant tool call that renders)
    writes the call in, read from the text the call adds to the prompt; ``None`` when the
    call does not render.  An unrecognised format has no parser names."""
    with_call = harness.run(call)
    without = harness.run(call._replace(messages=call.messages[:-1]))
    if not with_call.ok:
        return None
    rendered = with_call.output[len(os.path.commonprefix([with_call.output, without.output or ""])) :]
    if "get_weather" not in rendered:  # the name was in the tool definitions only
        return None
    for name, pattern, vllm, sglang in _TOOL_CALL_FORMATS:
        if re.search(pattern, rendered):
            return ToolCallFormat(name, vllm, sglang, rendered, call)
    return ToolCallFormat("unrecognised", None, None, rendered, call)


# --- clock and tokens ----------------------------------------------------------------------


def clock_dependence(harness: Harness) -> Case | None:
    """A conversation whose output differs between two fixed clocks, or ``None``."""
    from datetime import datetime  # here: only a template that reads the clock is asked

    clocks = (datetime(2024, 1, 2, 3, 4, 5), datetime(2031, 11, 12, 13, 14, 15))
    for witness in (
        harness.witness([HI], add_generation_prompt=True),
        harness.witness([{"role": "system", "content": "hi"}, HI], add_generation_prompt=True),
        harness.witness([HI], tools=(PROBE_TOOL,), add_generation_prompt=True),
    ):
        first, second = (harness.run(witness, now=moment) for moment in clocks)
        if first.ok and second.ok and first.output != second.output:
            return witness
    return None


def leading_bos_count(harness: Harness) -> tuple[int, Case] | None:
    """How many ``bos_token`` the output of ``[user]`` starts with (``None``: cannot tell)."""
    bos = harness.special_tokens.get("bos_token")
    witness = harness.witness([HI], add_generation_prompt=True)
    outcome = harness.run(witness)
    if not bos or not outcome.ok:
        return None
    output = outcome.output.lstrip()
    count = 0
    while output.startswith(bos):
        count += 1
        output = output[len(bos) :].lstrip()
    return count, witness


def eos_after_assistant(harness: Harness) -> tuple[bool, Case] | None:
    """Whether ``eos_token`` follows an assistant turn before the next user turn (``None``: cannot tell)."""
    eos = harness.special_tokens.get("eos_token")
    witness = _marked(harness, ["user", "assistant", "user"])
    outcome = harness.run(witness)
    if not eos or not outcome.ok:
        return None
    start, end = outcome.output.find("tkmark-1"), outcome.output.find("tkmark-2")
    if start < 0 or end < start:
        return None
    return eos in outcome.output[start:end], witness
