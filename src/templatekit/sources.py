"""Where chat templates come from: Hub repos, model folders, JSON configs, .jinja files, stdin.

:func:`load` collects every template a source has the way transformers does:

* tokenizer templates: ``chat_template.jinja`` (named ``default``) and
  ``additional_chat_templates/*.jinja`` (named after the file) take priority over
  ``tokenizer_config.json["chat_template"]`` (a string, or a list of ``{name, template}``);
* processor templates: ``processor_config.json["chat_template"]``, else ``chat_template.json``;
  kept only when they differ from the tokenizer's, under the name ``processor``
  (``processor:<name>`` for named ones), because vLLM prefers them for requests without tools;
* special tokens (``bos_token``, ``eos_token``, ... as strings or ``{"content": ...}``) from
  ``tokenizer_config.json``.

A GGUF file (``*.gguf``, or any file starting with the GGUF magic; a Hub repo's with
``filename=``) holds ``tokenizer.chat_template`` (named ``default``) and
``tokenizer.chat_template.<name>`` in its metadata, and its special tokens in its vocabulary
(:mod:`templatekit.gguf_file` reads them without touching the tensors).

A reference that exists on disk is local; otherwise an ``org/name`` reference is a Hub repo id.
Templates are returned as read: syntax is checked by :func:`templatekit.syntax.parse`, not here.

Writing goes the other way, into the containers a source was read from:
:func:`tokenizer_config_text` (a copy of the source's ``tokenizer_config.json``, read where the
source was loaded: never fetched again), :func:`chat_template_json_text`, :func:`write_in_place`
(each template's own file, with a ``.orig`` backup); :func:`lint_references` finds the template
files under a folder of templates.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

from .errors import (
    InputLimitError,
    MalformedFileError,
    NoChatTemplateError,
    SourceNotFoundError,
    UnknownTemplateNameError,
)
from .records import Record

__all__ = [
    "ChatTemplate",
    "TemplateSource",
    "load",
    "from_text",
    "resolve_file",
    "PROCESSOR_TEMPLATE_NAME",
    "HUB_TEMPLATE_FILES",
    "MAX_FILE_BYTES",
    "MAX_TEMPLATE_CHARACTERS",
    "check_text",
    "lint_references",
    "tokenizer_config_text",
    "config_with_templates",
    "chat_template_json_text",
    "write_in_place",
    "json_position",
]

TOKENIZER_CONFIG = "tokenizer_config.json"
CHAT_TEMPLATE_JINJA = "chat_template.jinja"
CHAT_TEMPLATE_JSON = "chat_template.json"
PROCESSOR_CONFIG = "processor_config.json"
TEMPLATE_DIR = "additional_chat_templates"
PROCESSOR_TEMPLATE_NAME = "processor"
# What a Hub snapshot needs to hold to find every template (transformers reads the same files).
HUB_TEMPLATE_FILES = (
    TOKENIZER_CONFIG,
    CHAT_TEMPLATE_JINJA,
    CHAT_TEMPLATE_JSON,
    PROCESSOR_CONFIG,
    f"{TEMPLATE_DIR}/*.jinja",
)
# Files that make a folder a model folder (one source) rather than a folder of templates.
MODEL_FILES = (TOKENIZER_CONFIG, CHAT_TEMPLATE_JINJA, CHAT_TEMPLATE_JSON, PROCESSOR_CONFIG)
# The JSON files under a folder of templates that hold templates.
TEMPLATE_JSON_FILES = (TOKENIZER_CONFIG, CHAT_TEMPLATE_JSON)
STDIN = "-"
# Inputs larger than these are refused (InputLimitError): real chat templates are under 100 kB
# and tokenizer_config.json files under a few MB.
MAX_FILE_BYTES = 32 * 1024 * 1024
MAX_TEMPLATE_CHARACTERS = 4 * 1024 * 1024
# huggingface_hub's repo id rule, with the namespace required: "org/name", no "--" or "..".
# (a string: compiled on first use, by a reference that is no local path)
_HUB_REPO_ID = r"^(?!.*(?:--|\.\.))\b[\w.-]+\b/\b[\w.-]+\b$"

Kind = Literal["tokenizer", "processor"]


class ChatTemplate(Record):
    """One chat template and what it needs to render as the server would.

    ``origin`` names where it came from for humans (``repo@commit:file`` or a path);
    ``path`` is the local file it was read from, if any; ``special_tokens`` holds
    ``bos_token``, ``eos_token``, ... as strings, ready to pass to :func:`templatekit.render`;
    ``add_bos_token`` is the tokenizer config's own flag (``None`` when it does not say);
    ``container`` is ``"gguf"`` for a template read from a GGUF file's metadata (``path``).
    """

    text: str
    name: str = "default"
    origin: str = "<string>"
    path: str | None = None
    special_tokens: Mapping[str, str] = MappingProxyType({})
    kind: Kind = "tokenizer"
    repo_id: str | None = None
    commit: str | None = None
    add_bos_token: bool | None = None
    container: Literal["gguf"] | None = None

    @property
    def sha256(self) -> str:
        import hashlib  # not at import: it loads OpenSSL (2 ms of every lint), and only relax's header needs it

        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()


class TemplateSource(Record):
    """Every template a source has, in transformers' priority order, and notes about them.

    ``config`` is the source's ``tokenizer_config.json`` (the one read, or the one beside a
    template file), which :func:`tokenizer_config_text` copies; ``None`` when it has none.
    """

    reference: str
    templates: tuple[ChatTemplate, ...]
    notes: tuple[str, ...] = ()
    config: str | None = None

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(template.name for template in self.templates)

    def get(self, name: str | None = None) -> ChatTemplate:
        """The template called ``name`` (default: ``default``, else the only/first one)."""
        if name is None:
            for template in self.templates:
                if template.name == "default":
                    return template
            return self.templates[0]
        for template in self.templates:
            if template.name == name:
                return template
        raise UnknownTemplateNameError(
            f"{self.reference} has no template named {name!r}; available: {', '.join(self.names)}",
            name=name,
            available=self.names,
        )


def from_text(
    text: str, *, name: str = "default", origin: str = "<string>", special_tokens: Mapping[str, str] | None = None
) -> ChatTemplate:
    """A :class:`ChatTemplate` from template text already in hand."""
    return ChatTemplate(text=text, name=name, origin=origin, special_tokens=dict(special_tokens or {}))


def load(
    reference: str, *, revision: str | None = None, token: str | None = None, filename: str | None = None
) -> TemplateSource:
    """All chat templates of ``reference``: a Hub repo id, model folder, JSON config, template or GGUF file, or ``-``.

    ``revision`` and ``token`` apply to Hub repos (token default: ``HF_TOKEN`` or the stored login).
    ``filename`` reads that one file of a Hub repo or folder alone (e.g. ``model-Q4_K_M.gguf``).
    Raises the :mod:`templatekit.errors` subclasses of ``SourceError``.
    """
    if filename is not None:
        source = _load_one_file(reference, filename, revision=revision, token=token)
        if source.templates[0].repo_id is not None:
            return _checked(source)
    elif reference == STDIN:
        source = _load_stdin()
    else:
        location = _locate(reference)
        if isinstance(location, str):
            return _checked(_load_hub(location, revision=revision, token=token))
        source = _load_folder(location, reference) if location.is_dir() else _load_file(location, reference)
    notes = (
        (*source.notes, f"--revision {revision} ignored: {reference} is local, not a Hub repo")
        if revision
        else source.notes
    )
    config = None if reference == STDIN else _existing(_beside(Path(reference), TOKENIZER_CONFIG))
    return _checked(TemplateSource(source.reference, source.templates, notes, config))


def _checked(source: TemplateSource) -> TemplateSource:
    """``source`` once every template and special token passed :func:`check_text`."""
    for template in source.templates:
        check_text(template.text, template.origin)
        for name, value in template.special_tokens.items():
            check_text(value, template.origin, f"special token {name}")
    return source


def resolve_file(reference: str, filename: str, *, revision: str | None = None, token: str | None = None) -> Path:
    """A local path to ``filename`` of ``reference`` (e.g. ``tokenizer.json``).

    Hub repo: the cached download. Folder: the file inside it. File: the file itself when
    its name is ``filename``, else ``filename`` beside it (its model folder).
    """
    if reference == STDIN:
        raise SourceNotFoundError(
            f"stdin (-) has no {filename}: give a model folder or Hub repo id", source=reference, filename=filename
        )
    location = _locate(reference)
    if isinstance(location, str):
        from . import hub

        return hub.download(location, filename, revision=revision, token=token)
    candidate = _beside(location, filename)
    if not candidate.is_file():
        raise SourceNotFoundError(f"no {filename} in {candidate.parent}", source=reference, filename=filename)
    return candidate


def _beside(location: Path, filename: str) -> Path:
    """Where ``filename`` of a local source is: in its folder, the file itself, or beside the file."""
    if location.is_dir():
        return location / filename
    return location if location.name == filename else location.parent / filename


def _existing(path: Path) -> str | None:
    return str(path) if path.is_file() else None


def lint_references(reference: str) -> tuple[str, ...]:
    """What ``reference`` stands for when linted: a folder that is not a model folder stands for the
    template files under it (``.jinja``, ``.gguf``, template JSON files; hidden ones skipped: maybe
    none), anything else for itself."""
    folder = Path(reference)
    if not folder.is_dir() or any((folder / name).is_file() for name in MODEL_FILES):
        return (reference,)
    return tuple(
        sorted(
            str(path)
            for path in folder.rglob("*")
            if path.is_file()
            and (path.suffix in (".jinja", ".gguf") or path.name in TEMPLATE_JSON_FILES)
            and not any(part.startswith(".") for part in path.relative_to(folder).parts)
        )
    )


# -- locating ------------------------------------------------------------------------------------


def _locate(reference: str) -> Path | str:
    """The existing local path ``reference`` names, else its Hub repo id."""
    path = Path(reference)
    if path.exists():
        return path
    if re.match(_HUB_REPO_ID, reference) and not reference.endswith((".json", ".jinja", ".gguf")):
        return reference
    raise SourceNotFoundError(
        f"no such file or folder: {reference} (a Hub repo id looks like org/name)", source=reference
    )


# -- loaders -------------------------------------------------------------------------------------


def _load_hub(repo_id: str, *, revision: str | None, token: str | None) -> TemplateSource:
    from . import hub

    folder, commit = hub.snapshot(repo_id, HUB_TEMPLATE_FILES, revision=revision, token=token)
    source = _load_folder(
        folder,
        repo_id,
        repo_id=repo_id,
        commit=commit,
        describe=lambda path: f"{repo_id}@{commit}:{path.relative_to(folder).as_posix()}",
    )
    return TemplateSource(source.reference, source.templates, source.notes, _existing(folder / TOKENIZER_CONFIG))


def _load_one_file(reference: str, filename: str, *, revision: str | None, token: str | None) -> TemplateSource:
    """The file ``filename`` of a Hub repo (downloaded alone) or of a local folder, read alone."""
    path = resolve_file(reference, filename, revision=revision, token=token)
    if isinstance(_locate(reference), Path):
        return _load_file(path, reference)
    # hf_hub_download returns <cache>/snapshots/<commit>/<filename>
    commit = path.parents[len(Path(filename).parts) - 1].name
    source = _load_file(path, reference, repo_id=reference, commit=commit, origin=f"{reference}@{commit}:{filename}")
    config = str(path) if filename == TOKENIZER_CONFIG else None  # the repo's other files are not downloaded
    return TemplateSource(source.reference, source.templates, source.notes, config)


def _load_stdin() -> TemplateSource:
    text = _decode(_bounded_read(sys.stdin.buffer, "<stdin>"), "<stdin>", path="<stdin>")
    if re.match(r'\s*\{\s*["}]', text):  # a JSON object; a template starts "{{", "{%" or "{#"
        config = _parse_json(text, "<stdin>", path="<stdin>")
        return _load_config(config, STDIN, origin="<stdin>", path=None, kind="tokenizer")
    return TemplateSource(STDIN, (ChatTemplate(text=text, origin="<stdin>"),))


def _load_file(
    path: Path, reference: str, *, repo_id: str | None = None, commit: str | None = None, origin: str | None = None
) -> TemplateSource:
    """A single file, read alone: a GGUF file, a JSON config (``chat_template`` key) or a template."""
    from .gguf_file import is_gguf

    if is_gguf(path):
        return _load_gguf(path, reference, repo_id=repo_id, commit=commit, origin=origin or str(path))
    if path.suffix.lower() != ".json":
        text = _read_text(path, str(path))
        return TemplateSource(reference, (ChatTemplate(text=text, origin=str(path), path=str(path)),))
    kind: Kind = "processor" if path.name in (CHAT_TEMPLATE_JSON, PROCESSOR_CONFIG) else "tokenizer"
    return _load_config(_read_json(path, str(path)), reference, origin=str(path), path=path, kind=kind)


def _load_gguf(path: Path, reference: str, *, repo_id: str | None, commit: str | None, origin: str) -> TemplateSource:
    from . import gguf_file

    metadata = gguf_file.read_metadata(path)
    texts = gguf_file.chat_templates(metadata)
    special_tokens = gguf_file.special_tokens(metadata)
    add_bos_token = gguf_file.add_bos_token(metadata)
    return TemplateSource(
        reference,
        tuple(
            ChatTemplate(
                text=text,
                name=name,
                origin=origin,
                path=str(path),
                special_tokens=special_tokens,
                repo_id=repo_id,
                commit=commit,
                add_bos_token=add_bos_token,
                container="gguf",
            )
            for name, text in texts.items()
        ),
    )


def _load_config(
    config: Mapping[str, Any], reference: str, *, origin: str, path: Path | None, kind: Kind
) -> TemplateSource:
    texts = _template_texts(config.get("chat_template"), origin)
    if not texts:
        raise NoChatTemplateError(f'no chat template in {origin} (no "chat_template" key)')
    special_tokens = _special_tokens(config) if kind == "tokenizer" else {}
    add_bos_token = _add_bos_token(config) if kind == "tokenizer" else None
    return TemplateSource(
        reference,
        tuple(
            ChatTemplate(
                text=text,
                name=name,
                origin=origin,
                path=str(path) if path else None,
                special_tokens=special_tokens,
                kind=kind,
                add_bos_token=add_bos_token,
            )
            for name, text in texts.items()
        ),
    )


def _load_folder(
    folder: Path,
    reference: str,
    *,
    repo_id: str | None = None,
    commit: str | None = None,
    describe: Callable[[Path], str] = str,
) -> TemplateSource:
    """A model folder (or Hub snapshot), read the way transformers' tokenizer and processor read it."""
    notes: list[str] = []
    config_path = folder / TOKENIZER_CONFIG
    config = _read_json(config_path, describe(config_path)) if config_path.is_file() else {}
    special_tokens = _special_tokens(config)
    add_bos_token = _add_bos_token(config)

    def template(text: str, name: str, path: Path, kind: Kind = "tokenizer") -> ChatTemplate:
        return ChatTemplate(
            text=text,
            name=name,
            origin=describe(path),
            path=str(path),
            special_tokens=special_tokens,
            kind=kind,
            repo_id=repo_id,
            commit=commit,
            add_bos_token=add_bos_token if kind == "tokenizer" else None,
        )

    template_files = _template_files(folder)
    config_texts = _template_texts(config.get("chat_template"), describe(config_path))
    if template_files:
        tokenizer = [template(_read_text(path, describe(path)), name, path) for name, path in template_files.items()]
        if config_texts:
            notes.append(
                f"{describe(config_path)} also has a chat_template, ignored: {CHAT_TEMPLATE_JINJA} and "
                f"{TEMPLATE_DIR}/ take priority (as in transformers)"
            )
    else:
        tokenizer = [template(text, name, config_path) for name, text in config_texts.items()]

    processor: list[ChatTemplate] = []
    processor_path, processor_texts = _processor_templates(folder, describe)
    if processor_path.name == CHAT_TEMPLATE_JSON and processor_texts and (folder / TEMPLATE_DIR).is_dir():
        notes.append(
            f"{describe(processor_path)} together with {TEMPLATE_DIR}/: transformers refuses to load "
            "the processor (replace chat_template.json with chat_template.jinja)"
        )
    by_name = {entry.name: entry for entry in tokenizer}
    for name, text in processor_texts.items():
        counterpart = by_name.get(name)
        label = PROCESSOR_TEMPLATE_NAME if name == "default" else f"{PROCESSOR_TEMPLATE_NAME}:{name}"
        if counterpart is not None and counterpart.text == text:
            notes.append(f"processor template {describe(processor_path)} is identical to the tokenizer's {name!r}")
            continue
        processor.append(template(text, label, processor_path, kind="processor"))
        if counterpart is not None:
            notes.append(
                f"processor template {describe(processor_path)} differs from the tokenizer's {name!r} "
                f"({counterpart.origin}); vLLM uses the processor's for requests without tools: "
                f"select it by the name {label!r}"
            )

    templates = (*tokenizer, *processor)
    if not templates:
        where = f"repo {repo_id}@{commit}" if repo_id else str(folder)
        gguf_hint = "; for a GGUF file of the repo, pass --file NAME.gguf" if repo_id else ""
        raise NoChatTemplateError(
            f"no chat template in {where}: looked for {CHAT_TEMPLATE_JINJA}, {TEMPLATE_DIR}/*.jinja, "
            f'{TOKENIZER_CONFIG} ("chat_template"), {CHAT_TEMPLATE_JSON} and {PROCESSOR_CONFIG}{gguf_hint}'
        )
    return TemplateSource(reference, templates, tuple(notes))


