"""GGUF files: read the metadata (never the tensors), write a copy carrying other chat templates.

A GGUF file is a header (magic, version, tensor and key counts), the key/value metadata, the
tensor infos, padding to ``general.alignment`` and the tensor data, whose offsets are relative
to the start of the data section. :func:`read_metadata` parses the first three with buffered
reads and stops there: it touches the header and metadata only, whatever the file's size.
(``gguf.GGUFReader`` memory-maps the file but builds a numpy view per array element, which
takes seconds on a 256k-token vocabulary, so the key/value section is parsed here; the tensor
type sizes, supported versions and type names in messages are llama.cpp's own, from ``gguf``.)

:func:`write_copy` writes the same file with some template values replaced: the header, every
other key/value entry and the tensor infos are copied from the original bytes, the data section
is re-padded to the alignment and stream-copied in fixed-size chunks (holes in a sparse input
stay holes), into a temporary file in the target's folder that replaces the target only when
complete. ``gguf`` (and numpy with it) is imported only when a GGUF file is read.
"""

from __future__ import annotations

import errno
import os
import struct
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO

from .errors import (
    MalformedFileError,
    NoChatTemplateError,
    OutputError,
    SourceNotFoundError,
    UnsupportedVersionError,
)
from .records import Record

__all__ = [
    "GGUF_MAGIC",
    "GGUFField",
    "GGUFMetadata",
    "is_gguf",
    "read_metadata",
    "chat_templates",
    "special_tokens",
    "add_bos_token",
    "template_key",
    "write_copy",
]

GGUF_MAGIC = b"GGUF"
DEFAULT_TEMPLATE_KEY = "tokenizer.chat_template"
_READ_CHUNK = 1 << 16  # metadata is read in chunks of this size
_COPY_CHUNK = 8 << 20  # the tensor data is copied through one buffer of this size
# Array values kept in memory when read (the vocabulary); every other array is walked over.
_KEPT_ARRAYS = frozenset({"tokenizer.ggml.tokens"})
# transformers' special-token names -> the GGUF key of the token id
_SPECIAL_TOKEN_IDS = {
    "bos_token": "tokenizer.ggml.bos_token_id",
    "eos_token": "tokenizer.ggml.eos_token_id",
    "unk_token": "tokenizer.ggml.unknown_token_id",
    "sep_token": "tokenizer.ggml.seperator_token_id",
    "pad_token": "tokenizer.ggml.padding_token_id",
    "mask_token": "tokenizer.ggml.mask_token_id",
}


class GGUFField(Record):
    """One metadata entry: its key, value type (``gguf.GGUFValueType``), value and byte range.

    ``value`` is the decoded scalar or string; for arrays a tuple of raw items when the key is
    one we keep (the vocabulary), else ``None``. ``start``/``end`` delimit the whole entry
    (key, type, value) in the file.
    """

    key: str
    value_type: int
    value: Any
    start: int
    end: int
    item_type: int | None = None


class GGUFMetadata(Record):
    """Everything before a GGUF file's tensor data, and where each part lies in the file."""

    path: str
    version: int
    byte_order: str  # struct prefix: "<" little-endian, ">" big-endian
    tensor_count: int
    fields: Mapping[str, GGUFField]  # in file order
    tensor_info_start: int
    tensor_info_end: int
    alignment: int
    data_offset: int
    file_size: int

    def string(self, key: str) -> str | None:
        """The string value of ``key`` (``None`` when absent); a value of another type is malformed."""
        field = self.fields.get(key)
        if field is None:
            return None
        if field.value_type != _types().STRING:
            raise _wrong_type(self.path, field, "a string")
        return field.value


def is_gguf(path: str | Path) -> bool:
    """Whether ``path`` is named ``*.gguf`` or starts with the GGUF magic."""
    path = Path(path)
    if path.suffix.lower() == ".gguf":
        return True
    try:
        with path.open("rb") as handle:
            return handle.read(4) == GGUF_MAGIC
    except OSError:
        return False


