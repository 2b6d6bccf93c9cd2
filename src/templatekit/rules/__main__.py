"""``python -m templatekit.rules [FOLDER]``: regenerate the rule docs (default: docs/rules)."""

from __future__ import annotations

import sys
from pathlib import Path

from . import doc_pages


def main(argv: list[str]) -> int:
    folder = Path(argv[0] if argv else "docs/rules")
    folder.mkdir(parents=True, exist_ok=True)
    pages = doc_pages()
    for stale in folder.glob("TK*.md"):
        if stale.name not in pages:
            stale.unlink()
    for name, text in pages.items():
        path = folder / name
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
    print(f"{len(pages)} pages in {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
