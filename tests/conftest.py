"""Shared test fixtures: the real-template corpus beside the checkout."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from pathlib import Path

import pytest

from templatekit.analysis import ROLE_STRUCTURE, Analysis, analyze
from templatekit.syntax import parse

os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

REPO_ROOT = Path(__file__).resolve().parent.parent
FIXTURES = REPO_ROOT / "fixtures"
CORPUS_DIR = REPO_ROOT.parent / "shared" / "corpus"


def corpus_files() -> list[Path]:
    """Every ``*.jinja`` template of ``../shared/corpus`` (empty when the folder is absent)."""
    return sorted(CORPUS_DIR.glob("*.jinja")) if CORPUS_DIR.is_dir() else []


def read_template(path: Path) -> str:
    """A template's exact text (no newline translation)."""
    with path.open(encoding="utf-8", newline="") as handle:
        return handle.read()


@pytest.fixture
def corpus() -> list[Path]:
    files = corpus_files()
    if not files:
        pytest.skip(f"real-template corpus not found at {CORPUS_DIR} (clone with ../shared beside it)")
    return files


@pytest.fixture(scope="module")
def fake_hub(request: pytest.FixtureRequest):
    """A :class:`fakehub.FakeHub` on 127.0.0.1 serving the test module's ``HUB_REPOS`` (and
    ``HUB_TOKENS``), one server per module. Point a subprocess at it with ``hub.environment(tmp_path)``.
    """
    from fakehub import FakeHub

    with FakeHub(getattr(request.module, "HUB_REPOS", {}), tokens=getattr(request.module, "HUB_TOKENS", ())) as hub:
        yield hub


def run_templatekit(
    *args: str, env: dict[str, str] | None = None, stdin: bytes | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[bytes]:
    """Run the ``templatekit`` CLI in a fresh interpreter (so HF_* variables apply); bytes out."""
    return subprocess.run(
        [sys.executable, "-c", "from templatekit_cli.main import main; main()", *args],
        input=stdin,
        capture_output=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        cwd=REPO_ROOT,
    )


@functools.lru_cache(maxsize=None)
def analysis_of(path: Path) -> Analysis:
    """The analysis of one template file, computed once per test session."""
    return analyze(parse(read_template(path)))


def role_structure_corpus() -> list[Path]:
    """The corpus templates with a role-structure check (alternation, system placement, role support)."""
    return [
        path for path in corpus_files() if any(site.check_class in ROLE_STRUCTURE for site in analysis_of(path).sites)
    ]


ROLE_STRUCTURE_TEMPLATES = 39
"""How many corpus templates have a role-structure check: pinned, so that a classification
regression fails the tests instead of quietly shrinking the corpus cases."""


# --- vLLM (.venv-vllm, made by tests/vllm_setup.sh) -------------------------------------------

VLLM_PYTHON = REPO_ROOT / ".venv-vllm" / "bin" / "python"
VLLM_MISSING = (
    f"vLLM venv not found at {VLLM_PYTHON.parent.parent} (create it with tests/vllm_setup.sh, as .ci/run does)"
)


@pytest.fixture(scope="session")
def vllm_python() -> Path:
    """The vLLM venv's interpreter; skips when tests/vllm_setup.sh has not completed."""
    if not (REPO_ROOT / ".venv-vllm" / "templatekit-setup").is_file():
        pytest.skip(VLLM_MISSING)
    return VLLM_PYTHON


@pytest.fixture(scope="session")
def vllm_model(vllm_python: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Llama model folder (``tests/vllm_model.py``), built once per session."""
    folder = tmp_path_factory.mktemp("vllm-model")
    subprocess.run(
        [
            str(vllm_python),
            str(REPO_ROOT / "tests" / "vllm_model.py"),
            str(folder),
            str(FIXTURES / "templates" / "parity_check.jinja"),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return folder
