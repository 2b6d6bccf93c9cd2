"""relax(): what it rewrites, that nothing else changes, and the normalisation it renders."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from conftest import CORPUS_DIR, FIXTURES, ROLE_STRUCTURE_TEMPLATES, analysis_of, read_template, role_structure_corpus
from templatekit.environment import TemplateRaise, render
from templatekit.normalization import RolePolicy, normalize
from templatekit.probes.merge_policy import role_policy
from templatekit.rewrite import is_relaxed, relax
from templatekit.verification import verify

TEMPLATES = FIXTURES / "templates"
TOKENS = {"bos_token": "<s>", "eos_token": "</s>"}

# fixture -> (classes of the rewritten checks, where the template places system messages)
EXPECTED = {
    "parity_check.jinja": (["alternation"], "leading"),
    "namespace_counter.jinja": (["alternation", "role-unsupported"], "leading"),
    "one_based_parity.jinja": (["alternation"], "nowhere"),
    "system_refusal.jinja": (["system-role", "alternation"], "nowhere"),
    "previous_role_check.jinja": (["alternation"], "anywhere"),
    "macro_check.jinja": (["alternation"], "nowhere"),
    "else_branch_check.jinja": (["alternation"], "nowhere"),
    "elif_check.jinja": (["alternation"], "anywhere"),
    "system_anywhere.jinja": (["alternation"], "anywhere"),
    "crlf_parity.jinja": (["alternation"], "nowhere"),
    "flag_gated_check.jinja": (["alternation"], "nowhere"),
    "role_order.jinja": (["role-unsupported"], "anywhere"),
    "developer_handled.jinja": (["alternation"], "anywhere"),
}


def _fixture(name: str) -> str:
    return read_template(TEMPLATES / name)


def _corpus_template(name: str) -> str:
    path = CORPUS_DIR / f"{name}.jinja"
    if not path.exists():
        pytest.skip(f"corpus template {path.name} not found at {CORPUS_DIR}")
    return read_template(path)


def _render(text: str, messages: list[dict]) -> str:
    return render(text, messages, special_tokens=TOKENS)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_is_relaxed_with_the_expected_sites(name: str) -> None:
    classes, placement = EXPECTED[name]
    result = relax(_fixture(name))
    assert result.status == "relaxed"
    assert [site.check_class for site in result.sites] == classes
    assert result.policy is not None and result.policy.system_placement == placement


@pytest.mark.parametrize("name", sorted(EXPECTED))
@pytest.mark.parametrize("strategy", ["merge", "skip"])
def test_fixture_holds_under_verification(name: str, strategy: str) -> None:
    text = _fixture(name)
    result = verify(text, relax(text, strategy=strategy).text, normalize=strategy, examples=1000)  # type: ignore[arg-type]
    assert result.ok, (result.counterexample.summary, result.counterexample.to_json())  # type: ignore[union-attr]
    assert result.checks["fidelity"] >= 100, result.checks
    # skip leaves user and assistant runs apart, so the original refuses most normalised histories too
    assert result.checks["normalize"] >= (20 if strategy == "merge" else 0), result.checks


def test_a_template_that_handles_developer_keeps_developer_turns() -> None:
    text = _fixture("developer_handled.jinja")
    assert not role_policy(text).developer_as_system
    messages = [
        {"role": "developer", "content": "d"},
        {"role": "user", "content": "a"},
        {"role": "user", "content": "b"},
    ]
    assert render(relax(text).text, messages) == "[developer] d\n[user] a\n\nb\n"


@pytest.mark.parametrize("name", ["no_checks.jinja", "dead_check.jinja"])
def test_nothing_to_relax_leaves_the_text_alone(name: str) -> None:
    text = _fixture(name)
    result = relax(text)
    assert result.status == "unchanged" and result.text == text and not result.changed


@pytest.mark.parametrize("strategy", ["merge", "skip"])
def test_relax_is_idempotent(strategy: str) -> None:
    once = relax(_fixture("parity_check.jinja"), strategy=strategy)
    twice = relax(once.text, strategy=strategy)
    assert is_relaxed(once.text)
    assert twice.status == "already-relaxed" and twice.text == once.text


def test_crlf_line_endings_are_kept() -> None:
    result = relax(_fixture("crlf_parity.jinja"))
    assert result.text.count("\n") == result.text.count("\r\n")


def _bodies_with_edits_reverted(relaxed: str) -> list[str]:
    """The original's text as the relaxed one carries it (twice: once per pass), with the rewrite's
    own edits undone textually (no analysis involved): callee names, loop exits, flagged operands."""
    names = re.search(r"\{%- set (\w+)_state = namespace", relaxed).group(1)  # type: ignore[union-attr]
    opening = re.compile(rf"\{{%- (?:set {names}_out|macro {names}_second\(messages\)) %\}}(?:\r?\n(?=[ \t\r\n]))?")
    closing = re.compile(rf"\{{%\+? end(?:set|macro) %\}}\r?\n\{{%- (?:if not {names}_state\.rejected|set {names}_out)")
    bodies = []
    for start in opening.finditer(relaxed):
        end = closing.search(relaxed, start.end())
        assert end is not None
        body = relaxed[start.end() : end.start()]
        body = re.sub(rf"({names}_(?:reject|raise)\([^\n]*?\}}\}})\{{% break %\}}", r"\1", body)
        body = re.sub(rf"{names}_(?:flag|defer_if)\(\((.*?)\), .*?\)(?= or | and |\)| %\}})", r"\1", body)
        bodies.append(re.sub(rf"\b{names}_(reject|raise|defer)\(", "raise_exception(", body))
    return bodies


@pytest.mark.parametrize(
    "path",
    [*sorted(TEMPLATES.glob("*.jinja")), *sorted((FIXTURES / "adversarial").glob("*.jinja")), *role_structure_corpus()],
    ids=lambda path: path.name,
)
@pytest.mark.parametrize("strategy", ["merge", "skip"])
def test_everything_outside_the_rewritten_spots_is_byte_identical(path: Path, strategy: str) -> None:
    text = read_template(path)
    result = relax(text, strategy=strategy)
    assert result.status in ("relaxed", "unchanged"), result.reason
    if result.changed:
        original = text[:-2] if text.endswith("\r\n") else text[:-1] if text.endswith("\n") else text
        assert _bodies_with_edits_reverted(result.text) == [original, original]


def test_every_corpus_role_structure_check_is_rewritten(corpus: list[Path]) -> None:
    templates = role_structure_corpus()
    assert len(templates) == ROLE_STRUCTURE_TEMPLATES, [path.name for path in templates]
    for path in templates:
        expected = [
            site.index
            for site in analysis_of(path).sites
            if site.check_class in ("alternation", "system-role", "role-unsupported")
        ]
        for strategy in ("merge", "skip"):
            result = relax(read_template(path), strategy=strategy)
            assert result.status == "relaxed", (path.name, result.reason)
            assert [site.index for site in result.sites] == expected, path.name


# --- the prompts users get ---------------------------------------------------------------------


def test_gemma2_folds_a_system_message_into_the_first_user_turn() -> None:
    text = _corpus_template("google--gemma-2-2b-it")
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    with pytest.raises(TemplateRaise, match="System role not supported"):
        _render(text, messages)
    assert _render(relax(text).text, messages) == "<s><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n"


def test_mistral_takes_a_mid_conversation_system_message_as_user_text() -> None:
    text = _corpus_template("mistralai--Mistral-Nemo-Instruct-2407")
    messages = [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello"},
        {"role": "system", "content": "Answer in French."},
        {"role": "user", "content": "How are you?"},
    ]
    with pytest.raises(TemplateRaise):
        _render(text, messages)
    assert (
        _render(relax(text).text, messages)
        == "<s>[INST]Hi[/INST]Hello</s>[INST]Answer in French.\n\nHow are you?[/INST]"
    )
    skipped = _render(relax(text, strategy="skip").text, messages)
    assert "Answer in French." in skipped and "How are you?" in skipped


def test_llama2_reads_a_developer_message_as_its_system_prompt() -> None:
    text = _corpus_template("meta-llama--Llama-2-7b-chat-hf")
    messages = [{"role": "developer", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    with pytest.raises(TemplateRaise):
        _render(text, messages)
    expected = "<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST]"
    assert _render(relax(text).text, messages) == expected
    assert _render(relax(text, strategy="skip").text, messages) == expected


def test_skip_keeps_both_system_texts_of_a_system_run() -> None:
    text = _corpus_template("meta-llama--Llama-2-7b-chat-hf")
    messages = [
        {"role": "system", "content": "S1"},
        {"role": "system", "content": "S2"},
        {"role": "user", "content": "Hi"},
    ]
    assert _render(relax(text, strategy="skip").text, messages) == "<s>[INST] <<SYS>>\nS1\n\nS2\n<</SYS>>\n\nHi [/INST]"


def test_gemma3_decides_developer_per_conversation() -> None:
    text = _corpus_template("google--gemma-3-27b-it")
    relaxed = relax(text).text
    accepted = [{"role": "user", "content": "hi"}, {"role": "developer", "content": "be brief"}]
    assert _render(relaxed, accepted) == _render(text, accepted), "T renders it: R must render it the same"
    rejected = [{"role": "developer", "content": "dev"}, {"role": "user", "content": "u"}]
    assert _render(relaxed, rejected) == "<s><start_of_turn>user\ndev\n\nu<end_of_turn>\n"
    mid_system = [
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": "b"},
        {"role": "system", "content": "mid"},
        {"role": "user", "content": "c"},
    ]
    assert "<start_of_turn>system" not in _render(relaxed, mid_system)


def test_a_history_with_a_role_the_template_refuses_keeps_the_original_error() -> None:
    text = read_template(FIXTURES / "adversarial" / "negative_role_unsupported.jinja")
    messages = [{"role": "user", "content": "a"}, {"role": "tool", "content": "t"}]
    with pytest.raises(TemplateRaise) as original:
        _render(text, messages)
    with pytest.raises(TemplateRaise) as relaxed:
        _render(relax(text).text, messages)
    assert relaxed.value.template_message == original.value.template_message


def test_a_history_the_original_refuses_even_normalised_renders_cleanly() -> None:
    """[assistant, developer, developer]: N joins the two system messages but still opens with the
    assistant, which the template refuses; R renders the normalised history, nothing of its own."""
    text = read_template(FIXTURES / "adversarial" / "messages_as_json.jinja")
    messages = [
        {"role": "assistant", "content": "a"},
        {"role": "developer", "content": "b"},
        {"role": "developer", "content": "c"},
    ]
    assert (
        _render(relax(text).text, messages)
        == '[{"role": "assistant", "content": "a"}, {"role": "user", "content": "b\\n\\nc"}]'
    )
    assert (
        _render(relax(text, strategy="skip").text, messages)
        == '[{"role": "assistant", "content": "a"}, {"role": "user", "content": "b"}, {"role": "user", "content": "c"}]'
    )


def test_developer_everywhere_by_hand_fails_verification() -> None:
    text = _corpus_template("google--gemma-3-27b-it")
    mapped = relax(text).text.replace(
        "{%- set messages = tk_n.messages if tk_pass == 2 else messages %}",
        "{%- set messages = tk_n.messages if tk_pass == 2 else messages %}{%- set tk_developer = [] %}",
    )
    by_hand = (
        "{%- set tk_all = namespace(m=[]) %}{%- for tk_x in messages %}{% set tk_all.m = tk_all.m + "
        "[{'role': 'system' if tk_x.role == 'devel' ~ 'oper' else tk_x.role, 'content': tk_x.content}] %}"
        "{% endfor %}{%- set messages = tk_all.m %}" + mapped
    )
    result = verify(text, by_hand, normalize="merge", examples=300)
    assert not result.ok and result.counterexample.property == "fidelity"
    assert any(message["role"] == "developer" for message in result.counterexample.case.messages)


# --- normalize ---------------------------------------------------------------------------------


def test_normalize_joins_string_runs_with_a_blank_line() -> None:
    messages = [
        {"role": "user", "content": "a", "name": "x"},
        {"role": "user", "content": "b", "name": "y"},
        {"role": "assistant", "content": "c"},
    ]
    assert normalize(messages) == [
        {"role": "user", "content": "a\n\nb", "name": "x"},
        {"role": "assistant", "content": "c"},
    ]


def test_normalize_concatenates_parts_and_joins_touching_text_parts() -> None:
    first = {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "look"}]}
    second = {"role": "user", "content": "what is it?"}
    third = {"role": "user", "content": [{"type": "image"}]}
    assert normalize([first, second, third]) == [
        {
            "role": "user",
            "content": [{"type": "image"}, {"type": "text", "text": "look\n\nwhat is it?"}, {"type": "image"}],
        }
    ]


def test_normalize_never_merges_tool_traffic() -> None:
    call = {"role": "assistant", "content": None, "tool_calls": [{"function": {"name": "f", "arguments": "{}"}}]}
    messages = [
        {"role": "user", "content": "q"},
        call,
        {"role": "assistant", "content": "thinking"},
        {"role": "tool", "content": "1"},
        {"role": "tool", "content": "2"},
    ]
    assert normalize(messages) == messages


def test_normalize_missing_content_takes_the_other() -> None:
    merged = normalize([{"role": "assistant"}, {"role": "assistant", "content": "x"}])
    assert merged == [{"role": "assistant", "content": "x"}]


def test_normalize_does_not_modify_its_input() -> None:
    messages = [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]
    snapshot = [dict(message) for message in messages]
    normalize(messages)
    normalize(messages, "skip")
    assert messages == snapshot


def test_skip_joins_system_runs_only() -> None:
    messages = [
        {"role": "system", "content": "a"},
        {"role": "developer", "content": "b"},
        {"role": "user", "content": "c"},
        {"role": "user", "content": "d"},
    ]
    assert normalize(messages, "skip") == [{"role": "system", "content": "a\n\nb"}, *messages[2:]]


def test_normalize_returns_what_the_template_accepts_unchanged() -> None:
    text = _fixture("system_anywhere.jinja")
    messages = [{"role": "system", "content": "a"}, {"role": "system", "content": "b"}]
    assert normalize(messages, template=text) == messages


def test_the_policy_comes_from_the_ast_and_from_rendering() -> None:
    assert role_policy(_fixture("parity_check.jinja")) == RolePolicy(
        developer_as_system=True, system_placement="leading"
    )
    handles_developer = (
        "{% for m in messages %}{% if m.role == 'developer' %}[dev]{% endif %}{{ m.content }}{% endfor %}"
    )
    assert not role_policy(handles_developer).developer_as_system


def test_unknown_strategy_is_refused() -> None:
    with pytest.raises(ValueError):
        relax("{{ 1 }}", strategy="squash")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        normalize([], "squash")  # type: ignore[arg-type]
