"""The server-faithful sandboxed Jinja environment, and ``render()``.

Reproduces the environment transformers builds in ``render_jinja_template`` (and so what
vLLM, SGLang and TGI's Python path render) without importing transformers:
``ImmutableSandboxedEnvironment`` with ``trim_blocks``, ``lstrip_blocks``, loop controls and
the ``{% generation %}`` tag; transformers' ``tojson``; ``raise_exception``; ``strftime_now``.

Two *profiles* name the transformers behaviours that differ between releases:

``transformers<5.23`` (default; the 5.16-5.20 range vLLM pins)
    inputs are passed to the template exactly as given.
``transformers>=5.23``
    ``apply_chat_template`` drops ``None``-valued message keys, every input is rebuilt from
    plain JSON types, reasoning fields are aliased (``reasoning_content``/``thinking``),
    ``namespace()`` refuses underscore-prefixed attributes and ``dict`` only builds dicts.

Both profiles check, as transformers does, that ``tools`` and ``documents`` are dicts.

Every render runs under a :class:`RenderBudget` (time, and characters produced); exceeding it
raises :class:`~templatekit.errors.RenderBudgetExceeded` instead of hanging or exhausting memory.
The checks sit where a template spends time or memory, and never change an output:
each ``{% for %}`` iteration (the code generator wraps the iterable), every call the sandbox
intercepts (functions, methods, macros, ``loop()``), the intercepted operators ``*``, ``**``,
``+`` and ``%`` (sizes checked *before* computing ``'x' * 10**9``), ``~`` concatenation, the
filters that build strings (``join``, ``replace``, ``center``, ``indent``, ``format``,
``wordwrap``), and the output as it streams.  :func:`command_budget` adds a deadline shared
by every render of a command.
"""

from __future__ import annotations

import contextvars
import dataclasses
import functools
import json
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Literal

import jinja2
import jinja2.ext
import jinja2.nodes
import jinja2.utils
from jinja2.compiler import CodeGenerator, Frame, optimizeconst
from jinja2.runtime import str_join
from jinja2.sandbox import ImmutableSandboxedEnvironment

from .errors import InputLimitError, RenderBudgetExceeded, UnsafeJinjaError

if TYPE_CHECKING:
    from datetime import datetime
from .records import Record

__all__ = [
    "BudgetedCodeGenerator",
    "DEFAULT_RENDER_BUDGET",
    "DEFAULT_PROFILE",
    "MIN_JINJA2",
    "PROFILES",
    "REASONING_FIELDS",
    "Profile",
    "RenderBudget",
    "TemplateRaise",
    "command_budget",
    "compile_template",
    "compiling",
    "fixed_clock",
    "make_environment",
    "render",
    "render_budget",
    "render_compiled",
]

Profile = Literal["transformers<5.23", "transformers>=5.23"]
PROFILES: tuple[Profile, ...] = ("transformers<5.23", "transformers>=5.23")
DEFAULT_PROFILE: Profile = "transformers<5.23"

REASONING_FIELDS = ("reasoning_content", "thinking", "reasoning")
"""The message fields clients carry an answer's reasoning in, in the order transformers reads them."""
_DOCUMENTS_ERROR = "Documents should be a list of dicts with 'title' and 'text' keys!"
_TOOLS_ERROR = (
    "Tools should be JSON schemas (dicts); convert a Python function first with transformers.utils.get_json_schema."
)
_environments_lock = threading.Lock()
_clock: contextvars.ContextVar[datetime | None] = contextvars.ContextVar("templatekit_clock", default=None)
# jinja2 releases before 3.1.6 have known sandbox escapes (CVE-2024-56201, CVE-2024-56326, CVE-2025-27516).
MIN_JINJA2 = (3, 1, 6)


class RenderBudget(Record):
    """What one render may spend: ``milliseconds`` of wall time and ``megabytes`` (millions of
    characters) for any one string or list it builds, and for its output."""

    milliseconds: int = 2000
    megabytes: int = 32

    @property
    def characters(self) -> int:
        return self.megabytes * 1_000_000


