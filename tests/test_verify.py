"""verify(): planted differences are caught with minimal counterexamples; correct ones pass;
results are deterministic and independent of jobs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import CORPUS_DIR, FIXTURES, read_template
from small_tokenizer import write_tokenizer

from templatekit import TemplateRaise, render
from templatekit.rewrite import relax
from templatekit.sources import ChatTemplate
from templatekit.verification import CHUNK_SIZE, verify

STRICT_PATH = FIXTURES / "verify" / "strict.jinja"
STRICT = read_template(STRICT_PATH)
SKIP_RELAXED = read_template(FIXTURES / "verify" / "strict.relaxed.jinja")


@dataclass(frozen=True)
class Mutant:
    """The correct relaxed template with the last ``old`` replaced by ``new`` (a difference on a rare
    path; the original's text, which the relaxed one carries once per pass, changes in the first
    pass's copy, which comes last)."""

    name: str
    property: str
    old: str
    new: str

    def apply(self, relaxed: str) -> str:
        assert self.old in relaxed, f"{self.name}: {self.old!r} is not in the relaxed template"
        head, old, tail = relaxed.rpartition(self.old)
        return head + self.new + tail


# the merge block that relax() inserts: "\n" instead of "\n\n", and a merged message dropped
MERGE_NEWLINE = Mutant("merge-newline", "normalize", "tk_a ~ '\\n\\n' ~ tk_b %}", "tk_a ~ '\\n' ~ tk_b %}")
MERGE_PARTS_NEWLINE = Mutant(
    "merge-parts-newline",
    "normalize",
    "tk_a[-1].text ~ '\\n\\n' ~ tk_b[0].text",
    "tk_a[-1].text ~ '\\n' ~ tk_b[0].text",
)
MERGE_DROP = Mutant("dropped-message", "normalize", "[[tk_role, tk_c, tk_last[2], true, true]]", "[tk_last]")

MUTANTS: dict[str, list[Mutant]] = {  # per template; the first fidelity mutant also applies to "skip"
    "strict.jinja (ours)": [
        Mutant("list-whitespace", "fidelity", "{{ part.text }}", "{{ ' ' + part.text }}"),
        Mutant(
            "image-url-whitespace",
            "fidelity",
            "{{ '<|image|>' }}",
            "{{ '<|image|>' if part.type == 'image' else '<|image|> ' }}",
        ),
        Mutant(
            "dropped-message",
            "fidelity",
            "{%- for message in turns -%}",
            "{%- for message in turns if message.role != 'tool' -%}",
        ),
        MERGE_NEWLINE,
        MERGE_PARTS_NEWLINE,
    ],
    "google--gemma-3-27b-it.jinja": [
        Mutant("list-whitespace", "fidelity", "{{ item['text'] | trim }}", "{{ item['text'] | trim }}{{ ' ' }}"),
        MERGE_NEWLINE,
        MERGE_PARTS_NEWLINE,
        MERGE_DROP,
    ],
    "mistralai--Mistral-Nemo-Instruct-2407.jinja": [
        Mutant(
            "tool-result-whitespace", "fidelity", "'[TOOL_RESULTS]{\"content\": '", "'[TOOL_RESULTS]{\"content\":  '"
        ),
        Mutant(
            "dropped-message",
            "fidelity",
            '{%- for message in loop_messages %}\n    {%- if message["role"] == "user"',
            '{%- for message in loop_messages if message.role != "tool" %}\n    {%- if message["role"] == "user"',
        ),
        MERGE_NEWLINE,
    ],
    "meta-llama--Llama-2-7b-chat-hf.jinja": [
        Mutant("system-newline", "fidelity", "'\\n<</SYS>>\\n\\n'", "'\\n<</SYS>>\\n'"),
        Mutant(
            "dropped-message",
            "fidelity",
            "{% set system_message = messages[0]['content'] %}",
            "{% set system_message = '' %}",
        ),
        MERGE_NEWLINE,
    ],
}


def _original(name: str) -> str:
    if name == "strict.jinja (ours)":
        return STRICT
    path = CORPUS_DIR / name
    if not path.is_file():
        pytest.skip(f"real-template corpus not found at {CORPUS_DIR}")
    return read_template(path)


def _check_left_in_place(relaxed: str) -> str:
    """The relaxed template with its first deferred check raising again, as in the original."""
    frame, body = relaxed.split("{%- set tk_out %}", 1)
    assert "tk_reject(" in body
    return frame + "{%- set tk_out %}" + body.replace("tk_reject(", "raise_exception(", 1)


def _texts(messages: list[dict]) -> list[str]:
    return [
        part.get("text", "") if isinstance(part, dict) else part
        for message in messages
        for part in (message["content"] if isinstance(message.get("content"), list) else [message.get("content")])
        if isinstance(part, (dict, str))
    ]


@pytest.mark.parametrize("name", MUTANTS)
def test_correct_relaxed_template_passes_and_every_mutant_is_caught(name: str) -> None:
    original = _original(name)
    relaxed = relax(original, strategy="merge").text
    correct = verify(original, relaxed, normalize="merge")
    assert correct.ok and correct.checked == 500 and correct.counterexample is None
    assert correct.checks["fidelity"] > 100 and correct.checks["tolerance"] > 100 and correct.checks["normalize"] > 50
    mutants = [(mutant.name, mutant.property, mutant.apply(relaxed)) for mutant in MUTANTS[name]]
    mutants.append(("check-left-in-place", "tolerance", _check_left_in_place(relaxed)))
    for mutant_name, expected_property, mutant in mutants:
        result = verify(original, mutant, normalize="merge")
        example = result.counterexample
        assert not result.ok and example is not None, f"{name}: mutant {mutant_name} not caught"
        assert example.property == expected_property, (mutant_name, example.summary)
        messages = example.case.messages
        assert 1 <= len(messages) <= 2, (mutant_name, messages)
        assert all(text in ("", "a", "b") for text in _texts(messages)), (mutant_name, messages)
        assert example.case.add_generation_prompt is False and example.case.tools is None


@pytest.mark.parametrize("name", MUTANTS)
def test_skip_strategy_passes_and_its_planted_differences_are_caught(name: str) -> None:
    original = _original(name)
    relaxed = relax(original, strategy="skip").text
    assert verify(original, relaxed, normalize="skip").ok
    fidelity_mutant = next(mutant for mutant in MUTANTS[name] if mutant.property == "fidelity")
    for mutant, expected_property in (
        (fidelity_mutant.apply(relaxed), "fidelity"),
        (_check_left_in_place(relaxed), "tolerance"),
    ):
        result = verify(original, mutant, normalize="skip")
        assert not result.ok and result.counterexample.property == expected_property
        assert len(result.counterexample.case.messages) <= 2


def test_counterexamples_are_exactly_the_smallest_cases() -> None:
    original = _original("google--gemma-3-27b-it.jinja")
    relaxed = relax(original).text
    merge = verify(original, MERGE_NEWLINE.apply(relaxed), normalize="merge").counterexample
    assert merge.case.messages == ({"role": "user", "content": "a"}, {"role": "user", "content": "b"})
    assert merge.normalized == ({"role": "user", "content": "a\n\nb"},)
    assert merge.expected == "<s><start_of_turn>user\na\n\nb<end_of_turn>\n"
    assert merge.actual == "<s><start_of_turn>user\na\nb<end_of_turn>\n"
    assert merge.case.kwargs == {"bos_token": "<s>"}  # replayable from a bare .jinja file
    left = verify(original, _check_left_in_place(relaxed)).counterexample
    assert left.case.messages == ({"role": "assistant", "content": "a"},)
    assert left.error == "raise_exception('Conversation roles must alternate user/assistant/user/assistant/...')"
    assert left.expected is None and left.actual is None


def test_hand_relaxed_skip_template_keeps_fidelity_and_tolerance_but_does_not_merge() -> None:
    skipped = verify(STRICT, SKIP_RELAXED)
    assert skipped.ok and skipped.normalize is None and skipped.checks["normalize"] == 0
    assert verify(STRICT, SKIP_RELAXED, normalize="skip").ok
    merged = verify(STRICT, SKIP_RELAXED, normalize="merge")
    assert not merged.ok and merged.counterexample.property == "normalize"
    assert merged.counterexample.case.messages == ({"role": "user", "content": "a"}, {"role": "user", "content": "b"})


def test_other_raises_are_allowed_but_alternation_raises_are_not() -> None:
    # a relaxed template keeps checks of other classes: here an (invented) empty-content check
    empty_check = (
        "{%- for message in turns -%}\n{%- if message.content is string and message.content == '' -%}"
        "{{ raise_exception('Empty messages are not supported') }}{%- endif -%}"
    )
    original = STRICT.replace("{%- for message in turns -%}", empty_check)
    relaxed = relax(original).text
    with pytest.raises(TemplateRaise, match="Empty messages"):
        render(relaxed, [{"role": "user", "content": ""}])
    assert verify(original, relaxed).ok
    assert not verify(STRICT, STRICT).ok  # the original itself is not tolerant


IMAGE_URL = MUTANTS["strict.jinja (ours)"][1]


def test_same_seed_same_result_and_jobs_do_not_change_it() -> None:
    mutant = IMAGE_URL.apply(relax(STRICT).text)
    first = verify(STRICT, mutant, seed=8)
    assert first.checked > CHUNK_SIZE  # the failure is beyond the first chunk
    assert verify(STRICT, mutant, seed=8) == first
    assert verify(STRICT, mutant, seed=8, jobs=2) == first
    assert verify(STRICT, mutant, seed=1).checked != first.checked
    passing = verify(STRICT, relax(STRICT).text, examples=120, seed=3, normalize="merge")
    assert verify(STRICT, relax(STRICT).text, examples=120, seed=3, normalize="merge", jobs=2) == passing


def test_tokenizer_adds_the_token_diff(tmp_path: Path) -> None:
    tokenizer = write_tokenizer(tmp_path / "tok")
    original = ChatTemplate(text=STRICT, special_tokens={"bos_token": "<bos>"})
    result = verify(original, MERGE_NEWLINE.apply(relax(STRICT).text), normalize="merge", tokenizer=str(tokenizer))
    assert result.compared == "tokens"
    diff = result.counterexample.token_diff
    assert diff is not None and not diff.identical
    row = diff.rows[diff.first_divergence]
    assert row.left[2] != (row.right[2] if row.right else None)
    assert verify(STRICT, relax(STRICT).text, examples=50).compared == "text"


def test_options_are_checked() -> None:
    for options in ({"examples": 0}, {"seed": -1}, {"jobs": 0}, {"normalize": "squash"}, {"examples": True}):
        with pytest.raises(ValueError):
            verify(STRICT, STRICT, **options)


def test_a_template_drawing_at_random_verifies_as_a_function_of_its_input() -> None:
    """Its `random` draws are seeded alike for every render, so the same text never fails fidelity
    by chance (and a shrunk counterexample never stops failing)."""
    text = read_template(FIXTURES / "lint" / "random_greeting.jinja")
    for seed in range(5):
        result = verify(text, text, examples=100, seed=seed)
        assert result.ok, result.counterexample
