"""templatekit.sources on local sources, checked against transformers' own loaders, and its writers.

Hub sources need HF_* variables at import time, so they are tested in a fresh interpreter
against the fake Hub (here for writing back, through the CLI in test_show_cli.py for reading).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import FIXTURES
from fakehub import FakeHub

from templatekit import errors
from templatekit.sources import (
    PROCESSOR_TEMPLATE_NAME,
    TemplateSource,
    chat_template_json_text,
    json_position,
    lint_references,
    load,
    resolve_file,
    tokenizer_config_text,
    write_in_place,
)

SOURCES = FIXTURES / "sources"
TRANSFORMERS_FOLDERS = ["config-string", "config-list", "jinja-files", "multimodal"]


def summary(source: TemplateSource) -> list[tuple[str, str, str]]:
    return [
        (template.name, template.kind, Path(template.origin).relative_to(SOURCES).as_posix())
        for template in source.templates
    ]


def write(folder: Path, files: dict[str, str | bytes]) -> Path:
    for name, content in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)
    return folder


def test_tokenizer_config_with_a_string_template_and_special_tokens_in_both_forms() -> None:
    source = load(str(SOURCES / "config-string"))
    assert summary(source) == [("default", "tokenizer", "config-string/tokenizer_config.json")]
    config = json.loads((SOURCES / "config-string" / "tokenizer_config.json").read_text())
    template = source.get()
    assert template.text == config["chat_template"]
    assert template.path == str(SOURCES / "config-string" / "tokenizer_config.json")
    assert (template.repo_id, template.commit, source.notes) == (None, None, ())
    assert dict(template.special_tokens) == {
        "bos_token": "<s>",
        "eos_token": "</s>",
        "unk_token": "<unk>",
        "image_token": "<image>",
    }


def test_tokenizer_config_with_a_list_of_named_templates() -> None:
    source = load(str(SOURCES / "config-list"))
    assert source.names == ("default", "tool_use", "rag")
    assert source.get("rag").text.startswith("{% for document in documents %}")
    assert source.get().name == "default"


def test_template_files_take_priority_over_tokenizer_config() -> None:
    source = load(str(SOURCES / "jinja-files"))
    assert summary(source) == [
        ("default", "tokenizer", "jinja-files/chat_template.jinja"),
        ("rag", "tokenizer", "jinja-files/additional_chat_templates/rag.jinja"),
        ("tool_use", "tokenizer", "jinja-files/additional_chat_templates/tool_use.jinja"),
    ]
    assert source.get().text == (SOURCES / "jinja-files" / "chat_template.jinja").read_text()
    assert dict(source.get("rag").special_tokens) == {"bos_token": "<bos>", "eos_token": "<eos>"}
    (note,) = source.notes
    assert "tokenizer_config.json also has a chat_template, ignored" in note


def test_additional_templates_alone_also_replace_the_config_template(tmp_path: Path) -> None:
    write(
        tmp_path,
        {"tokenizer_config.json": '{"chat_template": "config"}', "additional_chat_templates/tool_use.jinja": "tools"},
    )
    assert [(t.name, t.text) for t in load(str(tmp_path)).templates] == [("tool_use", "tools")]


def test_multimodal_processor_template_that_differs_is_listed_with_a_note() -> None:
    source = load(str(SOURCES / "multimodal"))
    assert summary(source) == [
        ("default", "tokenizer", "multimodal/tokenizer_config.json"),
        (PROCESSOR_TEMPLATE_NAME, "processor", "multimodal/chat_template.json"),
    ]
    processor = source.get("processor")
    assert processor.text == json.loads((SOURCES / "multimodal" / "chat_template.json").read_text())["chat_template"]
    assert processor.special_tokens == source.get().special_tokens  # the processor renders with the tokenizer's
    (note,) = source.notes
    assert "differs from the tokenizer's 'default'" in note and "vLLM uses the processor's" in note


def test_identical_processor_template_is_noted_not_listed(tmp_path: Path) -> None:
    write(
        tmp_path,
        {"tokenizer_config.json": '{"chat_template": "same"}', "chat_template.json": '{"chat_template": "same"}'},
    )
    source = load(str(tmp_path))
    assert source.names == ("default",)
    assert source.notes == (
        f"processor template {tmp_path / 'chat_template.json'} is identical to the tokenizer's 'default'",
    )


def test_processor_config_key_wins_over_chat_template_json(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "chat_template.jinja": "tokenizer",
            "processor_config.json": '{"chat_template": "from processor_config"}',
            "chat_template.json": '{"chat_template": "from chat_template.json"}',
        },
    )
    source = load(str(tmp_path))
    assert [(t.name, t.kind, t.text) for t in source.templates] == [
        ("default", "tokenizer", "tokenizer"),
        ("processor", "processor", "from processor_config"),
    ]


def test_processor_only_source_defaults_to_the_processor_template(tmp_path: Path) -> None:
    write(tmp_path, {"chat_template.json": '{"chat_template": "vision"}'})
    source = load(str(tmp_path))
    assert (source.get().name, source.get().kind, source.get().text) == ("processor", "processor", "vision")


def test_legacy_chat_template_json_beside_template_folder_is_noted(tmp_path: Path) -> None:
    write(tmp_path, {"chat_template.json": '{"chat_template": "legacy"}', "additional_chat_templates/rag.jinja": "rag"})
    source = load(str(tmp_path))
    assert source.names == ("rag", "processor")
    assert any("transformers refuses to load the processor" in note for note in source.notes)


@pytest.mark.parametrize("folder", TRANSFORMERS_FOLDERS)
def test_tokenizer_templates_and_special_tokens_match_transformers(folder: str, tmp_path: Path) -> None:
    """transformers' own tokenizer loader, on a copy of the fixture with a tiny tokenizer.json."""
    pytest.importorskip("transformers")
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    model = shutil.copytree(SOURCES / folder, tmp_path / folder)
    Tokenizer(models.WordLevel({"<unk>": 0}, unk_token="<unk>")).save(str(model / "tokenizer.json"))
    tokenizer = PreTrainedTokenizerFast.from_pretrained(str(model))
    source = load(str(model))
    ours = {t.name: t.text for t in source.templates if t.kind == "tokenizer"}
    theirs = (
        tokenizer.chat_template if isinstance(tokenizer.chat_template, dict) else {"default": tokenizer.chat_template}
    )
    assert ours == theirs
    assert dict(source.get().special_tokens) == tokenizer.special_tokens_map