DEFAULT_RENDER_BUDGET = RenderBudget()


class _Meter:
    """The running render's budget: a deadline and a size limit, checked by the hooks below."""

    __slots__ = ("budget", "deadline", "limit", "where", "spent")

    def __init__(self, budget: RenderBudget, deadline: float, where: str) -> None:
        self.budget = budget
        self.deadline = deadline
        self.limit = budget.characters
        self.where = where
        self.spent = 0

    def tick(self) -> None:
        if time.monotonic() > self.deadline:
            raise RenderBudgetExceeded("time", self.budget.milliseconds, self.where)

    def size(self, length: int) -> None:
        if length > self.limit:
            raise RenderBudgetExceeded("memory", self.budget.megabytes, self.where)

    def spend(self, length: int) -> None:
        """Count a result of a filter or method call: one value at most ``limit``, all of them
        together (``range(n)|map('replace', '', big)``) at most eight times that."""
        self.size(length)
        self.spent += length
        if self.spent > 8 * self.limit:
            raise RenderBudgetExceeded("memory", self.budget.megabytes, self.where)
        self.tick()


_BUILTIN_METHOD = type("".join)
_meter: contextvars.ContextVar[_Meter | None] = contextvars.ContextVar("templatekit_meter", default=None)
_command_deadline: contextvars.ContextVar[tuple[float, float, str] | None] = contextvars.ContextVar(
    "templatekit_command_deadline", default=None
)


class TemplateRaise(jinja2.exceptions.TemplateError):
    """Raised when a template calls ``raise_exception(message)``; ``.message`` is its text."""

    def __init__(self, message: Any) -> None:
        super().__init__(message)
        self.template_message = message


class GenerationExtension(jinja2.ext.Extension):
    """``{% generation %}...{% endgeneration %}``: renders its body (transformers' tracker, inactive)."""

    tags = {"generation"}

    def parse(self, parser: jinja2.parser.Parser) -> jinja2.nodes.Node:
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        return jinja2.nodes.CallBlock(self.call_method("_render_body"), [], [], body).set_lineno(lineno)

    def _render_body(self, caller: jinja2.runtime.Macro) -> str:
        return caller()


def _raise_exception(message: Any) -> None:
    raise TemplateRaise(message)


def _tojson(
    value: Any,
    ensure_ascii: bool = False,
    indent: int | str | None = None,
    separators: tuple[str, str] | None = None,
    sort_keys: bool = False,
) -> str:
    return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def _strftime_now(format: str) -> str:
    moment = _clock.get()
    if moment is None:
        from datetime import datetime  # on first use: most templates never read the clock

        moment = datetime.now()
    return moment.strftime(format)


# Jinja's error messages quote an object's type as "module.Name": transformers>=5.23's globals
# below carry transformers' names so that those messages are identical too.
_TRANSFORMERS_MODULE = "transformers.utils.chat_template_utils"


class TemplateDict:
    """transformers>=5.23's ``dict`` global: builds plain dicts, exposes nothing else."""

    __module__ = _TRANSFORMERS_MODULE

    def __call__(self, *args: Any, **kwargs: Any) -> dict:
        return dict(*args, **kwargs)

    def fromkeys(self, *args: Any, **kwargs: Any) -> dict:
        return dict.fromkeys(*args, **kwargs)


class TemplateNamespace(jinja2.utils.Namespace):
    """transformers>=5.23's ``namespace``: refuses underscore-prefixed attributes."""

    __module__ = _TRANSFORMERS_MODULE

    def __init__(*args: Any, **kwargs: Any) -> None:  # noqa: N805 - Jinja's own signature trick
        self, args = args[0], args[1:]
        attrs = dict(*args, **kwargs)
        for name in attrs:
            TemplateNamespace._check_name(name)
        jinja2.utils.Namespace.__init__(self, attrs)

    def __setitem__(self, name: str, value: Any) -> None:
        TemplateNamespace._check_name(name)
        jinja2.utils.Namespace.__setitem__(self, name, value)

    @staticmethod
    def _check_name(name: Any) -> None:
        if isinstance(name, str) and name.startswith("_"):
            raise jinja2.exceptions.SecurityError(
                "Chat templates cannot store underscore-prefixed attributes on a namespace, "
                f"but got {name!r}. Please rename the attribute."
            )


