"""``templatekit lint`` and ``templatekit rule`` as a user runs them (fresh interpreter each time)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import FIXTURES, REPO_ROOT, run_templatekit
from fakehub import FakeHub, files_from_folder
from templatekit_cli.lint import LintReport

from templatekit.config import load_config
from templatekit.errors import ConfigError
from templatekit.findings import Finding, Severity

LINT = FIXTURES / "lint"
STRICT = str(LINT / "strict.jinja")
CLEAN = str(LINT / "clean.jinja")
HEAVY = ("huggingface_hub", "hypothesis", "transformers", "tokenizers")
HUB_REPOS = {
    "org/strict": {"revisions": {"main": {"chat_template.jinja": (LINT / "strict.jinja").read_bytes()}}},
    "org/named": {"revisions": {"main": files_from_folder(FIXTURES / "sources" / "config-list")}},
}


def run_in(folder: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    """The CLI run from ``folder`` (where pyproject.toml discovery starts)."""
    return subprocess.run(
        [sys.executable, "-c", "from templatekit_cli.main import main; main()", *args],
        capture_output=True,
        timeout=60,
        cwd=folder,
    )


def test_clean_template_exits_0() -> None:
    # TK210 (information: the tool-call format and its server parsers) is the only line
    result = run_templatekit("lint", CLEAN)
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode().splitlines()[-1] == "Found 1 finding (1 info)." and b"TK210" in result.stdout
    result = run_templatekit("lint", CLEAN, "--ignore", "TK210")
    assert result.stdout.decode() == "No findings.\n" and result.stderr == b""


def test_findings_at_or_above_fail_on_exit_1() -> None:
    result = run_templatekit("lint", STRICT)
    assert result.returncode == 1
    lines = result.stdout.decode().splitlines()
    assert (
        f"{STRICT}:13:12: TK101 role-alternation check fails on [assistant]: raise_exception("
        "'Conversation roles must alternate user/assistant/user/assistant/...')" in lines
    )
    assert "  help: `templatekit relax` rewrites it to merge (or skip) consecutive same-role messages" in lines
    assert "\x1b[" not in result.stdout.decode(), "no colour when stdout is not a terminal"
    assert run_templatekit("lint", STRICT, "--fail-on", "error").returncode == 0
    assert run_templatekit("lint", STRICT, "--fail-on", "info").returncode == 1


def test_syntax_error_is_a_finding_with_line_and_column() -> None:
    result = run_templatekit("lint", str(LINT / "syntax_error.jinja"))
    assert result.returncode == 8 and result.stderr == b""
    assert result.stdout.decode().startswith(f"{LINT / 'syntax_error.jinja'}:3:1: TK001 invalid Jinja: ")


def test_select_ignore_and_unknown_codes() -> None:
    result = run_templatekit("lint", STRICT, "--select", "TK1,TK2", "--ignore", "alternation-check")
    assert result.returncode == 0, result.stdout
    assert "TK101" not in result.stdout.decode() and "TK202" in result.stdout.decode()
    bad = run_templatekit("lint", STRICT, "--select", "TK999")
    assert bad.returncode == 2
    assert bad.stderr.decode().startswith("templatekit: error: unknown rule selector(s): TK999")


def test_formats_json_sarif_github() -> None:
    document = json.loads(run_templatekit("lint", STRICT, "--format", "json").stdout)
    assert document["schema"] == "templatekit-lint" and document["summary"]["warning"] == 1
    sarif = json.loads(run_templatekit("lint", STRICT, "--format", "sarif").stdout)
    assert sarif["version"] == "2.1.0" and any(result["ruleId"] == "TK101" for result in sarif["runs"][0]["results"])
    annotations = run_templatekit("lint", STRICT, "--format", "github").stdout.decode().splitlines()
    assert (
        f"::warning file={STRICT},line=13,col=12,endLine=13,endColumn=98,title=TK101::"
        "role-alternation check fails" in "\n".join(annotations)
    )


def test_witness_replays_with_templatekit_render(tmp_path: Path) -> None:
    document = json.loads(run_templatekit("lint", STRICT, "--format", "json", "--select", "TK101").stdout)
    case = tmp_path / "case.json"
    case.write_text(json.dumps(document["findings"][0]["witness"]))
    result = run_templatekit("render", STRICT, "--messages", str(case))
    assert result.returncode != 0
    assert "Conversation roles must alternate" in result.stderr.decode()


def test_output_file_is_written_atomically(tmp_path: Path) -> None:
    target = tmp_path / "report.sarif"
    result = run_templatekit("lint", STRICT, "--format", "sarif", "-o", str(target))
    assert result.returncode == 1 and result.stdout == b""
    assert json.loads(target.read_text())["version"] == "2.1.0"
    assert [path.name for path in tmp_path.iterdir()] == ["report.sarif"]


def test_tokenizer_config_lints_every_named_template() -> None:
    config = str(FIXTURES / "sources" / "config-list" / "tokenizer_config.json")
    document = json.loads(run_templatekit("lint", config, "--format", "json").stdout)
    assert {finding["template_name"] for finding in document["findings"]} == {"default", "tool_use", "rag"}
    only = json.loads(run_templatekit("lint", config, "--format", "json", "--template-name", "rag").stdout)
    assert {finding["template_name"] for finding in only["findings"]} == {"rag"}
    unknown = run_templatekit("lint", config, "--template-name", "nope")
    assert unknown.returncode == 7


def test_folder_of_templates_lints_each_file(tmp_path: Path) -> None:
    for name in ("strict.jinja", "clean.jinja"):
        shutil.copy(LINT / name, tmp_path / name)
    (tmp_path / "notes.txt").write_text("not a template")
    result = run_templatekit("lint", str(tmp_path), "--select", "TK101")
    assert result.returncode == 1
    assert result.stdout.decode().splitlines()[0].startswith(f"{tmp_path / 'strict.jinja'}:13:12: TK101")


def test_pyproject_settings_and_command_line_overrides(tmp_path: Path) -> None:
    shutil.copy(LINT / "strict.jinja", tmp_path / "strict.jinja")
    (tmp_path / "pyproject.toml").write_text('[tool.templatekit]\nignore = ["TK101"]\nfail-on = "info"\n')
    nested = tmp_path / "sub"
    nested.mkdir()
    result = run_in(nested, "lint", "../strict.jinja")
    assert "TK101" not in result.stdout.decode()
    assert result.returncode == 1, "fail-on = info: the info findings fail"
    assert run_in(nested, "lint", "../strict.jinja", "--fail-on", "warning").returncode == 0
    (tmp_path / "pyproject.toml").write_text('[tool.templatekit]\nfail-on = "fatal"\n')
    bad = run_in(nested, "lint", "../strict.jinja")
    assert bad.returncode == 2 and "fail-on must be one of error, warning, info" in bad.stderr.decode()


def test_input_errors_have_their_own_exit_codes(tmp_path: Path) -> None:
    missing = run_templatekit("lint", str(tmp_path / "nope.jinja"))
    assert missing.returncode == 3 and missing.stderr.decode().startswith("templatekit: error: ")
    assert b"Traceback" not in missing.stderr
    assert missing.stdout == b"" and missing.stderr.count(b"\n") == 1  # one line, no "No findings." for nothing linted
    malformed = run_templatekit("lint", str(FIXTURES / "sources" / "malformed" / "tokenizer_config.json"))
    assert malformed.returncode == 6
    no_template = tmp_path / "tokenizer_config.json"
    no_template.write_text('{"eos_token": "</s>"}')
    assert run_templatekit("lint", str(no_template)).returncode == 7
    skipped = run_templatekit("lint", str(no_template), CLEAN, "--missing-ok")
    assert skipped.returncode == 0 and skipped.stderr.decode().startswith("templatekit: skipped: ")


def test_hub_repo_through_the_real_client(fake_hub: FakeHub, tmp_path: Path) -> None:
    environment = fake_hub.environment(tmp_path / "hf")
    result = run_templatekit("lint", "org/strict", "--select", "TK101", env=environment)
    assert result.returncode == 1, result.stderr
    commit = fake_hub.commit("org/strict")
    assert result.stdout.decode().startswith(f"org/strict@{commit}:chat_template.jinja:13:12: TK101 ")
    named = run_templatekit("lint", "org/named", "--format", "json", env=environment)
    assert {item["template_name"] for item in json.loads(named.stdout)["findings"]} == {"default", "tool_use", "rag"}


def test_stdin() -> None:
    result = run_templatekit("lint", "-", "--select", "TK101", stdin=(LINT / "strict.jinja").read_bytes())
    assert result.returncode == 1 and result.stdout.decode().startswith("<stdin>:13:12: TK101")


def test_lint_of_a_jinja_file_imports_nothing_heavy() -> None:
    code = (
        "import sys; sys.argv = ['templatekit', 'lint', %r]\n"
        "from templatekit_cli.main import cli\n"
        "try:\n    cli()\nexcept SystemExit:\n    pass\n"
        "print(sorted(name for name in sys.modules if name.split('.')[0] in %r))"
    ) % (STRICT, HEAVY)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT, timeout=60)
    assert result.stdout.strip().splitlines()[-1] == "[]", result.stdout[-500:] + result.stderr[-500:]


def test_rule_command() -> None:
    listing = run_templatekit("rule", "--list").stdout.decode().splitlines()
    assert listing[0].startswith("TK001  syntax-error") and any(
        line.startswith("TK101  alternation-check") for line in listing
    )
    doc = run_templatekit("rule", "TK101").stdout.decode()
    assert doc.startswith("# TK101 alternation-check\n") and "## Fix safety" in doc
    assert run_templatekit("rule", "alternation-check").stdout.decode() == doc
    unknown = run_templatekit("rule", "TK999")
    assert unknown.returncode == 2 and unknown.stderr.decode().startswith("templatekit: error: unknown rule")


def test_help_teaches_with_examples() -> None:
    text = run_templatekit("lint", "--help").stdout.decode()
    for needle in (
        "templatekit lint google/gemma-3-12b-it",
        "--format sarif",
        "templatekit: ignore[TK101] reason:",
        "--fail-on",
        "Exit codes",
        "1  findings at or above --fail-on",
    ):
        assert needle in text


def test_the_report_decides_the_exit_code() -> None:
    def finding(code: str, severity: Severity) -> Finding:
        return Finding(code, "name", severity, "message", "t.jinja")

    report = LintReport(Severity.WARNING)
    assert report.exit_code == 0
    report.findings.append(finding("TK210", Severity.INFO))
    assert report.exit_code == 0
    report.findings.append(finding("TK101", Severity.WARNING))
    assert report.exit_code == 1
    report.failures.append(7)  # an unreadable source outranks findings
    assert report.exit_code == 7
    report.findings.append(finding("TK001", Severity.ERROR))
    assert report.exit_code == 8
    assert [item.code for item in report.sorted_findings] == ["TK001", "TK101", "TK210"]


def test_config_errors_name_their_file(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.templatekit]\nfail-on = "never"\n', encoding="utf-8")
    with pytest.raises(ValueError) as caught:
        load_config(tmp_path)
    assert isinstance(caught.value, ConfigError) and caught.value.path == str(tmp_path / "pyproject.toml")
