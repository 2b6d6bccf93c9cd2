"""``templatekit lint FILE.jinja`` without click prints what the click command prints and exits alike,
and its findings cache answers only for the same file, settings and installation."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import FIXTURES, run_templatekit

from templatekit import lint_cache
from templatekit.findings import Finding, Fix, Severity
from templatekit_cli import main

LINT = sorted((FIXTURES / "lint").glob("*.jinja"))


@pytest.mark.parametrize("flags", [[], ["--no-probe"], ["--missing-ok"]], ids=["probe", "no-probe", "missing-ok"])
def test_same_report_and_exit_code_as_the_click_command(flags: list[str], tmp_path: Path) -> None:
    files, cache = [str(path) for path in LINT], {"TEMPLATEKIT_CACHE_DIR": str(tmp_path)}
    plain = run_templatekit("lint", *flags, *files, env=cache)
    assert run_templatekit("lint", *flags, *files, env=cache).stdout == plain.stdout  # from the cache
    through_click = run_templatekit("lint", "--format", "text", *flags, *files)  # an option: the click command
    assert (plain.returncode, plain.stdout, plain.stderr) == (
        through_click.returncode,
        through_click.stdout,
        through_click.stderr,
    )


@pytest.mark.parametrize("path", LINT, ids=[path.stem for path in LINT])
def test_each_fixture_exits_as_the_click_command(path: Path) -> None:
    plain = run_templatekit("lint", "--no-cache", str(path))
    through_click = run_templatekit("lint", "--format", "text", str(path))
    assert (plain.returncode, plain.stdout, plain.stderr) == (
        through_click.returncode,
        through_click.stdout,
        through_click.stderr,
    )


@pytest.mark.parametrize(
    "arguments",
    [
        ["missing.jinja"],
        [str(FIXTURES / "lint")],
        ["-"],
        ["--help"],
        [str(LINT[0]), "--select", "TK1"],
        [str(FIXTURES / "sources" / "x.json")],
    ],
    ids=["missing", "folder", "stdin", "help", "option", "json"],
)
def test_anything_else_goes_to_the_click_command(arguments: list[str]) -> None:
    assert main.plain_lint(arguments) is None


def test_a_plain_lint_never_imports_click() -> None:
    code = (
        "import sys; sys.argv = ['templatekit', 'lint', %r]\n"
        "import atexit; atexit.register(lambda: sys.stderr.write(str('click' in sys.modules)))\n"
        "from templatekit_cli.main import main; main()"
    ) % str(FIXTURES / "lint" / "strict.jinja")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and result.stderr == "False", result.stderr[-2000:]


def run_in(folder: Path, cache: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    """``templatekit ARGUMENTS`` in ``folder`` with the cache in ``cache``; the last stderr line says
    whether jinja2 was imported."""
    code = (
        "import atexit, sys; atexit.register(lambda: sys.stderr.write(str('jinja2' in sys.modules)))\n"
        "from templatekit_cli.main import main; main()"
    )
    return subprocess.run(
        [sys.executable, "-c", code, *arguments],
        capture_output=True,
        text=True,
        cwd=folder,
        env={**os.environ, "TEMPLATEKIT_CACHE_DIR": str(cache)},
        timeout=60,
    )


def test_cache_hits_misses_and_stays_out_of_the_users_folder(tmp_path: Path) -> None:
    project, cache = tmp_path / "project", tmp_path / "cache"
    project.mkdir()
    shutil.copy(FIXTURES / "lint" / "strict.jinja", project / "chat_template.jinja")
    first = run_in(project, cache, "lint", "chat_template.jinja")
    assert first.returncode == 1 and first.stderr == "True" and "TK101" in first.stdout
    hit = run_in(project, cache, "lint", "chat_template.jinja")
    assert (hit.returncode, hit.stdout, hit.stderr) == (1, first.stdout, "False")  # no jinja2: nothing linted
    assert sorted(path.name for path in project.iterdir()) == ["chat_template.jinja"]

    assert run_in(project, cache, "lint", "--no-probe", "chat_template.jinja").stderr == "True"  # another option
    (project / "pyproject.toml").write_text('[tool.templatekit]\nignore = ["TK101"]\n')
    ignored = run_in(project, cache, "lint", "chat_template.jinja")  # another configuration
    assert ignored.stderr == "True" and "TK101" not in ignored.stdout
    (project / "chat_template.jinja").write_text((FIXTURES / "lint" / "clean.jinja").read_text())
    changed = run_in(project, cache, "lint", "chat_template.jinja")  # another template
    assert (changed.returncode, changed.stderr) == (0, "True") and "TK101" not in changed.stdout

    entries = sorted(cache.glob("*.json"))
    assert len(entries) == 4
    for entry in entries:
        entry.write_text("{not json")
    corrupt = run_in(project, cache, "lint", "chat_template.jinja")  # a corrupt entry is a miss, then rewritten
    assert (corrupt.stdout, corrupt.stderr) == (changed.stdout, "True")
    assert run_in(project, cache, "lint", "chat_template.jinja").stderr == "False"
    assert run_in(project, cache, "lint", "--no-cache", "chat_template.jinja").stderr == "True"


def test_cache_key_covers_version_settings_and_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    def key(**changes: object) -> str:
        settings: dict = {
            "path": "t.jinja",
            "data": b"{{ messages }}",
            "select": None,
            "ignore": (),
            "probe": True,
            **changes,
        }
        return lint_cache.entry_key(settings.pop("path"), settings.pop("data"), **settings)

    keys = {
        key(),
        key(path="u.jinja"),
        key(data=b"{{ message }}"),
        key(select=("ALL",)),
        key(ignore=("TK1",)),
        key(probe=False),
    }
    monkeypatch.setattr(lint_cache, "__version__", "0.0.0-other")
    keys.add(key())
    assert len(keys) == 7


def test_budget_and_engine_findings_are_never_stored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEMPLATEKIT_CACHE_DIR", str(tmp_path))
    budget = Finding("TK901", "render-budget", Severity.WARNING, "ran out", "t.jinja")
    lint_cache.store_findings("a", [budget], rules={"TK101", "TK901"})
    lint_cache.store_findings("b", [], rules={"TK802"})
    kept = budget._replace(code="TK101", name="alternation-check", fix=Fix("templatekit relax rewrites it", "unsafe"))
    lint_cache.store_findings("c", [kept], rules={"TK101"})
    assert [path.name for path in tmp_path.iterdir()] == ["c.json"]
    assert lint_cache.load_findings("c") == [kept]
