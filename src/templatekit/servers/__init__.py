"""What the model sees on each server: a profile prepares the inputs, an engine renders them.

A server profile is a module in this package with

- ``NAME``: the ``--server`` name (``"vllm"``, ``"llama-server"``, ...);
- ``ENGINE``: the Jinja engine that renders (``"jinja2"``, ``"minijinja"``, ``"hf-jinja"``,
  ``"llama.cpp"``);
- ``prepare(template, messages, *, tools, add_generation_prompt, variables) -> Prepared``: a pure
  function doing what the server does to a request before the template sees it (content-format
  rewriting, developer handling, which kwargs reach the template, ...), citing the server's source
  file and version in its docstring.

Profiles are imported on first use, so ``--help`` and ``lint`` never pay for them.
"""

from __future__ import annotations

import dataclasses
import importlib
from types import ModuleType
from typing import Any

__all__ = ["SERVERS", "Prepared", "profile"]

# --server name -> module implementing the profile
SERVERS: dict[str, str] = {
    "vllm": "templatekit.servers.vllm",
}


@dataclasses.dataclass(frozen=True)
class Prepared:
    """The inputs a server hands its engine.

    ``add_generation_prompt`` or ``tools`` of ``None`` mean "left undefined" (llama-server does
    that for an empty tool list and a false flag); ``variables`` are every other template variable
    (special tokens, ``chat_template_kwargs`` the server lets through).
    """

    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] | None
    add_generation_prompt: bool | None
    variables: dict[str, Any]


def profile(name: str) -> ModuleType:
    """The profile module for server ``name``; ``ValueError`` names the known servers."""
    if name not in SERVERS:
        raise ValueError(f"unknown server {name!r}; expected one of {', '.join(sorted(SERVERS))}")
    return importlib.import_module(SERVERS[name])