# --- the budget hooks (they raise or pass; they never change a value) ---------------------------

# (strings: compiled on first use, by a template that formats)
_NESTED_FIELD = r"\{[^{}]*\{"  # '{:{}}': a width from the arguments
_FORMAT_WIDTHS = r"[%:{][^a-zA-Z%{}]*?(\d{6,})"  # widths/precisions of 6+ digits
_SEQUENCES = (str, list, tuple)
_SIZED = frozenset((str, list, tuple, dict))
_ITEM = 8  # a list item counts as 8 characters: its pointer (and at least that much once printed)


def _size(value: Any) -> int:
    """``value``'s size in characters: its length, eight per item for containers."""
    return len(value) if isinstance(value, str) else len(value) * _ITEM


def _check_size(value: Any) -> Any:
    """``value``, once its size is within the running render's limit (time is metered by loops
    and calls: an expression outside them runs once)."""
    if type(value) in _SIZED:
        meter = _meter.get()
        if meter is not None and len(value) > meter.limit // _ITEM:
            meter.size(_size(value))
    return value


def _check_format(meter: _Meter, spec: Any, arguments: Any = ()) -> None:
    """Refuse ``'%999999999s' % x`` / ``'{:>999999999}'.format(x)`` before formatting (also
    widths taken from the arguments: ``'%*s'``, ``'{:{}}'``)."""
    if isinstance(spec, str):
        for width in re.findall(_FORMAT_WIDTHS, spec):
            meter.size(int(width))
        if "*" in spec or re.search(_NESTED_FIELD, spec):
            for argument in arguments if isinstance(arguments, tuple) else (arguments,):
                if isinstance(argument, int):
                    meter.size(abs(argument))


def _predicted_length(operator: str, left: Any, right: Any) -> int:
    """A lower bound of the result's size in characters, items or bytes (0: unknown or small)."""
    if operator == "*":
        if isinstance(left, int) and isinstance(right, _SEQUENCES):
            left, right = right, left
        if isinstance(left, _SEQUENCES) and isinstance(right, int) and not isinstance(right, bool):
            return _size(left) * right
    elif operator == "**" and type(left) is int and type(right) is int and right > 0 and abs(left) > 1:
        return left.bit_length() * right // 8
    elif operator == "+" and isinstance(left, _SEQUENCES) and isinstance(right, _SEQUENCES):
        return _size(left) + _size(right)
    return 0


def _metered(iterable: Any, meter: _Meter) -> Iterator[Any]:
    count = 0
    for item in iterable:
        count += 1
        if not count & 127:
            meter.tick()
        yield item


def _joined_length(items: Any, separator: Any) -> int:
    """The length of ``separator.join(items)`` for a list of strings (``[big] * 1000 | join``)."""
    if not hasattr(items, "__len__"):
        return 0
    pieces = sum(len(item) for item in items if isinstance(item, str)) if isinstance(items, (list, tuple)) else 0
    return pieces + len(items) * len(separator) if isinstance(separator, str) else pieces


def _replaced_length(text: Any, old: Any, new: Any, count: Any = -1) -> int:
    if not (isinstance(text, str) and isinstance(old, str) and isinstance(new, str)):
        return 0
    occurrences = len(text) + 1 if old == "" else text.count(old)
    if isinstance(count, int) and count >= 0:
        occurrences = min(occurrences, count)
    return len(text) + occurrences * len(new)


def _width(value: Any, width: Any = 0, *_: Any, **__: Any) -> int:
    return width if isinstance(width, int) else 0


def _after_the_call(*_: Any, **__: Any) -> int:
    return 0