def read_metadata(path: str | Path) -> GGUFMetadata:
    """Parse the header, metadata and tensor infos of the GGUF file ``path``.

    Raises :class:`~templatekit.errors.MalformedFileError` (not a GGUF file, truncated, a bad
    value) or :class:`~templatekit.errors.UnsupportedVersionError`. Reads no tensor data.
    """
    path = str(path)
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed below
    except OSError as error:
        raise SourceNotFoundError(f"cannot read {path}: {error.strerror or error}", source=path) from None
    with handle:
        cursor = _Cursor(handle, os.fstat(handle.fileno()).st_size, path)
        if cursor.size < 4 or cursor.take(4) != GGUF_MAGIC:
            raise MalformedFileError(f"{path} is not a GGUF file (it does not start with the GGUF magic)", path=path)
        byte_order, version = _version(cursor, path)
        cursor.byte_order = byte_order
        tensor_count, kv_count = cursor.unsigned(8), cursor.unsigned(8)
        _plausible_count(cursor, kv_count, "key/value entries")
        _plausible_count(cursor, tensor_count, "tensors")
        fields: dict[str, GGUFField] = {}
        for _ in range(kv_count):
            field = _read_field(cursor)
            if field.key in fields:
                raise MalformedFileError(f"{path}: metadata key {field.key!r} appears twice", path=path)
            fields[field.key] = field
        alignment = _alignment(path, fields)
        tensor_info_start = cursor.offset
        data_size = _tensor_data_size(cursor, tensor_count)
        tensor_info_end = cursor.offset
    data_offset = _padded(tensor_info_end, alignment)
    if data_offset + data_size > cursor.size:
        raise MalformedFileError(
            f"{path} is truncated: its tensors need {data_offset + data_size} bytes, the file has {cursor.size}",
            path=path,
        )
    return GGUFMetadata(
        path=path,
        version=version,
        byte_order=byte_order,
        tensor_count=tensor_count,
        fields=fields,
        tensor_info_start=tensor_info_start,
        tensor_info_end=tensor_info_end,
        alignment=alignment,
        data_offset=data_offset,
        file_size=cursor.size,
    )


def template_key(name: str) -> str:
    """The metadata key of the template called ``name`` (``default``: ``tokenizer.chat_template``)."""
    return DEFAULT_TEMPLATE_KEY if name == "default" else f"{DEFAULT_TEMPLATE_KEY}.{name}"


def chat_templates(metadata: GGUFMetadata) -> dict[str, str]:
    """``{name: text}``: ``tokenizer.chat_template`` as ``default``, then ``tokenizer.chat_template.<name>``.

    Raises :class:`~templatekit.errors.NoChatTemplateError` when there is none.
    """
    prefix = DEFAULT_TEMPLATE_KEY + "."
    names = ["default"] if DEFAULT_TEMPLATE_KEY in metadata.fields else []
    names += [key[len(prefix) :] for key in metadata.fields if key.startswith(prefix) and len(key) > len(prefix)]
    templates = {name: metadata.string(template_key(name)) for name in names}
    if not templates:
        raise NoChatTemplateError(
            f"no chat template in {metadata.path}: no {DEFAULT_TEMPLATE_KEY} (or {prefix}<name>) key in its metadata"
        )
    return templates  # type: ignore[return-value]


def special_tokens(metadata: GGUFMetadata) -> dict[str, str]:
    """``bos_token``, ``eos_token``, ... as text, from the vocabulary and its ``*_token_id`` keys."""
    tokens_field = metadata.fields.get("tokenizer.ggml.tokens")
    if tokens_field is None:
        return {}
    types = _types()
    if tokens_field.value_type != types.ARRAY or tokens_field.item_type != types.STRING:
        raise _wrong_type(metadata.path, tokens_field, "an array of strings")
    vocabulary: tuple[bytes, ...] = tokens_field.value
    found: dict[str, str] = {}
    for name, key in _SPECIAL_TOKEN_IDS.items():
        field = metadata.fields.get(key)
        if field is None:
            continue
        if field.value_type not in _integer_types():
            raise _wrong_type(metadata.path, field, "an integer")
        if 0 <= field.value < len(vocabulary):
            found[name] = vocabulary[field.value].decode("utf-8", "replace")
    return found


def add_bos_token(metadata: GGUFMetadata) -> bool | None:
    """``tokenizer.ggml.add_bos_token`` (``None`` when the file does not say)."""
    field = metadata.fields.get("tokenizer.ggml.add_bos_token")
    if field is None:
        return None
    if field.value_type != _types().BOOL:
        raise _wrong_type(metadata.path, field, "a boolean")
    return bool(field.value)


