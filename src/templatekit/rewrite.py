"""Rewrite strict role-alternation checks into ``merge`` or ``skip`` behaviour, and ``normalize()``.

The rewrite edits the original text at exact offsets; everything else stays byte-identical.
Given T (original) and R (relaxed):

* every ``alternation`` raise site of T is neutralised: a standalone
  ``{% if <check> %}{{ raise_exception(...) }}{% endif %}`` becomes a Jinja comment with the
  same whitespace-control signs, a check sharing its ``if`` with other branches has its test
  replaced by ``false``, and a raise in an ``else`` branch has the call replaced by ``''``.
  On any input T accepts, none of those branches ran, so the output is unchanged.
* ``merge`` also inserts, at the top, a block that rebinds ``messages`` to the merged list
  (same logic as :func:`normalize`): runs of consecutive messages with the same role are
  joined, for the roles T itself never accepts twice in a row (probed by rendering T), so a
  conversation T accepts is never changed.  ``skip`` inserts nothing: every message renders
  as its own turn and prompts stay prefix-stable.

:func:`relax` never raises for a template it cannot rewrite; it returns a result with
``status="failed"`` and the reason.  It raises :class:`~templatekit.errors.TemplateSyntaxError`
only when the input is not valid Jinja.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

from . import __version__
from .analysis import RaiseSite, analyze
from .environment import render
from .sources import ChatTemplate
from .syntax import ParsedTemplate, Span, parse

__all__ = ["Strategy", "STRATEGIES", "MergePolicy", "RewrittenSite", "RelaxResult", "relax", "normalize",
           "merge_policy", "is_relaxed", "placeholder_tokens"]

Strategy = Literal["merge", "skip"]
STRATEGIES: tuple[Strategy, ...] = ("merge", "skip")
Status = Literal["relaxed", "unchanged", "already-relaxed", "failed"]
EditKind = Literal["check-removed", "check-disabled", "raise-removed", "operands-disabled"]

SEPARATOR = "\n\n"  # mistral_common's separator between merged texts
MERGEABLE_ROLES = ("user", "assistant", "system")
_HEADER = re.compile(r"\A\{#[-+]? templatekit \S+ relax\b")


@dataclass(frozen=True)
class MergePolicy:
    """Which same-role runs ``merge`` joins, and whether ``developer`` is read as ``system``."""

    roles: tuple[str, ...] = MERGEABLE_ROLES
    developer_as_system: bool = False

    def describe(self) -> str:
        roles = ", ".join(self.roles) if self.roles else "none"
        return f"merged roles: {roles}" + ("; developer treated as system" if self.developer_as_system else "")


@dataclass(frozen=True)
class RewrittenSite:
    """One alternation check that the rewrite neutralised, and how."""

    index: int
    line: int
    column: int
    message: str
    edit: EditKind


@dataclass(frozen=True)
class RelaxResult:
    """The outcome of :func:`relax`: the (possibly unchanged) text and a record of what changed."""

    status: Status
    text: str
    strategy: Strategy
    sites: tuple[RewrittenSite, ...] = ()
    policy: MergePolicy | None = None
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
    """Neutralise every alternation check of ``template`` and (``merge``) merge same-role runs.

    ``origin`` names the source in the header (default: the ChatTemplate's origin and commit).
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; expected one of {', '.join(STRATEGIES)}")
    chat_template = template if isinstance(template, ChatTemplate) else ChatTemplate(text=template)
    text = chat_template.text
    if is_relaxed(text):
        return RelaxResult("already-relaxed", text, strategy, reason="already relaxed by templatekit")
    parsed = parse(text, name=chat_template.origin)
    sites = analyze(parsed).of_class("alternation")
    if not sites:
        return RelaxResult("unchanged", text, strategy, reason="no alternation check to relax")
    edits: list[_Edit] = []
    rewritten: list[RewrittenSite] = []
    for site in sites:
        try:
            kind, site_edits = _plan_site(parsed, site)
        except _CannotRewrite as error:
            return RelaxResult("failed", text, strategy, reason=f"line {site.line}: {error}")
        edits += site_edits
        rewritten.append(RewrittenSite(site.index, site.line, site.column, site.message, kind))
    policy = merge_policy(chat_template) if strategy == "merge" else None
    newline = "\r\n" if "\r\n" in text else "\n"
    prefix = _header(chat_template, origin, strategy, rewritten, policy, newline)
    if policy is not None and (policy.roles or policy.developer_as_system):  # else merging is a no-op
        prefix += _merge_block(policy, newline)
    edits.append(_Edit(Span(0, 0), prefix))
    try:
        relaxed = _apply(text, edits)
    except ValueError as error:
        return RelaxResult("failed", text, strategy, reason=str(error))
    return RelaxResult("relaxed", relaxed, strategy, tuple(rewritten), policy)


class _CannotRewrite(Exception):
    """A site no edit can neutralise soundly; the message says why."""


def _plan_site(parsed: ParsedTemplate, site: RaiseSite) -> tuple[EditKind, list[_Edit]]:
    """The smallest output-preserving edits that stop ``site`` from raising alternation errors.

    Where the site's condition also holds checks of other classes (``or``-ed in), only the
    alternation operands are replaced by ``false``, so the other checks keep raising.  A test
    with effects (``loop.changed``...) keeps running: only the raise call goes.
    """
    guard = site.guard
    if site.shared_with:
        if guard is None or not guard.alternation_operands:
            raise _CannotRewrite(f"the alternation check shares its condition with a {', '.join(site.shared_with)} "
                                 "check that must stay, and its alternation part could not be located in the source")
        if guard.test_has_effects:
            raise _CannotRewrite(f"the alternation check shares its condition with a {', '.join(site.shared_with)} "
                                 "check that must stay, and the condition calls something whose effects must be kept")
        return "operands-disabled", [_Edit(span, "false") for span in guard.alternation_operands]
    if guard is not None and guard.branch == "body" and guard.only_raise and not guard.test_has_effects:
        if guard.statement_span is not None:
            opening = parsed.tag_at(guard.statement_span.start)
            closing = next(tag for tag in parsed.tags if tag.span.end == guard.statement_span.end)
            note = _comment_safe(f"templatekit: alternation check removed: {site.message}")
            comment = f"{{#{opening.strip_left if opening else ''} {note} {closing.strip_right}#}}"
            return "check-removed", [_Edit(guard.statement_span, comment)]
        if guard.test_span is not None:
            return "check-disabled", [_Edit(guard.test_span, "false")]
    if site.span is not None:
        return "raise-removed", [_Edit(site.span, "''")]
    raise _CannotRewrite("cannot locate the alternation check in the source")


def _apply(text: str, edits: list[_Edit]) -> str:
    ordered = sorted(edits, key=lambda edit: (edit.span.start, edit.span.end))
    for before, after in zip(ordered, ordered[1:]):
        if after.span.start < before.span.end:
            raise ValueError(f"overlapping edits at offsets {before.span.start} and {after.span.start}")
    for edit in reversed(ordered):
        text = text[:edit.span.start] + edit.replacement + text[edit.span.end:]
    return text


def _comment_safe(text: str) -> str:
    return " ".join(text.replace("#}", "# }").replace("{#", "{ #").split())


def _header(template: ChatTemplate, origin: str | None, strategy: Strategy, sites: Sequence[RewrittenSite],
            policy: MergePolicy | None, newline: str) -> str:
    if origin is None:
        origin = template.origin
        if template.repo_id:
            origin = f"{template.repo_id}@{template.commit or 'unknown'} ({template.name})"
    lines = [
        f"{{# templatekit {__version__} relax (strategy: {strategy})",
        f"   source: {origin} sha256:{template.sha256}",
    ]
    if policy is not None:
        lines.append(f"   {policy.describe()}")
    lines += [f"   rewritten: line {site.line}:{site.column} {site.edit}: {site.message}" for site in sites]
    return _comment_safe_lines(lines, newline) + newline + "#}" + newline


def _comment_safe_lines(lines: list[str], newline: str) -> str:
    return newline.join(line.replace("#}", "# }") for line in lines)


def _merge_block(policy: MergePolicy, newline: str) -> str:
    """Jinja that rebinds ``messages`` to :func:`normalize`'s result (portable to minijinja).

    Lists built with ``+`` or slices pass through ``| list``: minijinja's ``is sequence`` is
    false for them, so a third message of a run would not join a merged list content.
    """
    roles = "[" + ", ".join(f"'{role}'" for role in policy.roles) + "]"
    role = ("('system' if tk_message.role == 'developer' else tk_message.role)"
            if policy.developer_as_system else "tk_message.role")
    appended = ("(dict(tk_message, role='system') if tk_message.role == 'developer' else tk_message)"
                if policy.developer_as_system else "tk_message")
    lines = [
        "{#- templatekit: merge runs of same-role messages (templatekit.normalize, strategy merge) #}",
        "{%- set tk = namespace(merged=[]) %}",
        "{%- for tk_message in messages %}",
        f"{{%- set tk_role = {role} %}}",
        "{%- set tk_last = tk.merged[-1] if tk.merged else none %}",
        "{%- set tk_same_run = tk_last is not none and tk_last.role == tk_role and tk_role in " + roles
        + " and not tk_last.tool_calls and not tk_message.tool_calls %}",
        f"{{%- if tk_same_run and {_joinable_content('tk_last.content')}"
        f" and {_joinable_content('tk_message.content')} %}}",
        "{%- set tk_a = tk_last.content if tk_last.content is defined else none %}",
        "{%- set tk_b = tk_message.content if tk_message.content is defined else none %}",
        "{%- if tk_a is none %}{% set tk_content = tk_b %}",
        "{%- elif tk_b is none %}{% set tk_content = tk_a %}",
        "{%- elif tk_a is string and tk_b is string %}{% set tk_content = tk_a ~ '\\n\\n' ~ tk_b %}",
        "{%- else %}",
        "{%- set tk_a = [{'type': 'text', 'text': tk_a}] if tk_a is string else tk_a %}",
        "{%- set tk_b = [{'type': 'text', 'text': tk_b}] if tk_b is string else tk_b %}",
        "{%- if tk_a and tk_b and tk_a[-1].type == 'text' and tk_b[0].type == 'text' %}",
        "{%- set tk_content = (tk_a[:-1] + [dict(tk_a[-1], text=tk_a[-1].text ~ '\\n\\n' ~ tk_b[0].text)]"
        " + tk_b[1:]) | list %}",
        "{%- else %}{% set tk_content = (tk_a + tk_b) | list %}",
        "{%- endif %}",
        "{%- endif %}",
        "{%- set tk.merged = tk.merged[:-1] + [dict(tk_last, content=tk_content)] %}",
        "{%- else %}",
        f"{{%- set tk.merged = tk.merged + [{appended}] %}}",
        "{%- endif %}",
        "{%- endfor %}",
        "{%- set messages = tk.merged | list %}",
    ]
    return newline.join(lines) + newline


def _joinable_content(value: str) -> str:
    """Jinja test mirroring :func:`_joinable_value`: a string, nothing, or a list of parts."""
    return (f"({value} is string or {value} is none or {value} is undefined"
            f" or ({value} is sequence and {value} is not mapping))")


# --- normalize -----------------------------------------------------------------------------

def normalize(messages: Sequence[Mapping[str, Any]], strategy: Strategy = "merge", *,
              template: str | ChatTemplate | None = None) -> list[dict[str, Any]]:
    """The conversation a relaxed template renders: ``merge`` joins same-role runs.

    With ``template``, only the runs that template rejects are merged (its
    :func:`merge_policy`); without, runs of user, assistant and system messages are merged.
    ``skip`` returns the messages unchanged.  Tool messages, and assistant messages that
    carry ``tool_calls``, are never merged.  The input is not modified.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; expected one of {', '.join(STRATEGIES)}")
    result = [dict(message) for message in messages]
    if strategy == "skip":
        return result
    policy = merge_policy(template) if template is not None else MergePolicy()
    merged: list[dict[str, Any]] = []
    for message in result:
        if policy.developer_as_system and message.get("role") == "developer":
            message = {**message, "role": "system"}
        last = merged[-1] if merged else None
        if last is not None and _joinable(last, message, policy):
            merged[-1] = {**last, "content": _join(last.get("content"), message.get("content"))}
        else:
            merged.append(message)
    return merged


def _joinable(last: Mapping[str, Any], message: Mapping[str, Any], policy: MergePolicy) -> bool:
    return (last.get("role") == message.get("role") and message.get("role") in policy.roles
            and not last.get("tool_calls") and not message.get("tool_calls")
            and _joinable_value(last.get("content")) and _joinable_value(message.get("content")))


def _joinable_value(content: Any) -> bool:
    return content is None or isinstance(content, (str, list, tuple))


def _join(first: Any, second: Any) -> Any:
    if first is None:
        return copy.deepcopy(second)
    if second is None:
        return copy.deepcopy(first)
    if isinstance(first, str) and isinstance(second, str):
        return first + SEPARATOR + second
    head = [{"type": "text", "text": first}] if isinstance(first, str) else list(first)
    tail = [{"type": "text", "text": second}] if isinstance(second, str) else list(second)
    if head and tail and _is_text_part(head[-1]) and _is_text_part(tail[0]):
        # str() and "" for a missing text mirror Jinja's ``~`` on any value and on undefined
        joined = {**head[-1], "text": str(head[-1].get("text", "")) + SEPARATOR + str(tail[0].get("text", ""))}
        return head[:-1] + [joined] + tail[1:]
    return head + tail


def _is_text_part(part: Any) -> bool:
    return isinstance(part, Mapping) and part.get("type") == "text"


# --- merge policy --------------------------------------------------------------------------

_BASES: tuple[tuple[str, ...], ...] = (
    ("user",), ("user", "assistant"), ("user", "assistant", "user"), ("user", "assistant", "user", "assistant"),
    ("system", "user"), ("system", "user", "assistant"), ("system", "user", "assistant", "user"),
    ("assistant", "user"), ("assistant", "user", "assistant"),
)


def merge_policy(template: str | ChatTemplate) -> MergePolicy:
    """Which same-role runs ``template`` never accepts, found by rendering probes.

    A role is merged only when every probe conversation with two adjacent messages of that
    role is rejected, with every flag the template tests set either way, with and without
    tools, and with string and list-of-parts contents (so merging cannot change any output
    the template produces);
    ``developer`` is read as ``system`` only when the template never mentions ``developer``
    and rejects every probe with a developer message.
    """
    chat_template = template if isinstance(template, ChatTemplate) else ChatTemplate(text=template)
    return _merge_policy(chat_template.text, tuple(sorted(chat_template.special_tokens.items())))


@lru_cache(maxsize=128)
def _merge_policy(text: str, special_tokens: tuple[tuple[str, str], ...]) -> MergePolicy:
    from .probes import PROBE_TOOL

    analysis = analyze(parse(text))
    tokens = {**placeholder_tokens(analysis.undeclared), **dict(special_tokens)}
    # each flag the template tests (enable_thinking, ...), and tools if it reads them, may change what it accepts
    contexts = [tokens, *([{**tokens, "tools": [PROBE_TOOL]}] if "tools" in analysis.undeclared else []),
                *({**tokens, flag: value} for flag in sorted(analysis.flags) for value in (True, False))]
    merged = set(MERGEABLE_ROLES)
    developer_as_system = "developer" not in text
    for variables in contexts:
        for parts in (False, True):  # a check may only look at string contents
            accepted = [base for base in _BASES if _accepts(text, _conversation(base, parts), variables)]
            merged -= {role for role in merged if any(
                _accepts(text, probe, variables) for probe in _adjacent_probes(accepted, role, parts))}
            developer_as_system = developer_as_system and not any(
                _accepts(text, probe, variables) for probe in _developer_probes(accepted, parts))
    return MergePolicy(tuple(role for role in MERGEABLE_ROLES if role in merged), developer_as_system)


def placeholder_tokens(undeclared: frozenset[str]) -> dict[str, str]:
    """``<bos_token>``-style stand-ins for every ``*_token`` variable a template reads.

    Servers always pass the tokenizer's special tokens; probing without them would make
    templates that concatenate ``bos_token + ...`` fail on every input.
    """
    return {name: f"<{name}>" for name in sorted(undeclared) if name.endswith("_token")}


def _conversation(roles: Sequence[str], parts: bool = False) -> list[dict[str, Any]]:
    """One message per role; contents are strings, or with ``parts`` one text part each."""
    return [{"role": role, "content": [{"type": "text", "text": f"{role} message {index}"}] if parts
             else f"{role} message {index}"} for index, role in enumerate(roles)]


def _adjacent_probes(bases: Sequence[tuple[str, ...]], role: str, parts: bool) -> list[list[dict[str, Any]]]:
    probes = []
    for base in bases:
        for index, base_role in enumerate(base):
            if base_role == role:
                probes.append(_conversation((*base[:index + 1], role, *base[index + 1:]), parts))
    probes.append(_conversation((role, role), parts))
    probes.append(_conversation((role, role, "user" if role != "user" else "assistant"), parts))
    return probes


def _developer_probes(bases: Sequence[tuple[str, ...]], parts: bool) -> list[list[dict[str, Any]]]:
    probes = [_conversation(("developer", "user"), parts), _conversation(("developer",), parts)]
    for base in bases:
        for index in range(len(base) + 1):
            probes.append(_conversation((*base[:index], "developer", *base[index:]), parts))
        for index in range(len(base)):
            probes.append(_conversation((*base[:index], "developer", *base[index + 1:]), parts))
    return probes


def _accepts(text: str, messages: list[dict[str, Any]], variables: Mapping[str, Any]) -> bool:
    for add_generation_prompt in (False, True):
        try:
            render(text, messages, add_generation_prompt=add_generation_prompt, **variables)
        except Exception:  # noqa: BLE001 - any failure means "rejected"; rendering is sandboxed
            continue
        return True
    return False
