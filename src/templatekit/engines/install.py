"""Where the out-of-process engines live, and how ``templatekit engines install`` builds them.

Nothing of llama.cpp or huggingface.js ships with templatekit: installing fetches them from the
package registries (npm for ``@huggingface/jinja``; PyPI's ``llama-cpp-python`` sdist, whose
``vendor/llama.cpp`` holds ``common/jinja``, for llama.cpp) and builds our own small drivers
against them.  Each engine lives in its own folder of :func:`engines_dir`, written through a
temporary folder and renamed into place, with an ``installed.json`` saying what was built; an
install whose record matches is skipped, so running it again is cheap.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from importlib import resources
from pathlib import Path

__all__ = [
    "HF_JINJA_VERSION",
    "LLAMA_CPP_PYTHON_VERSION",
    "InstallError",
    "engines_dir",
    "install",
    "installed",
    "llama_cpp_driver",
    "hf_jinja_entry",
    "hf_jinja_driver",
]

HF_JINJA_VERSION = "0.5.11"  # @huggingface/jinja on npm
LLAMA_CPP_PYTHON_VERSION = "0.3.36"  # its sdist vendors llama.cpp (common/jinja)
ENV_VAR = "TEMPLATEKIT_ENGINES_DIR"

# the llama.cpp sources the driver needs: the engine, the JSON wrapper and its library, UTF-8 helpers
_LLAMA_CPP_MEMBERS = (
    "common/jinja/",
    "common/json.h",
    "common/json.cpp",
    "common/unicode.h",
    "common/unicode.cpp",
    "vendor/nlohmann/",
    "LICENSE",
)
# common/json.cpp includes ggml.h for one macro; the driver is built without ggml
_GGML_STUB = """#pragma once
#include <cstdio>
#include <cstdlib>
#define GGML_ASSERT(x) do { if (!(x)) { std::fprintf(stderr, "assertion failed: %s\\n", #x); std::abort(); } } while (0)
"""


class InstallError(RuntimeError):
    """An engine could not be installed; the message is one line saying why."""


def engines_dir() -> Path:
    """``$TEMPLATEKIT_ENGINES_DIR``, else ``$XDG_CACHE_HOME/templatekit/engines`` (``~/.cache``)."""
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR])
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "templatekit" / "engines"


def hf_jinja_driver() -> Path:
    """The node driver script shipped with templatekit."""
    return Path(str(resources.files("templatekit.engines").joinpath("hf_jinja_driver.mjs")))


def hf_jinja_entry() -> Path:
    """The installed ``@huggingface/jinja`` module the driver imports."""
    return engines_dir() / "hf-jinja" / "node_modules" / "@huggingface" / "jinja" / "dist" / "index.js"


def llama_cpp_driver() -> Path:
    """The compiled llama.cpp driver."""
    return engines_dir() / "llama.cpp" / "templatekit-llama-jinja"


def _driver_source() -> str:
    return resources.files("templatekit.engines").joinpath("llama_cpp_driver.cpp").read_text(encoding="utf-8")


def _record(engine: str) -> dict[str, str]:
    """What an up-to-date install of ``engine`` records (versions and the driver's digest)."""
    if engine == "hf-jinja":
        return {"package": f"@huggingface/jinja@{HF_JINJA_VERSION}"}
    digest = hashlib.sha256(_driver_source().encode()).hexdigest()[:16]
    return {"package": f"llama-cpp-python=={LLAMA_CPP_PYTHON_VERSION}", "driver": digest}


def installed(engine: str) -> bool:
    """Whether ``engine`` is installed and matches this templatekit's versions."""
    path = engines_dir() / engine / "installed.json"
    try:
        return json.loads(path.read_text(encoding="utf-8")) == _record(engine)
    except (OSError, ValueError):
        return False


def install(engine: str, *, log=print) -> bool:
    """Install ``engine`` (``"hf-jinja"`` or ``"llama.cpp"``); ``False`` if it already was.

    Raises :class:`InstallError` (no node/npm, no C++ compiler, a failed download or build).
    """
    if installed(engine):
        return False
    root = engines_dir()
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{engine}.", dir=root))
    try:
        (_install_hf_jinja if engine == "hf-jinja" else _install_llama_cpp)(staging, log)
        (staging / "installed.json").write_text(json.dumps(_record(engine)), encoding="utf-8")
        target = root / engine
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return True


def _run(command: list[str], what: str, cwd: Path, timeout: float) -> None:
    try:
        done = subprocess.run(
            command, cwd=cwd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
        )
    except FileNotFoundError:
        raise InstallError(f"{what}: {command[0]} not found") from None
    except subprocess.TimeoutExpired:
        raise InstallError(f"{what}: timed out after {timeout:.0f} s") from None
    if done.returncode != 0:
        last = (done.stderr.strip() or done.stdout.strip() or f"exit status {done.returncode}").splitlines()[-1]
        raise InstallError(f"{what} failed: {last}")


def _install_hf_jinja(staging: Path, log) -> None:
    if shutil.which("node") is None or shutil.which("npm") is None:
        raise InstallError("hf-jinja needs node and npm (e.g. `apt-get install nodejs npm`)")
    log(f"installing @huggingface/jinja@{HF_JINJA_VERSION} with npm")
    (staging / "package.json").write_text('{"private": true}\n', encoding="utf-8")
    _run(
        [
            "npm",
            "install",
            "--no-audit",
            "--no-fund",
            "--no-save",
            "--silent",
            f"@huggingface/jinja@{HF_JINJA_VERSION}",
        ],
        "npm install @huggingface/jinja",
        staging,
        600,
    )


def _install_llama_cpp(staging: Path, log) -> None:
    compiler = os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++") or shutil.which("clang++")
    if compiler is None:
        raise InstallError("llama.cpp needs a C++17 compiler (e.g. `apt-get install g++`)")
    log(f"downloading the llama-cpp-python {LLAMA_CPP_PYTHON_VERSION} sdist (for llama.cpp's common/jinja)")
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "--no-binary",
            ":all:",
            "--dest",
            str(staging),
            f"llama-cpp-python=={LLAMA_CPP_PYTHON_VERSION}",
        ],
        "pip download llama-cpp-python",
        staging,
        900,
    )
    archive = next(staging.glob("llama_cpp_python-*.tar.gz"), None)
    if archive is None:
        raise InstallError("pip download llama-cpp-python gave no sdist")
    source = staging / "src"
    prefix = f"{archive.name[: -len('.tar.gz')]}/vendor/llama.cpp/"
    with tarfile.open(archive) as sdist:
        members = [
            member
            for member in sdist.getmembers()
            if member.isfile()
            and member.name.startswith(prefix)
            and member.name[len(prefix) :].startswith(_LLAMA_CPP_MEMBERS)
        ]
        for member in members:
            member.name = member.name[len(prefix) :]
        safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
        sdist.extractall(source, members=members, **safe)
    archive.unlink()
    (source / "stub").mkdir()
    (source / "stub" / "ggml.h").write_text(_GGML_STUB, encoding="utf-8")
    (source / "templatekit_driver.cpp").write_text(_driver_source(), encoding="utf-8")
    units = sorted(str(path) for path in (source / "common" / "jinja").glob("*.cpp"))
    units += [
        str(source / "common" / "json.cpp"),
        str(source / "common" / "unicode.cpp"),
        str(source / "templatekit_driver.cpp"),
    ]
    log(f"compiling llama.cpp's Jinja engine with {Path(compiler).name} (about a minute on 2 cores)")
    _run(
        [
            compiler,
            "-std=c++17",
            "-O1",
            "-I",
            str(source / "stub"),
            "-I",
            str(source / "common"),
            "-I",
            str(source / "vendor"),
            *units,
            "-o",
            str(staging / "templatekit-llama-jinja"),
        ],
        "compiling llama.cpp's Jinja engine",
        staging,
        1800,
    )
    shutil.copy(source / "LICENSE", staging / "LICENSE-llama.cpp")
    shutil.rmtree(source)
