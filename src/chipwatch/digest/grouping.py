"""Which articles report the same development: event-level grouping.

A story is one development (the same action by the same actor at about the same time).
Names alone do not separate developments in this watch: nearly every article names
Nvidia, China and the Commerce Department. What does separate them:

- what the headline and lead *say*: multilingual sentence embeddings (USE), so the same
  news told in English, French or German lands close together;
- the rarer names and numbers both articles carry (product codes, percentages, amounts,
  people), weighted by rarity, since they survive translation;
- time: a development is reported within days; the score decays with the gap.

Pair score: a small linear pair model over the centred cosine (weighted more across
languages), the overlap of each kind of anchor (codes, amounts, names), minus a time
penalty (`GroupingParams`). Articles are taken in time order; each joins the open story
whose *average* pair score with its members is highest, when that reaches `threshold`,
else it starts a story. Average linkage (against
every member, not the closest one) keeps chains from forming: an article close to one
member but far from the rest stays out. The same procedure serves a whole window and one
new article (`Grouper.add`), so grouping is incremental: a new article joins a story
without re-clustering the window.

The pair model's weights were fitted by logistic regression on labelled dev pairs and the
threshold chosen on B-cubed, both inside cross-validation that leaves events out; see
docs/digest.md and scripts/calibrate_stories.py.
"""

from __future__ import annotations

import functools
import math
import re
import sys
import unicodedata
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

# --- parameters ------------------------------------------------------------------------


@dataclass(frozen=True)
class GroupingParams:
    """The pair score is a small linear pair model: its weights were fitted by logistic
    regression on the labelled dev pairs (scripts/calibrate_stories.py --fit), scaled so
    that the centred cosine has weight 1; the threshold by event-held-out CV."""

    # Average pair score at which an article joins a story (chosen by cross-validation).
    threshold: float = 0.83
    # Scale of the three anchor overlaps (0 switches anchors off; the bound of pruning).
    anchor_weight: float = 1.0
    # Weight of the idf-weighted overlap of each kind of anchor: product codes (H20),
    # amounts and percentages, names (fitted on dev pairs).
    code_weight: float = 0.42
    number_weight: float = 0.264
    name_weight: float = 0.484
    # Score lost per day between two articles beyond `grace_days` (a design choice: dev
    # articles are mostly undated, so time could not be tuned there; see docs/digest.md).
    decay_per_day: float = 0.03
    grace_days: float = 2.0
    # Two articles in different languages: the cosine is multiplied by
    # 1 + `cross_language_cosine` and `cross_language_bonus` is added. USE puts a
    # translation of the same news less close than a same-language report, so the same
    # cosine means more across languages (both fitted on dev pairs).
    cross_language_bonus: float = -0.059
    cross_language_cosine: float = 0.423
    # Names and numbers alone never make a story: the texts must be at least this close
    # (mean centred cosine). A design choice: 2 of the 44 same-event dev pairs are below.
    min_cosine: float = 0.1
    # A story takes no new article once its latest one is this much older.
    window_days: float = 7.0
    # Characters of the lead paragraph embedded after the headline.
    lead_chars: int = 600
    # Large windows: only stories sharing an anchor this rare are compared (blocking);
    # windows with at most `dense_limit` open stories compare with all of them.
    max_anchor_df: int = 200
    dense_limit: int = 4096

    @property
    def kind_weights(self) -> tuple[float, float, float]:
        """Effective weight of each anchor kind, in the order of `KINDS`."""
        scale = self.anchor_weight
        return (scale * self.code_weight, scale * self.number_weight, scale * self.name_weight)

    @property
    def max_anchor_score(self) -> float:
        return sum(self.kind_weights)


# --- anchors: names and numbers ----------------------------------------------------------

