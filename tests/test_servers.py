"""Server profiles: what each server hands its engine, and the result against the real engines.

Profiles are pure functions (tested directly); rendering goes through the real engines (skipped
with the install hint when an engine is missing).  The pipeline comparison over the corpus uses
every third corpus template to keep the suite fast.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import FIXTURES, read_template
from engine_outcomes import PARITY_CASES, TOKENS

from templatekit import relax
from templatekit.engines import EngineError, engine_status, render_with
from templatekit.rules.portability import explain, find_constructs
from templatekit.servers import SERVERS, Prepared, available_servers, engine_of, profile, render
from templatekit.servers.llama_caps import llama_cpp_caps
from templatekit.syntax import parse

CHAT = (
    "{{ bos_token }}{% for m in messages %}<{{ m.role }}>{{ m.content }}\n{% endfor %}"
    "{% if add_generation_prompt %}<assistant>{% endif %}"
)
NO_SYSTEM = "{% for m in messages %}{% if m.role == 'user' %}U:{{ m.content }}{% elif m.role == 'assistant' %}A:{{ m.content }}{% endif %}{% endfor %}"
PROFILES = [name for name in SERVERS if name != "vllm"]  # vllm's profile has its own tests


def needs(engine: str) -> None:
    problem = engine_status(engine)
    if problem is not None:
        pytest.skip(problem)


def prepare(server: str, template: str, messages, tools=None, add_generation_prompt=True, **variables) -> Prepared:
    return profile(server).prepare(
        template,
        messages,
        tools=tools,
        add_generation_prompt=add_generation_prompt,
        variables={"bos_token": "<s>", **variables},
    )


def test_every_profile_names_its_engine_and_cites_its_source() -> None:
    for name in PROFILES:
        module = profile(name)
        assert module.NAME == name and module.ENGINE in ("jinja2", "minijinja", "hf-jinja", "llama.cpp")
        assert "Source" in module.__doc__ or "source" in module.__doc__, name


def test_llama_server_rewrites_requests_as_common_chat_does() -> None:
    messages = [
        {"role": "developer", "content": "D"},
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
        {"role": "assistant", "content": None},
    ]
    prepared = prepare("llama-server", CHAT, messages, tools=[], add_generation_prompt=False)
    assert prepared.messages == [
        {"role": "system", "content": "D"},
        {"role": "user", "content": "a\nb"},
        {"role": "assistant", "content": ""},
    ]
    assert prepared.tools is None and prepared.add_generation_prompt is None  # left undefined
    assert prepared.variables["enable_thinking"] is True and prepared.strip_leading == "<s>"
    gpt_oss = prepare("llama-server", CHAT + "<|channel|>", messages)
    assert gpt_oss.messages[0]["role"] == "developer"
    folded = prepare("llama-server", NO_SYSTEM, [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}])
    assert folded.messages == [{"role": "user", "content": "S\nU"}]
    with pytest.raises(ValueError, match="Unsupported content part type"):
        prepare("llama-server", CHAT, [{"role": "user", "content": [{"type": "image"}]}])


def test_llama_server_strips_the_leading_bos_and_leaves_undefined_what_it_does_not_send() -> None:
    needs("llama.cpp")
    probe = (
        "{{ bos_token }}{{ 'T' if tools is defined else 'F' }}{{ 'T' if add_generation_prompt is defined else 'F' }}"
    )
    assert (
        render(probe, [{"role": "user", "content": "x"}], server="llama-server", special_tokens={"bos_token": "<s>"})
        == "FF"
    )
    assert (
        render(
            probe,
            [{"role": "user", "content": "x"}],
            server="llama-server",
            add_generation_prompt=True,
            tools=[{"type": "function", "function": {"name": "f"}}],
            special_tokens={"bos_token": "<s>"},
        )
        == "TT"
    )


def test_the_caps_port_agrees_with_llama_cpps_own_probe(corpus) -> None:
    needs("llama.cpp")
    from templatekit.engines.runners import llama_cpp_caps as real_caps

    agree, differ = 0, []
    for path in corpus:
        text = read_template(path)
        try:
            real = real_caps(text)
        except EngineError:
            continue  # llama.cpp cannot parse it: llama-server refuses the template at start-up
        mine = dataclasses.asdict(llama_cpp_caps(text))
        if mine == real:
            agree += 1
        else:
            differ.append((path.name, {key: (mine[key], real[key]) for key in real if mine[key] != real[key]}))
    print(f"caps: {agree} agree, {len(differ)} differ: {differ}")
    assert len(differ) <= 5 and agree >= 145  # the rest: probe renders the two engines answer differently


def test_the_caps_port_agrees_on_relaxed_templates_too() -> None:
    """What the relax checks need: the port gives llama.cpp's answer for original and relaxed alike."""
    needs("llama.cpp")
    from templatekit.engines.runners import llama_cpp_caps as real_caps

    for path in sorted((FIXTURES / "templates").glob("*.jinja")):
        text = read_template(path)
        result = relax(text)
        for version in (text, result.text) if result.text else (text,):
            user = [{"role": "user", "content": "x"}]
            try:
                real = real_caps(version)
                alike = render_with("llama.cpp", version, user, variables={"bos_token": ""}) == render_with(
                    "jinja2", version, user, variables={"bos_token": ""}
                )
            except EngineError:
                alike = False
            if not alike:
                continue  # llama.cpp renders it otherwise (a TK801 construct), so its probes see other renders
            assert dataclasses.asdict(llama_cpp_caps(version)) == real, path.name