@pytest.mark.parametrize("folder", TRANSFORMERS_FOLDERS)
def test_processor_templates_match_transformers(folder: str) -> None:
    """Every processor template transformers would use is ours, or identical to our tokenizer's."""
    pytest.importorskip("transformers")
    from transformers.processing_utils import ProcessorMixin

    processor_dict, _ = ProcessorMixin.get_processor_dict(str(SOURCES / folder))
    theirs = processor_dict.get("chat_template") or {}
    theirs = theirs if isinstance(theirs, dict) else {"default": theirs}
    source = load(str(SOURCES / folder))
    for name, text in theirs.items():
        label = PROCESSOR_TEMPLATE_NAME if name == "default" else f"{PROCESSOR_TEMPLATE_NAME}:{name}"
        listed = label in source.names
        expected = source.get(label) if listed else source.get(name)
        assert expected.text == text
        assert expected.kind == ("processor" if listed else "tokenizer")


def test_single_files_are_read_alone(tmp_path: Path) -> None:
    assert summary(load(str(SOURCES / "config-list" / "tokenizer_config.json"))) == [
        (name, "tokenizer", "config-list/tokenizer_config.json") for name in ("default", "tool_use", "rag")
    ]
    processor = load(str(SOURCES / "multimodal" / "chat_template.json")).get()
    assert (processor.name, processor.kind, dict(processor.special_tokens)) == ("default", "processor", {})
    inside = load(str(SOURCES / "jinja-files" / "chat_template.jinja")).get()
    assert (inside.name, dict(inside.special_tokens)) == ("default", {})


