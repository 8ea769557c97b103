"""Incremental grouping against the stored stories.

An article is grouped once: the articles not grouped yet are embedded, compared with the
stored members of the stories still open (an article published within `window_days`),
and each joins a story or starts one; the result is stored. Earlier assignments are
never revisited, so a digest, the Atom feeds and the export see the same stories, and a
story keeps its id (its first article's) as it grows.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import numpy as np
from sqlalchemy.orm import Session

from chipwatch.digest.grouping import Features, Grouper, GroupingParams, unit_vectors
from chipwatch.digest.select import DigestItem, plain_text
from chipwatch.digest.stories import (
    Embedder,
    Groupable,
    Story,
    day_of,
    default_embedder,
    item_features,
    make_story,
    rank_stories,
)
from chipwatch.store import stories as repo

EMBED_BATCH = 256  # articles embedded at a time: bounds memory on a large backlog
CENTRE_PRIOR = 5.0  # as grouping.centre: pseudo-articles shrinking each mean
SEED_CHUNK = 4096  # stored members read and centred at a time


class _Centre:
    """Running means of the window's unit vectors, overall and per language, so each new
    article is centred as `grouping.centre` centres a whole window."""

    def __init__(self) -> None:
        self.total: np.ndarray | None = None
        self.count = 0
        self.by_language: dict[str, tuple[np.ndarray, int]] = {}

    def update(self, vectors: np.ndarray, languages: Sequence[str]) -> None:
        if len(vectors) == 0:
            return
        if self.total is None:
            self.total = np.zeros(vectors.shape[1], dtype=np.float64)
        self.total += vectors.sum(axis=0)
        self.count += len(vectors)
        codes = np.asarray(languages)
        for language in set(languages):
            rows = vectors[codes == language]
            total, count = self.by_language.get(language, (np.zeros_like(self.total), 0))
            self.by_language[language] = (total + rows.sum(axis=0), count + len(rows))

    def apply(self, vectors: np.ndarray, languages: Sequence[str]) -> np.ndarray:
        assert self.total is not None
        overall = self.total / (self.count + CENTRE_PRIOR)
        centred = np.empty_like(vectors)
        codes = np.asarray(languages)
        for language in set(languages):
            rows = codes == language
            total, count = self.by_language.get(language, (np.zeros_like(self.total), 0))
            mean = (total + CENTRE_PRIOR * overall) / (count + CENTRE_PRIOR)
            centred[rows] = vectors[rows] - mean
        return unit_vectors(centred)


class StoryAssigner:
    """The open window of stored stories, taking batches of new articles."""

    def __init__(
        self, session: Session, since: datetime, embed: Embedder, params: GroupingParams
    ) -> None:
        self.session, self.embed, self.params = session, embed, params
        self.grouper = Grouper(params, {}, 0)
        self.centre = _Centre()
        self.story_of_index: dict[int, int] = {}
        self._seed(session, since)

    def _seed(self, session: Session, since: datetime) -> None:
        """Replay the stored members into the grouper. Two passes over the streamed
        window: the anchor counts and language means first (every member is centred and
        weighed as the whole window says), then each member into its story. The window
        is never held whole: only what the grouper keeps of each member stays."""
        for part in repo.open_members(session, since, chunk=SEED_CHUNK):
            self.grouper.count(part.anchors)
            self.centre.update(unit_vectors(part.vectors.astype(np.float32)), part.languages)
        index_of: dict[int, int] = {}
        for part in repo.open_members(session, since, chunk=SEED_CHUNK):
            centred = self.centre.apply(
                unit_vectors(part.vectors.astype(np.float32)), part.languages
            )
            for k in range(len(part)):
                index = index_of.setdefault(part.story_ids[k], len(index_of))
                day = day_of(part.published[k])
                feats = Features(centred[k], part.anchors[k], day, part.languages[k])
                self.grouper.add(feats, index)
        self.story_of_index = {index: story for story, index in index_of.items()}

    def add(self, items: Sequence[Groupable]) -> dict[int, int]:
        """Group and store these (ungrouped) items, oldest first; article id -> story id."""
        items = sorted(items, key=lambda it: (it.published, it.article_id))
        assigned: dict[int, int] = {}
        for start in range(0, len(items), EMBED_BATCH):
            assigned.update(self._add_batch(items[start : start + EMBED_BATCH]))
        return assigned

    def _add_batch(self, items: Sequence[Groupable]) -> dict[int, int]:
        raw, found = item_features(items, self.embed, self.params)
        vectors = unit_vectors(raw)
        languages = [item.language for item in items]
        self.centre.update(vectors, languages)
        self.grouper.count(found)
        centred = self.centre.apply(vectors, languages)
        assigned, saved = {}, []
        batch = [
            Features(centred[k], found[k], day_of(item.published), item.language)
            for k, item in enumerate(items)
        ]
        for k, (item, index) in enumerate(zip(items, self.grouper.add_many(batch), strict=True)):
            story_id = self.story_of_index.setdefault(index, item.article_id)
            assigned[item.article_id] = story_id
            saved.append(repo.NewMember(item.article_id, story_id, vectors[k], found[k]))
        repo.save_members(self.session, saved, datetime.now(UTC).replace(tzinfo=None))
        return assigned


def assign(
    session: Session,
    items: Sequence[DigestItem],
    embed: Embedder | None = None,
    params: GroupingParams | None = None,
) -> dict[int, int]:
    """Story id of each item, grouping (and storing) those not grouped yet."""
    params = params or GroupingParams()
    known = repo.story_ids(session, [item.article_id for item in items])
    new = [item for item in items if item.article_id not in known]
    if new:
        since = min(item.published for item in new) - timedelta(days=params.window_days)
        assigner = StoryAssigner(session, since, embed or default_embedder(), params)
        known.update(assigner.add(new))
        session.commit()
    return known


def stored_stories(
    session: Session,
    items: Sequence[DigestItem],
    embed: Embedder | None = None,
    params: GroupingParams | None = None,
    *,
    recipient: str | None = None,
) -> list[Story]:
    """The items grouped by their stored stories, ranked. With `recipient`, a story of
    which the reader already had articles is an update (`Story.earlier`)."""
    story_of = assign(session, items, embed, params)
    members: dict[int, list[DigestItem]] = {}
    for item in items:
        members.setdefault(story_of[item.article_id], []).append(item)
    delivered = repo.delivered_members(session, recipient, list(members)) if recipient else {}
    shown = {item.article_id for item in items}
    stories = []
    for story_id, group_items in members.items():
        earlier = tuple(
            plain_text(title) or "(untitled)"
            for article_id, title in delivered.get(story_id, [])
            if article_id not in shown
        )
        stories.append(make_story(group_items, story_id=story_id, earlier=earlier))
    return rank_stories(stories)
