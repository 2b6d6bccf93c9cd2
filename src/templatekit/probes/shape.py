"""The shape learner: which conversations a template accepts, learned from cheap probe renders.

A :class:`~templatekit.generation.Shape` is a small automaton (which turn may follow which,
and which content forms each turn may carry); :func:`learn_shape` finds it by a breadth-first
search of probe conversations, rendered as :class:`~templatekit.probes.harness.TemplateInputs`
say (transformers, or a server's pipeline).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from functools import lru_cache
from typing import Any, Literal

from ..generation import (
    ALL_FORMS,
    ARGUMENT_FORMS,
    CALL_CONTENTS,
    FLAGS,
    REASONING_DRAW_ORDER,
    START,
    UNITS,
    Form,
    RandomDraw,
    Shape,
    State,
    Unit,
    after,
    draw_tool_definitions,
    image_part,
)
from .harness import TemplateInputs, text_harness

__all__ = ["learn_shape"]


def _probe_unit(
    unit: Unit, call_content: str = "empty", arguments: str = "object", calls: int = 1
) -> list[dict[str, Any]]:
    if unit != "tool-exchange":
        text = {"user": "Hi", "assistant": "Hello", "system": "Be brief.", "developer": "Be brief."}[unit]
        return [{"role": unit, "content": text}]
    content = {"none": None, "empty": "", "text": "Let me check."}[call_content]
    ids = [f"call{number:05d}" for number in range(1, calls + 1)]
    args = {"city": "Paris"}
    function = {"name": "get_weather", "arguments": json.dumps(args) if arguments == "string" else args}
    return [
        {
            "role": "assistant",
            "content": content,
            "tool_calls": [{"id": call_id, "type": "function", "function": function} for call_id in ids],
        },
        *({"role": "tool", "tool_call_id": call_id, "content": '{"temperature": 21}'} for call_id in ids),
    ]


def _unit_variants(unit: Unit) -> list[list[dict[str, Any]]]:
    if unit != "tool-exchange":
        return [_probe_unit(unit)]
    return [_probe_unit(unit, content, arguments) for arguments in ARGUMENT_FORMS for content in CALL_CONTENTS]


class _Prober:
    """Renders probe conversations with the inputs every probe shares (tools, flags)."""

    def __init__(self, inputs: TemplateInputs) -> None:
        self.inputs = inputs
        harness = text_harness(inputs.text, dict(inputs.special_tokens), inputs.profile)
        self.analysis = harness.analysis
        self.required = tuple(sorted(harness.required_kwargs.items()))
        self.base: dict[str, Any] = {"tools": None, "add_generation_prompt": False, "kwargs": dict(self.required)}
        self.tools: Literal["never", "sometimes", "always"] = (
            "sometimes" if "tools" in self.analysis.undeclared else "never"
        )
        if self.tools == "sometimes" and not self.accepts(_probe_unit("user")):
            self.base["tools"] = draw_tool_definitions(RandomDraw(_FirstOptions()))  # the tool generated cases send
            self.tools = "always" if self.accepts(_probe_unit("user")) else "sometimes"
            if self.tools == "sometimes":
                self.base["tools"] = None

    def accepts(self, messages: list[dict[str, Any]], **kwargs: Any) -> bool:
        """:meth:`TemplateInputs.accepts` on ``messages`` with the shared inputs (and ``kwargs``)."""
        return self.inputs.accepts({**self.base, "messages": messages, "kwargs": {**self.base["kwargs"], **kwargs}})


class _FirstOptions:
    """A stand-in random source that always chooses the first option."""

    @staticmethod
    def random() -> float:
        return 0.0


def learn_shape(inputs: TemplateInputs) -> Shape:
    """The shape of the conversations a template accepts, learned from probe renders.

    A breadth-first search over states: from a witness conversation for each state, append one
    turn of each kind and keep the step when the template renders the result (or renders it
    once one more turn follows, for templates that check how a conversation ends).  Each step's
    content forms are probed on its witness; tool-call forms, the number of calls per message,
    reasoning fields and flag values on the first witnesses that have them.
    """
    return _learn_shape(inputs)


@lru_cache(maxsize=64)
def _learn_shape(inputs: TemplateInputs) -> Shape:
    prober = _Prober(inputs)
    paths: dict[State, list[dict[str, Any]]] = {START: []}
    edges: dict[State, list[Unit]] = {START: []}
    forms: dict[tuple[State, Unit], tuple[Form, ...]] = {}
    accepting: set[State] = set()
    witnesses: dict[Unit, tuple[list[dict[str, Any]], int]] = {}  # first witness of each turn kind
    queue = [START]
    while queue:
        state = queue.pop(0)
        path = paths[state]
        for unit in UNITS:
            found = _extend(prober, path, unit)
            if found is None:
                continue
            conversation, complete = found
            edges[state].append(unit)
            forms[(state, unit)] = _accepted_forms(prober, unit, conversation, len(path))
            witnesses.setdefault(unit, (conversation, len(path)))
            following = after(state, unit)
            if complete:
                accepting.add(following)
            if following not in paths:
                paths[following] = conversation[: len(path) + len(_probe_unit(unit))]
                edges[following] = []
                queue.append(following)
    shape = Shape(
        edges={state: tuple(units) for state, units in edges.items()},
        accepting=frozenset(accepting),
        forms=forms,
        role_forms=_role_forms(forms),
        tools=prober.tools,
        flags=_flag_values(prober),
        required=prober.required,
    )
    if "tool-exchange" in witnesses:
        shape = replace(shape, **_tool_call_forms(prober, *witnesses["tool-exchange"]))
    if "assistant" in witnesses:
        conversation, start = witnesses["assistant"]
        shape = replace(
            shape,
            reasoning=tuple(
                field
                for field in REASONING_DRAW_ORDER
                if prober.accepts(
                    _replaced(conversation, start, 1, [{**conversation[start], field: "Thinking it over."}])
                )
            ),
        )
    return shape


def _replaced(
    conversation: list[dict[str, Any]], start: int, length: int, messages: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    return [*conversation[:start], *messages, *conversation[start + length :]]


def _extend(prober: _Prober, path: list[dict[str, Any]], unit: Unit) -> tuple[list[dict[str, Any]], bool] | None:
    """A conversation ``path + unit`` the template accepts (complete), or one that needs a follower."""
    variants = _unit_variants(unit)
    for variant in variants:
        if prober.accepts(path + variant):
            return path + variant, True
    for variant in variants:
        for follower in UNITS:
            candidate = path + variant + _probe_unit(follower)
            if prober.accepts(candidate):
                return candidate, False
    return None


def _accepted_forms(prober: _Prober, unit: Unit, conversation: list[dict[str, Any]], start: int) -> tuple[Form, ...]:
    if unit == "tool-exchange":
        return ("string",)
    samples: Mapping[Form, Any] = {
        "string": conversation[start]["content"],
        "parts": [{"type": "text", "text": "Hi"}],
        "image": [{"type": "text", "text": "Look:"}, image_part("image")],
        "image_url": [{"type": "text", "text": "Look:"}, image_part("image_url")],
    }
    return tuple(
        form
        for form, content in samples.items()
        if form == "string"
        or prober.accepts(_replaced(conversation, start, 1, [{**conversation[start], "content": content}]))
    )


def _role_forms(forms: Mapping[tuple[State, Unit], tuple[Form, ...]]) -> dict[str, tuple[Form, ...]]:
    return {
        unit: tuple(
            form
            for form in ALL_FORMS
            if any(form in step_forms for (_, step_unit), step_forms in forms.items() if step_unit == unit)
        )
        for unit in UNITS
    }


def _tool_call_forms(prober: _Prober, conversation: list[dict[str, Any]], start: int) -> dict[str, Any]:
    calls = conversation[start]["tool_calls"]
    arguments = "string" if isinstance(calls[0]["function"]["arguments"], str) else "object"
    content = {None: "none", "": "empty"}.get(conversation[start]["content"], "text")
    length = 1 + len(calls)

    def accepts(unit: list[dict[str, Any]]) -> bool:
        return prober.accepts(_replaced(conversation, start, length, unit))

    return {
        "call_contents": tuple(
            option for option in CALL_CONTENTS if accepts(_probe_unit("tool-exchange", option, arguments))
        ),
        "arguments": tuple(
            option for option in ARGUMENT_FORMS if accepts(_probe_unit("tool-exchange", content, option))
        ),
        "max_calls": 3 if accepts(_probe_unit("tool-exchange", content, arguments, calls=2)) else 1,
    }


def _flag_values(prober: _Prober) -> tuple[tuple[str, tuple[bool, ...]], ...]:
    """The boolean variables to vary (well-known ones and any the template tests), with the
    values under which it still renders a user turn."""
    flags = []
    for flag in sorted(set(FLAGS) | prober.analysis.flags):
        if flag in prober.analysis.undeclared:
            values = tuple(value for value in (True, False) if prober.accepts(_probe_unit("user"), **{flag: value}))
            if values:
                flags.append((flag, values))
    return tuple(flags)
