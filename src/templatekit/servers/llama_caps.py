"""llama.cpp's template capability probe (``jinja::caps_get``), as a pure function on jinja2.

llama-server decides how to rewrite every request from these capabilities (list-of-parts or string
content, whether a leading system message is folded into the next one, object tool-call arguments,
...), so a rewrite that keeps prompts must keep them too.  Ported from ``common/jinja/caps.cpp`` of
llama.cpp as vendored by llama-cpp-python 0.3.36: the same seven probe renders, with inputs that
record what llama.cpp's runtime statistics record — a value is *used* when the template reads it
(member or index access, a filter or test applied to it, iteration, printing; ``tojson`` and
``string`` mark it deeply), and the ``test_is_string`` / ``selectattr`` / ``array_access``
operations on a message's ``content``.  Probes render in templatekit's sandbox.  The port is tested
against llama.cpp's own ``caps_get`` (through the engine driver) over the corpus; where the two
engines disagree on a probe render itself (a construct llama.cpp lacks), so can the capabilities.
"""

from __future__ import annotations

import dataclasses
import json
from functools import lru_cache
from typing import Any

from ..environment import render_compiled

__all__ = ["Caps", "llama_cpp_caps"]


@dataclasses.dataclass(frozen=True)
class Caps:
    """``jinja::caps``, with llama.cpp's defaults."""

    supports_tools: bool = True
    supports_tool_calls: bool = True
    supports_system_role: bool = True
    supports_parallel_tool_calls: bool = True
    supports_preserve_reasoning: bool = False
    supports_reasoning_effort: bool = False
    supports_string_content: bool = True
    supports_typed_content: bool = False
    supports_object_arguments: bool = False


class _Stats:
    """Which tracked values the template used, and the operations applied to each."""

    def __init__(self) -> None:
        self.used: set[int] = set()
        self.ops: dict[int, set[str]] = {}

    def use(self, value: Any, op: str | None = None, deep: bool = False) -> None:
        if isinstance(value, _TRACKED):
            self.used.add(id(value))
            if op is not None:
                self.ops.setdefault(id(value), set()).add(op)
        if deep and isinstance(value, dict):  # also through plain containers a filter built
            for item in dict.values(value):
                self.use(item, deep=True)
        elif deep and isinstance(value, (list, tuple)):
            for item in list.__iter__(value) if isinstance(value, list) else value:
                self.use(item, deep=True)


class _Str(str):
    stats: _Stats

    def __str__(self) -> str:
        self.stats.use(self)
        return str.__str__(self)

    def __iter__(self):  # llama.cpp cannot loop over a string: it records the access, then fails
        self.stats.use(self, "array_access")
        raise TypeError("Expected iterable or object type in for loop: got String")

    def __getitem__(self, index: Any) -> str:
        self.stats.use(self, "array_access" if isinstance(index, (int, slice)) else "object_access")
        return str.__getitem__(self, index)

    def __eq__(self, other: object) -> bool:
        self.stats.use(self)
        return str.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        self.stats.use(self)
        return str.__ne__(self, other)

    __hash__ = str.__hash__

    def __len__(self) -> int:
        self.stats.use(self)
        return str.__len__(self)

    def __add__(self, other: Any) -> str:
        self.stats.use(self)
        return str.__add__(self, other)

    def __contains__(self, item: Any) -> bool:
        self.stats.use(self)
        return str.__contains__(self, item)


class _Dict(dict):
    stats: _Stats

    def __getitem__(self, key: Any) -> Any:
        value = dict.__getitem__(self, key)
        self.stats.use(self, "object_access")
        self.stats.use(value)
        return value

    def get(self, key: Any, default: Any = None) -> Any:
        self.stats.use(self, "get")
        if dict.__contains__(self, key):
            value = dict.__getitem__(self, key)
            self.stats.use(value)
            return value
        return default


