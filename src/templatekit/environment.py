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
"""

from __future__ import annotations

import contextvars
import dataclasses
import json
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from functools import lru_cache
from typing import Any, Literal

import jinja2
import jinja2.ext
import jinja2.nodes
import jinja2.utils
from jinja2.sandbox import ImmutableSandboxedEnvironment

__all__ = [
    "DEFAULT_PROFILE",
    "PROFILES",
    "Profile",
    "TemplateRaise",
    "compile_template",
    "fixed_clock",
    "make_environment",
    "render",
]

Profile = Literal["transformers<5.23", "transformers>=5.23"]
PROFILES: tuple[Profile, ...] = ("transformers<5.23", "transformers>=5.23")
DEFAULT_PROFILE: Profile = "transformers<5.23"

_REASONING_FIELDS = ("reasoning_content", "thinking", "reasoning")
_DOCUMENTS_ERROR = "Documents should be a list of dicts with 'title' and 'text' keys!"
_TOOLS_ERROR = ("Tools should be JSON schemas (dicts); convert a Python function first with "
                "transformers.utils.get_json_schema.")
_environments_lock = threading.Lock()
_clock: contextvars.ContextVar[datetime | None] = contextvars.ContextVar("templatekit_clock", default=None)


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


def _tojson(value: Any, ensure_ascii: bool = False, indent: int | str | None = None,
            separators: tuple[str, str] | None = None, sort_keys: bool = False) -> str:
    return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                      sort_keys=sort_keys)


def _strftime_now(format: str) -> str:
    return (_clock.get() or datetime.now()).strftime(format)


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


def make_environment(profile: Profile = DEFAULT_PROFILE) -> ImmutableSandboxedEnvironment:
    """The sandboxed environment servers render with, for ``profile``; one shared instance each."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; expected one of {', '.join(PROFILES)}")
    with _environments_lock:  # threads racing on first use must still share one instance
        return _build_environment(profile)


@lru_cache(maxsize=None)
def _build_environment(profile: Profile) -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(
        trim_blocks=True,
        lstrip_blocks=True,
        extensions=[GenerationExtension, jinja2.ext.loopcontrols],
    )
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    if profile == "transformers>=5.23":
        env.globals["dict"] = TemplateDict()
        env.globals["namespace"] = TemplateNamespace
    return env


def compile_template(source: str, profile: Profile = DEFAULT_PROFILE) -> jinja2.Template:
    """Compile ``source`` once per profile (thread-safe cache; compiled templates are reentrant).

    ``compile_template.cache_info()`` / ``.cache_clear()`` work as for ``functools.lru_cache``.
    Raises ``jinja2.TemplateSyntaxError`` for invalid templates.
    """
    return _compile(source, profile)  # one cache key whether ``profile`` is given or defaulted


@lru_cache(maxsize=512)
def _compile(source: str, profile: Profile) -> jinja2.Template:
    return make_environment(profile).from_string(source)


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
    **kwargs: Any,
) -> str:
    """Render a chat template as transformers' ``apply_chat_template(tokenize=False)`` does.

    ``special_tokens`` (``bos_token``, ``eos_token``, ...) are passed as template variables,
    and ``kwargs`` override them, as in transformers.  ``now`` fixes ``strftime_now``.
    A template's ``raise_exception`` surfaces as :class:`TemplateRaise`; other Jinja errors
    (undefined values, sandbox violations, type errors) propagate unchanged.  Like transformers,
    ``tools`` must be dicts (passed on as a new list) and ``documents`` dicts.
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
        chat = _alias_reasoning_fields(_plain_data([
            {key: value for key, value in message.items() if value is not None} for message in messages
        ]))
        tools, documents, variables = _plain_data(tools), _plain_data(documents), _plain_data(variables)
    token = _clock.set(now) if now is not None else None
    try:
        return compiled.render(messages=chat, tools=tools, documents=documents,
                               add_generation_prompt=add_generation_prompt, **variables)
    finally:
        if token is not None:
            _clock.reset(token)


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
        reasoning = next((message[key] for key in _REASONING_FIELDS if message.get(key) is not None), None)
        if reasoning is not None:
            message = {"thinking": reasoning, **message, "reasoning_content": reasoning}
        aliased.append(message)
    return aliased
