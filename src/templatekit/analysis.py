"""Static analysis of ``raise_exception`` call sites on jinja2's AST.

For every site: where it is, the message, the path condition (enclosing ``if`` tests and
loops, following aliases of ``messages``) and a class decided from the structure of the
condition (``alternation``, ``system-role``, ``role-unsupported``, ``content-type``,
``tool-call``, ``other``).  Like jinja2's ``meta`` module this is plain functions over
``nodes.Template``; it never renders.  Whether a site is live is the job of
:mod:`templatekit.probes.witnesses`.  Also the static facts rules and probes read
(:func:`uses_name`, :func:`compared_roles`, :func:`content_triggers`), so that no static rule
imports rendering code.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from typing import Literal

import jinja2.nodes as nodes
from jinja2.visitor import NodeVisitor

from .errors import InputLimitError, TemplateSyntaxError
from .records import Record
from .syntax import (
    ParsedTemplate,
    Span,
    expression_text,
    is_raise_call,
    iter_nodes,
    numbered_code,
    parse,
    split_operands,
    too_deep,
)

__all__ = [
    "CheckClass",
    "Condition",
    "Loop",
    "Guard",
    "RaiseSite",
    "Analysis",
    "analyze",
    "CHECK_CLASSES",
    "constant_strings",
    "boolean_flags",
    "ROLE_STRUCTURE",
    "analyze_text",
    "uses_name",
    "compared_roles",
    "content_triggers",
    "random_sources",
    "SERVER_INPUTS",
]

CheckClass = Literal["alternation", "system-role", "role-unsupported", "content-type", "tool-call", "other"]
CHECK_CLASSES: tuple[CheckClass, ...] = (
    "alternation",
    "system-role",
    "role-unsupported",
    "content-type",
    "tool-call",
    "other",
)
ROLE_STRUCTURE: frozenset[CheckClass] = frozenset({"alternation", "system-role", "role-unsupported"})
"""The classes of checks about which roles may appear where (relax normalises instead of raising)."""


class Condition(Record):
    """One enclosing test on the path to a site; ``negated`` when the site is in its else side."""

    text: str
    negated: bool
    line: int

    def __str__(self) -> str:
        return f"not ({self.text})" if self.negated else self.text


class Loop(Record):
    """An enclosing ``for`` loop: its target, what it iterates, and whether that is ``messages``."""

    target: str
    iterable: str
    over_messages: bool
    line: int


class Guard(Record):
    """The innermost ``if`` around a site, as the rewrite needs it.

    ``test_span`` is the exact source span of the test (``None`` if it could not be located);
    ``branch`` is ``"body"`` when the site is in the if's own body, ``"else"`` otherwise;
    ``only_raise`` is true when that branch holds nothing but the raise (and whitespace);
    ``statement_span`` covers ``{% if %}...{% endif %}`` when the if has no other branch;
    ``alternation_operands``, when the test joins an alternation check and checks of other
    classes with ``or``, are the spans of the alternation operands (the rest must stay);
    ``test_has_effects`` is true when the test calls something that may have effects
    (``loop.changed``, a cycler, a macro): it must keep running as before.
    """

    test_span: Span | None
    branch: Literal["body", "else"]
    only_raise: bool
    line: int
    statement_span: Span | None = None
    alternation_operands: tuple[Span, ...] = ()
    test_has_effects: bool = False


class RaiseSite(Record):
    """One ``raise_exception(...)`` call site.

    ``shared_with`` lists the classes of other checks that the site's innermost condition
    joins to an alternation check with ``or`` (``role not in [...] or <alternation>``): they
    raise the same call and must keep raising when the alternation part is neutralised.
    """

    index: int
    line: int
    column: int
    span: Span | None
    call_text: str
    message: str
    message_is_literal: bool
    conditions: tuple[Condition, ...]
    loops: tuple[Loop, ...]
    check_class: CheckClass
    guard: Guard | None
    macro: str | None = None
    shared_with: tuple[CheckClass, ...] = ()


class Analysis(Record):
    """Everything :func:`analyze` found in one template."""

    sites: tuple[RaiseSite, ...]
    message_aliases: frozenset[str]
    string_constants: frozenset[str]
    undeclared: frozenset[str]
    flags: frozenset[str] = frozenset()

    def of_class(self, check_class: CheckClass) -> tuple[RaiseSite, ...]:
        return tuple(site for site in self.sites if site.check_class == check_class)


def analyze(parsed: ParsedTemplate) -> Analysis:
    """Find and classify every ``raise_exception`` site of ``parsed``."""
    aliases = _message_aliases(parsed)
    walker = _SiteWalker(parsed, aliases)
    walker.visit(parsed.ast, _Path((), (), None, None))
    return Analysis(
        sites=tuple(walker.sites),
        message_aliases=frozenset(aliases.messages),
        string_constants=frozenset(
            node.value for node in parsed.nodes if isinstance(node, nodes.Const) and isinstance(node.value, str)
        ),
        undeclared=(undeclared := numbered_code(parsed).undeclared),
        flags=boolean_flags(parsed.ast) & undeclared,
    )


def analyze_text(text: str, name: str | None = None) -> tuple[ParsedTemplate, Analysis]:
    """``text`` parsed (default profile) and analysed, once per text whoever asks (cached); a
    template that does not parse raises the error :func:`~templatekit.syntax.parse` raises, naming ``name``."""
    try:
        return _analyze_text(text)
    except TemplateSyntaxError as error:
        raise TemplateSyntaxError(error.message, line=error.line, name=name) from None
    except InputLimitError:
        raise too_deep(name) from None


@lru_cache(maxsize=16)
def _analyze_text(text: str) -> tuple[ParsedTemplate, Analysis]:
    parsed = parse(text)
    return parsed, analyze(parsed)


# Variables every server passes (or the environment defines): not caller-chosen flags.
SERVER_INPUTS = frozenset(
    {
        "messages",
        "tools",
        "documents",
        "add_generation_prompt",
        "raise_exception",
        "strftime_now",
        "namespace",
        "range",
        "dict",
        "lipsum",
        "cycler",
        "joiner",
    }
)
_TRUTH_TESTS = frozenset({"defined", "undefined", "true", "false", "none", "boolean", "sameas"})


def boolean_flags(ast: nodes.Template) -> frozenset[str]:
    """Names a template only ever tests for truth (``{% if enable_thinking %}``, ``not x``, ``x is false``).

    These are the caller's keyword arguments that switch behaviour on and off, so probes and
    generators must try them both ways.  A name also used as a value (``'Today ' + date_string``,
    ``tools = custom_tools``) is not a flag: ``true`` would be a nonsense value for it.
    """
    tested: set[int] = set()
    reads: dict[str, list[int]] = {}
    for node in iter_nodes(ast):
        if isinstance(node, (nodes.If, nodes.CondExpr)):
            tested |= {id(name) for name in _truth_tested_names(node.test)}
        elif isinstance(node, nodes.Name) and node.ctx == "load":
            reads.setdefault(node.name, []).append(id(node))
    return frozenset(
        name
        for name, ids in reads.items()
        if all(read in tested for read in ids) and name not in SERVER_INPUTS and not name.endswith("_token")
    )


def _truth_tested_names(test: nodes.Node) -> list[nodes.Name]:
    if isinstance(test, nodes.Name):
        return [test]
    if isinstance(test, (nodes.And, nodes.Or)):
        return _truth_tested_names(test.left) + _truth_tested_names(test.right)
    if isinstance(test, nodes.Not):
        return _truth_tested_names(test.node)
    if isinstance(test, nodes.Test) and test.name in _TRUTH_TESTS and isinstance(test.node, nodes.Name):
        return [test.node]
    if (
        isinstance(test, nodes.Compare)
        and isinstance(test.expr, nodes.Name)
        and all(isinstance(op.expr, nodes.Const) and isinstance(op.expr.value, bool) for op in test.ops)
    ):
        return [test.expr]
    return []


# --- aliases -------------------------------------------------------------------------------


class _Aliases:
    """Names that stand for the message list, for one message, for a role, for a content, for
    a list of roles or for a position (a ``range`` loop target, a counter, a name set from
    ``loop.index0``...); names that toggle (``ns.x = not ns.x``, a parity in disguise); and for each
    flag set to true (a namespace field, or a name outside loops), the tests around each place
    that sets it."""

    def __init__(self) -> None:
        self.messages: set[str] = {"messages"}
        self.message: set[str] = set()
        self.role: set[str] = set()
        self.content: set[str] = set()
        self.role_lists: set[str] = set()
        self.indices: set[str] = set()
        self.toggles: set[str] = set()
        self.flag_tests: dict[str, list[list[nodes.Node]]] = {}

    def size(self) -> tuple[int, ...]:
        return tuple(map(len, (self.messages, self.message, self.role, self.content, self.role_lists, self.indices)))


def _message_aliases(parsed: ParsedTemplate) -> _Aliases:
    """Follow ``set`` statements, namespace fields, loop targets and macro parameters to a fixpoint."""
    aliases = _Aliases()
    macros = {node.name: node for node in parsed.nodes if isinstance(node, nodes.Macro)}
    changed = True
    while changed:
        before = aliases.size()
        for node in parsed.nodes:
            if isinstance(node, nodes.Assign):
                _alias_assignment(_target_name(node.target), node.node, aliases)
            elif isinstance(node, nodes.For) and _is_range(node.iter):
                aliases.indices.update(_target_names(node.target))
            elif isinstance(node, nodes.For) and _is_role_list(node.iter, aliases):
                aliases.role.update(_target_names(node.target))
            elif isinstance(node, nodes.For) and _refers_to(node.iter, aliases.messages):
                aliases.message.update(_target_names(node.target))
            elif isinstance(node, nodes.Call) and isinstance(node.node, nodes.Name) and node.node.name in macros:
                params = [arg.name for arg in macros[node.node.name].args]
                for param, arg in zip(params, node.args):
                    _alias_assignment(param, arg, aliases)
        changed = before != aliases.size()
    aliases.toggles = {
        name
        for node in parsed.nodes
        if isinstance(node, nodes.Assign)
        and (name := _target_name(node.target)) is not None
        and _toggles(name, node.node)
    }
    _collect_flags(parsed.ast, [], False, aliases.flag_tests)
    return aliases


def _is_range(node: nodes.Node) -> bool:
    return isinstance(node, nodes.Call) and isinstance(node.node, nodes.Name) and node.node.name == "range"


def _counts(name: str, value: nodes.Node) -> bool:
    """``name = name + 1`` (or any step, either side, or ``-``): a counter."""
    return isinstance(value, (nodes.Add, nodes.Sub)) and name in (_ref_name(value.left), _ref_name(value.right))


_LOOP_POSITIONS = frozenset({"index", "index0", "revindex", "revindex0", "length"})


def _is_position(node: nodes.Node, aliases: _Aliases) -> bool:
    """Whether ``node`` computes a position: ``loop.index0`` and kin, a name for a position, the
    length of a message list, or arithmetic on one of those (``loop.index0 + offset``)."""
    if (
        isinstance(node, nodes.Getattr)
        and node.attr in _LOOP_POSITIONS
        and isinstance(node.node, nodes.Name)
        and node.node.name == "loop"
    ):
        return True
    if _ref_name(node) in aliases.indices:
        return True
    if isinstance(node, nodes.Filter) and node.name in ("length", "count") and node.node is not None:
        return _is_message_list(node.node, aliases) or _is_role_list(node.node, aliases)
    if isinstance(node, nodes.BinExpr):
        return _is_position(node.left, aliases) or _is_position(node.right, aliases)
    if isinstance(node, (nodes.Neg, nodes.Pos)):
        return _is_position(node.node, aliases)
    if isinstance(node, nodes.CondExpr):
        return _is_position(node.expr1, aliases) or (node.expr2 is not None and _is_position(node.expr2, aliases))
    return False


def _toggles(name: str, value: nodes.Node) -> bool:
    """``name = not name``, ``name = 1 - name``: a value that flips on every assignment."""
    if isinstance(value, nodes.Not):
        return _ref_name(value.node) == name
    return (
        isinstance(value, nodes.Sub)
        and isinstance(value.left, nodes.Const)
        and value.left.value == 1
        and _ref_name(value.right) == name
    )


def _collect_flags(
    node: nodes.Node, tests: list[nodes.Node], in_scope: bool, found: dict[str, list[list[nodes.Node]]]
) -> None:
    """Record the enclosing tests of every ``set <flag> = true`` whose value outlives its scope:
    a namespace field anywhere, a plain name only outside loops and macros (a ``set`` in a
    ``for`` does not leak out of it)."""
    if isinstance(node, nodes.Assign) and isinstance(node.node, nodes.Const) and node.node.value is True:
        name = _target_name(node.target)
        if name is not None and (isinstance(node.target, nodes.NSRef) or not in_scope):
            found.setdefault(name, []).append(list(tests))
        return
    if isinstance(node, nodes.If):
        earlier: list[nodes.Node] = []
        for branch in (node, *node.elif_):
            for child in branch.body:
                _collect_flags(child, [*tests, *earlier, branch.test], in_scope, found)
            earlier.append(branch.test)
        for child in node.else_:
            _collect_flags(child, [*tests, *earlier], in_scope, found)
        return
    scoped = in_scope or isinstance(node, (nodes.For, nodes.Macro, nodes.CallBlock))
    for child in node.iter_child_nodes():
        _collect_flags(child, tests, scoped, found)


def _alias_assignment(name: str | None, value: nodes.Node, aliases: _Aliases) -> None:
    if name is None:
        return
    if _is_position(value, aliases) or _counts(name, value):
        aliases.indices.add(name)
    if _is_role_list(value, aliases):
        aliases.role_lists.add(name)
    elif _is_message_list(value, aliases):
        aliases.messages.add(name)
    elif _is_role_value(value, aliases):
        aliases.role.add(name)
    elif _is_field_of(value, "content", aliases):
        aliases.content.add(name)
    elif _is_single_message(value, aliases):
        aliases.message.add(name)


def _is_role_value(value: nodes.Node, aliases: _Aliases) -> bool:
    """A role, or a choice between roles and role names that depends on a role
    (``'assistant' if message.role == 'user' else 'user'``)."""
    if _is_field_of(value, "role", aliases) or _ref_name(value) in aliases.role:
        return True
    if isinstance(value, nodes.CondExpr) and value.expr2 is not None and _mentions_role(value.test, aliases):
        branches = (value.expr1, value.expr2)
        return all(_is_role_value(branch, aliases) or constant_strings(branch) for branch in branches)
    return False


def _target_name(target: nodes.Node) -> str | None:
    if isinstance(target, nodes.Name):
        return target.name
    if isinstance(target, nodes.NSRef):
        return f"{target.name}.{target.attr}"
    return None


def _target_names(target: nodes.Node) -> list[str]:
    if isinstance(target, nodes.Tuple):
        return [name for item in target.items for name in _target_names(item)]
    name = _target_name(target)
    return [name] if name else []


def _ref_name(node: nodes.Node) -> str | None:
    """``x`` for a Name, ``ns.x`` for a namespace attribute read, else ``None``."""
    if isinstance(node, nodes.Name):
        return node.name
    if isinstance(node, nodes.Getattr) and isinstance(node.node, nodes.Name):
        return f"{node.node.name}.{node.attr}"
    return None


def _refers_to(node: nodes.Node, names: set[str]) -> bool:
    """Whether any name (or namespace field) of ``names`` is read inside ``node``."""
    return any(_ref_name(child) in names for child in iter_nodes(node))


def _is_plain_ref(node: nodes.Node) -> bool:
    return _ref_name(node) is not None


def _is_message_list(node: nodes.Node, aliases: _Aliases) -> bool:
    """``messages``, a slice of it, or it through filters (``selectattr``, ``list``, ``reverse``...)."""
    node = _list_source(node)
    return not _is_map(node) and _ref_name(node) in aliases.messages


def _is_role_list(node: nodes.Node, aliases: _Aliases) -> bool:
    """The roles of a message list (``messages | map(attribute='role') | list``), or a name for them."""
    node = _list_source(node)
    if _is_map(node):
        attribute = [kw.value for kw in node.kwargs if kw.key == "attribute"]  # type: ignore[attr-defined]
        return (
            len(attribute) == 1 and constant_strings(attribute[0]) == {"role"} and _is_message_list(node.node, aliases)
        )  # type: ignore[attr-defined]
    return _ref_name(node) in aliases.role_lists


def _list_source(node: nodes.Node) -> nodes.Node:
    """``node`` with slices and element-preserving filters (all but ``map``) peeled off."""
    while (isinstance(node, (nodes.Filter, nodes.Slice)) and not _is_map(node)) or (
        isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Slice)
    ):
        node = node.node  # type: ignore[attr-defined]
    return node


def _is_map(node: nodes.Node) -> bool:
    return isinstance(node, nodes.Filter) and node.name == "map" and node.node is not None


def _is_single_message(node: nodes.Node, aliases: _Aliases) -> bool:
    """``messages[i]``, ``loop_messages[-1]`` or a name bound to one message."""
    if isinstance(node, nodes.Getitem) and not isinstance(node.arg, nodes.Slice):
        return _is_message_list(node.node, aliases)
    if isinstance(node, nodes.Filter) and node.name in ("first", "last"):
        return node.node is not None and _is_message_list(node.node, aliases)
    return _ref_name(node) in aliases.message


def _field_key(node: nodes.Node) -> str | None:
    if isinstance(node, nodes.Getattr):
        return node.attr
    if isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
        return node.arg.value
    return None


def _is_field_of(node: nodes.Node, key: str, aliases: _Aliases) -> bool:
    """``<message>.key`` / ``<message>['key']`` (any message expression, including ``loop.previtem``)."""
    if _field_key(node) != key:
        return False
    owner = node.node  # type: ignore[attr-defined]
    return (
        _is_single_message(owner, aliases)
        or (isinstance(owner, nodes.Getattr) and owner.attr in ("previtem", "nextitem"))
        or isinstance(owner, nodes.Name)
    )


# --- classification ------------------------------------------------------------------------

_TOOL_KEYS = {"tool_calls", "tool_call_id", "tool_call", "tools", "function", "arguments"}
_TOOL_ROLES = {"tool", "tool_results", "ipython", "function"}
_CONTENT_TESTS = {"string", "mapping", "iterable", "sequence", "none", "number", "defined", "undefined"}
_CONTENT_KINDS = {"text", "image", "image_url", "video", "audio", "input_audio", "file"}


def _is_role(node: nodes.Node, aliases: _Aliases) -> bool:
    """``message.role``, a name for a role, or an item of a role list (``roles[i]``, ``roles | last``)."""
    if (
        isinstance(node, nodes.Getitem)
        and not isinstance(node.arg, nodes.Slice)
        or isinstance(node, nodes.Filter)
        and node.name in ("first", "last")
        and node.node is not None
    ) and _is_role_list(node.node, aliases):  # type: ignore[attr-defined]
        return True
    return _is_field_of(node, "role", aliases) or _ref_name(node) in aliases.role


def _is_content(node: nodes.Node, aliases: _Aliases) -> bool:
    return _is_field_of(node, "content", aliases) or _ref_name(node) in aliases.content


def _role_constants(test: nodes.Node, aliases: _Aliases) -> set[str]:
    """The role names a test compares a role against."""
    return _compared_strings(iter_nodes(test), aliases)


def _compared_strings(candidates: Iterable[nodes.Node], aliases: _Aliases | None) -> set[str]:
    """The string constants of every comparison among ``candidates`` with a role operand
    (:func:`_names_role`, or with ``aliases`` also what they know as a role)."""
    found: set[str] = set()
    for node in candidates:
        if isinstance(node, nodes.Compare):
            operands = [node.expr, *(operand.expr for operand in node.ops)]
            if any(_names_role(operand) or aliases is not None and _is_role(operand, aliases) for operand in operands):
                for operand in operands:
                    found |= constant_strings(operand)
    return found


def _names_role(node: nodes.Node) -> bool:
    """``x.role``, ``x['role']`` or a variable named ``*role*``: a role by its name alone."""
    if isinstance(node, nodes.Getattr):
        return node.attr == "role"
    if isinstance(node, nodes.Getitem):
        return isinstance(node.arg, nodes.Const) and node.arg.value == "role"
    return isinstance(node, nodes.Name) and "role" in node.name


def constant_strings(node: nodes.Node) -> set[str]:
    """The string values of a constant, or of a literal list/tuple of constants."""
    if isinstance(node, nodes.Const) and isinstance(node.value, str):
        return {node.value}
    if isinstance(node, (nodes.List, nodes.Tuple)):
        return {item.value for item in node.items if isinstance(item, nodes.Const) and isinstance(item.value, str)}
    return set()


def _has_parity(test: nodes.Node, aliases: _Aliases) -> bool:
    """The parity of a position: ``i % 2``, ``i is even`` / ``odd`` / ``divisibleby(2)`` where ``i``
    is ``loop.index0``, a counter, a ``range`` index or arithmetic on one; ``loop.cycle(a, b)``;
    a toggle."""
    for node in iter_nodes(test):
        if _ref_name(node) in aliases.toggles:
            return True
        if (
            isinstance(node, nodes.Mod)
            and isinstance(node.right, nodes.Const)
            and node.right.value == 2
            and _is_position(node.left, aliases)
        ):
            return True
        if (
            isinstance(node, nodes.Test)
            and node.name in ("even", "odd", "divisibleby")
            and _is_position(node.node, aliases)
        ):
            return True
        if _is_loop_method(node, "cycle") and len(node.args) >= 2:  # type: ignore[attr-defined]
            return True
    return False


def _is_loop_method(node: nodes.Node, method: str) -> bool:
    """A call of the loop object's ``method`` (``loop.cycle(...)``, ``loop.changed(...)``)."""
    return (
        isinstance(node, nodes.Call)
        and isinstance(node.node, nodes.Getattr)
        and node.node.attr == method
        and isinstance(node.node.node, nodes.Name)
        and node.node.node.name == "loop"
    )