def _template_files(folder: Path) -> dict[str, Path]:
    """``chat_template.jinja`` as ``default``, then ``additional_chat_templates/<name>.jinja``."""
    files: dict[str, Path] = {}
    if (folder / CHAT_TEMPLATE_JINJA).is_file():
        files["default"] = folder / CHAT_TEMPLATE_JINJA
    if (folder / TEMPLATE_DIR).is_dir():
        for path in sorted((folder / TEMPLATE_DIR).glob("*.jinja")):
            if path.is_file():
                files[path.stem] = path
    return files


def _processor_templates(folder: Path, describe: Callable[[Path], str]) -> tuple[Path, dict[str, str]]:
    """The processor's own templates and their file: ``processor_config.json``'s key, else ``chat_template.json``."""
    config_path = folder / PROCESSOR_CONFIG
    if config_path.is_file():
        texts = _template_texts(
            _read_json(config_path, describe(config_path)).get("chat_template"), describe(config_path)
        )
        if texts:
            return config_path, texts
    legacy_path = folder / CHAT_TEMPLATE_JSON
    if not legacy_path.is_file():
        return legacy_path, {}
    data = _read_json(legacy_path, describe(legacy_path))
    if "chat_template" not in data:
        raise MalformedFileError(f'{describe(legacy_path)} has no "chat_template" key', path=str(legacy_path))
    return legacy_path, _template_texts(data["chat_template"], describe(legacy_path))


