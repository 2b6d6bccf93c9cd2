"""SARIF 2.1.0 output for code-scanning services (GitHub code scanning, Azure DevOps...)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import PureWindowsPath
from typing import Any
from urllib.parse import quote

from .. import __version__
from ..findings import Finding, Severity
from ..rules.registry import Rule

__all__ = ["SARIF_SCHEMA", "render"]

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
_LEVELS = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "note"}


def render(findings: Sequence[Finding], rules: Iterable[Rule]) -> str:
    """One SARIF run: ``rules`` (those that ran) as the driver's rules, one result per finding."""
    described = sorted({rule.code: rule for rule in rules}.values(), key=lambda rule: rule.code)
    index = {rule.code: position for position, rule in enumerate(described)}
    run = {
        "tool": {
            "driver": {
                "name": "templatekit",
                "version": __version__,
                "rules": [_rule(rule) for rule in described],
            }
        },
        "columnKind": "unicodeCodePoints",
        "results": [_result(finding, index.get(finding.code)) for finding in findings],
    }
    return json.dumps({"$schema": SARIF_SCHEMA, "version": "2.1.0", "runs": [run]}, indent=2, ensure_ascii=False) + "\n"


def _rule(rule: Rule) -> dict[str, Any]:
    return {
        "id": rule.code,
        "name": "".join(word.capitalize() for word in rule.name.split("-")),
        "shortDescription": {"text": rule.summary},
        "fullDescription": {"text": rule.summary},
        "help": {"text": rule.doc, "markdown": rule.doc},
        "defaultConfiguration": {"level": _LEVELS[rule.severity]},
        "properties": {"tags": [rule.name]},
    }


def _result(finding: Finding, rule_index: int | None) -> dict[str, Any]:
    region: dict[str, int] = {"startLine": finding.line, "startColumn": finding.column}
    if finding.end_line is not None and finding.end_column is not None:
        region |= {"endLine": finding.end_line, "endColumn": finding.end_column}
    result: dict[str, Any] = {
        "ruleId": finding.code,
        "level": _LEVELS[finding.severity],
        "message": {"text": finding.message + (f" ({finding.fix.message})" if finding.fix else "")},
        "locations": [{"physicalLocation": {"artifactLocation": {"uri": _uri(finding.path)}, "region": region}}],
    }
    if rule_index is not None:
        result["ruleIndex"] = rule_index
    properties: dict[str, Any] = {}
    if finding.template_name != "default":
        properties["templateName"] = finding.template_name
    if finding.witness is not None:
        properties["witness"] = finding.witness.to_dict()
    if properties:
        result["properties"] = properties
    return result


def _uri(path: str) -> str:
    """A relative URI reference for a path (forward slashes, percent-encoded)."""
    return quote(PureWindowsPath(path).as_posix() if "\\" in path else path, safe="/@:")