def _compares_two_roles(test: nodes.Node, aliases: _Aliases) -> bool:
    """A role compared with another role (``message.role == loop.previtem.role``), or with the
    previous iteration's through ``loop.changed(message.role)``."""
    for node in iter_nodes(test):
        if isinstance(node, nodes.Compare):
            operands = [node.expr, *(operand.expr for operand in node.ops)]
            if sum(_is_role(operand, aliases) for operand in operands) >= 2:
                return True
        if _is_loop_method(node, "changed") and any(_is_role(arg, aliases) for arg in node.args):  # type: ignore[attr-defined]
            return True
    return False


def _mentions_role(test: nodes.Node, aliases: _Aliases) -> bool:
    return any(_is_role(node, aliases) for node in iter_nodes(test))


def _mentions_tools(test: nodes.Node, aliases: _Aliases) -> bool:
    if _role_constants(test, aliases) & _TOOL_ROLES:
        return True
    for node in iter_nodes(test):
        if _field_key(node) in _TOOL_KEYS or (
            isinstance(node, nodes.Name) and node.name in ("tools", "tool", "tool_call")
        ):
            return True
        if isinstance(node, nodes.Const) and node.value in ("tool_calls", "tool_call_id"):
            return True
    return False


def _mentions_content_type(test: nodes.Node, aliases: _Aliases) -> bool:
    for node in iter_nodes(test):
        if isinstance(node, nodes.Test) and node.name in _CONTENT_TESTS and _is_content(node.node, aliases):
            return True
        if isinstance(node, nodes.Const) and node.value in _CONTENT_KINDS:
            return True
        if _is_content(node, aliases):
            return True
    return False


