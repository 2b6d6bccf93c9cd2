"""GGUF files as sources: reading, the relaxed copy, atomicity, memory, the Hub, drift, bad inputs.

Every GGUF file is written by llama.cpp's own ``gguf.GGUFWriter`` and every copy is checked
with its ``gguf.GGUFReader`` and byte comparisons; the CLI runs in real subprocesses.
"""

from __future__ import annotations

import json
import os
import re
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import gguf
import pytest
from conftest import CORPUS_DIR, FIXTURES, read_template
from gguf_files import VOCABULARY, data_section, tokenizer_config, write_gguf, write_sparse_gguf

from templatekit import gguf_file
from templatekit.errors import MalformedFileError, NoChatTemplateError, UnsupportedVersionError
from templatekit.rewrite import relax
from templatekit.rules import lint
from templatekit.sources import load
from templatekit.verification import verify

CLI = [sys.executable, "-c", "from templatekit_cli.main import main; main()"]
PARITY = read_template(FIXTURES / "templates" / "parity_check.jinja")
SYSTEM_REFUSAL = read_template(FIXTURES / "templates" / "system_refusal.jinja")
GEMMA3 = CORPUS_DIR / "google--gemma-3-27b-it.jinja"
MISTRAL = CORPUS_DIR / "mistralai--Mistral-7B-Instruct-v0.1.jinja"


def run(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=timeout
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], code: int, fragment: str) -> None:
    assert result.returncode == code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("templatekit: error:"), result.stderr
    assert fragment in lines[0], lines[0]
    assert "Traceback" not in result.stderr


def corpus_template(path: Path) -> str:
    if not path.is_file():
        pytest.skip(f"real-template corpus file not found: {path} (clone with ../shared beside it)")
    return read_template(path)


# Each case: templates, BOS and EOS token texts, add_bos_token.
CASES = {
    "parity": lambda: ({"default": PARITY}, "<s>", "</s>", True),
    "named": lambda: ({"default": PARITY, "tool_use": SYSTEM_REFUSAL}, "<s>", "</s>", None),
    "gemma3": lambda: ({"default": corpus_template(GEMMA3)}, "<bos>", "<eos>", True),
    "mistral": lambda: ({"default": corpus_template(MISTRAL)}, "<s>", "</s>", True),
}


@pytest.fixture(params=sorted(CASES))
def equivalent(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, Path]:
    """A GGUF file and the tokenizer_config.json that says the same (templates, special tokens)."""
    templates, bos, eos, add_bos = CASES[request.param]()
    model = write_gguf(tmp_path / "model.gguf", templates, bos=bos, eos=eos, add_bos=add_bos)
    config = tokenizer_config(tmp_path / "hf", templates, bos=bos, eos=eos, add_bos=add_bos)
    return model, config


def comparable(findings: list) -> list[tuple]:
    return [
        (finding.code, finding.template_name, finding.line, finding.column, finding.message) for finding in findings
    ]


# --- reading ------------------------------------------------------------------------------------


def test_a_gguf_file_reads_as_its_tokenizer_config_does(equivalent: tuple[Path, Path]) -> None:
    model, config = equivalent
    from_gguf, from_config = load(str(model)), load(str(config))
    assert from_gguf.names == from_config.names
    for name in from_config.names:
        ours, theirs = from_gguf.get(name), from_config.get(name)
        assert ours.text == theirs.text
        assert dict(ours.special_tokens) == dict(theirs.special_tokens)
        assert ours.add_bos_token == theirs.add_bos_token
        assert ours.container == "gguf" and ours.path == str(model)


def test_lint_relax_and_verify_agree_with_the_tokenizer_config(equivalent: tuple[Path, Path]) -> None:
    model, config = equivalent
    from_gguf, from_config = load(str(model)), load(str(config))
    for name in from_config.names:
        ours, theirs = from_gguf.get(name), from_config.get(name)
        assert comparable(lint(ours)) == comparable(lint(theirs))
        relaxed_ours, relaxed_theirs = relax(ours), relax(theirs)
        assert relaxed_ours.status == relaxed_theirs.status
        # the relaxed text names its source; otherwise it is the same
        assert relaxed_ours.text.replace(ours.origin, theirs.origin) == relaxed_theirs.text
        if relaxed_ours.changed:
            outcome_ours = verify(ours, relaxed_ours.text, examples=60, normalize="merge")
            outcome_theirs = verify(theirs, relaxed_theirs.text, examples=60, normalize="merge")
            assert outcome_ours.ok and outcome_theirs.ok
            assert outcome_ours.checks == outcome_theirs.checks


