"""Pick the classified articles one recipient has not had yet.

An article is a candidate for a recipient when its relevance reaches the recipient's
`min_relevance`, it was stored within `[digest].lookback_days`, its language and topics
match the recipient's filters, it was not delivered to them, and no
*pending* digest of theirs already carries it (so building twice before a send does not
put it in two digests). Alerts do not count: an alerted article still goes in the digest.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import nh3
from sqlalchemy.orm import Session

from chipwatch.settings import DigestSettings, Recipient
from chipwatch.store.classifications import ClassifiedArticle, classified_articles

# Characters of an article's text kept on the item for story grouping (not shown).
MATCH_TEXT_CHARS = 1500


@dataclass(frozen=True)
class DigestItem:
    """One article as the digest shows it. Strings are plain text, free of markup."""

    article_id: int
    title: str
    source_name: str
    url: str | None  # only http(s); None when the feed gave something else
    published: datetime
    language: str
    excerpt: str
    relevance: float
    topics: tuple[str, ...]
    topic_scores: Mapping[str, float]
    novel: bool
    evidence_summary: str = ""
    matched_terms: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    text: str = field(default="", repr=False, compare=False)  # start of the text, for grouping
    fetched_at: datetime | None = None


def select_items(
    session: Session,
    recipient: Recipient,
    digest: DigestSettings,
    now: datetime,
    *,
    include_delivered: bool = False,
) -> list[DigestItem]:
    """The recipient's candidate items, newest first. `include_delivered` is for previews."""
    rows = classified_articles(
        session,
        min_relevance=recipient.min_relevance,
        since=now - timedelta(days=digest.lookback_days),
        languages=recipient.languages,
        not_delivered_to=None if include_delivered else recipient.address,
    )
    items = [_to_item(row, digest.excerpt_chars) for row in rows]
    return [item for item in items if wants(recipient, item)]


def wants(recipient: Recipient, item: DigestItem) -> bool:
    """Topic filter: JSON topics are filtered here rather than in SQL."""
    if item.novel or not item.topics:
        return recipient.include_novel
    if not recipient.topics:
        return True
    return any(topic in recipient.topics for topic in item.topics)


def _to_item(row: ClassifiedArticle, excerpt_chars: int) -> DigestItem:
    evidence = row.evidence
    text = plain_text(row.text)
    matched = evidence.get("matched_terms") or {}
    return DigestItem(
        article_id=row.id,
        title=plain_text(row.title) or "(untitled)",
        source_name=plain_text(row.source_name) or "unknown source",
        url=safe_url(row.url),
        published=row.published_at,
        language=row.language or row.classified_language,
        excerpt=excerpt(text, excerpt_chars),
        relevance=row.relevance,
        topics=row.topics,
        topic_scores=row.topic_scores,
        novel=row.novel,
        evidence_summary=plain_text(str(evidence.get("summary") or "")),
        matched_terms={str(k): tuple(plain_text(str(t)) for t in v) for k, v in matched.items()},
        text=text[:MATCH_TEXT_CHARS],
        fetched_at=row.fetched_at,
    )


def plain_text(value: str) -> str:
    """Feed strings may carry markup: strip every tag (and script/style content) until
    nothing changes, so neither an escaped nor a decoded `<script>` survives."""
    text = value
    for _ in range(4):
        cleaned = html.unescape(nh3.clean(text, tags=set(), attributes={}))
        if cleaned == text:
            break
        text = cleaned
    # After the last pass a lone "<" is text, not a tag: Jinja escapes it in HTML.
    return " ".join(text.split())


def safe_url(url: str | None) -> str | None:
    """Only absolute http(s) links with a host and no whitespace or control characters."""
    if not url:
        return None
    url = url.strip()
    if any(ch.isspace() or ord(ch) < 32 or ch in "\"'<>`\\" for ch in url):
        return None
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in {"http", "https"} or not rest or rest[0] in "/?#@":
        return None
    return url


def excerpt(text: str, limit: int) -> str:
    """The first `limit` characters, cut at a word boundary."""
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0] if " " in text[:limit] else text[:limit]
    return cut.rstrip(" ,;:.-") + "…"