def _refuses_roles(test: nodes.Node) -> bool:
    """``role not in [...]`` / ``role != '...'``: a test that is true for unexpected roles."""
    return any(
        isinstance(node, nodes.Compare) and any(op.op in ("notin", "ne") for op in node.ops)
        for node in iter_nodes(test)
    )


def _classify(conditions: tuple[tuple[nodes.Node, bool], ...], message: str, aliases: _Aliases) -> CheckClass:
    """Decide a site's class from its path condition; the message only breaks ties.

    Alternation: a role tested together with the parity of an index or counter (or
    ``loop.cycle``), or a role compared with another role (or ``loop.changed``).  Otherwise the
    innermost condition that says anything wins: the else-side of a role test is
    ``role-unsupported``; a test on tool calls, ids or tools is ``tool-call``; on content types
    ``content-type``; a test refusing roles other than ``system`` is ``role-unsupported``; a
    role compared with ``system`` ``system-role``.
    """
    pinned = _pinned_roles(conditions, aliases)
    if not (pinned and pinned <= _TOOL_ROLES) and (
        _is_alternation([test for test, _ in conditions], aliases) or _set_by_alternation(conditions, aliases)
    ):
        return "alternation"
    for test, negated in reversed(conditions):  # innermost first
        roles = _role_constants(test, aliases)
        if negated and roles:
            return "system-role" if roles == {"system"} else "role-unsupported"
        if _mentions_tools(test, aliases):
            return "tool-call"
        if _mentions_content_type(test, aliases):
            return "content-type"
        if roles:
            if _refuses_roles(test) and roles - {"system"}:
                return "role-unsupported"
            if "system" in roles:
                return "system-role"
    return _tie_break(message)


