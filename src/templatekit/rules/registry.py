"""The rule registry: codes, names, severities and the docs that come from docstrings.

A rule is a function ``check(context) -> Iterable[Hit]`` registered with :func:`rule`.
Its docstring is the rule's documentation and must have the sections of :data:`DOC_SECTIONS`
(``templatekit rule CODE`` prints it; ``docs/rules/CODE.md`` is generated from it).
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING

from ..findings import Fix, Severity
from ..records import Record

if TYPE_CHECKING:
    from ..cases import Case
    from ..syntax import Span
    from .context import LintContext

__all__ = ["DOC_SECTIONS", "Hit", "Rule", "RULES", "rule", "get_rule", "select_rules", "rule_markdown", "doc_pages"]

DOC_SECTIONS = ("What it does", "Why is this bad?", "Example", "Use instead", "Fix safety")
_CODE = re.compile(r"^TK\d{3}$")
_NAME = re.compile(r"^[a-z]+(?:-[a-z]+)*$")
_SENTENCE_END = r"(?<=[a-z`)\]])\.\s+(?=[A-Z])"  # compiled on first use: rule docs only


class Hit(Record):
    """What a check reports; the registry turns it into a :class:`~templatekit.findings.Finding`.

    Give ``span`` (exact offsets) when known, else ``line``/``column``; neither means the
    template as a whole (reported at 1:1).
    """

    message: str
    span: Span | None = None
    line: int | None = None
    column: int | None = None
    witness: Case | None = None
    fix: Fix | None = None


Check = Callable[["LintContext"], Iterable[Hit]]


class Rule(Record):
    """One lint rule.  ``renders`` rules run probes (skipped with ``probe=False``); ``opt_in``
    rules run only when selected by code, prefix or name (``ALL`` and the default leave them out:
    they cost more than a pre-commit hook should pay on every commit)."""

    code: str
    name: str
    severity: Severity
    check: Check
    renders: bool = False
    opt_in: bool = False

    @property
    def doc(self) -> str:
        return inspect.cleandoc(self.check.__doc__ or "")

    @property
    def summary(self) -> str:
        """The first sentence of *What it does*."""
        section = self.doc.split("## What it does", 1)[-1].strip()
        paragraph = section.split("\n\n", 1)[0].replace("\n", " ")
        return re.split(_SENTENCE_END, paragraph, maxsplit=1)[0].rstrip(".") + "."

    def missing_sections(self) -> list[str]:
        return [section for section in DOC_SECTIONS if f"## {section}" not in self.doc]


RULES: dict[str, Rule] = {}


def rule(
    code: str, name: str, severity: Severity, *, renders: bool = False, opt_in: bool = False
) -> Callable[[Check], Check]:
    """Register the decorated check as rule ``code``."""
    if not _CODE.match(code) or not _NAME.match(name):
        raise ValueError(f"bad rule code or name: {code} {name}")

    def register(check: Check) -> Check:
        if code in RULES or any(existing.name == name for existing in RULES.values()):
            raise ValueError(f"rule {code} {name} registered twice")
        RULES[code] = Rule(code, name, severity, check, renders, opt_in)
        return check

    return register


def get_rule(selector: str) -> Rule:
    """The rule with this code (``TK101``) or name (``alternation-check``); ``KeyError`` if none."""
    wanted = selector.strip()
    for candidate in RULES.values():
        if wanted.upper() == candidate.code or wanted.lower() == candidate.name:
            return candidate
    raise KeyError(selector)


def matches(selector: str, candidate: Rule) -> bool:
    """Whether ``selector`` (``ALL``, a code, a code prefix like ``TK1``, or a name) picks ``candidate``."""
    wanted = selector.strip()
    prefix = wanted.upper()
    return (
        prefix == "ALL"
        or (prefix.startswith("TK") and candidate.code.startswith(prefix))
        or wanted.lower() == candidate.name
    )


def select_rules(select: Sequence[str] | None = None, ignore: Sequence[str] | None = None) -> tuple[Rule, ...]:
    """The rules ``select`` picks (default: all but the opt-in ones) minus those ``ignore`` picks,
    in code order.  An opt-in rule is picked only by a selector other than ``ALL``.

    Raises ``ValueError`` naming any selector that matches no rule.
    """
    unknown = [
        selector
        for selector in (*(select or ()), *(ignore or ()))
        if not any(matches(selector, candidate) for candidate in RULES.values())
    ]
    if unknown:
        raise ValueError(f"unknown rule selector(s): {', '.join(unknown)} (see `templatekit rule --list`)")

    def picked(candidate: Rule) -> bool:
        if select is None:
            return not candidate.opt_in
        return any(
            matches(selector, candidate) and not (candidate.opt_in and selector.strip().upper() == "ALL")
            for selector in select
        )

    chosen = [
        candidate
        for candidate in sorted(RULES.values(), key=lambda item: item.code)
        if picked(candidate) and not any(matches(selector, candidate) for selector in ignore or ())
    ]
    return tuple(chosen)


def rule_markdown(candidate: Rule) -> str:
    """The rule's documentation page (``docs/rules/CODE.md``)."""
    return (
        f"# {candidate.code} {candidate.name}\n\n"
        f"Severity: **{candidate.severity.value}**"
        f"{' (renders the template in the sandbox)' if candidate.renders else ' (static)'}"
        f"{'; opt-in: runs only when selected (`--select ' + candidate.code + '`)' if candidate.opt_in else ''}\n\n"
        f"{candidate.doc}\n"
    )


def doc_pages() -> dict[str, str]:
    """``docs/rules/``: file name -> content, one page per rule and a README index."""
    ordered = sorted(RULES.values(), key=lambda item: item.code)
    index = [
        "# Lint rules",
        "",
        "Generated from the rules' docstrings by `python -m templatekit.rules docs/rules`; "
        "`templatekit rule CODE` prints the same text.",
        "",
        "| Code | Name | Severity | What it does |",
        "| --- | --- | --- | --- |",
    ]
    index += [
        f"| [{item.code}]({item.code}.md) | {item.name} | {item.severity.value} | {_cell(item.summary)} |"
        for item in ordered
    ]
    return {"README.md": "\n".join(index) + "\n", **{f"{item.code}.md": rule_markdown(item) for item in ordered}}


def _cell(text: str) -> str:
    return text.replace("|", "\\|")
