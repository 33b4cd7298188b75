"""MkDocs hook: links from a page to repository files outside docs/ (sources, tests,
benches/README.md) have no page on the site. A link whose target exists in the repository
becomes a link to ``extra.source_url`` + its path when that is set, else plain text; a
link to a file that does not exist is left alone, so ``--strict`` still fails on it."""

from __future__ import annotations

import posixpath
import re
from pathlib import Path
from typing import Any

_LINK = re.compile(r"(?<!!)\[([^\]\n]+)\]\(([^)\s#]+)(#[^)\s]*)?\)")


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    docs = Path(config["docs_dir"]).resolve()
    root = docs.parent
    source_url = (config.get("extra") or {}).get("source_url")
    page_dir = posixpath.dirname(page.file.src_uri)

    def rewrite(m: re.Match[str]) -> str:
        text, target, anchor = m.group(1), m.group(2), m.group(3) or ""
        if "://" in target or target.startswith(("/", "mailto:")):
            return m.group(0)
        resolved = (docs / page_dir / target).resolve()
        if resolved.is_relative_to(docs) or not resolved.is_relative_to(root):
            return m.group(0)
        if not resolved.exists():
            return m.group(0)  # broken: let MkDocs report it
        rel = resolved.relative_to(root).as_posix()
        if source_url:
            return f"[{text}]({source_url.rstrip('/')}/{rel}{anchor})"
        return text

    return _LINK.sub(rewrite, markdown)