# Filters that can build large strings -> the size of their result, predicted from the arguments.
_FILTER_SIZES: dict[str, Callable[..., int]] = {
    "join": lambda value, d="", *_, **__: _joined_length(value, d),
    "replace": lambda value, old="", new="", count=None, *_, **__: _replaced_length(
        value, old, new, -1 if count is None else count
    ),
    "center": _width,
    "indent": lambda value, width=4, *_, **__: (
        (width if isinstance(width, int) else len(width) if isinstance(width, str) else 0)
        * max(1, str(value).count("\n"))
    ),
    "wordwrap": lambda value, width=79, long_words=True, wrapstring=None, *_, **__: (
        len(str(value)) * len(wrapstring) if isinstance(wrapstring, str) else 0
    ),
    "format": _after_the_call,  # its widths are checked by _check_format
    "tojson": lambda value, ensure_ascii=False, indent=None, *_, **__: _width(value, indent),
}
# str methods that can build large strings -> the size of their result (checked before the call).
_METHOD_SIZES: dict[str, Callable[..., int]] = {
    "center": _width,
    "ljust": _width,
    "rjust": _width,
    "zfill": _width,
    "expandtabs": lambda text, tabsize=8, *_, **__: len(text) * tabsize if isinstance(tabsize, int) else 0,
    "replace": _replaced_length,
    "join": lambda separator, items=(), *_, **__: _joined_length(items, separator),
}


def _predict(predict: Callable[..., int], *args: Any, **kwargs: Any) -> int:
    """``predict``'s size, 0 when the arguments do not fit (the call itself then reports that)."""
    try:
        return predict(*args, **{key: value for key, value in kwargs.items() if not key.startswith("_")})
    except (TypeError, ValueError, AttributeError):
        return 0


