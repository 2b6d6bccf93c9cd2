"""Rendering probes: witnesses for raise sites, capabilities, silent drops, clock and tokens.

Every probe renders in the server-faithful sandbox of :mod:`templatekit.environment`.  The
template is compiled once (:func:`templatekit.syntax.numbered_code`, the same pass that finds
its undeclared variables) with each ``raise_exception(...)`` call numbered, so a probe
*knows* which site fired instead of guessing from the message.

Witness search is breadth-first over conversation size, so the first conversation found
for a site has as few messages as the explored space allows.  The messages, tools and
keyword arguments it tries come from the site's path condition and the template's own
string constants; prefixes whose outcome (output text, or the site that fired) was
already seen are not extended again, which keeps the search small.
"""

from __future__ import annotations

import itertools
import json
import os
import re
from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from datetime import datetime
from functools import lru_cache
from types import MappingProxyType
from typing import Any, NamedTuple

import jinja2.nodes as nodes

from .analysis import Analysis, RaiseSite
from .analysis import constant_strings
from .environment import DEFAULT_PROFILE, Profile, TemplateRaise, fixed_clock, make_environment, render_budget
from .errors import RenderBudgetExceeded
from .syntax import ParsedTemplate, is_raise_call, iter_nodes, numbered_code

__all__ = [
    "DEFAULT_BUDGET",
    "MAX_MESSAGES",
    "PLACEHOLDER_TOKENS",
    "PROBE_TOOL",
    "Capability",
    "Drop",
    "Harness",
    "Outcome",
    "Witness",
    "capabilities",
    "clock_dependence",
    "compared_roles",
    "eos_after_assistant",
    "find_witnesses",
    "harness_for",
    "leading_bos_count",
    "silent_drops",
    "template_nodes",
    "text_harness",
    "uses_name",
]

DEFAULT_BUDGET = 1500
"""Renders the witness search may spend on one template before it calls the rest unreachable."""

MAX_MESSAGES = 4
"""The largest conversation the witness search tries."""

PLACEHOLDER_TOKENS: Mapping[str, str] = {
    "bos_token": "<tk:bos>", "eos_token": "<tk:eos>", "unk_token": "<tk:unk>", "pad_token": "<tk:pad>",
}
"""Special tokens used when the source does not say (a bare .jinja file)."""

_STANDARD_NAMES = frozenset({
    "messages", "tools", "documents", "add_generation_prompt", "raise_exception", "strftime_now",
    "namespace", "range", "dict", "lipsum", "cycler", "joiner", "loop", "true", "false", "none",
    "True", "False", "None",
})
_CLOCKS = (datetime(2024, 1, 2, 3, 4, 5), datetime(2031, 11, 12, 13, 14, 15))
_QUOTED = re.compile(r"'((?:[^'\\]|\\.)*)'|\"((?:[^\"\\]|\\.)*)\"")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_UNDEFINED = re.compile(r"UndefinedError: '([A-Za-z_][A-Za-z0-9_]*)' is undefined$")


# --- conversations -------------------------------------------------------------------------

class Witness(NamedTuple):
    """A concrete input: what a server would pass to the template.

    ``to_json()`` is the file format ``templatekit render --messages FILE`` replays.
    """

    messages: tuple[Mapping[str, Any], ...]
    tools: tuple[Mapping[str, Any], ...] | None = None
    add_generation_prompt: bool = False
    kwargs: Mapping[str, Any] = MappingProxyType({})

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps({
            "messages": list(self.messages),
            "tools": list(self.tools) if self.tools is not None else None,
            "add_generation_prompt": self.add_generation_prompt,
            "kwargs": dict(self.kwargs),
        }))

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)

    def describe(self) -> str:
        """A short human summary: ``[user, user]``, plus tools and keyword arguments if any."""
        roles = ", ".join(_describe_message(message) for message in self.messages)
        extras = []
        if self.tools is not None:
            extras.append(f"{len(self.tools)} tool{'s' if len(self.tools) != 1 else ''}")
        if self.add_generation_prompt:
            extras.append("add_generation_prompt")
        extras.extend(f"{key}={json.dumps(value)}" for key, value in self.kwargs.items())
        return f"[{roles}]" + (f" with {', '.join(extras)}" if extras else "")


def _describe_message(message: Mapping[str, Any]) -> str:
    role = str(message.get("role"))
    notes = []
    content = message.get("content", "")
    if content is None:
        notes.append("content null")
    elif isinstance(content, list):
        kinds = ",".join(str(part.get("type", "?")) if isinstance(part, Mapping) else "?" for part in content)
        notes.append(f"parts {kinds}")
    elif not isinstance(content, str):
        notes.append(f"content {type(content).__name__}")
    if "tool_calls" in message:
        notes.append(f"{len(message['tool_calls'])} tool call{'s' if len(message['tool_calls']) != 1 else ''}")
    notes.extend(key for key in message if key not in ("role", "content", "tool_calls"))
    return role + (f" ({'; '.join(notes)})" if notes else "")


