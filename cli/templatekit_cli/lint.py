"""``templatekit lint`` and ``templatekit rule``: find template problems, explain the rules."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING

import click

from templatekit.output import write_output
from templatekit.reporters import FORMATS

from .common import Progress, fail, handle_errors, report_error, source_options
from .report import EXIT_CODES_HELP, EXIT_USAGE, LintReport

if TYPE_CHECKING:
    from templatekit.findings import Finding
    from templatekit.sources import ChatTemplate

SEVERITIES = ("error", "warning", "info")

LINT_EXAMPLES = """\b
Examples:
  templatekit lint google/gemma-3-12b-it            # a Hub repo: every template it ships
  templatekit lint chat_template.jinja              # one file
  templatekit lint tokenizer_config.json            # all its named templates
  templatekit lint templates/                       # every template file under a folder
  templatekit lint model.jinja --select TK1 --ignore TK106
  templatekit lint model.jinja --format sarif -o templatekit.sarif
  templatekit lint model.jinja --format github      # annotations in a GitHub workflow
  templatekit lint model.jinja --fail-on error      # exit 1 only for errors
  templatekit lint model.gguf --against google/gemma-3-12b-it   # + drift from the source repo (TK701)
  templatekit lint bartowski/google_gemma-3-12b-it-GGUF --file google_gemma-3-12b-it-Q4_K_M.gguf
  templatekit rule TK101                            # what a rule checks, and how to fix it

