"""GitHub Actions workflow commands: one ``::error``/``::warning``/``::notice`` annotation per finding."""

from __future__ import annotations

from collections.abc import Sequence

from ..findings import Finding, Severity

__all__ = ["render"]

_COMMANDS = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "notice"}


def _data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _property(text: str) -> str:
    return _data(text).replace(":", "%3A").replace(",", "%2C")


def render(findings: Sequence[Finding]) -> str:
    """``::error file=PATH,line=L,col=C,endLine=..,endColumn=..,title=CODE::message`` lines."""
    lines = []
    for finding in findings:
        properties = [f"file={_property(finding.path)}", f"line={finding.line}", f"col={finding.column}"]
        if finding.end_line is not None and finding.end_column is not None:
            properties += [f"endLine={finding.end_line}", f"endColumn={finding.end_column}"]
        properties.append(f"title={finding.code}")
        message = (
            finding.message if finding.template_name == "default" else f"[{finding.template_name}] {finding.message}"
        )
        if finding.fix:
            message += f"\n{finding.fix.message}"
        lines.append(f"::{_COMMANDS[finding.severity]} {','.join(properties)}::{_data(message)}")
    return "".join(line + "\n" for line in lines)
