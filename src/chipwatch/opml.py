"""OPML import and export of the feed list.

Import walks nested outlines (folders) and keeps every outline with an `xmlUrl` that
passes `chipwatch.urls.check_url`, with its folders and `category` attribute as tags; an
outline whose URL does not is skipped, and named in `OpmlImport.skipped`, while the import
goes on. Export writes OPML 2.0, each feed in the folder of its first tag, all its tags in
`category`, so a round trip keeps them.
The XML is parsed with the standard library after refusing DTDs, so an
OPML file cannot expand entities (billion laughs) or reach external resources.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from email.utils import format_datetime
from pathlib import Path

from chipwatch.clock import utcnow
from chipwatch.errors import FetchError, UsageError
from chipwatch.settings import SourceConfig
from chipwatch.urls import check_url

_TRUE = {"1", "true", "yes"}


@dataclass(frozen=True)
class OpmlImport:
    sources: tuple[SourceConfig, ...]
    skipped: tuple[str, ...] = ()  # one line per outline left out: its URL and why


def read_opml(path: Path) -> OpmlImport:
    """Sources of an OPML file; UsageError naming the file if the file itself is bad."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"{path}: cannot read OPML: {exc.strerror or exc}") from None
    return parse_opml(data, str(path))


def parse_opml(data: bytes, origin: str = "OPML") -> OpmlImport:
    if b"<!DOCTYPE" in data[:4096].upper() or b"<!ENTITY" in data.upper():
        raise UsageError(f"{origin}: OPML with a DTD or entities is refused")
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise UsageError(f"{origin}: line {exc.position[0]}: malformed OPML: {exc}") from None
    if root.tag.lower() != "opml":
        raise UsageError(f"{origin}: not an OPML document (the root element is <{root.tag}>)")
    body = root.find("body")
    if body is None:
        raise UsageError(f"{origin}: OPML without <body>")
    sources: dict[str, SourceConfig] = {}
    first_listed: dict[str, int] = {}
    skipped: list[str] = []
    for number, (outline, folders) in enumerate(_walk(body, (), origin), start=1):
        try:
            config = _outline(outline, folders)
        except FetchError as exc:
            skipped.append(f"{origin}: outline {number}: skipped: {exc}")
            continue
        if config is None:
            continue
        if config.url in sources:  # the first listing of a URL wins, and the rest are named
            earlier = first_listed[config.url]
            listed = f"{config.url} is listed already (outline {earlier})"
            skipped.append(f"{origin}: outline {number}: skipped: {listed}")
            continue
        sources[config.url] = config
        first_listed[config.url] = number
    return OpmlImport(tuple(sources.values()), tuple(skipped))


# Folders inside folders deeper than this are no feed list anyone wrote (a hostile file
# nested 1,000 deep ran the recursive walk out of stack: a traceback).
MAX_DEPTH = 64


def _walk(
    parent: ET.Element, folders: tuple[str, ...], origin: str = "OPML"
) -> Iterator[tuple[ET.Element, tuple[str, ...]]]:
    """Every outline in document order, with the titles of the folders around it."""
    pending = [(outline, folders, 1) for outline in reversed(parent.findall("outline"))]
    while pending:
        outline, around, depth = pending.pop()
        if depth > MAX_DEPTH:
            raise UsageError(f"{origin}: outlines nested deeper than {MAX_DEPTH} levels")
        yield outline, around
        title = (outline.get("title") or outline.get("text") or "").strip()
        inner = (*around, title) if title else around
        pending.extend((child, inner, depth + 1) for child in reversed(outline.findall("outline")))


def _tags(outline: ET.Element, folders: tuple[str, ...]) -> tuple[str, ...]:
    """Folders, then the `category` entries (comma-separated, "/a/b" paths as "a/b")."""
    categories = (c.strip().strip("/") for c in (outline.get("category") or "").split(","))
    return tuple(dict.fromkeys(tag for tag in (*folders, *categories) if tag))


def _outline(outline: ET.Element, folders: tuple[str, ...] = ()) -> SourceConfig | None:
    url = (outline.get("xmlUrl") or outline.get("xmlurl") or "").strip()
    if not url:
        return None  # a folder: _walk visits its children
    check_url(url)
    name = outline.get("title") or outline.get("text") or ""
    return SourceConfig(
        url=url,
        name=name.strip(),
        language=(outline.get("language") or "").strip(),
        article_text=_article_text(outline),
        tags=_tags(outline, folders),
    )


def _article_text(outline: ET.Element) -> str:
    """Our `articleText` attribute, or the older `fullText="true"` (read as "fetch")."""
    mode = (outline.get("articleText") or "").strip().lower()
    if mode in ("feed", "fetch"):
        return mode
    return "fetch" if (outline.get("fullText") or "").strip().lower() in _TRUE else ""


def write_opml(sources: Iterable[SourceConfig], title: str = "chipwatch feeds") -> str:
    """OPML 2.0 of the given sources (language and fullText kept as extra attributes)."""
    root = ET.Element("opml", version="2.0")
    head = ET.SubElement(root, "head")
    ET.SubElement(head, "title").text = title
    ET.SubElement(head, "dateCreated").text = format_datetime(utcnow(), usegmt=False)
    body = ET.SubElement(root, "body")
    folders: dict[str, ET.Element] = {}
    for source in sources:
        parent = body
        if source.tags:
            parent = folders.get(source.tags[0]) or ET.SubElement(
                body, "outline", {"text": source.tags[0], "title": source.tags[0]}
            )
            folders[source.tags[0]] = parent
        attributes = {"type": "rss", "text": source.name or source.url, "xmlUrl": source.url}
        if source.name:
            attributes["title"] = source.name
        if source.language:
            attributes["language"] = source.language
        if source.article_text:
            attributes["articleText"] = source.article_text
        if source.tags:
            attributes["category"] = ",".join(source.tags)
        ET.SubElement(parent, "outline", attributes)
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, "unicode") + "\n"
