"""OPML import and export of the feed list.

Import walks nested outlines (folders) and keeps every outline with an `xmlUrl` that
passes `chipwatch.urls.check_url`; an outline whose URL does not is skipped, and named in
`OpmlImport.skipped`, while the import goes on. Export writes OPML 2.0.
The XML is parsed with the standard library after refusing DTDs, so an
OPML file cannot expand entities (billion laughs) or reach external resources.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass
from email.utils import format_datetime
from pathlib import Path

from chipwatch.errors import ConfigError, FetchError
from chipwatch.fetch import utcnow
from chipwatch.settings import SourceConfig
from chipwatch.urls import check_url

_TRUE = {"1", "true", "yes"}


@dataclass(frozen=True)
class OpmlImport:
    sources: tuple[SourceConfig, ...]
    skipped: tuple[str, ...] = ()  # one line per outline left out: its URL and why


def read_opml(path: Path) -> OpmlImport:
    """Sources of an OPML file; ConfigError naming the file if the file itself is bad."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(str(path), "-", f"cannot read OPML: {exc.strerror or exc}") from None
    return parse_opml(data, str(path))


def parse_opml(data: bytes, origin: str = "OPML") -> OpmlImport:
    if b"<!DOCTYPE" in data[:4096].upper() or b"<!ENTITY" in data.upper():
        raise ConfigError(origin, "-", "OPML with a DTD or entities is refused")
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise ConfigError(origin, f"line {exc.position[0]}", f"malformed OPML: {exc}") from None
    if root.tag.lower() != "opml":
        raise ConfigError(origin, root.tag, "not an OPML document (root element is not <opml>)")
    body = root.find("body")
    if body is None:
        raise ConfigError(origin, "opml", "OPML without <body>")
    sources: dict[str, SourceConfig] = {}
    skipped: list[str] = []
    for number, outline in enumerate(body.iter("outline"), start=1):
        try:
            config = _outline(outline)
        except FetchError as exc:
            skipped.append(f"{origin}: outline {number}: skipped: {exc}")
            continue
        if config is not None:
            sources.setdefault(config.url, config)  # the first listing of a URL wins
    return OpmlImport(tuple(sources.values()), tuple(skipped))


def _outline(outline: ET.Element) -> SourceConfig | None:
    url = (outline.get("xmlUrl") or outline.get("xmlurl") or "").strip()
    if not url:
        return None  # a folder: its children are visited by iter()
    check_url(url)
    name = outline.get("title") or outline.get("text") or ""
    return SourceConfig(
        url=url,
        name=name.strip(),
        language=(outline.get("language") or "").strip(),
        article_text=_article_text(outline),
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
    for source in sources:
        attributes = {"type": "rss", "text": source.name or source.url, "xmlUrl": source.url}
        if source.name:
            attributes["title"] = source.name
        if source.language:
            attributes["language"] = source.language
        if source.article_text:
            attributes["articleText"] = source.article_text
        ET.SubElement(body, "outline", attributes)
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, "unicode") + "\n"
