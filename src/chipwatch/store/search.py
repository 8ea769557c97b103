"""Full-text search over the stored articles, behind one function for both databases.

SQLite: the FTS5 table `articles_fts` that migration 0005_review keeps in step with
`articles` by triggers. PostgreSQL: `to_tsvector('simple', ...)` over the GIN expression
index of the same migration ('simple': no stemming, the watch reads several languages).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from sqlalchemy import text
from sqlalchemy.orm import Session

# FTS5 keeps its index in shadow tables: they are the migration's, not the models'.
FTS_TABLE = "articles_fts"
FTS_INDEX = "ix_articles_fts"  # PostgreSQL: a GIN index on the articles' tsvector
_WORD = re.compile(r"\w+", re.UNICODE)


def include_name(name: str | None, type_: str, _parents: object = None) -> bool:
    """Alembic filter: leave the full-text tables (SQLite) and index (PostgreSQL) out of
    model/schema comparisons: the migration makes them with SQL the models cannot say."""
    if name is None:
        return True
    if type_ == "table":
        return not name.startswith(FTS_TABLE)
    return not (type_ == "index" and name == FTS_INDEX)


def query_words(query: str) -> list[str]:
    """The words of a search box entry; operators and quotes are not passed through."""
    return _WORD.findall(query)[:20]


def search_article_ids(session: Session, query: str, limit: int = 500) -> Sequence[int]:
    """Ids of the articles containing every word of `query`, best match first."""
    words = query_words(query)
    if not words:
        return []
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        statement = text(
            "SELECT id FROM articles WHERE to_tsvector('simple', coalesce(title, '') || ' ' || "
            "coalesce(text, '')) @@ plainto_tsquery('simple', :q) ORDER BY id DESC LIMIT :n"
        )
        return list(session.scalars(statement, {"q": " ".join(words), "n": limit}))
    # Each word quoted: FTS5 reads it as a plain term, never as syntax.
    match = " ".join('"' + word.replace('"', "") + '"' for word in words)
    statement = text(
        f"SELECT rowid FROM {FTS_TABLE} WHERE {FTS_TABLE} MATCH :q ORDER BY rank LIMIT :n"
    )
    return list(session.scalars(statement, {"q": match, "n": limit}))