def test_show_and_lint_cli_agree_with_the_tokenizer_config(equivalent: tuple[Path, Path]) -> None:
    model, config = equivalent
    assert run("show", str(model)).stdout == run("show", str(config)).stdout
    ours, theirs = run("lint", str(model), "--format", "json"), run("lint", str(config), "--format", "json")
    assert ours.returncode == theirs.returncode
    assert _template_positions(ours.stdout.replace(str(model), "X")) == _template_positions(
        theirs.stdout.replace(str(config), "X")
    )


def _template_positions(report: str) -> list[dict]:
    """Findings at their template line: lint reports a tokenizer_config.json's at the line of
    its JSON string, with "(template line L:C)" in the message."""
    findings = json.loads(report)["findings"]
    for finding in findings:
        position = re.search(r" \(template line (\d+):(\d+)\)$", finding["message"])
        if position is not None:
            finding["message"] = finding["message"][: position.start()]
            finding["line"], finding["column"] = int(position.group(1)), int(position.group(2))
        finding.pop("end_line", None)
        finding.pop("end_column", None)
    return sorted(
        findings, key=lambda finding: (finding["line"], finding["column"], finding["code"], finding["message"])
    )


def test_show_list_names_the_gguf_templates_and_tokens(tmp_path: Path) -> None:
    model = write_gguf(tmp_path / "model.gguf", {"default": PARITY, "tool_use": SYSTEM_REFUSAL})
    listing = run("show", str(model), "--list")
    assert listing.returncode == 0, listing.stderr
    assert "default" in listing.stdout and "tool_use" in listing.stdout
    assert "bos_token='<s>'" in listing.stdout and "eos_token='</s>'" in listing.stdout
    named = run("show", str(model), "--template-name", "tool_use")
    assert named.stdout == SYSTEM_REFUSAL


def test_bos_rules_see_the_gguf_vocabulary(tmp_path: Path) -> None:
    template = "{{ bos_token }}{% for m in messages %}{{ m['content'] }}{{ eos_token }}{% endfor %}"
    adds = write_gguf(tmp_path / "adds.gguf", {"default": template}, add_bos=True)
    assert "TK501" in {finding.code for finding in lint(load(str(adds)).get())}
    silent = write_gguf(tmp_path / "silent.gguf", {"default": template}, add_bos=False)
    assert "TK501" not in {finding.code for finding in lint(load(str(silent)).get())}


def test_reading_stops_before_the_tensor_data(tmp_path: Path) -> None:
    model = write_sparse_gguf(tmp_path / "big.gguf", PARITY, hole_bytes=1 << 30, tail_bytes=1 << 20)
    metadata = gguf_file.read_metadata(model)
    reader = gguf.GGUFReader(str(model))
    assert metadata.data_offset == reader.data_offset
    assert metadata.tensor_count == len(reader.tensors)
    with open(f"/proc/{os.getpid()}/io") as before_file:
        before = int(dict(line.split(": ") for line in before_file.read().splitlines())["rchar"])
    gguf_file.read_metadata(model)
    with open(f"/proc/{os.getpid()}/io") as after_file:
        after = int(dict(line.split(": ") for line in after_file.read().splitlines())["rchar"])
    assert after - before < metadata.data_offset + (1 << 17)  # the /proc read itself is a few hundred bytes


# --- the relaxed copy ---------------------------------------------------------------------------


def fields_of(path: Path) -> dict[str, tuple]:
    reader = gguf.GGUFReader(str(path))
    return {name: (tuple(field.types), field.contents()) for name, field in reader.fields.items()}


