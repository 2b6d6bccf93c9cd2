"""What the template renders, probed as minja/llama.cpp probe a template when they load it, and in
which formats it takes tools and writes tool calls."""

from __future__ import annotations

from collections.abc import Iterator

from ..analysis import uses_name
from ..findings import Severity
from ..probes import PROBE_TOOL, renders_tool, tool_call_format
from .context import LintContext
from .registry import Hit, rule


def _unsupported(context: LintContext, capability: str, what: str) -> Iterator[Hit]:
    results = context.capabilities
    if results is None or results[capability].supported is not False:
        return
    result = results[capability]
    site = context.analysis.sites[result.site] if result.site is not None else None
    yield Hit(
        f"{what}: {result.detail}",
        span=site.span if site else None,
        line=site.line if site else None,
        witness=result.witness,
    )


@rule("TK201", "system-role-not-rendered", Severity.INFO, renders=True)
def system_role_not_rendered(context: LintContext) -> Iterator[Hit]:
    """## What it does
    Renders `[system, user]` with a marker in the system message and reports when the
    marker is not in the output, because the template raises or silently ignores it
    (minja's `supports_system_role`).

    ## Why is this bad?
    Clients send system prompts as a matter of course. If the template refuses them the
    request fails; if it drops them the model never sees its instructions, and nobody
    notices.

    ## Example
    ```jinja
    {% for message in messages if message['role'] in ['user', 'assistant'] %}...{% endfor %}
    ```

    ## Use instead
    Render system messages, or fold them into the first user turn.

    ## Fix safety
    No automatic fix.
    """
    yield from _unsupported(context, "system-role", "a leading system message is not rendered")


@rule("TK202", "tools-not-rendered", Severity.INFO, renders=True)
def tools_not_rendered(context: LintContext) -> Iterator[Hit]:
    """## What it does
    Renders `[user]` with one tool definition and reports when the tool's name is not in
    the output (minja's `supports_tools`).

    ## Why is this bad?
    A server that passes `tools=` to this template gets a prompt without them: the model
    cannot call tools it was never shown. Fine for models without tool use; a surprise
    otherwise.

    ## Example
    A template that never reads `tools`.

    ## Use instead
    Render `tools` the way the model was trained (often in the system turn, as JSON).

    ## Fix safety
    No automatic fix.
    """
    formats = context.tool_formats
    if formats is not None and any(renders_tool(outcome) for outcome in formats.values()):
        return  # rendered in another format: TK209 says which
    yield from _unsupported(context, "tools", "tool definitions are not rendered")


@rule("TK203", "tool-calls-not-rendered", Severity.INFO, renders=True)
def tool_calls_not_rendered(context: LintContext) -> Iterator[Hit]:
    """## What it does
    Renders an assistant message with a tool call (arguments as an object and as a JSON
    string, content `""` and `null`, with and without `tools`) and reports when the call's
    name never reaches the output (minja's `supports_tool_calls`).

    ## Why is this bad?
    In a multi-turn agent conversation the model no longer sees which tools it called:
    the history it conditions on is wrong.

    ## Example
    ```jinja
    {{ '<|assistant|>' + message['content'] }}
    ```

    ## Use instead
    Render `message.tool_calls` in the model's tool-call format.

    ## Fix safety
    No automatic fix.
    """
    yield from _unsupported(context, "tool-calls", "assistant tool calls are not rendered")


@rule("TK204", "tool-results-not-rendered", Severity.INFO, renders=True)
def tool_results_not_rendered(context: LintContext) -> Iterator[Hit]:
    """## What it does
    Renders a tool call followed by a `tool` message with a marker in its content and
    reports when the marker is not in the output (minja's `supports_tool_responses`).

    ## Why is this bad?
    The model asked for a tool, and never sees the answer: it asks again, or invents one.

    ## Example
    ```jinja
    {% if message['role'] == 'user' %}...{% elif message['role'] == 'assistant' %}...{% endif %}
    ```

    ## Use instead
    Render `tool` messages (some models call the role `ipython` or `function`).

    ## Fix safety
    No automatic fix.
    """
    yield from _unsupported(context, "tool-results", "tool results are not rendered")


