"""The findings cache of ``templatekit lint`` (as ruff's): the same file under the same settings has the same findings.

An entry holds what the text report shows of one template file's findings (witnesses and spans
are not kept), under the BLAKE2b hash of: the path the file is reported under and its bytes, the
effective ``select``/``ignore``/probe settings, templatekit's version, a fingerprint of its
installed modules and of jinja2 (size and modification time of each module file: an upgrade
or an edit misses) and the Python version.  Entries live in ``$TEMPLATEKIT_CACHE_DIR``, else
``$XDG_CACHE_HOME/templatekit/lint`` (``~/.cache``), never beside the user's files; each is
written to a temporary file renamed into place, and one that cannot be read is a miss.
Findings that depend on more than the file are never stored: a template that ran out of its
render budget (TK901, machine load) or one linted with the engine comparison (TK802, the
engines installed here).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Collection, Sequence
from pathlib import Path

try:  # CPython's own BLAKE2 module: importing hashlib loads OpenSSL first (3 ms of a 70 ms lint run)
    from _blake2 import blake2b
except ImportError:  # another Python: the same function through hashlib
    from hashlib import blake2b

from . import __version__
from .findings import Finding, Fix, Severity

__all__ = ["cache_folder", "entry_key", "load_findings", "store_findings"]

_FORMAT = 1  # bump when the stored fields change
_FIELDS = (
    "code",
    "name",
    "severity",
    "message",
    "path",
    "line",
    "column",
    "end_line",
    "end_column",
    "template_name",
    "fix",
)
_BUDGET_RULE = "TK901"  # its findings depend on the machine's load
_ENGINE_RULE = "TK802"  # its findings depend on the engines installed here


def cache_folder() -> Path:
    """``$TEMPLATEKIT_CACHE_DIR``, else ``$XDG_CACHE_HOME/templatekit/lint`` (``~/.cache``)."""
    folder = os.environ.get("TEMPLATEKIT_CACHE_DIR")
    if folder:
        return Path(folder)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "templatekit" / "lint"


def _installation() -> list[tuple[str, int, int]]:
    """``(file, size, mtime)`` of every templatekit module and of jinja2's ``__init__`` (its version)."""
    import importlib.util

    package = os.path.dirname(os.path.abspath(__file__))
    files = [
        os.path.join(folder, name)
        for folder, subfolders, names in os.walk(package)
        for name in names
        if name.endswith(".py")
    ]
    jinja2 = importlib.util.find_spec("jinja2")
    if jinja2 is not None and jinja2.origin:
        files.append(jinja2.origin)
    return [(file, status.st_size, status.st_mtime_ns) for file in sorted(files) for status in [os.stat(file)]]


def entry_key(path: str, data: bytes, *, select: Sequence[str] | None, ignore: Sequence[str], probe: bool) -> str:
    """The cache key of linting file ``path`` holding ``data`` with these settings."""
    settings = [
        _FORMAT,
        __version__,
        sys.version,
        _installation(),
        path,
        None if select is None else list(select),
        list(ignore),
        probe,
    ]
    digest = blake2b(json.dumps(settings).encode("utf-8"), digest_size=32)
    digest.update(data)
    return digest.hexdigest()


def load_findings(key: str) -> list[Finding] | None:
    """The findings stored under ``key``, or ``None`` (no entry, or one that cannot be read)."""
    try:
        items = json.loads((cache_folder() / f"{key}.json").read_text(encoding="utf-8"))
        return [
            Finding(
                **{
                    **item,
                    "severity": Severity(item["severity"]),
                    "fix": None if item["fix"] is None else Fix(*item["fix"]),
                }
            )
            for item in items
        ]
    except (OSError, ValueError, TypeError, KeyError):
        return None


def store_findings(key: str, findings: Sequence[Finding], *, rules: Collection[str]) -> None:
    """Store ``findings`` of the ``rules`` (codes) that ran under ``key``, unless they depend on more
    than the file; never raises."""
    if _ENGINE_RULE in rules or any(finding.code == _BUDGET_RULE for finding in findings):
        return
    items = [
        {field: getattr(finding, field) for field in _FIELDS} | {"severity": finding.severity.value}
        for finding in findings
    ]
    folder = cache_folder()
    temporary = folder / f".{key}.{os.getpid()}.tmp"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        temporary.write_text(json.dumps(items), encoding="utf-8")
        os.replace(temporary, folder / f"{key}.json")
    except OSError:
        try:
            temporary.unlink(missing_ok=True)
        except OSError:
            pass