class _List(list):
    stats: _Stats

    def __iter__(self):
        self.stats.use(self, "array_access")
        return list.__iter__(self)

    def __getitem__(self, index: Any) -> Any:
        value = list.__getitem__(self, index)
        self.stats.use(self, "array_access")
        if not isinstance(index, slice):
            self.stats.use(value)
        return value

    def __len__(self) -> int:
        self.stats.use(self, "length")
        return list.__len__(self)


_TRACKED = (_Str, _Dict, _List)


def _track(value: Any, stats: _Stats) -> Any:
    if isinstance(value, str):
        tracked: Any = _Str(value)
    elif isinstance(value, dict):
        tracked = _Dict({key: _track(item, stats) for key, item in value.items()})
    elif isinstance(value, list):
        tracked = _List(_track(item, stats) for item in value)
    else:
        return value
    tracked.stats = stats
    return tracked


def _environment(stats: _Stats):
    """templatekit's sandbox with every filter and test recording its input (as llama.cpp's
    builtins do); ``tojson`` and ``string`` record it deeply."""
    from templatekit.environment import make_environment

    overlay = make_environment().overlay()

    def filter_(name: str, function: Any) -> Any:
        deep = name in ("tojson", "string")

        passes_state = hasattr(function, "jinja_pass_arg")  # the context/environment comes first

        def recorded(*args: Any, **kwargs: Any) -> Any:
            values = args[1:] if passes_state else args
            stats.use(values[0] if values else None, name, deep)
            return function(*args, **kwargs)

        if passes_state:
            recorded.jinja_pass_arg = function.jinja_pass_arg  # type: ignore[attr-defined]
        return recorded

    def test_(name: str, function: Any) -> Any:
        def recorded(value: Any, *args: Any) -> Any:
            stats.use(value, f"test_is_{name}")
            return function(value, *args)

        return recorded

    overlay.filters = {name: filter_(name, function) for name, function in overlay.filters.items()}
    overlay.tests = {name: test_(name, function) for name, function in overlay.tests.items()}
    return overlay


def _probe(
    template: str,
    messages: list[dict[str, Any]],
    tools: list[dict[str, Any]] | None = None,
    extra: dict[str, Any] | None = None,
) -> tuple[bool, Any, Any, dict[str, Any], str, _Stats]:
    """One ``caps_try_execute``: (success, messages, tools, context, output, stats)."""
    stats = _Stats()
    context = _track(
        {
            "messages": messages,
            "tools": tools or [],
            "bos_token": "",
            "eos_token": "",
            "add_generation_prompt": True,
            **(extra or {}),
        },
        stats,
    )
    variables = dict(dict.items(context))
    if "reasoning_effort" in variables:  # llama.cpp binds both names to one value
        variables["reasoning_strength"] = variables["reasoning_effort"]
    try:
        compiled = _environment(stats).from_string(template)
        output = render_compiled(compiled, variables)  # under the render budget, like every render
        success = True
    except Exception:  # noqa: BLE001 - llama.cpp ignores every failure of a probe render
        output, success = "", False
    return success, variables["messages"], variables["tools"], variables, output, stats


def _at(value: Any, *path: Any) -> Any:
    for key in path:
        value = dict.__getitem__(value, key) if isinstance(value, dict) else list.__getitem__(value, key)
    return value


_TOOLS = [
    {
        "name": "tool",
        "type": "function",
        "function": {
            "name": "tool1",
            "description": "Tool description",
            "parameters": {
                "type": "object",
                "properties": {"arg": {"type": "string", "description": "Arg description"}},
                "required": ["arg"],
            },
        },
    }
]


def _tool_conversation(arguments: Any, calls: int = 1) -> list[dict[str, Any]]:
    tool_calls = [
        {"id": f"call0000{index + 1}", "type": "function", "function": {"name": "tool1", "arguments": arguments}}
        for index in range(calls)
    ]
    return [
        {"role": "user", "content": "User message"},
        {"role": "assistant", "content": "", "tool_calls": tool_calls},
        {"role": "tool", "content": "Tool response", "tool_call_id": "call00001"},
        {"role": "assistant", "content": "The tool response was 'tool response'"},
        {"role": "user", "content": "User message"},
    ]


