"""Machine output: one JSON document, schema ``templatekit-lint`` version 1 (docs/lint-json.md)."""

from __future__ import annotations

import json
from collections.abc import Sequence

from .. import __version__
from ..findings import Finding, Severity

__all__ = ["SCHEMA", "SCHEMA_VERSION", "render"]

SCHEMA = "templatekit-lint"
SCHEMA_VERSION = 1


def render(findings: Sequence[Finding]) -> str:
    """The findings as a JSON document (keys documented in docs/lint-json.md)."""
    document = {
        "schema": SCHEMA,
        "version": SCHEMA_VERSION,
        "templatekit": __version__,
        "summary": {
            severity.value: sum(finding.severity is severity for finding in findings)
            for severity in (Severity.ERROR, Severity.WARNING, Severity.INFO)
        },
        "findings": [finding.to_dict() for finding in findings],
    }
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"
