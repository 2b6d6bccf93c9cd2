"""Rewrite a template's role-structure checks so that it normalises instead of raising.

The relaxed template R renders the original T's own text (edited at exact offsets, everything else
byte-identical) inside a two-pass frame, and decides per conversation C:

1. T's body renders C with every role-structure ``raise_exception`` (classes ``alternation``,
   ``system-role``, ``role-unsupported``) turned into a flag.  If no flag is raised, that output
   is R's output: wherever T renders C, R(C) == T(C).
2. Otherwise the body renders N(C) (:mod:`templatekit.normalization`, computed in Jinja the same
   way), and that output is R's output; where T still refuses N(C) for its structure, the checks
   stay silent for histories of user, assistant, system and developer messages, and any other
   history gets T's own error.

Other checks keep raising (on the first pass only while no role check has fired: the second
pass re-checks them on N(C)).  The frame uses no ``dict()``, ``loop.cycle``, ``%`` formatting or
``{% raw %}`` (engines without them render R as they render T), never quotes the word
``developer`` (vLLM reads that as "the template handles developer messages") and declares every
name it reads (servers pass request kwargs for a template's undeclared variables).  T's loops
stay outside any macro, where vLLM looks for a loop over message contents.

:func:`relax` never raises for a template it cannot rewrite; it returns ``status="failed"`` and
the reason.  It raises :class:`~templatekit.errors.TemplateSyntaxError` only for invalid Jinja.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import jinja2.nodes as nodes

from . import __version__
from .analysis import ROLE_STRUCTURE, RaiseSite, analyze_text, message_fields
from .normalization import DEVELOPER, NORMALIZED_ROLES, SEPARATOR, RolePolicy, Strategy, check_strategy, merged_roles
from .probes.merge_policy import role_policy
from .sources import ChatTemplate
from .syntax import ParsedTemplate, Span

__all__ = ["RewrittenSite", "RelaxResult", "relax", "is_relaxed"]

Status = Literal["relaxed", "unchanged", "already-relaxed", "failed"]
EditKind = Literal["deferred", "operands-deferred"]

_HEADER = re.compile(r"\A\{#[-+]? templatekit \S+ relax\b")
_RAISE = "raise_exception"
_MAX_REBUILT_KEYS = 4  # a rebuilt message literal has one branch per subset of the keys it keeps


@dataclass(frozen=True)
class RewrittenSite:
    """One role-structure check the rewrite turned into a normalisation trigger, and how."""

    index: int
    line: int
    column: int
    check_class: str
    message: str
    edit: EditKind


@dataclass(frozen=True)
class RelaxResult:
    """The outcome of :func:`relax`: the (possibly unchanged) text and a record of what changed."""

    status: Status
    text: str
    strategy: Strategy
    sites: tuple[RewrittenSite, ...] = ()
    policy: RolePolicy | None = None
    reason: str = ""

    @property
    def changed(self) -> bool:
        return self.status == "relaxed"


@dataclass(frozen=True)
class _Edit:
    span: Span
    replacement: str


def is_relaxed(text: str) -> bool:
    """Whether ``text`` starts with a templatekit relax header."""
    return bool(_HEADER.match(text))


def relax(template: str | ChatTemplate, *, strategy: Strategy = "merge", origin: str | None = None) -> RelaxResult:
    """Turn every role-structure check of ``template`` into per-conversation normalisation.

    ``origin`` names the source in the header (default: the ChatTemplate's origin and commit).
    """
    check_strategy(strategy)
    chat_template = template if isinstance(template, ChatTemplate) else ChatTemplate(text=template)
    text = chat_template.text
    if is_relaxed(text):
        return RelaxResult("already-relaxed", text, strategy, reason="already relaxed by templatekit")
    parsed, analysis = analyze_text(text, chat_template.origin)
    if not any(site.check_class in ROLE_STRUCTURE for site in analysis.sites):
        return RelaxResult("unchanged", text, strategy, reason="no role-structure check to relax")
    unsupported = next((node for node in parsed.nodes if isinstance(node, (nodes.Extends, nodes.Block))), None)
    if unsupported is not None:
        return RelaxResult(
            "failed",
            text,
            strategy,
            reason=f"line {unsupported.lineno}: template inheritance ({{% extends %}}/{{% block %}}) cannot be wrapped",
        )
    names = _Names(_free_prefix(parsed))
    first_edits: list[_Edit] = []
    second_edits: list[_Edit] = []
    rewritten: list[RewrittenSite] = []
    exits = _loop_exits(parsed)
    for site in analysis.sites:
        try:
            kind, first, second = _plan_site(parsed, site, names)
        except _CannotRewrite as error:
            return RelaxResult("failed", text, strategy, reason=f"line {site.line}: {error}")
        first_edits += first
        second_edits += second
        if kind is None:
            continue
        rewritten.append(RewrittenSite(site.index, site.line, site.column, site.check_class, site.message, kind))
        exit_at = exits.get(site.span.start) if site.span is not None else None
        if exit_at is not None:
            first_edits.append(_Edit(Span(exit_at, exit_at), "{% break %}"))
    policy = role_policy(chat_template)
    try:
        bodies = (_apply(text, first_edits), _apply(text, second_edits))
    except ValueError as error:
        return RelaxResult("failed", text, strategy, reason=str(error))
    newline = "\r\n" if "\r\n" in text else "\n"
    relaxed = _header(chat_template, origin, strategy, rewritten, policy, newline) + _frame(
        bodies, names, strategy, policy, message_fields(parsed), newline
    )
    return RelaxResult("relaxed", relaxed, strategy, tuple(rewritten), policy)


class _CannotRewrite(Exception):
    """A site no edit can defer soundly; the message says why."""


@dataclass(frozen=True)
class _Names:
    """The names the frame declares, all under one prefix the template does not use."""

    prefix: str

    def __getattr__(self, name: str) -> str:
        return f"{self.prefix}_{name.rstrip('_')}"  # ``raise_``, ``pass_``: Python keywords


def _free_prefix(parsed: ParsedTemplate) -> str:
    used = {node.name for node in parsed.nodes if isinstance(node, (nodes.Name, nodes.Macro, nodes.NSRef))}
    for candidate in itertools.chain(["tk"], (f"tk{number}" for number in itertools.count(2))):
        if not any(name == candidate or name.startswith(candidate + "_") for name in used):
            return candidate
    raise AssertionError("unreachable")


def _plan_site(
    parsed: ParsedTemplate, site: RaiseSite, names: _Names
) -> tuple[EditKind | None, list[_Edit], list[_Edit]]:
    """The edits of one raise site in the first pass's copy of the body and in the second's.

    A role-structure check calls, instead of ``raise_exception``, the reject macro (first pass:
    it records the check and its message) or the defer macro (second pass: it records that a
    check fired).  Any other check calls, on the first pass, the raise macro (it raises unless a
    role check already fired, since the second pass checks N(C) again) and raises as before on
    the second.  A condition that ``or``s both keeps the raise for the other checks and flags its
    role-structure operands."""
    callee = _callee_span(parsed, site)
    if site.check_class not in ROLE_STRUCTURE:
        return None, [_Edit(callee, names.raise_)], []
    if not site.shared_with:
        return "deferred", [_Edit(callee, names.reject)], [_Edit(callee, names.defer)]
    guard = site.guard
    if guard is None or not guard.alternation_operands:
        raise _CannotRewrite(
            f"the {site.check_class} check shares its condition with a "
            f"{', '.join(site.shared_with)} check that must stay, and its role part could not be "
            "located in the source"
        )
    arguments = site.call_text[site.call_text.index("(") + 1 : site.call_text.rindex(")")]

    def flagged(macro: str) -> list[_Edit]:
        return [
            _Edit(span, f"{macro}(({span.text(parsed.source)}), {arguments})") for span in guard.alternation_operands
        ]

    return "operands-deferred", [_Edit(callee, names.raise_), *flagged(names.flag)], flagged(names.defer_if)


def _loop_exits(parsed: ParsedTemplate) -> dict[int, int]:
    """For each raise call printed by a ``{{ }}`` tag that stands, through ``if`` branches only, in
    the body of a ``for`` loop: call offset -> the offset just after that tag.

    After a role check has fired on the first pass, nothing that pass prints is used, and the
    rest of the loop may meet what the check was guarding against (a list where a string was
    expected...): the pass leaves the loop there (``{% break %}``, loop controls are on in
    transformers and the other engines).
    """
    exits: dict[int, int] = {}
    for call_id, span in parsed.raise_calls.items():
        tag = next(
            (tag for tag in parsed.tags if tag.kind == "variable" and tag.span.start < span.start < tag.span.end), None
        )
        output = parsed.parents.get(call_id)
        if tag is None or not isinstance(output, nodes.Output):
            continue
        child, statement = output, parsed.parents.get(id(output))
        while isinstance(statement, nodes.If):
            child, statement = statement, parsed.parents.get(id(statement))
        if isinstance(statement, nodes.For) and any(node is child for node in statement.body):
            exits[span.start] = tag.span.end
    return exits


def _callee_span(parsed: ParsedTemplate, site: RaiseSite) -> Span:
    if site.span is None or not parsed.source.startswith(_RAISE, site.span.start):
        raise _CannotRewrite("cannot locate the raise_exception call in the source")
    return Span(site.span.start, site.span.start + len(_RAISE))


def _apply(text: str, edits: list[_Edit]) -> str:
    ordered = sorted(edits, key=lambda edit: (edit.span.start, edit.span.end))
    for before, after in zip(ordered, ordered[1:]):
        if after.span.start < before.span.end:
            raise ValueError(f"overlapping edits at offsets {before.span.start} and {after.span.start}")
    for edit in reversed(ordered):
        text = text[: edit.span.start] + edit.replacement + text[edit.span.end :]
    return text


def _comment_safe(text: str) -> str:
    return " ".join(text.replace("#}", "# }").replace("{#", "{ #").split())


def _header(
    template: ChatTemplate,
    origin: str | None,
    strategy: Strategy,
    sites: Sequence[RewrittenSite],
    policy: RolePolicy,
    newline: str,
) -> str:
    if origin is None:
        origin = template.origin
        if template.repo_id:
            origin = f"{template.repo_id}@{template.commit or 'unknown'} ({template.name})"
    lines = [
        f"{{# templatekit {__version__} relax (strategy: {strategy})",
        f"   source: {origin} sha256:{template.sha256}",
        f"   normalisation: {policy.describe()}; runs joined: {', '.join(merged_roles(strategy))}",
        *(
            f"   rewritten: line {site.line}:{site.column} {site.check_class} {site.edit}: {_comment_safe(site.message)}"
            for site in sites
        ),
    ]
    return newline.join(line.replace("#}", "# }") for line in lines) + newline + "#}" + newline


# --- the frame ---------------------------------------------------------------------------------


def _frame(
    bodies: tuple[str, str],
    names: _Names,
    strategy: Strategy,
    policy: RolePolicy,
    fields: frozenset[str] | None,
    newline: str,
) -> str:
    """T's body twice, as the first and the second pass edit it, inside the frame (see the
    module docstring); two copies rather than a loop over passes, since ``@huggingface/jinja``
    drops what a loop iteration printed before a ``{% break %}``.  The first copy stands at the top
    level (where vLLM looks for loops over message contents), captured by ``{% set %}...{% endset %}``;
    the second is a macro taking ``messages``, defined before the first runs, so that nothing the
    first assigns reaches it in engines whose ``{% set %}`` blocks do not scope (minijinja).

    In both, one trailing newline is dropped as Jinja drops it at the end of a template, and a
    closing tag after a last line of blanks keeps them (``{%+``, which disables ``lstrip_blocks``);
    see :func:`_enclosed` for the start.

    Whether a check fired is read from the namespace, never from the output: ``@huggingface/jinja``
    and llama.cpp's engine drop some of what a loop printed before a ``{% break %}``.
    """
    s = names.state
    macros = [
        f"{{%- macro {names.reject}(message) %}}{{% if not {s}.rejected %}}{{% set {s}.rejected = true %}}"
        f"{{% set {s}.message = message %}}{{% endif %}}{{% endmacro %}}",
        f"{{%- macro {names.defer}(message) %}}{{% if not {s}.rejected %}}{{% set {s}.rejected = true %}}"
        "{% endif %}{% endmacro %}",
    ]
    if names.flag + "(" in bodies[0]:
        macros += [
            f"{{%- macro {names.flag}(failed, message) %}}{{% if failed %}}{{{{ {names.reject}(message) }}}}"
            "{% endif %}{% endmacro %}",
            f"{{%- macro {names.defer_if}(failed, message) %}}{{% if failed %}}{{{{ {names.defer}(message) }}}}"
            "{% endif %}{% endmacro %}",
        ]
    if names.raise_ + "(" in bodies[0]:
        macros.append(
            f"{{%- macro {names.raise_}(message) %}}{{% if not {s}.rejected %}}"
            f"{{{{ {_RAISE}(message) }}}}{{% endif %}}{{% endmacro %}}"
        )
    lines = [
        f"{{%- set {s} = namespace(rejected=false) %}}",
        f"{{%- set {names.messages} = messages %}}",  # as given: the first pass may rebind messages
        *macros,
        f"{{%- macro {names.normalize}() %}}{{% set {names.n} = namespace(runs=[], messages=[], seen=false, new=none) %}}"
        f"{{% if {s}.rejected %}}",
        *_normalisation(names, strategy, policy, fields),
        "{%- endif %}{% endmacro %}",
        _enclosed(bodies[1], f"{{%- macro {names.second}(messages) %}}", "endmacro"),
        _enclosed(bodies[0], f"{{%- set {names.out} %}}", "endset"),
        f"{{%- if not {s}.rejected %}}{{{{ {names.out} }}}}",
        "{%- else %}",
        f"{{{{- {names.normalize}() }}}}{{% set {s}.rejected = false %}}",
        f"{{%- set {names.out} = {names.second}({s}.messages | list) %}}",
        f"{{%- if {s}.plain or not {s}.rejected %}}{{{{ {names.out} }}}}{{% else %}}{{{{ {_RAISE}({s}.message) }}}}"
        "{% endif %}",
        "{%- endif %}",
    ]
    return newline.join(lines) + newline


def _enclosed(body: str, opening: str, closing: str) -> str:
    """``body`` between ``opening`` and ``{% closing %}``, printing exactly what it prints as a
    template of its own.

    A body that starts with blanks or a line break gets a line break after the opening tag, which
    ``trim_blocks`` eats, so that its first line starts a line as in T (``lstrip_blocks`` applies
    to it, and a leading line break stays); any other body follows the tag directly, which also
    renders alike where a server turns both options off (TGI).
    """
    if body.endswith("\r\n"):
        body = body[:-2]
    elif body.endswith("\n"):
        body = body[:-1]
    last_line = re.split(r"\r\n|\n", body)[-1]
    close = f"{{%+ {closing} %}}" if last_line and not last_line.strip(" \t") else f"{{% {closing} %}}"
    newline = ("\r\n" if "\r\n" in body else "\n") if body[:1] in (" ", "\t", "\r", "\n") else ""
    return f"{opening}{newline}{body}{close}"


def _quoted(text: str) -> str:
    """A Jinja string literal for ``text``; ``developer`` is spelt in two halves."""
    if text == DEVELOPER:
        return "('devel' ~ 'oper')"
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n") + "'"


def _role_list(roles: Sequence[str]) -> str:
    return "[" + ", ".join(_quoted(role) for role in roles) + "]"


def _normalisation(names: _Names, strategy: Strategy, policy: RolePolicy, fields: frozenset[str] | None) -> list[str]:
    """The body of the normalise macro: Jinja computing ``N(messages)`` into ``<state>.messages``
    and whether every message has a role N handles (``<state>.plain``); mirrors :func:`templatekit.normalization.apply_policy` step by step.
    Called only on a first pass a role check flagged, so its names cost nothing otherwise.

    Each item of ``<n>.runs`` is ``[role, content, first message, changed, has content]``.
    """
    s, n, m, item = names.state, names.n, names.m, names.item
    separator = _quoted(SEPARATOR)
    role = f"{names.role}"
    lines = [
        f"{{%- set {s}.plain = true %}}",
        f"{{%- for {m} in {names.messages} %}}",
        f"{{%- if {m}.role not in {_role_list(sorted(NORMALIZED_ROLES))} %}}{{% set {s}.plain = false %}}{{% endif %}}",
        f"{{%- set {role} = {m}.role %}}",
    ]
    if policy.developer_as_system:
        lines.append(f"{{%- if {role} == {_quoted(DEVELOPER)} %}}{{% set {role} = 'system' %}}{{% endif %}}")
    if policy.system_placement == "nowhere":
        lines.append(f"{{%- if {role} == 'system' %}}{{% set {role} = 'user' %}}{{% endif %}}")
    elif policy.system_placement == "leading":
        lines.append(f"{{%- if {role} == 'system' and {n}.seen %}}{{% set {role} = 'user' %}}{{% endif %}}")
    lines += [
        f"{{%- if {role} != 'system' %}}{{% set {n}.seen = true %}}{{% endif %}}",
        f"{{%- set {names.a} = none %}}{{% set {names.c} = none %}}",  # declared: jinja2.meta must not see them
        f"{{%- set {names.has} = {m}.content is defined %}}",
        f"{{%- set {names.b} = {m}.content if {names.has} else none %}}",
        f"{{%- set {names.last} = {n}.runs[-1] if {n}.runs else none %}}",
        f"{{%- if {names.last} is not none and {names.last}[0] == {role} and {role} in "
        f"{_role_list(merged_roles(strategy))} and not {names.last}[2].tool_calls and not {m}.tool_calls"
        f" and {_joinable(f'{names.last}[1]')} and {_joinable(names.b)} %}}",
        f"{{%- set {names.a} = {names.last}[1] %}}",
        f"{{%- if {names.a} is none %}}{{% set {names.c} = {names.b} %}}",
        f"{{%- elif {names.b} is none %}}{{% set {names.c} = {names.a} %}}",
        f"{{%- elif {names.a} is string and {names.b} is string %}}"
        f"{{% set {names.c} = {names.a} ~ {separator} ~ {names.b} %}}",
        "{%- else %}",
        f"{{%- set {names.a} = [{{'type': 'text', 'text': {names.a}}}] if {names.a} is string else {names.a} %}}",
        f"{{%- set {names.b} = [{{'type': 'text', 'text': {names.b}}}] if {names.b} is string else {names.b} %}}",
        f"{{%- if {names.a} and {names.b} and {names.a}[-1].type == 'text' and {names.b}[0].type == 'text' %}}",
        f"{{%- set {names.c} = ({names.a}[:-1] + [{{'type': 'text', 'text': {names.a}[-1].text ~ {separator} ~ "
        f"{names.b}[0].text}}] + {names.b}[1:]) | list %}}",
        f"{{%- else %}}{{% set {names.c} = ({names.a} + {names.b}) | list %}}",
        "{%- endif %}",
        "{%- endif %}",
        f"{{%- set {n}.runs = {n}.runs[:-1] + [[{role}, {names.c}, {names.last}[2], true, true]] %}}",
        "{%- else %}",
        f"{{%- set {n}.runs = {n}.runs + [[{role}, {names.b}, {m}, {role} != {m}.role, {names.has}]] %}}",
        "{%- endif %}",
        "{%- endfor %}",
        f"{{%- set {n}.messages = [] %}}",
        f"{{%- for {item} in {n}.runs %}}",
        f"{{%- if {item}[3] %}}",
        *_rebuilt_message(names, fields),
        f"{{%- set {n}.messages = {n}.messages + [{n}.new] %}}",
        f"{{%- else %}}{{% set {n}.messages = {n}.messages + [{item}[2]] %}}",
        "{%- endif %}",
        "{%- endfor %}",
        f"{{%- set {s}.messages = {n}.messages %}}",
    ]
    return lines


def _joinable(value: str) -> str:
    """Jinja test mirroring the Python ``_joinable_value``: a string, nothing, or a list of parts."""
    return f"({value} is string or {value} is none or ({value} is sequence and {value} is not mapping))"


def _rebuilt_message(names: _Names, fields: frozenset[str] | None) -> list[str]:
    """Jinja setting ``<n>.new`` to the item's message with its new role and content.

    A dict literal keeps the keys the template reads (``fields``) that the first message has,
    one branch per subset of them; a template that reads messages whole gets ``dict(...)`` (which
    ``@huggingface/jinja`` lacks: lint reports that construct).
    """
    n, item = names.n, names.item
    role, content, first, has_content = f"{item}[0]", f"{item}[1]", f"{item}[2]", f"{item}[4]"
    if fields is None or len(fields - {"role", "content"}) > _MAX_REBUILT_KEYS:
        return [
            f"{{%- if {has_content} %}}{{% set {n}.new = dict({first}, role={role}, content={content}) %}}",
            f"{{%- else %}}{{% set {n}.new = dict({first}, role={role}) %}}{{% endif %}}",
        ]
    kept = sorted(fields - {"role", "content"})
    tests = [(has_content, "content", content), *((f"{first}.{key} is defined", key, f"{first}.{key}") for key in kept)]
    lines: list[str] = []
    for number, present in enumerate(itertools.product((True, False), repeat=len(tests))):
        entries = [
            f"'role': {role}",
            *(f"{_quoted(key)}: {value}" for (_, key, value), keep in zip(tests, present) if keep),
        ]
        condition = " and ".join(test if keep else f"not ({test})" for (test, _, _), keep in zip(tests, present))
        keyword = "if" if number == 0 else "elif"
        lines.append(f"{{%- {keyword} {condition} %}}{{% set {n}.new = {{{', '.join(entries)}}} %}}")
    lines.append("{%- endif %}")
    return lines
