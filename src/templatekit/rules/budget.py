"""Rendering that runs out of the render budget (time or memory)."""

from __future__ import annotations

from collections.abc import Iterator

from ..errors import RenderBudgetExceeded
from ..findings import Severity
from .context import LintContext
from .registry import Hit, rule

BUDGET_RULE = "TK901"


@rule(BUDGET_RULE, "render-budget-exceeded", Severity.ERROR, renders=True)
def render_budget_exceeded(context: LintContext) -> Iterator[Hit]:
    """## What it does
    Reports a template whose rendering exceeds templatekit's render budget: 2000 ms or 32 MB
    (millions of characters in one string, list or the output) for one render, or 10 s for
    all the renders of one template's lint. It names the conversation the budget ran out on
    (`--format json` gives it; `templatekit render --messages` replays it). Once a template
    exceeds the budget, no other rule renders it.

    ## Why is this bad?
    The server renders the template on every request, in the request's thread: a template
    that loops for seconds or builds gigabytes of text (nested `range` loops, a string
    doubled in a loop, `'x' * 10**9`, a macro that calls itself twice) stalls or kills the
    server on every request, a denial of service shipped with the model.

    ## Example
    ```jinja
    {% for message in messages %}{% for i in range(100000) %}{% for j in range(100000) %}
    {% endfor %}{% endfor %}{{ message['content'] }}{% endfor %}
    ```

    ## Use instead
    Loop over the messages (and their parts) only:
    ```jinja
    {% for message in messages %}{{ message['content'] }}{% endfor %}
    ```

    ## Fix safety
    No automatic fix: relax, verify and render refuse such a template (exit code 12).
    """
    if not context.exceeded:
        try:  # when no rule that renders ran before, render the shared probes here
            if context.harness is not None:
                context.witnesses, context.capabilities  # noqa: B018 - computed for their renders
        except RenderBudgetExceeded as error:
            context.exceeded.append(error)
    for error in context.exceeded[:1]:
        witness = getattr(error, "witness", None)
        where = f" on conversation {witness.describe()}" if witness is not None else ""
        yield Hit(f"{error}{where}", witness=witness)