def _is_alternation(tests: list[nodes.Node], aliases: _Aliases) -> bool:
    return (
        any(_has_parity(test, aliases) for test in tests) and any(_mentions_role(test, aliases) for test in tests)
    ) or any(_compares_two_roles(test, aliases) for test in tests)


def _pinned_roles(conditions: tuple[tuple[nodes.Node, bool], ...], aliases: _Aliases) -> set[str]:
    """The roles a path allows when it requires ``role == 'x'`` or ``role in [...]`` (empty: any)."""
    allowed: set[str] | None = None
    for test, negated in conditions:
        if negated:
            continue
        for leaf in _and_leaves(test):
            if isinstance(leaf, nodes.Compare) and len(leaf.ops) == 1 and leaf.ops[0].op in ("eq", "in"):
                left, right = leaf.expr, leaf.ops[0].expr
                roles = (
                    constant_strings(right)
                    if _is_role(left, aliases)
                    else (constant_strings(left) if leaf.ops[0].op == "eq" and _is_role(right, aliases) else set())
                )
                if roles:
                    allowed = roles if allowed is None else allowed & roles
    return allowed or set()


def _set_by_alternation(conditions: tuple[tuple[nodes.Node, bool], ...], aliases: _Aliases) -> bool:
    """A condition requires a flag (``if ns.bad``, ``if a and ns.bad``) that is only ever set to
    true under alternation tests."""
    for test, negated in conditions:
        if negated:
            continue
        for leaf in _and_leaves(test):
            places = aliases.flag_tests.get(_ref_name(leaf) or "")
            if places and all(_is_alternation(tests, aliases) for tests in places):
                return True
    return False