@rule("TK205", "content-parts-not-rendered", Severity.INFO, renders=True)
def content_parts_not_rendered(context: LintContext) -> Iterator[Hit]:
    """## What it does
    Renders a user message whose content is a list of parts
    (`[{"type": "text", "text": ...}]`, the OpenAI multimodal format) and reports when the
    text is not in the output.

    ## Why is this bad?
    Many clients always send list-of-parts content. The template then renders the Python
    representation of the list, drops the text, or fails.

    ## Example
    ```jinja
    {{ message['content'] }}
    ```

    ## Use instead
    ```jinja
    {% if message['content'] is string %}{{ message['content'] }}
    {% else %}{% for part in message['content'] if part['type'] == 'text' %}{{ part['text'] }}{% endfor %}{% endif %}
    ```

    ## Fix safety
    No automatic fix.
    """
    yield from _unsupported(context, "content-parts", "list-of-parts content is not rendered")


@rule("TK206", "generation-prompt-ignored", Severity.INFO, renders=True)
def generation_prompt_ignored(context: LintContext) -> Iterator[Hit]:
    """## What it does
    Renders `[user]` with `add_generation_prompt` false and true and reports when the two
    outputs are the same.

    ## Why is this bad?
    Servers set `add_generation_prompt=true` to open the assistant's turn. If the template
    ignores it, the model may continue the user's text instead of answering. It is by
    design in formats whose user turn already ends with the assistant's cue (Mistral's
    `[/INST]`); elsewhere it is a bug.

    ## Example
    ```jinja
    {% for message in messages %}<|{{ message['role'] }}|>{{ message['content'] }}{% endfor %}
    ```

    ## Use instead
    ```jinja
    {% for message in messages %}<|{{ message['role'] }}|>{{ message['content'] }}{% endfor %}
    {% if add_generation_prompt %}<|assistant|>{% endif %}
    ```

    ## Fix safety
    No automatic fix.
    """
    yield from _unsupported(context, "generation-prompt", "add_generation_prompt has no effect")


@rule("TK207", "required-variable", Severity.WARNING, renders=True)
def required_variable(context: LintContext) -> Iterator[Hit]:
    """## What it does
    Reports variables the caller must pass for the template to render at all: rendering
    `[user]` without them fails with `'NAME' is undefined`.

    ## Why is this bad?
    Servers pass only `messages`, `tools`, `add_generation_prompt` and the special tokens
    unless the request sets `chat_template_kwargs`. Every ordinary request fails.

    ## Example
    ```jinja
    {{ system_prompt + '\\nToday is ' + date }}
    ```

    ## Use instead
    Give the variable a default:
    ```jinja
    {{ system_prompt + '\\nToday is ' + (date | default('unknown')) }}
    ```

    ## Fix safety
    No automatic fix.
    """
    harness = context.harness
    if harness is None:
        return
    for name in harness.required_kwargs:
        node = uses_name(context.parsed, name)
        line = node.lineno if node is not None else None
        yield Hit(
            f"the template renders only when the caller passes {name!r} (chat_template_kwargs)",
            span=context.locate(line, name) if line else None,
            line=line,
        )


@rule("TK208", "render-error", Severity.ERROR, renders=True)
def render_error(context: LintContext) -> Iterator[Hit]:
    """## What it does
    Renders the simplest conversation, `[user]`, and reports an error that is not a
    `raise_exception` (an undefined attribute, a type error, a sandbox violation). A
    template that renders `[user]` only when tools are passed (a `tool_use` template, which
    servers select only for requests with tools) is not reported: every probe passes it a
    tool instead.

    ## Why is this bad?
    Every request fails with a server error rather than a deliberate, explained refusal.

    ## Example
    ```jinja
    {{ messages[0]['content'] + 1 }}
    ```

    ## Use instead
    Test the template on ordinary conversations (`templatekit render`).

    ## Fix safety
    No automatic fix.
    """
    harness = context.harness
    if harness is None:
        return
    witness = harness.witness([{"role": "user", "content": "hi"}])
    outcome = harness.run(witness)
    if outcome.error is not None:
        yield Hit(f"rendering [user] fails: {outcome.error}", witness=witness)


