"""Hypothesis strategies for the conversations chat clients send to a chat template.

Use them in your own property tests::

    from hypothesis import given
    from templatekit import render
    from templatekit.strategies import conversations

    @given(conversations(valid_for=TEMPLATE_TEXT))
    def test_renders(messages):
        assert render(TEMPLATE_TEXT, messages).count("<start_of_turn>") >= 1

What is generated: system, developer, user, assistant and tool messages; string content and
list-of-parts content (text and image parts); assistant ``tool_calls`` with JSON-string and
object arguments, ``content: None`` beside tool calls; tool results with ``tool_call_id``;
reasoning fields (``reasoning_content``, ``reasoning``, ``thinking``); unicode, empty and
whitespace-only text, markup-like text, long texts and long histories.

``conversations(valid_for=T)`` yields conversations that ``T`` renders without raising.  They
are built by construction: cheap probe renders learn which role sequences ``T`` accepts (a
small automaton: which turn may follow which) and which content forms each role may carry,
and generation walks that automaton.  Only what the probes cannot predict is repaired (the
longest accepted prefix is kept) or, as a last resort, rejected.

Shrinking: every choice shrinks toward its first option, so failing examples shrink toward
short conversations of user and assistant turns with string content made of one plain word,
no tool calls, no reasoning fields and ``add_generation_prompt`` off.

The generators here are written once against a tiny choice interface and driven either by
Hypothesis (these strategies) or by a seeded :class:`random.Random` (``templatekit.verify``,
which needs thousands of conversations per second); both draw from the same distribution.
Hypothesis is imported only when a strategy is built.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Literal

from .environment import DEFAULT_PROFILE, Profile
from .probes.harness import TemplateInputs, template_inputs, text_harness

if TYPE_CHECKING:
    from hypothesis.strategies import SearchStrategy

    from .sources import ChatTemplate

__all__ = ["ROLES", "CONTENT_MODES", "HISTORIES", "messages", "tool_calls", "tool_definitions",
           "conversations", "cases"]

Role = Literal["user", "assistant", "system", "developer", "tool"]
ContentMode = Literal["string", "parts", "both"]
History = Literal["any", "alternating", "irregular"]

ROLES: tuple[Role, ...] = ("user", "assistant", "system", "developer", "tool")
CONTENT_MODES: tuple[ContentMode, ...] = ("string", "parts", "both")
HISTORIES: tuple[History, ...] = ("any", "alternating", "irregular")



# --- choices ---------------------------------------------------------------------------------

class _Draw:
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


class RandomDraw(_Draw):
    """Choices from a seeded :class:`random.Random` (fast; used by ``templatekit.verify``)."""

    __slots__ = ("_random",)

    def __init__(self, rng: Any) -> None:
        self._random = rng.random

    def below(self, n: int) -> int:
        return int(self._random() * n)


class _HypothesisDraw(_Draw):
    """Choices drawn through Hypothesis (a composite's ``draw``), which shrinks them toward 0."""

    __slots__ = ("_draw",)

    def __init__(self, draw: Callable[[Any], Any]) -> None:
        self._draw = draw

    def below(self, n: int) -> int:
        return self._draw(_integers(n - 1)) if n > 1 else 0


@lru_cache(maxsize=None)
def _integers(high: int) -> Any:
    from hypothesis import strategies as st

    return st.integers(0, high)


# --- text and content ------------------------------------------------------------------------

_WORDS = ("hi", "hello", "ok", "thanks", "what", "is", "the", "weather", "in", "Paris", "please", "write",
          "a", "short", "poem", "about", "cats", "sure", "here", "you", "go", "why", "not", "code", "three")
_WHITESPACE = (" ", "\n", "\n\n", "  ", "\t", " \n ")
_UNICODE = ("héllo", "日本語のテキスト", "Привет", "مرحبا", "שלום", "🙂", "👩\u200d💻", "e\u0301", "straße",
            "\u200b", "Ω≈ç√∫", "한국어", "\u00a0")
_MARKUP = ("<start_of_turn>", "<|im_start|>", "<|im_end|>", "[INST]", "</s>", "<s>", "{{ messages }}",
           "{% endif %}", "<think>", "</think>", "<tool_call>", '"quoted"', "back\\slash", "a\tb", "#}")
# plain words, empty, whitespace only, padded, unicode, multi-line, markup-like, long
_TEXT_WEIGHTS = (50, 6, 6, 10, 9, 9, 6, 4)
_CITIES = ("Paris", "Tokyo", "São Paulo", "New York")


def _words(draw: _Draw, most: int = 6) -> str:
    return " ".join(draw.pick(_WORDS) for _ in range(1 + draw.below(most)))


def _text(draw: _Draw) -> str:
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
        return " ".join(draw.pick(_UNICODE) if draw.chance(60) else draw.pick(_WORDS)
                        for _ in range(1 + draw.below(5)))
    if kind == 5:
        return draw.pick(("\n", "\n\n")).join([words, *(_words(draw) for _ in range(1 + draw.below(3)))])
    if kind == 6:
        return f"{words} {draw.pick(_MARKUP)} {_words(draw, 3)}"
    return " ".join([words + "."] * (30 + draw.below(90)))


# content forms: a string, a list of text parts, or a list of parts with images of one shape
Form = Literal["string", "parts", "image", "image_url"]
_FORM_WEIGHTS: Mapping[str, int] = {"string": 70, "parts": 18, "image": 6, "image_url": 6}


def _image_part(form: Form) -> dict[str, Any]:
    if form == "image":
        return {"type": "image"}
    return {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}


def _content(draw: _Draw, forms: Sequence[Form]) -> str | list[dict[str, Any]]:
    form = forms[draw.weighted([_FORM_WEIGHTS[form] for form in forms])] if len(forms) > 1 else forms[0]
    if form == "string":
        return _text(draw)
    parts: list[dict[str, Any]] = []
    for _ in range(1 + draw.below(3)):
        if form != "parts" and draw.chance(40):
            parts.append(_image_part(form))
        else:
            parts.append({"type": "text", "text": _text(draw)})
    return parts


# --- tool calls ------------------------------------------------------------------------------

_FUNCTIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("get_weather", ("city",)), ("search", ("query", "limit")), ("get_time", ("timezone",)), ("run_code", ("code",)))
_ARGUMENT_VALUES: Mapping[str, Callable[[_Draw], Any]] = {
    "city": lambda draw: draw.pick(_CITIES),
    "query": lambda draw: _words(draw, 4),
    "limit": lambda draw: 1 + draw.below(10),
    "timezone": lambda draw: draw.pick(("UTC", "Europe/Paris", "Asia/Tokyo")),
    "code": lambda draw: draw.pick(("print(1)", "x = {'a': [1, 2]}\nprint(x)", 'print("hi")')),
}
_REASONING_FIELDS = ("reasoning_content", "reasoning", "thinking")