class Outcome(NamedTuple):
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

class Harness:
    """One template compiled for probing, with the special tokens it renders with."""

    def __init__(self, parsed: ParsedTemplate, analysis: Analysis,
                 special_tokens: Mapping[str, str] | None = None, profile: Profile = DEFAULT_PROFILE) -> None:
        self.parsed = parsed
        self.analysis = analysis
        self.special_tokens = {**PLACEHOLDER_TOKENS, **(special_tokens or {})}
        environment = make_environment(profile)
        site_of_call = _site_numbers(parsed, analysis)

        def raise_at_site(number: int, *args: Any, **kwargs: Any) -> None:
            raise _SiteRaise(site_of_call.get(number), args[0] if args else None)

        self.template = environment.template_class.from_code(
            environment, numbered_code(parsed, profile).code,
            environment.make_globals({"raise_exception": raise_at_site}), None)
        self.renders = 0
        self.required_kwargs = self._find_required_kwargs()
        self.default_tools = self._find_default_tools()

    def _find_required_kwargs(self) -> dict[str, str]:
        """Caller variables the template cannot render without (``'functions' is undefined``).

        Servers pass such variables through ``chat_template_kwargs``; probes pass a string.
        """
        required: dict[str, str] = {}
        undeclared = self.analysis.undeclared
        for _ in range(len(undeclared)):
            outcome = self.run(Witness(({"role": "user", "content": "hi"},), kwargs=required))
            match = _UNDEFINED.match(outcome.error or "")
            if match is None or match.group(1) not in undeclared or match.group(1) in required:
                break
            required[match.group(1)] = f"tk-{match.group(1)}"
        return required

    def _find_default_tools(self) -> tuple[Mapping[str, Any], ...] | None:
        """The tools to pass when a probe passes none: ``None``, unless ``[user]`` fails without
        tools and renders with them (a ``tool_use`` template, which servers select only for
        requests with tools); then one tool in the first format of :data:`TOOL_FORMATS` it renders."""
        user = ({"role": "user", "content": "hi"},)
        if self.run(Witness(user, kwargs=self.required_kwargs)).error is None:
            return None
        for tool in TOOL_FORMATS.values():
            if self.run(Witness(user, (tool,), kwargs=self.required_kwargs)).ok:
                return (tool,)
        return None

    def witness(self, messages: Sequence[Mapping[str, Any]], *, tools: Sequence[Mapping[str, Any]] | None = None,
                add_generation_prompt: bool = False, kwargs: Mapping[str, Any] | None = None) -> Witness:
        """A :class:`Witness` that also carries the variables (and, for a template that needs
        them, the tools) the template requires."""
        return Witness(tuple(messages), tuple(tools) if tools is not None else self.default_tools,
                       add_generation_prompt, {**self.required_kwargs, **(kwargs or {})})

    def run(self, witness: Witness, *, now: datetime | None = None) -> Outcome:
        """Render ``witness`` (with ``strftime_now`` fixed at ``now``, if given); never raises."""
        self.renders += 1
        variables = {"messages": list(witness.messages), "tools": _list_or_none(witness.tools), "documents": None,
                     "add_generation_prompt": witness.add_generation_prompt, **self.special_tokens, **witness.kwargs}
        try:
            with fixed_clock(now) if now is not None else nullcontext():
                # Template.render minus jinja2's traceback rewriting on errors (same message): a
                # raising render, the common outcome of a probe, then costs a quarter
                template = self.template
                with render_budget():
                    output = template.environment.concat(template.root_render_func(template.new_context(variables)))
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
    for number, call in enumerate(node for node in template_nodes(parsed) if is_raise_call(node)):
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
def _cached_harness(parsed: ParsedTemplate, analysis: Analysis, tokens: tuple[tuple[str, str], ...],
                    profile: Profile) -> Harness:
    return Harness(parsed, analysis, dict(tokens), profile)


def harness_for(parsed: ParsedTemplate, analysis: Analysis, special_tokens: Mapping[str, str] | None = None,
                profile: Profile = DEFAULT_PROFILE) -> Harness:
    """The (cached) :class:`Harness` of a parsed template."""
    return _cached_harness(parsed, analysis, tuple(sorted((special_tokens or {}).items())), profile)


def text_harness(text: str, special_tokens: Mapping[str, str] | None = None,
                 profile: Profile = DEFAULT_PROFILE) -> Harness:
    """The (cached) :class:`Harness` of a template's text, parsed and analysed once."""
    return _text_harness(text, tuple(sorted((special_tokens or {}).items())), profile)