@rule("TK209", "openai-tools-unsupported", Severity.WARNING, renders=True)
def openai_tools_unsupported(context: LintContext) -> Iterator[Hit]:
    """## What it does
    Renders `[user]` with one tool written the OpenAI way
    (`{"type": "function", "function": {"name", "description", "parameters"}}`) and in the
    other formats model cards use (a bare function, Cohere's `parameter_definitions`), and
    reports a template that renders another format but not OpenAI's, naming the format it
    expects.

    ## Why is this bad?
    Servers pass the request's `tools` to the template as the client sent them, and OpenAI
    clients send the OpenAI format: the request fails (`'dict object' has no attribute
    'name'`) or the model never sees its tools.

    ## Example
    ```jinja
    {% for tool in tools %}{{ tool.name }}: {{ tool.description }}{% endfor %}
    ```

    ## Use instead
    ```jinja
    {% for tool in tools %}{% set tool = tool.function if tool.function is defined else tool %}
    {{ tool.name }}: {{ tool.description }}{% endfor %}
    ```

    ## Fix safety
    No automatic fix.
    """
    formats = context.tool_formats
    if formats is None:
        return
    openai, *others = formats
    expected = [name for name in others if renders_tool(formats[name])]
    if not renders_tool(formats[openai]) and expected:
        outcome = formats[openai]
        why = context.harness.describe(outcome) if not outcome.ok else "accepted but not in the output"
        yield Hit(
            f"OpenAI-format tools are not rendered ({why}); the template expects tools as {expected[0]}",
            witness=context.harness.witness([{"role": "user", "content": "tkprobe-user"}], tools=[PROBE_TOOL]),
        )


@rule("TK210", "tool-call-format", Severity.INFO, renders=True)
def tool_call_format_rule(context: LintContext) -> Iterator[Hit]:
    """## What it does
    Renders an assistant tool call, reads the text it adds to the prompt, and names the
    format (Hermes `<tool_call>` JSON, Mistral `[TOOL_CALLS]`, Llama 3 JSON, pythonic,
    Qwen3-Coder XML, GLM, Gemma 4, DeepSeek, gpt-oss harmony, Kimi K2, MiniMax M2, ...) with
    the matching `--tool-call-parser` of vLLM and of SGLang. Information, not a problem.

    ## Why is this bad?
    The model writes its tool calls in the format its template shows it; a server started
    with another parser (Qwen3-Coder served with `hermes`) returns them as plain text and
    the client never sees a tool call, one of the most reported tool-calling bugs.

    ## Example
    ```jinja
    {{ '<tool_call>\n' + {'name': call.function.name, 'arguments': call.function.arguments} | tojson + '\n</tool_call>' }}
    ```
    is the Hermes format: `vllm serve ... --tool-call-parser hermes`.

    ## Use instead
    Start the server with the parser this finding names.

    ## Fix safety
    Nothing to fix.
    """
    results = context.capabilities
    if results is None or not results["tool-calls"].supported:
        return
    found = tool_call_format(context.harness, results["tool-calls"].witness)
    if found is None:
        return
    if found.vllm is None and found.sglang is None:
        parsers = "no known vLLM or SGLang parser"
    else:
        parsers = (
            f"vLLM --tool-call-parser {found.vllm or '(none)'}, SGLang --tool-call-parser {found.sglang or '(none)'}"
        )
    shown = found.name if found.name != "unrecognised" else f"an unrecognised format ({found.rendered[:60]!r})"
    yield Hit(f"tool calls render in {shown}: {parsers}", witness=found.witness)
