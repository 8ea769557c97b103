"""Stories: the articles that report one development, with the most informative as lead.

`cluster(items)` groups a list of digest items (pure: tests, alerts, one-off lists);
`digest.assign.stored_stories` does the same incrementally against the stored
assignments. Both use `digest.grouping` (embeddings of headline and lead, anchors, time;
see there and docs/digest.md) and `make_story` / `rank_stories` below.
"""

from __future__ import annotations

import functools
import hashlib
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

import numpy as np

from chipwatch.digest.grouping import (
    Features,
    GroupingParams,
    anchor_text,
    anchors,
    centre,
    group,
    match_text,
)
from chipwatch.digest.select import DigestItem
from chipwatch.types import TextKind

Embedder = Callable[[Sequence[str]], "np.ndarray"]


class Groupable(Protocol):
    """What grouping reads of an article: a `DigestItem`, or a `GroupingItem`."""

    @property
    def article_id(self) -> int: ...
    @property
    def title(self) -> str: ...
    @property
    def text(self) -> str: ...
    @property
    def excerpt(self) -> str: ...
    @property
    def language(self) -> str: ...
    @property
    def published(self) -> datetime: ...


@dataclass(frozen=True)
class GroupingItem:
    """An article as grouping reads it, without what only the digest shows (excerpt,
    evidence, link): a backlog is grouped without building those. Title and text come
    from `select.title_and_lead`, as a digest item's do."""

    article_id: int
    title: str
    text: str
    language: str
    published: datetime
    excerpt: str = ""


@dataclass(frozen=True)
class Story:
    """Articles about one event. `lead` is shown; `others` become "also in: …"."""

    key: str
    lead: DigestItem
    others: tuple[DigestItem, ...]
    story_id: int | None = None  # the stored story (its first article's id), when stored
    # Headlines of this story's articles the reader already had in an earlier digest.
    earlier: tuple[str, ...] = field(default=())

    @property
    def is_update(self) -> bool:
        return bool(self.earlier)

    @property
    def items(self) -> tuple[DigestItem, ...]:
        return (self.lead, *self.others)

    @property
    def article_ids(self) -> tuple[int, ...]:
        return tuple(item.article_id for item in self.items)

    @property
    def score(self) -> float:
        return max(item.relevance for item in self.items)

    @property
    def source_count(self) -> int:
        return len({item.source_name for item in self.items})

    @property
    def latest(self) -> datetime:
        return max(item.published for item in self.items)

    @property
    def novel(self) -> bool:
        return all(item.novel or not item.topics for item in self.items)

    def topic_weights(self) -> dict[str, float]:
        """Summed topic scores over the members (an unscored topic counts 0.5)."""
        weights: dict[str, float] = defaultdict(float)
        for item in self.items:
            for topic in item.topics:
                weights[topic] += item.topic_scores.get(topic, 0.5)
        return dict(weights)


@functools.cache
def default_embedder() -> Embedder:
    """The multilingual USE (one instance per process: loading takes seconds)."""
    from chipwatch.classify.embed import get_embedder

    return get_embedder("use").embed


def item_features(
    items: Sequence[Groupable], embed: Embedder, params: GroupingParams
) -> tuple[np.ndarray, list[frozenset[str]]]:
    """Raw unit embeddings of headline + lead, and the anchors, of each item."""
    texts = [match_text(item.title, item.text or item.excerpt, params.lead_chars) for item in items]
    vectors = np.asarray(embed(texts), dtype=np.float32) if texts else np.zeros((0, 1))
    found = [anchors(anchor_text(item.title, item.text or item.excerpt)) for item in items]
    return vectors, found


def day_of(moment: datetime) -> float:
    return moment.timestamp() / 86400


def cluster(
    items: Sequence[DigestItem],
    params: GroupingParams | None = None,
    embed: Embedder | None = None,
) -> list[Story]:
    """Group items into stories (order: as `rank_stories` sorts them)."""
    if not items:
        return []
    params = params or GroupingParams()
    vectors, found = item_features(items, embed or default_embedder(), params)
    centred = centre(vectors, [item.language for item in items])
    features = [
        Features(centred[i], found[i], day_of(item.published), item.language)
        for i, item in enumerate(items)
    ]
    members: dict[int, list[int]] = defaultdict(list)
    for i, story in enumerate(group(features, params)):
        members[story].append(i)
    stories = [
        make_story([items[i] for i in idx], [found[i] for i in idx]) for idx in members.values()
    ]
    return rank_stories(stories)


def make_story(
    members: Sequence[DigestItem],
    member_anchors: Sequence[frozenset[str]] | None = None,
    *,
    story_id: int | None = None,
    earlier: tuple[str, ...] = (),
) -> Story:
    """Lead: the most informative article (see `lead_order`); the others follow by time."""
    member_anchors = member_anchors or [
        anchors(anchor_text(m.title, m.text or m.excerpt)) for m in members
    ]
    order = lead_order(members, member_anchors)
    lead = members[order[0]]
    others = sorted((members[i] for i in order[1:]), key=lambda it: (it.published, it.article_id))
    key = hashlib.sha256(
        ",".join(str(i) for i in sorted(it.article_id for it in members)).encode()
    ).hexdigest()[:16]
    return Story(key=key, lead=lead, others=tuple(others), story_id=story_id, earlier=earlier)


def lead_order(
    members: Sequence[DigestItem], member_anchors: Sequence[frozenset[str]]
) -> list[int]:
    """Most informative first: the share of the story's shared names and numbers an article
    carries (what the reports agree on), a full text over a summary over a bare headline,
    then relevance, then the earliest (the original report)."""
    counts: dict[str, int] = defaultdict(int)
    for found in member_anchors:
        for anchor in found:
            counts[anchor] += 1
    shared = {a for a, n in counts.items() if n >= 2} if len(members) > 1 else set()

    def key(i: int) -> tuple[float, int, float, datetime, int]:
        item = members[i]
        coverage = len(member_anchors[i] & shared) / len(shared) if shared else 0.0
        kind = TextKind.guess(item.title, item.text or item.excerpt)
        richness = {TextKind.FULL: 2, TextKind.SUMMARY: 1}.get(kind, 0)
        return (
            -round(coverage, 2),
            -richness,
            -round(item.relevance, 3),
            item.published,
            item.article_id,
        )

    return sorted(range(len(members)), key=key)


def rank_value(story: Story, now: datetime | None = None) -> float:
    """Score first; more outlets and freshness lift a story a little (each at most 0.2)."""
    now = now or story.latest
    age_days = max((now - story.latest).total_seconds() / 86400, 0.0)
    return story.score + min(0.05 * (story.source_count - 1), 0.2) - min(0.02 * age_days, 0.2)


def rank_stories(stories: Iterable[Story], now: datetime | None = None) -> list[Story]:
    stories = list(stories)
    if now is None and stories:
        now = max(story.latest for story in stories)
    return sorted(stories, key=lambda s: (-rank_value(s, now), -s.latest.timestamp(), s.key))
