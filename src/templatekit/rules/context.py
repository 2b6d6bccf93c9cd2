"""What rules share about one template: the parse, the analysis and the probe results.

Everything is computed lazily and at most once, so a rule that is not selected costs nothing
and probes shared by several rules (witnesses, capabilities) run once.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cached_property
from typing import TYPE_CHECKING

from ..config import Suppression, suppressions
from ..errors import TemplateSyntaxError
from ..escapes import Escape, blocks_rendering, find_escapes
from ..findings import Finding
from ..probes import DEFAULT_BUDGET
from ..syntax import ParsedTemplate, Span, parse

if TYPE_CHECKING:
    from ..analysis import Analysis
    from ..cases import Case
    from ..errors import RenderBudgetExceeded
    from ..probes import Capability, Harness, Outcome
    from ..sources import ChatTemplate
    from .registry import Hit, Rule

__all__ = ["LintContext"]


class LintContext:
    """One template being linted.  ``probe=False`` skips every rule that renders.

    ``reference`` is the template it was converted from, when known (drift rules compare them).
    """

    def __init__(
        self,
        template: ChatTemplate,
        probe: bool = True,
        budget: int = DEFAULT_BUDGET,
        reference: ChatTemplate | None = None,
    ) -> None:
        self.template = template
        self.probe = probe
        self.budget = budget
        self.reference = reference
        # the render budget the probes ran out of, if they did (no rule renders after that)
        self.exceeded: list[RenderBudgetExceeded] = []

    @property
    def source(self) -> str:
        return self.template.text

    @cached_property
    def _parse(self) -> ParsedTemplate | TemplateSyntaxError:
        try:
            return parse(self.source, name=self.template.name)
        except TemplateSyntaxError as error:
            return error

    @property
    def parsed(self) -> ParsedTemplate | None:
        return self._parse if isinstance(self._parse, ParsedTemplate) else None

    @property
    def syntax_error(self) -> TemplateSyntaxError | None:
        return self._parse if isinstance(self._parse, TemplateSyntaxError) else None

    @cached_property
    def analysis(self) -> Analysis | None:
        from ..analysis import analyze

        return analyze(self.parsed) if self.parsed is not None else None

    @cached_property
    def escapes(self) -> tuple[Escape, ...]:
        """Sandbox-escape attempts found statically (``()`` when the template does not parse)."""
        return find_escapes(self.parsed) if self.parsed is not None else ()

    @cached_property
    def harness(self) -> Harness | None:
        """The probing harness; ``None`` when probing is off, the template does not parse, or
        it tries to escape the sandbox (such templates are never rendered)."""
        if not self.probe or self.parsed is None or self.exceeded or blocks_rendering(self.escapes):
            return None
        from ..probes import harness_for

        return harness_for(self.parsed, self.analysis, self.template.special_tokens)

    @cached_property
    def witnesses(self) -> Mapping[int, Case | None] | None:
        """Site index -> witness (or ``None``: unreachable); ``None`` when not probing."""
        if self.harness is None:
            return None
        from ..probes import find_witnesses

        return find_witnesses(
            self.parsed, self.analysis, budget=self.budget, special_tokens=self.template.special_tokens
        )

    @cached_property
    def capabilities(self) -> Mapping[str, Capability] | None:
        if self.harness is None:
            return None
        from ..probes import capabilities

        return capabilities(self.harness)

    @cached_property
    def tool_formats(self) -> Mapping[str, Outcome] | None:
        """``[user]`` rendered with a tool in each of ``probes.TOOL_FORMATS``; ``None`` when not probing."""
        if self.harness is None:
            return None
        from ..probes import tool_formats

        return tool_formats(self.harness)

    @cached_property
    def suppressions(self) -> tuple[Suppression, ...]:
        return suppressions(self.source)

    @property
    def report_path(self) -> str:
        """How reports name the template's file: the Hub origin, else the local path."""
        template = self.template
        return template.origin if template.repo_id or not template.path else template.path

    def locate(self, line: int, needle: str) -> Span | None:
        """The first ``needle`` inside a tag that touches ``line`` (AST nodes only know their line)."""
        parsed = self.parsed
        if parsed is None:
            return None
        fallback = None
        for tag in parsed.tags:
            if tag.kind == "comment" or not (
                parsed.position(tag.span.start)[0] <= line <= parsed.position(tag.span.end)[0]
            ):
                continue
            offset = self.source.find(needle, tag.inner.start, tag.inner.end)
            while offset >= 0:
                span = Span(offset, offset + len(needle))
                if parsed.position(offset)[0] == line:
                    return span
                fallback = fallback or span
                offset = self.source.find(needle, offset + 1, tag.inner.end)
        return fallback

    def finding(self, rule: Rule, hit: Hit) -> Finding:
        """The :class:`Finding` for ``hit`` of ``rule`` in this template."""
        from ..syntax import line_column

        line, column, end_line, end_column = hit.line or 1, hit.column or 1, None, None
        if hit.span is not None:
            line, column = line_column(self.source, hit.span.start)
            end_line, end_column = line_column(self.source, hit.span.end)
        return Finding(
            code=rule.code,
            name=rule.name,
            severity=rule.severity,
            message=hit.message,
            path=self.report_path,
            line=line,
            column=column,
            end_line=end_line,
            end_column=end_column,
            span=hit.span,
            template_name=self.template.name,
            witness=hit.witness,
            fix=hit.fix,
        )