def test_tgi_flattens_messages_and_renders_without_trim_blocks() -> None:
    prepared = prepare(
        "tgi",
        CHAT,
        [
            {
                "role": "user",
                "name": "bob",
                "content": [{"type": "text", "text": "a"}, {"type": "image_url", "image_url": {"url": "u"}}],
            }
        ],
        add_generation_prompt=False,
    )
    assert prepared.messages == [{"role": "user", "content": "a![](u)"}] and prepared.add_generation_prompt is True
    assert prepared.variables["tools"] is None
    needs("minijinja")
    assert render("{% if true %}\nx{% endif %}", [], server="tgi") == "\nx"
    assert render("{% if true %}\nx{% endif %}", [], server="transformers") == "x"


def test_sglang_detects_the_content_format_and_passes_function_objects() -> None:
    loops = "{% for message in messages %}{% for part in message['content'] %}{{ part.text }}{% endfor %}{% endfor %}"
    assert profile("sglang").content_format(loops) == "openai"
    assert profile("sglang").content_format(CHAT) == "string"
    parts = [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    prepared = prepare(
        "sglang",
        CHAT,
        [
            {"role": "user", "content": parts, "name": "x"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [{"id": "1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}],
            },
        ],
        tools=[tool],
    )
    assert prepared.messages[0] == {"role": "user", "content": "a b"}
    assert prepared.messages[1]["tool_calls"][0]["function"]["arguments"] == {"a": 1}
    assert prepared.tools == [{"description": None, "name": "f", "parameters": {"type": "object"}, "strict": False}]
    with pytest.raises(ValueError, match="'role' must be one of"):
        prepare("sglang", CHAT, [{"role": "ipython", "content": "x"}])


def test_transformers_js_leaves_tools_undefined_when_not_given() -> None:
    needs("hf-jinja")
    probe = "{{ 'T' if tools is defined else 'F' }}"
    assert render(probe, [], server="transformers.js") == "F"
    assert render(probe, [], server="transformers") == "T"


@pytest.mark.slow
@pytest.mark.parametrize("server", ["llama-server", "transformers.js", "sglang"])
def test_server_pipelines_render_as_transformers_would_on_the_same_inputs_or_a_row_says_why(corpus, server) -> None:
    """The server's engine on the prepared inputs, against jinja2 on the same prepared inputs."""
    engine = engine_of(server)
    needs(engine)
    counts = {"equal": 0, "explained": 0, "rejected": 0}
    unexplained = []
    for path in corpus[::3]:
        text = read_template(path)
        uses = find_constructs(parse(text), text)
        for case in PARITY_CASES:
            variables = {**TOKENS, **case.get("kwargs", {})}
            try:
                prepared = profile(server).prepare(
                    text,
                    case["messages"],
                    tools=case.get("tools"),
                    add_generation_prompt=case.get("add_generation_prompt", False),
                    variables=variables,
                )
            except ValueError:
                counts["rejected"] += 1  # the server answers 400 before rendering
                continue
            outcomes = []
            for name in ("jinja2", engine):  # both given tools and add_generation_prompt defined, as jinja2 must be
                try:
                    outcomes.append(
                        (
                            "ok",
                            render_with(
                                name,
                                text,
                                prepared.messages,
                                tools=None,
                                add_generation_prompt=bool(prepared.add_generation_prompt),
                                variables={**prepared.variables, "tools": prepared.tools},
                            ),
                        )
                    )
                except EngineError as error:
                    outcomes.append(("error", error.message))
            expected, actual = outcomes
            if expected == actual or expected[0] == actual[0] == "error":
                counts["equal"] += 1
            elif explain(engine, uses, expected, actual) is not None:
                counts["explained"] += 1
            else:
                unexplained.append((path.name, case["id"]))
    print(
        f"{server}: {len(corpus[::3])} templates x {len(PARITY_CASES)} conversations: {counts}, "
        f"unexplained {len(unexplained)}"
    )
    assert len(unexplained) <= {"llama-server": 0, "transformers.js": 6, "sglang": 0}[server], unexplained


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "templatekit_cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=300,
    )


def test_render_and_diff_with_server_on_the_command_line(tmp_path: Path) -> None:
    conversation = tmp_path / "conv.json"
    conversation.write_text(json.dumps([{"role": "system", "content": "S"}, {"role": "user", "content": "a"}]))
    template = FIXTURES / "templates" / "parity_check.jinja"
    for server in available_servers():
        if server == "vllm":
            continue
        done = run_cli(
            "render", str(template), "--messages", str(conversation), "--server", server, "--add-generation-prompt"
        )
        assert done.returncode in (0, 1) and "Traceback" not in done.stderr, (server, done.stderr)
    if "llama-server" in available_servers():
        done = run_cli("render", str(template), "--messages", str(conversation), "--server", "llama-server")
        assert done.returncode == 0 and done.stdout.startswith("<turn>user\nS"), done.stdout  # no leading <s>


def test_a_missing_engine_is_one_line_and_exit_11(tmp_path: Path) -> None:
    conversation = tmp_path / "conv.json"
    conversation.write_text('[{"role": "user", "content": "a"}]')
    done = run_cli(
        "render",
        str(FIXTURES / "templates" / "parity_check.jinja"),
        "--messages",
        str(conversation),
        "--server",
        "llama-server",
        env={"TEMPLATEKIT_ENGINES_DIR": str(tmp_path)},
    )
    assert done.returncode == 11 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and "templatekit engines install llama.cpp" in done.stderr


def test_verify_under_servers_checks_the_relax_contract_there(tmp_path: Path) -> None:
    servers = [name for name in ("llama-server", "tgi", "sglang") if name in available_servers()]
    if not servers:
        pytest.skip("no server engine installed")
    original = FIXTURES / "templates" / "parity_check.jinja"
    relaxed = tmp_path / "relaxed.jinja"
    relaxed.write_text(relax(read_template(original)).text, encoding="utf-8")
    done = run_cli(
        "verify",
        str(original),
        str(relaxed),
        "--normalize",
        "merge",
        "--examples",
        "200",
        "--servers",
        ",".join(servers),
    )
    assert done.returncode in (0, 1) and "Traceback" not in done.stderr, done.stderr
    for server in servers:  # each server reports on its own (llama-server may fail: relax's frame is not yet portable)
        assert f"\n{server}: " in "\n" + done.stdout, done.stdout
    for server in set(servers) & {"tgi", "sglang"}:
        assert f"{server}: ok: 200 conversations" in done.stdout, done.stdout
    bad = run_cli("verify", str(original), str(relaxed), "--servers", "nginx")
    assert bad.returncode == 2 and "unknown server 'nginx'" in bad.stderr