def _arguments(draw: _Draw, params: Sequence[str]) -> dict[str, Any]:
    return {param: _ARGUMENT_VALUES[param](draw) for param in params if param == params[0] or draw.chance(50)}


def _tool_call(draw: _Draw, number: int, arguments: Sequence[str]) -> dict[str, Any]:
    name, params = draw.pick(_FUNCTIONS)
    args: Any = _arguments(draw, params)
    if draw.pick(arguments) == "string":
        args = json.dumps(args, ensure_ascii=False)
    # 9 alphanumeric characters: the id shape Mistral's templates insist on
    return {"id": f"call{number:05d}", "type": "function", "function": {"name": name, "arguments": args}}


def _tool_result(draw: _Draw, call: Mapping[str, Any]) -> dict[str, Any]:
    content = (json.dumps({"result": _words(draw, 3)}, ensure_ascii=False) if draw.chance(60) else _text(draw))
    message = {"role": "tool", "tool_call_id": call["id"], "content": content}
    if draw.chance(30):
        message["name"] = call["function"]["name"]
    return message


def _tool_definition(name: str, params: Sequence[str]) -> dict[str, Any]:
    types = {"limit": "integer"}
    return {"type": "function", "function": {
        "name": name,
        "description": f"{name.replace('_', ' ').capitalize()}.",
        "parameters": {"type": "object",
                       "properties": {param: {"type": types.get(param, "string"), "description": f"The {param}."}
                                      for param in params},
                       "required": list(params[:1])}}}


