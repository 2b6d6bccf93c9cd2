"""One rule per class of ``raise_exception`` site, plus sites no conversation reaches.

A site is reported under its class when the witness search found a conversation that
fires it (the finding carries that conversation), or, marked "not probed", when probing is
off: these rules are static, so ``--no-probe`` keeps them.  A site the
search could not reach is reported once, as ``unreachable-raise``.
"""

from __future__ import annotations

from collections.abc import Iterator

from ..analysis import CheckClass, RaiseSite
from ..findings import Fix, Severity
from ..probes import MAX_MESSAGES
from .context import LintContext
from .registry import Hit, rule

RELAX_FIX = Fix("`templatekit relax` rewrites it to merge (or skip) consecutive same-role messages", "safe")


def _call(site: RaiseSite, limit: int = 72) -> str:
    message = repr(site.message) if site.message_is_literal else site.message
    if len(message) > limit:
        message = message[: limit - 3].rstrip() + "..."
    return f"raise_exception({message})"


def _site_hits(context: LintContext, check_class: CheckClass, label: str, fix: Fix | None = None) -> Iterator[Hit]:
    analysis = context.analysis
    if analysis is None:
        return
    witnesses = context.witnesses
    for site in analysis.of_class(check_class):
        span = site.span
        if witnesses is None:
            yield Hit(f"{label}: {_call(site)} (not probed)", span=span, line=site.line, fix=fix)
        elif witnesses.get(site.index) is not None:
            witness = witnesses[site.index]
            yield Hit(
                f"{label} fails on {witness.describe()}: {_call(site)}",
                span=span,
                line=site.line,
                witness=witness,
                fix=fix,
            )


@rule("TK101", "alternation-check", Severity.WARNING)
def alternation_check(context: LintContext) -> Iterator[Hit]:
    """## What it does
    Finds `raise_exception` calls guarded by a role-alternation test: a role compared with
    the parity of `loop.index0`/`loop.index`, a namespace counter or an offset index, or
    with the previous message's role. The finding carries the shortest conversation that
    makes the template raise there (usually `[assistant]` or `[user, user]`).

    ## Why is this bad?
    Real traffic breaks strict alternation all the time: two user messages in a row (a
    retry, an attachment sent separately), a conversation that starts with an assistant
    greeting, tool results between turns. vLLM, SGLang and transformers then answer
    HTTP 400 (`Conversation roles must alternate user/assistant/user/assistant/...`)
    instead of generating.

    ## Example
    ```jinja
    {% for message in messages %}
      {% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}
        {{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}
      {% endif %}
      ...
    {% endfor %}
    ```

    ## Use instead
    Merge consecutive messages of the same role (or skip the check) in the template:
    `templatekit relax TEMPLATE -o relaxed.jinja` rewrites the check, leaves every other
    byte as it was, and verifies the result against the original.

    ## Fix safety
    `templatekit relax` is safe for conversations the original accepted (their rendering is
    byte-identical, which it verifies by fuzzing) and changes behaviour only for
    conversations the original refused.
    """
    yield from _site_hits(context, "alternation", "role-alternation check", RELAX_FIX)


@rule("TK102", "system-role-check", Severity.WARNING)
def system_role_check(context: LintContext) -> Iterator[Hit]:
    """## What it does
    Finds `raise_exception` calls that refuse a system message, or accept one only as the
    first message.

    ## Why is this bad?
    Most clients send a system prompt; agents often add system messages mid-conversation.
    The server answers HTTP 400 to all of them.

    ## Example
    ```jinja
    {% if messages[0]['role'] == 'system' %}
      {{ raise_exception('System role not supported') }}
    {% endif %}
    ```

    ## Use instead
    Fold the system text into the first user turn, as many templates do:
    ```jinja
    {% if messages[0]['role'] == 'system' %}
      {% set first_user_prefix = messages[0]['content'] + '\\n\\n' %}
      {% set loop_messages = messages[1:] %}
    {% endif %}
    ```

    ## Fix safety
    No automatic fix: where the system text goes changes what the model sees.
    """
    yield from _site_hits(context, "system-role", "system-message check")


@rule("TK103", "role-check", Severity.INFO)
def role_check(context: LintContext) -> Iterator[Hit]:
    """## What it does
    Finds `raise_exception` calls that refuse messages of roles the template does not
    handle (for example anything but `user` and `assistant`).

    ## Why is this bad?
    It documents the template's contract, and is often right: a role the model was never
    trained on has no sensible rendering. But `tool` and `system` messages are ordinary in
    OpenAI-style traffic, and a request that carries one gets HTTP 400.

    ## Example
    ```jinja
    {% if message['role'] not in ['user', 'assistant'] %}
      {{ raise_exception('Only user and assistant roles are supported!') }}
    {% endif %}
    ```

    ## Use instead
    Render the roles your clients send, or normalise requests before they reach the
    template (`templatekit.normalize`).

    ## Fix safety
    No automatic fix.
    """
    yield from _site_hits(context, "role-unsupported", "role check")


