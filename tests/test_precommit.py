"""The ``templatekit-lint`` hook under the real ``pre-commit`` tool.

``pre-commit try-repo`` installs this repository (its working tree's tracked files) into a
fresh virtualenv, with dependencies from PyPI, and runs the hook on a temporary git repo
holding our own strict template: the hook fails naming the alternation check; after
``templatekit relax`` it passes.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import FIXTURES, REPO_ROOT

pytestmark = pytest.mark.slow

GIT = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.com",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.com",
}


@pytest.fixture(scope="module")
def environment(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    if importlib.util.find_spec("pre_commit") is None or shutil.which("git") is None:
        pytest.skip("pre-commit and git are needed (pip install -e '.[test]')")
    # try-repo builds its own store per run; PRE_COMMIT_HOME keeps the rest of pre-commit's state out of ~
    return {
        **os.environ,
        **GIT,
        "PRE_COMMIT_HOME": str(tmp_path_factory.mktemp("pre-commit-home")),
        "PRE_COMMIT_COLOR": "never",
    }


def git(folder: Path, *args: str, env: dict[str, str]) -> None:
    subprocess.run(["git", *args], cwd=folder, env=env, check=True, capture_output=True, timeout=60)


def try_repo(folder: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pre_commit", "try-repo", str(REPO_ROOT), "templatekit-lint", "--all-files"],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_hook_fails_on_a_strict_template_and_passes_after_relax(tmp_path: Path, environment: dict[str, str]) -> None:
    project = tmp_path / "project"
    project.mkdir()
    git(project, "init", "-q", env=environment)
    shutil.copy(FIXTURES / "lint" / "strict.jinja", project / "chat_template.jinja")
    (project / "tokenizer_config.json").write_text('{"eos_token": "</s>"}')  # no template: skipped, not failed
    git(project, "add", ".", env=environment)
    git(project, "commit", "-q", "-m", "strict template", env=environment)

    failed = try_repo(project, environment)
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "templatekit lint...." in failed.stdout and "Failed" in failed.stdout
    assert (
        "chat_template.jinja:13:12: TK101 role-alternation check fails on [assistant]: "
        "raise_exception('Conversation roles must alternate"
    ) in failed.stdout
    assert "templatekit: skipped: no chat template in tokenizer_config.json" in failed.stdout

    if importlib.util.find_spec("templatekit_cli.relax") is None:
        pytest.skip("templatekit relax is not written yet")
    relaxed = subprocess.run(
        [
            sys.executable,
            "-c",
            "from templatekit_cli.main import main; main()",
            "relax",
            "chat_template.jinja",
            "--in-place",
        ],
        cwd=project,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert relaxed.returncode == 0, relaxed.stderr

    passed = try_repo(project, environment)
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert "Passed" in passed.stdout


def test_hook_on_a_hostile_template_ends_within_the_budget_with_a_finding(
    tmp_path: Path, environment: dict[str, str]
) -> None:
    """A CPU bomb in the message loop ran the hook past 60 s before render budgets: now each
    render stops at 2 s and the template is reported as TK901 (the hook's own duration, from
    ``--verbose``, is bounded by lint's 10 s per template plus start-up)."""
    project = tmp_path / "project"
    project.mkdir()
    git(project, "init", "-q", env=environment)
    shutil.copy(FIXTURES / "hostile" / "cpu_in_message_loop.jinja", project / "chat_template.jinja")
    git(project, "add", ".", env=environment)
    git(project, "commit", "-q", "-m", "hostile template", env=environment)

    failed = subprocess.run(
        [
            sys.executable,
            "-m",
            "pre_commit",
            "try-repo",
            str(REPO_ROOT),
            "templatekit-lint",
            "--all-files",
            "--verbose",
        ],
        cwd=project,
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "chat_template.jinja:1:1: TK901 rendering exceeds 2000 ms on conversation [user]" in failed.stdout
    duration = float(re.search(r"- duration: ([\d.]+)s", failed.stdout).group(1))
    assert duration < 30, failed.stdout
