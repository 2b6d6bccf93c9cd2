"""``templatekit show`` on local sources and, through the real huggingface_hub client, on a fake Hub.

Every CLI call is a subprocess: HF_ENDPOINT, HF_HOME and HF_HUB_OFFLINE are read when
huggingface_hub is imported. One fake Hub serves the whole module (``fake_hub`` fixture).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import FIXTURES, run_templatekit
from fakehub import FakeHub, files_from_folder, hub_environment

SOURCES = FIXTURES / "sources"
GATED_TEXT = "{{ bos_token }}{% for m in messages %}{{ m['content'] }}{% endfor %}"
HUB_TOKENS = {"hf_granted", "hf_other"}
HUB_REPOS = {
    "org/chat": {
        "revisions": {
            "main": files_from_folder(SOURCES / "jinja-files"),
            "v1": files_from_folder(SOURCES / "config-string"),
        }
    },
    "org/named": {"revisions": {"main": files_from_folder(SOURCES / "config-list")}},
    "org/vision": {"revisions": {"main": files_from_folder(SOURCES / "multimodal")}},
    "org/gated": {"revisions": {"main": {"chat_template.jinja": GATED_TEXT}}, "gated": True, "granted": {"hf_granted"}},
    "org/private": {
        "revisions": {"main": {"chat_template.jinja": GATED_TEXT}},
        "private": True,
        "granted": {"hf_granted"},
    },
    "org/weights-only": {"revisions": {"main": {"config.json": "{}", "README.md": "# no template"}}},
    "org/broken": {"revisions": {"main": files_from_folder(SOURCES / "malformed")}},
}


def assert_fails(result: subprocess.CompletedProcess[bytes], code: int, message: str) -> None:
    """Exit ``code``, nothing on stdout, and exactly one stderr line starting with ``message``."""
    stderr = result.stderr.decode()
    assert result.returncode == code, stderr
    assert stderr.startswith(f"templatekit: error: {message}"), stderr
    assert stderr.count("\n") == 1 and stderr.endswith("\n"), stderr
    assert "Traceback" not in stderr and result.stdout == b""


def ok(result: subprocess.CompletedProcess[bytes]) -> bytes:
    assert (result.returncode, result.stderr) == (0, b""), result.stderr.decode()
    return result.stdout


@pytest.fixture
def hub_env(fake_hub: FakeHub, tmp_path: Path) -> dict[str, str]:
    """Online, with an empty cache of its own."""
    return fake_hub.environment(tmp_path / "hf")


# -- local sources --------------------------------------------------------------------------------


def test_local_file_is_printed_byte_for_byte(tmp_path: Path) -> None:
    raw = "{%- for m in messages -%}\r\n{{ m['content'] }} — ok\r{% endfor %}".encode()
    (tmp_path / "t.jinja").write_bytes(raw)
    assert ok(run_templatekit("show", str(tmp_path / "t.jinja"))) == raw
    assert ok(run_templatekit("show", str(SOURCES / "simple.jinja"))) == (SOURCES / "simple.jinja").read_bytes()


def test_stdin_is_printed_byte_for_byte() -> None:
    raw = b"{{ bos_token }}\r\n{% for m in messages %}{{ m['content'] }}{% endfor %}"
    assert ok(run_templatekit("show", "-", stdin=raw)) == raw


def test_local_model_folder_default_and_named_template() -> None:
    folder = SOURCES / "jinja-files"
    assert ok(run_templatekit("show", str(folder))) == (folder / "chat_template.jinja").read_bytes()
    assert (
        ok(run_templatekit("show", str(folder), "--template-name", "rag"))
        == (folder / "additional_chat_templates" / "rag.jinja").read_bytes()
    )


def test_list_on_a_local_multimodal_folder() -> None:
    listing = ok(run_templatekit("show", "fixtures/sources/multimodal", "--list")).decode()
    assert listing == (
        "default    tokenizer  fixtures/sources/multimodal/tokenizer_config.json  (used without --template-name)\n"
        "processor  processor  fixtures/sources/multimodal/chat_template.json\n"
        "special tokens: bos_token='<bos>', eos_token='<eos>', image_token='<image_soft_token>'\n"
        "note: processor template fixtures/sources/multimodal/chat_template.json differs from the tokenizer's "
        "'default' (fixtures/sources/multimodal/tokenizer_config.json); vLLM uses the processor's for requests "
        "without tools: select it by the name 'processor'\n"
    )


def test_invalid_jinja_is_printed_as_is_and_flagged_by_list() -> None:
    path = SOURCES / "invalid.jinja"
    shown = run_templatekit("show", str(path))
    assert shown.stdout == path.read_bytes() and shown.returncode == 8  # printed, and exit 8 like every command
    assert shown.stderr.decode().count("\n") == 1 and "invalid Jinja" in shown.stderr.decode()
    listing = ok(run_templatekit("show", str(path), "--list")).decode()
    assert "(used without --template-name; invalid Jinja: line 1: unexpected end of template" in listing


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (
            ["fixtures/sources/malformed"],
            6,
            "malformed JSON in fixtures/sources/malformed/tokenizer_config.json: line 4 column 1: ",
        ),
        (["fixtures/sources/no-template"], 7, "no chat template in fixtures/sources/no-template: looked for "),
        (
            ["fixtures/sources/config-list", "-n", "chatml"],
            7,
            "fixtures/sources/config-list has no template named 'chatml'; available: default, tool_use, rag",
        ),
        (["fixtures/sources/nope.jinja"], 3, "no such file or folder: fixtures/sources/nope.jinja"),
        (["fixtures/sources/config-list", "--list", "-n", "rag"], 2, "--list shows every template"),
    ],
)
def test_local_errors(args: list[str], code: int, message: str) -> None:
    assert_fails(run_templatekit("show", *args), code, message)


def test_help_teaches_with_examples() -> None:
    text = ok(run_templatekit("show", "--help")).decode()
    for expected in (
        "Examples:",
        "templatekit show google/gemma-3-12b-it --list",
        "--template-name",
        "--revision",
        "--token",
        "Exit codes:",
        "HF_HUB_OFFLINE",
    ):
        assert expected in text


# -- the fake Hub -------------------------------------------------------------------------------


def test_hub_repo_with_template_files(fake_hub: FakeHub, hub_env: dict[str, str]) -> None:
    expected = (SOURCES / "jinja-files" / "chat_template.jinja").read_bytes()
    assert ok(run_templatekit("show", "org/chat", env=hub_env)) == expected
    commit = fake_hub.commit("org/chat")
    listing = ok(run_templatekit("show", "org/chat", "--list", env=hub_env)).decode().splitlines()
    assert listing[:3] == [
        f"default   tokenizer  org/chat@{commit}:chat_template.jinja  (used without --template-name)",
        f"rag       tokenizer  org/chat@{commit}:additional_chat_templates/rag.jinja",
        f"tool_use  tokenizer  org/chat@{commit}:additional_chat_templates/tool_use.jinja",
    ]
    assert listing[4] == (
        f"note: org/chat@{commit}:tokenizer_config.json also has a chat_template, ignored: "
        "chat_template.jinja and additional_chat_templates/ take priority (as in transformers)"
    )
    rag = (SOURCES / "jinja-files" / "additional_chat_templates" / "rag.jinja").read_bytes()
    assert ok(run_templatekit("show", "org/chat", "-n", "rag", env=hub_env)) == rag


def test_hub_revision_by_branch_and_by_commit(fake_hub: FakeHub, hub_env: dict[str, str]) -> None:
    expected = _config_template(SOURCES / "config-string")
    assert ok(run_templatekit("show", "org/chat", "--revision", "v1", env=hub_env)) == expected
    commit = fake_hub.commit("org/chat", "v1")
    listing = ok(run_templatekit("show", "org/chat", "--revision", commit, "--list", env=hub_env)).decode()
    assert listing.startswith(f"default  tokenizer  org/chat@{commit}:tokenizer_config.json")


def test_hub_named_template_list(fake_hub: FakeHub, hub_env: dict[str, str]) -> None:
    commit = fake_hub.commit("org/named")
    listing = ok(run_templatekit("show", "org/named", "--list", env=hub_env)).decode().splitlines()
    assert [line.split()[:3] for line in listing[:3]] == [
        [name, "tokenizer", f"org/named@{commit}:tokenizer_config.json"] for name in ("default", "tool_use", "rag")
    ]
    assert listing[3] == "special tokens: bos_token='<|begin|>', eos_token='<|end|>'"
    tool_use = ok(run_templatekit("show", "org/named", "--template-name", "tool_use", env=hub_env))
    assert tool_use.startswith(b"{% if tools %}<|tools|>")


def test_hub_processor_template(fake_hub: FakeHub, hub_env: dict[str, str]) -> None:
    listing = ok(run_templatekit("show", "org/vision", "--list", env=hub_env)).decode()
    assert f"processor  processor  org/vision@{fake_hub.commit('org/vision')}:chat_template.json\n" in listing
    assert "vLLM uses the processor's for requests without tools" in listing


@pytest.mark.parametrize("repo", ["org/gated", "org/private"])
def test_gated_and_private_repos_with_a_granted_token(fake_hub: FakeHub, hub_env: dict[str, str], repo: str) -> None:
    assert ok(run_templatekit("show", repo, "--token", "hf_granted", env=hub_env)) == GATED_TEXT.encode()
    resolved = [token for method, path, token in fake_hub.requests if path.startswith(f"/{repo}/resolve/")]
    assert "hf_granted" in resolved


def test_gated_repo_with_token_from_environment(fake_hub: FakeHub, hub_env: dict[str, str]) -> None:
    env = {**hub_env, "HF_TOKEN": "hf_granted"}
    assert ok(run_templatekit("show", "org/gated", env=env)) == GATED_TEXT.encode()


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (
            ["org/gated"],
            4,
            "org/gated is a gated repo: request access at {endpoint}/org/gated, then pass --token, "
            "set HF_TOKEN or run `hf auth login`",
        ),
        (
            ["org/gated", "--token", "hf_other"],
            4,
            "org/gated is a gated repo and your token has no access to it: "
            "request access at {endpoint}/org/gated with the account that owns "
            "the token, then retry",
        ),
        (["org/chat", "--token", "hf_bogus"], 4, "access to org/chat on {endpoint} was refused (401)"),
        (
            ["org/nope"],
            3,
            "repo org/nope not found on {endpoint} (nor is it a local path); if it is private, "
            "pass --token or set HF_TOKEN",
        ),
        (
            ["org/private", "--token", "hf_other"],
            3,
            "repo org/private not found on {endpoint} (nor is it a local "
            "path); if it is private, pass --token or set HF_TOKEN",
        ),
        (["org/chat", "--revision", "v9"], 3, "revision 'v9' not found in repo org/chat on {endpoint}"),
        (["org/weights-only"], 7, "no chat template in repo org/weights-only@{commit}: looked for "),
        (["org/broken"], 6, "malformed JSON in org/broken@{commit}:tokenizer_config.json: line 4 column 1: "),
    ],
    ids=[
        "gated-no-token",
        "gated-token-without-access",
        "invalid-token",
        "missing-repo",
        "private-repo-token-without-access",
        "missing-revision",
        "no-template-files",
        "malformed-json",
    ],
)
def test_hub_errors(fake_hub: FakeHub, hub_env: dict[str, str], args: list[str], code: int, message: str) -> None:
    commit = fake_hub.commit(args[0]) if args[0] in HUB_REPOS else None
    assert_fails(
        run_templatekit("show", *args, env=hub_env), code, message.format(endpoint=fake_hub.endpoint, commit=commit)
    )


def test_library_on_the_hub_records_repo_and_commit_and_resolves_files(
    fake_hub: FakeHub, hub_env: dict[str, str]
) -> None:
    script = (
        "from templatekit.sources import load, resolve_file\n"
        "from templatekit.errors import SourceNotFoundError\n"
        "template = load('org/chat', revision='v1').get()\n"
        "print(template.repo_id, template.commit, template.path.endswith('/tokenizer_config.json'), sep='|')\n"
        "print(open(resolve_file('org/named', 'tokenizer_config.json'), encoding='utf-8').read()[:1])\n"
        "try:\n"
        "    resolve_file('org/named', 'tokenizer.json', revision='main')\n"
        "except SourceNotFoundError as error:\n"
        "    print(type(error).__name__, error.filename, error, sep='|')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, env={**os.environ, **hub_env}
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"org/chat|{fake_hub.commit('org/chat', 'v1')}|True",
        "{",
        "SourceNotFoundError|tokenizer.json|repo org/named at revision 'main' has no file tokenizer.json",
    ]


def test_offline_with_and_without_cache(fake_hub: FakeHub, tmp_path: Path) -> None:
    online, offline = fake_hub.environment(tmp_path), fake_hub.environment(tmp_path, offline=True)
    cache = tmp_path / "hub"
    assert_fails(
        run_templatekit("show", "org/named", env=offline),
        5,
        f"org/named is not in the Hugging Face cache ({cache}) and offline mode is on (HF_HUB_OFFLINE=1)",
    )
    expected = ok(run_templatekit("show", "org/named", "-n", "rag", env=online))
    served = len(fake_hub.requests)
    assert ok(run_templatekit("show", "org/named", "-n", "rag", env=offline)) == expected
    listing = ok(run_templatekit("show", "org/named", "--list", env=offline)).decode()
    assert listing.startswith(f"default   tokenizer  org/named@{fake_hub.commit('org/named')}:tokenizer_config.json")
    assert len(fake_hub.requests) == served  # nothing asked of the Hub while offline
    assert_fails(
        run_templatekit("show", "org/named", "--revision", "v1", env=offline),
        5,
        f"org/named at revision 'v1' is not in the Hugging Face cache ({cache}) and offline mode is on",
    )


def test_unreachable_hub_uses_the_cache_or_says_it_cannot_reach(fake_hub: FakeHub, tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port nobody listens on: connections are refused at once
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}"
    expected = ok(run_templatekit("show", "org/named", env=fake_hub.environment(tmp_path)))
    unreachable = hub_environment(dead, tmp_path)
    assert ok(run_templatekit("show", "org/named", env=unreachable)) == expected
    assert_fails(
        run_templatekit("show", "org/chat", env=unreachable),
        5,
        f"cannot reach {dead} (ConnectError) and org/chat is not in the Hugging Face cache",
    )


def _config_template(folder: Path) -> bytes:
    import json

    return json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))["chat_template"].encode()
