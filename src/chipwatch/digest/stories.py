"""Group the articles about one event, across outlets and languages, into a story.

Two signals join two articles (union-find, so groups are transitive):

1. Near-duplicates: MinHash LSH (datasketch) over word 3-shingles of title + text. Catches
   syndicated copies and lightly edited rewrites in the same language.
2. Same event, any language: the "anchors" of each article (product codes such as H20 or
   MI308, percentages and amounts, capitalised names such as Nvidia or Lutnick) are
   indexed; two articles published within `window` of each other whose anchors overlap
   enough (weighted by rarity) are the same event. Names and numbers survive translation
   where words do not.
3. Optionally `embed(texts) -> vectors`: pairs met through a shared anchor also join when
   their anchor overlap plus their cosine similarity passes `embed_threshold`.

Both are sub-quadratic: LSH only compares bucket mates, and the anchor index skips anchors
carried by more than `max_anchor_df` articles ("China" in every article would make every
pair a candidate); such common anchors still count in the overlap, they just don't block.
"""

from __future__ import annotations

import hashlib
import math
import re
import unicodedata
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
from datasketch import MinHash, MinHashLSH

from chipwatch.digest.select import DigestItem

Embedder = Callable[[Sequence[str]], "np.ndarray"]

_WORD = re.compile(r"\w+", re.UNICODE)
# H20, MI308X, B30A, 5G, A100: letters and digits mixed in one token.
_CODE = re.compile(r"\b(?=[A-Za-z]*\d)(?=\d*[A-Za-z])[A-Za-z0-9]{2,10}\b")
# 15%, 15 %, 15,5 %, 15.5 per cent
_PERCENT = re.compile(r"(\d+(?:[.,]\d+)?)\s?(?:%|per ?cent|pour ?cent|prozent|por ciento)", re.I)
# Amounts worth anchoring on: at least two digits, or a decimal (not "3 firms").
_NUMBER = re.compile(r"\b\d+(?:[.,]\d+)?\b")
_NAME = re.compile(r"\b[A-Z][\w'’-]{2,}")
# Capitalised words that say nothing about which event it is (sentence starts, weekdays,
# months, frequent newsroom words in the watch's languages).
_STOP_TEXT = """the this that these those with from after before when what while where which about
    monday tuesday wednesday thursday friday saturday sunday january february march april
    may june july august september october november december janvier fevrier mars avril
    mai juin juillet aout septembre octobre novembre decembre lundi mardi mercredi jeudi
    vendredi samedi dimanche les des une pour dans avec selon mais cette ces leur sur par
    der die das und mit von fur den dem ein eine nach il lo la gli le della con per
    el los las del por para una segun reuters according however also but and said says
    new news update live read more"""
_STOP_NAMES = frozenset(_STOP_TEXT.split())


@dataclass(frozen=True)
class Story:
    """Articles about one event. `lead` is shown; `others` become "also in: …"."""

    key: str
    lead: DigestItem
    others: tuple[DigestItem, ...]

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


# --- features -------------------------------------------------------------------------


def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()


def shingles(text: str, size: int = 3) -> set[str]:
    words = _WORD.findall(_fold(text))
    if len(words) < size:
        return {" ".join(words)} if words else set()
    return {" ".join(words[i : i + size]) for i in range(len(words) - size + 1)}


def anchors(text: str) -> set[str]:
    """Names and numbers that identify an event in any language."""
    found: set[str] = set()
    percents = {m.group(1).replace(",", ".") for m in _PERCENT.finditer(text)}
    found.update("%" + value for value in percents)
    for match in _CODE.finditer(text):
        found.add("#" + match.group(0).upper())
    for match in _NUMBER.finditer(text):
        value = match.group(0).replace(",", ".")
        # A percentage counts once; years are too common to identify anything.
        if len(value) >= 2 and value not in percents and not _is_year(value):
            found.add("n" + value)
    for match in _NAME.finditer(text):
        word = _fold(match.group(0)).strip("'’-")
        if len(word) >= 3 and word not in _STOP_NAMES and not any(c.isdigit() for c in word):
            found.add("@" + word)
    return found


def _is_year(value: str) -> bool:
    return len(value) == 4 and value.startswith(("19", "20"))


# --- union-find -------------------------------------------------------------------------


class _Groups:
    def __init__(self, size: int) -> None:
        self.parent = list(range(size))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


# --- clustering -------------------------------------------------------------------------


