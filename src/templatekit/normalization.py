"""The normalisation N: what a relaxed template renders instead of a conversation its original rejects.

For an original T and a conversation C that T rejects with a *role-structure* error (a check of
class ``alternation``, ``system-role`` or ``role-unsupported``), N(C) is C with

a. ``developer`` messages read as ``system``, unless T gives ``developer`` a meaning of its own
   (its AST compares a role with ``"developer"``);
b. the ``system`` messages T cannot place turned into ``user`` messages: all of them where T
   places no system message at all, those after the first non-system message where T places
   only leading ones (learned by rendering T, :func:`templatekit.probes.merge_policy.role_policy`);
c. runs of consecutive same-role messages joined: with ``merge`` user, system and assistant
   runs (assistants carrying ``tool_calls`` and tool messages never), with ``skip`` system runs
   only, so every user and assistant message keeps its own turn.  Texts are joined with
   ``"\\n\\n"``; where either content is a list of parts the parts are concatenated, and a text
   part ending the first touching a text part starting the second become one text part.  The
   first message of a run keeps its other keys.

Where T accepts C, nothing changes: :func:`normalize` returns C.  A relaxed template renders
exactly ``T(N(C))`` wherever T rejects C and accepts N(C), so a client that calls
:func:`normalize` before sending gets the prompt the server-side fix gives.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from .sources import ChatTemplate

__all__ = [
    "NORMALIZED_ROLES",
    "SEPARATOR",
    "STRATEGIES",
    "Strategy",
    "SystemPlacement",
    "RolePolicy",
    "check_strategy",
    "apply_policy",
    "merged_roles",
    "normalize",
]

Strategy = Literal["merge", "skip"]
STRATEGIES: tuple[Strategy, ...] = ("merge", "skip")
SystemPlacement = Literal["anywhere", "leading", "nowhere"]

NORMALIZED_ROLES = frozenset({"user", "assistant", "system", "developer"})
"""The roles of the histories a relaxed template never refuses for their structure."""

SEPARATOR = "\n\n"
"""Between the texts of merged messages (mistral_common's separator)."""

DEVELOPER = "developer"


@dataclass(frozen=True)
class RolePolicy:
    """What N does for one template: steps a and b above."""

    developer_as_system: bool = True
    system_placement: SystemPlacement = "anywhere"

    def describe(self) -> str:
        developer = (
            "developer read as system" if self.developer_as_system else "developer kept (the template handles it)"
        )
        systems = {
            "anywhere": "system messages kept where they stand",
            "leading": "system messages after the first other message become user messages",
            "nowhere": "system messages become user messages",
        }[self.system_placement]
        return f"{developer}; {systems}"


def check_strategy(strategy: str) -> None:
    """``ValueError`` unless ``strategy`` is one of :data:`STRATEGIES`."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; expected one of {', '.join(STRATEGIES)}")


def merged_roles(strategy: Strategy) -> tuple[str, ...]:
    """The roles whose runs ``strategy`` joins."""
    return ("user", "assistant", "system") if strategy == "merge" else ("system",)


def apply_policy(messages: Sequence[Mapping[str, Any]], strategy: Strategy, policy: RolePolicy) -> list[dict[str, Any]]:
    """N(C) for a template with ``policy`` (pure; the input is not modified)."""
    joined_roles = merged_roles(strategy)
    result: list[dict[str, Any]] = []
    seen_other = False
    for original in messages:
        message = dict(original)
        role = message.get("role")
        if policy.developer_as_system and role == DEVELOPER:
            role = "system"
        if role == "system" and (
            policy.system_placement == "nowhere" or (policy.system_placement == "leading" and seen_other)
        ):
            role = "user"
        if role != "system":
            seen_other = True
        if role != message.get("role"):
            message["role"] = role
        last = result[-1] if result else None
        if last is not None and _joinable(last, message, joined_roles):
            result[-1] = {**last, "content": _join(last.get("content"), message.get("content"))}
        else:
            result.append(message)
    return result


def _joinable(last: Mapping[str, Any], message: Mapping[str, Any], roles: Sequence[str]) -> bool:
    return (
        last.get("role") == message.get("role")
        and message.get("role") in roles
        and not last.get("tool_calls")
        and not message.get("tool_calls")
        and _joinable_value(last.get("content"))
        and _joinable_value(message.get("content"))
    )


def _joinable_value(content: Any) -> bool:
    return content is None or isinstance(content, (str, list, tuple))


def _join(first: Any, second: Any) -> Any:
    if first is None:
        return copy.deepcopy(second)
    if second is None:
        return copy.deepcopy(first)
    if isinstance(first, str) and isinstance(second, str):
        return first + SEPARATOR + second
    head = [{"type": "text", "text": first}] if isinstance(first, str) else list(first)
    tail = [{"type": "text", "text": second}] if isinstance(second, str) else list(second)
    if head and tail and _is_text_part(head[-1]) and _is_text_part(tail[0]):
        # str() and "" for a missing text mirror Jinja's ``~`` on any value and on undefined
        joined = {"type": "text", "text": _text(head[-1]) + SEPARATOR + _text(tail[0])}
        return head[:-1] + [joined] + tail[1:]
    return head + tail


def _text(part: Mapping[str, Any]) -> str:
    return str(part["text"]) if "text" in part else ""


def _is_text_part(part: Any) -> bool:
    return isinstance(part, Mapping) and part.get("type") == "text"


def normalize(
    messages: Sequence[Mapping[str, Any]],
    strategy: Strategy = "merge",
    *,
    template: str | ChatTemplate | None = None,
    tools: Sequence[Mapping[str, Any]] | None = None,
    add_generation_prompt: bool = False,
    **variables: Any,
) -> list[dict[str, Any]]:
    """N(C), the conversation a template relaxed with ``strategy`` renders for ``messages``.

    With ``template``, ``messages`` come back unchanged (as a copy) unless the template rejects
    them (with these ``tools``, ``add_generation_prompt`` and keyword ``variables``) by a
    role-structure check; then its role policy applies.  Without, N applies with
    developer read as system and system messages kept where they stand.
    """
    check_strategy(strategy)
    if template is None:
        return apply_policy(messages, strategy, RolePolicy())
    from .probes.merge_policy import role_policy, role_rejection
    from .sources import ChatTemplate

    chat_template = template if isinstance(template, ChatTemplate) else ChatTemplate(text=template)
    if (
        role_rejection(
            chat_template.text,
            messages,
            tools=tools,
            add_generation_prompt=add_generation_prompt,
            variables=variables,
            special_tokens=chat_template.special_tokens,
        )
        is None
    ):
        return [dict(message) for message in messages]
    return apply_policy(messages, strategy, role_policy(chat_template))
