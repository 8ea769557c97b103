"""Pick the classified articles one recipient has not had yet.

An article is a candidate for a recipient when its relevance reaches the recipient's
`min_relevance`, it was published within `[digest].lookback_days` (the stored date: the
feed's, else the fetch time, never in the future), it is no first-poll backfill
(`store/backfill.py`), its language and topics
match the recipient's filters, it was not delivered to them, and no
*pending* digest of theirs already carries it (so building twice before a send does not
put it in two digests). Alerts do not count: an alerted article still goes in the digest.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import nh3
from sqlalchemy.orm import Session

from chipwatch.digest.boilerplate import clean_lead
from chipwatch.settings import DigestSettings, Recipient
from chipwatch.store.classifications import (
    ClassifiedArticle,
    classified_articles,
    classified_by_ids,
)

# Characters of an article's text kept on the item for story grouping (not shown).
MATCH_TEXT_CHARS = 1500
UNTITLED = "(untitled)"


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
    text_kind: str | None = None  # what the classifier read (chipwatch.types.TextKind)


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
    items = [to_item(row, digest.excerpt_chars) for row in rows]
    return [item for item in items if wants(recipient, item)]


def items_by_ids(
    session: Session, article_ids: Sequence[int], excerpt_chars: int = 280
) -> list[DigestItem]:
    """The classified articles with these ids, whatever their relevance or age."""
    if not article_ids:
        return []
    return [to_item(row, excerpt_chars) for row in classified_by_ids(session, article_ids)]


def wants(recipient: Recipient, item: DigestItem) -> bool:
    """Topic filter: JSON topics are filtered here rather than in SQL."""
    if item.novel or not item.topics:
        return recipient.include_novel
    if not recipient.topics:
        return True
    return any(topic in recipient.topics for topic in item.topics)


def to_item(row: ClassifiedArticle, excerpt_chars: int) -> DigestItem:
    """The digest item of a stored article and its classification."""
    evidence = row.evidence
    title, text = title_and_lead(row.title, row.text)
    matched = evidence.get("matched_terms") or {}
    return DigestItem(
        article_id=row.id,
        title=title or UNTITLED,
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
        text_kind=row.text_kind,
    )


def title_and_lead(title: str, text: str) -> tuple[str, str]:
    """The plain headline, and the text from its first real sentence on: what the digest
    shows and what story grouping reads (one function, so the two never differ)."""
    plain_title = plain_text(title)
    # Lines kept, so the furniture before the lead (date lines, labels) can be dropped.
    return plain_title, clean_lead(plain_text(text, keep_lines=True), plain_title)


# With none of these, nh3 (no tags allowed) returns the string unchanged: no tag, no
# entity to decode, no NUL to drop, no CR to turn into LF (tests/test_stories.py checks it).
_MARKUP_SIGNS = ("<", "&", "\0", "\r")


def plain_text(value: str, *, keep_lines: bool = False) -> str:
    """Feed strings may carry markup: strip every tag (and script/style content) until
    nothing changes, so neither an escaped nor a decoded `<script>` survives.
    Whitespace is collapsed; with `keep_lines`, line breaks stay (one per line)."""
    text = value
    for _ in range(4 if any(sign in text for sign in _MARKUP_SIGNS) else 0):
        cleaned = html.unescape(nh3.clean(text, tags=set(), attributes={}))
        if cleaned == text:
            break
        text = cleaned
    # After the last pass a lone "<" is text, not a tag: Jinja escapes it in HTML.
    if keep_lines:
        lines = (" ".join(line.split()) for line in text.splitlines())
        return "\n".join(line for line in lines if line)
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
