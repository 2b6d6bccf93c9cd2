"""The engine runners against the real engines: minijinja (pip), @huggingface/jinja (npm, under
node) and llama.cpp's common/jinja (compiled from the llama-cpp-python sdist).

Engines not installed here are skipped with the line `templatekit engines list` prints;
`templatekit engines install all` (run by .ci/run) installs them.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from templatekit.engines import ENGINES, EngineError, available_engines, engine_status, render_with
from templatekit.engines import runners
from templatekit.errors import EngineUnavailableError

MESSAGES = [{"role": "system", "content": "S"}, {"role": "user", "content": 'hé "q"'}]
CHAT = (
    "{% for m in messages %}<{{ m.role }}>{{ m.content }}\n{% endfor %}"
    "{% if add_generation_prompt %}<assistant>{% endif %}"
)


def needs(engine: str) -> None:
    problem = engine_status(engine)
    if problem is not None:
        pytest.skip(problem)


@pytest.mark.parametrize("engine", ENGINES)
def test_every_engine_renders_a_chat(engine: str) -> None:
    needs(engine)
    text = render_with(engine, CHAT, MESSAGES, add_generation_prompt=True, variables={"bos_token": "<s>"})
    assert text == '<system>S\n<user>hé "q"\n<assistant>'


@pytest.mark.parametrize("engine", ENGINES)
def test_errors_carry_the_engine_kind_and_message(engine: str) -> None:
    needs(engine)
    with pytest.raises(EngineError) as raised:
        render_with(engine, "{{ raise_exception('roles must alternate') }}", MESSAGES)
    assert (raised.value.engine, raised.value.kind) == (engine, "raise")
    assert raised.value.message == "roles must alternate"
    with pytest.raises(EngineError) as raised:
        render_with(engine, "{% for %}", MESSAGES)
    assert raised.value.kind == "parse" and raised.value.message


@pytest.mark.parametrize("engine", ["hf-jinja", "llama.cpp"])
def test_child_engines_keep_one_process_and_leave_undefined_what_is_not_given(engine: str) -> None:
    needs(engine)
    probe = "{{ 'T' if tools is defined else 'F' }}{{ 'T' if add_generation_prompt is defined else 'F' }}"
    assert render_with(engine, probe, MESSAGES, tools=None, add_generation_prompt=None) == "FF"
    assert render_with(engine, probe, MESSAGES, tools=[{"type": "function"}], add_generation_prompt=False) == "TT"
    pid = runners._processes[engine].process.pid
    for index in range(50):
        assert render_with(engine, "{{ messages[0].content ~ n }}", MESSAGES, variables={"n": index}) == f"S{index}"
    assert runners._processes[engine].process.pid == pid


@pytest.mark.parametrize("engine", ["hf-jinja", "llama.cpp"])
def test_a_hanging_render_times_out_and_the_engine_recovers(engine: str, monkeypatch: pytest.MonkeyPatch) -> None:
    needs(engine)
    monkeypatch.setattr(runners, "TIMEOUT", 0.5)
    endless = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
    with pytest.raises(EngineError) as raised:
        render_with(engine, endless, MESSAGES)
    assert raised.value.kind == "timeout"
    assert render_with(engine, "ok", MESSAGES) == "ok"


def test_a_missing_engine_is_one_line_naming_the_install(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEMPLATEKIT_ENGINES_DIR", str(tmp_path))
    assert available_engines()[:1] == ("jinja2",)
    for engine in ("hf-jinja", "llama.cpp"):
        with pytest.raises(EngineUnavailableError) as raised:
            render_with(engine, "x", MESSAGES)
        assert "templatekit engines install" in str(raised.value) and "\n" not in str(raised.value)
    listing = subprocess.run(
        [sys.executable, "-m", "templatekit_cli", "engines", "list"],
        capture_output=True,
        text=True,
        env={**os.environ, "TEMPLATEKIT_ENGINES_DIR": str(tmp_path)},
    )
    assert listing.returncode == 0 and "jinja2     available" in listing.stdout
    assert "llama.cpp  missing: " in listing.stdout and "Traceback" not in listing.stderr


def test_installing_without_node_says_what_to_install(tmp_path) -> None:
    env = {**os.environ, "TEMPLATEKIT_ENGINES_DIR": str(tmp_path), "PATH": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "templatekit_cli", "engines", "install", "hf-jinja"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert done.returncode == 11 and "Traceback" not in done.stderr
    assert "hf-jinja needs node and npm" in done.stderr


def test_installing_again_is_a_no_op() -> None:
    from templatekit.engines import install

    for engine in ("hf-jinja", "llama.cpp"):
        needs(engine)
        assert install.install(engine) is False
