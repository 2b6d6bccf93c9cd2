"""The click group of the ``templatekit`` command, loading each command's module only when it runs.

``templatekit --help`` therefore imports click and nothing heavy (no jinja2 compile,
no huggingface_hub, hypothesis or transformers).
"""

from __future__ import annotations

import importlib

import click

from templatekit import __version__

from .report import EXIT_CODES_HELP
from .main import COMMANDS


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
