"""The role policy of N (steps a and b of :mod:`templatekit.normalization`), learned by rendering.

Also which role-structure check of a template rejects a conversation: the trigger of N.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from ..analysis import ROLE_STRUCTURE, compared_roles
from ..cases import Case
from ..environment import DEFAULT_PROFILE, Profile
from ..normalization import DEVELOPER, RolePolicy
from .harness import DEFAULT_SPECIAL_TOKENS, text_harness

if TYPE_CHECKING:
    from datetime import datetime

    from ..analysis import RaiseSite
    from ..sources import ChatTemplate

__all__ = ["role_policy", "role_rejection"]

_MARKER = "tk-placed-system"


def role_policy(template: str | ChatTemplate) -> RolePolicy:
    """Steps a and b of N for ``template``: developer from its AST, system placement by rendering.

    A system message counts as placed where the template renders its text: at the start
    (``[system, user]``) and after other turns (``[user, assistant, system, user]``), rendered
    with the template's special tokens, else those verification renders with (so that relax and
    its verification learn the policy once).
    """
    from ..sources import ChatTemplate

    chat_template = template if isinstance(template, ChatTemplate) else ChatTemplate(text=template)
    tokens = chat_template.special_tokens or DEFAULT_SPECIAL_TOKENS
    return _role_policy(chat_template.text, tuple(sorted(tokens.items())))


@lru_cache(maxsize=128)
def _role_policy(text: str, special_tokens: tuple[tuple[str, str], ...]) -> RolePolicy:
    harness = text_harness(text, dict(special_tokens))

    def placed(*roles: str) -> bool:
        messages = [
            {"role": role, "content": _MARKER if role == "system" else f"{role} message {index}"}
            for index, role in enumerate(roles)
        ]
        outcome = harness.run(harness.witness(messages))
        return outcome.ok and _MARKER in outcome.output

    developer_as_system = DEVELOPER not in compared_roles(harness.parsed)
    if not placed("system", "user"):
        return RolePolicy(developer_as_system, "nowhere")
    if not placed("user", "assistant", "system", "user"):
        return RolePolicy(developer_as_system, "leading")
    return RolePolicy(developer_as_system, "anywhere")


def role_rejection(
    text: str,
    messages: Sequence[Mapping[str, Any]],
    *,
    tools: Sequence[Mapping[str, Any]] | None = None,
    add_generation_prompt: bool = False,
    variables: Mapping[str, Any] | None = None,
    special_tokens: Mapping[str, str] | None = None,
    profile: Profile = DEFAULT_PROFILE,
    now: datetime | None = None,
) -> RaiseSite | None:
    """The role-structure check of ``text`` that rejects this conversation, or ``None`` (it renders,
    or fails some other way)."""
    harness = text_harness(text, special_tokens, profile)
    witness = Case(
        tuple(messages), tuple(tools) if tools is not None else None, add_generation_prompt, dict(variables or {})
    )
    outcome = harness.run(witness, now=now)
    if outcome.site is None:
        return None
    site = harness.analysis.sites[outcome.site]
    return site if site.check_class in ROLE_STRUCTURE else None
