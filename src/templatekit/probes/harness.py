"""The probe harness: one template compiled for probing, and the vocabulary every probe shares.

The placeholder special tokens, the probe tool and tool call, what one probe render did
(:class:`Outcome` of a :class:`~templatekit.cases.Case`) and the one answer to "does the
template accept this input": :meth:`Harness.run` for probes that need to know which raise site fired,
:meth:`TemplateInputs.accepts` for renders as transformers or a server renders them.

A harness compiles the template once (:func:`templatekit.syntax.numbered_code`, the same pass
that finds its undeclared variables) with each ``raise_exception(...)`` call numbered, so a
probe *knows* which site fired instead of guessing from the message.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from ..analysis import Analysis, analyze_text, random_sources
from ..cases import Case
from ..environment import (
    DEFAULT_PROFILE,
    Profile,
    TemplateRaise,
    fixed_clock,
    make_environment,
    render,
    render_compiled,
)
from ..errors import RenderBudgetExceeded, TemplatekitError
from ..records import Record
from ..syntax import ParsedTemplate, is_raise_call, numbered_code

if TYPE_CHECKING:
    from datetime import datetime

    from ..sources import ChatTemplate

__all__ = [
    "PLACEHOLDER_TOKENS",
    "DEFAULT_SPECIAL_TOKENS",
    "fixed_now",
    "PROBE_TOOL",
    "TOOL_FORMATS",
    "CALL_ID",
    "HI",
    "probe_call",
    "Outcome",
    "Harness",
    "harness_for",
    "text_harness",
    "TemplateInputs",
    "template_inputs",
]

PLACEHOLDER_TOKENS: Mapping[str, str] = {
    "bos_token": "<tk:bos>",
    "eos_token": "<tk:eos>",
    "unk_token": "<tk:unk>",
    "pad_token": "<tk:pad>",
}
"""Special tokens probes use when the source does not say (a bare .jinja file): they read as
placeholders in a finding's text."""

DEFAULT_SPECIAL_TOKENS: Mapping[str, str] = {
    "bos_token": "<s>",
    "eos_token": "</s>",
    "unk_token": "<unk>",
    "pad_token": "<pad>",
}
"""Special tokens verification and the strategies render with when the source does not say:
real tokens, which a tokenizer encodes as special tokens in a counterexample's token diff."""


def fixed_now() -> datetime:
    """The clock every render of a generated case uses (reproducible output)."""
    from datetime import datetime  # on first use: a lint never renders generated cases

    return datetime(2025, 1, 15, 12, 0, 0)


