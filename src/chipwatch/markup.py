"""Feed markup -> plain text (pure).

chipwatch stores plain text only and escapes where it renders, so an entry's HTML is
reduced here once: scripts and styles dropped, block tags turned into line breaks, tags
stripped, entities unescaped, spaces tidied.
"""

from __future__ import annotations

import html
import json
import re
from typing import Any

_DROP_BLOCKS = re.compile(r"<(script|style|template)\b.*?</\1\s*>|<!--.*?-->", re.I | re.S)
_BREAKS = re.compile(r"<(?:br|/p|/div|/li|/h[1-6]|/tr|/blockquote)\b[^>]*>", re.I)
_OPEN_TAG_AT_END = re.compile(r"<[^>]*$")
_TAG = re.compile(r"</?[a-zA-Z][^<>]*>|<![^<>]*>")


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def json_document(text: str) -> Any:
    """`json.loads`, with lone surrogate escapes ("\\ud800": valid JSON, not valid text)
    replaced by U+FFFD: a string holding one cannot be encoded, stored or embedded.
    A document nested deeper than the interpreter's recursion limit is invalid JSON
    (a JSONDecodeError, as for any other malformed input; it was a RecursionError)."""
    try:
        document = json.loads(text)
        return _scrubbed(document) if _SURROGATE_ESCAPE.search(text) else document
    except RecursionError:
        raise json.JSONDecodeError("nested too deeply", text, 0) from None


def _scrubbed(value: Any) -> Any:
    if isinstance(value, str):
        return _LONE_SURROGATE.sub("\ufffd", value)
    if isinstance(value, list):
        return [_scrubbed(item) for item in value]
    if isinstance(value, dict):
        return {_scrubbed(k): _scrubbed(v) for k, v in value.items()}
    return value


def to_text(value: str | None, limit: int | None = None) -> str:
    """Markup -> plain text: drop scripts, strip tags, unescape entities, tidy spaces."""
    if not value:
        return ""
    text = value
    if limit is not None and len(text) > limit * 3:
        # Markup is rarely over 3x its text: cut before the regexes, not after.
        text = _OPEN_TAG_AT_END.sub("", text[: limit * 3])
    for _ in range(2):  # second pass: markup that was escaped twice in the feed
        if "<" not in text and "&" not in text:
            break
        if _TAG.search(text):
            # In markup a raw newline is just a space; block tags make the line breaks.
            text = _BREAKS.sub("\n", _DROP_BLOCKS.sub(" ", text.replace("\n", " ")))
        text = html.unescape(_TAG.sub(" ", text))
    # str.split() is C-fast and knows every Unicode space (regexes were 3x slower here);
    # map/filter keep the per-line work in C too (a generator was a third of to_text).
    if "\n" not in text:
        return " ".join(text.split())
    return "\n".join(filter(None, map(" ".join, map(str.split, text.split("\n")))))
