"""Reporters: pure functions from findings to text (``render(findings, ...) -> str``).

``text`` for people, ``json`` (versioned schema, docs/lint-json.md) for scripts,
``sarif`` (SARIF 2.1.0) for code-scanning services, ``github`` for workflow annotations.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..findings import Finding
    from ..rules import Rule

FORMATS = ("text", "json", "sarif", "github")

__all__ = ["FORMATS", "render"]


def render(output_format: str, findings: Sequence[Finding], rules: Sequence[Rule], *, color: bool = False) -> str:
    """The report of ``findings`` in one of :data:`FORMATS` (``rules``: the ones that ran, for SARIF;
    ``color``: for text)."""
    if output_format == "json":
        from . import json

        return json.render(findings)
    if output_format == "sarif":
        from . import sarif

        return sarif.render(findings, rules)
    if output_format == "github":
        from . import github

        return github.render(findings)
    from . import text

    return text.render(findings, color=color)
