"""Witness search: for each raise site, a minimal conversation that fires exactly that site.

The search is breadth-first over conversation size, so the first conversation found for a site
has as few messages as the explored space allows.  The messages, tools and keyword arguments
it tries come from the site's path condition and the template's own string constants; prefixes
whose outcome (output text, or the site that fired) was already seen are not extended again,
which keeps the search small.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import jinja2.nodes as nodes

from ..analysis import SERVER_INPUTS, Analysis, RaiseSite, compared_roles, constant_strings
from ..cases import Case
from ..environment import REASONING_FIELDS
from ..records import Record
from ..syntax import ParsedTemplate, iter_nodes
from .harness import CALL_ID, HI, PROBE_TOOL, Harness, Outcome, harness_for, probe_call

__all__ = ["DEFAULT_BUDGET", "MAX_MESSAGES", "find_witnesses"]

DEFAULT_BUDGET = 1500
"""Renders the witness search may spend on one template before it calls the rest unreachable."""

MAX_MESSAGES = 4
"""The largest conversation the witness search tries."""

# Names no caller chooses: what servers pass, plus the loop variable and the constants.
_STANDARD_NAMES = SERVER_INPUTS | {"loop", "true", "false", "none", "True", "False", "None"}
_QUOTED = re.compile(r"'((?:[^'\\]|\\.)*)'|\"((?:[^\"\\]|\\.)*)\"")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def find_witnesses(
    parsed: ParsedTemplate,
    analysis: Analysis,
    *,
    budget: int = DEFAULT_BUDGET,
    special_tokens: Mapping[str, str] | None = None,
    max_messages: int = MAX_MESSAGES,
) -> dict[int, Case | None]:
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
        self.found: dict[int, Case] = {}
        self.cache: dict[tuple[Any, ...], Outcome] = {}
        self.template_facts = _TemplateFacts.of(harness.parsed, harness.analysis)
        # (site, context number) -> prefixes worth extending at the current size
        self.frontiers: dict[tuple[int, int], list[tuple[int, ...]]] = {}

    def run(self) -> dict[int, Case | None]:
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

    def _result(self) -> dict[int, Case | None]:
        return {site.index: self.found.get(site.index) for site in self.harness.analysis.sites}

    def _expand(self, site: int, plan: _Plan, context_number: int, size: int) -> None:
        key = (site, context_number)
        if size == 0:
            candidates = [()]
        else:
            candidates = [
                (*prefix, variant) for prefix in self.frontiers.get(key, []) for variant in range(len(plan.alphabet))
            ]
        seen: set[tuple[Any, ...]] = set()
        frontier: list[tuple[int, ...]] = []
        context = plan.contexts[context_number]
        for sequence in candidates:
            if site in self.found or self.spent >= self.budget:
                break
            witness = self.harness.witness(
                [plan.alphabet[index] for index in sequence],
                tools=context.tools,
                add_generation_prompt=context.add_generation_prompt,
                kwargs=context.kwargs,
            )
            outcome = self._run(witness)
            if outcome.site is not None and outcome.site not in self.found:
                self.found[outcome.site] = witness
            if outcome.signature not in seen:
                seen.add(outcome.signature)
                frontier.append(sequence)
        self.frontiers[key] = frontier

    def _run(self, witness: Case) -> Outcome:
        key = (
            repr(witness.messages),
            repr(witness.tools),
            witness.add_generation_prompt,
            repr(sorted(witness.kwargs.items())),
        )
        outcome = self.cache.get(key)
        if outcome is None:
            self.spent += 1
            outcome = self.cache[key] = self.harness.run(witness)
        return outcome


class _Context(Record):
    """Everything but the messages: tools, add_generation_prompt, keyword arguments."""

    tools: tuple[Mapping[str, Any], ...] | None = None
    add_generation_prompt: bool = False
    kwargs: Mapping[str, Any] = MappingProxyType({})


class _TemplateFacts(Record):
    """What the search needs to know about the whole template."""

    dependencies: Mapping[str, frozenset[str]]  # variable -> words of the values assigned to it
    kwarg_values: Mapping[str, tuple[Any, ...]]  # caller variable -> values worth trying
    role_constants: frozenset[str]

    @classmethod
    def of(cls, parsed: ParsedTemplate, analysis: Analysis) -> _TemplateFacts:
        dependencies: dict[str, set[str]] = {}
        compared: dict[str, set[str]] = {}
        for node in parsed.nodes:
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
        callers = sorted(
            name for name in analysis.undeclared if name not in _STANDARD_NAMES and not name.endswith("_token")
        )
        kwarg_values = {
            name: (False, True, *sorted(compared.get(name, ())), *(("tk-unexpected",) if compared.get(name) else ()))
            for name in callers
        }
        return cls(
            {name: frozenset(words) for name, words in dependencies.items()}, kwarg_values, compared_roles(parsed)
        )

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


class _Plan(Record):
    """The messages (alphabet) and contexts the search tries for one site, simplest first."""

    alphabet: tuple[Mapping[str, Any], ...]
    contexts: tuple[_Context, ...]

    @classmethod
    def of(cls, site: RaiseSite, facts: _TemplateFacts) -> _Plan:
        text = " ".join([*(condition.text for condition in site.conditions), *(loop.iterable for loop in site.loops)])
        strings = {first or second for first, second in _QUOTED.findall(text)}
        words = facts.closure(set(_WORD.findall(text)) | strings)
        return cls(_alphabet(site, words, strings, facts), _contexts(words, facts))


def _alphabet(
    site: RaiseSite, words: set[str], strings: set[str], facts: _TemplateFacts
) -> tuple[Mapping[str, Any], ...]:
    alphabet: list[Mapping[str, Any]] = [
        HI,
        {"role": "assistant", "content": "hi"},
        {"role": "system", "content": "hi"},
    ]
    tool_related = (
        bool(
            words
            & {
                "tool",
                "tool_calls",
                "tool_call",
                "tool_call_id",
                "tool_results",
                "ipython",
                "function",
                "arguments",
                "tools",
            }
        )
        or site.check_class == "tool-call"
    )
    content_related = (
        bool(words & {"content", "string", "iterable", "mapping", "none", "sequence", "image", "video", "text", "type"})
        or site.check_class == "content-type"
    )
    if tool_related:
        alphabet += [
            {"role": "assistant", "content": "", "tool_calls": [probe_call()]},
            {"role": "tool", "tool_call_id": CALL_ID, "name": "get_weather", "content": "sunny"},
            {"role": "assistant", "content": "", "tool_calls": [probe_call(), probe_call("call00002")]},
            {"role": "assistant", "content": "", "tool_calls": [probe_call("call_1")]},
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
            {"role": "assistant", "content": "", "tool_calls": [probe_call(arguments='{"city": "Paris"}')]},
            {"role": "assistant", "content": "", "tool_calls": [probe_call(call_id=None)]},
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
    for key in REASONING_FIELDS:
        if key in words:
            alphabet.append({"role": "assistant", "content": "hi", key: "hmm"})
            if tool_related:
                alphabet.append({"role": "assistant", "content": "hi", key: "hmm", "tool_calls": [probe_call()]})
    for string in sorted(strings - facts.role_constants):
        if len(string) > 3 and not string.isidentifier():  # a marker the template looks for in content
            alphabet.append({"role": "assistant", "content": string})
            alphabet.extend(
                {"role": "assistant", "content": "hi", key: string} for key in REASONING_FIELDS if key in words
            )
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
