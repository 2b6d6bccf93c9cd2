"""CI runs exactly the README's test command, and the README's set-up commands come first."""

from __future__ import annotations

import os

from conftest import REPO_ROOT


def readme_commands() -> list[str]:
    """The commands of the README's first code block (comment lines left out)."""
    text = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    block = text.split("```bash\n", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line.strip() and not line.startswith("#")]


def test_ci_runs_exactly_the_readmes_test_command() -> None:
    script = REPO_ROOT / ".ci" / "run"
    lines = [
        line for line in script.read_text(encoding="utf-8").splitlines() if line.strip() and not line.startswith("#")
    ]
    assert os.access(script, os.X_OK)
    assert "set -euo pipefail" in lines
    install_and_relax, test_command = readme_commands()
    assert lines[-1] == test_command
    assert "templatekit relax fixtures/templates/" in install_and_relax
    assert (REPO_ROOT / install_and_relax.split("templatekit relax ", 1)[1].split()[0]).is_file()