def write_copy(
    metadata: GGUFMetadata, target: str | Path, templates: Mapping[str, str], *, backup: str | Path | None = None
) -> None:
    """Write the GGUF file of ``metadata`` to ``target`` with the values of ``templates`` replaced.

    ``templates`` maps template names (``default``, ``tool_use``, ...) to new texts; each must
    already be in the file. Everything else is copied byte for byte; the data section moves
    only by the size difference, re-padded to the file's alignment. The copy goes to a
    temporary file beside ``target`` that replaces it when complete (and is removed on any
    failure, interrupt or SIGTERM). ``target`` may be the input only with a ``backup`` path,
    which receives the original (a hard link when possible) unless it already exists.
    Raises :class:`~templatekit.errors.OutputError`.
    """
    from .output import current_umask, real_target, temporary_beside  # here: reading (is_gguf) stays light

    source, target = Path(metadata.path), real_target(target)  # a symlink's target is replaced; the link stays
    replaced = {template_key(name): text for name, text in templates.items()}
    missing = [key for key in replaced if key not in metadata.fields]
    if missing:
        raise ValueError(f"{source} has no {', '.join(missing)} to replace")
    if target.exists():
        if not target.is_file():
            raise OutputError(f"refusing to replace {target}: not a regular file")
        if os.path.samefile(source, target) and backup is None:
            raise OutputError(f"refusing to overwrite the input {target}; rewrite it in place with a backup")
    with temporary_beside(target) as (output, temporary):
        with open(source, "rb", buffering=0) as original:
            _write_sections(metadata, original, output, replaced)
        output.flush()
        os.fsync(output.fileno())
        os.chmod(temporary, target.stat().st_mode & 0o7777 if target.exists() else 0o666 & ~current_umask())
        if backup is not None and not Path(backup).exists():
            _keep_backup(source, Path(backup))
        os.replace(temporary, target)


# -- reading -------------------------------------------------------------------------------------


class _Cursor:
    """Sequential reads of a file through a small buffer; skips beyond the buffer seek instead."""

    def __init__(self, handle: BinaryIO, size: int, path: str) -> None:
        self._handle, self.size, self.path = handle, size, path
        self._buffer, self._start, self._position = b"", 0, 0
        self.byte_order = "<"

    @property
    def offset(self) -> int:
        return self._start + self._position

    def take(self, count: int) -> bytes:
        if self._position + count > len(self._buffer):
            self._fill(count)
        data = self._buffer[self._position : self._position + count]
        self._position += count
        return data

    def skip(self, count: int) -> None:
        self._check(count)
        if self._position + count <= len(self._buffer):
            self._position += count
        else:
            self._buffer, self._start, self._position = b"", self.offset + count, 0

    def unsigned(self, size: int) -> int:
        return struct.unpack(self.byte_order + _UNSIGNED[size], self.take(size))[0]

    def string(self) -> bytes:
        return self.take(self.unsigned(8))

    def strings(self, count: int, *, keep: bool) -> tuple[bytes, ...] | None:
        """``count`` strings in a row (an array's items), kept or only walked over; the hot loop of a vocabulary."""
        length_of = struct.Struct(self.byte_order + "Q").unpack_from
        items: list[bytes] = []
        for _ in range(count):
            if self._position + 8 > len(self._buffer):
                self._fill(8)
            length = length_of(self._buffer, self._position)[0]
            self._position += 8
            end = self._position + length
            if end <= len(self._buffer):
                if keep:
                    items.append(self._buffer[self._position : end])
                self._position = end
            elif keep:
                items.append(self.take(length))
            else:
                self.skip(length)
        return tuple(items) if keep else None

    def _check(self, count: int) -> None:
        if self.offset + count > self.size:
            raise MalformedFileError(
                f"{self.path} is truncated: it ends at byte {self.size}, inside its "
                f"metadata (reading {count} bytes at offset {self.offset})",
                path=self.path,
            )

    def _fill(self, count: int) -> None:
        self._check(count)
        offset = self.offset
        self._handle.seek(offset)
        self._buffer, self._start, self._position = self._handle.read(max(count, _READ_CHUNK)), offset, 0


_UNSIGNED = {1: "B", 2: "H", 4: "I", 8: "Q"}
# value type -> (struct format, size) for the fixed-size types
_SCALARS = {
    0: ("B", 1),
    1: ("b", 1),
    2: ("H", 2),
    3: ("h", 2),
    4: ("I", 4),
    5: ("i", 4),
    6: ("f", 4),
    7: ("?", 1),
    10: ("Q", 8),
    11: ("q", 8),
    12: ("d", 8),
}
_STRING, _ARRAY = 8, 9
_MAX_DIMS = 4  # GGML_MAX_DIMS


