"""relax(): what it rewrites, that nothing else changes, and normalize()'s merge semantics."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import FIXTURES, corpus_files, read_template
from templatekit.analysis import analyze
from templatekit.environment import render
from templatekit.rewrite import MergePolicy, is_relaxed, merge_policy, normalize, relax
from templatekit.syntax import parse

TEMPLATES = FIXTURES / "templates"

# fixture -> (edit kinds, merged roles)
EXPECTED = {
    "parity_check.jinja": (["check-removed"], ("user", "assistant", "system")),
    "namespace_counter.jinja": (["check-removed"], ("user", "assistant", "system")),
    "one_based_parity.jinja": (["check-removed"], ("user", "assistant", "system")),
    "system_refusal.jinja": (["check-removed"], ("user", "assistant", "system")),
    "previous_role_check.jinja": (["check-removed"], ("user", "assistant", "system")),
    "macro_check.jinja": (["check-removed"], ("user", "assistant", "system")),
    "else_branch_check.jinja": (["raise-removed"], ("user", "assistant", "system")),
    "elif_check.jinja": (["check-disabled"], ("user", "assistant")),
    "system_anywhere.jinja": (["check-removed"], ("user", "assistant")),
    "crlf_parity.jinja": (["check-removed"], ("user", "assistant", "system")),
    "flag_gated_check.jinja": (["check-removed"], ()),
}


def _fixture(name: str) -> str:
    return read_template(TEMPLATES / name)


def _alternation_corpus() -> list[Path]:
    return [path for path in corpus_files() if analyze(parse(read_template(path))).of_class("alternation")]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_is_relaxed_with_the_expected_edits(name: str) -> None:
    edits, roles = EXPECTED[name]
    result = relax(_fixture(name))
    assert result.status == "relaxed"
    assert [site.edit for site in result.sites] == edits
    assert result.policy is not None and result.policy.roles == roles
    assert not analyze(parse(result.text)).of_class("alternation") or edits == ["check-disabled"]


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


def test_skip_inserts_no_merge_block() -> None:
    result = relax(_fixture("parity_check.jinja"), strategy="skip")
    assert result.policy is None and "tk.merged" not in result.text
    messages = [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]
    assert render(result.text, messages) == "<turn>user\na<end>\n<turn>user\nb<end>\n"


def test_crlf_line_endings_are_kept() -> None:
    result = relax(_fixture("crlf_parity.jinja"))
    assert result.text.count("\n") == result.text.count("\r\n")


def _untouched_segments(text: str) -> list[str]:
    """The original text between the spans the rewrite is allowed to edit."""
    parsed = parse(text)
    spans = []
    for site in analyze(parsed).of_class("alternation"):
        guard = site.guard
        spans.append(guard.statement_span or guard.test_span if guard and guard.only_raise and
                     guard.branch == "body" else site.span)
    segments, start = [], 0
    for span in sorted(spans, key=lambda span: span.start):
        segments.append(text[start:span.start])
        start = span.end
    return [*segments, text[start:]]


@pytest.mark.parametrize("path", [*sorted(TEMPLATES.glob("*.jinja")), *_alternation_corpus()],
                         ids=lambda path: path.name)
@pytest.mark.parametrize("strategy", ["merge", "skip"])
def test_everything_outside_the_rewritten_spots_is_byte_identical(path: Path, strategy: str) -> None:
    text = read_template(path)
    result = relax(text, strategy=strategy)
    assert result.status in ("relaxed", "unchanged")
    if not result.changed:
        return
    position = result.text.index("#}") + 2  # after the header comment
    for segment in _untouched_segments(text):
        found = result.text.find(segment, position)
        assert found >= 0, f"untouched text changed near {segment[:60]!r}"
        position = found + len(segment)
    assert result.text.endswith(_untouched_segments(text)[-1])


@pytest.mark.parametrize("path", _alternation_corpus(), ids=lambda path: path.name)
def test_every_corpus_alternation_check_is_rewritten(path: Path) -> None:
    text = read_template(path)
    for strategy in ("merge", "skip"):
        result = relax(text, strategy=strategy)
        assert result.status == "relaxed", result.reason
        assert len(result.sites) == len(analyze(parse(text)).of_class("alternation"))


def test_two_users_in_a_row_render_merged() -> None:
    text = _fixture("parity_check.jinja")
    relaxed = relax(text).text
    messages = [{"role": "user", "content": "Hello"}, {"role": "user", "content": "Are you there?"}]
    assert render(relaxed, messages, special_tokens={"bos_token": "<bos>"}) == \
        "<bos><turn>user\nHello\n\nAre you there?<end>\n"


def test_leading_assistant_renders_instead_of_raising() -> None:
    relaxed = relax(_fixture("parity_check.jinja")).text
    output = render(relaxed, [{"role": "assistant", "content": "Hi"}, {"role": "user", "content": "Yo"}])
    assert output == "<turn>model\nHi<end>\n<turn>user\nYo<end>\n"


# --- normalize -----------------------------------------------------------------------------

def test_normalize_joins_string_runs_with_a_blank_line() -> None:
    messages = [{"role": "user", "content": "a", "name": "x"}, {"role": "user", "content": "b", "name": "y"},
                {"role": "assistant", "content": "c"}]
    assert normalize(messages) == [{"role": "user", "content": "a\n\nb", "name": "x"},
                                   {"role": "assistant", "content": "c"}]


def test_normalize_concatenates_parts_and_joins_touching_text_parts() -> None:
    first = {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "look"}]}
    second = {"role": "user", "content": "what is it?"}
    third = {"role": "user", "content": [{"type": "image"}]}
    assert normalize([first, second, third]) == [{"role": "user", "content": [
        {"type": "image"}, {"type": "text", "text": "look\n\nwhat is it?"}, {"type": "image"}]}]


def test_normalize_never_merges_tool_traffic() -> None:
    call = {"role": "assistant", "content": None, "tool_calls": [{"function": {"name": "f", "arguments": "{}"}}]}
    messages = [{"role": "user", "content": "q"}, call, {"role": "assistant", "content": "thinking"},
                {"role": "tool", "content": "1"}, {"role": "tool", "content": "2"}]
    assert normalize(messages) == messages


def test_normalize_missing_content_takes_the_other() -> None:
    merged = normalize([{"role": "assistant"}, {"role": "assistant", "content": "x"}])
    assert merged == [{"role": "assistant", "content": "x"}]


def test_normalize_does_not_modify_its_input_and_skip_is_identity() -> None:
    messages = [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]
    snapshot = [dict(message) for message in messages]
    normalize(messages)
    assert messages == snapshot
    assert normalize(messages, "skip") == messages


def test_normalize_follows_the_template_policy() -> None:
    text = _fixture("system_anywhere.jinja")
    messages = [{"role": "system", "content": "a"}, {"role": "system", "content": "b"}]
    assert merge_policy(text) == MergePolicy(("user", "assistant"), developer_as_system=False)
    assert normalize(messages, template=text) == messages


def test_flags_the_template_tests_are_probed_both_ways() -> None:
    text = _fixture("flag_gated_check.jinja")
    assert analyze(parse(text)).flags == {"allow_repeats"}
    messages = [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]
    assert normalize(messages, template=text) == messages
    relaxed = relax(text)
    assert render(relaxed.text, messages, allow_repeats=True) == render(text, messages, allow_repeats=True)
    assert relaxed.policy == MergePolicy(roles=()) and "tk.merged" not in relaxed.text, "nothing to merge: no block"


def test_developer_is_read_as_system_only_when_the_template_rejects_it() -> None:
    # parity_check renders any role name, so a developer turn it accepts must stay a developer turn
    assert not merge_policy(_fixture("parity_check.jinja")).developer_as_system
    assert merge_policy(_fixture("namespace_counter.jinja")).developer_as_system
    messages = [{"role": "developer", "content": "rules"}, {"role": "user", "content": "q"}]
    assert normalize(messages, template=_fixture("namespace_counter.jinja"))[0]["role"] == "system"


def test_unknown_strategy_is_refused() -> None:
    with pytest.raises(ValueError):
        relax("{{ 1 }}", strategy="squash")  # type: ignore[arg-type]
