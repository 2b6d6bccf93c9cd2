"""The Jinja engines servers render with, behind one call: :func:`render_with`.

========== ===================================== ==========================================
engine     what it is                            who renders with it
========== ===================================== ==========================================
jinja2     :func:`templatekit.environment.render` transformers, vLLM, SGLang
minijinja  the ``minijinja`` wheel, in process   TGI, mistral.rs
hf-jinja   ``@huggingface/jinja`` under node     transformers.js, Hugging Face chat UIs
llama.cpp  llama.cpp's ``common/jinja``, through llama-server ``--jinja``
           a small compiled driver
========== ===================================== ==========================================

The last two run as long-lived child processes speaking JSON lines (one per Python process and
engine, started on first use, every request bounded by a timeout); ``templatekit engines install``
builds them into :func:`templatekit.engines.install.engines_dir`.  A missing engine raises
:class:`~templatekit.errors.EngineUnavailableError` naming what to install; nothing else in
templatekit depends on these engines.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

__all__ = ["ENGINES", "Engine", "EngineError", "available_engines", "engine_status", "render_with"]

Engine = Literal["jinja2", "minijinja", "hf-jinja", "llama.cpp"]
ENGINES: tuple[Engine, ...] = ("jinja2", "minijinja", "hf-jinja", "llama.cpp")

ErrorKind = Literal["parse", "raise", "render", "timeout"]


class EngineError(Exception):
    """An engine refused a template or a render; ``message`` is the engine's own text (for
    ``kind="raise"``, exactly the message the template passed to ``raise_exception``).

    ``kind`` is ``"parse"`` (the engine cannot parse the template), ``"raise"`` (the template called
    ``raise_exception``), ``"render"`` (any other failure while rendering) or ``"timeout"``.
    """

    def __init__(self, engine: str, kind: ErrorKind, message: str) -> None:
        super().__init__(f"{engine}: {message}")
        self.engine = engine
        self.kind = kind
        self.message = message


def render_with(
    engine: Engine,
    template: str,
    messages: Sequence[Mapping[str, Any]],
    *,
    tools: Sequence[Mapping[str, Any]] | None = None,
    add_generation_prompt: bool | None = False,
    variables: Mapping[str, Any] | None = None,
    options: Mapping[str, Any] | None = None,
) -> str:
    """Render ``template`` with ``engine``; :class:`EngineError` when the engine fails.

    ``variables`` are the other template variables (special tokens, kwargs).  ``options`` are engine
    settings a server changes (minijinja: ``trim_blocks``, ``lstrip_blocks``, both true by default
    as in transformers).  ``tools`` or
    ``add_generation_prompt`` of ``None`` leave that variable undefined, except under ``jinja2``,
    which renders as transformers does (``tools`` and ``documents`` always defined, ``None``
    if absent; ``add_generation_prompt`` ``False``).
    Raises :class:`~templatekit.errors.EngineUnavailableError` if ``engine`` is not installed.
    """
    context: dict[str, Any] = {**(variables or {}), "messages": [dict(message) for message in messages]}
    if tools is not None:
        context["tools"] = [dict(tool) for tool in tools]
    if add_generation_prompt is not None:
        context["add_generation_prompt"] = add_generation_prompt
    from templatekit.engines import runners

    return runners.RUNNERS[_checked(engine)](template, context, dict(options or {}))


def engine_status(engine: Engine) -> str | None:
    """``None`` if ``engine`` can render here, else one line saying what to install."""
    from templatekit.engines import runners

    return runners.STATUS[_checked(engine)]()


def available_engines() -> tuple[Engine, ...]:
    """The engines that can render on this machine now, in :data:`ENGINES` order."""
    return tuple(engine for engine in ENGINES if engine_status(engine) is None)


def _checked(engine: str) -> Engine:
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; expected one of {', '.join(ENGINES)}")
    return engine  # type: ignore[return-value]
