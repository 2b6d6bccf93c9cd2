"""``templatekit show``: print a source's chat template byte for byte, or list its templates."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from .common import checked_template, fail, handle_errors, source_options
from .report import EXIT_CODES_HELP, EXIT_SYNTAX, EXIT_USAGE

if TYPE_CHECKING:
    from templatekit.sources import TemplateSource

EXAMPLES = """\b
Examples:
  templatekit show google/gemma-3-12b-it                 # the default template, exactly as shipped
  templatekit show google/gemma-3-12b-it --list          # every template, its kind and file, notes
  templatekit show NousResearch/Hermes-3-Llama-3.1-8B --template-name tool_use
  templatekit show Qwen/Qwen2.5-7B-Instruct --revision <branch|tag|commit> > qwen.jinja
  templatekit show ./my-model/                           # a model folder, read as transformers does
  templatekit show tokenizer_config.json | templatekit lint -
  cat chat_template.jinja | templatekit show -
  templatekit show model.gguf                            # the template in a GGUF file's metadata
  templatekit show bartowski/google_gemma-3-12b-it-GGUF --file google_gemma-3-12b-it-Q4_K_M.gguf

\b
A SOURCE that exists on disk is local (folder, tokenizer_config.json, chat_template.json,
any template file, a .gguf file, or - for stdin); otherwise org/name is a Hugging Face Hub
repo id (HF_TOKEN, `hf auth login`, HF_HUB_OFFLINE=1 and HF_ENDPOINT are honoured); --file
picks one file of it (a .gguf: only its header and metadata are read).
In a folder or repo, chat_template.jinja and additional_chat_templates/*.jinja take priority
over tokenizer_config.json; a processor template (chat_template.json) that differs from the
tokenizer's is listed as "processor". Invalid Jinja is printed as is, with a line on stderr
and exit code 8 (--list flags it; `templatekit lint` explains it).
"""


@click.command(epilog=EXAMPLES + "\n" + EXIT_CODES_HELP)
@click.argument("source")
@click.option(
    "--template-name",
    "-n",
    default=None,
    metavar="NAME",
    help="Which template to print (default: 'default', else the first). See --list.",
)
@click.option(
    "--list",
    "list_templates",
    is_flag=True,
    help="List the names, kinds and origins of all templates, special tokens and notes.",
)
@source_options
@handle_errors
def show(
    source: str,
    template_name: str | None,
    list_templates: bool,
    revision: str | None,
    token: str | None,
    filename: str | None,
) -> None:
    """Print the chat template of SOURCE exactly as shipped (no newline added or translated)."""
    from templatekit.errors import TemplateSyntaxError
    from templatekit.sources import load

    if list_templates and template_name is not None:
        fail("--list shows every template; drop --template-name", EXIT_USAGE)
    loaded = load(source, revision=revision, token=token, filename=filename)
    if list_templates:
        click.echo(_listing(loaded), nl=False)
        return
    template = loaded.get(template_name)
    stdout = click.get_binary_stream("stdout")
    stdout.write(template.text.encode("utf-8"))
    stdout.flush()
    try:  # printed as shipped; the exit code says whether servers can load it
        checked_template(template)
    except TemplateSyntaxError as error:
        fail(str(error), EXIT_SYNTAX)


def _listing(loaded: TemplateSource) -> str:
    """The ``--list`` report: one aligned line per template, then special tokens and notes."""
    from templatekit.errors import TemplateSyntaxError
    from templatekit.syntax import parse

    chosen = loaded.get()
    rows = []
    for template in loaded.templates:
        remarks = ["used without --template-name"] if template is chosen else []
        try:
            parse(template.text)
        except TemplateSyntaxError as error:
            remarks.append(
                f"invalid Jinja: line {error.line}: {error.message}"
                if error.line
                else f"invalid Jinja: {error.message}"
            )
        rows.append((template.name, template.kind, template.origin, "; ".join(remarks)))
    name_width = max(len(row[0]) for row in rows)
    lines = [
        f"{name:<{name_width}}  {kind:<9}  {origin}" + (f"  ({remarks})" if remarks else "")
        for name, kind, origin, remarks in rows
    ]
    tokens = chosen.special_tokens
    if tokens:
        lines.append("special tokens: " + ", ".join(f"{key}={value!r}" for key, value in tokens.items()))
    lines.extend(f"note: {note}" for note in loaded.notes)
    return "\n".join(lines) + "\n"
