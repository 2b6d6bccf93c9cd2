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

import dataclasses
import importlib
from collections.abc import Mapping, Sequence
from types import ModuleType
from typing import Any

__all__ = ["SERVERS", "Prepared", "engine_of", "profile", "render"]

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
    if name not in SERVERS:
        raise ValueError(f"unknown server {name!r}; expected one of {', '.join(sorted(SERVERS))}")
    return importlib.import_module(SERVERS[name])



def engine_of(server: str) -> str:
    """The engine server ``server`` renders with."""
    return profile(server).ENGINE


def render(template: str, messages: Sequence[Mapping[str, Any]], *, server: str,
           tools: Sequence[Mapping[str, Any]] | None = None, add_generation_prompt: bool = False,
           variables: Mapping[str, Any] | None = None) -> str:
    """What ``server`` renders for this request: its profile prepares, its engine renders.

    ``variables`` are the special tokens and ``chat_template_kwargs``.  Raises
    :class:`templatekit.engines.EngineError` when the engine fails (a template's
    ``raise_exception`` included), ``ValueError`` for a request the server rejects before rendering,
    and :class:`~templatekit.errors.EngineUnavailableError` when the engine is not installed.
    """
    from templatekit.engines import render_with

    module = profile(server)
    prepared: Prepared = module.prepare(template, messages, tools=tools,
                                        add_generation_prompt=add_generation_prompt, variables=dict(variables or {}))
    text = render_with(module.ENGINE, template, prepared.messages, tools=prepared.tools,
                       add_generation_prompt=prepared.add_generation_prompt, variables=prepared.variables,
                       options=getattr(module, "ENGINE_OPTIONS", None))
    if prepared.strip_leading and text.startswith(prepared.strip_leading):
        text = text[len(prepared.strip_leading):]
    return text
