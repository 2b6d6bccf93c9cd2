"""The private generator of conversations behind :mod:`templatekit.strategies` and :mod:`templatekit.verification`.

Not a public API.  The generators are written once against a tiny choice interface
(:class:`Draw`) and driven either by Hypothesis (the strategies) or by a seeded
:class:`random.Random` (:class:`RandomDraw`: verification, which needs thousands of
conversations per second); both draw from the same distribution.  Every choice shrinks toward
its first option.  A :class:`Shape` says which turns may follow which and what they may carry
(:func:`default_shape`: well-formed client histories; :mod:`templatekit.probes.shape` learns a
template's own), a :class:`Plan` how to generate from it.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from .strategies import ContentMode

# --- choices ---------------------------------------------------------------------------------


class Draw:
    """A source of choices.  Every choice shrinks toward its first option (index 0)."""

    def below(self, n: int) -> int:
        raise NotImplementedError

    def chance(self, percent: int) -> bool:
        return self.below(100) >= 100 - percent

    def pick(self, options: Sequence[Any]) -> Any:
        return options[self.below(len(options))]

    def weighted(self, weights: Sequence[int]) -> int:
        """An index of ``weights``, drawn in proportion to them."""
        ticket = self.below(sum(weights))
        for index, weight in enumerate(weights):
            if ticket < weight:
                return index
            ticket -= weight
        raise AssertionError("unreachable")


class RandomDraw(Draw):
    """Choices from a seeded :class:`random.Random` (fast; used by ``templatekit.verify``)."""

    __slots__ = ("_random",)

    def __init__(self, rng: Any) -> None:
        self._random = rng.random

    def below(self, n: int) -> int:
        return int(self._random() * n)


# --- text and content ------------------------------------------------------------------------

_WORDS = (
    "hi",
    "hello",
    "ok",
    "thanks",
    "what",
    "is",
    "the",
    "weather",
    "in",
    "Paris",
    "please",
    "write",
    "a",
    "short",
    "poem",
    "about",
    "cats",
    "sure",
    "here",
    "you",
    "go",
    "why",
    "not",
    "code",
    "three",
)
_WHITESPACE = (" ", "\n", "\n\n", "  ", "\t", " \n ")
_UNICODE = (
    "héllo",
    "日本語のテキスト",
    "Привет",
    "مرحبا",
    "שלום",
    "🙂",
    "👩\u200d💻",
    "e\u0301",
    "straße",
    "\u200b",
    "Ω≈ç√∫",
    "한국어",
    "\u00a0",
)
_MARKUP = (
    "<start_of_turn>",
    "<|im_start|>",
    "<|im_end|>",
    "[INST]",
    "</s>",
    "<s>",
    "{{ messages }}",
    "{% endif %}",
    "<think>",
    "</think>",
    "<tool_call>",
    '"quoted"',
    "back\\slash",
    "a\tb",
    "#}",
)
# plain words, empty, whitespace only, padded, unicode, multi-line, markup-like, long
_TEXT_WEIGHTS = (50, 6, 6, 10, 9, 9, 6, 4)
_CITIES = ("Paris", "Tokyo", "São Paulo", "New York")


def _words(draw: Draw, most: int = 6) -> str:
    return " ".join(draw.pick(_WORDS) for _ in range(1 + draw.below(most)))


def _text(draw: Draw) -> str:
    # The plain words come first for every kind, so that plain text is also the shortest
    # choice sequence: Hypothesis shrinks toward fewer choices before smaller ones.
    words = _words(draw)
    kind = draw.weighted(_TEXT_WEIGHTS)
    if kind == 0:
        return words
    if kind == 1:
        return ""
    if kind == 2:
        return draw.pick(_WHITESPACE)
    if kind == 3:
        return draw.pick(("", *_WHITESPACE)) + words + draw.pick(_WHITESPACE)
    if kind == 4:
        return " ".join(draw.pick(_UNICODE) if draw.chance(60) else draw.pick(_WORDS) for _ in range(1 + draw.below(5)))
    if kind == 5:
        return draw.pick(("\n", "\n\n")).join([words, *(_words(draw) for _ in range(1 + draw.below(3)))])
    if kind == 6:
        return f"{words} {draw.pick(_MARKUP)} {_words(draw, 3)}"
    return " ".join([words + "."] * (30 + draw.below(90)))


# content forms: a string, a list of text parts, or a list of parts with images of one shape
Form = Literal["string", "parts", "image", "image_url"]
_FORM_WEIGHTS: Mapping[str, int] = {"string": 70, "parts": 18, "image": 6, "image_url": 6}


def image_part(form: Form) -> dict[str, Any]:
    if form == "image":
        return {"type": "image"}
    return {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}


def _content(draw: Draw, forms: Sequence[Form]) -> str | list[dict[str, Any]]:
    form = forms[draw.weighted([_FORM_WEIGHTS[form] for form in forms])] if len(forms) > 1 else forms[0]
    if form == "string":
        return _text(draw)
    parts: list[dict[str, Any]] = []
    for _ in range(1 + draw.below(3)):
        if form != "parts" and draw.chance(40):
            parts.append(image_part(form))
        else:
            parts.append({"type": "text", "text": _text(draw)})
    return parts


# --- tool calls ------------------------------------------------------------------------------

_FUNCTIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("get_weather", ("city",)),
    ("search", ("query", "limit")),
    ("get_time", ("timezone",)),
    ("run_code", ("code",)),
)
# The fields of :data:`templatekit.environment.REASONING_FIELDS` in the order an assistant message
# draws them: the order is part of the seeded distribution (every verify seed's cases depend on it).
REASONING_DRAW_ORDER = ("reasoning_content", "reasoning", "thinking")
_ARGUMENT_VALUES: Mapping[str, Callable[[Draw], Any]] = {
    "city": lambda draw: draw.pick(_CITIES),
    "query": lambda draw: _words(draw, 4),
    "limit": lambda draw: 1 + draw.below(10),
    "timezone": lambda draw: draw.pick(("UTC", "Europe/Paris", "Asia/Tokyo")),
    "code": lambda draw: draw.pick(("print(1)", "x = {'a': [1, 2]}\nprint(x)", 'print("hi")')),
}


def _arguments(draw: Draw, params: Sequence[str]) -> dict[str, Any]:
    return {param: _ARGUMENT_VALUES[param](draw) for param in params if param == params[0] or draw.chance(50)}


def draw_tool_call(draw: Draw, number: int, arguments: Sequence[str]) -> dict[str, Any]:
    name, params = draw.pick(_FUNCTIONS)
    args: Any = _arguments(draw, params)
    if draw.pick(arguments) == "string":
        args = json.dumps(args, ensure_ascii=False)
    # 9 alphanumeric characters: the id shape Mistral's templates insist on
    return {"id": f"call{number:05d}", "type": "function", "function": {"name": name, "arguments": args}}


def draw_tool_result(draw: Draw, call: Mapping[str, Any]) -> dict[str, Any]:
    content = json.dumps({"result": _words(draw, 3)}, ensure_ascii=False) if draw.chance(60) else _text(draw)
    message = {"role": "tool", "tool_call_id": call["id"], "content": content}
    if draw.chance(30):
        message["name"] = call["function"]["name"]
    return message


def _tool_definition(name: str, params: Sequence[str]) -> dict[str, Any]:
    types = {"limit": "integer"}
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": f"{name.replace('_', ' ').capitalize()}.",
            "parameters": {
                "type": "object",
                "properties": {
                    param: {"type": types.get(param, "string"), "description": f"The {param}."} for param in params
                },
                "required": list(params[:1]),
            },
        },
    }


def draw_tool_definitions(draw: Draw) -> list[dict[str, Any]]:
    count = 1 + draw.below(len(_FUNCTIONS))
    return [_tool_definition(name, params) for name, params in _FUNCTIONS[:count]]


# --- shapes: which turns may follow which, and what they may carry ----------------------------

# A turn ("unit") is one message, or an assistant tool call together with its tool results.
Unit = Literal["user", "assistant", "system", "developer", "tool-exchange"]
UNITS: tuple[Unit, ...] = ("user", "assistant", "system", "developer", "tool-exchange")
# A state is (the last turn, the last turn that was not a tool exchange): many templates check
# alternation on plain messages only, skipping tool calls and results.
State = tuple[str, str]
START: State = ("start", "start")
_UNIT_WEIGHTS: Mapping[str, int] = {"user": 4, "assistant": 4, "system": 1, "developer": 1, "tool-exchange": 2}
ALL_FORMS: tuple[Form, ...] = ("string", "parts", "image", "image_url")
CALL_CONTENTS = ("none", "empty", "text")
ARGUMENT_FORMS = ("object", "string")
FLAGS = ("enable_thinking", "add_vision_id", "thinking")


def after(state: State, unit: str) -> State:
    return (unit, state[1] if unit == "tool-exchange" else unit)


@dataclass(frozen=True)
class Shape:
    """What a generated conversation may look like.

    ``edges`` maps a state (``START`` or ``(last turn, last plain turn)``) to the turns that may
    follow it, and ``forms`` each such step ``(state, turn)`` to the content forms the turn may
    carry; a conversation may end in a state of ``accepting``.  ``role_forms`` are the forms of
    a role anywhere (irregular histories).  ``call_contents`` is the assistant content beside
    tool calls (``none``, ``empty``, ``text``), ``arguments`` the argument forms (``object``,
    ``string``), ``max_calls`` the calls per assistant message, ``reasoning`` the reasoning
    fields an assistant message may carry, ``flags`` the boolean template variables to vary
    and their allowed values, ``tools`` whether tool definitions are ``never``, ``sometimes``
    or ``always`` passed, ``required`` the variables the template cannot render without and
    the stand-in value every case passes for each (a server passes them as request kwargs).
    """

    edges: Mapping[State, tuple[Unit, ...]]
    accepting: frozenset[State]
    forms: Mapping[tuple[State, Unit], tuple[Form, ...]]
    role_forms: Mapping[str, tuple[Form, ...]]
    call_contents: tuple[str, ...] = CALL_CONTENTS
    arguments: tuple[str, ...] = ARGUMENT_FORMS
    max_calls: int = 3
    reasoning: tuple[str, ...] = REASONING_DRAW_ORDER
    flags: tuple[tuple[str, tuple[bool, ...]], ...] = ()
    tools: Literal["never", "sometimes", "always"] = "sometimes"
    required: tuple[tuple[str, str], ...] = ()

    def restricted(self, *, roles: Sequence[str], tools: bool, content: ContentMode) -> Shape:
        """This shape without the turns, roles and content forms the options exclude."""
        units = {unit for unit in UNITS if _unit_allowed(unit, roles, tools)}

        def keep(forms: tuple[Form, ...]) -> tuple[Form, ...]:
            return tuple(form for form in forms if content == "both" or (form == "string") == (content == "string"))

        forms = {
            step: keep(step_forms) if step[1] != "tool-exchange" else step_forms
            for step, step_forms in self.forms.items()
            if step[1] in units
        }
        forms = {step: step_forms for step, step_forms in forms.items() if step_forms}
        edges = {
            state: tuple(unit for unit in following if (state, unit) in forms)
            for state, following in self.edges.items()
        }
        return replace(
            self,
            edges=edges,
            forms=forms,
            role_forms={role: keep(role_forms) for role, role_forms in self.role_forms.items()},
            accepting=frozenset(state for state in self.accepting if state[0] in units),
            tools=self.tools if tools or self.tools == "always" else "never",
        )


def _unit_allowed(unit: Unit, roles: Sequence[str], tools: bool) -> bool:
    if unit == "tool-exchange":
        return tools and "assistant" in roles and "tool" in roles
    return unit in roles


def default_shape() -> Shape:
    """Well-formed client histories: optional system/developer first, user and assistant turns
    alternating, tool exchanges after a user turn or another tool exchange."""
    following: Mapping[str, tuple[Unit, ...]] = {
        "start": ("user", "system", "developer"),
        "system": ("user",),
        "developer": ("user",),
        "user": ("assistant", "tool-exchange"),
        "assistant": ("user",),
        "tool-exchange": ("assistant", "tool-exchange", "user"),
    }
    role_forms: Mapping[str, tuple[Form, ...]] = {
        "user": ALL_FORMS,
        "assistant": ("string", "parts"),
        "system": ("string", "parts"),
        "developer": ("string", "parts"),
        "tool-exchange": ("string",),
    }
    edges: dict[State, tuple[Unit, ...]] = {}
    queue = [START]
    while queue:
        state = queue.pop()
        if state not in edges:
            edges[state] = following[state[0]]
            queue.extend(after(state, unit) for unit in edges[state])
    forms = {(state, unit): role_forms[unit] for state, units in edges.items() for unit in units}
    return Shape(
        edges=edges,
        accepting=frozenset(state for state in edges if state != START),
        forms=forms,
        role_forms=role_forms,
        flags=tuple((flag, (True, False)) for flag in FLAGS),
    )


# --- generation -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """How to generate cases: a shape, the weights of the three kinds of history
    (walks of the shape, irregular histories, random role sequences), and a length bound."""

    shape: Shape
    modes: tuple[int, int, int]
    max_turns: int
    soup_roles: tuple[str, ...] = ("user", "assistant", "system")


def generate_case(draw: Draw, plan: Plan) -> dict[str, Any]:
    """One replayable case: ``{"messages", "tools", "add_generation_prompt", "kwargs"}``."""
    shape = plan.shape
    mode = draw.weighted(plan.modes)
    counter = [0]
    if mode == 2:
        messages = _soup(draw, plan)
    else:
        messages = [
            message
            for state, unit in _walk(draw, shape, plan.max_turns)
            for message in draw_unit(draw, unit, shape, counter, shape.forms[(state, unit)])
        ]
        if mode == 1:
            messages = _irregular(draw, messages, plan, counter)
    tools = (
        draw_tool_definitions(draw)
        if shape.tools == "always" or (shape.tools == "sometimes" and draw.chance(30))
        else None
    )
    add_generation_prompt = draw.chance(50)
    kwargs = {**dict(shape.required), **{flag: draw.pick(values) for flag, values in shape.flags if draw.chance(50)}}
    return {"messages": messages, "tools": tools, "add_generation_prompt": add_generation_prompt, "kwargs": kwargs}


def _turns(draw: Draw, max_turns: int) -> Iterator[None]:
    """Yield once per turn.  Usually a coin before each turn after the first decides whether
    another follows (so Hypothesis can drop a turn's choices whole), up to ``max_turns``;
    about one history in 25 is long: a drawn length of one to four times ``max_turns``."""
    if draw.chance(4):
        yield from range(max_turns + draw.below(3 * max_turns + 1))
        return
    more = 100 - 200 // (max_turns + 2)
    yield
    for _ in range(max_turns - 1):
        if not draw.chance(more):
            return
        yield


def _walk(draw: Draw, shape: Shape, max_turns: int) -> list[tuple[State, Unit]]:
    """Steps ``(state, turn)`` of a walk of the shape; it ends in an accepting state when one is
    met within three more turns."""
    state = START
    steps: list[tuple[State, Unit]] = []
    end = 0

    def step() -> bool:
        nonlocal state, end
        options = shape.edges.get(state, ())
        if not options:
            return False
        unit = options[draw.weighted([_UNIT_WEIGHTS[option] for option in options])]
        steps.append((state, unit))
        state = after(state, unit)
        if state in shape.accepting:
            end = len(steps)
        return True

    for _turn in _turns(draw, max_turns):
        if not step():
            break
    for _ in range(3):
        if end == len(steps) or not step():
            break
    return steps[:end] if end else steps


def draw_message(draw: Draw, role: str, shape: Shape, forms: Sequence[Form] | None = None) -> dict[str, Any]:
    forms = forms or shape.role_forms.get(role) or ("string",)
    message: dict[str, Any] = {"role": role, "content": _content(draw, forms)}
    if role == "assistant" and shape.reasoning and draw.chance(15):
        message[draw.pick(shape.reasoning)] = _text(draw)
    return message


def draw_unit(
    draw: Draw, unit: Unit, shape: Shape, counter: list[int], forms: Sequence[Form] | None = None
) -> list[dict[str, Any]]:
    if unit != "tool-exchange":
        return [draw_message(draw, unit, shape, forms)]
    calls = []
    for _ in range(1 + draw.weighted((6, 3, 1)[: shape.max_calls])):
        counter[0] += 1
        calls.append(draw_tool_call(draw, counter[0], shape.arguments or ARGUMENT_FORMS))
    kind = draw.pick(shape.call_contents or CALL_CONTENTS)
    assistant: dict[str, Any] = {
        "role": "assistant",
        "content": {"none": None, "empty": ""}.get(kind),
        "tool_calls": calls,
    }
    if kind == "text":
        assistant["content"] = _text(draw)
    if shape.reasoning and draw.chance(15):
        assistant[draw.pick(shape.reasoning)] = _text(draw)
    return [assistant, *(draw_tool_result(draw, call) for call in calls)]


def _soup(draw: Draw, plan: Plan) -> list[dict[str, Any]]:
    """Any sequence of the plan's plain roles: runs, assistant first, system anywhere."""
    return [draw_message(draw, draw.pick(plan.soup_roles), plan.shape) for _turn in _turns(draw, plan.max_turns)]


def _irregular(draw: Draw, messages: list[dict[str, Any]], plan: Plan, counter: list[int]) -> list[dict[str, Any]]:
    """A well-formed history bent the way real clients and agent frameworks bend it: a retried
    or split turn (two messages of one role in a row), an assistant turn first, a late system
    message, a lost message, a developer message anywhere."""
    messages = list(messages)
    roles = plan.soup_roles
    for _ in range(1 + draw.chance(30)):
        kind = draw.weighted((6, 3, 1, 2, 1, *((2,) if "developer" in roles else ())))
        plain = [
            index
            for index, message in enumerate(messages)
            if message["role"] in roles and not message.get("tool_calls")
        ]
        if kind in (0, 1) and plain:
            index = draw.pick(plain)
            extra = (
                copy.deepcopy(messages[index]) if kind == 1 else draw_message(draw, messages[index]["role"], plan.shape)
            )
            messages.insert(index + 1, extra)
        elif kind == 2 and "assistant" in roles:
            messages.insert(0, draw_message(draw, "assistant", plan.shape))
        elif kind == 3 and "system" in roles:
            messages.insert(1 + draw.below(len(messages)) if messages else 0, draw_message(draw, "system", plan.shape))
        elif kind == 5:
            messages.insert(draw.below(len(messages) + 1), draw_message(draw, "developer", plan.shape))
        elif len(messages) > 1:
            del messages[draw.below(len(messages))]
    return messages


def seeded_case(plan: Plan, seed: int, index: int) -> dict[str, Any]:
    """Example ``index`` of ``seed``: the same on every run and in every process."""
    import random

    return generate_case(RandomDraw(random.Random(f"templatekit-verify/{seed}/{index}")), plan)
