"""The declared floor, Python 3.10: the installed package runs there as it does here.

A regular (non-editable) install into a venv of a Python 3.10 interpreter (``$TEMPLATEKIT_PYTHON310``,
``python3.10`` on PATH, or pyenv's) runs lint, relax (verification included) and verify on our fixtures
and corpus templates, with ``[tool.templatekit]`` read from pyproject.toml (tomli there); its outputs
must equal this interpreter's byte for byte.  Skipped, with the reason, where no 3.10 exists.
The venv (with the ``engines`` extra, as the test venv has minijinja) is kept in
``~/.cache/templatekit/python310``; the package is reinstalled into it every run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT.parent / "shared" / "corpus"
VENV = Path.home() / ".cache" / "templatekit" / "python310"
SCRIPT = Path(sys.executable).parent / "templatekit"


def _python310() -> str | None:
    """A working 3.10 interpreter (a pyenv shim on PATH may name one that is not selected: it must run)."""
    candidates = [
        os.environ.get("TEMPLATEKIT_PYTHON310"),
        *map(str, sorted(Path.home().glob(".pyenv/versions/3.10.*/bin/python3.10"), reverse=True)),
        shutil.which("python3.10"),
    ]
    for candidate in filter(None, candidates):
        probe = subprocess.run(
            [candidate, "-c", "import sys; assert sys.version_info[:2] == (3, 10)"],
            capture_output=True,
            timeout=60,
            check=False,
        )
        if probe.returncode == 0:
            return candidate
    return None


def _run(command: list[str], cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture(scope="module")
def templatekit310() -> Path:
    python = _python310()
    if python is None:
        pytest.skip("no Python 3.10 interpreter (set TEMPLATEKIT_PYTHON310, or put python3.10 on PATH)")
    if not (VENV / "bin" / "python").is_file():
        created = _run([python, "-m", "venv", str(VENV)], ROOT)
        assert created.returncode == 0, created.stderr
    # pip reinstalls a local project every time (and adds dependencies the project gained)
    installed = _run([str(VENV / "bin" / "python"), "-m", "pip", "install", "-q", f"{ROOT}[engines]"], ROOT)
    assert installed.returncode == 0, installed.stderr
    return VENV / "bin" / "templatekit"


def _inputs() -> list[Path]:
    fixtures = sorted((ROOT / "fixtures" / "lint").glob("*.jinja")) + [ROOT / "fixtures/templates/parity_check.jinja"]
    corpus = [
        CORPUS / name
        for name in (
            "google--gemma-3-27b-it.jinja",
            "mistralai--Mistral-Nemo-Instruct-2407.jinja",
            "meta-llama--Llama-2-7b-chat-hf.jinja",
        )
    ]
    return fixtures + [path for path in corpus if path.is_file()]


def _same(command: list[str], here: Path, there: Path, cwd: Path) -> None:
    ours, theirs = _run([str(here), *command], cwd), _run([str(there), *command], cwd)
    assert (theirs.returncode, theirs.stdout, theirs.stderr) == (ours.returncode, ours.stdout, ours.stderr), command


def test_same_output_on_python310(templatekit310: Path, tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.templatekit]\nignore = ["TK802"]\nfail-on = "error"\n')
    for template in _inputs():
        _same(["lint", "--format", "json", str(template)], SCRIPT, templatekit310, tmp_path)
        _same(["relax", "--examples", "100", str(template)], SCRIPT, templatekit310, tmp_path)
        relaxed = tmp_path / f"{template.stem}.relaxed.jinja"
        if _run([str(SCRIPT), "relax", "--no-verify", str(template), "-o", str(relaxed)], tmp_path).returncode == 0:
            _same(
                ["verify", str(template), str(relaxed), "--normalize", "merge", "--examples", "100"],
                SCRIPT,
                templatekit310,
                tmp_path,
            )
