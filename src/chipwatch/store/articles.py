"""The articles repository: insert new articles, skipping any already seen.

"Already seen" means the same identity, or the same canonical URL, or the same content hash
(see chipwatch.dedupe): this is what keeps a feed that rewrites its GUIDs from duplicating
its whole history.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from chipwatch.dedupe import lookup_keys
from chipwatch.store.models import ArticleRow
from chipwatch.types import Article

_IN_CHUNK = 500  # SQLite caps bound parameters per statement


def _present(session: Session, column: Any, values: Iterable[str]) -> set[str]:
    found: set[str] = set()
    pending = sorted(set(values))
    for start in range(0, len(pending), _IN_CHUNK):
        chunk = pending[start : start + _IN_CHUNK]
        found.update(session.scalars(select(column).where(column.in_(chunk))))
    return found


def filter_new(session: Session, articles: Sequence[Article]) -> list[Article]:
    """The articles not yet stored (by identity, URL or content hash), first of each kept."""
    return filter_new_many(session, [articles])[0]


def filter_new_many(session: Session, groups: Sequence[Sequence[Article]]) -> list[list[Article]]:
    """`filter_new` for several feeds at once: one query per key kind for all of them.
    Each group is filtered on its own (against the store and within itself only)."""
    keys = [[lookup_keys(a) for a in group] for group in groups]
    every = [k for group in keys for k in group]
    identities = _present(session, ArticleRow.identity, (k[0] for k in every))
    urls = _present(session, ArticleRow.url, (k[1] for k in every if k[1]))
    hashes = _present(session, ArticleRow.content_hash, (k[2] for k in every if k[2]))
    return [
        _fresh(group, group_keys, set(identities), set(urls), set(hashes))
        for group, group_keys in zip(groups, keys, strict=True)
    ]


def _fresh(
    articles: Sequence[Article],
    keys: Sequence[tuple[str, str | None, str | None]],
    identities: set[str],
    urls: set[str],
    hashes: set[str],
) -> list[Article]:
    fresh: list[Article] = []
    for article, (identity, url, digest) in zip(articles, keys, strict=True):
        if identity in identities or (url and url in urls) or (digest and digest in hashes):
            continue
        fresh.append(article)
        # Within one batch too: a feed listing the same story twice stores it once.
        identities.add(identity)
        if url:
            urls.add(url)
        if digest:
            hashes.add(digest)
    return fresh


def insert_new(
    session: Session,
    articles: Sequence[Article],
    *,
    source_id: int | None,
    source_name: str = "",
) -> list[int]:
    """Insert the articles not yet stored; return the ids of the new rows."""
    fresh = filter_new(session, articles)
    if not fresh:
        return []
    rows = [_row(a, source_id, source_name) for a in fresh]
    result = session.execute(insert(ArticleRow).returning(ArticleRow.id), rows)
    return [int(i) for i in result.scalars()]


def _row(article: Article, source_id: int | None, source_name: str) -> dict[str, object]:
    return {
        "identity": article.identity,
        "content_hash": article.content_hash,
        "source_id": source_id,
        "source_name": source_name[:300],
        "url": article.url[:2048] if article.url else None,
        "title": article.title,
        "text": article.text,
        "language": article.language[:8],
        "published_at": article.published,
        "fetched_at": article.fetched_at,
        "date_flag": article.date_flag,
        "story_key": None,
    }


def count_articles(session: Session) -> int:
    from sqlalchemy import func

    return int(session.scalar(select(func.count()).select_from(ArticleRow)) or 0)