def test_template_file_text_is_exact(tmp_path: Path) -> None:
    raw = "{%- for m in messages -%}\r\n{{ m['content'] }} — ok\r{% endfor %}".encode()
    path = write(tmp_path, {"t.j2": raw}) / "t.j2"
    template = load(str(path)).get()
    assert template.text.encode("utf-8") == raw
    assert template.sha256 == hashlib.sha256(raw).hexdigest()


def test_stdin_template_and_stdin_config(monkeypatch: pytest.MonkeyPatch) -> None:
    text = "{{ bos_token }}{% for m in messages %}{{ m['content'] }}\r\n{% endfor %}"
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(text.encode())))
    template = load("-").get()
    assert (template.text, template.origin, template.path) == (text, "<stdin>", None)

    config = {"bos_token": {"__type": "AddedToken", "content": "<s>"}, "chat_template": text}
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(json.dumps(config).encode())))
    template = load("-").get()
    assert (template.text, dict(template.special_tokens)) == (text, {"bos_token": "<s>"})


def test_bare_content_dicts_and_non_string_tokens(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "tokenizer_config.json": json.dumps(
                {
                    "chat_template": "x",
                    "bos_token": {"content": "<b>"},
                    "pad_token": None,
                    "add_bos_token": True,
                    "sep_token": ["not", "a", "token"],
                    "extra_special_tokens": {"audio_token": {"content": "<a>"}},
                }
            )
        },
    )
    assert dict(load(str(tmp_path)).get().special_tokens) == {"bos_token": "<b>", "audio_token": "<a>"}


def test_existing_path_wins_over_hub_id(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, {"google/gemma/chat_template.jinja": "local"})
    monkeypatch.chdir(tmp_path)
    assert load("google/gemma").get().text == "local"  # no Hub request: it exists on disk


def test_revision_is_noted_as_ignored_for_local_sources() -> None:
    source = load(str(SOURCES / "simple.jinja"), revision="v1")
    assert source.notes == (f"--revision v1 ignored: {SOURCES / 'simple.jinja'} is local, not a Hub repo",)


def test_invalid_jinja_is_returned_as_is() -> None:
    assert load(str(SOURCES / "invalid.jinja")).get().text == (SOURCES / "invalid.jinja").read_text()


@pytest.mark.parametrize(
    ("files", "error_class", "message"),
    [
        (
            {"tokenizer_config.json": '{\n  "chat_template": "x",\n}'},
            errors.MalformedFileError,
            "malformed JSON in {dir}/tokenizer_config.json: line 3 column 1: Expecting property name",
        ),
        (
            {"tokenizer_config.json": "[1, 2]"},
            errors.MalformedFileError,
            "{dir}/tokenizer_config.json: expected a JSON object, found list",
        ),
        (
            {"tokenizer_config.json": '{"chat_template": 3}'},
            errors.MalformedFileError,
            "{dir}/tokenizer_config.json: chat_template must be a string or a list of {{name, template}}, found int",
        ),
        (
            {"tokenizer_config.json": '{"chat_template": [{"name": "a"}]}'},
            errors.MalformedFileError,
            '{dir}/tokenizer_config.json: chat_template list entries must be {{"name": str, "template": str}}, '
            'found {{"name": "a"}}',
        ),
        (
            {"chat_template.json": '{"template": "x"}'},
            errors.MalformedFileError,
            '{dir}/chat_template.json has no "chat_template" key',
        ),
        (
            {"chat_template.jinja": b"\xff\xfe"},
            errors.MalformedFileError,
            "{dir}/chat_template.jinja is not UTF-8 text (invalid byte at offset 0)",
        ),
        ({"tokenizer_config.json": '{"bos_token": "<s>"}'}, errors.NoChatTemplateError, "no chat template in {dir}: "),
        ({"README.md": "hello"}, errors.NoChatTemplateError, "no chat template in {dir}: "),
    ],
)
def test_errors_are_one_line_with_the_file_and_position(
    tmp_path: Path, files: dict, error_class: type, message: str
) -> None:
    write(tmp_path, files)
    with pytest.raises(error_class) as caught:
        load(str(tmp_path))
    assert str(caught.value).startswith(message.format(dir=tmp_path))
    assert "\n" not in str(caught.value)


