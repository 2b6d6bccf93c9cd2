"""The public API of ``import templatekit``: every exported name is what the README says it is."""

from __future__ import annotations

import importlib
import inspect
import subprocess
import sys

import templatekit

from conftest import REPO_ROOT


def test_every_export_resolves() -> None:
    for name in templatekit.__all__:
        assert getattr(templatekit, name) is not None, name


def test_functions_stay_functions_after_every_module_is_imported() -> None:
    """No submodule shares a name with a public function (``import templatekit.X`` would
    otherwise replace the function ``templatekit.X`` with the module)."""
    for module in set(templatekit._EXPORTS.values()):
        importlib.import_module(module)
    for name in ("relax", "verify", "render", "analyze", "load", "normalize", "parse", "lint"):
        assert inspect.isfunction(getattr(templatekit, name)), name


def test_readme_calls_work_in_a_fresh_interpreter() -> None:
    code = (
        "import templatekit\n"
        "text = open('fixtures/templates/parity_check.jinja', encoding='utf-8').read()\n"
        "result = templatekit.relax(text, strategy='merge')\n"
        "report = templatekit.verify(text, result.text, normalize='merge', examples=50)\n"
        "print(result.status, report.ok)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["relaxed", "True"]
