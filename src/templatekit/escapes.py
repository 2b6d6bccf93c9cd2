"""The escape gate: sandbox-escape and code-execution attempts, found on the AST without rendering.

Pure functions over a :class:`~templatekit.syntax.ParsedTemplate`, below both the lint rules
(TK601/TK602 report what :func:`find_escapes` finds) and everything that renders: lint does not
probe a template with a certain escape, and relax refuses to rewrite one.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import jinja2.nodes as nodes

from .records import Record
from .syntax import ParsedTemplate

__all__ = ["Escape", "find_escapes", "blocks_rendering"]

# Attributes the Python object model uses to reach frames, code, globals and builtins.
_INTROSPECTION = frozenset(
    {
        "mro",
        "func_globals",
        "func_code",
        "func_closure",
        "gi_frame",
        "gi_code",
        "cr_frame",
        "cr_code",
        "ag_frame",
        "ag_code",
        "f_globals",
        "f_locals",
        "f_builtins",
        "f_back",
        "f_code",
        "tb_frame",
        "tb_next",
        "im_func",
        "im_self",
        "im_class",
    }
)
# Filters whose arguments name attributes: name -> (positional index, keyword) of that argument.
_ATTRIBUTE_FILTERS = {
    "attr": (0, None),
    "map": (None, "attribute"),
    "selectattr": (0, None),
    "rejectattr": (0, None),
    "sort": (None, "attribute"),
    "groupby": (0, "attribute"),
    "sum": (None, "attribute"),
    "unique": (None, "attribute"),
    "min": (None, "attribute"),
    "max": (None, "attribute"),
}
_DUNDER = re.compile(r"__[A-Za-z]\w*__")


class Escape(Record):
    """One suspicious construct at ``line`` (``needle``: the text that shows it there).  ``certain``:
    it names an unsafe attribute outright; otherwise an attribute name is computed at render time
    and cannot be checked."""

    line: int
    needle: str
    description: str
    certain: bool

    @property
    def summary(self) -> str:
        """The one-line report of it (lint's TK601/TK602 message, relax's refusal)."""
        kind = "possible sandbox escape" if self.certain else "dynamic attribute access"
        return f"{kind}: {self.description}"


def _unsafe_name(name: str) -> bool:
    return any(part.startswith("_") or part in _INTROSPECTION for part in name.split("."))


def blocks_rendering(escapes: tuple[Escape, ...]) -> bool:
    """Whether ``escapes`` (of one template) name an unsafe attribute outright: such a template is never rendered."""
    return any(escape.certain for escape in escapes)


def find_escapes(parsed: ParsedTemplate) -> tuple[Escape, ...]:
    """Attribute access to dunders and introspection attributes (directly, by subscript, through
    ``attr``/``map``/``selectattr``... filters), dunder names in string constants, and
    attribute names computed at render time."""
    found: list[Escape] = []
    for node in parsed.nodes:
        found.extend(_escapes_in(node))
    return tuple(sorted(set(found), key=lambda escape: (escape.line, escape.needle)))


def _escapes_in(node: nodes.Node) -> Iterator[Escape]:
    if isinstance(node, nodes.Getattr) and _unsafe_name(node.attr):
        yield Escape(node.lineno, node.attr, f"reads the attribute {node.attr!r}", True)
    elif isinstance(node, nodes.NSRef) and _unsafe_name(node.attr):
        yield Escape(node.lineno, node.attr, f"sets the attribute {node.attr!r} of a namespace", True)
    elif (
        isinstance(node, nodes.Getitem)
        and isinstance(node.arg, nodes.Const)
        and isinstance(node.arg.value, str)
        and _unsafe_name(node.arg.value)
    ):
        yield Escape(node.lineno, node.arg.value, f"reads the attribute {node.arg.value!r} by subscript", True)
    elif isinstance(node, nodes.Const):
        for text in _strings_in(node.value):  # also inside lists the parser folded into one constant
            if _DUNDER.search(text):
                dunder = _DUNDER.search(text).group()
                yield Escape(node.lineno, dunder, f"builds the name {dunder!r} in a string", True)
                return
    elif isinstance(node, _BUILDERS) or _is_string_method_call(node):
        built = _constant_value(node)
        if isinstance(built, str) and _DUNDER.search(built):
            yield Escape(
                node.lineno,
                _first_string(node) or "",
                f"builds the name {_DUNDER.search(built).group()!r} from constants",
                True,
            )
    if (
        isinstance(node, nodes.Getitem)
        and _builds_string(node.arg)
        and _first_string(node.arg) is not None
        and _constant_value(node.arg) is _UNKNOWN
    ):
        yield Escape(
            node.lineno,
            _first_string(node.arg) or "[",
            "reads an item or attribute whose name is a string computed at render time",
            False,
        )
    if (
        isinstance(node, nodes.Filter)
        and node.name in ("map", "select", "reject", "selectattr", "rejectattr")
        and node.args
        and isinstance(node.args[0], nodes.Const)
        and node.args[0].value == "attr"
    ):
        # map('attr', NAME): the attribute filter applied to every item
        argument = node.args[1] if len(node.args) > 1 else None
        if argument is not None and not isinstance(argument, nodes.Const):
            yield Escape(
                node.lineno,
                node.name,
                f"passes an attribute name computed at render time to {node.name}('attr', ...)",
                False,
            )
        elif argument is not None and isinstance(argument.value, str) and _unsafe_name(argument.value):
            yield Escape(
                node.lineno,
                argument.value,
                f"reads the attribute {argument.value!r} through {node.name}('attr', ...)",
                True,
            )
    if isinstance(node, nodes.Filter) and node.name in _ATTRIBUTE_FILTERS:
        argument = _attribute_argument(node)
        if argument is None or (not isinstance(argument, nodes.Const) and _constant_value(argument) is not _UNKNOWN):
            return  # constants (and chains of them) are checked where they occur
        if isinstance(argument, nodes.Const):
            if isinstance(argument.value, str) and _unsafe_name(argument.value):
                yield Escape(
                    node.lineno,
                    argument.value,
                    f"reads the attribute {argument.value!r} through the {node.name!r} filter",
                    True,
                )
        else:
            yield Escape(
                node.lineno,
                node.name,
                f"passes an attribute name computed at render time to the {node.name!r} filter",
                False,
            )


_UNKNOWN = object()
_BUILDERS = (nodes.Concat, nodes.Add, nodes.Mul, nodes.Mod, nodes.Filter, nodes.List, nodes.Tuple)
_STRING_FILTERS = (
    "join",
    "format",
    "replace",
    "lower",
    "upper",
    "string",
    "first",
    "last",
    "reverse",
    "list",
    "trim",
    "title",
    "capitalize",
)
_STRING_METHODS = ("format", "join", "replace", "lower", "upper", "strip", "lstrip", "rstrip", "title")
_MAX_BUILT = 10_000  # constant strings longer than this are not built (they are not names)


def _strings_in(value: object) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _strings_in(item)
    elif isinstance(value, dict):
        for item in (*value.keys(), *value.values()):
            yield from _strings_in(item)


def _is_string_method_call(node: nodes.Node) -> bool:
    return isinstance(node, nodes.Call) and isinstance(node.node, nodes.Getattr) and node.node.attr in _STRING_METHODS


def _builds_string(node: nodes.Node) -> bool:
    return (
        isinstance(node, (nodes.Concat, nodes.Add, nodes.Mul, nodes.Mod))
        or _is_string_method_call(node)
        or (isinstance(node, nodes.Filter) and node.name in _STRING_FILTERS)
    )


def _first_string(node: nodes.Node) -> str | None:
    for child in node.find_all(nodes.Const):
        for text in _strings_in(child.value):
            if text:
                return text
    return None


def _constant_value(node: nodes.Node) -> object:
    """What a constant expression evaluates to (strings built by ``~``, ``+``, ``*``, ``%``,
    ``join``/``format``/``replace``... filters and str methods), else ``_UNKNOWN``."""
    try:
        value = _evaluate(node)
    except (TypeError, ValueError, IndexError, KeyError, AttributeError, OverflowError):
        return _UNKNOWN
    return value if not isinstance(value, (str, list, tuple)) or len(value) <= _MAX_BUILT else _UNKNOWN


def _evaluate(node: nodes.Node) -> object:
    if isinstance(node, nodes.Const):
        return node.value
    if isinstance(node, (nodes.List, nodes.Tuple)):
        items = [_evaluate(item) for item in node.items]
        return _UNKNOWN if _UNKNOWN in items else items
    if isinstance(node, nodes.Concat):
        pieces = [_evaluate(item) for item in node.nodes]
        return _UNKNOWN if _UNKNOWN in pieces else "".join(map(str, pieces))
    if isinstance(node, (nodes.Add, nodes.Mul, nodes.Mod)):
        left, right = _evaluate(node.left), _evaluate(node.right)
        if _UNKNOWN in (left, right):
            return _UNKNOWN
        if isinstance(node, nodes.Mul) and any(isinstance(side, int) and side > _MAX_BUILT for side in (left, right)):
            return _UNKNOWN
        if isinstance(node, nodes.Add):
            return left + right  # type: ignore[operator]
        return left * right if isinstance(node, nodes.Mul) else left % right  # type: ignore[operator]
    if isinstance(node, nodes.Filter) and node.name in _STRING_FILTERS and node.node is not None:
        value = _evaluate(node.node)
        arguments = [_evaluate(argument) for argument in node.args]
        if _UNKNOWN in (value, *arguments) or node.kwargs or node.dyn_args or node.dyn_kwargs:
            return _UNKNOWN
        return _apply_filter(node.name, value, arguments)
    if _is_string_method_call(node):
        owner = _evaluate(node.node.node)
        arguments = [_evaluate(argument) for argument in node.args]
        if not isinstance(owner, str) or _UNKNOWN in arguments or node.kwargs or node.dyn_args or node.dyn_kwargs:
            return _UNKNOWN
        return getattr(owner, node.node.attr)(*arguments)
    return _UNKNOWN


def _apply_filter(name: str, value: object, arguments: list[object]) -> object:
    if name == "join":
        return str(arguments[0] if arguments else "").join(map(str, value))  # type: ignore[call-overload]
    if name == "format":
        return str(value) % (tuple(arguments) if len(arguments) != 1 else arguments[0])
    if name == "replace":
        return str(value).replace(*map(str, arguments[:2]))
    if name in ("first", "last"):
        return list(value)[0 if name == "first" else -1]  # type: ignore[call-overload]
    if name == "reverse":
        return value[::-1]  # type: ignore[index]
    if name == "list":
        return list(value)  # type: ignore[call-overload]
    method = {
        "lower": str.lower,
        "upper": str.upper,
        "string": str,
        "trim": str.strip,
        "title": str.title,
        "capitalize": str.capitalize,
    }[name]
    return method(str(value))


def _attribute_argument(node: nodes.Filter) -> nodes.Expr | None:
    position, keyword = _ATTRIBUTE_FILTERS[node.name]
    for pair in node.kwargs:
        if pair.key == keyword:
            return pair.value
    if position is not None and len(node.args) > position:
        return node.args[position]
    return None
