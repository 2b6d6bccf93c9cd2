"""Rendering probes: witnesses replay on the real renderer, capabilities, drops, clock, tokens."""

from __future__ import annotations

import json
import re

import pytest
from conftest import FIXTURES, read_template

from templatekit.analysis import analyze
from templatekit.cases import Case
from templatekit.environment import TemplateRaise, render
from templatekit.errors import MalformedFileError
from templatekit.probes import (
    PLACEHOLDER_TOKENS,
    capabilities,
    clock_dependence,
    eos_after_assistant,
    find_witnesses,
    harness_for,
    leading_bos_count,
    prefix_break,
    silent_drops,
)
from templatekit.syntax import parse

LINT = FIXTURES / "lint"


def probed(text: str, special_tokens: dict[str, str] | None = None):
    parsed = parse(text)
    analysis = analyze(parsed)
    return parsed, analysis, harness_for(parsed, analysis, special_tokens)


def replay(text: str, witness: Case) -> str:
    """Render a witness exactly as `templatekit render --messages` would: from its JSON."""
    case = json.loads(witness.to_json())
    return render(
        text,
        case["messages"],
        tools=case["tools"],
        add_generation_prompt=case["add_generation_prompt"],
        special_tokens=PLACEHOLDER_TOKENS,
        **case["kwargs"],
    )


def test_alternation_witness_is_minimal_and_replays() -> None:
    text = read_template(LINT / "strict.jinja")
    parsed, analysis, _ = probed(text)
    witnesses = find_witnesses(parsed, analysis)
    (site,) = analysis.sites
    witness = witnesses[site.index]
    assert [message["role"] for message in witness.messages] == ["assistant"]
    with pytest.raises(TemplateRaise, match="Conversation roles must alternate"):
        replay(text, witness)


def test_two_sites_with_the_same_message_are_told_apart() -> None:
    text = (
        "{% for m in messages %}{% if m['role'] == 'system' and not loop.first %}{{ raise_exception('bad') }}"
        "{% elif m['content'] is not string %}{{ raise_exception('bad') }}{% endif %}"
        "{{ m['content'] }}{% endfor %}"
    )
    parsed, analysis, harness = probed(text)
    witnesses = find_witnesses(parsed, analysis)
    first, second = analysis.sites
    assert [message["role"] for message in witnesses[first.index].messages] == ["user", "system"]
    assert witnesses[second.index].messages[0]["content"] is None
    # the instrumented render names the site; the message alone could not
    assert harness.run(witnesses[second.index]).site == second.index


def test_flag_set_inside_a_loop_never_fires_the_check_after_it() -> None:
    parsed, analysis, _ = probed(read_template(LINT / "dead_check.jinja"))
    assert find_witnesses(parsed, analysis) == {0: None}


def test_budget_bounds_the_search() -> None:
    parsed, analysis, harness = probed(read_template(LINT / "dead_check.jinja"))
    before = harness.renders
    find_witnesses(parsed, analysis, budget=25)
    assert harness.renders - before <= 25


def test_keyword_arguments_and_tools_come_from_the_condition() -> None:
    text = (
        "{% if enable_thinking is defined and enable_thinking is false %}"
        "{{ raise_exception('Disabling thinking is not supported.') }}{% endif %}"
        "{% if tools and tools[0].type != 'function' %}{{ raise_exception('only functions') }}{% endif %}"
        "{% for m in messages %}{{ m['content'] }}{% endfor %}"
    )
    parsed, analysis, _ = probed(text)
    witnesses = find_witnesses(parsed, analysis)
    thinking, tools = (witnesses[site.index] for site in analysis.sites)
    assert thinking.kwargs == {"enable_thinking": False} and thinking.messages == ()
    assert tools.tools is not None and tools.tools[0]["type"] != "function"
    for witness in (thinking, tools):
        with pytest.raises(TemplateRaise):
            replay(text, witness)