@dataclass(frozen=True)
class StoryParams:
    window: timedelta = timedelta(hours=72)  # same event: published this close together
    lsh_threshold: float = 0.5  # estimated Jaccard of shingles for a near-duplicate
    num_perm: int = 64
    anchor_threshold: float = 0.6  # weighted anchor overlap for the same event
    min_shared_anchors: int = 3
    max_anchor_df: int = 200  # anchors more frequent than this do not block
    # With embeddings, a weaker anchor overlap is accepted when overlap + cosine similarity
    # reaches embed_threshold. Measured on the corpus's July 2025 H20 articles (four outlets):
    # same-event pairs score 0.9-1.2 with the multilingual USE, and pairs that share a
    # topic but not the event are kept apart by the time window, not by the embeddings.
    embed_threshold: float = 0.9
    embed_anchor_threshold: float = 0.2


def cluster(
    items: Sequence[DigestItem],
    params: StoryParams | None = None,
    embed: Embedder | None = None,
) -> list[Story]:
    """Group items into stories (order: as `rank_stories` sorts them)."""
    params = params or StoryParams()
    groups = _Groups(len(items))
    texts = [f"{item.title}. {item.text or item.excerpt}" for item in items]
    _join_near_duplicates(texts, groups, params)
    _join_same_event(items, texts, groups, params, embed)
    members: dict[int, list[int]] = defaultdict(list)
    for i in range(len(items)):
        members[groups.find(i)].append(i)
    stories = [_make_story([items[i] for i in idx]) for idx in members.values()]
    return rank_stories(stories)


def _join_near_duplicates(texts: Sequence[str], groups: _Groups, params: StoryParams) -> None:
    lsh = MinHashLSH(threshold=params.lsh_threshold, num_perm=params.num_perm)
    hashes = _minhashes(texts, params.num_perm)
    for i, mh in enumerate(hashes):
        if mh is None:
            continue
        for other in lsh.query(mh):
            # LSH buckets are candidates; the estimated Jaccard confirms (fewer false joins).
            if mh.jaccard(hashes[int(other)]) >= params.lsh_threshold:
                groups.union(i, int(other))
        lsh.insert(str(i), mh)


def _minhashes(texts: Sequence[str], num_perm: int) -> list[MinHash | None]:
    sets = [[s.encode("utf-8") for s in shingles(text)] for text in texts]
    batch = MinHash.bulk([s or [b""] for s in sets], num_perm=num_perm)
    return [mh if s else None for mh, s in zip(batch, sets, strict=True)]


def _join_same_event(
    items: Sequence[DigestItem],
    texts: Sequence[str],
    groups: _Groups,
    params: StoryParams,
    embed: Embedder | None,
) -> None:
    features = [anchors(text) for text in texts]
    df: dict[str, int] = defaultdict(int)
    for feats in features:
        for anchor in feats:
            df[anchor] += 1
    idf = {a: math.log(1 + len(items) / n) for a, n in df.items()}
    index: dict[str, list[int]] = defaultdict(list)
    for i, feats in enumerate(features):
        for anchor in feats:
            if df[anchor] <= params.max_anchor_df and df[anchor] > 1:
                index[anchor].append(i)
    vectors = _embed(embed, texts)
    weights = [sum(idf[a] for a in feats) for feats in features]
    for i, j in _candidate_pairs(index, features):
        if abs(items[i].published - items[j].published) > params.window:
            continue
        shared = features[i] & features[j]
        if len(shared) < params.min_shared_anchors:
            continue
        overlap = sum(idf[a] for a in shared) / max(min(weights[i], weights[j]), 1e-9)
        if overlap >= params.anchor_threshold or (
            vectors is not None
            and overlap >= params.embed_anchor_threshold
            and overlap + float(vectors[i] @ vectors[j]) >= params.embed_threshold
        ):
            groups.union(i, j)


def _candidate_pairs(
    index: dict[str, list[int]], features: Sequence[set[str]]
) -> Iterable[tuple[int, int]]:
    """Each pair that shares at least one blocking anchor, once."""
    for i in range(len(features)):
        seen: set[int] = set()
        for anchor in features[i]:
            for j in index.get(anchor, ()):
                if j > i and j not in seen:
                    seen.add(j)
                    yield i, j


def _embed(embed: Embedder | None, texts: Sequence[str]) -> np.ndarray | None:
    if embed is None or not texts:
        return None
    vectors = np.asarray(embed(texts), dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-9)


def _make_story(members: list[DigestItem]) -> Story:
    # Lead: the most relevant article; among equals the earliest (the original report).
    ordered = sorted(members, key=lambda it: (-round(it.relevance, 3), it.published, it.article_id))
    lead = ordered[0]
    key = hashlib.sha256(
        ",".join(str(i) for i in sorted(it.article_id for it in members)).encode()
    ).hexdigest()[:16]
    return Story(key=key, lead=lead, others=tuple(ordered[1:]))


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
