"""Where chat templates come from: Hub repos, model folders, JSON configs, .jinja files, stdin.

(Interface stub: local .jinja files and text only. The full loader replaces the bodies.)
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from .errors import SourceNotFoundError, UnknownTemplateNameError

__all__ = ["ChatTemplate", "TemplateSource", "load", "from_text"]


@dataclass(frozen=True)
class ChatTemplate:
    """One chat template and what it needs to render as the server would.

    ``origin`` names where it came from for humans (``repo@commit:file`` or a path);
    ``path`` is the local file it was read from, if any; ``special_tokens`` holds
    ``bos_token``, ``eos_token``, ... as strings, ready to pass to :func:`templatekit.render`.
    """

    text: str
    name: str = "default"
    origin: str = "<string>"
    path: str | None = None
    special_tokens: Mapping[str, str] = field(default_factory=dict)
    kind: Literal["tokenizer", "processor"] = "tokenizer"
    repo_id: str | None = None
    commit: str | None = None

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class TemplateSource:
    """Every template a source has, in transformers' priority order, and notes about them."""

    reference: str
    templates: tuple[ChatTemplate, ...]
    notes: tuple[str, ...] = ()

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(template.name for template in self.templates)

    def get(self, name: str | None = None) -> ChatTemplate:
        """The template called ``name`` (default: ``default``, else the only/first one)."""
        if name is None:
            for template in self.templates:
                if template.name == "default":
                    return template
            return self.templates[0]
        for template in self.templates:
            if template.name == name:
                return template
        raise UnknownTemplateNameError(
            f"{self.reference} has no template named {name!r}; available: {', '.join(self.names)}",
            name=name, available=self.names)


def from_text(text: str, *, name: str = "default", origin: str = "<string>",
              special_tokens: Mapping[str, str] | None = None) -> ChatTemplate:
    """A :class:`ChatTemplate` from template text already in hand."""
    return ChatTemplate(text=text, name=name, origin=origin, special_tokens=dict(special_tokens or {}))


def load(reference: str, *, revision: str | None = None, token: str | None = None) -> TemplateSource:
    """All chat templates of ``reference`` (Hub id, folder, JSON config, .jinja file, ``-``)."""
    path = Path(reference)
    if not path.is_file():
        raise SourceNotFoundError(f"no such file: {reference}", source=reference)
    with path.open(encoding="utf-8", newline="") as handle:
        text = handle.read()
    return TemplateSource(reference, (ChatTemplate(text=text, origin=str(path), path=str(path)),))
