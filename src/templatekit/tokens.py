"""Tokenizers for token-level comparison, and the token-by-token diff of two renders.

:func:`load_tokenizer` reads a ``tokenizer.json`` (a Hub repo id, a local model folder or the
file itself) with the ``tokenizers`` library, imported only when a tokenizer is asked for.
:func:`diff_tokens` is a pure function over two :class:`Tokens` sequences;
:func:`format_token_diff` turns its result into text for a terminal.
"""

from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from .errors import SourceNotFoundError, TokenizerError
from .records import Record

if TYPE_CHECKING:
    import tokenizers

__all__ = ["Tokens", "Tokenizer", "TokenRow", "TokenDiff", "load_tokenizer", "diff_tokens", "format_token_diff"]

TOKENIZER_FILE = "tokenizer.json"


class Tokens(Record):
    """Token ids of one text, and the piece of that text each token covers (see :meth:`Tokenizer.encode`)."""

    ids: tuple[int, ...]
    pieces: tuple[str, ...]


class Tokenizer:
    """A loaded ``tokenizers`` tokenizer and where it came from."""

    __slots__ = ("backend", "origin")

    def __init__(self, backend: tokenizers.Tokenizer, origin: str) -> None:
        self.backend = backend
        self.origin = origin

    def encode(self, text: str) -> Tokens:
        """Token ids of ``text`` as a server tokenizes a rendered prompt (no special tokens added).

        Each piece is the text its token covers; when one character spans several byte-level
        tokens, its first token carries it and the others are empty, so the pieces always
        join back into ``text``.
        """
        encoding = self.backend.encode(text, add_special_tokens=False)
        pieces = []
        previous_end = 0
        for start, end in encoding.offsets:
            start = max(start, previous_end)
            pieces.append(text[start:end] if end > start else "")
            previous_end = max(previous_end, end)
        return Tokens(tuple(encoding.ids), tuple(pieces))


# Files of a model folder that are not a tokenizer: given one, its folder's tokenizer.json is used.
_MODEL_CONFIG_FILES = (
    "tokenizer_config.json",
    "chat_template.json",
    "processor_config.json",
    "config.json",
    "generation_config.json",
    "special_tokens_map.json",
)


def load_tokenizer(source: str, *, revision: str | None = None, token: str | None = None) -> Tokenizer:
    """The tokenizer of ``source``: a tokenizer file (``tokenizer.json`` or any other ``.json``
    name), a model folder (or one of its config files) holding ``tokenizer.json``, or a Hub
    repo id, resolved like a template source.

    Raises :class:`~templatekit.errors.TokenizerError` when there is no ``tokenizer.json`` or
    it cannot be read; Hub failures (gated, offline, repo or revision not found) raise the
    same errors as loading a template.
    """
    from .sources import resolve_file

    given = Path(source)
    try:
        if given.is_file() and given.suffix == ".json" and given.name not in _MODEL_CONFIG_FILES:
            path = given  # a tokenizer file under any name (tok.json)
        else:
            path = resolve_file(source, TOKENIZER_FILE, revision=revision, token=token)
    except SourceNotFoundError as error:
        if error.filename == TOKENIZER_FILE:
            raise TokenizerError(f"cannot load tokenizer: {error}") from None
        raise
    import tokenizers

    try:
        backend = tokenizers.Tokenizer.from_file(str(path))
    except Exception as error:  # noqa: BLE001 - the Rust loader raises plain Exception subclasses
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise TokenizerError(f"cannot load tokenizer from {source}: {reason}") from None
    return Tokenizer(backend, source)


# --- token diff -----------------------------------------------------------------------------

Op = Literal["equal", "replace", "delete", "insert"]


class TokenRow(Record):
    """One aligned row: a token of the left side, of the right side, or both.

    ``left``/``right`` are ``(position, id, piece)`` or ``None`` where that side has no token.
    """

    op: Op
    left: tuple[int, int, str] | None
    right: tuple[int, int, str] | None


class TokenDiff(Record):
    """Two token sequences aligned row by row; ``first_divergence`` is a row index or ``None``."""

    left: Tokens
    right: Tokens
    rows: tuple[TokenRow, ...]
    first_divergence: int | None

    @property
    def identical(self) -> bool:
        return self.first_divergence is None


def diff_tokens(left: Tokens, right: Tokens) -> TokenDiff:
    """Align ``left`` and ``right`` by token id (difflib) and mark the first differing row."""
    matcher = difflib.SequenceMatcher(None, left.ids, right.ids, autojunk=False)
    rows: list[TokenRow] = []
    first: int | None = None
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op != "equal" and first is None:
            first = len(rows)
        for offset in range(max(i2 - i1, j2 - j1)):
            i, j = i1 + offset, j1 + offset
            left_token = (i, left.ids[i], left.pieces[i]) if i < i2 else None
            right_token = (j, right.ids[j], right.pieces[j]) if j < j2 else None
            row_op: Op = op if left_token and right_token else ("delete" if left_token else "insert")
            rows.append(TokenRow(row_op, left_token, right_token))
    return TokenDiff(left, right, tuple(rows), first)


def format_token_diff(
    diff: TokenDiff, *, left_label: str = "expected", right_label: str = "actual", context: int = 3, max_rows: int = 40
) -> str:
    """A table of aligned tokens around the first divergence, marked ``>>``.

    Each side shows ``position id piece``; pieces are JSON-quoted so whitespace is visible.
    """
    if diff.first_divergence is None:
        return f"tokens identical ({len(diff.left.ids)} tokens)"
    first = diff.first_divergence
    start = max(0, first - context)
    shown = diff.rows[start : start + max_rows]
    cells = [(_cell(row.left), _cell(row.right), row) for row in shown]
    width = max([len(left_label), *(len(left) for left, _, _ in cells)])
    first_row = diff.rows[first]
    where = f"{left_label} token {first_row.left[0]}" if first_row.left else f"{right_label} token {first_row.right[0]}"
    lines = [
        f"first token divergence at {where} "
        f"({left_label}: {len(diff.left.ids)} tokens, {right_label}: {len(diff.right.ids)} tokens)",
        f"    {left_label.ljust(width)}   {right_label}",
    ]
    for index, (left, right, row) in enumerate(cells, start):
        mark = ">> " if index == first else ("!  " if row.op != "equal" else "   ")
        lines.append(f"{mark} {left.ljust(width)}   {right}")
    hidden = len(diff.rows) - start - len(shown)
    if hidden > 0:
        lines.append(f"    ... {hidden} more rows")
    return "\n".join(lines)


def _cell(token: tuple[int, int, str] | None) -> str:
    if token is None:
        return "-"
    position, token_id, piece = token
    return f"{position:>4} {token_id:>6} {json.dumps(piece, ensure_ascii=False)}"