@pytest.mark.parametrize("alignment", [None, 64])
def test_relaxed_copy_changes_the_template_only(tmp_path: Path, alignment: int | None) -> None:
    model = write_gguf(tmp_path / "model.gguf", {"default": PARITY, "tool_use": SYSTEM_REFUSAL}, alignment=alignment)
    out = tmp_path / "model.relaxed.gguf"
    result = run("relax", str(model), "-o", str(out), "--all", "--examples", "60")
    assert result.returncode == 0, result.stderr
    relaxed = {
        name: relax(template).text
        for name, template in ((template.name, template) for template in load(str(model)).templates)
    }
    before, after = fields_of(model), fields_of(out)
    assert after["tokenizer.chat_template"][1] == relaxed["default"] != PARITY
    assert after["tokenizer.chat_template.tool_use"][1] == relaxed["tool_use"] != SYSTEM_REFUSAL
    changed = {"tokenizer.chat_template", "tokenizer.chat_template.tool_use"}
    assert {key: value for key, value in before.items() if key not in changed} == {
        key: value for key, value in after.items() if key not in changed
    }
    assert list(before) == list(after)  # same keys, same order
    assert data_section(out) == data_section(model)  # the tensor region, byte for byte
    source_reader, copy_reader = gguf.GGUFReader(str(model)), gguf.GGUFReader(str(out))
    assert copy_reader.alignment == source_reader.alignment == (alignment or 32)
    assert copy_reader.data_offset % copy_reader.alignment == 0
    for ours, theirs in zip(source_reader.tensors, copy_reader.tensors, strict=True):
        assert (ours.name, ours.tensor_type, list(ours.shape), ours.data_offset - source_reader.data_offset) == (
            theirs.name,
            theirs.tensor_type,
            list(theirs.shape),
            theirs.data_offset - copy_reader.data_offset,
        )
        assert ours.data.tobytes() == theirs.data.tobytes()
    # every other key/value entry is the original's raw bytes
    source_metadata, copy_metadata = gguf_file.read_metadata(model), gguf_file.read_metadata(out)
    source_bytes, copy_bytes = model.read_bytes(), out.read_bytes()
    for key, field in source_metadata.fields.items():
        if key not in changed:
            copied = copy_metadata.fields[key]
            assert source_bytes[field.start : field.end] == copy_bytes[copied.start : copied.end]
    assert source_bytes[:24] == copy_bytes[:24]  # magic, version, counts
    assert (
        source_bytes[source_metadata.tensor_info_start : source_metadata.tensor_info_end]
        == copy_bytes[copy_metadata.tensor_info_start : copy_metadata.tensor_info_end]
    )


def test_a_big_endian_file_is_read_and_copied_in_its_byte_order(tmp_path: Path) -> None:
    model = write_gguf(tmp_path / "model.gguf", {"default": PARITY}, big_endian=True)
    template = load(str(model)).get()
    assert template.text == PARITY and template.special_tokens == {"bos_token": "<s>", "eos_token": "</s>"}
    out = tmp_path / "copy.gguf"
    gguf_file.write_copy(gguf_file.read_metadata(model), out, {"default": "relaxed"})
    reader = gguf.GGUFReader(str(out))
    assert reader.byte_order == "S" and reader.fields["tokenizer.chat_template"].contents() == "relaxed"
    assert data_section(out) == data_section(model)


def test_relaxed_copy_is_what_relax_writes_as_jinja(tmp_path: Path) -> None:
    model = write_gguf(tmp_path / "model.gguf", {"default": PARITY})
    copy, text = tmp_path / "copy.gguf", tmp_path / "relaxed.jinja"
    assert run("relax", str(model), "-o", str(copy), "--examples", "60").returncode == 0
    extracted = run("relax", str(model), "--format", "jinja", "-o", str(text), "--examples", "60")
    assert extracted.returncode == 0, extracted.stderr
    assert "--chat-template-file" in extracted.stderr
    assert text.read_text(encoding="utf-8") == load(str(copy)).get().text
    assert run("verify", str(model), str(copy), "--normalize", "merge", "--examples", "60").returncode == 0


def test_relax_in_place_keeps_the_original_as_backup(tmp_path: Path) -> None:
    model = write_gguf(tmp_path / "model.gguf", {"default": PARITY})
    original = model.read_bytes()
    result = run("relax", str(model), "--in-place", "--examples", "60")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "model.gguf.orig").read_bytes() == original
    backup = str(tmp_path / "model.gguf.orig")
    assert load(str(model)).get().text == relax(load(backup).get()).text.replace(backup, str(model))
    assert sorted(path.name for path in tmp_path.iterdir()) == ["model.gguf", "model.gguf.orig"]


