"""Chat templates inside a JSON config's text: replace them leaving every other byte as it
was, and find the line each one starts on.

``tokenizer_config.json`` files carry their own indentation, key order and escapes
(``\\u00e9`` or ``é``); rewriting them with ``json.dumps`` would change all of it.
:func:`replace_templates` edits only the spans of the template strings and checks the
result by parsing it again.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from json.decoder import scanstring
from typing import Any

from .errors import MalformedFileError

__all__ = ["replace_templates", "template_positions"]

_SPACE = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()


def replace_templates(text: str, relaxed: Mapping[str, str], *, origin: str) -> str | None:
    """``text`` with ``chat_template`` (a string: name ``default``; a list of ``{name, template}``)
    carrying ``relaxed``; ``None`` when a name in ``relaxed`` has no string in ``text`` to replace.

    Non-ASCII is written as ``\\uXXXX`` escapes when the file is pure ASCII, else as is.
    """
    spans = _template_spans(text, origin)
    if not set(relaxed) <= set(spans):
        return None
    ensure_ascii = text.isascii()
    edited = text
    for name, (start, end) in sorted(spans.items(), key=lambda item: -item[1][0]):
        if name in relaxed:
            edited = edited[:start] + json.dumps(relaxed[name], ensure_ascii=ensure_ascii) + edited[end:]
    expected = json.loads(text)
    _set_templates(expected, relaxed)
    if json.loads(edited) != expected:  # e.g. duplicate keys: do not guess
        return None
    return edited


def template_positions(text: str, origin: str) -> dict[str, tuple[int, int]]:
    """Template name -> 1-based (line, column) in ``text`` where its JSON string starts."""
    positions = {}
    for name, (start, _) in _template_spans(text, origin).items():
        line = text.count("\n", 0, start) + 1
        positions[name] = (line, start - (text.rfind("\n", 0, start) + 1) + 1)
    return positions


def _set_templates(config: dict[str, Any], relaxed: Mapping[str, str]) -> None:
    value = config.get("chat_template")
    if isinstance(value, str):
        config["chat_template"] = relaxed.get("default", value)
    elif isinstance(value, list):
        for entry in value:
            if isinstance(entry, dict) and entry.get("name") in relaxed:
                entry["template"] = relaxed[entry["name"]]


def _template_spans(text: str, origin: str) -> dict[str, tuple[int, int]]:
    """Template name -> (start, end) of its JSON string literal in ``text``."""
    try:
        spans: dict[str, tuple[int, int]] = {}
        for key, start, end in _members(text, _skip(text, 0)):
            if key == "chat_template":
                spans = _value_spans(text, start, end)
        return spans
    except (ValueError, IndexError) as error:
        raise MalformedFileError(f"malformed JSON in {origin}: {error}", path=origin) from None


def _skip(text: str, index: int) -> int:
    return _SPACE.match(text, index).end()  # type: ignore[union-attr]


def _members(text: str, index: int) -> list[tuple[str, int, int]]:
    """The members of the object starting at ``index``: (key, value start, value end)."""
    if text[index] != "{":
        raise ValueError(f"expected an object at offset {index}")
    members = []
    index = _skip(text, index + 1)
    while text[index] != "}":
        key, index = scanstring(text, index + 1)
        index = _skip(text, index)
        if text[index] != ":":
            raise ValueError(f"expected ':' at offset {index}")
        start = _skip(text, index + 1)
        _, end = _DECODER.raw_decode(text, start)
        members.append((key, start, end))
        index = _skip(text, end)
        if text[index] == ",":
            index = _skip(text, index + 1)
    return members


def _value_spans(text: str, start: int, end: int) -> dict[str, tuple[int, int]]:
    if text[start] == '"':
        return {"default": (start, end)}
    if text[start] != "[":
        return {}
    spans = {}
    index = _skip(text, start + 1)
    while text[index] != "]":
        _, item_end = _DECODER.raw_decode(text, index)
        if text[index] == "{":
            fields = {key: (value_start, value_end) for key, value_start, value_end in _members(text, index)}
            if "name" in fields and "template" in fields and text[fields["template"][0]] == '"':
                name = json.loads(text[slice(*fields["name"])])
                if isinstance(name, str):
                    spans[name] = fields["template"]
        index = _skip(text, item_end)
        if text[index] == ",":
            index = _skip(text, index + 1)
    return spans
