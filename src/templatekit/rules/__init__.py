"""Lint rules and :func:`lint`, the library entry point.

Rule families, one module each (codes are stable):

* ``syntax``       TK001-TK004  Jinja syntax errors, suppressions without a reason, empty template, BOM
* ``raise_sites``  TK101-TK107  ``raise_exception`` sites by class, and unreachable ones
* ``capabilities`` TK201-TK210  what the template renders (system, tools, tool calls...), tool formats
* ``drops``        TK301        accepted messages whose text never reaches the output
* ``content``      TK302-TK303  Python values and content-triggered text in the prompt
* ``determinism``  TK401-TK403  clock-dependent and random output, prompts that are not prefix-stable
* ``tokens``       TK501-TK502  double BOS, missing EOS
* ``security``     TK601-TK602  sandbox-escape attempts (static)
* ``drift``        TK701        differences from the template it was converted from (``against=``)
* ``portability``  TK801-TK802  constructs other servers' engines reject or render differently
* ``budget``       TK901        rendering that exceeds the render budget
"""

from __future__ import annotations

from collections.abc import Sequence

from ..config import apply_suppressions
from ..environment import command_budget
from ..errors import RenderBudgetExceeded
from ..findings import Finding, sort_findings
from ..probes import DEFAULT_BUDGET
from ..sources import ChatTemplate, from_text
from . import (  # noqa: F401 - registers
    capabilities,
    content,
    determinism,
    drift,
    drops,
    portability,
    raise_sites,
    security,
    syntax,
    tokens,
)
from .budget import BUDGET_RULE
from .context import LintContext
from .registry import DOC_SECTIONS, RULES, Rule, doc_pages, get_rule, rule_markdown, select_rules

__all__ = ["lint", "RULES", "Rule", "DOC_SECTIONS", "get_rule", "select_rules", "rule_markdown", "doc_pages"]

_UNSUPPRESSIBLE = {"TK002"}


# Rendering one template may take this long in all (every probe and the witness search).
LINT_SECONDS = 10.0


def lint(
    template: ChatTemplate | str,
    *,
    select: Sequence[str] | None = None,
    ignore: Sequence[str] | None = None,
    probe: bool = True,
    budget: int = DEFAULT_BUDGET,
    against: ChatTemplate | None = None,
    seconds: float = LINT_SECONDS,
) -> list[Finding]:
    """Lint one chat template; findings sorted by position.

    ``select``/``ignore`` take codes (``TK101``), code prefixes (``TK1``), rule names
    (``alternation-check``) or ``ALL``; an unknown selector raises ``ValueError``.
    ``probe=False`` skips every rule that renders the template (static rules only);
    ``budget`` bounds the renders the witness search spends, ``seconds`` the time all renders
    take together; each render has the default render budget.  A template that exceeds a
    budget is a TK901 finding and no further rule renders it.  Inline
    ``{# templatekit: ignore[CODE] reason: ... #}`` comments are applied.  A template that
    does not parse yields a TK001 finding, never an exception.  ``against`` is the template
    this one was converted from (a GGUF file's Hub repo): TK701 reports where they differ.
    """
    if isinstance(template, str):
        template = from_text(template)
    context = LintContext(template, probe=probe, budget=budget, reference=against)
    findings = []
    with command_budget(seconds, "lint"):
        for chosen in select_rules(select, ignore):
            if chosen.renders and (not probe or (context.exceeded and chosen.code != BUDGET_RULE)):
                continue
            try:
                findings += [context.finding(chosen, hit) for hit in chosen.check(context)]
            except RenderBudgetExceeded as error:
                context.exceeded.append(error)
    kept = apply_suppressions(
        [finding for finding in findings if finding.code not in _UNSUPPRESSIBLE], context.suppressions
    )
    return sort_findings([*kept, *(finding for finding in findings if finding.code in _UNSUPPRESSIBLE)])