@lru_cache(maxsize=256)
def llama_cpp_caps(template: str) -> Caps:
    """What llama.cpp's ``caps_get`` reports for ``template`` (see the module docstring)."""
    result: dict[str, bool] = dataclasses.asdict(Caps())
    used = lambda stats, value: id(value) in stats.used  # noqa: E731
    ops = lambda stats, value: stats.ops.get(id(value), set())  # noqa: E731

    marker = "STRING_MARKER"
    success, messages, _, _, output, stats = _probe(template, [{"role": "user", "content": marker}])
    content = _at(messages, 0, "content")
    checks_for_string = "test_is_string" in ops(stats, content)
    as_array = bool({"selectattr", "array_access"} & ops(stats, content))
    if as_array:
        result["supports_typed_content"] = True
    if not success or (as_array and marker not in output):
        result["supports_string_content"] = False
    if checks_for_string:
        success, messages, _, _, _, stats = _probe(template, [{"role": "user", "content": []}])
        if success and {"selectattr", "array_access"} & ops(stats, _at(messages, 0, "content")):
            result["supports_typed_content"] = True

    _, messages, _, _, _, stats = _probe(
        template, [{"role": "system", "content": "System message"}, {"role": "user", "content": "User message"}]
    )
    if not used(stats, _at(messages, 0, "content")):
        result["supports_system_role"] = False

    success, messages, tools, _, _, stats = _probe(template, _tool_conversation({"arg": "value"}), _TOOLS)
    if success:
        if not used(stats, _at(tools, 0, "function", "name")):
            result["supports_tools"] = False
        if not used(stats, _at(messages, 1, "tool_calls")):
            result["supports_tool_calls"] = False
        elif used(stats, _at(messages, 1, "tool_calls", 0, "function", "arguments", "arg")):
            result["supports_object_arguments"] = True
    if not result["supports_object_arguments"]:
        success, messages, tools, _, _, stats = _probe(
            template, _tool_conversation(json.dumps({"arg": "value"})), _TOOLS
        )
        if not success:
            result["supports_tool_calls"] = result["supports_tools"] = False
        else:
            if not used(stats, _at(tools, 0, "function", "name")):
                result["supports_tools"] = False
            if not used(stats, _at(messages, 1, "tool_calls")):
                result["supports_tool_calls"] = False

    arguments: Any = {"arg": "value"} if result["supports_object_arguments"] else json.dumps({"arg": "value"})
    success, messages, _, _, _, stats = _probe(template, _tool_conversation(arguments, calls=2), _TOOLS)
    if not success or not used(stats, _at(messages, 1, "tool_calls", 1, "function")):
        result["supports_parallel_tool_calls"] = False

    placeholder = "<REASONING_CONTENT_PLACEHOLDER>"
    preserve = {
        "enable_thinking": True,
        "preserve_thinking": True,
        "clear_thinking": False,
        "truncate_history_thinking": False,
        "drop_thinking": False,
    }
    reasoning = [
        {"role": "user", "content": "User message"},
        {"role": "assistant", "content": "Assistant message", "reasoning_content": placeholder},
        {"role": "user", "content": "User message"},
        {"role": "assistant", "content": "Assistant message", "reasoning_content": "Reasoning content"},
        {"role": "user", "content": "User message"},
    ]
    _, _, _, _, output, _ = _probe(template, reasoning, extra=preserve)
    result["supports_preserve_reasoning"] = placeholder in output

    _, _, _, context, _, stats = _probe(
        template,
        [{"role": "user", "content": "User message"}],
        extra={"enable_thinking": True, "reasoning_effort": "low"},
    )
    result["supports_reasoning_effort"] = used(stats, context["reasoning_effort"])
    return Caps(**result)
