"""Lint configuration: ``[tool.templatekit]`` in pyproject.toml, and inline suppressions.

pyproject.toml (the first one with a ``[tool.templatekit]`` table, walking up from the
current directory)::

    [tool.templatekit]
    select = ["ALL"]          # codes, code prefixes ("TK1") or rule names; default: all rules
    ignore = ["TK202"]        # taken out of select
    fail-on = "warning"       # exit 1 on findings at or above: error | warning | info

Inline, in a Jinja comment on the line of the finding or the line before::

    {# templatekit: ignore[TK101] reason: we only serve strictly alternating chats #}

A suppression without ``reason:`` still applies, but is reported itself (TK002).  Findings
about the template as a whole are reported at line 1: a comment on the first line covers them.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ConfigError
from .findings import Finding, Severity
from .records import Record

if TYPE_CHECKING:
    from .syntax import Span

__all__ = ["Config", "Suppression", "load_config", "suppressions", "apply_suppressions", "DEFAULT_FAIL_ON"]

DEFAULT_FAIL_ON = Severity.WARNING
# (strings: compiled on first use, by a template with comments)
_SUPPRESSION = r"(?s)^\s*templatekit:\s*ignore\[(?P<codes>[^\]]*)\](?P<rest>.*)$"
_REASON = r"(?s)^\s*reason:\s*(?P<reason>\S.*?)\s*$"
_KEYS = {"select", "ignore", "fail-on"}


class Config(Record):
    """Lint settings; ``path`` is the pyproject.toml they came from (``None``: defaults)."""

    select: tuple[str, ...] | None = None
    ignore: tuple[str, ...] = ()
    fail_on: Severity = DEFAULT_FAIL_ON
    path: Path | None = None


def load_config(start: Path | None = None) -> Config:
    """The settings of the nearest pyproject.toml with ``[tool.templatekit]`` above ``start`` (default: cwd)."""
    folder = (start or Path.cwd()).resolve()
    for candidate in (folder, *folder.parents):
        pyproject = candidate / "pyproject.toml"
        if pyproject.is_file():
            table = _templatekit_table(pyproject)
            if table is not None:
                return _config_from(table, pyproject)
    return Config()


def _templatekit_table(pyproject: Path) -> dict[str, Any] | None:
    text = pyproject.read_text(encoding="utf-8")
    if "templatekit" not in text:
        return None
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # the floor is 3.10, whose standard library has no TOML reader
        import tomli as tomllib

    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{pyproject}: invalid TOML: {error}", path=str(pyproject)) from None
    table = data.get("tool", {}).get("templatekit")
    if table is not None and not isinstance(table, dict):
        raise ConfigError(f"{pyproject}: [tool.templatekit] must be a table", path=str(pyproject))
    return table


def _config_from(table: dict[str, Any], pyproject: Path) -> Config:
    unknown = sorted(set(table) - _KEYS)
    if unknown:
        raise ConfigError(
            f"{pyproject}: unknown [tool.templatekit] key(s): {', '.join(unknown)} "
            f"(expected {', '.join(sorted(_KEYS))})",
            path=str(pyproject),
        )
    select = table.get("select")
    ignore = table.get("ignore", [])
    for key, value in (("select", select), ("ignore", ignore)):
        if value is not None and not (isinstance(value, list) and all(isinstance(item, str) for item in value)):
            raise ConfigError(
                f"{pyproject}: [tool.templatekit] {key} must be a list of rule codes or names", path=str(pyproject)
            )
    fail_on = table.get("fail-on", DEFAULT_FAIL_ON.value)
    try:
        severity = Severity(fail_on)
    except ValueError:
        raise ConfigError(
            f"{pyproject}: [tool.templatekit] fail-on must be one of error, warning, info; found {fail_on!r}",
            path=str(pyproject),
        ) from None
    return Config(tuple(select) if select is not None else None, tuple(ignore), severity, pyproject)


class Suppression(Record):
    """One ``{# templatekit: ignore[...] reason: ... #}`` comment."""

    selectors: tuple[str, ...]
    reason: str | None
    span: Span
    first_line: int
    last_line: int

    def covers(self, line: int) -> bool:
        """The comment's own lines and the line after it."""
        return self.first_line <= line <= self.last_line + 1


def suppressions(source: str) -> tuple[Suppression, ...]:
    """Every suppression comment of ``source`` (found even when the template does not parse)."""
    from .syntax import line_column, scan_tags  # jinja2: not needed to read the settings

    found = []
    for tag in scan_tags(source):
        if tag.kind != "comment":
            continue
        match = re.match(_SUPPRESSION, tag.inner.text(source))
        if match is None:
            continue
        selectors = tuple(item.strip() for item in match.group("codes").split(",") if item.strip())
        reason = re.match(_REASON, match.group("rest"))
        found.append(
            Suppression(
                selectors,
                reason.group("reason") if reason else None,
                tag.span,
                line_column(source, tag.span.start)[0],
                line_column(source, tag.span.end)[0],
            )
        )
    return tuple(found)


def apply_suppressions(findings: Iterable[Finding], comments: Sequence[Suppression]) -> list[Finding]:
    """``findings`` without those a suppression comment covers (by code or rule name)."""

    def suppressed(finding: Finding) -> bool:
        return any(
            comment.covers(finding.line)
            and any(
                selector.upper() == finding.code or selector.lower() == finding.name for selector in comment.selectors
            )
            for comment in comments
        )

    return [finding for finding in findings if not suppressed(finding)]