def test_malformed_json_carries_line_and_column() -> None:
    with pytest.raises(errors.MalformedFileError) as caught:
        load(str(SOURCES / "malformed"))
    assert (caught.value.line, caught.value.column) == (4, 1)
    assert caught.value.path == str(SOURCES / "malformed" / "tokenizer_config.json")


def test_unknown_template_name_lists_the_available_ones() -> None:
    with pytest.raises(errors.UnknownTemplateNameError) as caught:
        load(str(SOURCES / "config-list")).get("chatml")
    assert str(caught.value) == (
        f"{SOURCES / 'config-list'} has no template named 'chatml'; available: default, tool_use, rag"
    )
    assert caught.value.available == ("default", "tool_use", "rag")


@pytest.mark.parametrize("reference", ["nope.jinja", "org/model.json", "./org/model", "/no/such/dir", "a/b/c"])
def test_missing_local_paths_that_are_not_hub_ids(reference: str) -> None:
    with pytest.raises(errors.SourceNotFoundError) as caught:
        load(reference)
    assert str(caught.value) == f"no such file or folder: {reference} (a Hub repo id looks like org/name)"


def test_resolve_file_locally(tmp_path: Path) -> None:
    folder = write(tmp_path, {"tokenizer.json": "{}", "chat_template.jinja": "x"})
    assert resolve_file(str(folder), "tokenizer.json") == folder / "tokenizer.json"
    assert resolve_file(str(folder / "tokenizer.json"), "tokenizer.json") == folder / "tokenizer.json"
    assert resolve_file(str(folder / "chat_template.jinja"), "tokenizer.json") == folder / "tokenizer.json"
    with pytest.raises(errors.SourceNotFoundError, match=r"^no tokenizer_config.json in "):
        resolve_file(str(folder), "tokenizer_config.json")
    with pytest.raises(errors.SourceNotFoundError, match=r"^stdin \(-\) has no tokenizer.json"):
        resolve_file("-", "tokenizer.json")


# Indented with tabs, keys in a custom order, an escape: a copy must keep all of it.
HUB_CONFIG = '{\n\t"eos_token": "</s>",\n\t"chat_template": "{{ \'caf\\u00e9\' }}{{ messages[0].content }}"\n}\n'
HUB_REPOS = {
    "org/model": {
        "revisions": {"main": {"tokenizer_config.json": HUB_CONFIG, "additional_chat_templates/rag.jinja": "rag"}}
    }
}


def test_tokenizer_config_copy_of_a_hub_source_is_not_downloaded_again(fake_hub: FakeHub, tmp_path: Path) -> None:
    script = (
        "import sys\n"
        "from templatekit.sources import load, tokenizer_config_text\n"
        "source = load('org/model')\n"
        "print(source.names, flush=True)\n"
        "sys.stdin.readline()\n"
        "print(tokenizer_config_text(source, {'default': 'relaxed'}), end='')\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", script],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **fake_hub.environment(tmp_path)},
    )
    assert process.stdout.readline() == "('rag',)\n", process.stderr.read()  # type: ignore[union-attr]
    requests = len(fake_hub.requests)
    output, error = process.communicate("\n", timeout=60)
    assert process.returncode == 0, error
    assert len(fake_hub.requests) == requests
    assert output == '{\n\t"eos_token": "</s>",\n\t"chat_template": "relaxed"\n}\n'


