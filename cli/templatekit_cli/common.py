"""What every command shares: exit codes, one-line errors, source options, writing results."""

from __future__ import annotations

import difflib
import functools
import os
import shutil
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from .report import (
    EXIT_ACCESS,
    EXIT_BUDGET,
    EXIT_ENGINE,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_LIMIT,
    EXIT_MALFORMED,
    EXIT_NOT_FOUND,
    EXIT_NO_TEMPLATE,
    EXIT_OFFLINE,
    EXIT_OK,
    EXIT_OUTPUT,
    EXIT_SYNTAX,
    EXIT_TOKENIZER,
    EXIT_UNSAFE_JINJA,
    EXIT_USAGE,
)

# The default time budget for all the rendering one relax or verify command does (--timeout).
COMMAND_SECONDS = 600.0

F = TypeVar("F", bound=Callable[..., Any])


def exit_code_for(error: BaseException) -> int:
    """The exit code for an error templatekit raised on purpose."""
    from templatekit import errors

    table: list[tuple[type[BaseException], int]] = [
        (errors.GatedRepoError, EXIT_ACCESS),
        (errors.OfflineError, EXIT_OFFLINE),
        (errors.SourceNotFoundError, EXIT_NOT_FOUND),
        (errors.MalformedFileError, EXIT_MALFORMED),
        (errors.NoChatTemplateError, EXIT_NO_TEMPLATE),
        (errors.UnknownTemplateNameError, EXIT_NO_TEMPLATE),
        (errors.TemplateSyntaxError, EXIT_SYNTAX),
        (errors.TokenizerError, EXIT_TOKENIZER),
        (errors.OutputError, EXIT_OUTPUT),
        (errors.EngineUnavailableError, EXIT_ENGINE),
        (errors.RenderBudgetExceeded, EXIT_BUDGET),
        (errors.InputLimitError, EXIT_LIMIT),
        (RecursionError, EXIT_LIMIT),
        (MemoryError, EXIT_LIMIT),
        (errors.UnsafeJinjaError, EXIT_UNSAFE_JINJA),
        (errors.ConfigError, EXIT_USAGE),
    ]
    for error_class, code in table:
        if isinstance(error, error_class):
            return code
    return EXIT_INTERNAL


def fail(message: str, code: int) -> None:
    """Print one line to stderr and exit with ``code``."""
    click.echo(f"templatekit: error: {message}", err=True)
    sys.exit(code)


def error_message(error: BaseException) -> str:
    """The one line an error is reported with."""
    if isinstance(error, RecursionError):
        return "input nested too deeply (a template, JSON or conversation exceeds Python's recursion limit)"
    if isinstance(error, MemoryError):
        return "out of memory: the input is too large"
    conversation = getattr(error, "conversation", None)
    if conversation is not None:  # a verification example: replayable with --examples
        return f"{error} on generated conversation {conversation + 1} (replay with --examples {conversation + 1})"
    return str(error)


def report_error(error: BaseException) -> int:
    """Print ``error`` as one stderr line (without exiting); its exit code."""
    click.echo(f"templatekit: error: {error_message(error)}", err=True)
    return exit_code_for(error)


class Progress:
    """``[3/150] linting path`` on a terminal's stderr, rewritten in place; silent otherwise."""

    def __init__(self, action: str, total: int) -> None:
        self.action = action
        self.total = total
        self.done = 0
        self.shown = False
        self.enabled = total > 1 and sys.stderr.isatty()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *_: object) -> None:
        self.clear()

    def step(self, what: str, done: int | None = None) -> None:
        self.done = self.done + 1 if done is None else done
        if self.enabled:
            line = f"[{self.done}/{self.total}] {self.action} {what}"
            width = shutil.get_terminal_size().columns - 1
            sys.stderr.write("\r\x1b[K" + line[:width])
            sys.stderr.flush()
            self.shown = True

    def clear(self) -> None:
        if self.shown:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()
            self.shown = False


def handle_errors(command: F) -> F:
    """Turn templatekit errors into one stderr line and their exit code; never a traceback."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from templatekit.errors import TemplatekitError

        from templatekit.errors import RenderBudgetExceeded

        try:
            return command(*args, **kwargs)
        except (TemplatekitError, RenderBudgetExceeded, RecursionError, MemoryError) as error:
            fail(error_message(error), exit_code_for(error))
        except KeyboardInterrupt:
            fail("interrupted", EXIT_INTERRUPTED)
        except BrokenPipeError:
            # the reader went away (`templatekit ... | head`): stop quietly, as Unix tools do
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            sys.exit(EXIT_OK)
        except (click.exceptions.Exit, click.ClickException, SystemExit):
            raise
        except Exception as error:  # noqa: BLE001 - the last line of defence: one line, not a traceback
            if os.environ.get("TEMPLATEKIT_DEBUG"):
                raise
            fail(
                f"internal error: {type(error).__name__}: {error} (set TEMPLATEKIT_DEBUG=1 for a traceback)",
                EXIT_INTERNAL,
            )

    return wrapper  # type: ignore[return-value]


def source_options(command: F) -> F:
    """``--revision``, ``--token``, ``--file``: how to reach a Hub source (the first two ignored for local files)."""
    command = click.option(
        "--file",
        "filename",
        default=None,
        metavar="NAME",
        help="Read only this file of a Hub repo or folder SOURCE, e.g. a .gguf (verify, diff: of the first source).",
    )(command)
    command = click.option(
        "--token",
        envvar=None,
        default=None,
        metavar="TOKEN",
        help="Hub token (default: HF_TOKEN or the `hf auth login` token).",
    )(command)
    command = click.option(
        "--revision", default=None, metavar="REV", help="Hub branch, tag or commit (default: main)."
    )(command)
    return command


def timeout_option(command: F) -> F:
    """``--timeout SECONDS``: the budget for all the rendering one command does (relax, verify)."""
    return click.option(
        "--timeout",
        type=click.FloatRange(min=0, min_open=True),
        default=COMMAND_SECONDS,
        show_default=True,
        metavar="SECONDS",
        help="Time budget for all the rendering of this command (exit 12 past it).",
    )(command)


def unified_diff(before: str, after: str, before_label: str, after_label: str) -> str:
    """The unified diff of two texts, a last line without newline marked as ``patch`` expects."""
    lines = difflib.unified_diff(
        before.splitlines(keepends=True), after.splitlines(keepends=True), fromfile=before_label, tofile=after_label
    )
    return "".join(line if line.endswith(("\n", "\r")) else line + "\n\\ No newline at end of file\n" for line in lines)


def checked_template(template: Any) -> Any:
    """``template`` once it parses and compiles: invalid Jinja exits 8 and a template nested too
    deeply to compile exits 13, from every command."""
    from templatekit.environment import compile_template
    from templatekit.syntax import parse

    parse(template.text, name=template.origin)
    compile_template(template.text)
    return template
