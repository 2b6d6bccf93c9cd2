"""Reporters: pure functions from findings to text (``render(findings, ...) -> str``).

``text`` for people, ``json`` (versioned schema, docs/lint-json.md) for scripts,
``sarif`` (SARIF 2.1.0) for code-scanning services, ``github`` for workflow annotations.
"""

from __future__ import annotations

FORMATS = ("text", "json", "sarif", "github")

__all__ = ["FORMATS"]
