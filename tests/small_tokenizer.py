"""A small real byte-level BPE tokenizer, trained in a few milliseconds for tests.

Its special tokens are those of the templates we test with (Gemma's ``<bos>``,
``<start_of_turn>``, ``<end_of_turn>``, and ``<s>``/``</s>``); byte-level BPE encodes any text.
"""

from __future__ import annotations

from pathlib import Path

SPECIAL_TOKENS = (
    "<bos>",
    "<start_of_turn>",
    "<end_of_turn>",
    "<s>",
    "</s>",
    "<|user|>",
    "<|assistant|>",
    "<|system|>",
    "<|end|>",
)
TRAINING_LINES = (
    "user\nhello there, how are you?",
    "model\nI am fine, thanks. What is the weather in Paris?",
    "a b c d e f g h i j k l m n o p q r s t u v w x y z",
    "Please write a short poem about cats.\n\nSure, here you go.",
    'The quick brown fox jumps over the lazy dog. 0123456789 {} [] "quoted"',
)


def tokenizer_json() -> str:
    """The ``tokenizer.json`` text of a freshly trained small tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(TRAINING_LINES, trainer)
    return tokenizer.to_str()


def write_tokenizer(folder: Path) -> Path:
    """Write ``tokenizer.json`` into ``folder`` and return its path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "tokenizer.json"
    path.write_text(tokenizer_json(), encoding="utf-8")
    return path
