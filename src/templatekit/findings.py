"""Lint findings: what a rule found, where, how severe, and the conversation that proves it.

Findings are plain frozen data (like pyflakes' message objects): rules create them,
reporters format them, only the CLI prints them.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import Enum
from typing import TYPE_CHECKING, Any, Literal

from .records import Record

if TYPE_CHECKING:
    from .cases import Case
    from .syntax import Span

__all__ = ["Severity", "Fix", "Applicability", "Finding", "sort_findings"]


class Severity(str, Enum):
    """How bad a finding is; ``--fail-on`` compares against this order."""

    INFO = "info"
    WARNING = "warning"
    ERROR = "error"

    @property
    def rank(self) -> int:
        return _RANKS[self]

    def at_least(self, other: Severity | str) -> bool:
        """Whether this severity is ``other`` or worse."""
        return self.rank >= Severity(other).rank


_RANKS = {Severity.INFO: 0, Severity.WARNING: 1, Severity.ERROR: 2}

Applicability = Literal["safe", "unsafe", "display-only"]


class Fix(Record):
    """How to fix a finding (as ruff's fixes): ``message`` the one-line hint, ``applicability``
    ``safe`` (a command applies it and every conversation the template rendered renders the same),
    ``unsafe`` (a command applies it, and what renders may change: review it) or ``display-only``
    (a change to make by hand).  The rule's *Fix safety* section explains it."""

    message: str
    applicability: Applicability


class Finding(Record):
    """One problem a rule found in one template.

    ``line``/``column`` are 1-based positions in the template text (``1:1`` for findings
    about the template as a whole); ``span`` holds the exact character offsets when known.
    ``path`` names the file (or Hub origin) for reports, ``template_name`` which of its
    templates.  ``witness`` is a conversation that demonstrates the finding, when one exists;
    ``fix`` how to fix it, when something does.
    """

    code: str
    name: str
    severity: Severity
    message: str
    path: str
    line: int = 1
    column: int = 1
    end_line: int | None = None
    end_column: int | None = None
    span: Span | None = None
    template_name: str = "default"
    witness: Case | None = None
    fix: Fix | None = None

    @property
    def sort_key(self) -> tuple[Any, ...]:
        return (self.path, self.template_name, self.line, self.column, self.code, self.message)

    @property
    def location(self) -> str:
        """``path`` plus ``[name]`` when the file holds several named templates."""
        return self.path if self.template_name == "default" else f"{self.path}[{self.template_name}]"

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data (the ``findings`` items of the JSON report)."""
        return {
            "code": self.code,
            "name": self.name,
            "severity": self.severity.value,
            "message": self.message,
            "path": self.path,
            "template_name": self.template_name,
            "line": self.line,
            "column": self.column,
            "end_line": self.end_line,
            "end_column": self.end_column,
            "fix": self.fix.message if self.fix is not None else None,
            "fix_applicability": self.fix.applicability if self.fix is not None else None,
            "witness": self.witness.to_dict() if self.witness is not None else None,
        }


def sort_findings(findings: Iterable[Finding]) -> list[Finding]:
    """Findings in a stable order: path, template, line, column, code, message."""
    return sorted(findings, key=lambda finding: finding.sort_key)
