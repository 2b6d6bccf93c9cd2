"""The public strategies: what they cover, valid_for by construction, shrinking, option checks."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import CORPUS_DIR, FIXTURES, read_template
from hypothesis import HealthCheck, Phase, find, given, settings
from hypothesis.errors import InvalidArgument

from templatekit import render
from templatekit.sources import ChatTemplate
from templatekit.environment import REASONING_FIELDS
from templatekit.generation import REASONING_DRAW_ORDER, Plan, RandomDraw, default_shape, generate_case
from templatekit.probes.harness import template_inputs
from templatekit.probes.shape import learn_shape
from templatekit.strategies import ROLES, cases, conversations, messages, tool_calls, tool_definitions

STRICT = read_template(FIXTURES / "verify" / "strict.jinja")
FIND = settings(max_examples=300, database=None, derandomize=True, suppress_health_check=list(HealthCheck))
QUICK = settings(max_examples=60, database=None, deadline=None)


def _texts(conversation: list[dict[str, Any]]) -> list[str]:
    texts = []
    for message in conversation:
        content = message.get("content")
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):
            texts += [part["text"] for part in content if part.get("type") == "text"]
    return texts


def _has_image(message: dict[str, Any]) -> bool:
    return isinstance(message.get("content"), list) and any(part["type"] != "text" for part in message["content"])


def _call_arguments(conversation: list[dict[str, Any]]) -> list[Any]:
    return [call["function"]["arguments"] for message in conversation for call in message.get("tool_calls") or ()]


FEATURES: dict[str, Callable[[list[dict[str, Any]]], bool]] = {
    **{f"role {role}": (lambda role: lambda c: any(m["role"] == role for m in c))(role) for role in ROLES},
    "text parts": lambda c: any(isinstance(m.get("content"), list) for m in c),
    "image parts": lambda c: any(_has_image(m) for m in c),
    "string arguments": lambda c: any(isinstance(a, str) for a in _call_arguments(c)),
    "object arguments": lambda c: any(isinstance(a, dict) for a in _call_arguments(c)),
    "content None beside tool calls": lambda c: any(m.get("tool_calls") and m["content"] is None for m in c),
    "tool result with id": lambda c: any(m["role"] == "tool" and m.get("tool_call_id") for m in c),
    "reasoning field": lambda c: any(key in m for m in c for key in ("reasoning_content", "reasoning", "thinking")),
    "unicode": lambda c: any(not text.isascii() for text in _texts(c)),
    "empty text": lambda c: "" in _texts(c),
    "whitespace-only text": lambda c: any(text and not text.strip() for text in _texts(c)),
    "long text": lambda c: any(len(text) > 500 for text in _texts(c)),
    "long history": lambda c: len(c) > 12,
    "two user turns in a row": lambda c: any(a["role"] == b["role"] == "user" for a, b in zip(c, c[1:])),
    "assistant first": lambda c: bool(c) and c[0]["role"] == "assistant",
}


def test_conversations_cover_what_clients_send() -> None:
    seen: set[str] = set()

    @given(conversations())
    @settings(max_examples=500, database=None, phases=[Phase.generate], deadline=None)
    def collect(conversation: list[dict[str, Any]]) -> None:
        seen.update(name for name, present in FEATURES.items() if present(conversation))

    collect()
    assert sorted(set(FEATURES) - seen) == []


def test_shrinking_gives_short_plain_conversations() -> None:
    three = find(conversations(), lambda c: len(c) >= 3, settings=FIND)
    assert len(three) == 3 and _texts(three) == ["hi", "hi", "hi"]
    assert {message["role"] for message in three} <= {"user", "assistant"}
    with_call = find(conversations(), lambda c: bool(_call_arguments(c)), settings=FIND)
    assert [message["role"] for message in with_call] == ["user", "assistant", "tool"]
    assert find(messages(), lambda m: True, settings=FIND) == {"role": "user", "content": "hi"}
    assert find(tool_calls(), lambda calls: True, settings=FIND) == [
        {"id": "call00001", "type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}
    ]
    assert find(cases(), lambda case: True, settings=FIND) == {
        "messages": [{"role": "user", "content": "hi"}],
        "tools": None,
        "add_generation_prompt": False,
        "kwargs": {},
    }


@given(conversations(valid_for=STRICT))
@QUICK
def test_valid_for_yields_conversations_the_template_renders(conversation: list[dict[str, Any]]) -> None:
    render(STRICT, conversation, special_tokens={"bos_token": "<s>"})


def test_valid_for_builds_rich_conversations_by_construction() -> None:
    # the fixture accepts tool calls anywhere and list content: both appear, and shrink small
    tools = find(conversations(valid_for=STRICT), lambda c: bool(_call_arguments(c)), settings=FIND)
    assert [message["role"] for message in tools][-2:] == ["assistant", "tool"] and len(tools) <= 3
    images = find(conversations(valid_for=STRICT), lambda c: any(_has_image(m) for m in c), settings=FIND)
    assert len(images) <= 2


def test_valid_for_learns_the_shape_from_probe_renders(corpus: list[Path]) -> None:
    shape = learn_shape(template_inputs(read_template(CORPUS_DIR / "google--gemma-3-27b-it.jinja")))
    assert set(shape.edges[("start", "start")]) == {"user", "system"}  # no assistant first, no tools
    assert shape.edges[("user", "user")] and "user" not in shape.edges[("user", "user")]
    assert shape.edges[("assistant", "assistant")] == ("user",)
    assert "image" in shape.role_forms["user"] and shape.tools == "never"


@pytest.mark.parametrize(
    "name",
    [
        "google--gemma-3-27b-it.jinja",
        "mistralai--Mistral-Nemo-Instruct-2407.jinja",
        "meta-llama--Llama-2-7b-chat-hf.jinja",
        "meta-llama--Llama-3.1-8B-Instruct.jinja",
    ],
)
def test_valid_for_corpus_templates_rarely_needs_repair(corpus: list[Path], name: str) -> None:
    inputs = template_inputs(read_template(CORPUS_DIR / name))
    plan = Plan(learn_shape(inputs), (1, 0, 0), 8)
    draw = RandomDraw(random.Random(7))
    accepted = sum(inputs.accepts(generate_case(draw, plan)) for _ in range(200))
    assert accepted >= 180, f"only {accepted} of 200 constructed conversations accepted"


@given(
    cases(
        valid_for=ChatTemplate(
            text=read_template(FIXTURES / "verify" / "strict.jinja"), special_tokens={"bos_token": "<bos>"}
        )
    )
)
@QUICK
def test_cases_are_replayable_render_inputs(case: dict[str, Any]) -> None:
    assert set(case) == {"messages", "tools", "add_generation_prompt", "kwargs"}
    output = render(
        STRICT,
        case["messages"],
        tools=case["tools"],
        add_generation_prompt=case["add_generation_prompt"],
        special_tokens={"bos_token": "<bos>"},
        **case["kwargs"],
    )
    assert output.startswith("<bos>")


@given(conversations(roles=("user", "assistant"), tools=False, content="string"))
@QUICK
def test_options_restrict_roles_tools_and_content(conversation: list[dict[str, Any]]) -> None:
    assert {message["role"] for message in conversation} <= {"user", "assistant"}
    assert all(isinstance(message["content"], str) and "tool_calls" not in message for message in conversation)


@given(conversations(content="parts", tools=False, history="alternating"))
@QUICK
def test_parts_only_and_alternating(conversation: list[dict[str, Any]]) -> None:
    assert all(isinstance(message["content"], list) for message in conversation)
    plain = [message["role"] for message in conversation if message["role"] in ("user", "assistant")]
    assert all(a != b for a, b in zip(plain, plain[1:]))


@given(messages(roles=("tool",)), tool_calls(arguments="string", max_calls=2), tool_definitions())
@QUICK
def test_messages_tool_calls_and_definitions(
    message: dict[str, Any], calls: list[dict[str, Any]], definitions: list[dict[str, Any]]
) -> None:
    assert message["role"] == "tool" and len(message["tool_call_id"]) == 9
    assert 1 <= len(calls) <= 2 and all(isinstance(call["function"]["arguments"], str) for call in calls)
    assert all(definition["function"]["parameters"]["type"] == "object" for definition in definitions)


@pytest.mark.parametrize(
    "make",
    [
        lambda: conversations(roles=()),
        lambda: conversations(roles=("user", "wizard")),
        lambda: conversations(content="html"),
        lambda: conversations(max_turns=0),
        lambda: conversations(tools="yes"),
        lambda: conversations(history="sometimes"),
        lambda: conversations(valid_for=STRICT, history="irregular"),
        lambda: conversations(valid_for=42),
        lambda: messages(reasoning=1),
        lambda: tool_calls(max_calls=0),
        lambda: tool_calls(arguments="xml"),
    ],
)
def test_options_are_validated_when_the_strategy_is_built(make: Callable[[], Any]) -> None:
    with pytest.raises(InvalidArgument):
        make()


def test_valid_for_renders_only_when_the_strategy_draws() -> None:
    strategy = conversations(valid_for="{{ raise_exception('never') }}")  # probing it would fail: not probed yet
    with pytest.raises(InvalidArgument, match="accepted none of the probe conversations"):
        find(strategy, lambda conversation: True, settings=FIND)


def test_generation_draws_the_reasoning_fields_the_environment_reads() -> None:
    assert sorted(REASONING_DRAW_ORDER) == sorted(REASONING_FIELDS)


def test_random_generation_is_deterministic_per_seed() -> None:
    plan = Plan(default_shape(), (55, 30, 15), 8)
    first = [generate_case(RandomDraw(random.Random(seed)), plan) for seed in range(20)]
    again = [generate_case(RandomDraw(random.Random(seed)), plan) for seed in range(20)]
    assert first == again and len({repr(case) for case in first}) == 20
