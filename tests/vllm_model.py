"""Write a tiny random Llama model folder that vLLM can load and serve on CPU.

Run as ``.venv-vllm/bin/python tests/vllm_model.py FOLDER TEMPLATE`` (it needs torch and
transformers, which only the vLLM venv has). FOLDER gets a byte-level BPE tokenizer trained on
the spot (``tests/small_tokenizer.py``), a ``tokenizer_config.json`` carrying TEMPLATE's text as
its chat template, and a randomly initialised 2-layer ``LlamaForCausalLM`` (hidden size 64)
saved by transformers: a few hundred kilobytes, loaded in seconds, never meant to say anything.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from small_tokenizer import write_tokenizer  # tests/ is on the path: the script's own folder, or pytest's

SPECIAL_TOKENS = {"bos_token": "<bos>", "eos_token": "<end_of_turn>", "unk_token": "<s>", "pad_token": "</s>"}


def write_model(folder: Path, template: str) -> None:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    vocabulary = json.loads(write_tokenizer(folder).read_text(encoding="utf-8"))["model"]["vocab"]
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": 32768,
        "chat_template": template,
        **SPECIAL_TOKENS,
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(config, ensure_ascii=False), encoding="utf-8")
    torch.manual_seed(0)
    model_config = LlamaConfig(
        vocab_size=len(vocabulary),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=1,
        num_key_value_heads=1,
        max_position_embeddings=32768,
        bos_token_id=vocabulary[SPECIAL_TOKENS["bos_token"]],
        eos_token_id=vocabulary[SPECIAL_TOKENS["eos_token"]],
        pad_token_id=vocabulary[SPECIAL_TOKENS["pad_token"]],
        torch_dtype="float32",
    )
    LlamaForCausalLM(model_config).save_pretrained(folder)


if __name__ == "__main__":
    folder, template_path = Path(sys.argv[1]), Path(sys.argv[2])
    with template_path.open(encoding="utf-8", newline="") as handle:
        write_model(folder, handle.read())
