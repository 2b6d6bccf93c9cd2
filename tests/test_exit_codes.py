"""The README's exit-code table is the single source: the CLI's help prints it verbatim, and
every command exits with its code for the same problem (invalid Jinja, a missing file,
malformed JSON, a usage error), with one line on stderr."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import FIXTURES, REPO_ROOT, run_templatekit

from templatekit_cli.report import EXIT_CODES_HELP

PARITY = str(FIXTURES / "templates" / "parity_check.jinja")


def readme_table() -> str:
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    return readme.split("## Exit codes", 1)[1].split("```", 2)[1].strip("\n")


def documented() -> dict[str, int]:
    """Meaning -> code, from the README."""
    pairs = re.findall(r"(\d+)\s+(.+?)(?=\s{2,}\d+\s|$)", readme_table(), flags=re.MULTILINE)
    return {meaning.strip(): int(code) for code, meaning in pairs}


def test_help_prints_the_readme_table_verbatim() -> None:
    assert EXIT_CODES_HELP.split("Exit codes:\n", 1)[1].rstrip("\n") == "\n".join(
        "  " + line for line in readme_table().splitlines()
    )
    shown = run_templatekit("relax", "--help")
    assert shown.returncode == 0 and "12 render budget exceeded (time/size)" in shown.stdout.decode()


CODES = documented()
SYNTAX, NOT_FOUND, MALFORMED, USAGE = (
    CODES["template is not valid Jinja"],
    CODES["not found (repo, revision, file)"],
    CODES["malformed JSON/GGUF input file"],
    CODES["usage error"],
)


def commands(source: str) -> dict[str, list[str]]:
    return {
        "show": ["show", source],
        "lint": ["lint", source],
        "relax": ["relax", source],
        "verify": ["verify", source, PARITY],
        "render": ["render", source, "--messages", "CONVERSATION"],
        "diff": ["diff", source, PARITY, "--messages", "CONVERSATION"],
    }


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("inputs")
    (folder / "invalid.jinja").write_text("{% for message in messages %}{{ message.content }}")
    (folder / "tokenizer_config.json").write_text('{"chat_template": "{{ messages }}",')
    (folder / "conversation.json").write_text('[{"role": "user", "content": "hi"}]')
    return folder


@pytest.mark.parametrize("command", list(commands("X")))
@pytest.mark.parametrize(
    ("problem", "source", "code"),
    [
        ("invalid Jinja", "invalid.jinja", SYNTAX),
        ("missing file", "missing.jinja", NOT_FOUND),
        ("malformed JSON", "tokenizer_config.json", MALFORMED),
    ],
)
def test_every_command_exits_with_the_documented_code(
    command: str, problem: str, source: str, code: int, inputs: Path
) -> None:
    args = [
        str(inputs / "conversation.json") if arg == "CONVERSATION" else arg
        for arg in commands(str(inputs / source))[command]
    ]
    result = run_templatekit(*args)
    stderr = result.stderr.decode()
    assert result.returncode == code, f"{command} on {problem}: {result.returncode}\n{stderr}"
    assert "Traceback" not in stderr
    if command == "lint" and code == SYNTAX:  # lint reports it as a finding, TK001, and exits 8
        assert b" TK001 invalid Jinja: " in result.stdout
    else:
        assert stderr.strip().splitlines()[-1].startswith("templatekit: error: ")


@pytest.mark.parametrize("command", [*commands("X"), "rule"])
def test_usage_errors_exit_2(command: str) -> None:
    result = run_templatekit(command, "--no-such-option")
    assert result.returncode == USAGE and b"No such option '--no-such-option'" in result.stderr