def test_relax_never_writes_over_the_input(tmp_path: Path) -> None:
    model = write_gguf(tmp_path / "model.gguf", {"default": PARITY})
    original = model.read_bytes()
    assert_one_line_error(run("relax", str(model), "-o", str(model)), 9, "refusing to overwrite the input")
    assert model.read_bytes() == original
    assert_one_line_error(run("relax", str(model)), 2, "pass -o FILE")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["model.gguf"]


def test_write_copy_refuses_a_template_the_file_lacks(tmp_path: Path) -> None:
    model = write_gguf(tmp_path / "model.gguf", {"default": PARITY})
    with pytest.raises(ValueError, match="tool_use"):
        gguf_file.write_copy(gguf_file.read_metadata(model), tmp_path / "out.gguf", {"tool_use": "x"})
    assert sorted(path.name for path in tmp_path.iterdir()) == ["model.gguf"]


# --- atomicity and memory -----------------------------------------------------------------------


def _default_interrupt() -> None:
    """In the child: SIGINT back to its default, as in a terminal (a shell's background job, such as
    a CI runner's, starts children with SIGINT ignored, and Python then never raises KeyboardInterrupt)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_relax(model: Path, out: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [*CLI, "relax", str(model), "-o", str(out), "--no-verify"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        preexec_fn=_default_interrupt,
    )


def wait_for_temporary(folder: Path, process: subprocess.Popen[bytes], timeout: float = 120) -> Path:
    """The temporary output, as soon as it appears (the copy is under way)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        found = [path for path in folder.iterdir() if path.name.endswith(".tmp")]
        if found:
            return found[0]
        time.sleep(0.001)
    raise AssertionError(f"no temporary file appeared (exit {process.poll()})")


