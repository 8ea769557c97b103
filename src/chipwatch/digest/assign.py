"""Incremental grouping against the stored stories.

An article is grouped once: `assign` embeds the articles not grouped yet, compares them
with the stored members of the stories still open (published within
`window_days` of them), lets each join a story or start one, and stores the result.
Earlier assignments are never revisited, so a digest, the Atom feeds and the export all
see the same stories, and a story keeps its id (its first article's) as it grows.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import numpy as np
from sqlalchemy.orm import Session

from chipwatch.digest.grouping import Features, Grouper, GroupingParams, centre
from chipwatch.digest.select import DigestItem, plain_text
from chipwatch.digest.stories import (
    Embedder,
    Story,
    day_of,
    default_embedder,
    item_features,
    make_story,
    rank_stories,
)
from chipwatch.store import stories as repo

EMBED_BATCH = 256  # articles embedded at a time: bounds memory on a large backlog


def assign(
    session: Session,
    items: Sequence[DigestItem],
    embed: Embedder | None = None,
    params: GroupingParams | None = None,
) -> dict[int, int]:
    """Story id of each item, grouping (and storing) those not grouped yet."""
    params = params or GroupingParams()
    known = repo.story_ids(session, [item.article_id for item in items])
    new = sorted(
        (item for item in items if item.article_id not in known),
        key=lambda it: (it.published, it.article_id),
    )
    if new:
        known.update(_group_new(session, new, embed or default_embedder(), params))
    return known


def _group_new(
    session: Session, new: Sequence[DigestItem], embed: Embedder, params: GroupingParams
) -> dict[int, int]:
    since = min(item.published for item in new) - timedelta(days=params.window_days)
    stored = repo.open_members(session, since)
    raw_parts, found = [], []
    for start in range(0, len(new), EMBED_BATCH):
        vectors, anchors = item_features(new[start : start + EMBED_BATCH], embed, params)
        raw_parts.append(vectors)
        found += anchors
    raw_new = np.vstack(raw_parts)
    raw = np.vstack([np.array([m.vector for m in stored]).reshape(-1, raw_new.shape[1]), raw_new])
    languages = [m.language for m in stored] + [item.language for item in new]
    # Centred on the open window (stored members and new articles together).
    centred = centre(raw, languages)
    all_anchors = [m.anchors for m in stored] + found
    df: dict[str, int] = {}
    for group_anchors in all_anchors:
        for anchor in group_anchors:
            df[anchor] = df.get(anchor, 0) + 1
    grouper = Grouper(params, df, len(all_anchors))
    index_of: dict[int, int] = {}  # stored story id -> grouper story index
    for k, member in enumerate(stored):
        feats = Features(centred[k], member.anchors, day_of(member.published))
        index = grouper.add(feats, index_of.setdefault(member.story_id, len(index_of)))
        index_of.setdefault(member.story_id, index)
    story_of_index = {index: story_id for story_id, index in index_of.items()}
    assigned: dict[int, int] = {}
    saved = []
    for k, item in enumerate(new):
        feats = Features(centred[len(stored) + k], found[k], day_of(item.published))
        index = grouper.add(feats)
        story_id = story_of_index.setdefault(index, item.article_id)
        assigned[item.article_id] = story_id
        saved.append(repo.NewMember(item.article_id, story_id, raw_new[k], found[k]))
    repo.save_members(session, saved, datetime.now(UTC).replace(tzinfo=None))
    session.commit()
    return assigned


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
