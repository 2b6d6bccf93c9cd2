"""Sandbox-escape and code-execution attempts, found on the AST without rendering."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import jinja2.nodes as nodes

from ..findings import Severity
from ..probes import template_nodes
from ..syntax import ParsedTemplate
from .context import LintContext
from .registry import Hit, rule

__all__ = ["Escape", "find_escapes"]

# Attributes the Python object model uses to reach frames, code, globals and builtins.
_INTROSPECTION = frozenset({
    "mro", "func_globals", "func_code", "func_closure", "gi_frame", "gi_code", "cr_frame", "cr_code",
    "ag_frame", "ag_code", "f_globals", "f_locals", "f_builtins", "f_back", "f_code", "tb_frame", "tb_next",
    "im_func", "im_self", "im_class",
})
# Filters whose arguments name attributes: name -> (positional index, keyword) of that argument.
_ATTRIBUTE_FILTERS = {
    "attr": (0, None), "map": (None, "attribute"), "selectattr": (0, None), "rejectattr": (0, None),
    "sort": (None, "attribute"), "groupby": (0, "attribute"), "sum": (None, "attribute"),
    "unique": (None, "attribute"), "min": (None, "attribute"), "max": (None, "attribute"),
}
_DUNDER = re.compile(r"__[A-Za-z]\w*__")


@dataclass(frozen=True)
class Escape:
    """One suspicious construct.  ``certain``: it names an unsafe attribute outright;
    otherwise an attribute name is computed at render time and cannot be checked."""

    line: int
    needle: str
    description: str
    certain: bool


def _unsafe_name(name: str) -> bool:
    return any(part.startswith("_") or part in _INTROSPECTION for part in name.split("."))


def find_escapes(parsed: ParsedTemplate) -> tuple[Escape, ...]:
    """Attribute access to dunders and introspection attributes (directly, by subscript, through
    ``attr``/``map``/``selectattr``... filters), dunder names in string constants, and
    attribute names computed at render time."""
    found: list[Escape] = []
    for node in template_nodes(parsed):
        found.extend(_escapes_in(node))
    return tuple(sorted(set(found), key=lambda escape: (escape.line, escape.needle)))


def _escapes_in(node: nodes.Node) -> Iterator[Escape]:
    if isinstance(node, nodes.Getattr) and _unsafe_name(node.attr):
        yield Escape(node.lineno, node.attr, f"reads the attribute {node.attr!r}", True)
    elif isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str) \
            and _unsafe_name(node.arg.value):
        yield Escape(node.lineno, node.arg.value, f"reads the attribute {node.arg.value!r} by subscript", True)
    elif isinstance(node, nodes.Const) and isinstance(node.value, str) and _DUNDER.search(node.value):
        dunder = _DUNDER.search(node.value).group()
        yield Escape(node.lineno, dunder, f"builds the name {dunder!r} in a string", True)
    elif isinstance(node, (nodes.Concat, nodes.Add)):
        built = _constant_concatenation(node)
        if built is not None and _DUNDER.search(built):
            piece = next(value for value in _string_pieces(node) if value)
            yield Escape(node.lineno, piece, f"builds the name {_DUNDER.search(built).group()!r} by concatenation",
                         True)
    elif isinstance(node, nodes.Filter) and node.name in _ATTRIBUTE_FILTERS:
        argument = _attribute_argument(node)
        if argument is None or _constant_concatenation(argument) is not None:
            return  # constants (and chains of them) are checked where they occur
        if isinstance(argument, nodes.Const):
            if isinstance(argument.value, str) and _unsafe_name(argument.value):
                yield Escape(node.lineno, argument.value,
                             f"reads the attribute {argument.value!r} through the {node.name!r} filter", True)
        else:
            yield Escape(node.lineno, node.name,
                         f"passes an attribute name computed at render time to the {node.name!r} filter", False)


def _string_pieces(node: nodes.Node) -> list[str | None]:
    """The operands of a ``~``/``+`` chain: their string values, ``None`` where not a string constant."""
    if isinstance(node, nodes.Concat):
        return [piece for item in node.nodes for piece in _string_pieces(item)]
    if isinstance(node, nodes.Add):
        return [*_string_pieces(node.left), *_string_pieces(node.right)]
    return [node.value if isinstance(node, nodes.Const) and isinstance(node.value, str) else None]


def _constant_concatenation(node: nodes.Node) -> str | None:
    """The string a ``~``/``+`` chain of string constants builds (``None`` if any part is not constant)."""
    pieces = _string_pieces(node)
    return None if any(piece is None for piece in pieces) else "".join(pieces)


def _attribute_argument(node: nodes.Filter) -> nodes.Expr | None:
    position, keyword = _ATTRIBUTE_FILTERS[node.name]
    for pair in node.kwargs:
        if pair.key == keyword:
            return pair.value
    if position is not None and len(node.args) > position:
        return node.args[position]
    return None


@rule("TK601", "sandbox-escape", Severity.ERROR)
def sandbox_escape(context: LintContext) -> Iterator[Hit]:
    """## What it does
    Finds template code that reaches for Python internals: dunder attributes (`__class__`,
    `__globals__`, `__subclasses__`, `__builtins__`, `__init__`...), introspection
    attributes (`mro`, `gi_frame`, `f_globals`...), the same names read by subscript
    (`x['__class__']`) or through filters that take attribute names (`|attr('__class__')`,
    `|map(attribute='__class__')`, `|selectattr('__globals__')`), and dunder names assembled
    in strings (`'__cla' ~ 'ss__'`, `'{0.__class__}'.format(x)`). Found on the syntax tree,
    without rendering; templatekit does not render such a template at all.

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
            yield Hit(f"possible sandbox escape: {escape.description}",
                      span=context.locate(escape.line, escape.needle), line=escape.line)


@rule("TK602", "dynamic-attribute-access", Severity.WARNING)
def dynamic_attribute_access(context: LintContext) -> Iterator[Hit]:
    """## What it does
    Finds filters that take an attribute name (`attr`, `map(attribute=...)`, `selectattr`,
    `sort(attribute=...)`...) given a name computed at render time instead of a constant.

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
            yield Hit(f"dynamic attribute access: {escape.description}",
                      span=context.locate(escape.line, escape.needle), line=escape.line)
