"""What every command shares: exit codes, one-line errors, source options, atomic writes."""

from __future__ import annotations

import functools
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

EXIT_OK = 0
EXIT_FINDINGS = 1          # lint findings at/above --fail-on, a counterexample, a failed check
EXIT_USAGE = 2             # bad command line (click's own code)
EXIT_NOT_FOUND = 3         # repo, revision, file or path does not exist
EXIT_ACCESS = 4            # gated or private repo, missing/invalid token
EXIT_OFFLINE = 5           # offline (HF_HUB_OFFLINE=1 or no network) and not cached
EXIT_MALFORMED = 6         # malformed JSON or GGUF file, unsupported GGUF version, unexpected file shape
EXIT_NO_TEMPLATE = 7       # no chat template, or unknown --template-name
EXIT_SYNTAX = 8            # the template is not valid Jinja
EXIT_OUTPUT = 9            # the result could not be written
EXIT_TOKENIZER = 10        # the tokenizer could not be loaded
EXIT_ENGINE = 11           # a Jinja engine is not installed (or could not be installed)
EXIT_INTERNAL = 70         # a bug in templatekit

EXIT_CODES_HELP = """\b
Exit codes:
  0  success            1  findings / counterexample / check failed
  2  usage error        3  not found (repo, revision, file)
  4  access denied (gated repo, token)   5  offline and not cached
  6  malformed JSON/GGUF input file      7  no chat template / unknown name
  8  template is not valid Jinja         9  output could not be written
  10 tokenizer could not be loaded       11 engine not installed
  70 internal error (please report)
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
    ]
    for error_class, code in table:
        if isinstance(error, error_class):
            return code
    return EXIT_INTERNAL


def fail(message: str, code: int) -> None:
    """Print one line to stderr and exit with ``code``."""
    click.echo(f"templatekit: error: {message}", err=True)
    sys.exit(code)


def handle_errors(command: F) -> F:
    """Turn templatekit errors into one stderr line and their exit code; never a traceback."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from templatekit.errors import TemplatekitError

        try:
            return command(*args, **kwargs)
        except TemplatekitError as error:
            fail(str(error), exit_code_for(error))
        except KeyboardInterrupt:
            fail("interrupted", 130)
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


def write_atomically(path: str | Path, text: str, *, newline: str = "") -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder, then rename.

    An existing file is replaced whole or left untouched, never half-written.
    Text is written byte for byte (no newline translation) as UTF-8.
    """
    from templatekit.errors import OutputError

    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    try:
        fd, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
    except OSError as error:
        raise OutputError(f"cannot write {target}: {error.strerror or error}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline=newline) as handle:
            handle.write(text)
        if target.exists():
            os.chmod(temporary, target.stat().st_mode & 0o7777)
        else:
            os.chmod(temporary, 0o666 & ~_umask())
        os.replace(temporary, target)
    except OSError as error:
        Path(temporary).unlink(missing_ok=True)
        raise OutputError(f"cannot write {target}: {error.strerror or error}") from None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
