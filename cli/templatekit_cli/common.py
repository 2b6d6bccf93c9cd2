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

EXIT_OK = 0
EXIT_FINDINGS = 1          # lint findings at/above --fail-on, a counterexample, a failed check
EXIT_USAGE = 2             # bad command line (click's own code)
EXIT_NOT_FOUND = 3         # repo, revision, file or path does not exist
EXIT_ACCESS = 4            # gated or private repo, missing/invalid token
EXIT_OFFLINE = 5           # offline (HF_HUB_OFFLINE=1 or no network) and not cached
EXIT_MALFORMED = 6         # malformed JSON or GGUF file, not UTF-8, lone surrogates, unexpected file shape
EXIT_NO_TEMPLATE = 7       # no chat template, or unknown --template-name
EXIT_SYNTAX = 8            # the template is not valid Jinja
EXIT_OUTPUT = 9            # the result could not be written
EXIT_TOKENIZER = 10        # the tokenizer could not be loaded
EXIT_ENGINE = 11           # a Jinja engine is not installed (or could not be installed)
EXIT_BUDGET = 12           # rendering exceeded its time or memory budget
EXIT_LIMIT = 13            # an input too large or nested too deeply
EXIT_UNSAFE_JINJA = 14     # the installed jinja2 has known sandbox escapes
EXIT_INTERNAL = 70         # a bug in templatekit
EXIT_INTERRUPTED = 130     # Ctrl-C (SIGTERM exits 143, as the shell reports it)

# The default time budget for all the rendering one relax or verify command does (--timeout).
COMMAND_SECONDS = 600.0

# The README's "Exit codes" block, verbatim (tests/test_exit_codes.py keeps them in sync).
EXIT_CODES_HELP = """\b
Exit codes:
  0  success            1  findings / counterexample / check failed
  2  usage error        3  not found (repo, revision, file)
  4  access denied (gated repo, token)   5  offline and not cached
  6  malformed JSON/GGUF input file      7  no chat template / unknown name
  8  template is not valid Jinja         9  output could not be written
  10 tokenizer could not be loaded       11 engine not installed
  12 render budget exceeded (time/size)  13 input too large / nested too deep
  14 jinja2 < 3.1.6 (sandbox escapes)    70 internal error (please report)
  130 Ctrl-C; 143 SIGTERM (cleaned up)
"""

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
            fail(f"internal error: {type(error).__name__}: {error} (set TEMPLATEKIT_DEBUG=1 for a traceback)",
                 EXIT_INTERNAL)

    return wrapper  # type: ignore[return-value]


def source_options(command: F) -> F:
    """``--revision``, ``--token``, ``--file``: how to reach a Hub source (the first two ignored for local files)."""
    command = click.option("--file", "filename", default=None, metavar="NAME",
                           help="Read only this file of a Hub repo or folder SOURCE, e.g. a .gguf "
                                "(verify, diff: of the first source).")(command)
    command = click.option("--token", envvar=None, default=None, metavar="TOKEN",
                           help="Hub token (default: HF_TOKEN or the `hf auth login` token).")(command)
    command = click.option("--revision", default=None, metavar="REV",
                           help="Hub branch, tag or commit (default: main).")(command)
    return command


def unified_diff(before: str, after: str, before_label: str, after_label: str) -> str:
    """The unified diff of two texts, a last line without newline marked as ``patch`` expects."""
    lines = difflib.unified_diff(before.splitlines(keepends=True), after.splitlines(keepends=True),
                                 fromfile=before_label, tofile=after_label)
    return "".join(line if line.endswith(("\n", "\r")) else line + "\n\\ No newline at end of file\n"
                   for line in lines)


def checked_template(template: Any) -> Any:
    """``template`` once it parses and compiles: invalid Jinja exits 8 and a template nested too
    deeply to compile exits 13, from every command."""
    from templatekit.environment import compile_template
    from templatekit.syntax import parse

    parse(template.text, name=template.origin)
    compile_template(template.text)
    return template