@lru_cache(maxsize=16)
def _text_harness(text: str, tokens: tuple[tuple[str, str], ...], profile: Profile) -> Harness:
    from .analysis import analyze
    from .syntax import parse

    parsed = parse(text)
    return Harness(parsed, analyze(parsed), dict(tokens), profile)


# --- witness search ------------------------------------------------------------------------

def find_witnesses(parsed: ParsedTemplate, analysis: Analysis, *, budget: int = DEFAULT_BUDGET,
                   special_tokens: Mapping[str, str] | None = None,
                   max_messages: int = MAX_MESSAGES) -> dict[int, Witness | None]:
    """For each raise site, a minimal conversation that fires exactly that site, or ``None``.

    ``None`` means no conversation of up to ``max_messages`` messages made of the
    ingredients the site's condition suggests fired it within ``budget`` renders: the site
    may be dead code, or need an input the search does not build.
    """
    harness = harness_for(parsed, analysis, special_tokens)
    return _WitnessSearch(harness, budget, max_messages).run()


class _WitnessSearch:
    """Breadth-first search over conversation size, one alphabet and set of contexts per site."""

    def __init__(self, harness: Harness, budget: int, max_messages: int) -> None:
        self.harness = harness
        self.budget = budget
        self.max_messages = max_messages
        self.spent = 0
        self.found: dict[int, Witness] = {}
        self.cache: dict[tuple[Any, ...], Outcome] = {}
        self.template_facts = _TemplateFacts.of(harness.parsed, harness.analysis)
        # (site, context number) -> prefixes worth extending at the current size
        self.frontiers: dict[tuple[int, int], list[tuple[int, ...]]] = {}

    def run(self) -> dict[int, Witness | None]:
        sites = self.harness.analysis.sites
        plans = {site.index: _Plan.of(site, self.template_facts) for site in sites}
        for size in range(self.max_messages + 1):
            for site in sites:
                if site.index in self.found:
                    continue
                plan = plans[site.index]
                for context_number in range(len(plan.contexts)):
                    self._expand(site.index, plan, context_number, size)
                    if len(self.found) == len(sites) or self.spent >= self.budget:
                        return self._result()
        return self._result()

    def _result(self) -> dict[int, Witness | None]:
        return {site.index: self.found.get(site.index) for site in self.harness.analysis.sites}

    def _expand(self, site: int, plan: _Plan, context_number: int, size: int) -> None:
        key = (site, context_number)
        if size == 0:
            candidates = [()]
        else:
            candidates = [(*prefix, variant) for prefix in self.frontiers.get(key, [])
                          for variant in range(len(plan.alphabet))]
        seen: set[tuple[Any, ...]] = set()
        frontier: list[tuple[int, ...]] = []
        context = plan.contexts[context_number]
        for sequence in candidates:
            if site in self.found or self.spent >= self.budget:
                break
            witness = self.harness.witness([plan.alphabet[index] for index in sequence], tools=context.tools,
                                           add_generation_prompt=context.add_generation_prompt,
                                           kwargs=context.kwargs)
            outcome = self._run(witness)
            if outcome.site is not None and outcome.site not in self.found:
                self.found[outcome.site] = witness
            if outcome.signature not in seen:
                seen.add(outcome.signature)
                frontier.append(sequence)
        self.frontiers[key] = frontier

    def _run(self, witness: Witness) -> Outcome:
        key = (repr(witness.messages), repr(witness.tools), witness.add_generation_prompt,
               repr(sorted(witness.kwargs.items())))
        outcome = self.cache.get(key)
        if outcome is None:
            self.spent += 1
            outcome = self.cache[key] = self.harness.run(witness)
        return outcome


class _Context(NamedTuple):
    """Everything but the messages: tools, add_generation_prompt, keyword arguments."""

    tools: tuple[Mapping[str, Any], ...] | None = None
    add_generation_prompt: bool = False
    kwargs: Mapping[str, Any] = MappingProxyType({})