# -- file contents -------------------------------------------------------------------------------


def _template_texts(value: Any, origin: str) -> dict[str, str]:
    """``{name: text}`` from a ``chat_template`` value: a string, a list of ``{name, template}``, a mapping."""
    if value is None:
        return {}
    if isinstance(value, str):
        return {"default": value}
    if isinstance(value, Mapping):
        value = [{"name": name, "template": text} for name, text in value.items()]
    if isinstance(value, list):
        texts: dict[str, str] = {}
        for entry in value:
            if not (
                isinstance(entry, Mapping)
                and isinstance(entry.get("name"), str)
                and isinstance(entry.get("template"), str)
            ):
                raise MalformedFileError(
                    f"{origin}: chat_template list entries must be "
                    f'{{"name": str, "template": str}}, found {_short(entry)}',
                    path=origin,
                )
            texts[entry["name"]] = entry["template"]
        return texts
    raise MalformedFileError(
        f"{origin}: chat_template must be a string or a list of {{name, template}}, found {type(value).__name__}",
        path=origin,
    )


def _add_bos_token(config: Mapping[str, Any]) -> bool | None:
    """``add_bos_token`` when the config states it as a boolean."""
    value = config.get("add_bos_token")
    return value if isinstance(value, bool) else None


def _special_tokens(config: Mapping[str, Any]) -> dict[str, str]:
    """``*_token`` entries (and named ``extra_special_tokens``) as strings, the way transformers 5 passes them."""
    entries = list(config.items())
    if isinstance(config.get("extra_special_tokens"), Mapping):
        entries += list(config["extra_special_tokens"].items())
    tokens: dict[str, str] = {}
    for key, value in entries:
        if not key.endswith("_token"):
            continue
        if isinstance(value, Mapping):
            value = value.get("content")
        if isinstance(value, str):
            tokens[key] = value
    return tokens


