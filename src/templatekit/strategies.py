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

The generators (:mod:`templatekit.generation`, private) are shared with ``templatekit.verify``,
which drives them with a seeded :class:`random.Random`; both draw from the same distribution.
Hypothesis is imported only when a strategy is built, and ``valid_for=T`` renders nothing then:
the probes run when the strategy first draws (an option ``T`` cannot satisfy is reported then).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Literal

from .generation import (
    ARGUMENT_FORMS,
    REASONING_DRAW_ORDER,
    START,
    Draw,
    Plan,
    default_shape,
    draw_message,
    draw_tool_call,
    draw_tool_definitions,
    draw_tool_result,
    draw_unit,
    generate_case,
)

if TYPE_CHECKING:
    from hypothesis.strategies import SearchStrategy

    from .probes.harness import TemplateInputs
    from .sources import ChatTemplate

__all__ = [
    "ROLES",
    "CONTENT_MODES",
    "HISTORIES",
    "messages",
    "tool_calls",
    "tool_definitions",
    "conversations",
    "cases",
]

Role = Literal["user", "assistant", "system", "developer", "tool"]
ContentMode = Literal["string", "parts", "both"]
History = Literal["any", "alternating", "irregular"]

ROLES: tuple[Role, ...] = ("user", "assistant", "system", "developer", "tool")
CONTENT_MODES: tuple[ContentMode, ...] = ("string", "parts", "both")
HISTORIES: tuple[History, ...] = ("any", "alternating", "irregular")


# --- choices ---------------------------------------------------------------------------------


class _HypothesisDraw(Draw):
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


# --- public strategies ------------------------------------------------------------------------


def _repair(inputs: TemplateInputs, case: dict[str, Any]) -> dict[str, Any] | None:
    """``case`` if the template accepts it, else its longest accepted prefix (``None`` if none)."""
    if inputs.accepts(case):
        return case
    for end in range(len(case["messages"]) - 1, 0, -1):
        shorter = {**case, "messages": case["messages"][:end]}
        if inputs.accepts(shorter):
            return shorter
    return None


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


def _check_options(
    valid_for: str | ChatTemplate | None,
    roles: Sequence[str],
    tools: bool,
    content: ContentMode,
    max_turns: int,
    history: History,
) -> tuple[str, ...]:
    """Every option checked up front (``InvalidArgument``); the roles, in :data:`ROLES` order."""
    roles = _check_roles(roles)
    _check_flag("tools", tools)
    _check_choice("content", content, CONTENT_MODES)
    _check_count("max_turns", max_turns)
    _check_choice("history", history, HISTORIES)
    if valid_for is not None and history != "any":
        raise _invalid("history= cannot be combined with valid_for=: the template decides the history's shape")
    if valid_for is not None and not isinstance(valid_for, str) and not hasattr(valid_for, "text"):
        raise _invalid(f"valid_for must be template text or a ChatTemplate; got {type(valid_for).__name__}")
    return roles


def _learned_plan(
    valid_for: str | ChatTemplate,
    roles: tuple[str, ...],
    tools: bool,
    content: ContentMode,
    max_turns: int,
    soup_roles: tuple[str, ...],
) -> tuple[Plan, TemplateInputs]:
    """The plan for ``valid_for``, learned by rendering it (when the strategy first draws)."""
    from .probes.harness import template_inputs
    from .probes.shape import learn_shape

    inputs = template_inputs(valid_for)
    shape = learn_shape(inputs).restricted(roles=roles, tools=tools, content=content)
    if not shape.edges.get(START):
        raise _invalid(
            "valid_for: the template accepted none of the probe conversations with these options "
            f"(roles={roles!r}, tools={tools!r}, content={content!r})"
        )
    return Plan(shape, (1, 0, 0), max_turns, soup_roles), inputs


def _built(plan: Plan, inputs: TemplateInputs | None) -> SearchStrategy[dict]:
    """Cases generated by ``plan``; with ``inputs``, repaired to what that template accepts."""
    from hypothesis import strategies as st

    @st.composite
    def build(draw: Callable[[Any], Any]) -> dict[str, Any]:
        case = generate_case(_HypothesisDraw(draw), plan)
        if inputs is not None:
            from hypothesis import reject

            repaired = _repair(inputs, case)
            if repaired is None:
                reject()
            case = repaired
        return case

    return build()