PROBE_TOOL: Mapping[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the weather.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
"""The tool definition probes pass (OpenAI's function-tool shape)."""

TOOL_FORMATS: Mapping[str, Mapping[str, Any]] = {
    'OpenAI ({"type": "function", "function": {"name", "description", "parameters"}})': PROBE_TOOL,
    'a bare function ({"name", "description", "parameters"})': PROBE_TOOL["function"],
    'Cohere ({"name", "description", "parameter_definitions"})': {
        "name": "get_weather",
        "description": "Get the weather.",
        "parameter_definitions": {"city": {"description": "The city.", "type": "str", "required": True}},
    },
}
"""Ways clients and model cards write one tool definition, the OpenAI format first."""

CALL_ID = "call00001"
"""The id of the probe tool call: nine alphanumerics, what Mistral's templates insist on."""

HI: Mapping[str, Any] = {"role": "user", "content": "hi"}
"""The plainest probe message."""

_UNDEFINED = re.compile(r"UndefinedError: '([A-Za-z_][A-Za-z0-9_]*)' is undefined$")


def probe_call(call_id: str | None = CALL_ID, arguments: Any = None) -> dict[str, Any]:
    """A call of the probe tool (``get_weather`` for Paris), with ``call_id`` unless ``None``."""
    call: dict[str, Any] = {
        "type": "function",
        "function": {"name": "get_weather", "arguments": {"city": "Paris"} if arguments is None else arguments},
    }
    if call_id is not None:
        call = {"id": call_id, **call}
    return call


# --- conversations -------------------------------------------------------------------------


class Outcome(Record):
    """What one render did: the output, or the raise site that fired, or another error."""

    output: str | None = None
    site: int | None = None
    message: str | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.output is not None

    @property
    def signature(self) -> tuple[Any, ...]:
        """Equal for outcomes the search treats as the same state."""
        if self.output is not None:
            return ("output", self.output)
        return ("raise", self.site, self.message) if self.error is None else ("error", self.error)


class _SiteRaise(TemplateRaise):
    def __init__(self, site: int | None, message: Any) -> None:
        super().__init__(message)
        self.site = site


# --- the harness ---------------------------------------------------------------------------


@contextmanager
def _seeded_random() -> Iterator[None]:
    """Python's shared random generator seeded for one render, then restored: a template's
    ``random`` filter and ``lipsum`` draw the same on every probe (TK402 reports them), so
    findings that compare two renders never depend on chance."""
    state = random.getstate()
    random.seed(0)
    try:
        yield
    finally:
        random.setstate(state)


class Harness:
    """One template compiled for probing, with the special tokens it renders with."""

    def __init__(
        self,
        parsed: ParsedTemplate,
        analysis: Analysis,
        special_tokens: Mapping[str, str] | None = None,
        profile: Profile = DEFAULT_PROFILE,
    ) -> None:
        self.parsed = parsed
        self.analysis = analysis
        self.special_tokens = {**PLACEHOLDER_TOKENS, **(special_tokens or {})}
        environment = make_environment(profile)
        site_of_call = _site_numbers(parsed, analysis)

        def raise_at_site(number: int, *args: Any, **kwargs: Any) -> None:
            raise _SiteRaise(site_of_call.get(number), args[0] if args else None)

        self.template = environment.template_class.from_code(
            environment,
            numbered_code(parsed, profile).code,
            environment.make_globals({"raise_exception": raise_at_site}),
            None,
        )
        self.renders = 0
        self._draws_randomly = bool(random_sources(parsed))
        self.required_kwargs = self._find_required_kwargs()
        self.default_tools = self._find_default_tools()

    def _find_required_kwargs(self) -> dict[str, str]:
        """Caller variables the template cannot render without (``'functions' is undefined``).

        Servers pass such variables through ``chat_template_kwargs``; probes pass a string.
        """
        required: dict[str, str] = {}
        undeclared = self.analysis.undeclared
        for _ in range(len(undeclared)):
            outcome = self.run(Case((HI,), kwargs=required))
            match = _UNDEFINED.match(outcome.error or "")
            if match is None or match.group(1) not in undeclared or match.group(1) in required:
                break
            required[match.group(1)] = f"tk-{match.group(1)}"
        return required

    def _find_default_tools(self) -> tuple[Mapping[str, Any], ...] | None:
        """The tools to pass when a probe passes none: ``None``, unless ``[user]`` fails without
        tools and renders with them (a ``tool_use`` template, which servers select only for
        requests with tools); then one tool in the first format of :data:`TOOL_FORMATS` it renders."""
        if self.run(Case((HI,), kwargs=self.required_kwargs)).error is None:
            return None
        for tool in TOOL_FORMATS.values():
            if self.run(Case((HI,), (tool,), kwargs=self.required_kwargs)).ok:
                return (tool,)
        return None

    def witness(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        tools: Sequence[Mapping[str, Any]] | None = None,
        add_generation_prompt: bool = False,
        kwargs: Mapping[str, Any] | None = None,
    ) -> Case:
        """A witness :class:`~templatekit.cases.Case` that also carries the variables (and, for a
        template that needs them, the tools) the template requires."""
        return Case(
            tuple(messages),
            tuple(tools) if tools is not None else self.default_tools,
            add_generation_prompt,
            {**self.required_kwargs, **(kwargs or {})},
        )

    def run(self, witness: Case, *, now: datetime | None = None) -> Outcome:
        """Render ``witness`` (with ``strftime_now`` fixed at ``now``, if given); never raises."""
        self.renders += 1
        variables = {
            "messages": list(witness.messages),
            "tools": _list_or_none(witness.tools),
            "documents": None,
            "add_generation_prompt": witness.add_generation_prompt,
            **self.special_tokens,
            **witness.kwargs,
        }
        try:
            with (
                fixed_clock(now) if now is not None else nullcontext(),
                _seeded_random() if self._draws_randomly else nullcontext(),
            ):
                output = render_compiled(self.template, variables)
        except RenderBudgetExceeded as error:
            error.witness = witness  # type: ignore[attr-defined] - the conversation the budget ran out on
            raise
        except _SiteRaise as error:
            return Outcome(site=error.site, message=str(error.template_message))
        except RecursionError:
            return Outcome(error="RecursionError")
        except Exception as error:  # noqa: BLE001 - any template error is an outcome to report
            return Outcome(error=f"{type(error).__name__}: {error}")
        return Outcome(output=output)

    def describe(self, outcome: Outcome) -> str:
        """``raise_exception at line 12: 'message'`` / ``UndefinedError: ...`` / ``renders``."""
        if outcome.ok:
            return "renders"
        if outcome.error is not None:
            return f"fails with {outcome.error}"
        line = self.analysis.sites[outcome.site].line if outcome.site is not None else "?"
        return f"raise_exception at line {line}: {outcome.message!r}"


def _list_or_none(items: tuple[Mapping[str, Any], ...] | None) -> list[Mapping[str, Any]] | None:
    return list(items) if items is not None else None


def _site_numbers(parsed: ParsedTemplate, analysis: Analysis) -> dict[int, int]:
    """Position of each raise call in document order -> the analysis site it is."""
    by_start = {site.span.start: site.index for site in analysis.sites if site.span is not None}
    unmatched = [site for site in analysis.sites if site.span is None]
    numbers: dict[int, int] = {}
    for number, call in enumerate(node for node in parsed.nodes if is_raise_call(node)):
        span = parsed.raise_calls.get(id(call))
        if span is not None and span.start in by_start:
            numbers[number] = by_start[span.start]
            continue
        for site in unmatched:
            if site.line == call.lineno:
                numbers[number] = site.index
                unmatched.remove(site)
                break
    return numbers


@lru_cache(maxsize=16)
def _cached_harness(
    parsed: ParsedTemplate, analysis: Analysis, tokens: tuple[tuple[str, str], ...], profile: Profile
) -> Harness:
    return Harness(parsed, analysis, dict(tokens), profile)


def harness_for(
    parsed: ParsedTemplate,
    analysis: Analysis,
    special_tokens: Mapping[str, str] | None = None,
    profile: Profile = DEFAULT_PROFILE,
) -> Harness:
    """The (cached) :class:`Harness` of a parsed template."""
    return _cached_harness(parsed, analysis, tuple(sorted((special_tokens or {}).items())), profile)


def text_harness(
    text: str, special_tokens: Mapping[str, str] | None = None, profile: Profile = DEFAULT_PROFILE
) -> Harness:
    """The (cached) :class:`Harness` of a template's text, parsed and analysed once."""
    return _text_harness(text, tuple(sorted((special_tokens or {}).items())), profile)


@lru_cache(maxsize=16)
def _text_harness(text: str, tokens: tuple[tuple[str, str], ...], profile: Profile) -> Harness:
    return Harness(*analyze_text(text), dict(tokens), profile)


# --- renders as servers render --------------------------------------------------------------


@lru_cache(maxsize=64)
def _draws_randomly(text: str) -> bool:
    """Whether ``text`` uses the ``random`` filter or ``lipsum`` (one that does not parse: no, render says why)."""
    if "random" not in text and "lipsum" not in text:
        return False
    try:
        return bool(random_sources(analyze_text(text)[0]))
    except TemplatekitError:
        return False


class TemplateInputs(Record):
    """A template's text and the special tokens, profile and server it renders with
    (``server=None``: as transformers; else through that server's pipeline, :mod:`templatekit.servers`)."""

    text: str
    special_tokens: tuple[tuple[str, str], ...]
    profile: Profile = DEFAULT_PROFILE
    server: str | None = None

    def render(self, case: Mapping[str, Any], messages: Sequence[Mapping[str, Any]] | None = None) -> str:
        """Render a case (``messages`` replaces the case's own messages when given); a template's
        ``random`` filter and ``lipsum`` draw the same on every render, as in probes."""
        with _seeded_random() if _draws_randomly(self.text) else nullcontext():
            return self._render(case, messages)

    def _render(self, case: Mapping[str, Any], messages: Sequence[Mapping[str, Any]] | None) -> str:
        if self.server is None:
            return render(
                self.text,
                case["messages"] if messages is None else messages,
                tools=case.get("tools"),
                add_generation_prompt=bool(case.get("add_generation_prompt")),
                special_tokens=dict(self.special_tokens),
                now=fixed_now(),
                profile=self.profile,
                **case.get("kwargs", {}),
            )
        from ..servers import render as render_as_server

        return render_as_server(
            self.text,
            case["messages"] if messages is None else messages,
            server=self.server,
            tools=case.get("tools"),
            add_generation_prompt=bool(case.get("add_generation_prompt")),
            special_tokens=dict(self.special_tokens),
            now=fixed_now(),
            **case.get("kwargs", {}),
        )

    def attempt(
        self, case: Mapping[str, Any], messages: Sequence[Mapping[str, Any]] | None = None
    ) -> tuple[str | None, BaseException | None]:
        """:meth:`render`, never raising: the output, or the error the template failed with."""
        try:
            return self.render(case, messages), None
        except Exception as error:  # noqa: BLE001 - a template's failure is an outcome; rendering is sandboxed
            return None, error

    def accepts(self, case: Mapping[str, Any]) -> bool:
        """Whether the template renders ``case`` (any failure is a rejection)."""
        return self.attempt(case)[1] is None


def template_inputs(
    template: str | ChatTemplate,
    special_tokens: Mapping[str, str] | None = None,
    profile: Profile = DEFAULT_PROFILE,
    server: str | None = None,
) -> TemplateInputs:
    """Text, special tokens (given, else the template's own, else defaults), profile and server."""
    text = template if isinstance(template, str) else template.text
    tokens = (
        special_tokens or (None if isinstance(template, str) else template.special_tokens) or DEFAULT_SPECIAL_TOKENS
    )
    return TemplateInputs(text, tuple(sorted(tokens.items())), profile, server)
