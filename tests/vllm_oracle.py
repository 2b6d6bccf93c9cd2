"""Build prompts with vLLM's own chat preprocessing: the oracle of the vLLM profile.

Run as ``.venv-vllm/bin/python tests/vllm_oracle.py < job.json``, so vLLM never shares a process
with templatekit. The job is ``{"model": folder, "templates": [path, ...], "cases": [...],
"now": ISO}``, cases being the objects of ``fixtures/conversations/parity.json``; ``model`` is a
folder written by ``tests/vllm_model.py`` (its tokenizer and config; no weights are read).

Every case goes the way a ``POST /v1/chat/completions`` body goes in ``vllm serve``: validated
into vLLM's ``ChatCompletionRequest`` (the template as the request's ``chat_template``, the
case's kwargs as ``chat_template_kwargs``), then ``OnlineRenderer.render_chat``: message parsing,
content-format detection, developer handling, kwargs filtering, the template rendered by
transformers, tokenization. The renderer is built as ``vllm serve`` builds it for a server started
with ``--trust-request-chat-template --enable-auto-tool-choice`` (a tool-call parser only adjusts
sampling, never the prompt, so none is loaded). transformers' ``strftime_now`` is pinned to
``now`` as in ``tests/transformers_oracle.py``.

Prints ``{"vllm": ..., "transformers": ..., "jinja2": ..., "outcomes": [[outcome per case] per
template]}``; an outcome is ``{"text": prompt}``, ``{"error": "module.QualName", "message": ...}``
for an error the template (or transformers' rendering) raised, or ``{"error": "rejected",
"message": ...}`` when vLLM refuses the request before any template runs (HTTP 400).
"""

from __future__ import annotations

import asyncio
import datetime as _datetime
import json
import sys
from typing import Any

from transformers_oracle import fix_clock  # this script's folder is on sys.path


def build_renderer(model: str) -> Any:
    from vllm.config import ModelConfig, VllmConfig
    from vllm.renderers.online_renderer import OnlineRenderer
    from vllm.renderers.registry import renderer_from_config

    model_config = ModelConfig(model=model, dtype="float32")
    return OnlineRenderer(
        model_config,
        renderer_from_config(VllmConfig(model_config=model_config)),
        request_logger=None,
        chat_template=None,
        chat_template_content_format="auto",
        trust_request_chat_template=True,
        enable_auto_tools=True,
    )


def request_body(template: str, case: dict[str, Any]) -> dict[str, Any]:
    body = {
        "model": "tiny",
        "messages": case["messages"],
        "chat_template": template,
        "add_generation_prompt": case.get("add_generation_prompt", False),
    }
    for key in ("tools", "documents"):
        if case.get(key) is not None:
            body[key] = case[key]
    if case.get("kwargs"):
        body["chat_template_kwargs"] = case["kwargs"]
    return body


def outcome_of_error(error: BaseException) -> dict[str, str]:
    """The template's own error when vLLM wrapped one (``raise ... from``), else a rejection."""
    from vllm.exceptions import VLLMValidationError

    if isinstance(error, VLLMValidationError) and error.__cause__ is not None:
        cause = error.__cause__
        return {"error": f"{type(cause).__module__}.{type(cause).__qualname__}", "message": str(cause)}
    return {"error": "rejected", "message": str(error)}


def render_case(online: Any, loop: asyncio.AbstractEventLoop, template: str, case: dict[str, Any]) -> dict[str, Any]:
    from vllm.entrypoints.openai.chat_completion.protocol import ChatCompletionRequest

    try:
        request = ChatCompletionRequest.model_validate(request_body(template, case))
        result = loop.run_until_complete(online.render_chat(request))
    except Exception as error:  # noqa: BLE001 - every error is an outcome to compare
        return outcome_of_error(error)
    if not isinstance(result, tuple):  # an ErrorResponse: the server's 400 before rendering
        return {"error": "rejected", "message": result.error.message}
    _conversation, (engine_input,) = result
    # an empty prompt is passed on as no tokens, without its text
    return {"text": engine_input["prompt"] if engine_input.get("prompt_token_ids") else ""}


def main() -> None:
    answer, sys.stdout = sys.stdout, sys.stderr  # vLLM logs (and prints) to stdout: keep it for the answer
    import jinja2
    import transformers
    import vllm

    job = json.load(sys.stdin)
    fix_clock(_datetime.datetime.fromisoformat(job["now"]))
    online = build_renderer(job["model"])
    loop = asyncio.new_event_loop()
    outcomes = []
    for path in job["templates"]:
        with open(path, encoding="utf-8", newline="") as handle:
            template = handle.read()
        # a fresh copy of every case, so no request can see another's mutations
        outcomes.append([render_case(online, loop, template, case) for case in json.loads(json.dumps(job["cases"]))])
    json.dump(
        {
            "vllm": vllm.__version__,
            "transformers": transformers.__version__,
            "jinja2": jinja2.__version__,
            "outcomes": outcomes,
        },
        answer,
        ensure_ascii=False,
    )


if __name__ == "__main__":
    main()
