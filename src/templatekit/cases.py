"""One replayable render input, :class:`Case`: what a server passes a chat template, and its JSON.

Lint witnesses, verify's counterexamples and ``templatekit render --messages FILE`` all use
this type and this file format: an object with ``messages`` (one message per line),
``tools``, ``add_generation_prompt`` and ``kwargs``; a bare list of messages reads as a case
with nothing else.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

from .records import Record

__all__ = ["Case", "messages_json"]


class Case(Record):
    """A concrete input: the messages, tools, ``add_generation_prompt`` and keyword arguments
    (``chat_template_kwargs``) a server would pass to the template."""

    messages: tuple[Mapping[str, Any], ...]
    tools: tuple[Mapping[str, Any], ...] | None = None
    add_generation_prompt: bool = False
    kwargs: Mapping[str, Any] = MappingProxyType({})

    def to_dict(self) -> dict[str, Any]:
        """The case as plain JSON data (a copy)."""
        return json.loads(
            json.dumps(
                {
                    "messages": list(self.messages),
                    "tools": list(self.tools) if self.tools is not None else None,
                    "add_generation_prompt": self.add_generation_prompt,
                    "kwargs": dict(self.kwargs),
                }
            )
        )

    def to_json(self) -> str:
        """The replay file: JSON with one message per line (``messages`` first)."""
        return _json_lines(self.to_dict())

    @classmethod
    def from_data(cls, data: Any, origin: str = "case") -> Case:
        """The case of decoded JSON ``data`` (a bare list of messages becomes one); a
        :class:`~templatekit.errors.MalformedFileError` naming ``origin`` says what is wrong."""
        from .errors import MalformedFileError

        case = {"messages": data} if isinstance(data, list) else data
        if (
            not isinstance(case, dict)
            or not isinstance(case.get("messages"), list)
            or not all(isinstance(message, dict) for message in case["messages"])
        ):
            raise MalformedFileError(
                f'{origin}: expected a list of message objects or an object with a "messages" list', path=origin
            )
        if not isinstance(case.get("kwargs", {}), dict):
            raise MalformedFileError(f'{origin}: "kwargs" must be an object', path=origin)
        tools = case.get("tools")
        if tools is not None and not isinstance(tools, list):
            raise MalformedFileError(f'{origin}: "tools" must be a list or null', path=origin)
        return cls(
            tuple(case["messages"]),
            tuple(tools) if tools is not None else None,
            bool(case.get("add_generation_prompt", False)),
            case.get("kwargs", {}),
        )

    @classmethod
    def from_json(cls, text: str, origin: str = "case") -> Case:
        """The case of a replay file's ``text`` (see :meth:`from_data`); invalid JSON, JSON nested
        too deeply or text no server can encode raise errors naming ``origin``."""
        from .errors import InputLimitError, MalformedFileError
        from .sources import check_text

        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise MalformedFileError(
                f"{origin}:{error.lineno}:{error.colno}: invalid JSON: {error.msg}",
                path=origin,
                line=error.lineno,
                column=error.colno,
            ) from None
        except RecursionError:
            raise InputLimitError(f"{origin}: JSON nested too deeply") from None
        check_text(json.dumps(data, ensure_ascii=False), origin, "messages file")
        return cls.from_data(data, origin)

    def describe(self) -> str:
        """A short human summary: ``[user, user]``, plus tools and keyword arguments if any."""
        roles = ", ".join(_describe_message(message) for message in self.messages)
        extras = []
        if self.tools is not None:
            extras.append(f"{len(self.tools)} tool{'s' if len(self.tools) != 1 else ''}")
        if self.add_generation_prompt:
            extras.append("add_generation_prompt")
        extras.extend(f"{key}={json.dumps(value)}" for key, value in self.kwargs.items())
        return f"[{roles}]" + (f" with {', '.join(extras)}" if extras else "")


def messages_json(messages: Sequence[Mapping[str, Any]]) -> str:
    """``{"messages": [...]}`` with one message per line: a conversation without the rest of a case."""
    return _json_lines({"messages": list(messages)})


def _json_lines(data: Mapping[str, Any]) -> str:
    def dumps(value: Any) -> str:
        return json.dumps(value, ensure_ascii=False)

    lines = ["{", '  "messages": [']
    messages = list(data.get("messages", ()))
    lines += [
        f"    {dumps(message)}{',' if index < len(messages) - 1 else ''}" for index, message in enumerate(messages)
    ]
    rest = [(key, value) for key, value in data.items() if key != "messages"]
    lines.append("  ]" + ("," if rest else ""))
    lines += [
        f"  {dumps(key)}: {dumps(value)}{',' if index < len(rest) - 1 else ''}"
        for index, (key, value) in enumerate(rest)
    ]
    return "\n".join([*lines, "}"])


def _describe_message(message: Mapping[str, Any]) -> str:
    role = str(message.get("role"))
    notes = []
    content = message.get("content", "")
    if content is None:
        notes.append("content null")
    elif isinstance(content, list):
        kinds = ",".join(str(part.get("type", "?")) if isinstance(part, Mapping) else "?" for part in content)
        notes.append(f"parts {kinds}")
    elif not isinstance(content, str):
        notes.append(f"content {type(content).__name__}")
    if "tool_calls" in message:
        notes.append(f"{len(message['tool_calls'])} tool call{'s' if len(message['tool_calls']) != 1 else ''}")
    notes.extend(key for key in message if key not in ("role", "content", "tool_calls"))
    return role + (f" ({'; '.join(notes)})" if notes else "")
