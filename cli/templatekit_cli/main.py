"""Entry point: the ``templatekit`` group, loading each command's module only when it runs.

``templatekit --help`` therefore imports click and nothing heavy (no jinja2 compile,
no huggingface_hub, hypothesis or transformers).
"""

from __future__ import annotations

import atexit
import importlib
import os
import signal
import sys

import click

from templatekit import __version__

from .common import EXIT_CODES_HELP

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


class LazyGroup(click.Group):
    """A group whose commands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module, attribute, _ = COMMANDS[name]
        return getattr(importlib.import_module(module), attribute)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, help_text) for name, (_, _, help_text) in COMMANDS.items()])


@click.group(cls=LazyGroup, epilog=EXIT_CODES_HELP, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="templatekit")
def cli() -> None:
    """Lint and repair the Jinja chat templates shipped with open LLMs.

    \b
    A SOURCE is a Hugging Face Hub repo id (google/gemma-3-12b-it; --file NAME for one of
    its files, e.g. a .gguf), a local model folder, a tokenizer_config.json, a
    chat_template.json, a .jinja file, a .gguf file, or - for stdin.

    \b
    Typical use:
      templatekit lint google/gemma-3-12b-it
      templatekit relax google/gemma-3-12b-it -o gemma3.jinja
      vllm serve google/gemma-3-12b-it --chat-template gemma3.jinja
      templatekit relax model.gguf -o model.relaxed.gguf
    """


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds (143), so temporary files are removed on the way out


def main() -> None:
    """The ``templatekit`` command: run the CLI, its ``atexit`` handlers (engine processes
    close there) and flush its output, then exit without the interpreter's module teardown
    (``os._exit``: every command has closed its files by then)."""
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    code: object = None
    try:
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