def _and_leaves(node: nodes.Node) -> list[nodes.Node]:
    return _and_leaves(node.left) + _and_leaves(node.right) if isinstance(node, nodes.And) else [node]


class _Plan(Record):
    """How to stop the alternation part of a test from raising: disable it ``whole``, or only
    the alternation operands at ``parts`` (``None``: not located) so that the operands of
    classes ``others`` keep raising."""

    whole: bool
    parts: tuple[Span | None, ...] = ()
    others: tuple[CheckClass, ...] = ()


def _plan(
    node: nodes.Node,
    span: Span | None,
    context: tuple[tuple[nodes.Node, bool], ...],
    message: str,
    aliases: _Aliases,
    source: str,
) -> _Plan:
    """Split ``node`` (an innermost condition, under the outer ``context``) at ``or``/``and``.

    An ``or`` whose operands are partly alternation checks, partly other checks, keeps the
    other operands: only its alternation operands are disabled.  Inside an ``and`` that is an
    alternation check, a conjunct that is such a mixed ``or`` is split the same way (in the
    context of the plain conjuncts beside it).
    """
    if isinstance(node, nodes.Or):
        disjuncts = _operands(node, span, source)
        plans = [_plan(operand, piece, context, message, aliases, source) for operand, piece in disjuncts]
        if all(plan.whole for plan in plans):
            return _Plan(True)
        parts = tuple(
            part for (_, piece), plan in zip(disjuncts, plans) for part in ((piece,) if plan.whole else plan.parts)
        )
        return _Plan(False, parts, tuple(other for plan in plans for other in plan.others))
    if isinstance(node, nodes.And) and _is_role_structure((*context, (node, False)), aliases):
        operands = _operands(node, span, source)
        plain = tuple((operand, False) for operand, _ in operands if not isinstance(operand, (nodes.And, nodes.Or)))
        plans = [
            _plan(operand, piece, (*context, *plain), message, aliases, source)
            for operand, piece in operands
            if isinstance(operand, (nodes.And, nodes.Or))
        ]
        parts = tuple(part for plan in plans if not plan.whole for part in plan.parts)
        return _Plan(False, parts, tuple(other for plan in plans for other in plan.others)) if parts else _Plan(True)
    if _is_role_structure((*context, (node, False)), aliases):
        return _Plan(True)
    return _Plan(False, (), (_classify((*context, (node, False)), message, aliases),))