class _TemplateFacts(NamedTuple):
    """What the search needs to know about the whole template."""

    dependencies: Mapping[str, frozenset[str]]   # variable -> words of the values assigned to it
    kwarg_values: Mapping[str, tuple[Any, ...]]  # caller variable -> values worth trying
    role_constants: frozenset[str]

    @classmethod
    def of(cls, parsed: ParsedTemplate, analysis: Analysis) -> _TemplateFacts:
        dependencies: dict[str, set[str]] = {}
        compared: dict[str, set[str]] = {}
        for node in template_nodes(parsed):
            if isinstance(node, (nodes.Assign, nodes.AssignBlock)):
                value = node.node if isinstance(node, nodes.Assign) else node.body
                words = _words_of(value)
                for name in _assigned_names(node.target):
                    dependencies.setdefault(name, set()).update(words)
            elif isinstance(node, nodes.Call) and isinstance(node.node, nodes.Name) and node.node.name == "namespace":
                for keyword in node.kwargs:
                    dependencies.setdefault(keyword.key, set()).update(_words_of(keyword.value))
            elif isinstance(node, nodes.For):
                for name in _assigned_names(node.target):
                    dependencies.setdefault(name, set()).update(_words_of(node.iter))
            elif isinstance(node, nodes.Compare):
                operands = [node.expr, *(operand.expr for operand in node.ops)]
                strings = {value for operand in operands for value in constant_strings(operand)}
                for operand in operands:
                    if isinstance(operand, nodes.Name):
                        compared.setdefault(operand.name, set()).update(strings)
        callers = sorted(name for name in analysis.undeclared
                         if name not in _STANDARD_NAMES and not name.endswith("_token"))
        kwarg_values = {name: (False, True, *sorted(compared.get(name, ())),
                               *(("tk-unexpected",) if compared.get(name) else ()))
                        for name in callers}
        return cls({name: frozenset(words) for name, words in dependencies.items()}, kwarg_values,
                   compared_roles(parsed))

    def closure(self, words: set[str]) -> set[str]:
        """``words`` plus the words of everything they are assigned from, transitively."""
        result = set(words)
        pending = list(words)
        while pending:
            for word in self.dependencies.get(pending.pop(), ()):
                if word not in result:
                    result.add(word)
                    pending.append(word)
        return result


def _assigned_names(target: nodes.Node) -> list[str]:
    if isinstance(target, nodes.Name):
        return [target.name]
    if isinstance(target, nodes.NSRef):
        return [target.attr]
    if isinstance(target, nodes.Tuple):
        return [name for item in target.items for name in _assigned_names(item)]
    return []


def _words_of(node: nodes.Node | list[nodes.Node]) -> set[str]:
    """Names, attribute/key names and string constants read inside ``node``."""
    words: set[str] = set()
    for item in node if isinstance(node, list) else [node]:
        for child in iter_nodes(item):
            if isinstance(child, nodes.Name):
                words.add(child.name)
            elif isinstance(child, nodes.Getattr):
                words.add(child.attr)
            elif isinstance(child, nodes.Const) and isinstance(child.value, str):
                words.add(child.value)
            elif isinstance(child, nodes.Test):
                words.add(child.name)
    return words


def _mentions_role(node: nodes.Node) -> bool:
    if isinstance(node, nodes.Getattr):
        return node.attr == "role"
    if isinstance(node, nodes.Getitem):
        return isinstance(node.arg, nodes.Const) and node.arg.value == "role"
    return isinstance(node, nodes.Name) and "role" in node.name


