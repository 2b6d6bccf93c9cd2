"""Entry point of the ``templatekit`` command: a plain lint without click, everything else through the group.

``templatekit lint FILE.jinja ...`` with no options but ``--missing-ok``, ``--no-probe`` and
``--no-cache`` (what the pre-commit hook runs) lints without importing click (about 8 ms of a
90 ms run), through the findings cache; anything out of the ordinary on the way (another
option or source, a source note, a config or read error) hands the whole command line to the
click group of :mod:`templatekit_cli.group`, so output and exit codes stay the click command's.
``cli`` (the group) is imported on first use.
"""

from __future__ import annotations

import atexit
import codecs
import gc
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from templatekit.findings import Finding

# name -> (module, attribute, one-line help shown by `templatekit --help`)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "show": ("templatekit_cli.show", "show", "Print a source's chat template, or list its templates."),
    "lint": ("templatekit_cli.lint", "lint", "Find raise_exception paths and other template problems."),
    "relax": ("templatekit_cli.relax", "relax", "Rewrite strict role-alternation checks (merge or skip)."),
    "verify": ("templatekit_cli.verify", "verify", "Fuzz a relaxed template against its original."),
    "render": ("templatekit_cli.verify", "render", "Render a template on a conversation (and tokenize it)."),
    "diff": ("templatekit_cli.verify", "diff", "Show the text and token diff of two templates on one conversation."),
    "rule": ("templatekit_cli.lint", "rule", "Print the documentation of a lint rule."),
    "engines": ("templatekit_cli.engines", "engines", "List or install the Jinja engines servers render with."),
}

PLAIN_LINT_FLAGS = ("--missing-ok", "--no-probe", "--no-cache")


def __getattr__(name: str) -> Any:
    """``cli``, the click group, imported on first use (a plain lint never needs it)."""
    if name == "cli":
        from .group import cli

        return cli
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def plain_lint(arguments: list[str]) -> int | None:
    """The exit status of ``templatekit lint ARGUMENTS`` on ``.jinja`` files, its text report printed,
    or ``None`` (nothing printed) when the click command must run instead: other options or sources,
    source notes, config or read errors, escape sequences click would strip, a progress line.
    Each file's findings come from the findings cache (:mod:`templatekit.lint_cache`) unless
    ``--no-cache``; linting (jinja2 and the rules) is imported only for a file it does not hold."""
    files = [argument for argument in arguments if argument not in PLAIN_LINT_FLAGS]
    if not files or any(
        name.startswith("-") or not name.endswith(".jinja") or not Path(name).is_file() for name in files
    ):
        return None
    if codecs.lookup(sys.stdout.encoding or "ascii").name != "utf-8" or (len(files) > 1 and sys.stderr.isatty()):
        return None
    from templatekit.config import load_config
    from templatekit.errors import RenderBudgetExceeded
    from templatekit.reporters import text

    from .report import EXIT_INTERRUPTED, LintReport

    try:
        config = load_config()
        report = LintReport(config.fail_on)
        for name in files:
            found = _findings_of(
                name,
                config.select,
                config.ignore,
                probe="--no-probe" not in arguments,
                cache="--no-cache" not in arguments,
            )
            if found is None:
                return None
            report.findings += found
    except KeyboardInterrupt:
        sys.stderr.write("templatekit: error: interrupted\n")
        return EXIT_INTERRUPTED
    except (Exception, RenderBudgetExceeded):  # noqa: BLE001 - the click command reports it (lint is deterministic)
        return None
    color = sys.stdout.isatty() and "NO_COLOR" not in os.environ
    printed = text.render(report.sorted_findings, color=color)
    if not color and "\x1b" in printed:  # click.echo strips escape sequences off a terminal
        return None
    try:
        sys.stdout.write(printed)
        sys.stdout.flush()
    except BrokenPipeError:  # the reader went away (`| head`): stop quietly, as the click command does
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    return report.exit_code


def _findings_of(
    name: str, select: tuple[str, ...] | None, ignore: tuple[str, ...], *, probe: bool, cache: bool
) -> list[Finding] | None:
    """The findings of every template of file ``name``, from the findings cache when it holds them,
    or ``None`` when the file is too large or loading it left a note (the click command says so)."""
    from templatekit import lint_cache
    from templatekit.sources import MAX_FILE_BYTES

    key = None
    if cache:
        with open(name, "rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
        if len(data) > MAX_FILE_BYTES:
            return None
        key = lint_cache.entry_key(name, data, select=select, ignore=ignore, probe=probe)
        cached = lint_cache.load_findings(key)
        if cached is not None:
            return cached
    from templatekit.rules import lint, select_rules
    from templatekit.sources import load

    _started()
    loaded = load(name)
    if loaded.notes:
        return None
    found = [
        finding
        for template in loaded.templates
        for finding in lint(template, select=select, ignore=ignore, probe=probe)
    ]
    if key is not None:
        lint_cache.store_findings(key, found, rules={rule.code for rule in select_rules(select, ignore)})
    return found


def _started() -> None:
    """Start-up (importing) is over: the garbage collector, off until now, runs again, and the
    long-lived objects the imports made are kept out of its passes (``gc.freeze``)."""
    if not gc.isenabled():
        gc.freeze()
        gc.enable()


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds (143), so temporary files are removed on the way out


def main() -> None:
    """The ``templatekit`` command: run the CLI, its ``atexit`` handlers (engine processes
    close there) and flush its output, then exit without the interpreter's module teardown
    (``os._exit``: every command has closed its files by then)."""
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    gc.disable()  # while importing: a collection would only walk the new modules' objects (5 ms of a lint)
    code: object = None
    try:
        code = plain_lint(sys.argv[2:]) if sys.argv[1:2] == ["lint"] else None
        if code is None:
            from .group import cli

            _started()
            cli(prog_name="templatekit")  # click's standalone mode ends in SystemExit
    except SystemExit as exit_:
        code = exit_.code
    if code is None or isinstance(code, int):
        status = code or 0
    else:  # sys.exit("message"), as Python reports it
        print(code, file=sys.stderr)
        status = 1
    atexit._run_exitfuncs()  # what interpreter shutdown would run first
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except OSError:  # stdout closed early (`| head`): what Python's own shutdown reports
        status = 120
    os._exit(status)