def _budgeted_filter(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    """``function`` with its result size predicted before the call and checked after it."""
    predict = _FILTER_SIZES[name]
    skip = 1 if getattr(function, "jinja_pass_arg", None) is not None else 0  # context / eval_ctx

    @functools.wraps(function)
    def budgeted(*args: Any, **kwargs: Any) -> Any:
        meter = _meter.get()
        if meter is not None:
            meter.tick()
            meter.size(_predict(predict, *args[skip:], **kwargs))
            if name == "format" and len(args) > skip:
                _check_format(meter, args[skip], tuple(args[skip + 1 :]))
        result = function(*args, **kwargs)
        if meter is not None and isinstance(result, _SEQUENCES):
            meter.spend(_size(result))
        return result

    return budgeted


class BudgetedCodeGenerator(CodeGenerator):
    """jinja2's code generator, with every loop iterable and ``~`` concatenation metered.

    (jinja2 forbids new node types, so the loop's iterable is recognised by identity.)
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._loop_iterables: list[jinja2.nodes.Node | None] = []

    def visit_For(self, node: jinja2.nodes.For, frame: Frame) -> None:  # noqa: N802 - jinja's naming
        self._loop_iterables.append(node.iter)
        try:
            super().visit_For(node, frame)
        finally:
            self._loop_iterables.pop()

    def visit(self, node: jinja2.nodes.Node, *args: Any, **kwargs: Any) -> Any:
        if not self._loop_iterables or node is not self._loop_iterables[-1]:
            return super().visit(node, *args, **kwargs)
        self._loop_iterables.append(None)  # the iterable's own sub-expressions are not loops
        try:
            self.write("environment.metered(")
            super().visit(node, *args, **kwargs)
            self.write(")")
        finally:
            self._loop_iterables.pop()
        return None

    @optimizeconst
    def visit_Concat(self, node: jinja2.nodes.Concat, frame: Frame) -> None:  # noqa: N802
        if frame.eval_ctx.volatile or frame.eval_ctx.autoescape:
            super().visit_Concat(node, frame)
            return
        self.write("environment.budgeted_join((")
        for argument in node.nodes:
            self.visit(argument, frame)
            self.write(", ")
        self.write("))")


class BudgetedSandbox(ImmutableSandboxedEnvironment):
    """transformers' sandbox, with the budget checked in every intercepted call and operator."""

    code_generator_class = BudgetedCodeGenerator
    intercepted_binops = frozenset(("*", "**", "+", "%"))

    def compile(self, *args: Any, **kwargs: Any) -> Any:  # noqa: A003 - jinja's name
        with compiling():
            return super().compile(*args, **kwargs)

    @staticmethod
    def metered(iterable: Any) -> Any:
        meter = _meter.get()
        return iterable if meter is None else _metered(iterable, meter)

    @staticmethod
    def budgeted_join(pieces: tuple[Any, ...]) -> str:
        return _check_size(str_join(pieces))

    def call_binop(self, context: jinja2.runtime.Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "+":  # the common case (loop.index0 + 1): grows at most twofold, checked after
            return _check_size(left + right)
        meter = _meter.get()
        if meter is not None:
            meter.size(_predicted_length(operator, left, right))
            if operator == "%":
                _check_format(meter, left, right)
        return _check_size(self.binop_table[operator](left, right))

    def call(
        __self,
        __context: jinja2.runtime.Context,
        __obj: Any,
        *args: Any,  # noqa: N805 - jinja's signature
        **kwargs: Any,
    ) -> Any:
        meter = _meter.get()
        if meter is not None:
            meter.tick()
            if type(__obj) is _BUILTIN_METHOD:  # 'x'.center(10**9): sized before the call
                if type(__obj.__self__) is str and __obj.__name__ in _METHOD_SIZES:
                    meter.size(_predict(_METHOD_SIZES[__obj.__name__], __obj.__self__, *args, **kwargs))
            elif __obj is jinja2.utils.generate_lorem_ipsum:
                words = args[0] if args else kwargs.get("n", 5)
                longest = args[3] if len(args) > 3 else kwargs.get("max", 100)
                if isinstance(words, int) and isinstance(longest, int):
                    meter.size(words * longest * 8)
            elif (
                getattr(__obj, "__name__", None) in ("format", "format_map")
                and getattr(__obj, "__wrapped__", None) is not None
            ):  # the sandbox's wrapper of str.format
                _check_format(meter, getattr(__obj.__wrapped__, "__self__", None), (*args, *kwargs.values()))
        result = super().call(__context, __obj, *args, **kwargs)
        if meter is not None and isinstance(result, _SEQUENCES):
            meter.spend(_size(result))
        return result


def _budgeted_concat(chunks: Iterator[str]) -> str:
    """The output, assembled as it streams: its size is checked per chunk."""
    meter = _meter.get()
    if meter is None:
        return "".join(chunks)
    parts = []
    append = parts.append
    length, limit = 0, meter.limit
    for chunk in chunks:
        length += len(chunk)
        if length > limit:
            meter.size(length)
        append(chunk)
    return "".join(parts)


def _check_jinja2() -> None:
    version = tuple(int(part) for part in re.findall(r"\d+", jinja2.__version__)[:3])
    if version < MIN_JINJA2:
        raise UnsafeJinjaError(
            f"jinja2 {jinja2.__version__} has known sandbox escapes (CVE-2024-56201, "
            f"CVE-2024-56326, CVE-2025-27516); refusing to render: install jinja2>="
            f"{'.'.join(map(str, MIN_JINJA2))}"
        )


def make_environment(profile: Profile = DEFAULT_PROFILE) -> ImmutableSandboxedEnvironment:
    """The sandboxed environment servers render with, for ``profile``; one shared instance each.

    Raises :class:`~templatekit.errors.UnsafeJinjaError` with a jinja2 older than 3.1.6.
    """
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; expected one of {', '.join(PROFILES)}")
    _check_jinja2()
    with _environments_lock:  # threads racing on first use must still share one instance
        return _build_environment(profile)


@lru_cache(maxsize=None)
def _build_environment(profile: Profile) -> ImmutableSandboxedEnvironment:
    env = BudgetedSandbox(
        trim_blocks=True,
        lstrip_blocks=True,
        extensions=[GenerationExtension, jinja2.ext.loopcontrols],
    )
    env.concat = _budgeted_concat  # type: ignore[method-assign]
    env.filters["tojson"] = _tojson
    for name in _FILTER_SIZES:
        env.filters[name] = _budgeted_filter(name, env.filters[name])
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    if profile == "transformers>=5.23":
        env.globals["dict"] = TemplateDict()
        env.globals["namespace"] = TemplateNamespace
    return env


def compile_template(source: str, profile: Profile = DEFAULT_PROFILE) -> jinja2.Template:
    """Compile ``source`` once per profile (thread-safe cache; compiled templates are reentrant).

    ``compile_template.cache_info()`` / ``.cache_clear()`` work as for ``functools.lru_cache``.
    Raises ``jinja2.TemplateSyntaxError`` for invalid templates and
    :class:`~templatekit.errors.InputLimitError` for templates nested too deeply to compile.
    Render the result with :func:`render_compiled`: its own ``render()`` has no budget.
    """
    return _compile(source, profile)  # one cache key whether ``profile`` is given or defaulted


@lru_cache(maxsize=512)
def _compile(source: str, profile: Profile) -> jinja2.Template:
    try:
        return make_environment(profile).from_string(source)
    except (RecursionError, MemoryError):
        raise InputLimitError(
            "the template is nested too deeply for jinja2 to parse or compile (Python's "
            "recursion limit; servers fail on it too)"
        ) from None


compile_template.cache_info = _compile.cache_info  # type: ignore[attr-defined]
compile_template.cache_clear = _compile.cache_clear  # type: ignore[attr-defined]


@contextmanager
def fixed_clock(moment: datetime) -> Iterator[None]:
    """Make ``strftime_now`` report ``moment`` inside this block (per thread / task)."""
    token = _clock.set(moment)
    try:
        yield
    finally:
        _clock.reset(token)


def render(
    template: str,
    messages: Sequence[Mapping[str, Any]],
    *,
    tools: Sequence[Mapping[str, Any]] | None = None,
    documents: Sequence[Mapping[str, Any]] | None = None,
    add_generation_prompt: bool = False,
    special_tokens: Mapping[str, str] | None = None,
    now: datetime | None = None,
    profile: Profile = DEFAULT_PROFILE,
    budget: RenderBudget = DEFAULT_RENDER_BUDGET,
    **kwargs: Any,
) -> str:
    """Render a chat template as transformers' ``apply_chat_template(tokenize=False)`` does.

    ``special_tokens`` (``bos_token``, ``eos_token``, ...) are passed as template variables,
    and ``kwargs`` override them, as in transformers.  ``now`` fixes ``strftime_now``.
    A template's ``raise_exception`` surfaces as :class:`TemplateRaise`; other Jinja errors
    (undefined values, sandbox violations, type errors) propagate unchanged.  Like transformers,
    ``tools`` must be dicts (passed on as a new list) and ``documents`` dicts.  The render runs
    under ``budget`` (:class:`~templatekit.errors.RenderBudgetExceeded` when it runs out).
    """
    compiled = compile_template(template, profile)
    if tools is not None:
        if not all(isinstance(tool, dict) for tool in tools):
            raise ValueError(_TOOLS_ERROR)
        tools = list(tools)
    if documents is not None and not all(isinstance(document, dict) for document in documents):
        raise TypeError(_DOCUMENTS_ERROR)
    variables: dict[str, Any] = {**(special_tokens or {}), **kwargs}
    chat: Any = messages
    if profile == "transformers>=5.23":
        chat = _alias_reasoning_fields(
            _plain_data([{key: value for key, value in message.items() if value is not None} for message in messages])
        )
        tools, documents, variables = _plain_data(tools), _plain_data(documents), _plain_data(variables)
    token = _clock.set(now) if now is not None else None
    try:
        return render_compiled(
            compiled,
            {
                "messages": chat,
                "tools": tools,
                "documents": documents,
                "add_generation_prompt": add_generation_prompt,
                **variables,
            },
            budget,
        )
    finally:
        if token is not None:
            _clock.reset(token)


def render_compiled(
    compiled: jinja2.Template, variables: Mapping[str, Any], budget: RenderBudget = DEFAULT_RENDER_BUDGET
) -> str:
    """Render a template compiled by this module with ``variables`` (a mapping: a template may read a
    variable called ``budget``) under ``budget`` (and any :func:`command_budget`).

    Raises :class:`~templatekit.errors.RenderBudgetExceeded` (also for a ``MemoryError``).
    """
    with render_budget(budget):
        # Template.render minus jinja2's traceback rewriting on errors (the same exception, class
        # and message; only template frames are left out of its traceback): a raising render, the
        # outcome of a rejected conversation in verify, then costs a third
        return compiled.environment.concat(compiled.root_render_func(compiled.new_context(variables)))


@contextmanager
def render_budget(budget: RenderBudget = DEFAULT_RENDER_BUDGET) -> Iterator[None]:
    """Meter the render run inside this block (one render: the deadline starts now) by
    ``budget`` and any :func:`command_budget`; a ``MemoryError`` becomes
    :class:`~templatekit.errors.RenderBudgetExceeded` too."""
    start = time.monotonic()
    deadline, where = start + budget.milliseconds / 1000, "render"
    command = _command_deadline.get()
    if command is not None and command[0] < deadline:
        deadline, where = command[0], command[2]
        if start > deadline:
            raise RenderBudgetExceeded("time", int(command[1] * 1000), where)
    token = _meter.set(_Meter(budget, deadline, where))
    try:
        yield
    except MemoryError:
        raise RenderBudgetExceeded("memory", budget.megabytes, where) from None
    except RenderBudgetExceeded as error:
        if error.scope != "render" and error.kind == "time":
            raise RenderBudgetExceeded("time", int(command[1] * 1000), where) from None  # type: ignore[index]
        raise
    finally:
        _meter.reset(token)


@contextmanager
def compiling() -> Iterator[None]:
    """Meter code generation by the default budget (unless a render is already metered):
    jinja2 folds constant expressions while compiling (``'%999999999s' | format(1)`` would be
    computed there)."""
    if _meter.get() is not None:
        yield
        return
    budget = DEFAULT_RENDER_BUDGET
    token = _meter.set(_Meter(budget, time.monotonic() + budget.milliseconds / 1000, "render"))
    try:
        yield
    finally:
        _meter.reset(token)


@contextmanager
def command_budget(seconds: float, what: str = "command") -> Iterator[None]:
    """Give every render inside this block one shared deadline, ``seconds`` from now.

    A render running past it raises :class:`~templatekit.errors.RenderBudgetExceeded` with
    ``scope == what``; nested blocks keep the earlier deadline.
    """
    deadline = time.monotonic() + seconds
    current = _command_deadline.get()
    token = _command_deadline.set(
        current if current is not None and current[0] <= deadline else (deadline, seconds, what)
    )
    try:
        yield
    finally:
        _command_deadline.reset(token)


def _plain_data(value: Any) -> Any:
    """Rebuild ``value`` from plain JSON types (transformers>=5.23's ``_plain_template_data``)."""
    if value is None or type(value) in (str, int, float, bool):
        return value
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, int):
        return int.__int__(value)
    if isinstance(value, float):
        return float.__float__(value)
    if isinstance(value, Mapping):
        return {_plain_data(key): _plain_data(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain_data(item) for item in value]
    if isinstance(value, tuple):
        return tuple(_plain_data(item) for item in value)
    numpy = sys.modules.get("numpy")  # a numpy scalar implies numpy is imported; never import it here
    if numpy is not None and isinstance(value, numpy.generic):
        return _plain_data(value.item())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {field.name: _plain_data(getattr(value, field.name)) for field in dataclasses.fields(value)}
    if callable(getattr(value, "model_dump", None)):  # pydantic models
        return _plain_data(value.model_dump())
    return f"<{type(value).__name__}>"


def _alias_reasoning_fields(chat: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Fill ``reasoning_content`` and ``thinking`` from any reasoning field (transformers>=5.23)."""
    aliased = []
    for message in chat:
        reasoning = next((message[key] for key in REASONING_FIELDS if message.get(key) is not None), None)
        if reasoning is not None:
            message = {"thinking": reasoning, **message, "reasoning_content": reasoning}
        aliased.append(message)
    return aliased