def _read_text(path: Path, origin: str) -> str:
    """The file's exact text (UTF-8, no newline translation), at most :data:`MAX_FILE_BYTES`."""
    try:
        with path.open("rb") as handle:
            data = _bounded_read(handle, origin)
    except OSError as error:
        raise SourceNotFoundError(f"cannot read {origin}: {error.strerror or error}", source=origin) from None
    return _decode(data, origin, path=str(path))


def _bounded_read(handle: Any, origin: str) -> bytes:
    data = handle.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise InputLimitError(
            f"{origin} is larger than {MAX_FILE_BYTES // (1024 * 1024)} MB, templatekit's limit for an input file"
        )
    return data


def check_text(text: str, origin: str, what: str = "template") -> str:
    """``text`` if it is within :data:`MAX_TEMPLATE_CHARACTERS` and valid Unicode (no lone
    surrogate such as a JSON ``"\\ud800"``, which no server can encode); else raise."""
    if len(text) > MAX_TEMPLATE_CHARACTERS:
        raise InputLimitError(
            f"{origin}: the {what} has {len(text)} characters, more than templatekit's limit of "
            f"{MAX_TEMPLATE_CHARACTERS // (1024 * 1024)} MB"
        )
    try:
        text.encode("utf-8")  # the only code points UTF-8 cannot encode are the surrogates
    except UnicodeEncodeError as error:
        raise MalformedFileError(
            f"{origin}: the {what} contains a lone surrogate "
            f"{text[error.start].encode('unicode_escape').decode()} (not valid Unicode)",
            path=origin,
        ) from None
    return text


