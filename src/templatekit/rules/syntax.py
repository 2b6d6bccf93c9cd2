"""Rules about the template text itself: Jinja syntax errors and suppression comments."""

from __future__ import annotations

import re
from collections.abc import Iterator

import jinja2

from ..environment import make_environment
from ..findings import Fix, Severity
from ..syntax import line_column, scan_tags
from .context import LintContext
from .registry import Hit, rule

_UNKNOWN_TAG = r"unknown tag '(\w+)'"  # compiled on first use, by a template that does not parse
# What an isolated, otherwise valid block tag says when parsed on its own.
_ISOLATED_TAG_NOISE = ("Unexpected end of template", "Encountered unknown tag 'end", "Encountered unknown tag 'el")


@rule("TK001", "syntax-error", Severity.ERROR)
def syntax_error(context: LintContext) -> Iterator[Hit]:
    """## What it does
    Reports a template that is not valid Jinja, at the line and column of the error. The
    template is parsed exactly as servers parse it: jinja2's sandbox with the
    `loopcontrols` extension and transformers' `{% generation %}` tag.

    ## Why is this bad?
    The server cannot load the template at all: every chat request fails, usually when the
    model is loaded or on the first request.

    ## Example
    ```jinja
    {% for message in messages %}{{ message['content'] }}{% endif %}
    ```

    ## Use instead
    ```jinja
    {% for message in messages %}{{ message['content'] }}{% endfor %}
    ```

    ## Fix safety
    No automatic fix.
    """
    error = context.syntax_error
    if error is None:
        return
    line = error.line or 1
    yield Hit(f"invalid Jinja: {error.message}", line=line, column=_error_column(context.source, line, error.message))


def _error_column(source: str, line: int, message: str) -> int:
    """The column of the tag the error names (``unknown tag 'endif'``), else of the first tag
    on ``line`` that is invalid on its own, else of the first tag there."""
    tags = [
        tag
        for tag in scan_tags(source)
        if tag.kind != "comment"
        and line_column(source, tag.span.start)[0] <= line <= line_column(source, tag.span.end)[0]
    ]
    named = re.search(_UNKNOWN_TAG, message)
    for tag in tags:
        if named and tag.keyword == named.group(1):
            return _column_on(source, tag.span.start, line)
    environment = make_environment()
    for tag in tags:
        try:
            environment.parse(tag.span.text(source))
        except jinja2.TemplateSyntaxError as error:
            if not (error.message or "").startswith(_ISOLATED_TAG_NOISE):
                return _column_on(source, tag.span.start, line)
    if tags:
        return _column_on(source, tags[0].span.start, line)
    text = source.splitlines()[line - 1] if line <= len(source.splitlines()) else ""
    return len(text) - len(text.lstrip()) + 1


def _column_on(source: str, offset: int, line: int) -> int:
    found_line, column = line_column(source, offset)
    return column if found_line == line else 1


@rule("TK002", "suppression-without-reason", Severity.WARNING)
def suppression_without_reason(context: LintContext) -> Iterator[Hit]:
    """## What it does
    Reports a `{# templatekit: ignore[...] #}` comment that gives no `reason:`.

    ## Why is this bad?
    A suppression hides a finding from every later reader. Without a reason nobody can tell
    whether the finding was judged harmless or just silenced; the reason is what makes the
    suppression reviewable.

    ## Example
    ```jinja
    {# templatekit: ignore[TK101] #}
    ```

    ## Use instead
    ```jinja
    {# templatekit: ignore[TK101] reason: our client always sends alternating turns #}
    ```

    ## Fix safety
    No automatic fix: only you know the reason. The suppression still applies meanwhile.
    """
    for comment in context.suppressions:
        if comment.reason is None:
            yield Hit(
                f"suppression of {', '.join(comment.selectors) or 'nothing'} gives no reason (add 'reason: ...')",
                span=comment.span,
            )


@rule("TK003", "empty-template", Severity.ERROR)
def empty_template(context: LintContext) -> Iterator[Hit]:
    """## What it does
    Reports a chat template that is empty or only whitespace.

    ## Why is this bad?
    Every conversation renders to an empty (or blank) prompt: the model gets no messages at
    all. Servers accept such a template without complaint, so the failure shows up only as
    nonsense answers.

    ## Example
    ```json
    {"chat_template": ""}
    ```

    ## Use instead
    Ship the model's real template (its `chat_template.jinja`), or remove the key so that
    servers fall back to their default or refuse clearly.

    ## Fix safety
    No automatic fix.
    """
    if not context.source.strip():
        yield Hit(
            "the template is empty: every conversation renders to "
            + ("an empty prompt" if not context.source else "whitespace only")
        )


@rule("TK004", "byte-order-mark", Severity.WARNING)
def byte_order_mark(context: LintContext) -> Iterator[Hit]:
    """## What it does
    Reports a template that starts with a Unicode byte-order mark (U+FEFF), as editors on
    Windows sometimes save files.

    ## Why is this bad?
    Jinja treats the mark as text: it is copied to the start of every prompt, where the
    tokenizer turns it into an extra token before the BOS token.

    ## Example
    A `chat_template.jinja` saved as "UTF-8 with BOM".

    ## Use instead
    Save the file as UTF-8 without a BOM.

    ## Fix safety
    Removing the first character is safe: it never carries meaning in a template.
    """
    if context.source.startswith("\ufeff"):
        yield Hit(
            "the template starts with a byte-order mark (U+FEFF), which ends up at the start of every prompt",
            line=1,
            column=1,
            fix=Fix("save the file as UTF-8 without a BOM", "display-only"),
        )