# H20, MI308X, B30A, 5G, A100: letters and digits mixed in one token.
_CODE = re.compile(r"\b(?=[A-Za-z]*\d)(?=\d*[A-Za-z])[A-Za-z0-9]{2,10}\b")
# 15%, 15 %, 15,5 %, 15.5 per cent
# (Case folded only for the unit words: a pattern-wide re.I slows the scan of every digit.)
_PERCENT = re.compile(
    r"(\d+(?:[.,]\d+)?)\s?(?i:%|per ?cent|pour ?cent|prozent|por ciento|per cento)"
)
_NUMBER = re.compile(r"\b\d+(?:[.,]\d+)?\b")
_NAME = re.compile(r"\b[A-Z][\w'’-]{2,}")
_DIGIT = re.compile(r"\d")
# Capitalised words that say nothing about which development it is (sentence starts,
# weekdays, months, newsroom words in the watch's languages).
_STOP_TEXT = """the this that these those with from after before when what while where which about
    monday tuesday wednesday thursday friday saturday sunday january february march april
    may june july august september october november december janvier fevrier mars avril
    mai juin juillet aout septembre octobre novembre decembre lundi mardi mercredi jeudi
    vendredi samedi dimanche les des une pour dans avec selon mais cette ces leur sur par
    der die das und mit von fur den dem ein eine nach il lo la gli le della con per
    el los las del por para una segun reuters according however also but and said says
    new news update live read more"""
_STOP_NAMES = frozenset(_STOP_TEXT.split())


@functools.lru_cache(maxsize=65536)  # names repeat across articles: fold each once
def fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()


def anchors(text: str) -> frozenset[str]:
    """Names and numbers that identify a development in any language."""
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
    for word in _NAME.findall(text):
        found.update(_name_anchors(word))
    # Interned: the same names recur across thousands of articles; one string each.
    return frozenset(map(sys.intern, found))


@functools.lru_cache(maxsize=65536)  # names repeat across articles: each word once
def _name_anchors(word: str) -> tuple[str, ...]:
    return tuple(
        "@" + form
        for form in name_forms(word)
        if len(form) >= 3 and form not in _STOP_NAMES and not _DIGIT.search(form)
    )


_ELISION = re.compile(r"^(?:l|d|qu|dell|all|nell|sull)['’]")
_POSSESSIVE = re.compile(r"['’]s?$")


def name_forms(word: str) -> list[str]:
    """A capitalised word as the same name in any language: without elision (l'Europe),
    possessive (Nvidia's, Trumps is left alone) and split at hyphens, so "Nvidia-Chef"
    and "Nvidia's" both give "nvidia"."""
    folded = _POSSESSIVE.sub("", _ELISION.sub("", fold(word))).strip("'’-")
    parts = [part for part in folded.split("-") if part]
    return [folded, *parts] if len(parts) > 1 else [folded]


# Anchor kinds by their first character: codes, amounts and percentages, names.
KINDS = ("#", "%n", "@")


_KIND_OF = {"#": 0, "%": 1, "n": 1, "@": 2}


def split_kinds(found: frozenset[str]) -> tuple[frozenset[str], ...]:
    """The anchors of each kind of `KINDS`."""
    return tuple(frozenset(a for a in found if a[0] in kind) for kind in KINDS)


def _is_year(value: str) -> bool:
    return len(value) == 4 and value.startswith(("19", "20"))


# --- features ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Features:
    """What grouping knows of one article."""

    vector: np.ndarray = field(repr=False, compare=False)  # unit-length embedding
    # A set for an article being grouped; a stored member replayed into its known story
    # may give a tuple (never compared, only kept: a fifth of the memory of a set).
    anchors: frozenset[str] | tuple[str, ...]
    day: float  # published, in days since the epoch
    language: str = ""


def match_text(title: str, lead: str, lead_chars: int) -> str:
    """The text embedded for grouping: the headline, then the start of the lead."""
    return f"{title}. {lead[:lead_chars]}".strip()


def anchor_text(title: str, text: str) -> str:
    return f"{title}. {text}"