\b
Each finding is `path:line:col: CODE message`; `templatekit rule --list` lists the codes.
Checks of raise_exception sites come with the shortest conversation that triggers them
(--format json shows it; `templatekit render --messages` replays it). --no-probe skips
every check that renders the template. Settings: [tool.templatekit] in pyproject.toml
(select, ignore, fail-on); --select replaces its select, --ignore adds to its ignore.
Silence one finding with a comment on its line or the line before:
  {# templatekit: ignore[TK101] reason: our clients always alternate #}
A template with a Jinja syntax error is a finding (TK001), not a crash, and lint then exits 8.
A source that cannot be read (missing, malformed, too large) is reported on stderr and the
others are still linted; the exit code is the highest that applies.
"""

LINT_EXIT_CODES = EXIT_CODES_HELP.replace(
    "1  findings / counterexample / check failed", "1  findings at or above --fail-on"
)


@click.command(epilog=LINT_EXAMPLES + "\n" + LINT_EXIT_CODES)
@click.argument("sources", nargs=-1, required=True, metavar="SOURCE...")
@click.option(
    "--format", "output_format", type=click.Choice(FORMATS), default="text", show_default=True, help="Report format."
)
@click.option(
    "--fail-on",
    type=click.Choice(SEVERITIES),
    default=None,
    help="Exit 1 when a finding is at least this severe (default: pyproject.toml's, else warning).",
)
@click.option(
    "--select",
    default=None,
    metavar="CODES",
    help="Comma-separated codes, prefixes (TK1), rule names or ALL to run (default: all).",
)
@click.option("--ignore", default=None, metavar="CODES", help="Comma-separated codes, prefixes or names to skip.")
@click.option(
    "--template-name",
    "-n",
    default=None,
    metavar="NAME",
    help="Lint only this named template of each source (default: all of them).",
)
@click.option("--no-probe", is_flag=True, help="Static checks only: never render the template.")
@click.option(
    "--no-cache", is_flag=True, help="Lint every file afresh (the findings cache serves text reports of .jinja files)."
)
@click.option(
    "--missing-ok", is_flag=True, help="Skip sources that have no chat template instead of failing (for pre-commit)."
)
@click.option(
    "--against",
    default=None,
    metavar="SOURCE",
    help="The source the templates were converted from (e.g. the Hub repo of a GGUF file): "
    "report where they differ (TK701). Read with --token, at its default revision.",
)
@click.option("--output", "-o", default=None, metavar="FILE", help="Write the report to FILE (atomically).")
@click.option("--color/--no-color", default=None, help="Colour text output (default: on a terminal).")
@source_options
@handle_errors
def lint(
    sources: tuple[str, ...],
    output_format: str,
    fail_on: str | None,
    select: str | None,
    ignore: str | None,
    template_name: str | None,
    no_probe: bool,
    no_cache: bool,
    missing_ok: bool,
    against: str | None,
    output: str | None,
    color: bool | None,
    revision: str | None,
    token: str | None,
    filename: str | None,
) -> None:
    """Lint the chat templates of each SOURCE (Hub repo id, folder, tokenizer_config.json,
    chat_template.json, .jinja or .gguf file, or - for stdin)."""
    from templatekit.config import load_config
    from templatekit.errors import TemplatekitError
    from templatekit import reporters
    from templatekit.findings import Severity
    from templatekit.rules import lint as lint_template
    from templatekit.rules import select_rules
    from templatekit.sources import load

    config = load_config()
    chosen_select = _codes(select) if select is not None else config.select
    chosen_ignore = (*config.ignore, *_codes(ignore))
    try:
        rules = select_rules(chosen_select, chosen_ignore)
    except ValueError as error:
        fail(str(error), EXIT_USAGE)
    report = LintReport(Severity(fail_on) if fail_on else config.fail_on)

    reference = load(against, token=token) if against is not None else None
    items = (
        list(sources) if filename is not None else [item for source in sources for item in _expand(source, missing_ok)]
    )
    with Progress("linting", len(items)) as progress:
        for item in items:
            progress.step(item)
            try:
                for template in _templates(item, template_name, missing_ok, revision, token, filename):
                    counterpart = None
                    if reference is not None:
                        counterpart = (
                            reference.get(template.name) if template.name in reference.names else reference.get()
                        )
                    report.linted += 1
                    report.findings += _in_json_file(
                        template,
                        lint_template(
                            template,
                            select=chosen_select,
                            ignore=chosen_ignore,
                            probe=not no_probe,
                            against=counterpart,
                        ),
                    )
            except (TemplatekitError, RecursionError, MemoryError) as error:
                # one bad source is reported and never hides the others' findings
                progress.clear()
                report.failures.append(report_error(error))

    use_color = (
        color if color is not None else (output is None and sys.stdout.isatty() and "NO_COLOR" not in os.environ)
    )
    if output_format == "text" and report.checked_nothing:
        sys.exit(report.exit_code)
    text = reporters.render(output_format, report.sorted_findings, rules, color=use_color)
    if output is None:
        click.echo(text, nl=False)
    else:
        write_output(output, text)
    sys.exit(report.exit_code)


def _in_json_file(template: ChatTemplate, findings: list[Finding]) -> list[Finding]:
    """Findings of a template stored in a JSON file, placed at the line of its JSON string (a JSON
    string holds the whole template on one line) with the template's own line in the message,
    so that SARIF and GitHub annotations point into the file."""
    from templatekit.sources import json_position

    position = json_position(template) if findings else None
    if position is None:
        return findings
    return [
        finding._replace(
            line=position[0],
            column=position[1],
            end_line=None,
            end_column=None,
            span=None,
            message=f"{finding.message} (template line {finding.line}:{finding.column})",
        )
        for finding in findings
    ]


def _codes(value: str | None) -> tuple[str, ...]:
    return tuple(item.strip() for item in (value or "").split(",") if item.strip())


def _templates(
    reference: str,
    template_name: str | None,
    missing_ok: bool,
    revision: str | None,
    token: str | None,
    filename: str | None,
) -> Iterator[ChatTemplate]:
    """The templates of one source to lint; source notes go to stderr."""
    from templatekit.errors import NoChatTemplateError
    from templatekit.sources import load

    try:
        loaded = load(reference, revision=revision, token=token, filename=filename)
    except NoChatTemplateError as error:
        if not missing_ok:
            raise
        click.echo(f"templatekit: skipped: {error}", err=True)
        return
    for note in loaded.notes:
        click.echo(f"templatekit: note: {note}", err=True)
    if template_name is not None:
        yield loaded.get(template_name)
    else:
        yield from loaded.templates


def _expand(source: str, missing_ok: bool) -> list[str]:
    """The sources ``source`` stands for; a folder with no template file is itself (reported as
    having no template) unless ``missing_ok``."""
    from templatekit.sources import lint_references

    found = list(lint_references(source))
    if not found and missing_ok:
        click.echo(f"templatekit: skipped: no chat template in {source}", err=True)
    return found or ([] if missing_ok else [source])


RULE_EXAMPLES = """\b
Examples:
  templatekit rule --list          # every code, name, severity and summary
  templatekit rule TK101           # the documentation of one rule
  templatekit rule alternation-check
"""


@click.command(epilog=RULE_EXAMPLES)
@click.argument("code", required=False)
@click.option("--list", "list_rules", is_flag=True, help="List every rule.")
@handle_errors
def rule(code: str | None, list_rules: bool) -> None:
    """Print the documentation of lint rule CODE (a code like TK101 or a name), or list the rules."""
    from templatekit.rules import RULES, get_rule, rule_markdown

    if code is None or list_rules:
        if code is not None:
            fail("--list lists every rule; drop CODE", EXIT_USAGE)
        width = max(len(candidate.name) for candidate in RULES.values())
        for candidate in sorted(RULES.values(), key=lambda item: item.code):
            click.echo(
                f"{candidate.code}  {candidate.name:<{width}}  {candidate.severity.value:<7}  {candidate.summary}"
            )
        return
    try:
        chosen = get_rule(code)
    except KeyError:
        fail(f"unknown rule {code!r} (see `templatekit rule --list`)", EXIT_USAGE)
    click.echo(rule_markdown(chosen), nl=False)
