"""One runner per engine: ``runner(template, context, options) -> str`` raising :class:`EngineError`.

The node and llama.cpp engines are child processes kept for the life of the Python process (one
each, restarted after a crash or a timeout) and spoken to in JSON lines; every request waits at
most :data:`TIMEOUT` seconds.  minijinja renders in process with a fuel budget.
"""

from __future__ import annotations

import atexit
import json
import os
import selectors
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from templatekit.engines import EngineError
from templatekit.engines import install as installation
from templatekit.errors import EngineUnavailableError

TIMEOUT = 20.0  # seconds one render may take in a child process
MINIJINJA_FUEL = 50_000_000  # minijinja's instruction budget per render

_LLAMA_RAISE = "Jinja Exception: "  # llama.cpp's raise_exception prefixes the template's message
Runner = Callable[[str, dict[str, Any], dict[str, Any]], str]


def _jinja2(template: str, context: dict[str, Any], options: dict[str, Any]) -> str:
    import jinja2

    from templatekit.environment import TemplateRaise, render

    context = dict(context)
    messages = context.pop("messages")
    tools, documents = context.pop("tools", None), context.pop("documents", None)
    add_generation_prompt = bool(context.pop("add_generation_prompt", False))
    try:
        return render(
            template, messages, tools=tools, documents=documents, add_generation_prompt=add_generation_prompt, **context
        )
    except TemplateRaise as error:
        raise EngineError("jinja2", "raise", str(error.template_message)) from None
    except jinja2.TemplateSyntaxError as error:
        raise EngineError("jinja2", "parse", str(error)) from None
    except Exception as error:  # noqa: BLE001 - any failure inside the render is the engine's answer
        raise EngineError("jinja2", "render", f"{type(error).__name__}: {error}") from None


class _Raised(Exception):
    """raise_exception() inside minijinja (minijinja lets a function's exception through)."""


def _minijinja_raise(message: Any) -> None:
    raise _Raised(str(message))


def _minijinja_strftime_now(format: str) -> str:
    return datetime.now().strftime(format)


_minijinja_environments: dict[tuple[bool, bool], Any] = {}


def _minijinja(template: str, context: dict[str, Any], options: dict[str, Any]) -> str:
    """pycompat methods (``.strip()``, ``.items()``, ...), ``raise_exception`` and ``strftime_now`` as
    globals, trim/lstrip blocks as transformers unless ``options`` say otherwise (TGI)."""
    key = (bool(options.get("trim_blocks", True)), bool(options.get("lstrip_blocks", True)))
    environment = _minijinja_environments.get(key)
    if environment is None:
        try:
            import minijinja
        except ImportError:
            raise EngineUnavailableError(_MINIJINJA_MISSING, engine="minijinja") from None
        environment = minijinja.Environment(trim_blocks=key[0], lstrip_blocks=key[1], fuel=MINIJINJA_FUEL)
        environment.pycompat = True
        environment.add_function("raise_exception", _minijinja_raise)
        environment.add_function("strftime_now", _minijinja_strftime_now)
        _minijinja_environments[key] = environment
    try:
        return environment.render_str(template, **context)
    except _Raised as error:
        raise EngineError("minijinja", "raise", str(error)) from None
    except Exception as error:  # noqa: BLE001 - minijinja reports every other failure as TemplateError
        message = str(error)
        kind = "parse" if message.startswith("syntax error") else "render"
        raise EngineError("minijinja", kind, message) from None


