"""Sandbox-escape and code-execution attempts (the escape gate, :mod:`templatekit.escapes`) as lint rules."""

from __future__ import annotations

from collections.abc import Iterator

from ..findings import Severity
from .context import LintContext
from .registry import Hit, rule


@rule("TK601", "sandbox-escape", Severity.ERROR)
def sandbox_escape(context: LintContext) -> Iterator[Hit]:
    """## What it does
    Finds template code that reaches for Python internals: dunder attributes (`__class__`,
    `__globals__`, `__subclasses__`, `__builtins__`, `__init__`...), introspection
    attributes (`mro`, `gi_frame`, `f_globals`...), the same names read by subscript
    (`x['__class__']`) or through filters that take attribute names (`|attr('__class__')`,
    `|map(attribute='__class__')`, `|map('attr', '__class__')`, `|selectattr('__globals__')`),
    set on a namespace (`{% set ns.__class__ = 1 %}`), and dunder names assembled from
    constants (`'__cla' ~ 'ss__'`, `'{0.__class__}'.format(x)`, `('_' * 2) ~ 'init' ~ ('_' * 2)`,
    `['_', '_', 'init', '_', '_'] | join`, `'_%s_' | format(...)`, `| replace`). Found on the
    syntax tree, without rendering; templatekit does not render such a template at all.

    ## Why is this bad?
    A chat template ships with model weights and is rendered by the inference server on
    every request. These are the building blocks of Jinja sandbox escapes (server-side
    template injection leading to code execution); no chat template needs them. Servers
    render in jinja2's sandbox, which blocks them, so the template at best fails and at worst
    exploits a sandbox bug.

    ## Example
    ```jinja
    {{ messages.__class__.__mro__[1].__subclasses__() }}
    {{ cycler.__init__.__globals__.os.popen('id').read() }}
    ```

    ## Use instead
    Read only the message fields a chat template needs:
    ```jinja
    {{ message['content'] }}
    ```

    ## Fix safety
    No automatic fix. Remove the construct, and treat the model repository as untrusted
    until you know how it got there.
    """
    for escape in context.escapes:
        if escape.certain:
            yield Hit(escape.summary, span=context.locate(escape.line, escape.needle), line=escape.line)


@rule("TK602", "dynamic-attribute-access", Severity.WARNING)
def dynamic_attribute_access(context: LintContext) -> Iterator[Hit]:
    """## What it does
    Finds attribute names computed at render time instead of written as constants: given to
    filters that take an attribute name (`attr`, `map(attribute=...)`, `map('attr', ...)`,
    `selectattr`, `sort(attribute=...)`...), or used as a subscript built from strings
    (`x['_' ~ name ~ '_']`, `cycler[parts | join]`).

    ## Why is this bad?
    A computed attribute name cannot be checked statically: it is how sandbox-escape
    payloads hide names like `__class__` (`|attr(request.args.x)`, `|attr('_' ~ '_class_' ~ '_')`).
    A chat template has no need for it.

    ## Example
    ```jinja
    {{ message | attr(field_name) }}
    ```

    ## Use instead
    ```jinja
    {{ message['content'] }}
    ```

    ## Fix safety
    No automatic fix: replace the computed name with the constant field you mean.
    """
    for escape in context.escapes:
        if not escape.certain:
            yield Hit(escape.summary, span=context.locate(escape.line, escape.needle), line=escape.line)
