"""What the model sees on each server: a profile prepares the inputs, an engine renders them.

A server profile is a module in this package with

- ``NAME``: the ``--server`` name (``"vllm"``, ``"llama-server"``, ...);
- ``ENGINE``: the Jinja engine that renders (``"jinja2"``, ``"minijinja"``, ``"hf-jinja"``,
  ``"llama.cpp"``);
- ``prepare(template, messages, *, tools, add_generation_prompt, variables) -> Prepared``: a pure
  function doing what the server does to a request before the template sees it (content-format
  rewriting, developer handling, which kwargs reach the template, ...), citing the server's source
  file and version in its docstring.

A profile may also set ``ENGINE_OPTIONS`` (engine settings the server uses, e.g. TGI's minijinja
without ``trim_blocks``).  :func:`render` runs a profile end to end.  Profiles are imported on first
use, so ``--help`` and ``lint`` never pay for them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
from collections.abc import Mapping, Sequence
from datetime import datetime
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from templatekit.environment import Profile

DEFAULT_PROFILE = "transformers<5.23"  # templatekit.environment.DEFAULT_PROFILE, without importing jinja2

__all__ = ["SERVERS", "Prepared", "available_servers", "engine_of", "profile", "render"]

# --server name -> module implementing the profile
SERVERS: dict[str, str] = {
    "transformers": "templatekit.servers.transformers",
    "vllm": "templatekit.servers.vllm",
    "sglang": "templatekit.servers.sglang",
    "llama-server": "templatekit.servers.llama_server",
    "tgi": "templatekit.servers.tgi",
    "transformers.js": "templatekit.servers.transformers_js",
}


@dataclasses.dataclass(frozen=True)
class Prepared:
    """The inputs a server hands its engine.

    ``add_generation_prompt`` or ``tools`` of ``None`` mean "left undefined" (llama-server does
    that for an empty tool list and a false flag); ``variables`` are every other template variable
    (special tokens, ``chat_template_kwargs`` the server lets through).  ``strip_leading`` is a
    prefix the server removes from the rendered text when present (llama-server's BOS).
    """

    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] | None
    add_generation_prompt: bool | None
    variables: dict[str, Any]
    strip_leading: str = ""


def profile(name: str) -> ModuleType:
    """The profile module for server ``name``; ``ValueError`` names the known servers."""
    return _profile_module(name)


def _profile_module(name: str) -> ModuleType:
    if name not in SERVERS:
        raise ValueError(f"unknown server {name!r}; expected one of {', '.join(sorted(SERVERS))}")
    return importlib.import_module(SERVERS[name])


def engine_of(server: str) -> str:
    """The engine server ``server`` renders with."""
    return _profile_module(server).ENGINE


def render(
    template: str,
    messages: Sequence[Mapping[str, Any]],
    *,
    server: str | None = None,
    tools: Sequence[Mapping[str, Any]] | None = None,
    documents: Sequence[Mapping[str, Any]] | None = None,
    add_generation_prompt: bool = False,
    special_tokens: Mapping[str, str] | None = None,
    now: datetime | None = None,
    profile: Profile = DEFAULT_PROFILE,
    **kwargs: Any,
) -> str:
    """Render as ``server`` does (its profile prepares, its engine renders), or as transformers does
    when ``server`` is ``None`` (:func:`templatekit.environment.render`, ``profile`` applying).

    ``special_tokens`` and ``kwargs`` are the template variables (``chat_template_kwargs``).  Under a
    server, failures are :class:`templatekit.engines.EngineError` (``kind="raise"`` for the template's
    ``raise_exception``, with its message), a request the server rejects before rendering is
    ``ValueError``, and a missing engine :class:`~templatekit.errors.EngineUnavailableError`.
    ``now`` fixes ``strftime_now`` for the jinja2 engine.
    """
    from templatekit.environment import fixed_clock
    from templatekit.environment import render as render_transformers

    if server is None:
        return render_transformers(
            template,
            messages,
            tools=tools,
            documents=documents,
            add_generation_prompt=add_generation_prompt,
            special_tokens=special_tokens,
            now=now,
            profile=profile,
            **kwargs,
        )
    from templatekit.engines import render_with

    module = _profile_module(server)
    variables = {**(special_tokens or {}), **kwargs, **({"documents": list(documents)} if documents else {})}
    prepared: Prepared = module.prepare(
        template, messages, tools=tools, add_generation_prompt=add_generation_prompt, variables=variables
    )
    with fixed_clock(now) if now is not None else contextlib.nullcontext():
        text = render_with(
            module.ENGINE,
            template,
            prepared.messages,
            tools=prepared.tools,
            add_generation_prompt=prepared.add_generation_prompt,
            variables=prepared.variables,
            options=getattr(module, "ENGINE_OPTIONS", None),
        )
    if prepared.strip_leading and text.startswith(prepared.strip_leading):
        text = text[len(prepared.strip_leading) :]
    return text


def available_servers() -> tuple[str, ...]:
    """The servers whose engine is installed here (what ``relax`` can verify against)."""
    from templatekit.engines import engine_status

    available = []
    for name in SERVERS:
        try:
            engine = engine_of(name)
        except ModuleNotFoundError:  # a profile not present in this build
            continue
        if engine_status(engine) is None:
            available.append(name)
    return tuple(available)
