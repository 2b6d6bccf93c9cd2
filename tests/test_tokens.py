"""Tokenizer loading (file, folder, Hub via the fake Hub) and the token-by-token diff."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import run_templatekit
from small_tokenizer import tokenizer_json, write_tokenizer

from templatekit.errors import SourceNotFoundError, TokenizerError
from templatekit.tokens import Tokens, diff_tokens, format_token_diff, load_tokenizer

TOKENIZER_JSON = tokenizer_json()
GEMMA_LIKE = (
    "{{ bos_token }}{% for m in messages %}<start_of_turn>{{ m.role }}\n{{ m.content }}<end_of_turn>\n{% endfor %}"
)
CONFIG = json.dumps({"chat_template": GEMMA_LIKE, "bos_token": "<bos>"})
HUB_REPOS = {
    "org/model": {"revisions": {"main": {"tokenizer.json": TOKENIZER_JSON, "tokenizer_config.json": CONFIG}}},
    "org/no-tokenizer": {"revisions": {"main": {"tokenizer_config.json": CONFIG}}},
    "org/gated": {
        "revisions": {"main": {"tokenizer.json": TOKENIZER_JSON, "tokenizer_config.json": CONFIG}},
        "gated": True,
        "granted": {"hf_good"},
    },
}
HUB_TOKENS = {"hf_good"}


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("tokenizer")
    write_tokenizer(folder)
    return folder


def test_loads_from_file_folder_and_file_beside(tokenizer_dir: Path) -> None:
    config = tokenizer_dir / "tokenizer_config.json"
    config.write_text(CONFIG, encoding="utf-8")
    text = "<bos><start_of_turn>user\nhello<end_of_turn>\n"
    encodings = {
        str(source): load_tokenizer(str(source)).encode(text)
        for source in (tokenizer_dir / "tokenizer.json", tokenizer_dir, config)
    }
    assert len(set(encodings.values())) == 1


def test_special_tokens_are_single_tokens_and_pieces_join_back(tokenizer_dir: Path) -> None:
    tokenizer = load_tokenizer(str(tokenizer_dir))
    text = "<bos><start_of_turn>user\nhéllo 日本 🙂\n\n  \t<end_of_turn>\n"
    tokens = tokenizer.encode(text)
    assert tokens.pieces[:2] == ("<bos>", "<start_of_turn>")
    assert tokens.ids[0] == tokenizer.backend.token_to_id("<bos>")
    assert "<end_of_turn>" in tokens.pieces
    assert "".join(tokens.pieces) == text
    assert len(tokens.ids) == len(tokens.pieces)


def test_missing_and_broken_tokenizers_raise_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(TokenizerError, match="no tokenizer.json in"):
        load_tokenizer(str(tmp_path))
    broken = tmp_path / "tokenizer.json"
    broken.write_text("{not json", encoding="utf-8")
    with pytest.raises(TokenizerError, match="cannot load tokenizer from") as raised:
        load_tokenizer(str(broken))
    assert "\n" not in str(raised.value)
    with pytest.raises(SourceNotFoundError):
        load_tokenizer(str(tmp_path / "missing" / "tokenizer.json"))


def _tokens(*pairs: tuple[int, str]) -> Tokens:
    return Tokens(tuple(token_id for token_id, _ in pairs), tuple(piece for _, piece in pairs))


def test_diff_of_identical_tokens_has_no_divergence() -> None:
    same = _tokens((1, "a"), (2, "b"))
    diff = diff_tokens(same, same)
    assert diff.identical and diff.first_divergence is None
    assert [row.op for row in diff.rows] == ["equal", "equal"]
    assert format_token_diff(diff) == "tokens identical (2 tokens)"


def test_diff_aligns_ids_and_marks_the_first_divergence() -> None:
    expected = _tokens((0, "<bos>"), (5, "a"), (9, "\n\n"), (6, "b"), (2, "<end_of_turn>"))
    actual = _tokens((0, "<bos>"), (5, "a"), (8, "\n"), (6, "b"), (2, "<end_of_turn>"), (7, "x"))
    diff = diff_tokens(expected, actual)
    assert diff.first_divergence == 2
    assert diff.rows[2].op == "replace"
    assert diff.rows[2].left == (2, 9, "\n\n") and diff.rows[2].right == (2, 8, "\n")
    assert diff.rows[3].op == "equal"
    assert diff.rows[-1].op == "insert" and diff.rows[-1].left is None and diff.rows[-1].right == (5, 7, "x")
    text = format_token_diff(diff, left_label="ORIGINAL", right_label="RELAXED")
    lines = text.splitlines()
    assert lines[0].startswith("first token divergence at ORIGINAL token 2")
    marked = [line for line in lines if line.startswith(">>")]
    assert len(marked) == 1 and '"\\n\\n"' in marked[0] and '"\\n"' in marked[0]


def test_diff_of_a_dropped_token_is_a_delete_row() -> None:
    diff = diff_tokens(_tokens((1, "a"), (2, "b"), (3, "c")), _tokens((1, "a"), (3, "c")))
    assert [row.op for row in diff.rows] == ["equal", "delete", "equal"]
    assert diff.rows[1].right is None
    assert "-" in format_token_diff(diff).splitlines()[3]


def _write_conversation(tmp_path: Path) -> Path:
    path = tmp_path / "conv.json"
    path.write_text(json.dumps([{"role": "user", "content": "hello"}]), encoding="utf-8")
    return path


def test_tokenizer_from_the_hub(fake_hub, tmp_path: Path) -> None:
    conversation = _write_conversation(tmp_path)
    result = run_templatekit(
        "render",
        "org/model",
        "--messages",
        str(conversation),
        "--tokenizer",
        "org/model",
        env=fake_hub.environment(tmp_path),
    )
    assert result.returncode == 0, result.stderr.decode()
    output = result.stdout.decode()
    assert output.startswith("<bos><start_of_turn>user\nhello<end_of_turn>\n")
    assert '"<start_of_turn>"' in output and "tokens (org/model)" in output


def test_hub_errors_keep_their_exit_codes(fake_hub, tmp_path: Path) -> None:
    conversation = _write_conversation(tmp_path)
    env = fake_hub.environment(tmp_path)
    missing = run_templatekit(
        "render", "org/model", "--messages", str(conversation), "--tokenizer", "org/no-tokenizer", env=env
    )
    assert missing.returncode == 10
    assert "tokenizer.json" in missing.stderr.decode() and len(missing.stderr.decode().splitlines()) == 1
    gated = run_templatekit("render", "org/model", "--messages", str(conversation), "--tokenizer", "org/gated", env=env)
    assert gated.returncode == 4 and "gated" in gated.stderr.decode()
    granted = run_templatekit(
        "render",
        "org/model",
        "--messages",
        str(conversation),
        "--tokenizer",
        "org/gated",
        "--token",
        "hf_good",
        env=env,
    )
    assert granted.returncode == 0, granted.stderr.decode()
