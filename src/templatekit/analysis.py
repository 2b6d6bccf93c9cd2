"""Static analysis of ``raise_exception`` call sites on jinja2's AST.

For every site: where it is, the message, the path condition (enclosing ``if`` tests and
loops, following aliases of ``messages``) and a class decided from the structure of the
condition (``alternation``, ``system-role``, ``role-unsupported``, ``content-type``,
``tool-call``, ``other``).  Like jinja2's ``meta`` module this is plain functions over
``nodes.Template``; it never renders.  Whether a site is live is the job of
:mod:`templatekit.probes` (witness search).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import jinja2.nodes as nodes

from .syntax import ParsedTemplate, Span

__all__ = ["CheckClass", "Condition", "Loop", "Guard", "RaiseSite", "Analysis", "analyze", "CHECK_CLASSES"]

CheckClass = Literal["alternation", "system-role", "role-unsupported", "content-type", "tool-call", "other"]
CHECK_CLASSES: tuple[CheckClass, ...] = (
    "alternation", "system-role", "role-unsupported", "content-type", "tool-call", "other")


@dataclass(frozen=True)
class Condition:
    """One enclosing test on the path to a site; ``negated`` when the site is in its else side."""

    text: str
    negated: bool
    line: int

    def __str__(self) -> str:
        return f"not ({self.text})" if self.negated else self.text


@dataclass(frozen=True)
class Loop:
    """An enclosing ``for`` loop: its target, what it iterates, and whether that is ``messages``."""

    target: str
    iterable: str
    over_messages: bool
    line: int


@dataclass(frozen=True)
class Guard:
    """The innermost ``if`` around a site, as the rewrite needs it.

    ``test_span`` is the exact source span of the test (``None`` if it could not be located);
    ``branch`` is ``"body"`` when the site is in the if's own body, ``"else"`` otherwise;
    ``only_raise`` is true when that branch holds nothing but the raise (and whitespace).
    """

    test_span: Span | None
    branch: Literal["body", "else"]
    only_raise: bool
    line: int


@dataclass(frozen=True)
class RaiseSite:
    """One ``raise_exception(...)`` call site."""

    index: int
    line: int
    column: int
    span: Span | None
    call_text: str
    message: str
    message_is_literal: bool
    conditions: tuple[Condition, ...]
    loops: tuple[Loop, ...]
    check_class: CheckClass
    guard: Guard | None
    macro: str | None = None


@dataclass(frozen=True)
class Analysis:
    """Everything :func:`analyze` found in one template."""

    sites: tuple[RaiseSite, ...]
    message_aliases: frozenset[str]
    string_constants: frozenset[str]
    undeclared: frozenset[str]

    def of_class(self, check_class: CheckClass) -> tuple[RaiseSite, ...]:
        return tuple(site for site in self.sites if site.check_class == check_class)


def analyze(parsed: ParsedTemplate) -> Analysis:
    """Find and classify every ``raise_exception`` site of ``parsed``."""
    raise NotImplementedError  # being written by the lead
