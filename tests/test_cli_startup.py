"""``templatekit --help`` stays cheap: structurally, no heavy module is imported on that path.

Timings live in ``benchmarks/startup.py``; this test checks what gets imported, which is what
makes startup slow, and does not depend on the machine's speed.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

from templatekit_cli.main import COMMANDS

HEAVY_PACKAGES = {"transformers", "tokenizers", "huggingface_hub", "hypothesis", "torch", "numpy", "gguf"}


def imported_packages(*arguments: str) -> tuple[set[str], subprocess.CompletedProcess[str]]:
    """Top-level packages imported by ``templatekit ARGUMENTS`` (run in a fresh interpreter)."""
    code = (
        f"import sys; sys.argv = ['templatekit', *{list(arguments)!r}]; from templatekit_cli.main import main; main()"
    )
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    packages = {
        line.rsplit("|", 1)[1].strip().split(".")[0]
        for line in result.stderr.splitlines()
        if line.startswith("import time:") and line.count("|") == 2
    }
    return packages, result


@pytest.mark.parametrize("arguments", [["--help"], ["--version"]], ids=["help", "version"])
def test_top_level_startup_imports_nothing_heavy(arguments: list[str]) -> None:
    packages, result = imported_packages(*arguments)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "click" in packages and "templatekit_cli" in packages, "importtime output was not parsed"
    assert not packages & HEAVY_PACKAGES
    assert "jinja2" not in packages, "--help compiles nothing, so it needs no jinja2"


@pytest.mark.parametrize("command", list(COMMANDS))
def test_command_help_imports_nothing_heavy(command: str) -> None:
    module = COMMANDS[command][0]
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not written yet")
    packages, result = imported_packages(command, "--help")
    assert result.returncode == 0, result.stderr[-2000:]
    assert not packages & HEAVY_PACKAGES, f"`templatekit {command} --help` imports {packages & HEAVY_PACKAGES}"