def cases(
    *,
    valid_for: str | ChatTemplate | None = None,
    roles: Sequence[str] = ROLES,
    tools: bool = True,
    content: ContentMode = "both",
    max_turns: int = 8,
    history: History = "any",
) -> SearchStrategy[dict]:
    """Whole render inputs: ``{"messages", "tools", "add_generation_prompt", "kwargs"}``.

    The same options as :func:`conversations`; ``tools`` is a list of tool definitions or
    ``None``, and ``kwargs`` varies the boolean variables the template reads
    (``enable_thinking``, ...).  The dict is the JSON that ``templatekit render --messages``
    replays.  Shrinks toward one short user message, no tools, ``add_generation_prompt``
    off and no kwargs.
    """
    from hypothesis import strategies as st

    roles = _check_options(valid_for, roles, tools, content, max_turns, history)
    soup_roles = tuple(role for role in ("user", "assistant", "system") if role in roles) or roles[:1]
    if valid_for is None:
        modes = {"any": (55, 30, 15), "alternating": (1, 0, 0), "irregular": (0, 70, 30)}[history]
        shape = default_shape().restricted(roles=roles, tools=tools, content=content)
        return _built(Plan(shape, modes, max_turns, soup_roles), None)
    return st.deferred(lambda: _built(*_learned_plan(valid_for, roles, tools, content, max_turns, soup_roles)))


def conversations(
    *,
    valid_for: str | ChatTemplate | None = None,
    roles: Sequence[str] = ROLES,
    tools: bool = True,
    content: ContentMode = "both",
    max_turns: int = 8,
    history: History = "any",
) -> SearchStrategy[list[dict]]:
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
    return cases(
        valid_for=valid_for, roles=roles, tools=tools, content=content, max_turns=max_turns, history=history
    ).map(lambda case: case["messages"])


def messages(
    *, roles: Sequence[str] = ROLES, content: ContentMode = "both", tools: bool = True, reasoning: bool = True
) -> SearchStrategy[dict]:
    """Single messages of the given ``roles``: an assistant message may carry ``tool_calls``
    (``tools``) and a reasoning field (``reasoning``); a tool message carries a
    ``tool_call_id``.  Shrinks toward ``{"role": <first role>, "content": "hi"}``."""
    from hypothesis import strategies as st

    roles = _check_roles(roles)
    _check_choice("content", content, CONTENT_MODES)
    _check_flag("tools", tools)
    _check_flag("reasoning", reasoning)
    shape = replace(
        default_shape().restricted(roles=ROLES, tools=True, content=content),
        reasoning=REASONING_DRAW_ORDER if reasoning else (),
    )

    @st.composite
    def build(draw: Callable[[Any], Any]) -> dict[str, Any]:
        choose = _HypothesisDraw(draw)
        role = choose.pick(roles)
        if role == "tool":
            return draw_tool_result(choose, draw_tool_call(choose, 1, ARGUMENT_FORMS))
        if role == "assistant" and tools and choose.chance(25):
            return draw_unit(choose, "tool-exchange", shape, [0])[0]
        return draw_message(choose, role, shape)

    return build()


def tool_calls(
    *, max_calls: int = 3, arguments: Literal["object", "string", "both"] = "both"
) -> SearchStrategy[list[dict]]:
    """The ``tool_calls`` list of an assistant message: 1 to ``max_calls`` calls with ids
    ``call00001``..., arguments as a JSON object, a JSON string, or ``"both"``.
    Shrinks toward one call of ``get_weather`` with object arguments."""
    from hypothesis import strategies as st

    _check_count("max_calls", max_calls, 1, 100)
    _check_choice("arguments", arguments, ("object", "string", "both"))
    forms = ARGUMENT_FORMS if arguments == "both" else (arguments,)

    @st.composite
    def build(draw: Callable[[Any], Any]) -> list[dict[str, Any]]:
        choose = _HypothesisDraw(draw)
        return [draw_tool_call(choose, number, forms) for number in range(1, 2 + choose.below(max_calls))]

    return build()


def tool_definitions() -> SearchStrategy[list[dict]]:
    """The ``tools`` list passed to a template: one to four function definitions (JSON
    schema parameters).  Shrinks toward the single ``get_weather`` definition."""
    from hypothesis import strategies as st

    @st.composite
    def build(draw: Callable[[Any], Any]) -> list[dict[str, Any]]:
        return draw_tool_definitions(_HypothesisDraw(draw))

    return build()
