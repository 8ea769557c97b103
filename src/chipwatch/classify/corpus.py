"""The reference corpus: config/corpus/corpus.toml and its text files."""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from chipwatch.classify.text import MAX_TEXT_CHARS
from chipwatch.classify.topics import check_keys, read_toml
from chipwatch.errors import ConfigError
from chipwatch.types import CorpusDocument

CORPUS_FILE = "corpus.toml"
# A corpus document is read as an article is: no further than the classifier reads one
# (a 50 MB document made every fit, and so every poll, run out of time and memory).
MAX_DOCUMENT_CHARS = MAX_TEXT_CHARS
log = logging.getLogger(__name__)
# Corpus files may open with a "date YYYY-MM[-DD]" marker left by the clipping tool.
_DATE_MARKER = re.compile(r"^\s*date\s+(\d{4}-\d{2}(?:-\d{2})?)\s+")
# The keys corpus.toml may hold: a typo ([[documnt]]) would drop a document silently.
_TOP_KEYS = ("document",)
_DOCUMENT_KEYS = ("id", "file", "language", "topics", "relevant", "title")


def read_bounded(path: Path) -> tuple[str, bool]:
    """The file's text up to MAX_DOCUMENT_CHARS, and whether it goes on beyond them; a
    huge file is never read whole."""
    # utf-8-sig: a byte-order mark (Windows editors write one) is no part of the title.
    with path.open(encoding="utf-8-sig") as handle:
        text = handle.read(MAX_DOCUMENT_CHARS + 1).replace("\x00", "")
    return text[:MAX_DOCUMENT_CHARS], len(text) > MAX_DOCUMENT_CHARS


def _field(raw: Mapping[str, Any], key: str, source: str, where: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(source, f"{where}.{key}", "missing or not a non-empty string")
    return value.strip()


def _document(
    raw: object, corpus_dir: Path, source: str, where: str, known: set[str] | None
) -> CorpusDocument:
    if not isinstance(raw, dict):
        raise ConfigError(source, where, "must be a table")
    check_keys(raw, _DOCUMENT_KEYS, source, where)
    doc_id = _field(raw, "id", source, where)
    file_name = _field(raw, "file", source, where)
    language = _field(raw, "language", source, where)
    topics = raw.get("topics")
    if not isinstance(topics, list) or not all(isinstance(t, str) for t in topics):
        raise ConfigError(source, f"{where}.topics", "missing or not a list of topic ids")
    for index, topic in enumerate(topics):
        if known is not None and topic not in known:
            raise ConfigError(source, f"{where}.topics[{index}]", f"unknown topic id {topic!r}")
    relevant = raw.get("relevant", True)
    if not isinstance(relevant, bool):
        raise ConfigError(source, f"{where}.relevant", "must be true or false")
    path = corpus_dir / file_name
    if path.resolve().parent != corpus_dir.resolve():
        raise ConfigError(source, f"{where}.file", "must name a file inside the corpus folder")
    try:
        text, longer = read_bounded(path)
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(source, f"{where}.file", f"cannot read {file_name}: {exc}") from exc
    if longer:
        # Cut, not refused: a corpus edited by hand keeps the watch running, on what the
        # classifier would have read of it anyway.
        log.warning(
            "%s: %s.file: %s is longer than %s characters; only its first %s are used",
            source,
            where,
            file_name,
            f"{MAX_DOCUMENT_CHARS:,}",
            f"{MAX_DOCUMENT_CHARS:,}",
        )
    marker = _DATE_MARKER.match(text)
    published = marker.group(1) if marker else None
    text = _DATE_MARKER.sub("", text).strip()
    title = raw.get("title")
    if not isinstance(title, str) or not title.strip():
        title = text.split("\n", 1)[0][:200]  # the file's first line stands in for a title
    return CorpusDocument(
        id=doc_id,
        title=title.strip(),
        text=text,
        topics=tuple(topics),
        language=language,
        relevant=relevant,
        published=published,
    )


def load_corpus(
    corpus_dir: Path, topic_ids: Iterable[str] | None = None
) -> tuple[CorpusDocument, ...]:
    """Documents of corpus.toml; with `topic_ids`, unknown topics are a ConfigError."""
    source_path = corpus_dir / CORPUS_FILE
    data = read_toml(source_path)
    source = str(source_path)
    check_keys(data, _TOP_KEYS, source, "")
    raw_docs = data.get("document", [])
    if not isinstance(raw_docs, list):
        raise ConfigError(source, "document", "must be an array of [[document]] tables")
    known = set(topic_ids) if topic_ids is not None else None
    docs: list[CorpusDocument] = []
    for index, raw in enumerate(raw_docs):
        doc = _document(raw, corpus_dir, source, f"document[{index}]", known)
        if any(d.id == doc.id for d in docs):
            raise ConfigError(source, f"document[{index}].id", f"duplicate id {doc.id!r}")
        docs.append(doc)
    return tuple(docs)


def _toml_string(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ")
    return f'"{escaped}"'


def add_document(
    corpus_dir: Path,
    file_or_text: Path | str,
    topics: Sequence[str],
    *,
    language: str | None = None,
    title: str | None = None,
    known_topics: Iterable[str] | None = None,
    relevant: bool = True,
    origin: str = "",
) -> CorpusDocument:
    """Copy a text into the corpus folder and append its [[document]] to corpus.toml.

    `file_or_text` is a Path to a UTF-8 file, or the text itself (from `origin`, e.g. the
    URL it was extracted from, which errors name). A text longer than MAX_DOCUMENT_CHARS
    is refused. The id is "<next index>_<16 hex of the text's SHA-256>", like the seed
    documents.
    """
    from chipwatch.classify.text import detect_language

    source = str(corpus_dir / CORPUS_FILE)
    if isinstance(file_or_text, Path):
        origin = str(file_or_text)
        try:
            text, longer = read_bounded(file_or_text)
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(origin, "(file)", f"cannot read: {exc}") from exc
    else:
        text, longer = file_or_text, len(file_or_text) > MAX_DOCUMENT_CHARS
    if longer:
        raise ConfigError(
            origin or "the document",
            "",
            f"longer than {MAX_DOCUMENT_CHARS:,} characters, the most a corpus document may "
            "have (the classifier reads no more of an article): add an excerpt",
        )
    if not text.strip():
        raise ConfigError(origin or "the document", "", "the document is empty (nothing to add)")
    existing = load_corpus(corpus_dir, known_topics)
    known = set(known_topics) if known_topics is not None else None
    for topic in topics:
        if known is not None and topic not in known:
            raise ConfigError(source, "topics", f"unknown topic id {topic!r}")
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
    if any(d.id.endswith(digest) for d in existing):
        raise ConfigError(source, "document", "this text is already in the corpus")
    doc_id = f"{len(existing):03d}_{digest}"
    lang = language or detect_language(title or "", text)
    (corpus_dir / f"{doc_id}.txt").write_text(text, encoding="utf-8")
    lines = [
        "",
        "[[document]]",
        f"id = {_toml_string(doc_id)}",
        f'file = "{doc_id}.txt"',
        f"language = {_toml_string(lang)}",
        "topics = [" + ", ".join(_toml_string(t) for t in topics) + "]",
    ]
    if title:
        lines.append(f"title = {_toml_string(title)}")
    if not relevant:
        lines.append("relevant = false")
    with (corpus_dir / CORPUS_FILE).open("a", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    return load_corpus(corpus_dir, known_topics)[-1]
