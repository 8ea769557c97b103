"""Atom feeds of the classified stories: <data_dir>/feeds/<topic id>.xml and novel.xml.

Not per recipient: every article whose relevance reaches [classify].relevance_threshold
within the lookback window. ElementTree does the XML escaping; strings are the plain
text of select.py and links pass `safe_url`, so a feed reader gets no markup from a feed.
An entry's id is the story's first stored article, so it stays stable when more outlets
join the story later.
"""

from __future__ import annotations

import logging
import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.orm import Session

from chipwatch.digest.assign import stored_stories
from chipwatch.digest.render import NOVEL, primary_topic, why
from chipwatch.digest.select import select_items
from chipwatch.digest.stories import Embedder, Story
from chipwatch.settings import Recipient, Settings
from chipwatch.types import Topic

ATOM_NS = "http://www.w3.org/2005/Atom"
MAX_ENTRIES = 100
ET.register_namespace("", ATOM_NS)
log = logging.getLogger(__name__)


def _tag(name: str) -> str:
    return f"{{{ATOM_NS}}}{name}"


def _rfc3339(moment: datetime) -> str:
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _sub(parent: ET.Element, name: str, text: str | None = None, **attrs: str) -> ET.Element:
    element = ET.SubElement(parent, _tag(name), attrs)
    if text is not None:
        element.text = text
    return element


def feed_filename(topic_id: str) -> str:
    return re.sub(r"[^a-z0-9_-]+", "-", topic_id.lower()).strip("-") or "topic"


def stories_by_topic(stories: Sequence[Story], topics: Sequence[Topic]) -> dict[str, list[Story]]:
    """Each story under its primary topic (as in the digest), novel ones under "novel"."""
    grouped: dict[str, list[Story]] = {t.id: [] for t in topics}
    grouped[NOVEL] = []
    for story in stories:
        topic = NOVEL if story.novel else primary_topic(story, ())
        grouped.setdefault(topic, []).append(story)
    return grouped


def build_feed(topic_id: str, title: str, stories: Sequence[Story], now: datetime) -> bytes:
    feed = ET.Element(_tag("feed"))
    _sub(feed, "id", f"urn:chipwatch:topic:{topic_id}")
    _sub(feed, "title", f"chipwatch: {title}")
    _sub(feed, "updated", _rfc3339(now))
    _sub(_sub(feed, "author"), "name", "chipwatch")
    _sub(feed, "generator", "chipwatch")
    ordered = sorted(stories, key=lambda s: s.latest, reverse=True)[:MAX_ENTRIES]
    for story in ordered:
        _entry(feed, story)
    ET.indent(feed)
    return ET.tostring(feed, encoding="utf-8", xml_declaration=True)


def _entry(feed: ET.Element, story: Story) -> None:
    lead = story.lead
    entry = _sub(feed, "entry")
    _sub(entry, "id", f"urn:chipwatch:article:{min(story.article_ids)}")
    _sub(entry, "title", lead.title)
    _sub(entry, "updated", _rfc3339(story.latest))
    _sub(entry, "published", _rfc3339(min(item.published for item in story.items)))
    _sub(_sub(entry, "author"), "name", lead.source_name)
    if lead.url:
        _sub(entry, "link", href=lead.url, rel="alternate")
    for other in story.others:
        if other.url:
            _sub(entry, "link", href=other.url, rel="related", title=other.source_name)
    for topic in sorted({t for item in story.items for t in item.topics}):
        _sub(entry, "category", term=topic)
    _sub(entry, "summary", _summary(story), type="text")


def _summary(story: Story) -> str:
    lines = [story.lead.excerpt, f"Score {story.score:.2f}."]
    reason = why(story.lead)
    if reason:
        lines.append(f"Why: {reason}")
    if story.others:
        lines.append("Also reported:")
        lines += [f"- {o.title} ({o.source_name}, {o.language})" for o in story.others]
    return "\n".join(line for line in lines if line)


def write_feeds(
    session: Session,
    settings: Settings,
    topics: Sequence[Topic],
    now: datetime,
    *,
    embed: Embedder | None = None,
) -> list[Path]:
    """Write one feed per topic plus novel.xml (empty feeds too, so URLs stay valid).

    A feed that cannot be written (full disk, a name the file system refuses, a folder
    that is a file) is logged and skipped: the feeds are a side product, and failing
    here would keep the digest itself from being sent. Returns the feeds written."""
    reader = Recipient(
        address="feeds@chipwatch", min_relevance=settings.classify.relevance_threshold
    )
    moment = now.astimezone(UTC).replace(tzinfo=None) if now.tzinfo else now
    items = select_items(session, reader, settings.digest, moment, include_delivered=True)
    grouped = stories_by_topic(stored_stories(session, items, embed), topics)
    names = {t.id: t.name for t in topics} | {NOVEL: "Novel: no topic yet"}
    folder = settings.data_dir / "feeds"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        log.error("Atom feeds not written: cannot create %s: %s", folder, exc.strerror or exc)
        return []
    written = []
    for topic_id, stories in grouped.items():
        path = folder / f"{feed_filename(topic_id)}.xml"
        data = build_feed(topic_id, names.get(topic_id, topic_id), stories, now)
        try:
            _write_atomically(path, data)
        except OSError as exc:
            log.error("Atom feed not written: %s: %s", path, exc.strerror or exc)
            continue
        written.append(path)
    return written


def _write_atomically(path: Path, data: bytes) -> None:
    # A feed reader polling mid-write must never see half a file.
    temporary = path.with_suffix(".xml.tmp")
    try:
        temporary.write_bytes(data)
        os.replace(temporary, path)
    except OSError:
        temporary.unlink(missing_ok=True)  # no half-written file left behind
        raise
