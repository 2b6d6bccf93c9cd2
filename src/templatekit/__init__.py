"""templatekit: lint and repair the Jinja chat templates shipped with open LLMs.

The public API is imported lazily so that ``import templatekit`` stays cheap (the
pre-commit hook and ``templatekit --help`` start in a fraction of a second).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS = {
    "load": "templatekit.sources",
    "ChatTemplate": "templatekit.sources",
    "TemplateSource": "templatekit.sources",
    "render": "templatekit.servers",
    "TemplateRaise": "templatekit.environment",
    "parse": "templatekit.syntax",
    "analyze": "templatekit.analysis",
    "lint": "templatekit.rules",
    "relax": "templatekit.rewrite",
    "normalize": "templatekit.normalization",
    "verify": "templatekit.verification",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'templatekit' has no attribute {name!r}")
