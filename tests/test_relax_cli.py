"""`templatekit relax` end to end: real processes, real files, a real fake Hub on 127.0.0.1."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import CORPUS_DIR, FIXTURES, read_template
from fakehub import FakeHub
from templatekit.environment import render
from templatekit.rewrite import relax

PARITY = FIXTURES / "templates" / "parity_check.jinja"
GEMMA3 = CORPUS_DIR / "google--gemma-3-27b-it.jinja"
CLI = [sys.executable, "-c", "from templatekit_cli.main import main; main()"]


def run(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        input=stdin,
        timeout=120,
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], code: int) -> None:
    assert result.returncode == code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("templatekit: error:"), result.stderr
    assert "Traceback" not in result.stderr


def test_relax_writes_a_verified_template_and_says_how_to_serve_it(tmp_path: Path) -> None:
    out = tmp_path / "relaxed.jinja"
    result = run("relax", str(PARITY), "-o", str(out), "--examples", "200")
    assert result.returncode == 0, result.stderr
    assert "verified 200 conversations" in result.stderr
    assert f"--chat-template {out}" in result.stderr and "--chat-template-file" in result.stderr
    relaxed = out.read_text(encoding="utf-8")
    two_users = [{"role": "user", "content": "Hello"}, {"role": "user", "content": "Are you there?"}]
    assert render(relaxed, two_users) == "<turn>user\nHello\n\nAre you there?<end>\n"


def test_relax_to_stdout_is_the_exact_text(tmp_path: Path) -> None:
    result = run("relax", str(PARITY), "--no-verify", "--strategy", "skip")
    assert result.returncode == 0
    assert result.stdout.startswith("{# templatekit ") and read_template(PARITY)[-30:].rstrip("\n") in result.stdout
    assert result.stdout.endswith("{%- endif %}\n")


def test_nothing_to_relax_exits_0_with_identical_output(tmp_path: Path) -> None:
    source = FIXTURES / "templates" / "no_checks.jinja"
    out = tmp_path / "out.jinja"
    result = run("relax", str(source), "-o", str(out))
    assert result.returncode == 0 and "nothing to relax" in result.stderr
    assert out.read_bytes() == source.read_bytes()


def test_check_and_diff_never_write(tmp_path: Path) -> None:
    source = tmp_path / "t.jinja"
    shutil.copy(PARITY, source)
    check = run("relax", str(source), "--check", "--no-verify")
    assert check.returncode == 1 and "would relax" in check.stderr
    diff = run("relax", str(source), "--diff", "--no-verify")
    assert diff.returncode == 0 and diff.stdout.startswith("--- a/")
    assert '-        {{ raise_exception("Conversation roles must alternate' in diff.stdout
    assert '+        {{ tk_reject("Conversation roles must alternate' in diff.stdout
    assert source.read_bytes() == PARITY.read_bytes()
    assert sorted(path.name for path in tmp_path.iterdir()) == ["t.jinja"]


def test_refuses_to_overwrite_its_input(tmp_path: Path) -> None:
    source = tmp_path / "t.jinja"
    shutil.copy(PARITY, source)
    assert_one_line_error(run("relax", str(source), "-o", str(source), "--no-verify"), 9)
    assert source.read_bytes() == PARITY.read_bytes()


def test_in_place_keeps_a_backup(tmp_path: Path) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    config = {
        "bos_token": "<bos>",
        "chat_template": [
            {"name": "default", "template": read_template(PARITY)},
            {"name": "plain", "template": read_template(FIXTURES / "templates" / "no_checks.jinja")},
        ],
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
    result = run("relax", str(folder), "--all", "--in-place", "--examples", "100")
    assert result.returncode == 0, result.stderr
    assert json.loads((folder / "tokenizer_config.json.orig").read_text()) == config
    rewritten = json.loads((folder / "tokenizer_config.json").read_text())
    assert rewritten["bos_token"] == "<bos>"
    templates = {entry["name"]: entry["template"] for entry in rewritten["chat_template"]}
    assert (
        templates["default"].startswith("{# templatekit")
        and templates["plain"] == config["chat_template"][1]["template"]
    )


def test_tokenizer_config_format_keeps_named_templates(tmp_path: Path) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    config = {
        "eos_token": {"content": "</s>"},
        "chat_template": [
            {"name": "default", "template": read_template(PARITY)},
            {"name": "tool_use", "template": read_template(FIXTURES / "templates" / "namespace_counter.jinja")},
        ],
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
    out = tmp_path / "tokenizer_config.json"
    result = run("relax", str(folder), "--all", "--format", "tokenizer-config", "-o", str(out), "--examples", "100")
    assert result.returncode == 0, result.stderr
    written = json.loads(out.read_text())
    assert written["eos_token"] == {"content": "</s>"}
    assert [entry["name"] for entry in written["chat_template"]] == ["default", "tool_use"]
    assert all(entry["template"].startswith("{# templatekit") for entry in written["chat_template"])


def test_chat_template_json_format_holds_the_processor_template(tmp_path: Path) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "tokenizer_config.json").write_text(
        json.dumps({"chat_template": read_template(PARITY)}), encoding="utf-8"
    )
    processor = read_template(FIXTURES / "templates" / "namespace_counter.jinja")
    (folder / "chat_template.json").write_text(json.dumps({"chat_template": processor}), encoding="utf-8")
    out = tmp_path / "chat_template.json"
    result = run(
        "relax",
        str(folder),
        "--template-name",
        "processor",
        "--format",
        "chat-template-json",
        "-o",
        str(out),
        "--examples",
        "100",
    )
    assert result.returncode == 0, result.stderr
    written = json.loads(out.read_text(encoding="utf-8"))
    assert list(written) == ["chat_template"] and written["chat_template"].startswith("{# templatekit")
    assert relax(processor).text.split("#}", 1)[1] == written["chat_template"].split("#}", 1)[1]
    both = run("relax", str(folder), "--all", "--format", "chat-template-json", "-o", str(tmp_path / "both.json"))
    assert_one_line_error(both, 2)
    assert not (tmp_path / "both.json").exists()


def test_bad_inputs_give_one_line_and_a_distinct_code(tmp_path: Path) -> None:
    broken = tmp_path / "broken.jinja"
    broken.write_text("{% for m in messages %}{{ m.content }", encoding="utf-8")
    assert_one_line_error(run("relax", str(broken)), 8)
    assert_one_line_error(run("relax", str(tmp_path / "missing.jinja")), 3)
    bad_json = tmp_path / "tokenizer_config.json"
    bad_json.write_text('{"chat_template": "x",}', encoding="utf-8")
    assert_one_line_error(run("relax", str(bad_json)), 6)
    assert not (tmp_path / "out.jinja").exists()


@pytest.fixture(scope="module")
def gemma_hub():
    if not GEMMA3.is_file():
        pytest.skip(f"the Gemma 3 template is read from {GEMMA3} (clone with ../shared beside it)")
    config = {"bos_token": "<bos>", "eos_token": "<eos>", "chat_template": read_template(GEMMA3)}
    repos = {
        "google/gemma-3-12b-it": {
            "gated": True,
            "granted": {"hf_granted"},
            "revisions": {"main": {"tokenizer_config.json": json.dumps(config)}},
        }
    }
    with FakeHub(repos, tokens={"hf_granted", "hf_other"}) as hub:
        yield hub


def test_relax_gemma3_from_the_hub_end_to_end(gemma_hub: FakeHub, tmp_path: Path) -> None:
    env = {**gemma_hub.environment(tmp_path / "home"), "HF_TOKEN": "hf_granted"}
    out = tmp_path / "gemma3.jinja"
    result = run("relax", "google/gemma-3-12b-it", "-o", str(out), env=env)
    assert result.returncode == 0, result.stderr
    assert "vllm serve google/gemma-3-12b-it --chat-template" in result.stderr
    relaxed = out.read_text(encoding="utf-8")
    assert f"google/gemma-3-12b-it@{gemma_hub.commit('google/gemma-3-12b-it', 'main')}" in relaxed
    history = [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "Tell me a joke"},
        {"role": "user", "content": "Are you there?"},
    ]
    output = render(relaxed, history, special_tokens={"bos_token": "<bos>"}, add_generation_prompt=True)
    assert output.endswith("<start_of_turn>user\nTell me a joke\n\nAre you there?<end_of_turn>\n<start_of_turn>model\n")


def test_relax_gemma3_without_a_token_says_how_to_get_access(gemma_hub: FakeHub, tmp_path: Path) -> None:
    result = run(
        "relax", "google/gemma-3-12b-it", "-o", str(tmp_path / "g.jinja"), env=gemma_hub.environment(tmp_path / "home")
    )
    assert_one_line_error(result, 4)
    assert "token" in result.stderr.lower()
    assert not (tmp_path / "g.jinja").exists()


def test_relax_to_a_tokenizer_config_from_the_hub_reads_the_snapshot_only(gemma_hub: FakeHub, tmp_path: Path) -> None:
    def relax_from_the_hub(home: str, *args: str) -> int:
        """The number of Hub requests of one relax run with an empty cache."""
        before = len(gemma_hub.requests)
        result = run(
            "relax",
            "google/gemma-3-12b-it",
            "--no-verify",
            *args,
            env={**gemma_hub.environment(tmp_path / home), "HF_TOKEN": "hf_granted"},
        )
        assert result.returncode == 0, result.stderr
        return len(gemma_hub.requests) - before

    out = tmp_path / "tokenizer_config.json"
    jinja_requests = relax_from_the_hub("a", "-o", str(tmp_path / "g.jinja"))
    assert relax_from_the_hub("b", "--format", "tokenizer-config", "-o", str(out)) == jinja_requests
    written = json.loads(out.read_text(encoding="utf-8"))
    assert (written["bos_token"], written["eos_token"]) == ("<bos>", "<eos>")
    assert written["chat_template"] == (tmp_path / "g.jinja").read_text(encoding="utf-8")