PROBE_TOOL: Mapping[str, Any] = {"type": "function", "function": {
    "name": "get_weather", "description": "Get the weather.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
"""The tool definition probes pass (OpenAI's function-tool shape)."""
TOOL_FORMATS: Mapping[str, Mapping[str, Any]] = {
    'OpenAI ({"type": "function", "function": {"name", "description", "parameters"}})': PROBE_TOOL,
    'a bare function ({"name", "description", "parameters"})': PROBE_TOOL["function"],
    'Cohere ({"name", "description", "parameter_definitions"})': {
        "name": "get_weather", "description": "Get the weather.",
        "parameter_definitions": {"city": {"description": "The city.", "type": "str", "required": True}}},
}
"""Ways clients and model cards write one tool definition, the OpenAI format first."""
_CALL_ID = "call00001"  # nine alphanumerics: what Mistral's templates insist on


def _tool_call(call_id: str | None = _CALL_ID, arguments: Any = None) -> dict[str, Any]:
    call: dict[str, Any] = {"type": "function", "function": {
        "name": "get_weather", "arguments": {"city": "Paris"} if arguments is None else arguments}}
    if call_id is not None:
        call = {"id": call_id, **call}
    return call


class _Plan(NamedTuple):
    """The messages (alphabet) and contexts the search tries for one site, simplest first."""

    alphabet: tuple[Mapping[str, Any], ...]
    contexts: tuple[_Context, ...]

    @classmethod
    def of(cls, site: RaiseSite, facts: _TemplateFacts) -> _Plan:
        text = " ".join([*(condition.text for condition in site.conditions),
                         *(loop.iterable for loop in site.loops)])
        strings = {first or second for first, second in _QUOTED.findall(text)}
        words = facts.closure(set(_WORD.findall(text)) | strings)
        return cls(_alphabet(site, words, strings, facts), _contexts(words, facts))


def _alphabet(site: RaiseSite, words: set[str], strings: set[str], facts: _TemplateFacts
              ) -> tuple[Mapping[str, Any], ...]:
    user, assistant = {"role": "user", "content": "hi"}, {"role": "assistant", "content": "hi"}
    alphabet: list[Mapping[str, Any]] = [user, assistant, {"role": "system", "content": "hi"}]
    tool_related = bool(words & {"tool", "tool_calls", "tool_call", "tool_call_id", "tool_results", "ipython",
                                 "function", "arguments", "tools"}) or site.check_class == "tool-call"
    content_related = bool(words & {"content", "string", "iterable", "mapping", "none", "sequence", "image",
                                    "video", "text", "type"}) or site.check_class == "content-type"
    if tool_related:
        alphabet += [
            {"role": "assistant", "content": "", "tool_calls": [_tool_call()]},
            {"role": "tool", "tool_call_id": _CALL_ID, "name": "get_weather", "content": "sunny"},
            {"role": "assistant", "content": "", "tool_calls": [_tool_call(), _tool_call("call00002")]},
            {"role": "assistant", "content": "", "tool_calls": [_tool_call("call_1")]},
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
            {"role": "assistant", "content": "", "tool_calls": [_tool_call(arguments='{"city": "Paris"}')]},
            {"role": "assistant", "content": "", "tool_calls": [_tool_call(call_id=None)]},
        ]
    if content_related:
        alphabet += [
            {"role": "user", "content": None},
            {"role": "user", "content": [{"type": "text", "text": "hi"}]},
            {"role": "user", "content": [{"type": "image"}]},
            {"role": "system", "content": [{"type": "image"}]},
            {"role": "user", "content": [{"type": "video"}]},
            {"role": "system", "content": [{"type": "video"}]},
            {"role": "user", "content": [{"type": "tk-unexpected"}]},
            {"role": "user", "content": {}},
            {"role": "user", "content": 42},
            {"role": "assistant", "content": None},
        ]
    for key in ("thinking", "reasoning_content", "reasoning"):
        if key in words:
            alphabet.append({"role": "assistant", "content": "hi", key: "hmm"})
            if tool_related:
                alphabet.append({"role": "assistant", "content": "hi", key: "hmm", "tool_calls": [_tool_call()]})
    for string in sorted(strings - facts.role_constants):
        if len(string) > 3 and not string.isidentifier():  # a marker the template looks for in content
            alphabet.append({"role": "assistant", "content": string})
            alphabet.extend({"role": "assistant", "content": "hi", key: string}
                            for key in ("thinking", "reasoning_content") if key in words)
    known = {message["role"] for message in alphabet}
    extra_roles = sorted(role for role in facts.role_constants & (words | strings) if role not in known)
    alphabet += [{"role": role, "content": "hi"} for role in extra_roles]
    alphabet.append({"role": "tk-unexpected", "content": "hi"})
    return tuple(alphabet)


def _contexts(words: set[str], facts: _TemplateFacts) -> tuple[_Context, ...]:
    contexts = [_Context()]
    if "add_generation_prompt" in words:
        contexts.append(_Context(add_generation_prompt=True))
    if words & {"tools", "tool"}:
        contexts.append(_Context(tools=(PROBE_TOOL,)))
        if "type" in words:
            contexts.append(_Context(tools=({**PROBE_TOOL, "type": "tk-unexpected"},)))
    for name, values in facts.kwarg_values.items():
        if name in words:
            contexts.extend(_Context(kwargs={name: value}) for value in values)
    return tuple(contexts)


# --- capabilities (as minja's chat_template caps) -----------------------------------------

class Capability(NamedTuple):
    """Whether the template renders one kind of input; ``None`` when it cannot be told.

    ``detail`` says what happened (``renders``, ``raise_exception at line 3: '...'``,
    ``accepted but not in the output``); ``witness`` is the probe conversation.
    """

    name: str
    supported: bool | None
    detail: str
    witness: Witness
    site: int | None = None


_USER = {"role": "user", "content": "tkprobe-user"}
_RESULT = {"role": "tool", "tool_call_id": _CALL_ID, "name": "get_weather", "content": "tkprobe-result"}


def capabilities(harness: Harness) -> dict[str, Capability]:
    """Probe what the template renders, as minja/llama.cpp do when they load a template.

    A capability is supported when a marker string of the probe input appears in the
    output (for tool calls: more often than without the call, since the tool's definition
    shows its name too); unsupported when the render raises or the marker is missing;
    unknown (``None``) when even ``[user]`` does not render.
    """
    baseline = harness.run(harness.witness([_USER]))

    def probe(name: str, witness: Witness, marker: str, before: Outcome | None = None) -> Capability:
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

    calls = [probe("tool-calls", harness.witness(
        [_USER, {"role": "assistant", "content": content, "tool_calls": [_tool_call(arguments=arguments)]}],
        tools=tools), "get_weather", asked)
        for tools in (None, (PROBE_TOOL,)) for asked in [harness.run(harness.witness([_USER], tools=tools))]
        for arguments in (None, '{"city": "Paris"}') for content in ("", None)]
    tool_calls = next((result for result in calls if result.supported), calls[0])
    prompted = harness.witness([_USER], add_generation_prompt=True)
    return {
        "system-role": probe("system-role", harness.witness([{"role": "system", "content": "tkprobe-system"}, _USER]),
                             "tkprobe-system"),
        "tools": probe("tools", harness.witness([_USER], tools=(PROBE_TOOL,)), "get_weather"),
        "tool-calls": tool_calls,
        "tool-results": probe("tool-results", harness.witness(
            [*tool_calls.witness.messages, _RESULT], tools=tool_calls.witness.tools), "tkprobe-result"),
        "content-parts": probe("content-parts", harness.witness(
            [{"role": "user", "content": [{"type": "text", "text": "tkprobe-user"}]}]), "tkprobe-user"),
        "generation-prompt": _generation_prompt(harness, baseline, prompted),
    }


def _shows_python_value(output: str, witness: Witness) -> bool:
    """Whether list content was printed whole (``[{'type': 'text', ...}]``) instead of rendered."""
    return any(isinstance(message.get("content"), list) and str(message["content"]) in output
               for message in witness.messages)


def _generation_prompt(harness: Harness, baseline: Outcome, prompted: Witness) -> Capability:
    outcome = harness.run(prompted)
    if baseline.ok and outcome.ok:
        changes = baseline.output != outcome.output
        return Capability("generation-prompt", changes,
                          "changes the output" if changes else "the output is the same with and without it", prompted)
    failing = baseline if not baseline.ok else outcome
    return Capability("generation-prompt", None, harness.describe(failing), prompted, failing.site)


# --- silent drops --------------------------------------------------------------------------

class Drop(NamedTuple):
    """A message the template accepted but whose text is not in the output."""

    description: str
    witness: Witness
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
    probes: list[tuple[str, Witness, tuple[int, ...]]] = [
        ("the second text part of list content", harness.witness([{"role": "user", "content": [
            {"type": "text", "text": "tkmark-0a"}, {"type": "text", "text": "tkmark-0b"}]}]), (0,)),
        ("assistant text beside tool calls", harness.witness([
            {"role": "user", "content": "tkmark-0"},
            {"role": "assistant", "content": "tkmark-1", "tool_calls": [_tool_call()]},
            {"role": "tool", "tool_call_id": _CALL_ID, "name": "get_weather", "content": "tkmark-2"},
        ], tools=(PROBE_TOOL,)), (1,)),
    ]
    probes += [(f"a message with role {role!r}", _marked(harness, ["user", role, "user"]), (1,))
               for role in sorted(set(roles) - {"user", "assistant", "system", "tool"})]
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
            if (outcome.ok and role not in drops and not (index == 0 and role == "system")
                    and f"tkmark-{index}" not in outcome.output):
                drops[role] = Drop(f"a {role} message at position {index + 1}", witness, index)
    return list(drops.values())


def _marked(harness: Harness, roles: Sequence[str]) -> Witness:
    return harness.witness([{"role": role, "content": f"tkmark-{index}"} for index, role in enumerate(roles)])


def _marker_of(message: Mapping[str, Any]) -> str | None:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list) and len(content) > 1:
        return content[-1].get("text")
    return None


# --- what else reaches the prompt ---------------------------------------------------------

class Leak(NamedTuple):
    """Text in the prompt that no message, tool or role header of the probe put there."""

    description: str
    text: str
    witness: Witness


def tool_formats(harness: Harness) -> dict[str, Outcome]:
    """``[user]`` rendered with one tool written in each of :data:`TOOL_FORMATS`."""
    return {name: harness.run(harness.witness([_USER], tools=(tool,))) for name, tool in TOOL_FORMATS.items()}


def renders_tool(outcome: Outcome) -> bool:
    """Whether a :func:`tool_formats` render shows the tool."""
    return outcome.ok and "get_weather" in outcome.output


_SCHEMA_TOOL: Mapping[str, Any] = {"type": "function", "function": {
    "name": "get_weather", "description": "Get the weather.",
    "parameters": {"type": "object", "properties": {
        "city": {"type": "string", "description": "The city."},
        "unit": {"type": "string", "enum": ["c", "f"], "default": None},
        "detailed": {"type": "boolean", "default": False}},
        "required": ["city"], "additionalProperties": False}}}
_PLAIN_SCHEMA_TOOL: Mapping[str, Any] = {"type": "function", "function": {
    "name": "get_weather", "description": "Get the weather.",
    "parameters": {"type": "object", "properties": {
        "city": {"type": "string", "description": "The city."},
        "unit": {"type": "string", "description": "The unit."},
        "detailed": {"type": "string", "description": "Whether in detail."}},
        "required": ["city", "unit"]}}}
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
    for extra, where in (({"tool_calls": [_tool_call()]}, " (beside a tool call)"), ({}, "")):
        null = harness.witness([_USER, {"role": "assistant", "content": None, **extra}], tools=(PROBE_TOOL,))
        empty = harness.run(harness.witness([_USER, {"role": "assistant", "content": "", **extra}],
                                            tools=(PROBE_TOOL,)))
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


def _injected(where: str, trigger: str, triggered: Witness, before: str, after: str) -> list[Leak]:
    """The :class:`Leak` of ``trigger``, if ``after`` has text (3+ words) where ``before`` has none.

    The changed stretch is what lies between the common prefix and the common suffix of the
    two prompts (``after`` without the trigger itself): linear, unlike a full diff.
    """
    after = after.replace(f"tkmark-0 {trigger}", "tkmark-0")
    start = len(os.path.commonprefix([before, after]))
    end = len(os.path.commonprefix([before[start:][::-1], after[start:][::-1]]))
    added, removed = after[start:len(after) - end].strip(), before[start:len(before) - end].strip()
    if len(re.findall(r"[^\W\d_]{2,}", added)) < 3 or len(removed) >= len(added):
        return []
    return [Leak(f"{where} containing {trigger!r}", added, triggered)]


def content_triggers(parsed: ParsedTemplate) -> tuple[str, ...]:
    """Strings the template looks for inside a value (``'weather' in content``,
    ``content.startswith('...')``): candidates for content-triggered text."""
    found: dict[str, None] = {}
    for node in parsed.nodes:
        if (isinstance(node, nodes.Compare) and isinstance(node.expr, nodes.Const)
                and any(operand.op in ("in", "notin") for operand in node.ops)):
            found.update(dict.fromkeys(constant_strings(node.expr)))
        elif (isinstance(node, nodes.Call) and isinstance(node.node, nodes.Getattr)
              and node.node.attr in ("startswith", "endswith", "find", "count")):
            for argument in node.args:
                found.update(dict.fromkeys(constant_strings(argument)))
    return tuple(text for text in found if len(text.strip()) >= 3)[:16]


class PrefixBreak(NamedTuple):
    """A conversation whose prompt does not start with the prompt of its first turns."""

    earlier: Witness
    later: Witness
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
    user, reply, again = ({"role": "user", "content": "tkmark-0"}, {"role": "assistant", "content": "tkmark-1"},
                          {"role": "user", "content": "tkmark-2"})
    pairs = [(harness.witness(start, add_generation_prompt=True),
              harness.witness([*start, {**reply, "content": "tkmark-3"}, {**again, "content": "tkmark-4"}],
                              add_generation_prompt=True))
             for start in ([user], [user, reply, again])]
    pairs += [(harness.witness([user, answer]), harness.witness([user, answer, again], add_generation_prompt=True))
              for answer in _REASONING_TURNS]
    for number, (earlier, later) in enumerate(pairs):
        first, second = harness.run(earlier), harness.run(later)
        if not (first.ok and second.ok) or second.output.startswith(first.output):
            continue
        if number >= 2 and ("tkmark-think" not in first.output or "tkmark-think" in second.output):
            continue  # only the reasoning that disappears counts for answers rendered last
        offset = len(os.path.commonprefix([first.output, second.output]))
        return PrefixBreak(earlier, later, offset, first.output[offset:offset + 40], second.output[offset:offset + 40])
    return None


class ToolCallFormat(NamedTuple):
    """How a template writes an assistant tool call, and the server parsers that read it back."""

    name: str
    vllm: str | None
    sglang: str | None
    rendered: str
    witness: Witness


# (name, test on the rendered call, vLLM --tool-call-parser, SGLang --tool-call-parser); first match wins
_TOOL_CALL_FORMATS: tuple[tuple[str, re.Pattern[str], str | None, str | None], ...] = (
    ("Qwen3-Coder XML (<function=NAME><parameter=KEY>)", re.compile(r"<function=get_weather>\s*<parameter=city>"),
     "qwen3_coder", "qwen3_coder"),
    ("GLM-4.5 (<tool_call>NAME\\n<arg_key>)", re.compile(r"<tool_call>\s*get_weather\n\s*<arg_key>"),
     "glm45", "glm45"),
    ("GLM-4.7 (<tool_call>NAME<arg_key>)", re.compile(r"<tool_call>\s*get_weather<arg_key>"), "glm47", "glm47"),
    ("Hermes (<tool_call>{JSON}</tool_call>)",
     re.compile(r"<tool_call>\s*\{\s*\"name\"\s*:\s*\"get_weather\"", re.DOTALL), "hermes", "hermes"),
    ("Mistral ([TOOL_CALLS])", re.compile(r"\[TOOL_CALLS\]"), "mistral", "mistral"),
    ("gpt-oss harmony (to=functions.NAME)", re.compile(r"to=functions\.get_weather"), "openai", "gpt-oss"),
    ("DeepSeek V3 (function<｜tool▁sep｜>NAME, ```json)", re.compile(r"function<｜tool▁sep｜>get_weather"),
     "deepseek_v3", "deepseekv3"),
    ("DeepSeek V3.1 (NAME<｜tool▁sep｜>{JSON})", re.compile(r"<｜tool▁call▁begin｜>get_weather<｜tool▁sep｜>"),
     "deepseek_v31", "deepseekv31"),
    ("Kimi K2 (<|tool_calls_section_begin|>)", re.compile(r"<\|tool_calls_section_begin\|>"), "kimi_k2", "kimi_k2"),
    ("MiniMax M2 (<minimax:tool_call><invoke name=NAME>)", re.compile(r"<minimax:tool_call>\s*<invoke name="),
     "minimax_m2", "minimax-m2"),
    ("Cohere Command (<|START_ACTION|> or Action: ```json, [{\"tool_name\": NAME}])",
     re.compile(r"<\|START_ACTION\|>|Action:\s*```json\s*\[\s*\{\s*\"tool_name\""), None, None),
    ("Gemma 4 (<|tool_call>call:NAME{...})", re.compile(r"<\|tool_call>call:get_weather\{"), "gemma4", "gemma4"),
    ("pythonic ([NAME(key=value)])", re.compile(r"get_weather\(\s*city\s*=\s*['\"]Paris['\"]\s*\)"),
     "pythonic", "pythonic"),
    ("Llama 3 JSON ({\"name\": NAME, \"parameters\": {...}})",
     re.compile(r"\{\s*\"name\"\s*:\s*\"get_weather\"\s*,\s*\"(parameters|arguments)\"\s*:"),
     "llama3_json", "llama3"),
)


def tool_call_format(harness: Harness, call: Witness) -> ToolCallFormat | None:
    """The format ``call`` (a conversation ending in an assistant tool call that renders)
    writes the call in, read from the text the call adds to the prompt; ``None`` when the
    call does not render.  An unrecognised format has no parser names."""
    with_call = harness.run(call)
    without = harness.run(call._replace(messages=call.messages[:-1]))
    if not with_call.ok:
        return None
    rendered = with_call.output[len(os.path.commonprefix([with_call.output, without.output or ""])):]
    if "get_weather" not in rendered:  # the name was in the tool definitions only
        return None
    for name, pattern, vllm, sglang in _TOOL_CALL_FORMATS:
        if pattern.search(rendered):
            return ToolCallFormat(name, vllm, sglang, rendered, call)
    return ToolCallFormat("unrecognised", None, None, rendered, call)


# --- clock and tokens ----------------------------------------------------------------------

def clock_dependence(harness: Harness) -> Witness | None:
    """A conversation whose output differs between two fixed clocks, or ``None``."""
    user = {"role": "user", "content": "hi"}
    for witness in (harness.witness([user], add_generation_prompt=True),
                    harness.witness([{"role": "system", "content": "hi"}, user], add_generation_prompt=True),
                    harness.witness([user], tools=(PROBE_TOOL,), add_generation_prompt=True)):
        first, second = (harness.run(witness, now=moment) for moment in _CLOCKS)
        if first.ok and second.ok and first.output != second.output:
            return witness
    return None


def leading_bos_count(harness: Harness) -> tuple[int, Witness] | None:
    """How many ``bos_token`` the output of ``[user]`` starts with (``None``: cannot tell)."""
    bos = harness.special_tokens.get("bos_token")
    witness = harness.witness([{"role": "user", "content": "hi"}], add_generation_prompt=True)
    outcome = harness.run(witness)
    if not bos or not outcome.ok:
        return None
    output = outcome.output.lstrip()
    count = 0
    while output.startswith(bos):
        count += 1
        output = output[len(bos):].lstrip()
    return count, witness


def eos_after_assistant(harness: Harness) -> tuple[bool, Witness] | None:
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


# --- static facts the probes use ----------------------------------------------------------

def template_nodes(parsed: ParsedTemplate) -> tuple[nodes.Node, ...]:
    """Every node of the template, depth first (``parsed.nodes``: walked once, shared by rules)."""
    return parsed.nodes


def uses_name(parsed: ParsedTemplate, name: str) -> nodes.Name | None:
    """The first place ``parsed`` reads the variable ``name``."""
    return next((node for node in template_nodes(parsed)
                 if isinstance(node, nodes.Name) and node.name == name and node.ctx == "load"), None)


@lru_cache(maxsize=8)
def compared_roles(parsed: ParsedTemplate) -> frozenset[str]:
    """String constants the template compares a role against."""
    roles: set[str] = set()
    for node in template_nodes(parsed):
        if isinstance(node, nodes.Compare):
            operands = [node.expr, *(operand.expr for operand in node.ops)]
            if any(_mentions_role(operand) for operand in operands):
                roles.update(value for operand in operands for value in constant_strings(operand))
    return frozenset(roles)
