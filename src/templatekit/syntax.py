"""Parse templates with the server's environment, and locate nodes at exact source offsets.

Jinja's AST carries line numbers only and its lexer rewrites newlines and stripped
whitespace, so we scan the original text ourselves: :func:`scan_tags` finds every
``{{ }}``, ``{% %}`` and ``{# #}`` tag with its offsets, and :class:`ParsedTemplate` pairs
the AST's ``If`` nodes and ``raise_exception`` calls with the tags they came from.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import cached_property, lru_cache
from types import CodeType
from typing import Literal

import jinja2
import jinja2.nodes as nodes
from jinja2.compiler import Frame
from jinja2.visitor import NodeVisitor

from .environment import DEFAULT_PROFILE, BudgetedCodeGenerator, Profile, compiling, make_environment
from .errors import InputLimitError, TemplateSyntaxError
from .records import Record

__all__ = [
    "Span",
    "Tag",
    "ParsedTemplate",
    "NumberedCode",
    "parse",
    "numbered_code",
    "scan_tags",
    "iter_nodes",
    "is_raise_call",
    "line_column",
    "expression_text",
    "split_operands",
]

TagKind = Literal["variable", "block", "comment"]
_OPENERS = {"{{": "variable", "{%": "block", "{#": "comment"}
_CLOSERS = {"variable": "}}", "block": "%}", "comment": "#}"}
# Patterns held as strings are compiled on first use (re's cache): most templates never need them.
_ENDRAW = r"\{%[-+]?\s*endraw\s*[-+]?%\}"
_NEWLINE = re.compile(r"\r\n|\r|\n")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PAIRS = {"(": ")", "[": "]", "{": "}"}
# the characters inside a tag that _scan_one acts on (quotes, brackets, the closers' first signs)
_TAG_CHAR = re.compile(r"""['"()\[\]{}%+-]""")


class Span(Record):
    """A half-open range ``[start, end)`` of character offsets in the original source."""

    start: int
    end: int

    def text(self, source: str) -> str:
        return source[self.start : self.end]


class Tag(Record):
    """One tag of the original source.

    ``span`` covers the delimiters; ``inner`` the text between them without the
    whitespace-control signs (``-``/``+``); ``keyword`` is the first word of a block tag.
    """

    kind: TagKind
    span: Span
    inner: Span
    keyword: str = ""
    strip_left: str = ""
    strip_right: str = ""


def scan_tags(source: str) -> list[Tag]:
    """All tags of ``source`` in order; ``{% raw %}`` content and data are skipped."""
    tags: list[Tag] = []
    pos = 0
    length = len(source)
    while pos < length:
        start = source.find("{", pos)
        if start < 0 or start + 1 >= length:
            break
        opener = source[start : start + 2]
        kind = _OPENERS.get(opener)
        if kind is None:
            pos = start + 1
            continue
        tag = _scan_one(source, start, kind)
        tags.append(tag)
        pos = tag.span.end
        if tag.kind == "block" and tag.keyword == "raw":
            end = re.compile(_ENDRAW).search(source, pos)
            if end is None:
                break
            pos = end.start()
    return tags


def _scan_one(source: str, start: int, kind: TagKind) -> Tag:
    closer = _CLOSERS[kind]
    body = start + 2
    strip_left = source[body] if body < len(source) and source[body] in "-+" else ""
    if kind == "comment":
        end = source.find(closer, body)
        end = len(source) if end < 0 else end
        strip_right = "-" if end > body and source[end - 1] == "-" else ""
        inner = Span(body + len(strip_left), end - len(strip_right))
        return Tag(kind, Span(start, min(end + 2, len(source))), inner, "", strip_left, strip_right)
    pos = body + len(strip_left)
    depth: list[str] = []
    while (found := _TAG_CHAR.search(source, pos)) is not None:
        pos = found.start()
        char = source[pos]
        if char in "'\"":
            pos = _skip_string(source, pos)
            continue
        if char in _PAIRS:
            depth.append(_PAIRS[char])
        elif depth and char == depth[-1]:
            depth.pop()
        elif not depth:
            for sign in ("-", "+", ""):
                if source.startswith(sign + closer, pos):
                    inner = Span(body + len(strip_left), pos)
                    keyword = ""
                    if kind == "block":
                        word = _IDENT.match(source, _skip_space(source, inner.start))
                        keyword = word.group() if word else ""
                    return Tag(kind, Span(start, pos + len(sign) + 2), inner, keyword, strip_left, sign)
        pos += 1
    inner = Span(body + len(strip_left), len(source))
    return Tag(kind, Span(start, len(source)), inner, "", strip_left, "")


def _skip_string(source: str, pos: int) -> int:
    quote = source[pos]
    pos += 1
    while pos < len(source):
        if source[pos] == "\\":
            pos += 2
            continue
        if source[pos] == quote:
            return pos + 1
        pos += 1
    return pos


def _skip_space(source: str, pos: int) -> int:
    while pos < len(source) and source[pos].isspace():
        pos += 1
    return pos


def line_column(source: str, offset: int) -> tuple[int, int]:
    """1-based line and column of ``offset``, counting newlines as Jinja does (\\r\\n, \\r, \\n)."""
    line = 1
    line_start = 0
    for match in _NEWLINE.finditer(source, 0, offset):
        line += 1
        line_start = match.end()
    return line, offset - line_start + 1


def iter_nodes(node: nodes.Node) -> Iterator[nodes.Node]:
    """``node`` and all its descendants, depth first, in document order for statements.

    The order of ``Node.iter_child_nodes``, without its per-field generators (walks are hot).
    """
    Node = nodes.Node
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        children = []
        for name in current.fields:
            value = getattr(current, name, None)
            if isinstance(value, Node):
                children.append(value)
            elif isinstance(value, list):
                children.extend(item for item in value if isinstance(item, Node))
        stack.extend(reversed(children))


def is_raise_call(node: nodes.Node) -> bool:
    """Whether ``node`` is a call of the ``raise_exception`` global."""
    return isinstance(node, nodes.Call) and isinstance(node.node, nodes.Name) and node.node.name == "raise_exception"


class _ParsedFields(Record):
    source: str
    ast: nodes.Template
    tags: tuple[Tag, ...]
    name: str | None = None


class ParsedTemplate(_ParsedFields):
    """A template's source, its AST (parsed as servers parse it) and its tags with offsets.

    A named tuple of those fields (cheaper to define than a dataclass at import) whose derived
    views below are computed once, on first use."""

    @cached_property
    def nodes(self) -> tuple[nodes.Node, ...]:
        """Every node of the AST, as :func:`iter_nodes` walks it (walked once, shared)."""
        return tuple(iter_nodes(self.ast))

    @cached_property
    def parents(self) -> dict[int, nodes.Node]:
        """``id(node) -> its parent`` for every node but the root."""
        return {id(child): node for node in self.nodes for child in node.iter_child_nodes()}

    @cached_property
    def line_starts(self) -> tuple[int, ...]:
        return (0, *(match.end() for match in _NEWLINE.finditer(self.source)))

    def position(self, offset: int) -> tuple[int, int]:
        """1-based (line, column) of ``offset``."""
        import bisect

        index = bisect.bisect_right(self.line_starts, offset) - 1
        return index + 1, offset - self.line_starts[index] + 1

    @cached_property
    def if_tags(self) -> dict[int, Tag]:
        """``id(If node) -> the {% if %} / {% elif %} tag it was parsed from``.

        Nodes whose tag cannot be matched with certainty (line numbers disagree) are left out.
        """
        ifs = [node for node in self.nodes if isinstance(node, nodes.If)]
        tags = [tag for tag in self.tags if tag.kind == "block" and tag.keyword in ("if", "elif")]
        if len(ifs) != len(tags):
            return {}
        matched = {}
        for node, tag in zip(ifs, tags):
            if self.position(tag.span.start)[0] > node.lineno or node.lineno > self.position(tag.span.end)[0]:
                return {}
            matched[id(node)] = tag
        return matched

    def if_test_span(self, node: nodes.If) -> Span | None:
        """The exact source span of an ``If`` node's test expression, or ``None`` if unknown."""
        tag = self.if_tags.get(id(node))
        if tag is None:
            return None
        keyword_start = _skip_space(self.source, tag.inner.start)
        start = _skip_space(self.source, keyword_start + len(tag.keyword))
        end = tag.inner.end
        while end > start and self.source[end - 1].isspace():
            end -= 1
        return Span(start, end)

    def if_statement_span(self, node: nodes.If) -> Span | None:
        """From ``{% if %}`` through the matching ``{% endif %}``, or ``None`` if not located."""
        tag = self.if_tags.get(id(node))
        if tag is None or tag.keyword != "if":
            return None
        depth = 0
        for other in self.tags[self.tags.index(tag) :]:
            if other.kind != "block":
                continue
            if other.keyword == "if":
                depth += 1
            elif other.keyword == "endif":
                depth -= 1
                if depth == 0:
                    return Span(tag.span.start, other.span.end)
        return None

    def tag_at(self, offset: int) -> Tag | None:
        """The tag that starts at ``offset``."""
        for tag in self.tags:
            if tag.span.start == offset:
                return tag
        return None

    @cached_property
    def raise_calls(self) -> dict[int, Span]:
        """``id(Call node) -> span of 'raise_exception(...)'`` for every raise call located."""
        calls = [node for node in self.nodes if is_raise_call(node)]
        spans = [span for tag in self.tags if tag.kind != "comment" for span in self._calls_in(tag)]
        if len(calls) != len(spans):
            return {}
        matched = {}
        for node, span in zip(calls, spans):
            if self.position(span.start)[0] != node.lineno and not self._same_line_range(span, node.lineno):
                return {}
            matched[id(node)] = span
        return matched

    def _same_line_range(self, span: Span, lineno: int) -> bool:
        return self.position(span.start)[0] <= lineno <= self.position(span.end)[0]

    def _calls_in(self, tag: Tag) -> Iterator[Span]:
        pos = tag.inner.start
        source = self.source
        while pos < tag.inner.end:
            char = source[pos]
            if char in "'\"":
                pos = _skip_string(source, pos)
                continue
            word = _IDENT.match(source, pos)
            if word is None:
                pos += 1
                continue
            after = _skip_space(source, word.end())
            if (
                word.group() == "raise_exception"
                and source.startswith("(", after)
                and (pos == 0 or source[pos - 1] != ".")
            ):
                yield Span(pos, _matching_paren(source, after) + 1)
            pos = word.end()


def split_operands(source: str, span: Span, keyword: str) -> list[Span]:
    """The operands of ``keyword`` (``or``, ``and``) at the top level of the expression at ``span``.

    Outer parentheses around the whole expression are looked through; strings and brackets
    are skipped; each operand's span is trimmed of whitespace.  One span when there is no such
    operator at the top level.
    """
    start, end = _trim(source, span.start, span.end)
    while start < end and source[start] == "(" and _matching_paren(source, start) == end - 1:
        start, end = _trim(source, start + 1, end - 1)
    operands: list[Span] = []
    piece = start
    for pos, depth in _code_positions(source, start, end):
        if (
            depth == 0
            and pos >= piece
            and source.startswith(keyword, pos)
            and (pos == start or not _is_word(source[pos - 1]))
            and (pos + len(keyword) >= end or not _is_word(source[pos + len(keyword)]))
        ):
            operands.append(Span(*_trim(source, piece, pos)))
            piece = pos + len(keyword)
    return [*operands, Span(*_trim(source, piece, end))]


def _is_word(char: str) -> bool:
    return char.isalnum() or char in "_."


def _trim(source: str, start: int, end: int) -> tuple[int, int]:
    start = _skip_space(source, start)
    while end > start and source[end - 1].isspace():
        end -= 1
    return start, end


def _matching_paren(source: str, open_at: int) -> int:
    for pos, depth in _code_positions(source, open_at, len(source)):
        if depth == 0:
            return pos
    return len(source) - 1


def _code_positions(source: str, start: int, end: int) -> Iterator[tuple[int, int]]:
    """Each position in ``[start, end)`` outside string literals, with the bracket depth after it."""
    depth = 0
    pos = start
    while pos < end:
        char = source[pos]
        if char in "'\"":
            pos = _skip_string(source, pos)
            continue
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        yield pos, depth
        pos += 1


def parse(source: str, name: str | None = None, profile: Profile = DEFAULT_PROFILE) -> ParsedTemplate:
    """Parse ``source`` with the server's environment (extensions included).

    Raises :class:`templatekit.errors.TemplateSyntaxError` with the line and Jinja's message.
    """
    try:
        ast = make_environment(profile).parse(source)
    except jinja2.TemplateSyntaxError as error:
        raise TemplateSyntaxError(error.message or str(error), line=error.lineno, name=name) from None
    except (RecursionError, MemoryError):
        raise too_deep(name) from None
    return ParsedTemplate(source=source, ast=ast, tags=tuple(scan_tags(source)), name=name)


def too_deep(name: str | None) -> InputLimitError:
    """The error for a template nested beyond what jinja2 (and so any server) can parse or compile."""
    return InputLimitError(
        f"{name or '<template>'}: the template is nested too deeply for jinja2 to parse or "
        "compile (Python's recursion limit; servers fail on it too)"
    )


class NumberedCode(Record):
    """A parsed template compiled once, with its ``raise_exception`` calls numbered."""

    code: CodeType
    """Python code in which the n-th ``raise_exception(...)`` call (document order) passes ``n``
    as an extra first argument; build a template with ``Template.from_code``."""
    undeclared: frozenset[str]
    """The variables the template reads from its caller (``jinja2.meta.find_undeclared_variables``)."""


class _TrackingGenerator(BudgetedCodeGenerator):
    """The environment's code generator (loops and ``~`` metered by the render budget), also
    recording the undeclared variables as ``jinja2.meta`` does.

    It leaves out jinja2's optimizer, which folds constant expressions at compile time into the
    values the code would compute when it runs (the same output, and the same errors, which the
    optimizer leaves to run time): a third of the code-generation pass a lint run pays."""

    def __init__(self, environment: jinja2.Environment) -> None:
        super().__init__(environment, None, "<template>", optimized=False)
        self.undeclared: set[str] = set()

    def enter_frame(self, frame: Frame) -> None:
        super().enter_frame(frame)
        self.undeclared.update(
            param
            for action, param in frame.symbols.loads.values()
            if action == "resolve" and param not in self.environment.globals
        )


def numbered_code(parsed: ParsedTemplate, profile: Profile = DEFAULT_PROFILE) -> NumberedCode:
    """``parsed`` compiled for probing, and its undeclared variables, from one code-generation pass
    (cached per template and profile).

    The numbers are inserted into the shared AST for the pass and removed again afterwards.
    """
    return _numbered_code(parsed, profile)  # one cache key whether ``profile`` is given or defaulted


@lru_cache(maxsize=16)
def _numbered_code(parsed: ParsedTemplate, profile: Profile) -> NumberedCode:
    calls = [node for node in parsed.nodes if is_raise_call(node)]
    for number, call in enumerate(calls):
        call.args.insert(0, nodes.Const(number, lineno=call.lineno))
    generator = _TrackingGenerator(make_environment(profile))
    try:
        with compiling():  # constant folding runs filters at compile time
            generator.visit(parsed.ast)
    except (RecursionError, MemoryError):
        raise too_deep(parsed.name) from None
    finally:
        for call in calls:
            del call.args[0]
    try:
        code = compile(generator.stream.getvalue(), "<template>", "exec")
    except (RecursionError, MemoryError):
        raise too_deep(parsed.name) from None
    return NumberedCode(code, frozenset(generator.undeclared))


_BINARY = {
    "Add": "+",
    "Sub": "-",
    "Mul": "*",
    "Div": "/",
    "FloorDiv": "//",
    "Mod": "%",
    "Pow": "**",
    "And": "and",
    "Or": "or",
    "Concat": "~",
}
_UNARY = {"Not": "not ", "Neg": "-", "Pos": "+"}
_COMPARE = {"eq": "==", "ne": "!=", "gt": ">", "gteq": ">=", "lt": "<", "lteq": "<=", "in": "in", "notin": "not in"}


def expression_text(node: nodes.Node) -> str:
    """Jinja source for an expression node (normalised spacing; used where no span is known)."""
    text = _PRINTER.visit(node)
    return text[1:-1] if text.startswith("(") and text.endswith(")") and _balanced(text[1:-1]) else text


def _balanced(text: str) -> bool:
    depth = 0
    for char in text:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth < 0:
            return False
    return depth == 0


class _ExpressionPrinter(NodeVisitor):
    """Jinja source for an expression, one ``visit_<Node>`` per node type (``<Type>`` for the others)."""

    def generic_visit(self, node: nodes.Node, *args: object, **kwargs: object) -> str:
        return f"<{type(node).__name__}>"

    def visit_Name(self, node: nodes.Name) -> str:
        return node.name

    def visit_NSRef(self, node: nodes.NSRef) -> str:
        return f"{node.name}.{node.attr}"

    def visit_Const(self, node: nodes.Const) -> str:
        if node.value is None:
            return "none"
        if isinstance(node.value, bool):
            return "true" if node.value else "false"
        return repr(node.value)

    def visit_TemplateData(self, node: nodes.TemplateData) -> str:
        return repr(node.data)

    def visit_List(self, node: nodes.List) -> str:
        return f"[{', '.join(self.visit(item) for item in node.items)}]"

    def visit_Tuple(self, node: nodes.Tuple) -> str:
        return f"({', '.join(self.visit(item) for item in node.items)}{',' if len(node.items) == 1 else ''})"

    def visit_Dict(self, node: nodes.Dict) -> str:
        return "{" + ", ".join(f"{self.visit(pair.key)}: {self.visit(pair.value)}" for pair in node.items) + "}"

    def visit_Getattr(self, node: nodes.Getattr) -> str:
        return f"{self.visit(node.node)}.{node.attr}"

    def visit_Getitem(self, node: nodes.Getitem) -> str:
        return f"{self.visit(node.node)}[{self.visit(node.arg)}]"

    def visit_Slice(self, node: nodes.Slice) -> str:
        parts = [self.visit(part) if part is not None else "" for part in (node.start, node.stop)]
        return ":".join(parts) + (f":{self.visit(node.step)}" if node.step is not None else "")

    def visit_Concat(self, node: nodes.Concat) -> str:
        return " ~ ".join(self.visit(item) for item in node.nodes)

    def _binary(self, node: nodes.BinExpr) -> str:
        return f"({self.visit(node.left)} {_BINARY.get(type(node).__name__, node.operator)} {self.visit(node.right)})"

    visit_Add = visit_Sub = visit_Mul = visit_Div = visit_FloorDiv = visit_Mod = visit_Pow = _binary
    visit_And = visit_Or = _binary

    def _unary(self, node: nodes.UnaryExpr) -> str:
        return f"{_UNARY[type(node).__name__]}{self.visit(node.node)}"

    visit_Not = visit_Neg = visit_Pos = _unary

    def visit_Compare(self, node: nodes.Compare) -> str:
        return (
            "("
            + " ".join(
                [self.visit(node.expr), *(f"{_COMPARE[operand.op]} {self.visit(operand.expr)}" for operand in node.ops)]
            )
            + ")"
        )

    def visit_CondExpr(self, node: nodes.CondExpr) -> str:
        tail = f" else {self.visit(node.expr2)}" if node.expr2 is not None else ""
        return f"({self.visit(node.expr1)} if {self.visit(node.test)}{tail})"

    def visit_Call(self, node: nodes.Call) -> str:
        return f"{self.visit(node.node)}({', '.join(self._arguments(node))})"

    def visit_Filter(self, node: nodes.Filter) -> str:
        return f"{self._owner(node)} | {node.name}{self._call(node)}"

    def visit_Test(self, node: nodes.Test) -> str:
        return f"{self._owner(node)} is {node.name}{self._call(node)}"

    def _owner(self, node: nodes.Filter | nodes.Test) -> str:
        return self.visit(node.node) if node.node is not None else ""

    def _call(self, node: nodes.Filter | nodes.Test) -> str:
        arguments = self._arguments(node)
        return f"({', '.join(arguments)})" if arguments else ""

    def _arguments(self, node: nodes.Call | nodes.Filter | nodes.Test) -> list[str]:
        arguments = [self.visit(arg) for arg in node.args] + [f"{kw.key}={self.visit(kw.value)}" for kw in node.kwargs]
        if node.dyn_args is not None:
            arguments.append(f"*{self.visit(node.dyn_args)}")
        if node.dyn_kwargs is not None:
            arguments.append(f"**{self.visit(node.dyn_kwargs)}")
        return arguments


_PRINTER = _ExpressionPrinter()