def _tool_definitions(draw: _Draw) -> list[dict[str, Any]]:
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
_ALL_FORMS: tuple[Form, ...] = ("string", "parts", "image", "image_url")
_CALL_CONTENTS = ("none", "empty", "text")
_ARGUMENT_FORMS = ("object", "string")
_FLAGS = ("enable_thinking", "add_vision_id", "thinking")


def _after(state: State, unit: str) -> State:
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
    call_contents: tuple[str, ...] = _CALL_CONTENTS
    arguments: tuple[str, ...] = _ARGUMENT_FORMS
    max_calls: int = 3
    reasoning: tuple[str, ...] = _REASONING_FIELDS
    flags: tuple[tuple[str, tuple[bool, ...]], ...] = ()
    tools: Literal["never", "sometimes", "always"] = "sometimes"
    required: tuple[tuple[str, str], ...] = ()

    def restricted(self, *, roles: Sequence[str], tools: bool, content: ContentMode) -> Shape:
        """This shape without the turns, roles and content forms the options exclude."""
        units = {unit for unit in UNITS if _unit_allowed(unit, roles, tools)}

        def keep(forms: tuple[Form, ...]) -> tuple[Form, ...]:
            return tuple(form for form in forms if content == "both" or (form == "string") == (content == "string"))

        forms = {step: keep(step_forms) if step[1] != "tool-exchange" else step_forms
                 for step, step_forms in self.forms.items() if step[1] in units}
        forms = {step: step_forms for step, step_forms in forms.items() if step_forms}
        edges = {state: tuple(unit for unit in following if (state, unit) in forms)
                 for state, following in self.edges.items()}
        return replace(self, edges=edges, forms=forms,
                       role_forms={role: keep(role_forms) for role, role_forms in self.role_forms.items()},
                       accepting=frozenset(state for state in self.accepting if state[0] in units),
                       tools=self.tools if tools or self.tools == "always" else "never")


def _unit_allowed(unit: Unit, roles: Sequence[str], tools: bool) -> bool:
    if unit == "tool-exchange":
        return tools and "assistant" in roles and "tool" in roles
    return unit in roles


def default_shape() -> Shape:
    """Well-formed client histories: optional system/developer first, user and assistant turns
    alternating, tool exchanges after a user turn or another tool exchange."""
    following: Mapping[str, tuple[Unit, ...]] = {
        "start": ("user", "system", "developer"), "system": ("user",), "developer": ("user",),
        "user": ("assistant", "tool-exchange"), "assistant": ("user",),
        "tool-exchange": ("assistant", "tool-exchange", "user")}
    role_forms: Mapping[str, tuple[Form, ...]] = {
        "user": _ALL_FORMS, "assistant": ("string", "parts"), "system": ("string", "parts"),
        "developer": ("string", "parts"), "tool-exchange": ("string",)}
    edges: dict[State, tuple[Unit, ...]] = {}
    queue = [START]
    while queue:
        state = queue.pop()
        if state not in edges:
            edges[state] = following[state[0]]
            queue.extend(_after(state, unit) for unit in edges[state])
    forms = {(state, unit): role_forms[unit] for state, units in edges.items() for unit in units}
    return Shape(edges=edges, accepting=frozenset(state for state in edges if state != START), forms=forms,
                 role_forms=role_forms, flags=tuple((flag, (True, False)) for flag in _FLAGS))


def _probe_unit(unit: Unit, call_content: str = "empty", arguments: str = "object",
                calls: int = 1) -> list[dict[str, Any]]:
    if unit != "tool-exchange":
        text = {"user": "Hi", "assistant": "Hello", "system": "Be brief.", "developer": "Be brief."}[unit]
        return [{"role": unit, "content": text}]
    content = {"none": None, "empty": "", "text": "Let me check."}[call_content]
    ids = [f"call{number:05d}" for number in range(1, calls + 1)]
    args = {"city": "Paris"}
    function = {"name": "get_weather", "arguments": json.dumps(args) if arguments == "string" else args}
    return [{"role": "assistant", "content": content,
             "tool_calls": [{"id": call_id, "type": "function", "function": function} for call_id in ids]},
            *({"role": "tool", "tool_call_id": call_id, "content": '{"temperature": 21}'} for call_id in ids)]