class _JsonLinesProcess:
    """A child process answering one JSON line per JSON line, restarted when it dies or hangs."""

    def __init__(self, engine: str, command: Callable[[], list[str]]) -> None:
        self.engine = engine
        self.command = command
        self.process: subprocess.Popen[bytes] | None = None
        self.lock = threading.Lock()

    def request(self, payload: dict[str, Any]) -> dict[str, Any]:
        line = (json.dumps(payload, ensure_ascii=False) + "\n").encode("utf-8")
        with self.lock:
            process = self._started()
            try:
                assert process.stdin is not None
                process.stdin.write(line)
                process.stdin.flush()
                answer = self._read_line(process)
            except (OSError, EngineError):
                self.close()
                raise
        return json.loads(answer)

    def _started(self) -> subprocess.Popen[bytes]:
        if self.process is None or self.process.poll() is not None:
            self.process = subprocess.Popen(
                self.command(),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        return self.process

    def _read_line(self, process: subprocess.Popen[bytes]) -> bytes:
        assert process.stdout is not None
        chunks: list[bytes] = []
        fd = process.stdout.fileno()
        with selectors.DefaultSelector() as selector:
            selector.register(fd, selectors.EVENT_READ)
            deadline = time.monotonic() + TIMEOUT
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not selector.select(remaining):
                    raise EngineError(self.engine, "timeout", f"no answer within {TIMEOUT:.0f} s")
                chunk = os.read(fd, 1 << 16)
                if not chunk:
                    raise EngineError(self.engine, "render", "the engine process exited")
                chunks.append(chunk)
                if chunk.endswith(b"\n"):
                    return b"".join(chunks)

    def close(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


_processes = {
    "hf-jinja": _JsonLinesProcess(
        "hf-jinja", lambda: ["node", str(installation.hf_jinja_driver()), str(installation.hf_jinja_entry())]
    ),
    "llama.cpp": _JsonLinesProcess("llama.cpp", lambda: [str(installation.llama_cpp_driver())]),
}
atexit.register(lambda: [process.close() for process in _processes.values()])


def _child_process(engine: str) -> Runner:
    def run(template: str, context: dict[str, Any], options: dict[str, Any]) -> str:
        problem = STATUS[engine]()
        if problem is not None:
            raise EngineUnavailableError(problem, engine=engine)
        answer = _processes[engine].request({"op": "render", "template": template, "context": context})
        if not answer["ok"]:
            message = answer["error"]
            if answer["kind"] == "raise" and _LLAMA_RAISE in message:  # the template's own message
                message = message.rsplit(_LLAMA_RAISE, 1)[1]
            raise EngineError(engine, answer["kind"], message)
        return answer["text"]

    return run


def llama_cpp_caps(template: str) -> dict[str, bool]:
    """llama.cpp's own ``jinja::caps_get`` on ``template``, from the driver (the reference the pure
    port in :mod:`templatekit.servers.llama_server` is tested against)."""
    problem = STATUS["llama.cpp"]()
    if problem is not None:
        raise EngineUnavailableError(problem, engine="llama.cpp")
    answer = _processes["llama.cpp"].request({"op": "caps", "template": template})
    if not answer["ok"]:
        raise EngineError("llama.cpp", answer["kind"], answer["error"])
    return answer["caps"]


_MINIJINJA_MISSING = "minijinja is not installed: pip install 'templatekit[engines]'"


def _minijinja_status() -> str | None:
    import importlib.util

    return None if importlib.util.find_spec("minijinja") is not None else _MINIJINJA_MISSING


def _hf_jinja_status() -> str | None:
    if shutil.which("node") is None:
        return "hf-jinja needs node: install nodejs, then run `templatekit engines install hf-jinja`"
    if not installation.installed("hf-jinja"):
        return "hf-jinja is not installed: run `templatekit engines install hf-jinja` (needs npm)"
    return None


def _llama_cpp_status() -> str | None:
    if not installation.installed("llama.cpp") or not os.access(installation.llama_cpp_driver(), os.X_OK):
        return "llama.cpp is not installed: run `templatekit engines install llama.cpp` (needs a C++ compiler)"
    return None


RUNNERS: dict[str, Runner] = {
    "jinja2": _jinja2,
    "minijinja": _minijinja,
    "hf-jinja": _child_process("hf-jinja"),
    "llama.cpp": _child_process("llama.cpp"),
}
STATUS: dict[str, Callable[[], str | None]] = {
    "jinja2": lambda: None,
    "minijinja": _minijinja_status,
    "hf-jinja": _hf_jinja_status,
    "llama.cpp": _llama_cpp_status,
}
