"""Special tokens the template and the tokenizer disagree on: double BOS, missing EOS."""

from __future__ import annotations

from collections.abc import Iterator

from ..analysis import uses_name
from ..findings import Severity
from ..probes import eos_after_assistant, leading_bos_count
from .context import LintContext
from .registry import Hit, rule


@rule("TK501", "double-bos", Severity.WARNING, renders=True)
def double_bos(context: LintContext) -> Iterator[Hit]:
    """## What it does
    Renders `[user]` and reports an output that starts with `bos_token` twice, or that
    starts with it once while the tokenizer adds its own BOS (`add_bos_token: true` in
    tokenizer_config.json, when the source records it).

    ## Why is this bad?
    A server that tokenizes the rendered prompt with special tokens (llama.cpp, and
    `add_special_tokens=True` elsewhere) then feeds the model two BOS tokens, a sequence it
    never saw in training; quality drops quietly. llama.cpp warns about it at run time.

    ## Example
    ```jinja
    {{ bos_token }}{% for message in messages %}...{% endfor %}
    ```
    with `"add_bos_token": true` in tokenizer_config.json.

    ## Use instead
    Emit BOS in exactly one place: in the template (and set `add_bos_token: false`), or in
    the tokenizer (and drop `{{ bos_token }}` from the template).

    ## Fix safety
    No automatic fix. Tokenizers that add BOS through `tokenizer.json`'s post-processor
    rather than `add_bos_token` are not detected.
    """
    harness = context.harness
    if harness is None:
        return
    counted = leading_bos_count(harness)
    if counted is None or counted[0] == 0:
        return
    count, witness = counted
    node = uses_name(context.parsed, "bos_token")
    location = {"span": context.locate(node.lineno, "bos_token"), "line": node.lineno} if node is not None else {}
    if count >= 2:
        yield Hit(
            f"the output of {witness.describe()} starts with bos_token {count} times", witness=witness, **location
        )
    elif context.template.add_bos_token is True:
        yield Hit(
            "the template emits bos_token and the tokenizer adds one too (add_bos_token: true)",
            witness=witness,
            **location,
        )


@rule("TK502", "missing-eos", Severity.INFO, renders=True)
def missing_eos(context: LintContext) -> Iterator[Hit]:
    """## What it does
    Renders `[user, assistant, user]` and reports when the tokenizer's `eos_token` does not
    follow the assistant turn. Runs only when the source names the EOS token
    (tokenizer_config.json), not on a bare .jinja file.

    ## Why is this bad?
    Fine-tuning on these renderings never teaches the model to stop, and generation stops
    only if the serving stack knows another end-of-turn token. It is deliberate when the
    end-of-turn token is not the EOS token (Gemma's `<end_of_turn>`): check
    generation_config.json's `eos_token_id` lists it.

    ## Example
    ```jinja
    {{ '<|assistant|>\\n' + message['content'] + '\\n' }}
    ```

    ## Use instead
    ```jinja
    {{ '<|assistant|>\\n' + message['content'] + eos_token }}
    ```

    ## Fix safety
    No automatic fix.
    """
    harness = context.harness
    if harness is None or "eos_token" not in context.template.special_tokens:
        return
    checked = eos_after_assistant(harness)
    if checked is not None and not checked[0]:
        yield Hit(
            f"eos_token {harness.special_tokens['eos_token']!r} never follows an assistant turn "
            f"in {checked[1].describe()}",
            witness=checked[1],
        )
