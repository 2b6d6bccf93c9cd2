"""Output that is not a function of the input (the clock, random filters), and prompts that are not
prefix-stable from one turn to the next."""

from __future__ import annotations

from collections.abc import Iterator

import jinja2.nodes as nodes

from ..analysis import random_sources, uses_name
from ..findings import Severity
from ..probes import clock_dependence, prefix_break
from .context import LintContext
from .registry import Hit, rule


@rule("TK401", "clock-dependent-output", Severity.INFO, renders=True)
def clock_dependent_output(context: LintContext) -> Iterator[Hit]:
    """## What it does
    Renders the same conversation with two fixed clocks and reports a template whose output
    differs: it calls `strftime_now` (usually for a "Today is ..." line).

    ## Why is this bad?
    The prompt changes every day (or minute): prefix caches miss, evaluation runs are not
    reproducible, and tests that compare renderings break at midnight.

    ## Example
    ```jinja
    {% set date_string = strftime_now('%d %b %Y') %}
    ```

    ## Use instead
    Let the caller pass the date, with the clock only as the default:
    ```jinja
    {% if date_string is not defined %}{% set date_string = strftime_now('%d %b %Y') %}{% endif %}
    ```
    and pass `date_string` in `chat_template_kwargs` where reproducibility matters.

    ## Fix safety
    No automatic fix.
    """
    if context.harness is None:
        return
    call = uses_name(context.parsed, "strftime_now")
    if call is None:
        return
    witness = clock_dependence(context.harness)
    if witness is not None:
        yield Hit(
            f"the output of {witness.describe()} depends on the clock (strftime_now)",
            span=context.locate(call.lineno, "strftime_now"),
            line=call.lineno,
            witness=witness,
        )


@rule("TK402", "nondeterministic-output", Severity.WARNING)
def nondeterministic_output(context: LintContext) -> Iterator[Hit]:
    """## What it does
    Finds the `random` filter and the `lipsum` global, whose output differs from one render
    to the next.

    ## Why is this bad?
    The same request yields different prompts: caching, evaluation and debugging all
    assume the template is a function of its input.

    ## Example
    ```jinja
    {{ ['Hi!', 'Hello!'] | random }}
    ```

    ## Use instead
    Pick deterministically (`| first`), or let the caller pass the choice.

    ## Fix safety
    No automatic fix.
    """
    if context.parsed is None:
        return
    for node in random_sources(context.parsed):
        if isinstance(node, nodes.Filter):
            yield Hit(
                "the 'random' filter makes the output differ between renders",
                span=context.locate(node.lineno, "random"),
                line=node.lineno,
            )
        else:
            yield Hit("'lipsum' generates random text", span=context.locate(node.lineno, "lipsum"), line=node.lineno)


@rule("TK403", "prefix-unstable", Severity.INFO, renders=True)
def prefix_unstable(context: LintContext) -> Iterator[Hit]:
    """## What it does
    Renders a conversation and the same conversation one exchange later and reports when
    the later prompt does not start with the earlier one: the template rewrites earlier
    turns (it drops the reasoning of older answers, or moves text that follows the last
    message). The finding shows both conversations and where the prompts part.

    ## Why is this bad?
    vLLM, SGLang and llama.cpp reuse the computed prefix (KV cache) of the previous request
    when the next one extends it. A template that rewrites earlier turns makes every turn
    recompute the whole conversation: slower and costlier for long chats. It is often a
    deliberate design choice (reasoning models are trained without old reasoning), so this
    is information, not an error.

    ## Example
    ```jinja
    {% if loop.index0 > ns.last_query_index %}<think>{{ message.reasoning_content }}</think>{% endif %}
    ```

    ## Use instead
    Keep the choice if the model needs it. When relaxing such a template,
    `templatekit relax --strategy skip` keeps prompts prefix-stable (merge rewrites earlier
    turns when consecutive messages are merged).

    ## Fix safety
    No automatic fix.
    """
    if context.harness is None:
        return
    found = prefix_break(context.harness)
    if found is not None:
        yield Hit(
            f"the prompt of {found.later.describe()} does not start with the prompt of "
            f"{found.earlier.describe()}: at offset {found.offset} {found.was!r} became {found.now!r} "
            "(prefix caches miss on every turn; relax --strategy skip keeps prefixes stable)",
            witness=found.later,
        )
