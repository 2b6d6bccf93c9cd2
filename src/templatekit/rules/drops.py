"""Content that silently disappears: accepted messages whose text never reaches the output."""

from __future__ import annotations

from collections.abc import Iterator

from ..analysis import compared_roles
from ..findings import Severity
from ..probes import silent_drops
from .context import LintContext
from .registry import Hit, rule


@rule("TK301", "silent-message-drop", Severity.WARNING, renders=True)
def silent_message_drop(context: LintContext) -> Iterator[Hit]:
    """## What it does
    Renders conversations whose every message carries a unique marker and reports a
    message the template accepts (no error) but whose marker is not in the output: a
    system message after the first turn, a role the template compares against but never
    prints, the second text part of list content, assistant text beside tool calls.

    ## Why is this bad?
    Nothing fails, so nobody notices: the model silently never sees part of the
    conversation (an agent's mid-conversation instructions, half of a user's message).

    ## Example
    ```jinja
    {% if messages[0]['role'] == 'system' %}{{ messages[0]['content'] }}{% endif %}
    {% for message in messages if message['role'] != 'system' %}...{% endfor %}
    ```

    ## Use instead
    Render every message you accept, or refuse it with `raise_exception` so the client
    learns that the input is not supported.

    ## Fix safety
    No automatic fix.
    """
    harness = context.harness
    if harness is None:
        return
    for drop in silent_drops(harness, sorted(compared_roles(context.parsed))):
        yield Hit(
            f"{drop.description} is accepted but its text never reaches the output "
            f"(message {drop.message_index + 1} of {drop.witness.describe()})",
            witness=drop.witness,
        )
