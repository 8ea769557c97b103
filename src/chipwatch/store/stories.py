"""The story repository: which story each article is in, and what grouping needs of it.

Grouping is incremental: an article is grouped once, its story written here with its
embedding (float16) and anchors; later articles are compared with the stored members of
the stories still open, so nothing is embedded or re-clustered twice.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import cast

import numpy as np
from sqlalchemy import Table, and_, insert, or_, select
from sqlalchemy.orm import Session

from chipwatch.store.classifications import ClassifiedArticle, classified_of
from chipwatch.store.lookup import PARAMS_PER_QUERY
from chipwatch.store.models import ArticleRow, ClassificationRow, DeliveryRow, StoryMemberRow

VECTOR_DTYPE = np.float16  # 1 KB per article for 512 dimensions; cosines change < 1e-3


@dataclass(frozen=True)
class StoredWindow:
    """Members of the open stories, column by column (one float16 matrix of vectors, not
    a Python object each); `open_members` yields the window as a series of these."""

    article_ids: list[int]
    story_ids: list[int]
    vectors: np.ndarray  # float16, one row per member
    anchors: list[tuple[str, ...]]
    published: list[datetime]
    languages: list[str]

    def __len__(self) -> int:
        return len(self.article_ids)


@dataclass(frozen=True)
class NewMember:
    article_id: int
    story_id: int
    vector: np.ndarray
    anchors: frozenset[str]


def _chunks(ids: Sequence[int]) -> Iterable[Sequence[int]]:
    for start in range(0, len(ids), PARAMS_PER_QUERY):
        yield ids[start : start + PARAMS_PER_QUERY]


def story_ids(session: Session, article_ids: Sequence[int]) -> dict[int, int]:
    """article id -> story id, for those already grouped."""
    found: dict[int, int] = {}
    for chunk in _chunks(list(article_ids)):
        rows = session.execute(
            select(StoryMemberRow.article_id, StoryMemberRow.story_id).where(
                StoryMemberRow.article_id.in_(chunk)
            )
        )
        found.update({int(a): int(s) for a, s in rows})
    return found


def open_members(
    session: Session, since: datetime, dims: int = 512, chunk: int = 8192
) -> Iterator[StoredWindow]:
    """Every member of the stories that have an article published since `since`, oldest
    first, `chunk` members at a time (the window is streamed, never held whole)."""
    recent = (
        select(StoryMemberRow.story_id)
        .join(ArticleRow, ArticleRow.id == StoryMemberRow.article_id)
        .where(ArticleRow.published_at >= since)
        .distinct()
    )
    result = session.execute(
        select(
            StoryMemberRow.article_id,
            StoryMemberRow.story_id,
            StoryMemberRow.vector,
            StoryMemberRow.anchors,
            ArticleRow.published_at,
            ArticleRow.language,
        )
        .join(ArticleRow, ArticleRow.id == StoryMemberRow.article_id)
        .where(StoryMemberRow.story_id.in_(recent))
        .order_by(ArticleRow.published_at, StoryMemberRow.article_id)
        .execution_options(yield_per=chunk)
    )
    while rows := result.fetchmany(chunk):
        vectors = np.empty((len(rows), dims), dtype=VECTOR_DTYPE)
        window = StoredWindow([], [], vectors, [], [], [])
        for k, (article_id, story_id, vector, anchors, published, language) in enumerate(rows):
            window.article_ids.append(int(article_id))
            window.story_ids.append(int(story_id))
            vectors[k] = np.frombuffer(vector, dtype=VECTOR_DTYPE)
            # Interned: the same names recur across members; one copy of each string.
            window.anchors.append(tuple(map(sys.intern, anchors or ())))
            window.published.append(published)
            window.languages.append(language or "")
        yield window


def save_members(session: Session, members: Sequence[NewMember], now: datetime) -> None:
    if not members:
        return
    session.execute(  # the table, not the ORM class: a plain executemany (a backlog)
        insert(cast(Table, StoryMemberRow.__table__)),
        [
            {
                "article_id": m.article_id,
                "story_id": m.story_id,
                "vector": np.asarray(m.vector, dtype=VECTOR_DTYPE).tobytes(),
                "anchors": sorted(m.anchors),
                "grouped_at": now,
            }
            for m in members
        ],
    )


@dataclass(frozen=True)
class UngroupedArticle:
    """What grouping reads of an article (not the classification's topics or evidence:
    a backlog is large, and decoding those per row cost more than grouping it)."""

    id: int
    title: str
    text: str
    language: str  # the feed's, else the classifier's (as the digest item's)
    published_at: datetime


def ungrouped_relevant(
    session: Session,
    since: datetime | None = None,
    limit: int | None = None,
    after: tuple[datetime, int] | None = None,
) -> list[UngroupedArticle]:
    """Relevant stored articles not in a story yet (oldest first, at most `limit`; with
    `after`, only those after that (published, id): a backlog is read page by page along
    the publication index instead of sorting what is left at every page)."""
    query = (
        select(  # columns, not ORM objects: a backlog is large
            ArticleRow.id,
            ArticleRow.title,
            ArticleRow.text,
            ArticleRow.language,
            ClassificationRow.language,
            ArticleRow.published_at,
        )
        .join(ClassificationRow, ClassificationRow.article_id == ArticleRow.id)
        .outerjoin(StoryMemberRow, StoryMemberRow.article_id == ArticleRow.id)
        .where(ClassificationRow.relevant.is_(True), StoryMemberRow.article_id.is_(None))
        .order_by(ArticleRow.published_at, ArticleRow.id)
    )
    if since is not None:
        query = query.where(ArticleRow.published_at >= since)
    if after is not None:
        published, article_id = after
        query = query.where(
            or_(
                ArticleRow.published_at > published,
                and_(ArticleRow.published_at == published, ArticleRow.id > article_id),
            )
        )
    if limit is not None:
        query = query.limit(limit)
    return [
        UngroupedArticle(int(i), title or "", text or "", language or classified or "", published)
        for i, title, text, language, classified, published in session.execute(query).tuples()
    ]


def earliest_ungrouped(session: Session) -> datetime | None:
    """When the oldest relevant article not in a story yet was published."""
    query = (
        select(ArticleRow.published_at)
        .join(ClassificationRow, ClassificationRow.article_id == ArticleRow.id)
        .outerjoin(StoryMemberRow, StoryMemberRow.article_id == ArticleRow.id)
        .where(ClassificationRow.relevant.is_(True), StoryMemberRow.article_id.is_(None))
        .order_by(ArticleRow.published_at)
        .limit(1)
    )
    return session.scalar(query)


def grouped_relevant(
    session: Session, since: datetime | None = None
) -> list[tuple[int, ClassifiedArticle]]:
    """(story id, article, classification) of every grouped relevant article.

    With `since`, the stories with an article published since then, all their members."""
    query = (
        select(StoryMemberRow.story_id, ArticleRow, ClassificationRow)
        .join(ArticleRow, ArticleRow.id == StoryMemberRow.article_id)
        .join(ClassificationRow, ClassificationRow.article_id == ArticleRow.id)
        .where(ClassificationRow.relevant.is_(True))
        .order_by(StoryMemberRow.story_id, ArticleRow.published_at, ArticleRow.id)
    )
    if since is not None:
        recent = (
            select(StoryMemberRow.story_id)
            .join(ArticleRow, ArticleRow.id == StoryMemberRow.article_id)
            .where(ArticleRow.published_at >= since)
        )
        query = query.where(StoryMemberRow.story_id.in_(recent))
    return [(int(s), classified_of(a, c)) for s, a, c in session.execute(query).tuples()]


def delivered_members(
    session: Session, recipient: str, stories: Sequence[int]
) -> dict[int, list[tuple[int, str]]]:
    """story id -> (article id, title) of its members already delivered to `recipient`."""
    found: dict[int, list[tuple[int, str]]] = {}
    for chunk in _chunks(list(stories)):
        rows = session.execute(
            select(StoryMemberRow.story_id, ArticleRow.id, ArticleRow.title)
            .join(ArticleRow, ArticleRow.id == StoryMemberRow.article_id)
            .join(
                DeliveryRow,
                (DeliveryRow.article_id == ArticleRow.id) & (DeliveryRow.recipient == recipient),
            )
            .where(StoryMemberRow.story_id.in_(chunk))
            .order_by(ArticleRow.published_at, ArticleRow.id)
        )
        for story_id, article_id, title in rows:
            found.setdefault(int(story_id), []).append((int(article_id), title or ""))
    return found
