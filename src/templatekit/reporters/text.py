"""Human output: ``path:line:col: CODE message``, coloured only when asked (on a terminal)."""

from __future__ import annotations

from collections.abc import Sequence

from ..findings import Finding, Severity

__all__ = ["render"]

_COLOURS = {Severity.ERROR: "31", Severity.WARNING: "33", Severity.INFO: "36"}


def _style(text: str, code: str, color: bool) -> str:
    return f"\x1b[{code}m{text}\x1b[0m" if color else text


def render(findings: Sequence[Finding], *, color: bool = False) -> str:
    """One line per finding, a ``help:`` line under fixable ones, and a summary line."""
    lines = []
    for finding in findings:
        where = _style(f"{finding.location}:{finding.line}:{finding.column}:", "1", color)
        code = _style(finding.code, f"1;{_COLOURS[finding.severity]}", color)
        lines.append(f"{where} {code} {finding.message}")
        if finding.fix:
            lines.append(f"  {_style('help:', '1;32', color)} {finding.fix.message}")
    lines.append(summary(findings))
    return "\n".join(lines) + "\n"


def summary(findings: Sequence[Finding]) -> str:
    """``Found 3 findings (1 error, 2 warnings).`` or ``No findings.``"""
    if not findings:
        return "No findings."
    counts = [
        (severity, sum(finding.severity is severity for finding in findings))
        for severity in (Severity.ERROR, Severity.WARNING, Severity.INFO)
    ]
    parts = ", ".join(f"{count} {severity.value}{'s' if count != 1 else ''}" for severity, count in counts if count)
    return f"Found {len(findings)} finding{'s' if len(findings) != 1 else ''} ({parts})."
