"""The articles repository: insert new articles, skipping any already seen.

"Already seen" means the same identity, or the same canonical URL, or the same content hash
(see chipwatch.dedupe): this is what keeps a feed that rewrites its GUIDs from duplicating
its whole history.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

from sqlalchemy import Table, insert, select
from sqlalchemy.orm import Session

from chipwatch.dedupe import lookup_keys
from chipwatch.store.dialect import placeholder, text_value
from chipwatch.store.lookup import present_keys
from chipwatch.store.models import ArticleRow
from chipwatch.types import Article


def _present(
    session: Session, keys: Sequence[tuple[str, str | None, str | None]]
) -> tuple[set[str], set[str], set[str]]:
    connection = session.connection()

    def fetch_rows(sql: str, params: tuple[str, ...]) -> Sequence[Sequence[str | None]]:
        result = connection.exec_driver_sql(sql, params)
        try:
            # The DB-API rows as they are, in one call: SQLAlchemy's per-row iteration
            # (one fetchone and one Row each) cost more than the query on a cold cycle.
            return result.cursor.fetchall() if result.cursor is not None else []
        finally:
            result.close()

    return present_keys(
        fetch_rows,
        (k[0] for k in keys),
        (k[1] for k in keys),
        (k[2] for k in keys),
        placeholder=placeholder(connection),
    )


def filter_new(session: Session, articles: Sequence[Article]) -> list[Article]:
    """The articles not yet stored (by identity, URL or content hash), first of each kept."""
    return filter_new_many(session, [articles])[0]


def filter_new_many(
    session: Session, groups: Sequence[Sequence[Article]], *, in_order: bool = False
) -> list[list[Article]]:
    """`filter_new` for several feeds at once: the same queries for all of them.

    By default each group is filtered on its own (against the store and within itself).
    `in_order=True` filters each group also against the articles kept from the groups
    before it: what inserting the groups one after the other with `insert_new` keeps."""
    keys = [[lookup_keys(a) for a in group] for group in groups]
    identities, urls, hashes = _present(session, [k for group in keys for k in group])
    if in_order:  # the sets grow with each group's kept articles
        return [
            _fresh(group, group_keys, identities, urls, hashes)
            for group, group_keys in zip(groups, keys, strict=True)
        ]
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
    return insert_articles(
        session, filter_new(session, articles), source_id=source_id, source_name=source_name
    )


def insert_articles(
    session: Session,
    articles: Sequence[Article],
    *,
    source_id: int | None,
    source_name: str = "",
) -> list[int]:
    """Insert articles known to be new (`filter_new`); return the ids of the new rows."""
    if not articles:
        return []
    rows = [_row(a, source_id, source_name) for a in articles]
    # A Core INSERT on the session's connection (same INSERT .. VALUES .. RETURNING
    # batches), not the ORM bulk insert: its per-row mapper bookkeeping cost more CPU
    # than SQLite's insert on a cold cycle.
    result = session.connection().execute(_INSERT, rows)
    return [int(i) for i in result.scalars()]


_INSERT = insert(cast(Table, ArticleRow.__table__)).returning(ArticleRow.__table__.c.id)


def _row(article: Article, source_id: int | None, source_name: str) -> dict[str, object]:
    return {
        "identity": article.identity,
        "content_hash": article.content_hash,
        "source_id": source_id,
        "source_name": text_value(source_name)[:300],
        "url": text_value(article.url)[:2048] if article.url else None,
        "title": text_value(article.title),
        "text": text_value(article.text),
        "language": article.language[:8],
        "published_at": article.published,
        "fetched_at": article.fetched_at,
        "date_flag": article.date_flag,
        "story_key": None,
    }


def count_articles(session: Session) -> int:
    from sqlalchemy import func

    return int(session.scalar(select(func.count()).select_from(ArticleRow)) or 0)
