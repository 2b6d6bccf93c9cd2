"""Drift: a template that differs from the one it was converted from (a GGUF file against its Hub repo)."""

from __future__ import annotations

from collections.abc import Iterator

from ..findings import Severity
from ..syntax import line_column
from .context import LintContext
from .registry import Hit, rule


@rule("TK701", "template-drift", Severity.WARNING)
def template_drift(context: LintContext) -> Iterator[Hit]:
    """## What it does
    Compares the template with the one it was converted from, given with
    `templatekit lint model.gguf --against org/repo` (a Hub repo, model folder or any other
    source), and reports the first place where their texts differ, a template the reference
    does not have, and special tokens (`bos_token`, `eos_token`, ...) that both name but
    differently. Runs only when `--against` is given.

    ## Why is this bad?
    A GGUF file carries its own copy of the chat template, taken at conversion time. When the
    upstream repo fixes its template later (tool calling, a missing generation prompt, a
    whitespace bug), or the converter or a re-uploader edits it, llama-server, Ollama and
    LM Studio keep rendering the old text: the same model prompts differently on different
    servers, silently.

    ## Example
    A GGUF whose `tokenizer.chat_template` still ends its turns with `eos_token` while
    the repo's current `chat_template.jinja` ends them with `<end_of_turn>`.

    ## Use instead
    Render with the upstream template (`llama-server --jinja --chat-template-file` with
    `templatekit show org/repo > chat_template.jinja`), or re-convert the GGUF.
    `templatekit diff model.gguf org/repo` shows the whole difference.

    ## Fix safety
    No automatic fix: which side is right is the maintainer's call.
    """
    reference = context.reference
    if reference is None:
        return
    template = context.template
    if reference.name != template.name:
        yield Hit(f"{reference.origin} has no template named {template.name!r} to compare with")
        return
    if template.text != reference.text:
        offset = _first_difference(template.text, reference.text)
        line, column = line_column(template.text, offset)
        yield Hit(
            f"the template differs from {reference.origin} from here on: {_excerpt(template.text, offset)} "
            f"here, {_excerpt(reference.text, offset)} there "
            f"({len(template.text)} and {len(reference.text)} characters)",
            line=line,
            column=column,
        )
    for name, value in template.special_tokens.items():
        other = reference.special_tokens.get(name)
        if other is not None and other != value:
            yield Hit(f"{name} is {value!r} here and {other!r} in {reference.origin}")


def _first_difference(first: str, second: str) -> int:
    return next((index for index, (a, b) in enumerate(zip(first, second)) if a != b), min(len(first), len(second)))


def _excerpt(text: str, offset: int, width: int = 30) -> str:
    """Up to ``width`` characters from ``offset``, quoted; the end of the text says so."""
    return repr(text[offset : offset + width]) if offset < len(text) else "the end of the text"