def test_tokenizer_config_copy_keeps_the_file_and_adds_missing_templates(tmp_path: Path) -> None:
    config = '{\n    "bos_token": "<s>",\n    "chat_template": [{"name": "default", "template": "a"}]\n}'
    folder = write(tmp_path / "model", {"tokenizer_config.json": config, "chat_template.jinja": "jinja"})
    source = load(str(folder))
    assert source.config == str(folder / "tokenizer_config.json")
    assert tokenizer_config_text(source, {"default": "b"}) == config.replace('"a"', '"b"')
    assert json.loads(tokenizer_config_text(source, {"tool_use": "t"}))["chat_template"] == [
        {"name": "default", "template": "a"},
        {"name": "tool_use", "template": "t"},
    ]
    beside = load(str(folder / "chat_template.jinja"))
    assert beside.config == source.config


def test_tokenizer_config_copy_without_a_config(tmp_path: Path) -> None:
    source = load(str(write(tmp_path, {"model.jinja": "x"}) / "model.jinja"))
    assert source.config is None
    assert tokenizer_config_text(source, {"default": "y"}) == '{\n  "chat_template": "y"\n}\n'
    assert (
        tokenizer_config_text(source, {"a": "1", "b": "2"})
        == json.dumps({"chat_template": [{"name": "a", "template": "1"}, {"name": "b", "template": "2"}]}, indent=2)
        + "\n"
    )
    assert chat_template_json_text("é") == '{\n  "chat_template": "é"\n}\n'


def test_write_in_place_keeps_one_backup_per_file(tmp_path: Path) -> None:
    config = json.dumps({"chat_template": [{"name": "default", "template": "a"}, {"name": "rag", "template": "r"}]})
    folder = write(tmp_path, {"tokenizer_config.json": config})
    source = load(str(folder))
    written = list(write_in_place([(template, template.text.upper()) for template in source.templates]))
    target = folder / "tokenizer_config.json"
    assert written == [(target, folder / "tokenizer_config.json.orig")]
    assert (folder / "tokenizer_config.json.orig").read_text() == config
    assert json.loads(target.read_text())["chat_template"] == [
        {"name": "default", "template": "A"},
        {"name": "rag", "template": "R"},
    ]
    list(write_in_place([(load(str(target)).get(), "again")]))
    assert (folder / "tokenizer_config.json.orig").read_text() == config


def test_lint_references_of_a_folder_of_templates(tmp_path: Path) -> None:
    write(
        tmp_path / "tree",
        {
            "a.jinja": "a",
            "sub/tokenizer_config.json": "{}",
            "sub/notes.txt": "",
            ".hidden/b.jinja": "b",
            "c.gguf": b"GGUF",
        },
    )
    assert lint_references(str(tmp_path / "tree")) == tuple(
        str(tmp_path / "tree" / name) for name in ("a.jinja", "c.gguf", "sub/tokenizer_config.json")
    )
    assert lint_references(str(tmp_path / "tree" / "sub")) == (str(tmp_path / "tree" / "sub"),)  # a model folder
    assert lint_references(str(tmp_path / "tree" / "a.jinja")) == (str(tmp_path / "tree" / "a.jinja"),)
    (tmp_path / "empty").mkdir()
    assert lint_references(str(tmp_path / "empty")) == ()


def test_json_position_of_each_template_in_its_file(tmp_path: Path) -> None:
    config = (
        '{\n  "bos_token": "<s>",\n  "chat_template": [\n    {"name": "default", "template": "a"},\n'
        '    {"name": "rag", "template": "r"}\n  ]\n}'
    )
    folder = write(tmp_path, {"tokenizer_config.json": config, "chat_template.json": '{"chat_template": "p"}'})
    source = load(str(folder))
    assert [(template.name, json_position(template)) for template in source.templates] == [
        ("default", (4, 37)),
        ("rag", (5, 33)),
        ("processor", (1, 19)),
    ]
    assert json_position(load(str(write(tmp_path / "jinja", {"t.jinja": "x"}) / "t.jinja")).get()) is None