def _is_role_structure(conditions: tuple[tuple[nodes.Node, bool], ...], aliases: _Aliases) -> bool:
    """Whether a path condition, read structurally (no message tie-break), checks role structure."""
    return _classify(conditions, "", aliases) in ROLE_STRUCTURE


def _operands(node: nodes.And | nodes.Or, span: Span | None, source: str) -> list[tuple[nodes.Node, Span | None]]:
    """The operands of an ``and``/``or`` chain as written (``a or b or c`` parses as
    ``(a or b) or c``; a parenthesised operand stays one), with their spans when located."""
    kind = type(node)
    if span is not None:
        pieces = split_operands(source, span, "or" if kind is nodes.Or else "and")
        operands: list[nodes.Node] = []
        current: nodes.Node = node
        for _ in pieces[1:]:
            if not isinstance(current, kind):
                break
            operands.insert(0, current.right)  # type: ignore[attr-defined]
            current = current.left  # type: ignore[attr-defined]
        else:
            if len(pieces) >= 2:
                return list(zip([current, *operands], pieces))
    return [(operand, None) for operand in _chain(node, kind)]


def _chain(node: nodes.Node, kind: type) -> list[nodes.Node]:
    return _chain(node.left, kind) + _chain(node.right, kind) if isinstance(node, kind) else [node]  # type: ignore[attr-defined]


def _tie_break(message: str) -> CheckClass:
    text = message.lower()
    if "alternate" in text:
        return "alternation"
    if "system" in text:
        return "system-role"
    if "tool" in text:
        return "tool-call"
    if "content" in text or "image" in text:
        return "content-type"
    if "role" in text:
        return "role-unsupported"
    return "other"


# --- the walk ------------------------------------------------------------------------------


class _Condition(Record):
    """A test on the way to a site: ``negated`` when the site is on its false side; ``owner`` is the
    id of the ``If`` (or ``CondExpr``) node the test belongs to."""

    test: nodes.Node
    negated: bool
    owner: int


class _Branch(Record):
    """The side of an ``If`` a site sits in, and that side's statements."""

    node: nodes.If
    side: Literal["body", "else"]
    body: list[nodes.Node]


class _Path(Record):
    """How the walk reached a node: the tests that hold there, the loops around it, the innermost
    ``If`` side (``None`` inside an inline ``if``) and the macro it is in."""

    conditions: tuple[_Condition, ...]
    loops: tuple[nodes.For, ...]
    guard: _Branch | None
    macro: str | None


