"""Portability: constructs other servers' Jinja engines reject or render differently.

One table, :data:`CONSTRUCTS`, says for each construct which engine does what with it; each row
carries a probe (a tiny template and its variables) that ``tests/test_portability.py`` renders
with jinja2 and with every engine the row names, proving the row against the real engines.  TK801
finds the constructs on the AST (and, for ``{% raw %}``, in the token stream) without rendering;
TK802 renders the template with every installed engine on a few witness conversations and reports
where an engine's output differs from transformers'.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from functools import lru_cache
from typing import Any, Literal

import jinja2.nodes as nodes

from ..cases import Case
from ..findings import Severity
from ..records import Record
from ..syntax import ParsedTemplate
from .context import LintContext
from .registry import Hit, rule

__all__ = ["CONSTRUCTS", "ENGINE_LABELS", "Construct", "Use", "divergences", "explain", "find_constructs"]

Effect = Literal["parse", "error", "differs"]
ENGINE_LABELS = {
    "minijinja": "minijinja (TGI)",
    "hf-jinja": "@huggingface/jinja (transformers.js)",
    "llama.cpp": "llama.cpp (llama-server)",
}
_EFFECTS = {"parse": "cannot parse the template", "error": "fails when it runs", "differs": "renders different text"}


Outcome = tuple[str, str]  # ("ok", text) or ("error", the engine's message)


class Construct:
    """One row: ``engines`` maps an engine to what it does with the construct; ``probe`` and
    ``variables`` demonstrate it (each engine of the row fails on the probe or renders other text
    than jinja2).  A construct visible in the source has ``matches`` (one AST node); one that
    depends on the values at run time (printing ``none``, looping over a string) has ``explains``,
    which recognises it from jinja2's and the engine's outcomes on the same input.  ``matches`` is
    only asked about nodes of the classes ``on`` names (the walk looks rows up by node class).
    Rows compare by identity."""

    __slots__ = ("key", "label", "engines", "matches", "probe", "variables", "explains", "on")

    def __init__(
        self,
        key: str,
        label: str,
        engines: Mapping[str, Effect],
        matches: Callable[[nodes.Node], bool] | None,
        probe: str,
        variables: Mapping[str, Any] | None = None,
        explains: Callable[[Outcome, Outcome], bool] | None = None,
        on: type[nodes.Node] | tuple[type[nodes.Node], ...] = (),
    ) -> None:
        if (matches is None) != (on == ()):
            raise ValueError(f"{key}: a row with `matches` names the node classes it matches (`on`), and only then")
        self.key, self.label, self.engines, self.matches, self.probe = key, label, engines, matches, probe
        self.variables = {} if variables is None else variables
        self.explains = explains
        self.on = on


def _call_of(node: nodes.Node, name: str) -> bool:
    return isinstance(node, nodes.Call) and isinstance(node.node, nodes.Name) and node.node.name == name


def _method_call(node: nodes.Node, method: str) -> bool:
    return isinstance(node, nodes.Call) and isinstance(node.node, nodes.Getattr) and node.node.attr == method


def _string(node: nodes.Node) -> bool:
    return isinstance(node, nodes.Const) and isinstance(node.value, str)


def _content(node: nodes.Node) -> bool:
    """``x.content`` / ``x['content']``: message content, which may be a list of parts."""
    return (isinstance(node, nodes.Getattr) and node.attr == "content") or (
        isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const) and node.arg.value == "content"
    )


def _filter(node: nodes.Node, name: str) -> bool:
    return isinstance(node, nodes.Filter) and node.name == name


def _prints(node: nodes.Node) -> bool:
    return isinstance(node, nodes.Output) and any(
        not isinstance(item, nodes.TemplateData) or item.data.strip() for item in node.nodes
    )


def _outputs_then_breaks(node: nodes.Node) -> bool:
    """A block whose statements print and then ``{% break %}`` (the iteration's output is lost)."""
    body = getattr(node, "body", None) if isinstance(node, (nodes.If, nodes.For)) else None
    if not body:
        return False
    first = next((index for index, child in enumerate(body) if _prints(child)), None)
    return first is not None and any(isinstance(child, nodes.Break) for child in body[first + 1 :])


def _loop_outputs_then_breaks(node: nodes.Node) -> bool:
    """A loop body that prints, then breaks from a nested block."""
    if not isinstance(node, nodes.For):
        return False
    first = next((index for index, child in enumerate(node.body) if _prints(child)), None)
    return first is not None and any(
        isinstance(child, nodes.If) and any(True for _ in child.find_all(nodes.Break))
        for child in node.body[first + 1 :]
    )


def _attribute_test(node: nodes.Node, tests: tuple[str, ...]) -> bool:
    return (
        isinstance(node, nodes.Filter)
        and node.name in ("selectattr", "rejectattr")
        and len(node.args) >= 2
        and isinstance(node.args[1], nodes.Const)
        and node.args[1].value in tests
    )


CONSTRUCTS: tuple[Construct, ...] = (
    Construct(
        "dict-call",
        "`dict(...)`",
        {"hf-jinja": "error"},
        lambda n: _call_of(n, "dict"),
        "{% set d = dict(m, content='new') %}{{ d.role }}:{{ d.content }}",
        {"m": {"role": "user", "content": "hi"}},
        on=nodes.Call,
    ),
    Construct(
        "loop-cycle",
        "`loop.cycle(...)`",
        {"hf-jinja": "error", "llama.cpp": "error"},
        lambda n: _method_call(n, "cycle") and isinstance(n.node.node, nodes.Name) and n.node.node.name == "loop",
        "{% for x in l %}{{ loop.cycle('a', 'b') }}{% endfor %}",
        {"l": [1, 2, 3]},
        on=nodes.Call,
    ),
    Construct(
        "percent-format",
        "`'...' % value` string formatting",
        {"minijinja": "error", "hf-jinja": "error", "llama.cpp": "error"},
        lambda n: isinstance(n, nodes.Mod) and _string(n.left),
        "{{ 'a%sb' % 'X' }}",
        on=nodes.Mod,
    ),
    Construct(
        "str-format",
        "`'...'.format(...)`",
        {"hf-jinja": "error"},
        lambda n: _method_call(n, "format") and _string(n.node.node),
        "{{ '{}-{}'.format(1, 'x') }}",
        on=nodes.Call,
    ),
    Construct(
        "raw-block", "`{% raw %}`", {"hf-jinja": "parse", "llama.cpp": "parse"}, None, "{% raw %}{{ x }}{% endraw %}"
    ),
    Construct(
        "crlf-line-endings",
        "CRLF line endings (jinja2 reads them as `\\n`)",
        {"minijinja": "differs", "hf-jinja": "differs"},
        None,
        "a\r\nb{% if true %}\r\nc{% endif %}",
    ),
    Construct(
        "recursive-loop",
        "a `recursive` for loop",
        {"hf-jinja": "parse", "llama.cpp": "parse"},
        lambda n: isinstance(n, nodes.For) and n.recursive,
        "{% for x in l recursive %}{{ x.n }}{% if x.c %}({{ loop(x.c) }}){% endif %}{% endfor %}",
        {"l": [{"n": 1, "c": [{"n": 2, "c": []}]}]},
        on=nodes.For,
    ),
    Construct(
        "floor-division",
        "`//` integer division",
        {"llama.cpp": "parse"},
        lambda n: isinstance(n, nodes.FloorDiv),
        "{{ 7 // 2 }}",
        on=nodes.FloorDiv,
    ),
    Construct(
        "generation-block",
        "`{% generation %}` (transformers' extension)",
        {"minijinja": "parse"},
        lambda n: isinstance(n, nodes.ExtensionAttribute) and n.name == "_render_body",
        "{% generation %}x{% endgeneration %}",
        on=nodes.ExtensionAttribute,
    ),
    Construct(
        "tojson-ensure-ascii",
        "`tojson(ensure_ascii=...)`",
        {"minijinja": "error"},
        lambda n: _filter(n, "tojson") and any(keyword.key == "ensure_ascii" for keyword in n.kwargs),
        "{{ s | tojson(ensure_ascii=False) }}",
        {"s": "héllo"},
        on=nodes.Filter,
    ),
    Construct(
        "tojson-separators",
        "`tojson(separators=...)`",
        {"minijinja": "error"},
        lambda n: _filter(n, "tojson") and any(keyword.key == "separators" for keyword in n.kwargs),
        "{{ d | tojson(separators=(',', ':')) }}",
        {"d": {"a": 1}},
        on=nodes.Filter,
    ),
    Construct(
        "safe-concatenation",
        "`+` with a `| safe` string (transformers HTML-escapes the other operand)",
        {"minijinja": "differs", "hf-jinja": "differs", "llama.cpp": "differs"},
        lambda n: isinstance(n, nodes.Add) and (_filter(n.left, "safe") or _filter(n.right, "safe")),
        "{{ 'a' | safe + s }}",
        {"s": '"q"'},
        on=nodes.Add,
    ),
    Construct(
        "escape-tojson",
        "escaping `tojson` output (`| tojson | e`)",
        {"minijinja": "differs"},
        lambda n: n.__class__ is nodes.Filter and n.name in ("e", "escape") and _filter(n.node, "tojson"),
        "{{ d | tojson | e }}",
        {"d": {"a": "b"}},
        on=nodes.Filter,
    ),
    Construct(
        "string-plus-content",
        "`'...' + message.content` (a list of parts: transformers raises)",
        {"hf-jinja": "differs", "llama.cpp": "differs"},
        lambda n: (
            isinstance(n, nodes.Add)
            and ((_string(n.left) and _content(n.right)) or (_string(n.right) and _content(n.left)))
        ),
        "{{ 'a' + m.content }}",
        {"m": {"role": "user", "content": [{"type": "text", "text": "b"}]}},
        on=nodes.Add,
    ),
    Construct(
        "map-filter-name",
        "`map('filter')` (mapping a filter by name)",
        {"hf-jinja": "error", "llama.cpp": "error"},
        lambda n: _filter(n, "map") and bool(n.args) and _string(n.args[0]),
        "{{ l | map('trim') | select | join(',') }}",
        {"l": [" a ", "", "b"]},
        on=nodes.Filter,
    ),
    Construct(
        "selectattr-undefined",
        "`selectattr(attr, 'undefined')`",
        {"hf-jinja": "differs", "llama.cpp": "error"},
        lambda n: _attribute_test(n, ("undefined",)),
        "{{ l | selectattr('tool_calls', 'undefined') | list | length }}",
        {"l": [{"role": "user"}, {"role": "assistant", "tool_calls": []}]},
        on=nodes.Filter,
    ),
    Construct(
        "selectattr-defined",
        "`selectattr(attr, 'defined')`",
        {"llama.cpp": "error"},
        lambda n: _attribute_test(n, ("defined",)),
        "{{ l | selectattr('tool_calls', 'defined') | list | length }}",
        {"l": [{"role": "user"}, {"role": "assistant", "tool_calls": []}]},
        on=nodes.Filter,
    ),
    Construct(
        "unique-filter",
        "the `unique` filter",
        {"llama.cpp": "error"},
        lambda n: _filter(n, "unique"),
        "{{ l | unique | list | length }}",
        {"l": [3, 1, 3]},
        on=nodes.Filter,
    ),
    Construct(
        "chained-comparison",
        "a chained comparison (`a < b < c`)",
        {"hf-jinja": "error", "llama.cpp": "error"},
        lambda n: isinstance(n, nodes.Compare) and len(n.ops) > 1,
        "{{ 'T' if 1 < 2 < 3 else 'F' }}",
        on=nodes.Compare,
    ),
    Construct(
        "in-test",
        "the `is in` test",
        {"hf-jinja": "parse"},
        lambda n: isinstance(n, nodes.Test) and n.name == "in",
        "{{ 'T' if 'a' is in ['a'] else 'F' }}",
        on=nodes.Test,
    ),
    Construct(
        "sequence-test",
        "the `is sequence` test (false for strings and dicts)",
        {"minijinja": "differs"},
        lambda n: isinstance(n, nodes.Test) and n.name == "sequence",
        "{{ 'T' if s is sequence else 'F' }}{{ 'T' if d is sequence else 'F' }}",
        {"s": "x", "d": {"role": "user"}},
        on=nodes.Test,
    ),
    Construct(
        "list-append",
        "`.append()` on a list (transformers' sandbox refuses it)",
        {"llama.cpp": "differs"},
        lambda n: _method_call(n, "append"),
        "{% set l = [] %}{% set _ = l.append(1) %}{{ l | length }}",
        on=nodes.Call,
    ),
    Construct(
        "none-is-iterable",
        "`none is iterable` (true in minijinja), then an operation on none",
        {"minijinja": "error"},
        None,
        "{{ x | length if x is iterable else 0 }}",
        {"x": None},
        explains=lambda expected, actual: _ok(expected) and _raised(actual, "of type none"),
    ),
    Construct(
        "method-named-attribute",
        "an attribute named like a dict method (`ns.items`, `.keys`, `.values`, `.get`)",
        {"llama.cpp": "error"},
        lambda n: isinstance(n, nodes.Getattr) and n.attr in ("items", "keys", "values", "get"),
        "{% set ns = namespace(items=[1]) %}{{ 'T' if ns.items else 'F' }}",
        on=nodes.Getattr,
    ),
    Construct(
        "output-then-break",
        "output followed by `{% break %}` in the same block",
        {"hf-jinja": "differs", "llama.cpp": "differs"},
        lambda n: _outputs_then_breaks(n),
        "{% for p in [1, 2] %}{% if p == 1 %}{{ p }}{% break %}{% endif %}{% endfor %}",
        on=(nodes.If, nodes.For),
    ),
    Construct(
        "loop-output-then-break",
        "a loop iteration that prints, then leaves with `{% break %}`",
        {"hf-jinja": "differs"},
        lambda n: _loop_outputs_then_breaks(n),
        "{% for p in [1, 2] %}{{ p }}{% if p == 1 %}{% break %}{% endif %}{% endfor %}",
        on=nodes.For,
    ),
    Construct(
        "string-repeat",
        "`'...' * n` string repetition",
        {"hf-jinja": "error"},
        lambda n: isinstance(n, nodes.Mul) and (_string(n.left) or _string(n.right)),
        "{{ '-' * 3 }}",
        on=nodes.Mul,
    ),
    # visible only at run time: recognised from the two outcomes
    Construct(
        "loop-over-none",
        "a `for` loop over `none` (transformers raises)",
        {"minijinja": "differs"},
        None,
        "{% for x in none %}x{% endfor %}done",
        explains=lambda expected, actual: _raised(expected, "'NoneType' object is not iterable") and _ok(actual),
    ),
    Construct(
        "print-none",
        "printing `none` (transformers prints `None`)",
        {"hf-jinja": "differs", "llama.cpp": "differs"},
        None,
        "[{{ none }}]",
        explains=lambda expected, actual: _diverges_at(expected, actual, "None"),
    ),
    Construct(
        "print-boolean",
        "printing a boolean (`True`/`False` in transformers)",
        {"hf-jinja": "differs"},
        None,
        "{{ true }}{{ 1 == 2 }}",
        explains=lambda expected, actual: _diverges_at(expected, actual, "True", "False"),
    ),
    Construct(
        "print-container",
        "printing a list or dict (Python's repr in transformers)",
        {"hf-jinja": "differs", "llama.cpp": "differs"},
        None,
        "{{ l }}",
        {"l": [{"type": "text", "text": "a"}]},
        explains=lambda expected, actual: _in_repr(expected, actual),
    ),
    Construct(
        "concatenate-non-string",
        "`+` between a string and a list, dict or none (transformers raises)",
        {"hf-jinja": "differs", "llama.cpp": "differs"},
        None,
        "{{ 'a' + l }}",
        {"l": [1]},
        explains=lambda expected, actual: (
            _ok(actual)
            and (
                _raised(expected, "can only concatenate str") or _raised(expected, "unsupported operand type(s) for +")
            )
        ),
    ),
    Construct(
        "undefined-attribute",
        "reading an attribute of an undefined value (transformers raises)",
        {"hf-jinja": "differs", "llama.cpp": "differs"},
        None,
        "{{ zz.a }}",
        explains=lambda expected, actual: _raised(expected, "UndefinedError") and _ok(actual),
    ),
    Construct(
        "loop-over-string",
        "a `for` loop over a string",
        {"hf-jinja": "error", "llama.cpp": "error"},
        None,
        "{% for c in s %}{{ c }}{% endfor %}",
        {"s": "ab"},
        explains=lambda expected, actual: _ok(expected) and _raised(actual, "in for loop: got String"),
    ),
    Construct(
        "list-filter-on-string",
        "a list filter (`selectattr`, `map`, ...) on a string",
        {"hf-jinja": "error", "llama.cpp": "error"},
        None,
        "{{ s | selectattr('type', 'equalto', 'image') | list | length }}",
        {"s": "abc"},
        explains=lambda expected, actual: (
            _ok(expected) and (_raised(actual, "for type String") or _raised(actual, "Unknown StringValue filter"))
        ),
    ),
    Construct(
        "string-filter-on-list",
        "a string filter (`trim`, ...) on a list",
        {"hf-jinja": "error"},
        None,
        "{{ l | trim }}",
        {"l": [{"type": "text", "text": "a"}]},
        explains=lambda expected, actual: _ok(expected) and _raised(actual, "Unknown ArrayValue filter"),
    ),
    Construct(
        "string-filter-on-dict",
        "the `string` filter on a dict",
        {"hf-jinja": "error"},
        None,
        "{{ d | string }}",
        {"d": {"a": 1}},
        explains=lambda expected, actual: _ok(expected) and _raised(actual, "Unknown ObjectValue filter"),
    ),
    Construct(
        "filter-on-undefined",
        "a filter (`length`, `trim`, ...) on an undefined value",
        {"hf-jinja": "error"},
        None,
        "{{ zz | length }}",
        explains=lambda expected, actual: _ok(expected) and _raised(actual, "to type: UndefinedValue"),
    ),
    Construct(
        "filter-on-none",
        "a string filter (`trim`, ...) on `none`",
        {"hf-jinja": "error"},
        None,
        "[{{ none | trim }}]",
        explains=lambda expected, actual: _ok(expected) and _raised(actual, "to type: NullValue"),
    ),
    Construct(
        "integer-dict-key",
        "a dict literal with integer keys",
        {"hf-jinja": "error"},
        None,
        "{% set d = {1: 'a'} %}{{ d[1] }}",
        explains=lambda expected, actual: _ok(expected) and _raised(actual, "Object keys must be strings"),
    ),
    Construct(
        "in-undefined",
        "`in` with an undefined value on the left",
        {"hf-jinja": "error", "llama.cpp": "error"},
        None,
        "{{ 'T' if zz in ['a'] else 'F' }}",
        explains=lambda expected, actual: _ok(expected) and _raised(actual, "on undefined values"),
    ),
    Construct(
        "list-in-list",
        "`in` with a list on the left",
        {"llama.cpp": "error"},
        None,
        "{{ 'T' if [1] in [[1]] else 'F' }}",
        explains=lambda expected, actual: _ok(expected) and _raised(actual, 'Unknown operator "in" between Array'),
    ),
    Construct(
        "list-as-key",
        "a list used as a dict key",
        {"hf-jinja": "error", "llama.cpp": "error"},
        None,
        "{{ 'T' if d[k] is defined else 'F' }}",
        {"d": {"a": 1}, "k": ["a"]},
        explains=lambda expected, actual: (
            _ok(expected)
            and (_raised(actual, "unhashable type") or _raised(actual, "Cannot access property with non-string"))
        ),
    ),
    Construct(
        "tojson-not-json",
        "`tojson` of a value JSON cannot hold (transformers raises)",
        {"minijinja": "differs", "hf-jinja": "differs", "llama.cpp": "differs"},
        None,
        "{{ [m.x] | tojson }}",
        {"m": {}},
        explains=lambda expected, actual: _raised(expected, "is not JSON serializable") and _ok(actual),
    ),
)


_ROW = {construct.key: construct for construct in CONSTRUCTS}


def _ok(outcome: Outcome) -> bool:
    return outcome[0] == "ok"


def _raised(outcome: Outcome, fragment: str) -> bool:
    return outcome[0] == "error" and fragment in outcome[1]


def _difference(expected: str, actual: str) -> int:
    """The first position where the two texts differ."""
    return next(
        (index for index, (a, b) in enumerate(zip(expected, actual)) if a != b), min(len(expected), len(actual))
    )


def _diverges_at(expected: Outcome, actual: Outcome, *words: str) -> bool:
    """Both render, and jinja2's text has one of ``words`` where the engine's text departs."""
    at = _difference(expected[1], actual[1]) if _ok(expected) and _ok(actual) else -1
    return at >= 0 and expected[1][at:].lstrip().startswith(words)


def _in_repr(expected: Outcome, actual: Outcome) -> bool:
    """Both render, and the texts part inside what looks like a Python list/dict repr in jinja2's."""
    if not (_ok(expected) and _ok(actual)):
        return False
    text, at = expected[1], _difference(expected[1], actual[1])
    start = max(text.rfind("[", 0, at + 1), text.rfind("{", 0, at + 1))
    return (
        start >= 0
        and text[start : at + 2].replace(" ", "")[:3] in ("[{'", "['", "{'", "[]", "[{", "{}")
        or text[start : start + 2] in ("[{", "['", "{'", "[]", "{}")
    )


class Use(Record):
    """One occurrence of a construct in a template."""

    construct: Construct
    line: int


def find_constructs(parsed: ParsedTemplate, source: str) -> tuple[Use, ...]:
    """Every occurrence of a :data:`CONSTRUCTS` row, found without rendering.

    Where the template has already tested the operand (``x is string``), rows whose difference
    needs the other type are left out: ``'...' + content`` inside ``if content is string``,
    ``x is sequence`` after ``if x is string`` failed.
    """
    namespaces, callees = _namespaces(parsed.ast), _callees(parsed.ast)
    uses = [
        Use(construct, node.lineno)
        for node, known in _walk(parsed.ast, frozenset())
        for construct in _rows_on(type(node))
        if construct.matches(node) and not _ruled_out(construct, node, known, namespaces, callees)
    ]
    uses += [Use(_ROW["raw-block"], line) for line in _raw_block_lines(source)]
    if "\r\n" in source:
        uses.append(Use(_ROW["crlf-line-endings"], source.count("\n", 0, source.index("\r\n")) + 1))
    return tuple(sorted(set(uses), key=lambda use: (use.line, use.construct.key)))


@lru_cache(maxsize=None)
def _rows_on(node_class: type[nodes.Node]) -> tuple[Construct, ...]:
    """The rows whose ``matches`` may hold for a node of ``node_class``."""
    return tuple(construct for construct in CONSTRUCTS if construct.on and issubclass(node_class, construct.on))


Known = frozenset  # of (expression, is a string) facts that hold where a node runs


def _expression(node: nodes.Node) -> str | None:
    """``message.content`` for ``message.content`` and ``message['content']`` alike (else ``None``)."""
    if isinstance(node, nodes.Name):
        return node.name
    if isinstance(node, nodes.Getattr):
        base = _expression(node.node)
        return None if base is None else f"{base}.{node.attr}"
    if isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
        base = _expression(node.node)
        return None if base is None else f"{base}.{node.arg.value}"
    return None


def _string_test(test: nodes.Node) -> tuple[str, bool] | None:
    """``(x, True)`` for ``x is string``, ``(x, False)`` for ``x is not string``."""
    negated = isinstance(test, nodes.Not)
    inner = test.node if negated else test
    if isinstance(inner, nodes.Test) and inner.name == "string":
        expression = _expression(inner.node)
        if expression is not None:
            return expression, not negated
    return None


def _walk(node: nodes.Node, known: Known) -> Iterator[tuple[nodes.Node, Known]]:
    """Every node with the string-type facts its enclosing ``if``/``elif``/ternary establish."""
    yield node, known
    if isinstance(node, (nodes.If, nodes.CondExpr)):
        fact = _string_test(node.test)
        yield from _walk(node.test, known)
        then = known | {fact} if fact else known
        otherwise = known | {(fact[0], not fact[1])} if fact else known
        if isinstance(node, nodes.CondExpr):
            yield from _walk(node.expr1, then)
            if node.expr2 is not None:
                yield from _walk(node.expr2, otherwise)
            return
        for child in node.body:
            yield from _walk(child, then)
        for branch in node.elif_:  # each elif runs only when every earlier test failed
            yield from _walk(branch, otherwise)
            branch_fact = _string_test(branch.test)
            if branch_fact:
                otherwise = otherwise | {(branch_fact[0], not branch_fact[1])}
        for child in node.else_:
            yield from _walk(child, otherwise)
        return
    if isinstance(node, nodes.And):  # `x is sequence and x is not string`: the string case never counts
        facts = {fact for fact in (_string_test(node.left), _string_test(node.right)) if fact}
        yield from _walk(node.left, known | facts)
        yield from _walk(node.right, known | facts)
        return
    for child in node.iter_child_nodes():
        yield from _walk(child, known)


def _namespaces(ast: nodes.Template) -> frozenset[str]:
    """Names bound to ``namespace(...)`` (their ``.content`` is the template's own string)."""
    return frozenset(
        node.target.name
        for node in ast.find_all(nodes.Assign)
        if isinstance(node.target, nodes.Name) and _call_of(node.node, "namespace")
    )


def _callees(ast: nodes.Template) -> frozenset[int]:
    """Attribute reads that are called (``x.items()``): methods, not attributes."""
    return frozenset(id(node.node) for node in ast.find_all(nodes.Call) if isinstance(node.node, nodes.Getattr))


def _ruled_out(
    construct: Construct,
    node: nodes.Node,
    known: Known,
    namespaces: frozenset[str],
    callees: frozenset[int] = frozenset(),
) -> bool:
    if construct.key == "method-named-attribute":
        return id(node) in callees
    if construct.key == "string-plus-content":
        operand = node.right if _content(node.right) else node.left
        return (_expression(operand), True) in known or _expression(operand.node) in namespaces
    if construct.key == "sequence-test":
        return (_expression(node.node), False) in known
    return False


def _raw_block_lines(source: str) -> list[int]:
    """Lines of ``{% raw %}`` blocks (the parser turns them into plain text, the lexer keeps them)."""
    if "raw" not in source:  # lexing costs as much as parsing; a raw tag spells its name
        return []
    from ..environment import make_environment

    return [line for line, kind, _ in make_environment().lex(source) if kind == "raw_begin"]


def explain(engine: str, uses: tuple[Use, ...], expected: Outcome, actual: Outcome) -> Construct | None:
    """The row that accounts for ``engine``'s ``actual`` outcome differing from jinja2's ``expected``
    on one input: a construct of the template (``uses``) the engine treats differently, else a
    run-time row that recognises the two outcomes; ``None`` when no row does."""
    for use in uses:
        if engine in use.construct.engines:
            return use.construct
    return next(
        (
            construct
            for construct in CONSTRUCTS
            if engine in construct.engines and construct.explains is not None and construct.explains(expected, actual)
        ),
        None,
    )


def _effects(construct: Construct) -> str:
    return "; ".join(f"{ENGINE_LABELS[engine]} {_EFFECTS[effect]}" for engine, effect in construct.engines.items())


@rule("TK801", "engine-unsupported-construct", Severity.INFO)
def engine_unsupported_construct(context: LintContext) -> Iterator[Hit]:
    """## What it does
    Finds constructs that another server's Jinja engine rejects or renders differently from
    transformers (jinja2), without rendering: `dict()` and `'...'.format()` in @huggingface/jinja;
    `loop.cycle`, `%` formatting, `{% raw %}`, `recursive` loops and `//` in llama.cpp's engine;
    `{% generation %}` and `tojson(ensure_ascii=...)` in minijinja; `'...' + message.content`, which
    transformers refuses for list-of-parts content and the JavaScript and C++ engines accept; and
    the other rows of the portability table (`templatekit.rules.portability.CONSTRUCTS`). The
    message names each engine and what it does.

    ## Why is this bad?
    The same model served by TGI (minijinja), llama-server (llama.cpp's engine) or a JavaScript
    runtime (transformers.js, Hugging Face chat UIs) fails every request, or feeds the model a
    prompt other than the one it was trained on.

    ## Example
    ```jinja
    {% for message in messages %}{{ loop.cycle('<user>', '<bot>') }}{{ message.content }}{% endfor %}
    ```

    ## Use instead
    Constructs every engine shares:
    ```jinja
    {% for message in messages %}{{ '<user>' if loop.index0 % 2 == 0 else '<bot>' }}{{ message.content }}{% endfor %}
    ```

    ## Fix safety
    No automatic fix. The rows are proven against the real engines (minijinja, @huggingface/jinja,
    llama.cpp's common/jinja) by the test suite; a construct reached only with inputs no server
    sends is harmless.
    """
    if context.parsed is None:
        return
    for use in find_constructs(context.parsed, context.source):
        yield Hit(f"{use.construct.label}: {_effects(use.construct)}", line=use.line)


# conversations the dynamic rule renders with every engine (what servers send most)
_WITNESSES: tuple[Case, ...] = (
    Case(({"role": "user", "content": "Hi"},), add_generation_prompt=True),
    Case(
        (
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello"},
            {"role": "user", "content": "Bye"},
        ),
        add_generation_prompt=True,
    ),
    Case(({"role": "user", "content": [{"type": "text", "text": "Hi"}]},), add_generation_prompt=True),
    Case(
        ({"role": "user", "content": "Hi"}, {"role": "user", "content": "Still there?"}), add_generation_prompt=True
    ),  # what relaxed templates accept and strict ones refuse
    Case(
        (
            {"role": "user", "content": "Weather?"},
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [
                    {
                        "id": "call00001",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": {"city": "Paris"}},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call00001", "content": "21"},
        ),
        tools=(
            {
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "description": "Weather",
                    "parameters": {"type": "object", "properties": {}},
                },
            },
        ),
        add_generation_prompt=True,
    ),
)


class Divergence(Record):
    """``engine`` renders ``witness`` as ``output`` (or fails with ``error``) where jinja2 gives ``expected``."""

    engine: str
    witness: Case
    expected: str
    output: str | None
    error: str | None


def divergences(template: str, special_tokens: Mapping[str, str], engines: tuple[str, ...]) -> list[Divergence]:
    """The first witness conversation each engine renders differently from jinja2 (transformers),
    every engine given the same variables (``tools`` and ``add_generation_prompt`` always defined)."""
    from ..engines import EngineError, render_with

    found = []
    for engine in engines:
        for witness in _WITNESSES:
            variables = {**special_tokens, "tools": None if witness.tools is None else list(witness.tools)}
            try:
                expected = render_with(
                    "jinja2",
                    template,
                    witness.messages,
                    tools=None,
                    add_generation_prompt=witness.add_generation_prompt,
                    variables=variables,
                )
            except EngineError:
                continue
            try:
                output, error = (
                    render_with(
                        engine,
                        template,
                        witness.messages,
                        tools=None,
                        add_generation_prompt=witness.add_generation_prompt,
                        variables=variables,
                    ),
                    None,
                )
            except EngineError as failure:
                output, error = (
                    None,
                    failure.message.strip().splitlines()[-1] if failure.message.strip() else failure.kind,
                )
            if output != expected:
                found.append(Divergence(engine, witness, expected, output, error))
                break
    return found


@rule("TK802", "engine-divergence", Severity.INFO, renders=True, opt_in=True)
def engine_divergence(context: LintContext) -> Iterator[Hit]:
    """## What it does
    Renders the template with every Jinja engine installed here (`templatekit engines list`:
    minijinja, @huggingface/jinja, llama.cpp's engine) and with transformers' jinja2 on a few
    witness conversations (`[user]`, a system-led multi-turn chat, list-of-parts content, two user
    turns in a row, a tool call with its result) and reports the first conversation each engine renders differently or
    fails on. Engines that are not installed are not checked. Two user turns in a row are among the
    witnesses: what a relaxed template accepts and its strict original refuses.

    ## Why is this bad?
    On that server the model sees another prompt than under transformers (or the request fails),
    whatever construct causes it; TK801 names the constructs it knows statically.

    ## Example
    ```jinja
    {{ messages[0].content if messages[0].role == 'system' else none }}
    ```
    prints `None` under transformers and an empty string in @huggingface/jinja and llama.cpp.

    ## Use instead
    Keep to what every engine renders alike: print strings only (`{{ x if x is not none else '' }}`),
    format lists and dicts with `tojson`, and test with `templatekit render --server NAME`.

    ## Fix safety
    No automatic fix. The witness replays with `templatekit render SOURCE --messages FILE --server NAME`.
    """
    if context.harness is None:
        return
    from ..engines import available_engines

    engines = tuple(engine for engine in available_engines() if engine != "jinja2")
    tokens = dict(context.template.special_tokens or {}) or {"bos_token": "<s>", "eos_token": "</s>"}
    for divergence in divergences(context.source, tokens, engines):
        what = (
            f"fails ({divergence.error})"
            if divergence.output is None
            else f"renders it differently (first difference at character "
            f"{_first_difference(divergence.expected, divergence.output)})"
        )
        yield Hit(
            f"{ENGINE_LABELS[divergence.engine]} {what} on {divergence.witness.describe()}", witness=divergence.witness
        )


def _first_difference(left: str, right: str) -> int:
    return next((index for index, (a, b) in enumerate(zip(left, right)) if a != b), min(len(left), len(right)))