# --- the grouper --------------------------------------------------------------------------


MAX_LINKED = 64
SUM_BLOCK = 4096  # story sums are kept in blocks of this many rows


class StorySums:
    """Per story, the sum of its members' vectors: float32 rows in fixed blocks, so a
    growing window never copies (nor holds twice) one large matrix."""

    def __init__(self) -> None:
        self.blocks: list[np.ndarray] = []
        self.count = 0

    def append(self, dims: int) -> None:
        if self.count == len(self.blocks) * SUM_BLOCK:
            self.blocks.append(np.zeros((SUM_BLOCK, dims), dtype=np.float32))
        self.count += 1

    def add(self, story: int, vector: np.ndarray) -> None:
        self.blocks[story // SUM_BLOCK][story % SUM_BLOCK] += vector

    def head(self, count: int) -> np.ndarray:
        """The first `count` rows (a view while they fit in one block)."""
        if count <= SUM_BLOCK:
            return self.blocks[0][:count]
        whole = np.concatenate(self.blocks)
        return whole[:count]

    def take(self, rows: np.ndarray) -> np.ndarray:
        if len(self.blocks) == 1:
            return self.blocks[0][rows]
        out = np.empty((len(rows), self.blocks[0].shape[1]), dtype=np.float32)
        blocks, offsets = np.divmod(rows, SUM_BLOCK)
        for block in set(blocks.tolist()):
            where = blocks == block
            out[where] = self.blocks[block][offsets[where]]
        return out


class Grouper:
    """Online average-link grouping. `add` returns the story index an article joined.

    `df` (anchor -> articles carrying it) and `total` weigh anchors by rarity; pass the
    counts over the window being grouped so early articles see the same weights as late
    ones. Without them the counts grow as articles are added.

    Memory stays small: a story keeps the sum of its members' vectors (the mean cosine
    with all members is one dot product with it) and each member only its anchors and day.
    """

    def __init__(
        self,
        params: GroupingParams | None = None,
        df: Mapping[str, int] | None = None,
        total: int | None = None,
    ) -> None:
        self.params = params or GroupingParams()
        self._fixed_df = df is not None
        self._df: dict[str, int] = defaultdict(int, df or {})
        self._total = total or 0
        self.story_of: list[int] = []
        # per story, per member: anchors and day
        # (a tuple, not a set: a fifth of the memory; intersections take any iterable)
        self._members: list[list[tuple[tuple[str, ...], float]]] = []
        # per story: every member's anchors (a one-article story shares its member's set)
        self._union: list[frozenset[str] | tuple[str, ...]] = []
        self._languages: list[dict[str, int]] = []  # per story: members per language
        # per language: its members in each story (a column, for the vectorised prefilter)
        self._in_language: dict[str, np.ndarray] = {}
        self._sums = StorySums()  # per story: sum of member vectors
        self._sizes = np.zeros(0, dtype=np.float32)  # per story: members
        self._last_day = np.zeros(0, dtype=np.float64)  # per story: latest member's day
        # anchor -> the story carrying it, or a set once several do (most anchors: one)
        self._index: dict[str, int | set[int]] = {}
        self._open: set[int] = set()
        self._pruned_at = 0
        self._idf: dict[str, float] = {}
        self._weights: dict[frozenset[str], float] = {}
        self._kind_weights: dict[Collection[str], tuple[float, float, float]] = {}
        # During `add_many`: the batch's products with the story sums as they were at its
        # start, and the stories changed since (their products are computed afresh).
        self._batch_products: np.ndarray | None = None
        self._batch_stories = self._batch_row = 0
        self._touched: set[int] = set()

    def count(self, anchor_sets: Iterable[Collection[str]]) -> None:
        """Add articles to the fixed counts before grouping them (incremental batches)."""
        for found in anchor_sets:
            self._total += 1
            for anchor in found:
                self._df[anchor] += 1
        self._idf.clear()
        self._weights.clear()
        self._kind_weights.clear()

    # Rarity weight of an anchor: log(1 + N / df). An anchor the counts show on one
    # article only says nothing about which story it is in, yet would weigh most: 0.
    # (German capitalises every noun: without this, its many one-off nouns swamp the
    # overlap of a German article with any other.)
    def idf(self, anchor: str) -> float:
        cached = self._idf.get(anchor)
        if cached is None:
            df = self._df.get(anchor, 0)
            n = max(df, 1)
            cached = 0.0 if df == 1 else math.log(1 + max(self._total, n) / n)
            if self._fixed_df:  # growing counts change the weights: no caching then
                self._idf[anchor] = cached
        return cached

    def _idf_sum(self, anchors: Iterable[str]) -> float:
        cache, total = self._idf, 0.0
        for anchor in anchors:
            value = cache.get(anchor)
            total += value if value is not None else self.idf(anchor)
        return total

    def weight(self, found: frozenset[str]) -> float:
        """Summed rarity of an article's anchors (cached for fixed counts)."""
        cached = self._weights.get(found) if self._fixed_df else None
        if cached is None:
            cached = self._idf_sum(found)
            if self._fixed_df:
                self._weights[found] = cached
        return cached

    def overlap(self, a: frozenset[str], b: frozenset[str]) -> float:
        """Weighted Jaccard: rarity of the shared anchors over that of all of them."""
        shared = a & b
        if not shared:
            return 0.0
        both = self._idf_sum(shared)
        return both / max(self.weight(a) + self.weight(b) - both, 1e-9)

    def kind_weights(self, found: Collection[str]) -> tuple[float, float, float]:
        """Summed rarity of the anchors of each kind (cached for fixed counts)."""
        cached = self._kind_weights.get(found) if self._fixed_df else None
        if cached is None:
            cached = self._by_kind(found)
            if self._fixed_df:
                self._kind_weights[found] = cached
        return cached

    def _by_kind(self, anchors: Iterable[str]) -> tuple[float, float, float]:
        sums = [0.0, 0.0, 0.0]
        cache = self._idf
        for anchor in anchors:
            value = cache.get(anchor)
            sums[_KIND_OF[anchor[0]]] += value if value is not None else self.idf(anchor)
        return sums[0], sums[1], sums[2]

    def anchor_score(self, a: frozenset[str], b: Collection[str]) -> float:
        """Weighted sum of the overlaps (weighted Jaccard) of each kind of anchor: codes,
        amounts and percentages, names (`KINDS`)."""
        shared = a.intersection(b)
        if not shared:
            return 0.0
        both = self._by_kind(shared)
        mine, theirs = self.kind_weights(a), self.kind_weights(b)
        total = 0.0
        for k, weight in enumerate(self.params.kind_weights):
            if weight and both[k]:
                total += weight * both[k] / max(mine[k] + theirs[k] - both[k], 1e-9)
        return total

    def anchor_bound(self, a: frozenset[str], story: int) -> float:
        """At least the anchor score with any member: shared anchors are the story's."""
        shared = a.intersection(self._union[story])
        if not shared:
            return 0.0
        both, mine = self._by_kind(shared), self.kind_weights(a)
        return sum(
            weight * both[k] / max(mine[k], 1e-9)
            for k, weight in enumerate(self.params.kind_weights)
            if weight and both[k]
        )

    def cosine_term(self, cosine: float, cross: float) -> float:
        """The cosine as the pair model weighs it; `cross`: share of pairs in different
        languages (1 or 0 for a pair, a fraction for an article against a story)."""
        params = self.params
        return cosine * (1 + params.cross_language_cosine * cross) + (
            params.cross_language_bonus * cross
        )

    def time_penalty(self, a: float, b: float) -> float:
        gap = abs(a - b) - self.params.grace_days
        return self.params.decay_per_day * gap if gap > 0 else 0.0

    def pair_score(self, a: Features, b: Features) -> float:
        cross = float(a.language != b.language)
        return (
            self.cosine_term(float(a.vector @ b.vector), cross)
            + self.anchor_score(frozenset(a.anchors), b.anchors)
            - self.time_penalty(a.day, b.day)
        )

    def _rest_score(self, found: frozenset[str], day: float, story: int) -> float:
        """Mean over the members of the anchor and time terms of the pair score (over the
        latest `MAX_LINKED` members of a very large story: its cost stays bounded)."""
        members = self._members[story][-MAX_LINKED:]
        total = 0.0
        for theirs, when in members:
            total += self.anchor_score(found, theirs)
            total -= self.time_penalty(day, when)
        return total / len(members)

    def add_many(self, batch: Sequence[Features]) -> list[int]:
        """Group these articles in order, as `add` one by one would. The products with
        the story sums are one matrix product for the whole batch (not one per article),
        and the stories the batch changes are recomputed for the articles after."""
        count = len(self._members)
        if not batch or not count or count > self.params.dense_limit:
            return [self.add(feats) for feats in batch]
        vectors = np.stack([feats.vector for feats in batch]).astype(np.float32)
        self._batch_products = vectors @ self._sums.head(count).T  # (batch, stories)
        self._batch_stories, self._touched = count, set()
        try:
            stories = []
            for k, feats in enumerate(batch):
                self._batch_row = k
                stories.append(self.add(feats))
                self._touched.add(stories[-1])
            return stories
        finally:
            self._batch_products = None

    def _products(self, vector: np.ndarray, count: int) -> np.ndarray:
        """Dot products of the vector with the first `count` story sums."""
        if self._batch_products is None:
            return self._sums.head(count) @ vector
        known = self._batch_stories
        products = np.empty(count, dtype=np.float32)
        products[:known] = self._batch_products[self._batch_row]
        fresh = [s for s in self._touched if s < known] + list(range(known, count))
        if fresh:
            rows = np.asarray(fresh, dtype=np.int64)
            products[rows] = self._sums.take(rows) @ vector
        return products

    def add(self, feats: Features, story: int | None = None) -> int:
        """Group one article (or, with `story`, record a known assignment)."""
        if not self._fixed_df:
            self._total += 1
            for anchor in feats.anchors:
                self._df[anchor] += 1
        if story is None:
            story = self._best_story(feats, frozenset(feats.anchors))  # no copy of a set
        if story is None:
            story = len(self._members)
        while len(self._members) <= story:
            self._new_story(feats)
        kept = tuple(feats.anchors)
        self._members[story].append((kept, feats.day))
        union = self._union[story]
        self._union[story] = kept if not union else frozenset(union).union(kept)
        languages = self._languages[story]
        languages[feats.language] = languages.get(feats.language, 0) + 1
        self._language_column(feats.language)[story] += 1
        self._sums.add(story, feats.vector)
        self._sizes[story] += 1
        self._last_day[story] = max(self._last_day[story], feats.day)
        self._open.add(story)
        limit = self.params.max_anchor_df
        for anchor in feats.anchors:
            # Only rare anchors are looked up (blocking, prefilter): with fixed counts a
            # common one is known, and indexing it would cost memory for nothing.
            if not self._fixed_df or self._df.get(anchor, 0) <= limit:
                known = self._index.get(anchor)
                if known is None:
                    self._index[anchor] = story
                elif isinstance(known, set):
                    known.add(story)
                elif known != story:
                    self._index[anchor] = {known, story}
        self.story_of.append(story)
        return story

    def _stories_with(self, anchor: str) -> Iterable[int]:
        known = self._index.get(anchor)
        if known is None:
            return ()
        return known if isinstance(known, set) else (known,)

    def _new_story(self, feats: Features) -> None:
        count = len(self._members)
        self._sums.append(len(feats.vector))
        if count >= len(self._sizes):  # small per-story columns grow by half
            capacity = max(count + count // 2, 64)
            self._sizes = np.concatenate([self._sizes, np.zeros(capacity - count, np.float32)])
            self._last_day = np.concatenate([self._last_day, np.zeros(capacity - count)])
            for language, column in self._in_language.items():
                grown = np.zeros(capacity - count, np.float32)
                self._in_language[language] = np.concatenate([column, grown])
        self._members.append([])
        self._union.append(())
        self._languages.append({})
        self._last_day[count] = feats.day

    def _language_column(self, language: str) -> np.ndarray:
        column = self._in_language.get(language)
        if column is None:
            column = self._in_language[language] = np.zeros(len(self._sizes), np.float32)
        return column

    def _candidates(self, feats: Features) -> tuple[np.ndarray, np.ndarray]:
        """Open stories worth scoring and their mean cosine with the article."""
        limit = feats.day - self.params.window_days
        count = len(self._members)
        if count == 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        if count <= self.params.dense_limit:
            # One product over the contiguous sums; closed stories are masked out.
            products = self._products(feats.vector, count)
            means = products / np.maximum(self._sizes[:count], 1)
            keep = (self._last_day[:count] >= limit) & (means >= self.params.min_cosine)
            rows = np.flatnonzero(keep)
            return rows, means[rows]
        if len(self._open) > 2 * self._pruned_at:
            # Articles come roughly in time order: a story quiet for window_days is closed.
            self._open = {s for s in self._open if self._last_day[s] >= limit}
            self._pruned_at = len(self._open)
        pool: set[int] = set()
        for anchor in feats.anchors:
            if self._df.get(anchor, 0) <= self.params.max_anchor_df:
                pool.update(self._stories_with(anchor))
        rows = np.fromiter(pool, dtype=np.int64, count=len(pool))
        rows = rows[self._last_day[rows] >= limit]
        means = (self._sums.take(rows) @ feats.vector) / self._sizes[rows]
        keep = means >= self.params.min_cosine
        return rows[keep], means[keep]

    def _prefilter(
        self, feats: Features, rows: np.ndarray, means: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Drop, in one vectorised step, the candidates that cannot reach the threshold.

        Bound of a story's anchor term, per kind: the weight of the article's anchors it
        can share over the article's own (a weighted Jaccard is at most that): its rare
        anchors (df <= max_anchor_df) that the story carries, found in the index, and
        all its common ones (not indexed, so taken as shared). The cosine term is the
        story's own, the time penalty the least its members can give."""
        params = self.params
        order = np.argsort(rows, kind="stable")
        rows, means = rows[order], means[order]
        mine = self.kind_weights(feats.anchors)
        shared = np.zeros((len(KINDS), len(rows)), dtype=np.float64)
        limit = params.max_anchor_df
        for anchor in feats.anchors:
            weight = self.idf(anchor)
            if not weight:
                continue
            kind = _KIND_OF[anchor[0]]
            if self._df.get(anchor, 0) > limit:
                shared[kind] += weight
                continue
            known = self._index.get(anchor)
            if known is None:
                continue
            stories = (
                np.fromiter(known, dtype=np.int64, count=len(known))
                if isinstance(known, set)
                else np.asarray([known], dtype=np.int64)
            )
            at = np.searchsorted(rows, stories)
            found = at < len(rows)
            at, stories = at[found], stories[found]
            shared[kind, at[rows[at] == stories]] += weight
        bound = np.zeros(len(rows), dtype=np.float64)
        for kind, weight in enumerate(params.kind_weights):
            if weight and mine[kind]:
                bound += weight * shared[kind] / mine[kind]
        same = self._in_language.get(feats.language)
        cross = 1.0 - same[rows] / self._sizes[rows] if same is not None else 1.0
        terms = self.cosine_term_many(means, cross)
        # An article after the story's latest member is at least that far from every one.
        late = np.maximum(feats.day - self._last_day[rows] - params.grace_days, 0.0)
        least_penalty = params.decay_per_day * late
        # (1e-6: float32 columns here, float64 in the exact score)
        keep = terms + bound - least_penalty >= params.threshold - 1e-6
        return rows[keep], means[keep]

    def cosine_term_many(self, cosines: np.ndarray, cross: float | np.ndarray) -> np.ndarray:
        params = self.params
        return cosines * (1 + params.cross_language_cosine * cross) + (
            params.cross_language_bonus * cross
        )

    def _best_story(self, feats: Features, found: frozenset[str]) -> int | None:
        rows, mean_cosine = self._candidates(feats)
        if len(rows):
            rows, mean_cosine = self._prefilter(feats, rows, mean_cosine)
        if not len(rows):
            return None
        params = self.params
        best, best_score = None, params.threshold
        # Highest mean cosine first. Each anchor overlap is at most 1 and time only
        # subtracts, so once the best cosine term + the anchor weights is below the best
        # score, nothing can win; the story's anchors give a tighter bound before the
        # members are looked at. (The cosine is at least min_cosine > 0: the language
        # terms are largest for a story all in other languages.)
        cross_terms = params.cross_language_bonus or params.cross_language_cosine
        max_anchor = params.max_anchor_score
        order = np.argsort(-mean_cosine)
        most = np.maximum(
            self.cosine_term_many(mean_cosine, 0.0), self.cosine_term_many(mean_cosine, 1.0)
        )
        for k, cosine, highest in zip(
            order.tolist(), mean_cosine[order].tolist(), most[order].tolist(), strict=True
        ):
            if highest + max_anchor < best_score:
                break
            story = int(rows[k])
            members = self._members[story]
            cross = 0.0
            if cross_terms:
                size = len(members)
                cross = (size - self._languages[story].get(feats.language, 0)) / size
            term = self.cosine_term(cosine, cross)
            # The bound costs what the score costs for a one-article story: skip it there.
            if len(members) > 1 and term + self.anchor_bound(found, story) < best_score:
                continue
            score = term + self._rest_score(found, feats.day, story)
            if score >= best_score:
                best, best_score = story, score
        return best


def group(features: Sequence[Features], params: GroupingParams | None = None) -> list[int]:
    """Story index of each article, grouping all of them (taken in time order)."""
    df: dict[str, int] = defaultdict(int)
    for feats in features:
        for anchor in feats.anchors:
            df[anchor] += 1
    grouper = Grouper(params, df, len(features))
    order = sorted(range(len(features)), key=lambda i: (features[i].day, i))
    assigned = [0] * len(features)
    for i, story in zip(order, grouper.add_many([features[i] for i in order]), strict=True):
        assigned[i] = story
    return assigned


def centre(
    vectors: np.ndarray, languages: Sequence[str] | None = None, prior: float = 5.0
) -> np.ndarray:
    """Unit vectors minus what the window's articles share, renormalised.

    Every article of this watch is about chips, China and export rules, so raw cosines
    are high for any pair; subtracting the window's mean vector leaves what tells one
    development from another (on dev it lifts the pair AUC from 0.90 to 0.92). With
    `languages`, each language's own mean is subtracted: USE puts two articles in one
    language closer than a translation, and the per-language mean carries that part.
    Means are shrunk (`prior` pseudo-articles): towards zero for the window, towards
    the window's mean for a language, so two articles alone are not made opposites.
    """
    vectors = unit_vectors(vectors)
    if len(vectors) == 0:
        return vectors
    overall = vectors.sum(axis=0) / (len(vectors) + prior)
    if languages is None:
        return unit_vectors(vectors - overall)
    codes = np.asarray(languages)
    centred = vectors.copy()
    for language in set(languages):
        rows = codes == language
        mean = (vectors[rows].sum(axis=0) + prior * overall) / (rows.sum() + prior)
        centred[rows] = vectors[rows] - mean
    return unit_vectors(centred)


def unit_vectors(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-9)