class _SiteWalker(NodeVisitor):
    """Walks the template in document order, carrying the path to each raise call: one
    ``visit_<Node>`` per node type that changes the path (jinja2's visitor walks the rest)."""

    def __init__(self, parsed: ParsedTemplate, aliases: _Aliases) -> None:
        self.parsed = parsed
        self.aliases = aliases
        self.sites: list[RaiseSite] = []
        self.elif_nodes = {id(branch) for node in parsed.nodes if isinstance(node, nodes.If) for branch in node.elif_}

    def visit_For(self, node: nodes.For, path: _Path) -> None:
        inner = path._replace(loops=(*path.loops, node))
        self.visit(node.iter, path)
        for child in node.body:
            self.visit(child, inner)
        for child in node.else_:
            self.visit(child, path)

    def visit_Macro(self, node: nodes.Macro, path: _Path) -> None:
        inner = _Path((), (), None, node.name)
        for child in node.body:
            self.visit(child, inner)

    def visit_If(self, node: nodes.If, path: _Path) -> None:
        self.visit(node.test, path)
        branches = [node, *node.elif_]
        earlier: tuple[_Condition, ...] = ()
        for branch in branches:
            conditions = (*path.conditions, *earlier, _Condition(branch.test, False, id(branch)))
            for child in branch.body:
                self.visit(child, _Path(conditions, path.loops, _Branch(branch, "body", branch.body), path.macro))
            earlier = (*earlier, _Condition(branch.test, True, id(branch)))
        for child in node.else_:
            self.visit(
                child,
                _Path((*path.conditions, *earlier), path.loops, _Branch(branches[-1], "else", node.else_), path.macro),
            )

    def visit_CondExpr(self, node: nodes.CondExpr, path: _Path) -> None:
        self.visit(node.test, path)
        self.visit(
            node.expr1, _Path((*path.conditions, _Condition(node.test, False, id(node))), path.loops, None, path.macro)
        )
        if node.expr2 is not None:
            self.visit(
                node.expr2,
                _Path((*path.conditions, _Condition(node.test, True, id(node))), path.loops, None, path.macro),
            )

    def visit_Call(self, node: nodes.Call, path: _Path) -> None:
        if is_raise_call(node):
            self._record(node, path)
        else:
            self.generic_visit(node, path)

    def _record(self, call: nodes.Call, path: _Path) -> None:
        parsed = self.parsed
        span = parsed.raise_calls.get(id(call))
        line, column = parsed.position(span.start) if span else (call.lineno, 0)
        message, literal = _message_of(call, parsed)
        check_class = _classify(
            tuple((condition.test, condition.negated) for condition in path.conditions), message, self.aliases
        )
        shared_with, operands = self._shared_checks(path, message) if check_class in ROLE_STRUCTURE else ((), ())
        guard = self._guard(path, call)
        if guard is not None and operands:
            guard = guard._replace(alternation_operands=operands)
        self.sites.append(
            RaiseSite(
                index=len(self.sites),
                line=line,
                column=column,
                span=span,
                call_text=span.text(parsed.source) if span else f"raise_exception({message!r})",
                message=message,
                message_is_literal=literal,
                conditions=tuple(
                    Condition(
                        self._test_text(condition.test, condition.owner), condition.negated, condition.test.lineno
                    )
                    for condition in path.conditions
                ),
                loops=tuple(
                    Loop(
                        expression_text(loop.target),
                        expression_text(loop.iter),
                        _is_message_list(loop.iter, self.aliases),
                        loop.lineno,
                    )
                    for loop in path.loops
                ),
                check_class=check_class,
                guard=guard,
                macro=path.macro,
                shared_with=shared_with,
            )
        )

    def _shared_checks(self, path: _Path, message: str) -> tuple[tuple[CheckClass, ...], tuple[Span, ...]]:
        """Other checks ``or``-ed into the innermost condition, and the alternation operands' spans."""
        if not path.conditions or path.conditions[-1].negated:
            return (), ()
        guard = path.guard
        span = self.parsed.if_test_span(guard.node) if guard is not None and guard.side == "body" else None
        outer = tuple((condition.test, condition.negated) for condition in path.conditions[:-1])
        plan = _plan(path.conditions[-1].test, span, outer, message, self.aliases, self.parsed.source)
        if plan.whole or not plan.parts:
            return (), ()
        others = tuple(dict.fromkeys(plan.others))
        located = tuple(part for part in plan.parts if part is not None)
        return others, located if len(located) == len(plan.parts) else ()

    def _test_text(self, test: nodes.Node, owner_id: int) -> str:
        for node in self.parsed.nodes:
            if isinstance(node, nodes.If) and id(node) == owner_id:
                span = self.parsed.if_test_span(node)
                if span is not None:
                    return span.text(self.parsed.source)
        return expression_text(test)

    def _guard(self, path: _Path, call: nodes.Call) -> Guard | None:
        if path.guard is None:
            return None
        node, side, body = path.guard
        single_branch = not node.elif_ and not node.else_ and id(node) not in self.elif_nodes
        return Guard(
            test_span=self.parsed.if_test_span(node),
            branch=side,
            only_raise=_only_raise(body, call),
            line=node.lineno,
            statement_span=self.parsed.if_statement_span(node) if single_branch else None,
            test_has_effects=_has_effects(node.test),
        )


# Calls known to have no effects: builtins, loop.cycle, string and mapping methods.
_PURE_CALLS = frozenset(
    {
        "range",
        "namespace",
        "dict",
        "cycle",
        "startswith",
        "endswith",
        "strip",
        "lstrip",
        "rstrip",
        "split",
        "rsplit",
        "lower",
        "upper",
        "title",
        "capitalize",
        "replace",
        "items",
        "keys",
        "values",
        "get",
        "find",
        "count",
        "join",
        "format",
    }
)


def _has_effects(test: nodes.Node) -> bool:
    """Whether ``test`` calls anything but :data:`_PURE_CALLS` (``loop.changed`` remembers its
    argument, ``cycler.next()`` advances, a macro may set namespace fields)."""
    for node in iter_nodes(test):
        if isinstance(node, nodes.Call):
            callee = node.node
            name = callee.attr if isinstance(callee, nodes.Getattr) else getattr(callee, "name", None)
            if name not in _PURE_CALLS:
                return True
    return False


def _only_raise(body: list[nodes.Node], call: nodes.Call) -> bool:
    """The branch outputs nothing but ``{{ raise_exception(...) }}`` and whitespace."""
    outputs = [item for statement in body if isinstance(statement, nodes.Output) for item in statement.nodes]
    if len(outputs) != len(body) and any(not isinstance(statement, nodes.Output) for statement in body):
        return False
    calls = [item for item in outputs if item is call]
    rest = [item for item in outputs if item is not call]
    return len(calls) == 1 and all(isinstance(item, nodes.TemplateData) and not item.data.strip() for item in rest)


def _message_of(call: nodes.Call, parsed: ParsedTemplate) -> tuple[str, bool]:
    if call.args and isinstance(call.args[0], nodes.Const) and isinstance(call.args[0].value, str):
        return call.args[0].value, True
    if call.args:
        return expression_text(call.args[0]), False
    return "", True


# --- what the template reads of a message ------------------------------------------------------

_WHOLE_MAPPING_METHODS = frozenset({"items", "keys", "values"})
_ATTRIBUTE_FILTERS = frozenset({"selectattr", "rejectattr", "map", "groupby", "sort", "sum", "unique", "min", "max"})
_LIST_SAFE_FILTERS = frozenset({"length", "count", "first", "last", "list", "reverse", "batch", "slice"})


def message_fields(parsed: ParsedTemplate) -> frozenset[str] | None:
    """The keys the template reads off messages, or ``None`` when it may read a message whole
    (prints it, passes it to ``tojson``, iterates its items, compares it...).

    A message rebuilt from exactly these keys (those it has) renders the same as the message.
    """
    aliases = _message_aliases(parsed)
    parents = parsed.parents
    fields: set[str] = set()
    for node in parsed.nodes:
        if _is_single_message(node, aliases) or _is_neighbour(node):
            read = _message_read(node, parents.get(id(node)), parents)
        elif _ref_name(node) in aliases.messages and getattr(node, "ctx", "load") == "load":
            read = _list_read(node, parents)
        else:
            continue
        if read is None:
            return None
        fields |= read
    return frozenset(fields)


