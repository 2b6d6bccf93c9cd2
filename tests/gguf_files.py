"""Tiny GGUF files for the tests, written with llama.cpp's own ``gguf.GGUFWriter``.

``write_gguf`` writes a complete small model file (a vocabulary, special-token ids, templates,
a few tensors); ``write_sparse_gguf`` a multi-GB one whose big tensor is a hole (a sparse
file: it takes no disk space) and whose last tensor holds real bytes; ``tokenizer_config``
the tokenizer_config.json that says the same as a ``write_gguf`` file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path

import gguf
import numpy as np

__all__ = ["VOCABULARY", "write_gguf", "write_sparse_gguf", "tokenizer_config", "data_section"]

# Special tokens of the Gemma 3 and Mistral templates, and a few plain ones.
VOCABULARY = (
    "<unk>",
    "<s>",
    "</s>",
    "<bos>",
    "<eos>",
    "<pad>",
    "<start_of_turn>",
    "<end_of_turn>",
    "[INST]",
    "[/INST]",
    "hello",
    "world",
)


def write_gguf(
    path: Path,
    templates: Mapping[str, str] | None,
    *,
    bos: str = "<s>",
    eos: str = "</s>",
    add_bos: bool | None = None,
    alignment: int | None = None,
    big_endian: bool = False,
    extra: Callable[[gguf.GGUFWriter], None] | None = None,
) -> Path:
    """A small llama-architecture GGUF file: vocabulary, special tokens, ``templates``, three tensors."""
    writer = gguf.GGUFWriter(
        str(path), "llama", endianess=gguf.GGUFEndian.BIG if big_endian else gguf.GGUFEndian.LITTLE
    )
    if alignment is not None:
        writer.add_custom_alignment(alignment)
    writer.add_name("tiny test model")
    writer.add_context_length(128)
    writer.add_tokenizer_model("llama")
    writer.add_token_list(list(VOCABULARY))
    writer.add_token_scores([float(-index) for index in range(len(VOCABULARY))])
    writer.add_token_types([3 if token.startswith(("<", "[")) else 1 for token in VOCABULARY])
    writer.add_bos_token_id(VOCABULARY.index(bos))
    writer.add_eos_token_id(VOCABULARY.index(eos))
    if add_bos is not None:
        writer.add_add_bos_token(add_bos)
    if templates:
        writer.add_chat_template([{"name": name, "template": text} for name, text in templates.items()])
    if extra is not None:
        extra(writer)
    writer.add_tensor("token_embd.weight", np.arange(len(VOCABULARY) * 4, dtype=np.float32).reshape(-1, 4))
    writer.add_tensor("blk.0.attn_norm.weight", np.linspace(-1, 1, 7, dtype=np.float16))
    writer.add_tensor("output.weight", np.full((3, 5), 0.25, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def write_sparse_gguf(path: Path, template: str, *, hole_bytes: int, tail_bytes: int) -> Path:
    """A GGUF file whose first tensor (``hole_bytes``) is a hole and whose second (``tail_bytes``) is data."""
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_tokenizer_model("llama")
    writer.add_token_list(list(VOCABULARY))
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_chat_template(template)
    writer.add_tensor_info("big.weight", (hole_bytes,), np.dtype(np.int8), hole_bytes)
    writer.add_tensor_info("tail.weight", (tail_bytes,), np.dtype(np.int8), tail_bytes)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    writer.close()
    alignment = gguf.GGUF_DEFAULT_ALIGNMENT
    data_offset = -(-path.stat().st_size // alignment) * alignment
    tail_offset = data_offset + -(-hole_bytes // alignment) * alignment
    pattern = bytes(range(256)) * 4096  # 1 MiB of varied bytes
    with path.open("r+b") as handle:
        handle.truncate(data_offset)
        for position in range(0, tail_bytes, len(pattern)):
            os.pwrite(handle.fileno(), pattern[: tail_bytes - position], tail_offset + position)
        handle.truncate(tail_offset + tail_bytes)
    return path


def tokenizer_config(
    folder: Path, templates: Mapping[str, str], *, bos: str = "<s>", eos: str = "</s>", add_bos: bool | None = None
) -> Path:
    """``folder/tokenizer_config.json`` with the same templates and special tokens as ``write_gguf``."""
    folder.mkdir(parents=True, exist_ok=True)
    config: dict = {"bos_token": bos, "eos_token": eos}
    if add_bos is not None:
        config["add_bos_token"] = add_bos
    config["chat_template"] = (
        templates["default"]
        if list(templates) == ["default"]
        else [{"name": name, "template": text} for name, text in templates.items()]
    )
    path = folder / "tokenizer_config.json"
    path.write_text(json.dumps(config, ensure_ascii=False), encoding="utf-8")
    return path


def data_section(path: Path) -> bytes:
    """The bytes of the tensor data section, located by ``gguf.GGUFReader``."""
    return path.read_bytes()[gguf.GGUFReader(str(path)).data_offset :]