def _unit_variants(unit: Unit) -> list[list[dict[str, Any]]]:
    if unit != "tool-exchange":
        return [_probe_unit(unit)]
    return [_probe_unit(unit, content, arguments) for arguments in _ARGUMENT_FORMS for content in _CALL_CONTENTS]


class _Prober:
    """Renders probe conversations with the inputs every probe shares (tools, flags)."""

    def __init__(self, inputs: TemplateInputs, undeclared: frozenset[str]) -> None:
        self.inputs = inputs
        self.required = _required_kwargs(inputs)
        self.base: dict[str, Any] = {"tools": None, "add_generation_prompt": False, "kwargs": dict(self.required)}
        self.tools: Literal["never", "sometimes", "always"] = "sometimes" if "tools" in undeclared else "never"
        if self.tools == "sometimes" and not self.accepts(_probe_unit("user")):
            self.base["tools"] = _tool_definitions(RandomDraw(_FirstOptions()))  # the tool generated cases send
            self.tools = "always" if self.accepts(_probe_unit("user")) else "sometimes"
            if self.tools == "sometimes":
                self.base["tools"] = None

    def accepts(self, messages: list[dict[str, Any]], **kwargs: Any) -> bool:
        return self.inputs.accepts({**self.base, "messages": messages, "kwargs": {**self.base["kwargs"], **kwargs}})


def _required_kwargs(inputs: TemplateInputs) -> tuple[tuple[str, str], ...]:
    """The variables the template needs (the probes harness finds them), with stand-in values."""
    harness = text_harness(inputs.text, dict(inputs.special_tokens), inputs.profile)
    return tuple(sorted(harness.required_kwargs.items()))


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
    undeclared = template_variables(inputs.text)
    prober = _Prober(inputs, undeclared)
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
            following = _after(state, unit)
            if complete:
                accepting.add(following)
            if following not in paths:
                paths[following] = conversation[:len(path) + len(_probe_unit(unit))]
                edges[following] = []
                queue.append(following)
    shape = Shape(edges={state: tuple(units) for state, units in edges.items()}, accepting=frozenset(accepting),
                  forms=forms, role_forms=_role_forms(forms), tools=prober.tools,
                  flags=_flag_values(prober, inputs.text, undeclared), required=prober.required)
    if "tool-exchange" in witnesses:
        shape = replace(shape, **_tool_call_forms(prober, *witnesses["tool-exchange"]))
    if "assistant" in witnesses:
        conversation, start = witnesses["assistant"]
        shape = replace(shape, reasoning=tuple(field for field in _REASONING_FIELDS if prober.accepts(
            _replaced(conversation, start, 1, [{**conversation[start], field: "Thinking it over."}]))))
    return shape