def _is_neighbour(node: nodes.Node) -> bool:
    return (
        isinstance(node, nodes.Getattr)
        and node.attr in ("previtem", "nextitem")
        and isinstance(node.node, nodes.Name)
        and node.node.name == "loop"
    )


def _message_read(node: nodes.Node, parent: nodes.Node | None, parents: dict[int, nodes.Node]) -> set[str] | None:
    """The keys read where a message expression stands (``None``: the whole message)."""
    if isinstance(parent, nodes.Getattr) and parent.node is node:
        if parent.attr == "get":
            call = parents.get(id(parent))
            if isinstance(call, nodes.Call) and call.args and isinstance(call.args[0], nodes.Const):
                return {str(call.args[0].value)}
            return None
        return None if parent.attr in _WHOLE_MAPPING_METHODS else {parent.attr}
    if isinstance(parent, nodes.Getitem) and parent.node is node:
        return {parent.arg.value} if isinstance(parent.arg, nodes.Const) and isinstance(parent.arg.value, str) else None
    if isinstance(parent, nodes.Test) and parent.node is node and parent.name in ("defined", "undefined", "none"):
        return set()
    if isinstance(parent, (nodes.Assign, nodes.For, nodes.Keyword)) or (
        isinstance(parent, nodes.Call) and node is not parent.node
    ):
        return set()  # bound to a name or a macro parameter: its reads are followed through the alias
    if isinstance(parent, nodes.Operand) and parent.op in ("in", "notin"):
        compare = parents.get(id(parent))  # 'key' in message: whether it has the key
        if isinstance(compare, nodes.Compare) and isinstance(compare.expr, nodes.Const):
            return {str(compare.expr.value)}
        return None
    if isinstance(parent, (nodes.Not, nodes.And, nodes.Or, nodes.If, nodes.CondExpr, nodes.Compare, nodes.Operand)):
        return set()  # a truth test (a rebuilt message is never empty), or compared with its own list's items
    return None


def _list_read(node: nodes.Node, parents: dict[int, nodes.Node]) -> set[str] | None:
    """Where a message list is used: iterated, indexed, bound, measured, filtered by attribute
    (fine, with the keys named) or used whole (``None``)."""
    keys: set[str] = set()
    parent = parents.get(id(node))
    while True:
        if isinstance(parent, nodes.Getitem) and parent.node is node and isinstance(parent.arg, nodes.Slice):
            node, parent = parent, parents.get(id(parent))
            continue
        if isinstance(parent, nodes.Filter) and parent.node is node and parent.name in _ATTRIBUTE_FILTERS:
            names = [*parent.args[:1], *(keyword.value for keyword in parent.kwargs if keyword.key == "attribute")]
            named = {
                name.value.split(".")[0]
                for name in names
                if isinstance(name, nodes.Const) and isinstance(name.value, str)
            }
            if not named:
                return None
            keys |= named
            if parent.name == "map":
                return keys  # a list of values now, not of messages
            node, parent = parent, parents.get(id(parent))
            continue
        if isinstance(parent, nodes.Filter) and parent.node is node and parent.name in ("list", "reverse"):
            node, parent = parent, parents.get(id(parent))
            continue
        break
    if isinstance(parent, nodes.Filter) and parent.node is node:
        return keys if parent.name in _LIST_SAFE_FILTERS else None
    if isinstance(parent, nodes.Getitem) and parent.node is node:
        return keys  # one message: its reads are found where it stands
    if isinstance(
        parent,
        (
            nodes.For,
            nodes.Assign,
            nodes.Keyword,
            nodes.Test,
            nodes.Not,
            nodes.And,
            nodes.Or,
            nodes.If,
            nodes.CondExpr,
            nodes.Operand,
            nodes.Compare,
        ),
    ) or isinstance(parent, nodes.Call):
        return keys
    return None


# --- static facts rules and probes read ----------------------------------------------------


def uses_name(parsed: ParsedTemplate, name: str) -> nodes.Name | None:
    """The first place ``parsed`` reads the variable ``name``."""
    return next(
        (node for node in parsed.nodes if isinstance(node, nodes.Name) and node.name == name and node.ctx == "load"),
        None,
    )


def random_sources(parsed: ParsedTemplate) -> tuple[nodes.Filter | nodes.Name, ...]:
    """The places whose output differs from one render to the next: the ``random`` filter, ``lipsum``."""
    return tuple(
        node
        for node in parsed.nodes
        if (isinstance(node, nodes.Filter) and node.name == "random")
        or (isinstance(node, nodes.Name) and node.name == "lipsum" and node.ctx == "load")
    )


@lru_cache(maxsize=8)
def compared_roles(parsed: ParsedTemplate) -> frozenset[str]:
    """String constants the template compares a role against anywhere (a role by its name alone:
    the aliases a site's classification also follows belong to one path)."""
    return frozenset(_compared_strings(parsed.nodes, None))


def content_triggers(parsed: ParsedTemplate) -> tuple[str, ...]:
    """Strings the template looks for inside a value (``'weather' in content``,
    ``content.startswith('...')``): candidates for content-triggered text."""
    found: dict[str, None] = {}
    for node in parsed.nodes:
        if (
            isinstance(node, nodes.Compare)
            and isinstance(node.expr, nodes.Const)
            and any(operand.op in ("in", "notin") for operand in node.ops)
        ):
            found.update(dict.fromkeys(constant_strings(node.expr)))
        elif (
            isinstance(node, nodes.Call)
            and isinstance(node.node, nodes.Getattr)
            and node.node.attr in ("startswith", "endswith", "find", "count")
        ):
            for argument in node.args:
                found.update(dict.fromkeys(constant_strings(argument)))
    return tuple(text for text in found if len(text.strip()) >= 3)[:16]