@rule("TK104", "content-type-check", Severity.INFO)
def content_type_check(context: LintContext) -> Iterator[Hit]:
    """## What it does
    Finds `raise_exception` calls on the type or shape of message content: not a string,
    not a list of parts, an unknown part type, images where they are not allowed.

    ## Why is this bad?
    Usually deliberate validation. It matters when clients send `content: null` (assistant
    turns with tool calls), list-of-parts content (OpenAI's multimodal format) or parts
    the template does not know: the request fails with HTTP 400.

    ## Example
    ```jinja
    {% if message['content'] is not string %}
      {{ raise_exception('Invalid content type') }}
    {% endif %}
    ```

    ## Use instead
    Accept both forms:
    ```jinja
    {% if message['content'] is string %}{{ message['content'] }}
    {% else %}{% for part in message['content'] if part['type'] == 'text' %}{{ part['text'] }}{% endfor %}{% endif %}
    ```

    ## Fix safety
    No automatic fix.
    """
    yield from _site_hits(context, "content-type", "content-type check")


@rule("TK105", "tool-call-check", Severity.INFO)
def tool_call_check(context: LintContext) -> Iterator[Hit]:
    """## What it does
    Finds `raise_exception` calls about tools and tool calls: id formats, how many calls a
    turn may hold, tool results without a preceding call, unsupported tool types.

    ## Why is this bad?
    The checks encode the model's tool-calling format and are often right, but clients
    differ (ids like `call_abc123` instead of nine alphanumerics, parallel calls), and any
    mismatch is an HTTP 400 in the middle of an agent run.

    ## Example
    ```jinja
    {% if tool_call.id is not defined or tool_call.id|length != 9 %}
      {{ raise_exception('Tool call IDs should be alphanumeric strings with length 9!') }}
    {% endif %}
    ```

    ## Use instead
    Normalise ids before rendering, or make the template derive the id it needs.

    ## Fix safety
    No automatic fix.
    """
    yield from _site_hits(context, "tool-call", "tool-call check")


@rule("TK106", "other-raise", Severity.INFO)
def other_raise(context: LintContext) -> Iterator[Hit]:
    """## What it does
    Finds `raise_exception` calls that fit no other class: empty conversations, unsupported
    keyword arguments (`enable_thinking=false`, an unknown `reasoning_effort`), missing user
    queries.

    ## Why is this bad?
    Each is a request the server will refuse with HTTP 400. The finding shows the smallest
    input that triggers it, so you can check your clients never send it.

    ## Example
    ```jinja
    {% if not messages %}{{ raise_exception('No messages provided.') }}{% endif %}
    ```

    ## Use instead
    Keep the check if it protects the model; otherwise render a sensible default.

    ## Fix safety
    No automatic fix.
    """
    yield from _site_hits(context, "other", "check")


@rule("TK107", "unreachable-raise", Severity.INFO, renders=True)
def unreachable_raise(context: LintContext) -> Iterator[Hit]:
    """## What it does
    Reports a `raise_exception` call that no conversation the witness search tried could
    reach: conversations of up to four messages built from the site's path condition (roles
    it compares, content types, tool calls, keyword arguments and tools it tests), within
    the search budget.

    ## Why is this bad?
    Often it is dead code that looks like protection but never runs. The classic case is a
    flag set inside a `for` loop: Jinja scopes it to the loop, so a check after the loop
    reads the outer, unchanged value and never fires.

    ## Example
    ```jinja
    {% set has_system = false %}
    {% for message in messages %}
      {% if message['role'] == 'system' %}{% set has_system = true %}{% endif %}
    {% endfor %}
    {% if has_system %}{{ raise_exception('System messages are not supported') }}{% endif %}
    ```

    ## Use instead
    Use a namespace so the flag survives the loop:
    ```jinja
    {% set ns = namespace(has_system=false) %}
    {% for message in messages %}
      {% if message['role'] == 'system' %}{% set ns.has_system = true %}{% endif %}
    {% endfor %}
    {% if ns.has_system %}{{ raise_exception('System messages are not supported') }}{% endif %}
    ```

    ## Fix safety
    No automatic fix. The search is bounded: a site that needs a longer or more exotic
    input than it builds is reported too.
    """
    analysis, witnesses = context.analysis, context.witnesses
    if analysis is None or witnesses is None:
        return
    for site in analysis.sites:
        if witnesses.get(site.index) is None:
            yield Hit(
                f"no conversation of up to {MAX_MESSAGES} messages reaches {_call(site)} "
                f"({site.check_class} check): it may be dead code",
                span=site.span,
                line=site.line,
            )
