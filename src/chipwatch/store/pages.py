"""The fetched-pages repository: what fetching a URL once gave, so it is fetched once.

Two kinds of rows (`FetchedPageRow`): "link", a news-search link resolved to the
publisher's URL (never changes: kept until `forget_older_than`), and "page", an article
page's verdict (article, consent, paywall, error, short, failed) with its text when it
was an article. Portable SQLAlchemy Core: SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import cast

from sqlalchemy import Table, delete, select
from sqlalchemy.orm import Session

from chipwatch.store.models import FetchedPageRow

LINK = "link"
PAGE = "page"
_CHUNK = 300  # URLs per IN (...) query: under SQLite's bound-parameter limit


@dataclass(frozen=True)
class FetchedPage:
    kind: str
    url: str
    target_url: str | None
    verdict: str
    text: str | None
    fetched_at: datetime


def page_key(kind: str, url: str) -> str:
    return hashlib.sha256(f"{kind}\n{url}".encode()).hexdigest()


def known_pages(
    session: Session, kind: str, urls: Iterable[str], since: datetime
) -> dict[str, FetchedPage]:
    """The stored results for these URLs fetched at `since` or later, by URL."""
    keys = {page_key(kind, url): url for url in dict.fromkeys(urls)}
    found: dict[str, FetchedPage] = {}
    ordered = list(keys)
    for start in range(0, len(ordered), _CHUNK):
        query = select(FetchedPageRow).where(
            FetchedPageRow.key.in_(ordered[start : start + _CHUNK]),
            FetchedPageRow.fetched_at >= since,
        )
        for row in session.scalars(query):
            found[row.url] = _page(row)
    return found


def remember_pages(session: Session, pages: Sequence[FetchedPage]) -> None:
    """Store (or replace) these results; the caller commits."""
    if not pages:
        return
    rows = {page_key(p.kind, p.url): p for p in pages}  # last one of a URL wins
    table = cast(Table, FetchedPageRow.__table__)
    keys = list(rows)
    for start in range(0, len(keys), _CHUNK):
        session.execute(delete(table).where(table.c.key.in_(keys[start : start + _CHUNK])))
    session.execute(
        table.insert(),
        [
            {
                "key": key,
                "kind": page.kind,
                "url": page.url[:2048],
                "target_url": page.target_url[:2048] if page.target_url else None,
                "verdict": page.verdict,
                "text": page.text,
                "fetched_at": page.fetched_at,
            }
            for key, page in rows.items()
        ],
    )


def forget_older_than(session: Session, before: datetime) -> int:
    """Drop results fetched before `before` (the cache's lifetime); how many went."""
    table = cast(Table, FetchedPageRow.__table__)
    result = session.execute(delete(table).where(table.c.fetched_at < before))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def _page(row: FetchedPageRow) -> FetchedPage:
    return FetchedPage(row.kind, row.url, row.target_url, row.verdict, row.text, row.fetched_at)