def test_required_variables_are_discovered_and_carried_by_witnesses() -> None:
    text = read_template(LINT / "required_variable.jinja")
    _, _, harness = probed(text)
    assert harness.required_kwargs == {"date_string": "tk-date_string"}
    witness = harness.witness([{"role": "user", "content": "hi"}])
    assert "Today is tk-date_string" in replay(text, witness)


def test_capabilities_of_a_plain_chatml_template() -> None:
    text = (
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    results = capabilities(probed(text)[2])
    assert results["system-role"].supported is True
    assert results["generation-prompt"].supported is True
    assert results["tools"].supported is False and results["tools"].detail == "accepted but not in the output"
    assert results["tool-results"].supported is True  # a tool message renders like any other
    # list content is printed as a Python list, which is not rendering it
    assert results["content-parts"].supported is False
    assert "Python representation" in results["content-parts"].detail


def test_capability_refused_by_a_raise_names_the_site() -> None:
    text = (
        "{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}"
        "{% for m in messages %}{{ m['content'] }}{% endfor %}"
    )
    result = capabilities(probed(text)[2])["system-role"]
    assert result.supported is False and result.site == 0
    assert result.detail == "raise_exception at line 1: 'System role not supported'"


def test_silent_drop_of_a_later_system_message() -> None:
    drops = silent_drops(probed(read_template(LINT / "silent_system_drop.jinja"))[2])
    assert [drop.description for drop in drops] == ["a system message at position 3"]
    assert drops[0].witness.messages[drops[0].message_index]["role"] == "system"


def test_clock_dependence_uses_two_fixed_clocks() -> None:
    assert clock_dependence(probed(read_template(LINT / "strftime_now.jinja"))[2]) is not None
    assert clock_dependence(probed(read_template(LINT / "strict.jinja"))[2]) is None


def test_random_filters_draw_the_same_on_every_probe_and_leave_the_caller_s_generator_alone() -> None:
    """Probes that compare two renders (prefix stability, content triggers) must not depend on chance."""
    import random

    text = read_template(LINT / "random_greeting.jinja")
    _, _, harness = probed(text)
    witness = harness.witness([{"role": "user", "content": "hi"}], add_generation_prompt=True)
    random.seed(1234)
    expected_next = random.random()
    random.seed(1234)
    outputs = {harness.run(witness).output for _ in range(30)}
    assert len(outputs) == 1
    assert random.random() == expected_next
    assert prefix_break(harness) is None


def test_leading_bos_count_and_eos_after_assistant() -> None:
    tokens = {"bos_token": "<s>", "eos_token": "</s>"}
    count, _ = leading_bos_count(probed(read_template(LINT / "double_bos.jinja"), tokens)[2])
    assert count == 2
    chatml = "{% for m in messages %}{{ m['content'] }}{% if m['role'] == 'assistant' %}</s>{% endif %}{% endfor %}"
    assert eos_after_assistant(probed(chatml, tokens)[2])[0] is True
    assert eos_after_assistant(probed(read_template(LINT / "strict.jinja"), tokens)[2])[0] is False


def test_witness_json_is_the_render_replay_format() -> None:
    witness = Case(
        ({"role": "user", "content": None},), tools=None, add_generation_prompt=True, kwargs={"enable_thinking": False}
    )
    assert json.loads(witness.to_json()) == {
        "messages": [{"role": "user", "content": None}],
        "tools": None,
        "add_generation_prompt": True,
        "kwargs": {"enable_thinking": False},
    }
    assert Case.from_json(witness.to_json()) == witness
    assert witness.describe() == "[user (content null)] with add_generation_prompt, enable_thinking=false"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('{"messages": "hi"}', 'a "messages" list'),
        ('[{"role": "user"}, 2]', 'a "messages" list'),
        ('{"messages": [], "kwargs": []}', '"kwargs" must be an object'),
        ('{"messages": [], "tools": {"name": "f"}}', '"tools" must be a list or null'),
        ('{"messages": [', "case.json:1:15: invalid JSON"),
    ],
)
def test_replay_files_are_checked_with_one_clear_error(text: str, problem: str) -> None:
    with pytest.raises(MalformedFileError, match=re.escape(problem)):
        Case.from_json(text, "case.json")
