"""``templatekit lint FILE.jinja`` without click prints what the click command prints and exits alike."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import FIXTURES, run_templatekit

from templatekit_cli import common, main

# random_greeting.jinja renders differently on every run, so two runs' TK403 witnesses differ
LINT = sorted(path for path in (FIXTURES / "lint").glob("*.jinja") if path.name != "random_greeting.jinja")


def test_exit_codes_are_the_click_commands() -> None:
    assert (main.EXIT_FINDINGS, main.EXIT_SYNTAX, main.EXIT_INTERRUPTED) == (
        common.EXIT_FINDINGS, common.EXIT_SYNTAX, common.EXIT_INTERRUPTED)


@pytest.mark.parametrize("flags", [[], ["--no-probe"], ["--missing-ok"]], ids=["probe", "no-probe", "missing-ok"])
def test_same_report_and_exit_code_as_the_click_command(flags: list[str]) -> None:
    files = [str(path) for path in LINT]
    plain = run_templatekit("lint", *flags, *files)
    through_click = run_templatekit("lint", "--format", "text", *flags, *files)  # an option: the click command
    assert (plain.returncode, plain.stdout, plain.stderr) == (
        through_click.returncode, through_click.stdout, through_click.stderr)


@pytest.mark.parametrize("path", LINT, ids=[path.stem for path in LINT])
def test_each_fixture_exits_as_the_click_command(path: Path) -> None:
    plain, through_click = run_templatekit("lint", str(path)), run_templatekit("lint", "--format", "text", str(path))
    assert (plain.returncode, plain.stdout, plain.stderr) == (
        through_click.returncode, through_click.stdout, through_click.stderr)


@pytest.mark.parametrize("arguments", [["missing.jinja"], [str(FIXTURES / "lint")], ["-"], ["--help"],
                                       [str(LINT[0]), "--select", "TK1"], [str(FIXTURES / "sources" / "x.json")]],
                         ids=["missing", "folder", "stdin", "help", "option", "json"])
def test_anything_else_goes_to_the_click_command(arguments: list[str]) -> None:
    assert main.plain_lint(arguments) is None


def test_a_plain_lint_never_imports_click() -> None:
    code = ("import sys; sys.argv = ['templatekit', 'lint', %r]\n"
            "import atexit; atexit.register(lambda: sys.stderr.write(str('click' in sys.modules)))\n"
            "from templatekit_cli.main import main; main()") % str(FIXTURES / "lint" / "strict.jinja")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and result.stderr == "False", result.stderr[-2000:]
