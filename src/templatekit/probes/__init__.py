"""Everything that learns about a template by rendering it, in the server-faithful sandbox.

``harness`` (the compiled template, placeholder tokens, probe tool, :class:`Outcome`, renders
as servers render), ``witnesses`` (a minimal :class:`~templatekit.cases.Case` per raise site),
``capabilities`` (what each kind of input does: capabilities, drops, leaks, tool formats,
prefix breaks, tool-call format, clock, tokens), ``shape`` (the conversations a template
accepts) and ``merge_policy`` (the role policy of relax's normalisation).  Static facts that
need no render live in :mod:`templatekit.analysis`.

The names the lint rules use are exported here.
"""

from __future__ import annotations

from .capabilities import (
    Capability,
    Drop,
    capabilities,
    clock_dependence,
    content_triggered_text,
    eos_after_assistant,
    leading_bos_count,
    prefix_break,
    python_values,
    renders_tool,
    silent_drops,
    tool_call_format,
    tool_formats,
)
from .harness import PLACEHOLDER_TOKENS, PROBE_TOOL, Harness, Outcome, harness_for, text_harness
from .witnesses import DEFAULT_BUDGET, MAX_MESSAGES, find_witnesses

__all__ = [
    "DEFAULT_BUDGET",
    "MAX_MESSAGES",
    "PLACEHOLDER_TOKENS",
    "PROBE_TOOL",
    "Capability",
    "Drop",
    "Harness",
    "Outcome",
    "capabilities",
    "clock_dependence",
    "content_triggered_text",
    "eos_after_assistant",
    "find_witnesses",
    "harness_for",
    "leading_bos_count",
    "prefix_break",
    "python_values",
    "renders_tool",
    "silent_drops",
    "text_harness",
    "tool_call_format",
    "tool_formats",
]
