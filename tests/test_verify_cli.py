"""`templatekit verify`, `render` and `diff` on the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import FIXTURES, read_template
from small_tokenizer import write_tokenizer

from templatekit.rewrite import relax
from templatekit_cli.main import cli

STRICT = FIXTURES / "verify" / "strict.jinja"
SKIP_RELAXED = FIXTURES / "verify" / "strict.relaxed.jinja"


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def merge_mutant(tmp_path: Path) -> Path:
    """strict.jinja relaxed with merge, then broken: runs joined with "\\n" instead of "\\n\\n"."""
    relaxed = relax(read_template(STRICT)).text.replace("tk_a ~ '\\n\\n' ~ tk_b %}", "tk_a ~ '\\n' ~ tk_b %}")
    path = tmp_path / "mutant.jinja"
    path.write_text(relaxed, encoding="utf-8")
    return path


def test_verify_passes_and_says_text_was_compared() -> None:
    code, out, _ = run("verify", str(STRICT), str(SKIP_RELAXED), "--examples", "200")
    assert code == 0
    assert out.startswith("ok: 200 conversations (seed 0)")
    assert "compared text (no --tokenizer given" in out


def test_verify_failure_prints_seed_and_a_replayable_counterexample(merge_mutant: Path, tmp_path: Path) -> None:
    saved = tmp_path / "case.json"
    code, out, _ = run(
        "verify",
        str(STRICT),
        str(merge_mutant),
        "--normalize",
        "merge",
        "--seed",
        "4",
        "--save-counterexample",
        str(saved),
    )
    assert code == 1
    assert "(seed 4;" in out and "normalize: RELAXED renders differently" in out
    case = json.loads(saved.read_text(encoding="utf-8"))
    assert case["messages"] == [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]
    printed = out[out.index("{\n") : out.index("\n}\n") + 2]
    assert json.loads(printed) == case
    assert "\n a\n-\n b<|end|>\n" in out  # the unified text diff: the blank line between a and b is lost

    code, replay, _ = run("render", str(merge_mutant), "--messages", str(saved))
    assert code == 0 and replay == "<s><|user|>\na\nb<|end|>\n"
    code, diff, _ = run("diff", str(SKIP_RELAXED), str(merge_mutant), "--messages", str(saved))
    assert code == 1
    assert diff.splitlines()[:2] == [
        'A: "<s><|user|>\\na<|end|>\\n<|user|>\\nb<|end|>\\n"',
        'B: "<s><|user|>\\na\\nb<|end|>\\n"',
    ]
    assert "--- A\n+++ B\n" in diff


def test_verify_jobs_gives_the_same_report(merge_mutant: Path) -> None:
    one = run("verify", str(STRICT), str(merge_mutant), "--normalize", "merge", "--seed", "9")
    two = run("verify", str(STRICT), str(merge_mutant), "--normalize", "merge", "--seed", "9", "--jobs", "2")
    assert one == two and one[0] == 1


def test_verify_with_a_tokenizer_prints_the_token_diff(merge_mutant: Path, tmp_path: Path) -> None:
    tokenizer = write_tokenizer(tmp_path / "tok")
    code, out, _ = run("verify", str(STRICT), str(merge_mutant), "--normalize", "merge", "--tokenizer", str(tokenizer))
    assert code == 1
    assert "compared text and token ids" in out
    assert "first token divergence" in out and "\n>> " in out


def test_render_accepts_a_list_of_messages_and_prints_tokens(tmp_path: Path) -> None:
    conversation = tmp_path / "conv.json"
    conversation.write_text(
        json.dumps(
            [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": [{"type": "text", "text": "Look"}, {"type": "image"}]},
            ]
        ),
        encoding="utf-8",
    )
    code, out, _ = run("render", str(STRICT), "--messages", str(conversation), "--add-generation-prompt")
    assert code == 0
    assert out == "<s><|system|>\nBe brief.<|end|>\n<|user|>\nLook<|image|><|end|>\n<|assistant|>\n"
    tokenizer = write_tokenizer(tmp_path / "tok")
    code, out, _ = run("render", str(STRICT), "--messages", str(conversation), "--tokenizer", str(tokenizer.parent))
    assert code == 0
    prompt, tokens = out.split("\n--- ", 1)
    assert prompt == "<s><|system|>\nBe brief.<|end|>\n<|user|>\nLook<|image|><|end|>\n"
    assert tokens.splitlines()[1].split()[2] == '"<s>"'


def test_render_of_a_rejected_conversation_exits_1(tmp_path: Path) -> None:
    conversation = tmp_path / "conv.json"
    conversation.write_text(
        json.dumps([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]), encoding="utf-8"
    )
    code, out, err = run("render", str(STRICT), "--messages", str(conversation))
    assert code == 1 and out == ""
    assert "Conversation roles must alternate" in err


def test_diff_of_identical_outputs_exits_0(tmp_path: Path) -> None:
    conversation = tmp_path / "conv.json"
    conversation.write_text(json.dumps({"messages": [{"role": "user", "content": "a"}]}), encoding="utf-8")
    code, out, _ = run("diff", str(STRICT), str(SKIP_RELAXED), "--messages", str(conversation))
    assert code == 0 and out.startswith("identical")


@pytest.mark.parametrize(
    ("content", "code", "message"),
    [
        (None, 3, "no such messages file"),
        ("[{", 6, "invalid JSON"),
        ('{"conversation": []}', 6, "expected a list of message objects"),
        ('{"messages": [], "kwargs": []}', 6, '"kwargs" must be an object'),
    ],
)
def test_bad_messages_files(tmp_path: Path, content: str | None, code: int, message: str) -> None:
    path = tmp_path / "conv.json"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    exit_code, out, err = run("render", str(STRICT), "--messages", str(path))
    assert exit_code == code and out == ""
    assert err.startswith("templatekit: error:") and message in err and len(err.splitlines()) == 1


def test_input_errors(tmp_path: Path) -> None:
    broken = tmp_path / "broken.jinja"
    broken.write_text("{% if %}", encoding="utf-8")
    assert run("verify", str(broken), str(STRICT))[0] == 8
    assert run("verify", str(tmp_path / "missing.jinja"), str(STRICT))[0] == 3
    code, _, err = run("verify", str(STRICT), str(STRICT), "--tokenizer", str(tmp_path))
    assert code == 10 and "tokenizer.json" in err
    assert run("verify", str(STRICT), str(STRICT), "--examples", "0")[0] == 2


@pytest.mark.parametrize("command", ["verify", "render", "diff"])
def test_help_teaches_with_examples(command: str) -> None:
    code, out, _ = run(command, "--help")
    assert code == 0 and "Examples:" in out and "Exit codes:" in out