@pytest.fixture(scope="module")
def large_input(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4 GiB of tensors (a hole) then 256 MiB of real bytes: copying the tail takes a while."""
    folder = tmp_path_factory.mktemp("large")
    return write_sparse_gguf(folder / "large.gguf", PARITY, hole_bytes=4 << 30, tail_bytes=256 << 20)


@pytest.mark.parametrize("sent", [signal.SIGKILL, signal.SIGTERM, signal.SIGINT], ids=["SIGKILL", "SIGTERM", "SIGINT"])
def test_an_interrupted_copy_leaves_no_output(large_input: Path, tmp_path: Path, sent: int) -> None:
    out = tmp_path / "model.relaxed.gguf"
    process = start_relax(large_input, out)
    temporary = wait_for_temporary(tmp_path, process)
    process.send_signal(sent)
    process.wait(timeout=60)
    assert process.returncode in (-sent, 128 + sent), process.stderr.read() if process.stderr else ""
    assert not out.exists()
    if sent != signal.SIGKILL:
        assert not temporary.exists(), "SIGTERM and Ctrl-C must remove the temporary file"
        assert b"Traceback" not in process.stderr.read()
    else:
        temporary.unlink()  # SIGKILL cannot be caught: the temporary stays, the final name never appears
    assert list(tmp_path.iterdir()) == []


def test_copying_a_multi_gigabyte_file_takes_constant_memory(large_input: Path, tmp_path: Path) -> None:
    """Peak RSS of the copying process stays far below the file size, under an address-space cap."""
    out = tmp_path / "model.relaxed.gguf"
    cap = 2 << 30  # half the input's size: a process that loaded the tensors could not even map them
    measure = (
        "import resource, subprocess, sys\n"
        f"def cap(): resource.setrlimit(resource.RLIMIT_AS, ({cap}, {cap}))\n"
        f"done = subprocess.run({[*CLI, 'relax', str(large_input), '-o', str(out), '--no-verify']!r}, "
        "preexec_fn=cap, capture_output=True, text=True)\n"
        "print(done.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
        "sys.stderr.write(done.stderr)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", measure],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "OPENBLAS_NUM_THREADS": "1"},
    )
    code, peak_kib = (int(value) for value in result.stdout.split())
    assert code == 0, result.stderr
    assert peak_kib < 200 * 1024, f"peak RSS {peak_kib} KiB"
    assert large_input.stat().st_size > 4 << 30
    print(f"\npeak RSS copying {large_input.stat().st_size / 2**30:.2f} GiB: {peak_kib / 1024:.0f} MiB")
    source, copy = gguf_file.read_metadata(large_input), gguf_file.read_metadata(out)
    assert copy.file_size - copy.data_offset == source.file_size - source.data_offset
    tail = 256 << 20
    with large_input.open("rb") as original, out.open("rb") as copied:
        original.seek(-tail, os.SEEK_END)
        copied.seek(-tail, os.SEEK_END)
        while chunk := original.read(8 << 20):
            assert copied.read(8 << 20) == chunk
        for offset in (0, 1 << 30, 3 << 30):
            original.seek(source.data_offset + offset)
            copied.seek(copy.data_offset + offset)
            assert copied.read(4096) == original.read(4096)
    assert os.stat(out).st_blocks * 512 < 1 << 30, "holes in the input stay holes in the copy"


# --- the Hub ------------------------------------------------------------------------------------

HUB_MODEL = "org/tiny-GGUF"
HUB_SOURCE = "org/tiny"


@pytest.fixture(scope="module")
def hub_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    folder = tmp_path_factory.mktemp("hub")
    main = write_gguf(folder / "main.gguf", {"default": PARITY}).read_bytes()
    older = write_gguf(folder / "older.gguf", {"default": SYSTEM_REFUSAL}).read_bytes()
    return {"main": main, "older": older}


@pytest.fixture(scope="module")
def gguf_hub(hub_files: dict[str, bytes]):
    from fakehub import FakeHub

    repos = {
        HUB_MODEL: {
            "revisions": {
                "main": {"tiny-Q4_K_M.gguf": hub_files["main"], "README.md": "tiny"},
                "v0": {"tiny-Q4_K_M.gguf": hub_files["older"]},
            }
        },
        "org/gated-GGUF": {
            "revisions": {"main": {"tiny.gguf": hub_files["main"]}},
            "gated": True,
            "granted": {"hf_granted"},
        },
        HUB_SOURCE: {
            "revisions": {
                "main": {
                    "tokenizer_config.json": '{"chat_template": '
                    + __import__("json").dumps(SYSTEM_REFUSAL)
                    + ', "bos_token": "<s>", "eos_token": "</s>"}'
                }
            }
        },
    }
    with FakeHub(repos, tokens={"hf_granted", "hf_other"}) as hub:
        yield hub


def test_a_hub_gguf_is_read_by_name_with_revision_and_cache(gguf_hub, tmp_path: Path) -> None:
    env = gguf_hub.environment(tmp_path)
    shown = run("show", HUB_MODEL, "--file", "tiny-Q4_K_M.gguf", env=env)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout == PARITY
    older = run("show", HUB_MODEL, "--file", "tiny-Q4_K_M.gguf", "--revision", "v0", env=env)
    assert older.stdout == SYSTEM_REFUSAL
    listing = run("show", HUB_MODEL, "--file", "tiny-Q4_K_M.gguf", "--list", env=env)
    assert f"{HUB_MODEL}@{gguf_hub.commit(HUB_MODEL, 'main')}:tiny-Q4_K_M.gguf" in listing.stdout
    offline = run("show", HUB_MODEL, "--file", "tiny-Q4_K_M.gguf", env={**env, "HF_HUB_OFFLINE": "1"})
    assert offline.returncode == 0 and offline.stdout == PARITY, offline.stderr
    missing = run("show", HUB_MODEL, "--file", "nope.gguf", env=env)
    assert_one_line_error(missing, 3, "nope.gguf")
    uncached = run(
        "show",
        HUB_MODEL,
        "--file",
        "tiny-Q4_K_M.gguf",
        "--revision",
        "v0",
        env={**gguf_hub.environment(tmp_path / "empty"), "HF_HUB_OFFLINE": "1"},
    )
    assert_one_line_error(uncached, 5, "offline")


def test_a_gated_hub_gguf_needs_a_granted_token(gguf_hub, tmp_path: Path) -> None:
    env = gguf_hub.environment(tmp_path)
    assert_one_line_error(run("show", "org/gated-GGUF", "--file", "tiny.gguf", env=env), 4, "gated repo")
    refused = run("show", "org/gated-GGUF", "--file", "tiny.gguf", "--token", "hf_other", env=env)
    assert_one_line_error(refused, 4, "your token has no access")
    granted = run("show", "org/gated-GGUF", "--file", "tiny.gguf", "--token", "hf_granted", env=env)
    assert granted.returncode == 0 and granted.stdout == PARITY, granted.stderr


def test_a_hub_gguf_relaxes_to_a_local_copy_and_lints_against_its_source(gguf_hub, tmp_path: Path) -> None:
    env = gguf_hub.environment(tmp_path)
    out = tmp_path / "relaxed.gguf"
    relaxed = run("relax", HUB_MODEL, "--file", "tiny-Q4_K_M.gguf", "-o", str(out), "--examples", "60", env=env)
    assert relaxed.returncode == 0, relaxed.stderr
    assert gguf.GGUFReader(str(out)).fields["tokenizer.chat_template"].contents() != PARITY
    drift = run("lint", HUB_MODEL, "--file", "tiny-Q4_K_M.gguf", "--against", HUB_SOURCE, "--select", "TK701", env=env)
    assert drift.returncode == 1, drift.stderr
    assert "TK701" in drift.stdout and HUB_SOURCE in drift.stdout
    same = run(
        "lint",
        HUB_MODEL,
        "--file",
        "tiny-Q4_K_M.gguf",
        "--revision",
        "v0",
        "--against",
        HUB_SOURCE,
        "--select",
        "TK701",
        env=env,
    )
    assert same.returncode == 0 and "TK701" not in same.stdout, same.stdout + same.stderr


# --- drift --------------------------------------------------------------------------------------


def test_lint_against_reports_text_and_token_drift(tmp_path: Path) -> None:
    model = write_gguf(tmp_path / "model.gguf", {"default": PARITY}, eos="<eos>")
    upstream = tokenizer_config(tmp_path / "hf", {"default": PARITY + "{# fixed upstream #}"})
    findings = lint(load(str(model)).get(), against=load(str(upstream)).get(), select=["TK701"])
    messages = [finding.message for finding in findings]
    assert len(findings) == 2, messages
    assert "differs from" in messages[0] or "differs from" in messages[1]
    assert any("eos_token is '<eos>' here and '</s>'" in message for message in messages)
    same = tokenizer_config(tmp_path / "same", {"default": PARITY}, eos="<eos>")
    assert lint(load(str(model)).get(), against=load(str(same)).get(), select=["TK701"]) == []
    assert lint(load(str(model)).get(), select=["TK701"]) == []  # nothing to compare with


def test_lint_against_reports_where_the_texts_part(tmp_path: Path) -> None:
    model = write_gguf(tmp_path / "model.gguf", {"default": "line one\nline two\n"})
    upstream = tokenizer_config(tmp_path / "hf", {"default": "line one\nline 2\n"})
    result = run("lint", str(model), "--against", str(upstream), "--select", "TK701")
    assert result.returncode == 1
    assert f"{model}:2:6: TK701" in result.stdout, result.stdout


def test_diff_without_messages_compares_the_template_texts(tmp_path: Path) -> None:
    model = write_gguf(tmp_path / "model.gguf", {"default": PARITY})
    drifted = tokenizer_config(tmp_path / "hf", {"default": SYSTEM_REFUSAL})
    result = run("diff", str(model), str(drifted))
    assert result.returncode == 1
    assert result.stdout.startswith(f"--- A {model}\n+++ B {drifted}\n")
    same = tokenizer_config(tmp_path / "same", {"default": PARITY})
    identical = run("diff", str(model), str(same))
    assert identical.returncode == 0 and identical.stdout.startswith("identical"), identical.stdout


# --- bad inputs ---------------------------------------------------------------------------------


def with_version(data: bytes, version: int) -> bytes:
    return data[:4] + struct.pack("<I", version) + data[8:]


def template_as_integer(writer: gguf.GGUFWriter) -> None:
    writer.add_uint32("tokenizer.chat_template", 7)


def unk_id_as_string(writer: gguf.GGUFWriter) -> None:
    writer.add_string("tokenizer.ggml.unknown_token_id", "zero")


def bad_inputs(folder: Path) -> dict[str, tuple[Path, int, str]]:
    """name -> (file, exit code, what its one stderr line says)."""
    good = write_gguf(folder / "good.gguf", {"default": PARITY}).read_bytes()
    metadata_end = gguf_file.read_metadata(folder / "good.gguf").tensor_info_start
    files = {
        "not-gguf": (b"{{ messages }}", 6, "is not a GGUF file"),
        "empty": (b"", 6, "is not a GGUF file"),
        "truncated-metadata": (good[: metadata_end // 2], 6, "is truncated"),
        "truncated-tensors": (good[:-8], 6, "is truncated"),
        "version-1": (with_version(good, 1), 6, "GGUF version 1"),
        "version-4": (with_version(good, 4), 6, "GGUF version 4"),
    }
    cases = {name: (folder / f"{name}.gguf", code, message) for name, (_, code, message) in files.items()}
    for name, (data, _, _) in files.items():
        cases[name][0].write_bytes(data)
    cases["no-template"] = (write_gguf(folder / "no-template.gguf", None), 7, "no chat template")
    cases["template-type"] = (
        write_gguf(folder / "template-type.gguf", None, extra=template_as_integer),
        6,
        "tokenizer.chat_template is UINT32, expected a string",
    )
    cases["token-id-type"] = (
        write_gguf(folder / "token-id-type.gguf", {"default": PARITY}, extra=unk_id_as_string),
        6,
        "tokenizer.ggml.unknown_token_id is STRING, expected an integer",
    )
    (folder / "good.gguf").unlink()
    return cases


def test_bad_gguf_inputs_raise_one_error_each(tmp_path: Path) -> None:
    expected = {6: (MalformedFileError,), 7: (NoChatTemplateError,)}
    for name, (path, code, message) in bad_inputs(tmp_path).items():
        with pytest.raises(expected[code]) as raised:
            load(str(path))
        assert message in str(raised.value) and "\n" not in str(raised.value), name
        if name.startswith("version"):
            assert isinstance(raised.value, UnsupportedVersionError)


@pytest.mark.parametrize("command", ["show", "lint", "relax", "render"])
def test_bad_gguf_inputs_give_one_line_and_their_exit_code_and_write_nothing(tmp_path: Path, command: str) -> None:
    cases = bad_inputs(tmp_path)
    before = {path.name: path.read_bytes() for path in tmp_path.iterdir()}
    messages = tmp_path.parent / f"{tmp_path.name}-messages.json"
    messages.write_text('[{"role": "user", "content": "hi"}]', encoding="utf-8")
    for name, (path, code, message) in cases.items():
        arguments = {
            "show": [],
            "lint": [],
            "relax": ["-o", str(tmp_path / "out.gguf")],
            "render": ["--messages", str(messages)],
        }[command]
        result = run(command, str(path), *arguments)
        assert_one_line_error(result, code, message)
        assert str(path) in result.stderr, name
    assert {path.name: path.read_bytes() for path in tmp_path.iterdir()} == before  # nothing written or changed


def test_the_vocabulary_names_the_special_tokens(tmp_path: Path) -> None:
    model = write_gguf(tmp_path / "model.gguf", {"default": PARITY}, bos="<bos>", eos="<end_of_turn>")
    tokens = load(str(model)).get().special_tokens
    assert tokens == {"bos_token": "<bos>", "eos_token": "<end_of_turn>"}
    assert set(tokens.values()) <= set(VOCABULARY)


def test_lint_of_a_jinja_file_never_imports_gguf() -> None:
    code = (
        "import sys; sys.argv = ['templatekit', 'lint', '--no-probe', %r]; "
        "from templatekit_cli.main import cli\n"
        "try:\n    cli()\nexcept SystemExit:\n    pass\n"
        "print('gguf' in sys.modules, 'numpy' in sys.modules)"
    ) % str(FIXTURES / "lint" / "clean.jinja")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.stdout.split()[-2:] == ["False", "False"], result.stdout + result.stderr