def _replaced(conversation: list[dict[str, Any]], start: int, length: int,
              messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [*conversation[:start], *messages, *conversation[start + length:]]


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


def _accepted_forms(prober: _Prober, unit: Unit, conversation: list[dict[str, Any]],
                    start: int) -> tuple[Form, ...]:
    if unit == "tool-exchange":
        return ("string",)
    samples: Mapping[Form, Any] = {
        "string": conversation[start]["content"],
        "parts": [{"type": "text", "text": "Hi"}],
        "image": [{"type": "text", "text": "Look:"}, _image_part("image")],
        "image_url": [{"type": "text", "text": "Look:"}, _image_part("image_url")],
    }
    return tuple(form for form, content in samples.items() if form == "string" or prober.accepts(
        _replaced(conversation, start, 1, [{**conversation[start], "content": content}])))


def _role_forms(forms: Mapping[tuple[State, Unit], tuple[Form, ...]]) -> dict[str, tuple[Form, ...]]:
    return {unit: tuple(form for form in _ALL_FORMS if any(
        form in step_forms for (_, step_unit), step_forms in forms.items() if step_unit == unit))
        for unit in UNITS}


def _tool_call_forms(prober: _Prober, conversation: list[dict[str, Any]], start: int) -> dict[str, Any]:
    calls = conversation[start]["tool_calls"]
    arguments = "string" if isinstance(calls[0]["function"]["arguments"], str) else "object"
    content = {None: "none", "": "empty"}.get(conversation[start]["content"], "text")
    length = 1 + len(calls)

    def accepts(unit: list[dict[str, Any]]) -> bool:
        return prober.accepts(_replaced(conversation, start, length, unit))

    return {
        "call_contents": tuple(option for option in _CALL_CONTENTS
                               if accepts(_probe_unit("tool-exchange", option, arguments))),
        "arguments": tuple(option for option in _ARGUMENT_FORMS
                           if accepts(_probe_unit("tool-exchange", content, option))),
        "max_calls": 3 if accepts(_probe_unit("tool-exchange", content, arguments, calls=2)) else 1,
    }


def _flag_values(prober: _Prober, text: str, undeclared: frozenset[str]) -> tuple[tuple[str, tuple[bool, ...]], ...]:
    """The boolean variables to vary (well-known ones and any the template tests), with the
    values under which it still renders a user turn."""
    from .analysis import boolean_flags
    from .syntax import parse

    flags = []
    for flag in sorted(set(_FLAGS) | boolean_flags(parse(text).ast)):
        if flag in undeclared:
            values = tuple(value for value in (True, False) if prober.accepts(_probe_unit("user"), **{flag: value}))
            if values:
                flags.append((flag, values))
    return tuple(flags)


@lru_cache(maxsize=64)
def template_variables(text: str) -> frozenset[str]:
    """The variables a template reads without setting them (``messages``, ``bos_token``, ...)."""
    import jinja2.meta

    from .syntax import parse

    return frozenset(jinja2.meta.find_undeclared_variables(parse(text).ast))


# --- generation -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Plan:
    """How to generate cases: a shape, the weights of the three kinds of history
    (walks of the shape, irregular histories, random role sequences), and a length bound."""

    shape: Shape
    modes: tuple[int, int, int]
    max_turns: int
    soup_roles: tuple[str, ...] = ("user", "assistant", "system")


def generate_case(draw: _Draw, plan: Plan) -> dict[str, Any]:
    """One replayable case: ``{"messages", "tools", "add_generation_prompt", "kwargs"}``."""
    shape = plan.shape
    mode = draw.weighted(plan.modes)
    counter = [0]
    if mode == 2:
        messages = _soup(draw, plan)
    else:
        messages = [message for state, unit in _walk(draw, shape, plan.max_turns)
                    for message in _unit_messages(draw, unit, shape, counter, shape.forms[(state, unit)])]
        if mode == 1:
            messages = _irregular(draw, messages, plan, counter)
    tools = (_tool_definitions(draw) if shape.tools == "always" or (shape.tools == "sometimes" and draw.chance(30))
             else None)
    add_generation_prompt = draw.chance(50)
    kwargs = {**dict(shape.required), **{flag: draw.pick(values) for flag, values in shape.flags if draw.chance(50)}}
    return {"messages": messages, "tools": tools, "add_generation_prompt": add_generation_prompt, "kwargs": kwargs}


def _turns(draw: _Draw, max_turns: int) -> Iterator[None]:
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


def _walk(draw: _Draw, shape: Shape, max_turns: int) -> list[tuple[State, Unit]]:
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
        state = _after(state, unit)
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
def _message(draw: _Draw, role: str, shape: Shape, forms: Sequence[Form] | None = None) -> dict[str, Any]:
    forms = forms or shape.role_forms.get(role) or ("string",)
    message: dict[str, Any] = {"role": role, "content": _content(draw, forms)}
    if role == "assistant" and shape.reasoning and draw.chance(15):
        message[draw.pick(shape.reasoning)] = _text(draw)
    return message


def _unit_messages(draw: _Draw, unit: Unit, shape: Shape, counter: list[int],
                   forms: Sequence[Form] | None = None) -> list[dict[str, Any]]:
    if unit != "tool-exchange":
        return [_message(draw, unit, shape, forms)]
    calls = []
    for _ in range(1 + draw.weighted((6, 3, 1)[:shape.max_calls])):
        counter[0] += 1
        calls.append(_tool_call(draw, counter[0], shape.arguments or _ARGUMENT_FORMS))
    kind = draw.pick(shape.call_contents or _CALL_CONTENTS)
    assistant: dict[str, Any] = {"role": "assistant", "content": {"none": None, "empty": ""}.get(kind),
                                 "tool_calls": calls}
    if kind == "text":
        assistant["content"] = _text(draw)
    if shape.reasoning and draw.chance(15):
        assistant[draw.pick(shape.reasoning)] = _text(draw)
    return [assistant, *(_tool_result(draw, call) for call in calls)]


def _soup(draw: _Draw, plan: Plan) -> list[dict[str, Any]]:
    """Any sequence of the plan's plain roles: runs, assistant first, system anywhere."""
    return [_message(draw, draw.pick(plan.soup_roles), plan.shape) for _turn in _turns(draw, plan.max_turns)]


def _irregular(draw: _Draw, messages: list[dict[str, Any]], plan: Plan,
               counter: list[int]) -> list[dict[str, Any]]:
    """A well-formed history bent the way real clients and agent frameworks bend it: a retried
    or split turn (two messages of one role in a row), an assistant turn first, a late system
    message, a lost message, a developer message anywhere."""
    messages = list(messages)
    roles = plan.soup_roles
    for _ in range(1 + draw.chance(30)):
        kind = draw.weighted((6, 3, 1, 2, 1, *((2,) if "developer" in roles else ())))
        plain = [index for index, message in enumerate(messages)
                 if message["role"] in roles and not message.get("tool_calls")]
        if kind in (0, 1) and plain:
            index = draw.pick(plain)
            extra = (copy.deepcopy(messages[index]) if kind == 1
                     else _message(draw, messages[index]["role"], plan.shape))
            messages.insert(index + 1, extra)
        elif kind == 2 and "assistant" in roles:
            messages.insert(0, _message(draw, "assistant", plan.shape))
        elif kind == 3 and "system" in roles:
            messages.insert(1 + draw.below(len(messages)) if messages else 0, _message(draw, "system", plan.shape))
        elif kind == 5:
            messages.insert(draw.below(len(messages) + 1), _message(draw, "developer", plan.shape))
        elif len(messages) > 1:
            del messages[draw.below(len(messages))]
    return messages


# The mix templatekit.verify draws from: walks of the original's shape, irregular histories,
# random user/assistant/system sequences.
VERIFY_MODES = (45, 40, 15)
VERIFY_ROLES = ("user", "assistant", "system", "developer")
VERIFY_MAX_TURNS = 10


def verify_plan(inputs: TemplateInputs) -> Plan:
    """The plan ``templatekit.verify`` generates with for the original template ``inputs``."""
    return Plan(learn_shape(inputs), VERIFY_MODES, VERIFY_MAX_TURNS, VERIFY_ROLES)


def seeded_case(plan: Plan, seed: int, index: int) -> dict[str, Any]:
    """Example ``index`` of ``seed``: the same on every run and in every process."""
    import random

    return generate_case(RandomDraw(random.Random(f"templatekit-verify/{seed}/{index}")), plan)


def cases_for(template: str | ChatTemplate, examples: int, *, seed: int = 0,
              special_tokens: Mapping[str, str] | None = None, profile: Profile = DEFAULT_PROFILE
              ) -> list[dict[str, Any]]:
    """The first ``examples`` cases ``templatekit.verify`` checks for ``template`` with ``seed``
    (for benchmarks and for looking at what is generated)."""
    plan = verify_plan(template_inputs(template, special_tokens, profile))
    return [seeded_case(plan, seed, index) for index in range(examples)]


def repair(inputs: TemplateInputs, case: dict[str, Any]) -> dict[str, Any] | None:
    """``case`` if the template accepts it, else its longest accepted prefix (``None`` if none)."""
    if inputs.accepts(case):
        return case
    for end in range(len(case["messages"]) - 1, 0, -1):
        shorter = {**case, "messages": case["messages"][:end]}
        if inputs.accepts(shorter):
            return shorter
    return None


# --- public strategies ------------------------------------------------------------------------

def _invalid(message: str) -> Exception:
    from hypothesis.errors import InvalidArgument

    return InvalidArgument(message)


def _check_roles(roles: Sequence[str]) -> tuple[str, ...]:
    if isinstance(roles, str) or not roles:
        raise _invalid(f"roles must be a non-empty sequence of {', '.join(ROLES)}; got {roles!r}")
    unknown = [role for role in roles if role not in ROLES]
    if unknown:
        raise _invalid(f"unknown role(s) {', '.join(map(repr, unknown))}; expected some of {', '.join(ROLES)}")
    return tuple(role for role in ROLES if role in roles)


def _check_choice(name: str, value: Any, options: Sequence[str]) -> None:
    if value not in options:
        raise _invalid(f"{name} must be one of {', '.join(map(repr, options))}; got {value!r}")


def _check_count(name: str, value: Any, low: int = 1, high: int = 1000) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _invalid(f"{name} must be an integer from {low} to {high}; got {value!r}")


def _check_flag(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise _invalid(f"{name} must be True or False; got {value!r}")


def _plan(valid_for: str | ChatTemplate | None, roles: Sequence[str], tools: bool, content: ContentMode,
          max_turns: int, history: History) -> tuple[Plan, TemplateInputs | None]:
    roles = _check_roles(roles)
    _check_flag("tools", tools)
    _check_choice("content", content, CONTENT_MODES)
    _check_count("max_turns", max_turns)
    _check_choice("history", history, HISTORIES)
    soup_roles = tuple(role for role in ("user", "assistant", "system") if role in roles) or roles[:1]
    if valid_for is None:
        modes = {"any": (55, 30, 15), "alternating": (1, 0, 0), "irregular": (0, 70, 30)}[history]
        shape = default_shape().restricted(roles=roles, tools=tools, content=content)
        return Plan(shape, modes, max_turns, soup_roles), None
    if history != "any":
        raise _invalid("history= cannot be combined with valid_for=: the template decides the history's shape")
    if not isinstance(valid_for, str) and not hasattr(valid_for, "text"):
        raise _invalid(f"valid_for must be template text or a ChatTemplate; got {type(valid_for).__name__}")
    inputs = template_inputs(valid_for)
    shape = learn_shape(inputs).restricted(roles=roles, tools=tools, content=content)
    if not shape.edges.get(START):
        raise _invalid("valid_for: the template accepted none of the probe conversations with these options "
                       f"(roles={roles!r}, tools={tools!r}, content={content!r})")
    return Plan(shape, (1, 0, 0), max_turns, soup_roles), inputs


def cases(*, valid_for: str | ChatTemplate | None = None, roles: Sequence[str] = ROLES, tools: bool = True,
          content: ContentMode = "both", max_turns: int = 8, history: History = "any") -> SearchStrategy[dict]:
    """Whole render inputs: ``{"messages", "tools", "add_generation_prompt", "kwargs"}``.

    The same options as :func:`conversations`; ``tools`` is a list of tool definitions or
    ``None``, and ``kwargs`` varies the boolean variables the template reads
    (``enable_thinking``, ...).  The dict is the JSON that ``templatekit render --messages``
    replays.  Shrinks toward one short user message, no tools, ``add_generation_prompt``
    off and no kwargs.
    """
    from hypothesis import strategies as st

    plan, inputs = _plan(valid_for, roles, tools, content, max_turns, history)

    @st.composite
    def build(draw: Callable[[Any], Any]) -> dict[str, Any]:
        case = generate_case(_HypothesisDraw(draw), plan)
        if inputs is not None:
            from hypothesis import reject

            repaired = repair(inputs, case)
            if repaired is None:
                reject()
            case = repaired
        return case

    return build()


def conversations(*, valid_for: str | ChatTemplate | None = None, roles: Sequence[str] = ROLES,
                  tools: bool = True, content: ContentMode = "both", max_turns: int = 8,
                  history: History = "any") -> SearchStrategy[list[dict]]:
    """Lists of chat messages as clients send them.

    ``valid_for``
        template text or a :class:`~templatekit.sources.ChatTemplate`: only conversations it
        renders without raising (built from what its checks demand, see the module docs).
    ``roles``
        the roles that may appear (default: all of user, assistant, system, developer, tool).
    ``tools``
        whether assistant messages may carry ``tool_calls`` followed by tool results.
    ``content``
        ``"string"``, ``"parts"`` (lists of text and image parts) or ``"both"``.
    ``max_turns``
        the usual maximum number of turns (a turn is a message, or a tool call with its
        results); about one conversation in 25 is a long history beyond it.
    ``history``
        without ``valid_for``: ``"alternating"`` (well-formed: optional system first, user and
        assistant alternate), ``"irregular"`` (what retries and lost connections produce: two
        messages of one role in a row, assistant first, a late system message, a lost turn,
        or any sequence of user/assistant/system), or ``"any"`` (both).

    Shrinks toward fewer turns, user before assistant before system, string content of one
    plain word, and no tool calls or reasoning fields.
    """
    return cases(valid_for=valid_for, roles=roles, tools=tools, content=content, max_turns=max_turns,
                 history=history).map(lambda case: case["messages"])


def messages(*, roles: Sequence[str] = ROLES, content: ContentMode = "both", tools: bool = True,
             reasoning: bool = True) -> SearchStrategy[dict]:
    """Single messages of the given ``roles``: an assistant message may carry ``tool_calls``
    (``tools``) and a reasoning field (``reasoning``); a tool message carries a
    ``tool_call_id``.  Shrinks toward ``{"role": <first role>, "content": "hi"}``."""
    from hypothesis import strategies as st

    roles = _check_roles(roles)
    _check_choice("content", content, CONTENT_MODES)
    _check_flag("tools", tools)
    _check_flag("reasoning", reasoning)
    shape = replace(default_shape().restricted(roles=ROLES, tools=True, content=content),
                    reasoning=_REASONING_FIELDS if reasoning else ())

    @st.composite
    def build(draw: Callable[[Any], Any]) -> dict[str, Any]:
        choose = _HypothesisDraw(draw)
        role = choose.pick(roles)
        if role == "tool":
            return _tool_result(choose, _tool_call(choose, 1, _ARGUMENT_FORMS))
        if role == "assistant" and tools and choose.chance(25):
            return _unit_messages(choose, "tool-exchange", shape, [0])[0]
        return _message(choose, role, shape)

    return build()


def tool_calls(*, max_calls: int = 3, arguments: Literal["object", "string", "both"] = "both"
               ) -> SearchStrategy[list[dict]]:
    """The ``tool_calls`` list of an assistant message: 1 to ``max_calls`` calls with ids
    ``call00001``..., arguments as a JSON object, a JSON string, or ``"both"``.
    Shrinks toward one call of ``get_weather`` with object arguments."""
    from hypothesis import strategies as st

    _check_count("max_calls", max_calls, 1, 100)
    _check_choice("arguments", arguments, ("object", "string", "both"))
    forms = _ARGUMENT_FORMS if arguments == "both" else (arguments,)

    @st.composite
    def build(draw: Callable[[Any], Any]) -> list[dict[str, Any]]:
        choose = _HypothesisDraw(draw)
        return [_tool_call(choose, number, forms) for number in range(1, 2 + choose.below(max_calls))]

    return build()


def tool_definitions() -> SearchStrategy[list[dict]]:
    """The ``tools`` list passed to a template: one to four function definitions (JSON
    schema parameters).  Shrinks toward the single ``get_weather`` definition."""
    from hypothesis import strategies as st

    @st.composite
    def build(draw: Callable[[Any], Any]) -> list[dict[str, Any]]:
        return _tool_definitions(_HypothesisDraw(draw))

    return build()
