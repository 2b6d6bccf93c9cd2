"""Shared test fixtures: the real-template corpus beside the checkout."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

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