def _decode(data: bytes, origin: str, *, path: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise MalformedFileError(
            f"{origin} is not UTF-8 text (invalid byte at offset {error.start})", path=path
        ) from None


def _read_json(path: Path, origin: str) -> dict[str, Any]:
    return _parse_json(_read_text(path, origin), origin, path=str(path))


def _parse_json(text: str, origin: str, *, path: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise MalformedFileError(
            f"malformed JSON in {origin}: line {error.lineno} column {error.colno}: {error.msg}",
            path=path,
            line=error.lineno,
            column=error.colno,
        ) from None
    except RecursionError:
        raise InputLimitError(f"{origin}: JSON nested too deeply") from None
    if not isinstance(data, dict):
        raise MalformedFileError(f"{origin}: expected a JSON object, found {type(data).__name__}", path=path)
    return data


def _short(value: Any, limit: int = 60) -> str:
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def json_position(template: ChatTemplate) -> tuple[int, int] | None:
    """Where ``template``'s JSON string starts in the config file it was read from (1-based line,
    column); ``None`` when it was not read from a JSON file."""
    if not template.path or not template.path.endswith(".json"):
        return None
    from .jsonedit import template_positions

    name = template.name
    if template.kind == "processor":
        name = "default" if name == PROCESSOR_TEMPLATE_NAME else name.split(":", 1)[1]
    return template_positions(Path(template.path).read_text(encoding="utf-8"), template.path).get(name)


# -- writing -------------------------------------------------------------------------------------


def tokenizer_config_text(source: TemplateSource, templates: Mapping[str, str]) -> str:
    """A copy of ``source``'s ``tokenizer_config.json`` carrying ``templates`` (name -> text), read
    where the source was loaded (never fetched again); a config of the templates alone if it has none."""
    if source.config is None:
        return _json_text(_with_templates({}, templates))
    return config_with_templates(Path(source.config).read_text(encoding="utf-8"), templates, source.config)


def config_with_templates(text: str, templates: Mapping[str, str], origin: str) -> str:
    """The JSON config ``text`` carrying ``templates``: only the template strings change (indent, key
    order and escapes kept) when they are all there to replace; else the config re-serialised."""
    from .jsonedit import replace_templates

    edited = replace_templates(text, templates, origin=origin)
    if edited is not None:
        return edited
    return _json_text(_with_templates(json.loads(text), templates))


def chat_template_json_text(text: str) -> str:
    """A ``chat_template.json`` holding the template ``text``."""
    return _json_text({"chat_template": text})


def write_in_place(rewrites: Sequence[tuple[ChatTemplate, str]]) -> Iterator[tuple[Path, Path]]:
    """Rewrite each template's own file with its new text, keeping a ``.orig`` backup of the file
    (a GGUF file: a hard link); yields each (file, backup) once written."""
    from .output import write_output

    by_file: dict[str, list[tuple[ChatTemplate, str]]] = {}
    for template, text in rewrites:
        by_file.setdefault(str(template.path), []).append((template, text))
    for path, entries in by_file.items():
        target = Path(path)
        backup = target.with_name(target.name + ".orig")
        texts = {template.name: text for template, text in entries}
        if entries[0][0].container == "gguf":
            from .gguf_file import read_metadata, write_copy

            write_copy(read_metadata(target), target, texts, backup=backup)
        else:
            if not backup.exists():
                import shutil  # here only (bz2 and lzma come with it: 1.6 ms of every lint)

                shutil.copy2(target, backup)
            if target.suffix == ".json":
                write_output(target, config_with_templates(target.read_text(encoding="utf-8"), texts, str(target)))
            else:
                write_output(target, entries[0][1])
        yield target, backup


def _with_templates(config: dict[str, Any], templates: Mapping[str, str]) -> dict[str, Any]:
    """``config`` with ``chat_template`` carrying ``templates`` (named templates kept, order kept)."""
    existing = config.get("chat_template")
    if isinstance(existing, list):
        names = {entry.get("name") for entry in existing}
        value: Any = [
            {**entry, "template": templates.get(entry.get("name"), entry.get("template"))} for entry in existing
        ]
        value += [{"name": name, "template": text} for name, text in templates.items() if name not in names]
    elif len(templates) == 1:
        value = next(iter(templates.values()))
    else:
        value = [{"name": name, "template": text} for name, text in templates.items()]
    return {**config, "chat_template": value}


def _json_text(data: Mapping[str, Any]) -> str:
    return json.dumps(data, ensure_ascii=False, indent=2) + "\n"