def _version(cursor: _Cursor, path: str) -> tuple[str, int]:
    from gguf.gguf_reader import READER_SUPPORTED_VERSIONS

    raw = cursor.take(4)
    version, byte_order = struct.unpack("<I", raw)[0], "<"
    if version & 0xFFFF == 0:  # written on a machine of the other byte order
        version, byte_order = struct.unpack(">I", raw)[0], ">"
    if version not in READER_SUPPORTED_VERSIONS:
        supported = ", ".join(str(item) for item in READER_SUPPORTED_VERSIONS)
        raise UnsupportedVersionError(
            f"{path} is GGUF version {version}; templatekit reads versions {supported}", path=path, version=version
        )
    return byte_order, version


def _plausible_count(cursor: _Cursor, count: int, what: str) -> None:
    """Every entry takes at least 8 bytes: a larger count than the file can hold is corrupt."""
    if count * 8 > cursor.size:
        raise MalformedFileError(
            f"{cursor.path}: header claims {count} {what}, more than the file can hold", path=cursor.path
        )


def _read_field(cursor: _Cursor) -> GGUFField:
    start = cursor.offset
    raw_key = cursor.string()
    try:
        key = raw_key.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedFileError(
            f"{cursor.path}: metadata key at offset {start} is not UTF-8", path=cursor.path
        ) from None
    value_type = cursor.unsigned(4)
    if value_type != _ARRAY:
        value = _read_value(cursor, value_type, key)
        return GGUFField(key, value_type, value, start, cursor.offset)
    item_type, count = cursor.unsigned(4), cursor.unsigned(8)
    _plausible_count(cursor, count // 8, f"items in {key}")
    keep = key in _KEPT_ARRAYS
    if item_type in _SCALARS and not keep:
        cursor.skip(_SCALARS[item_type][1] * count)
        return GGUFField(key, value_type, None, start, cursor.offset, item_type)
    if item_type == _STRING:
        return GGUFField(key, value_type, cursor.strings(count, keep=keep), start, cursor.offset, item_type)
    items = []
    for _ in range(count):
        item = _read_value(cursor, item_type, key, decode=False)
        if keep:
            items.append(item)
    return GGUFField(key, value_type, tuple(items) if keep else None, start, cursor.offset, item_type)


def _read_value(cursor: _Cursor, value_type: int, key: str, *, decode: bool = True) -> Any:
    if value_type in _SCALARS:
        fmt, size = _SCALARS[value_type]
        return struct.unpack(cursor.byte_order + fmt, cursor.take(size))[0]
    if value_type == _STRING:
        length = cursor.unsigned(8)
        if not decode:
            return cursor.take(length)
        raw = cursor.take(length)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as error:
            raise MalformedFileError(
                f"{cursor.path}: the value of {key} is not UTF-8 text (invalid byte at offset {error.start})",
                path=cursor.path,
            ) from None
    if value_type == _ARRAY:  # nested array: walk it, keep nothing
        item_type, count = cursor.unsigned(4), cursor.unsigned(8)
        _plausible_count(cursor, count // 8, f"items in {key}")
        for _ in range(count):
            _read_value(cursor, item_type, key, decode=False)
        return None
    raise MalformedFileError(f"{cursor.path}: metadata key {key} has unknown value type {value_type}", path=cursor.path)


def _tensor_data_size(cursor: _Cursor, count: int) -> int:
    """Walk ``count`` tensor infos; the size of the data section they need (the end of the last tensor)."""
    from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType

    size = 0
    for _ in range(count):
        name = cursor.string().decode("utf-8", "replace")
        n_dims = cursor.unsigned(4)
        if n_dims > _MAX_DIMS:
            raise MalformedFileError(f"{cursor.path}: tensor {name!r} has {n_dims} dimensions", path=cursor.path)
        elements = 1
        for _ in range(n_dims):
            elements *= cursor.unsigned(8)
        raw_type, offset = cursor.unsigned(4), cursor.unsigned(8)
        try:
            block_size, type_size = GGML_QUANT_SIZES[GGMLQuantizationType(raw_type)]
        except (ValueError, KeyError):
            raise MalformedFileError(
                f"{cursor.path}: tensor {name!r} has unknown type {raw_type}", path=cursor.path
            ) from None
        size = max(size, offset + elements * type_size // block_size)
    return size


def _alignment(path: str, fields: Mapping[str, GGUFField]) -> int:
    field = fields.get("general.alignment")
    if field is None:
        return 32
    if field.value_type != _types().UINT32:
        raise _wrong_type(path, field, "a uint32")
    if field.value <= 0 or field.value & (field.value - 1):
        raise MalformedFileError(f"{path}: general.alignment is {field.value}, not a power of two", path=path)
    return int(field.value)


def _padded(offset: int, alignment: int) -> int:
    return offset + (-offset % alignment)


def _types() -> Any:
    from gguf.constants import GGUFValueType

    return GGUFValueType


def _integer_types() -> frozenset[int]:
    types = _types()
    return frozenset(
        {types.UINT8, types.INT8, types.UINT16, types.INT16, types.UINT32, types.INT32, types.UINT64, types.INT64}
    )


def _type_name(field: GGUFField) -> str:
    types = _types()
    name = types(field.value_type).name if field.value_type in set(types) else str(field.value_type)
    if field.item_type is not None:
        item = types(field.item_type).name if field.item_type in set(types) else str(field.item_type)
        return f"{name} of {item}"
    return name


def _wrong_type(path: str, field: GGUFField, expected: str) -> MalformedFileError:
    return MalformedFileError(
        f"{path}: metadata key {field.key} is {_type_name(field)}, expected {expected}", path=path
    )


# -- writing -------------------------------------------------------------------------------------


def _write_sections(metadata: GGUFMetadata, original: BinaryIO, output: BinaryIO, replaced: Mapping[str, str]) -> None:
    """Header and unchanged entries copied, replaced templates encoded, data re-padded and copied."""
    from .output import write_all

    buffer = bytearray(_COPY_CHUNK)
    first = min((field.start for field in metadata.fields.values()), default=metadata.tensor_info_start)
    _copy_range(original, output, 0, first, buffer)
    for field in metadata.fields.values():
        if field.key in replaced:
            write_all(output, _encode_string_field(field.key, replaced[field.key], metadata.byte_order))
        else:
            _copy_range(original, output, field.start, field.end, buffer)
    _copy_range(original, output, metadata.tensor_info_start, metadata.tensor_info_end, buffer)
    written = output.tell()
    write_all(output, bytes(_padded(written, metadata.alignment) - written))
    _copy_range(original, output, metadata.data_offset, metadata.file_size, buffer)
    output.truncate()


def _encode_string_field(key: str, text: str, byte_order: str) -> bytes:
    raw_key, raw_text = key.encode("utf-8"), text.encode("utf-8")
    return (
        struct.pack(f"{byte_order}Q", len(raw_key))
        + raw_key
        + struct.pack(f"{byte_order}I", _STRING)
        + struct.pack(f"{byte_order}Q", len(raw_text))
        + raw_text
    )


def _copy_range(original: BinaryIO, output: BinaryIO, start: int, end: int, buffer: bytearray) -> None:
    """Append bytes ``[start, end)`` of ``original`` to ``output``; holes are seeked over, not written.

    Both files are unbuffered, so every seek reaches the OS (the extents come from ``lseek``).
    """
    from .output import write_all

    view = memoryview(buffer)
    shift = output.tell() - start
    for data_start, data_end in _data_extents(original.fileno(), start, end):
        output.seek(data_start + shift)
        original.seek(data_start)
        remaining = data_end - data_start
        while remaining:
            count = original.readinto(view[: min(remaining, len(buffer))])
            if not count:
                raise OutputError(f"{getattr(original, 'name', 'the input')} shrank while it was being copied")
            write_all(output, view[:count])
            remaining -= count
    output.seek(end + shift)


def _data_extents(fd: int, start: int, end: int) -> Iterator[tuple[int, int]]:
    """The ``(start, end)`` ranges of ``[start, end)`` that hold data; holes are left out where the OS tells."""
    position = start
    while position < end:
        try:
            data = os.lseek(fd, position, os.SEEK_DATA)
        except OSError as error:
            if error.errno == errno.ENXIO:  # nothing but a hole up to the end of the file
                return
            yield position, end  # the file system does not report holes
            return
        if data >= end:
            return
        hole = min(os.lseek(fd, data, os.SEEK_HOLE), end)
        yield data, hole
        position = hole


def _keep_backup(source: Path, backup: Path) -> None:
    """``backup`` holds the original: a hard link (instant, no space) when the file system allows."""
    try:
        os.link(source, backup)
    except OSError:
        import shutil

        shutil.copy2(source, backup)
