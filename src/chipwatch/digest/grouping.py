"""Which articles report the same development: event-level grouping.

A story is one development (the same action by the same actor at about the same time).
Names alone do not separate developments in this watch: nearly every article names
Nvidia, China and the Commerce Department. What does separate them:

- what the headline and lead *say*: multilingual sentence embeddings (USE), so the same
  news told in English, French or German lands close together;
- the rarer names and numbers both articles carry (product codes, percentages, amounts,
  people), weighted by rarity, since they survive translation;
- time: a development is reported within days; the score decays with the gap.

Pair score = cosine + `anchor_weight` * anchor overlap - time penalty. Articles are taken in
time order; each joins the open story whose *average* pair score with its members is
highest, when that reaches `threshold`, else it starts a story. Average linkage (against
every member, not the closest one) keeps chains from forming: an article close to one
member but far from the rest stays out. The same procedure serves a whole window and one
new article (`Grouper.add`), so grouping is incremental: a new article joins a story
without re-clustering the window.

The three parameters were chosen by cross-validation on the labelled dev events (leaving
events out); see docs/digest.md and scripts/calibrate_stories.py.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

# --- parameters ------------------------------------------------------------------------


@dataclass(frozen=True)
class GroupingParams:
    # Average pair score at which an article joins a story (chosen by cross-validation).
    threshold: float = 0.5
    # Weight of the idf-weighted anchor overlap (0..1) next to the cosine (chosen by CV).
    anchor_weight: float = 0.5
    # Score lost per day between two articles beyond `grace_days` (a design choice: dev
    # articles are mostly undated, so time could not be tuned there; see docs/digest.md).
    decay_per_day: float = 0.03
    grace_days: float = 2.0
    # A story takes no new article once its latest one is this much older.
    window_days: float = 7.0
    # Characters of the lead paragraph embedded after the headline.
    lead_chars: int = 600
    # Large windows: only stories sharing an anchor this rare are compared (blocking);
    # windows with at most `dense_limit` open stories compare with all of them.
    max_anchor_df: int = 200
    dense_limit: int = 4096


# --- anchors: names and numbers ----------------------------------------------------------

# H20, MI308X, B30A, 5G, A100: letters and digits mixed in one token.
_CODE = re.compile(r"\b(?=[A-Za-z]*\d)(?=\d*[A-Za-z])[A-Za-z0-9]{2,10}\b")
# 15%, 15 %, 15,5 %, 15.5 per cent
_PERCENT = re.compile(
    r"(\d+(?:[.,]\d+)?)\s?(?:%|per ?cent|pour ?cent|prozent|por ciento|per cento)", re.I
)
_NUMBER = re.compile(r"\b\d+(?:[.,]\d+)?\b")
_NAME = re.compile(r"\b[A-Z][\w'’-]{2,}")
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
    for match in _NAME.finditer(text):
        word = fold(match.group(0)).strip("'’-")
        if len(word) >= 3 and word not in _STOP_NAMES and not any(c.isdigit() for c in word):
            found.add("@" + word)
    return frozenset(found)


def _is_year(value: str) -> bool:
    return len(value) == 4 and value.startswith(("19", "20"))


# --- features ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Features:
    """What grouping knows of one article."""

    vector: np.ndarray = field(repr=False, compare=False)  # unit-length embedding
    anchors: frozenset[str]
    day: float  # published, in days since the epoch


def match_text(title: str, lead: str, lead_chars: int) -> str:
    """The text embedded for grouping: the headline, then the start of the lead."""
    return f"{title}. {lead[:lead_chars]}".strip()


def anchor_text(title: str, text: str) -> str:
    return f"{title}. {text}"


# --- the grouper --------------------------------------------------------------------------


@dataclass
class _Story:
    members: list[int]
    vector_sum: np.ndarray
    last_day: float


class Grouper:
    """Online average-link grouping. `add` returns the story index an article joined.

    `df` (anchor -> articles carrying it) and `total` weigh anchors by rarity; pass the
    counts over the window being grouped so early articles see the same weights as late
    ones. Without them the counts grow as articles are added.
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
        self.features: list[Features] = []
        self.story_of: list[int] = []
        self.stories: list[_Story] = []
        self._index: dict[str, set[int]] = defaultdict(set)  # anchor -> story indices
        self._open: set[int] = set()
        self._idf: dict[str, float] = {}
        self._weights: dict[frozenset[str], float] = {}

    # Rarity weight of an anchor: log(1 + N / df).
    def idf(self, anchor: str) -> float:
        cached = self._idf.get(anchor)
        if cached is None:
            n = max(self._df.get(anchor, 0), 1)
            cached = math.log(1 + max(self._total, n) / n)
            if self._fixed_df:  # growing counts change the weights: no caching then
                self._idf[anchor] = cached
        return cached

    def weight(self, feats: Features) -> float:
        """Summed rarity of an article's anchors (cached per article for fixed counts)."""
        cached = self._weights.get(feats.anchors) if self._fixed_df else None
        if cached is None:
            cached = sum(map(self.idf, feats.anchors))
            if self._fixed_df:
                self._weights[feats.anchors] = cached
        return cached

    def overlap(self, a: Features, b: Features) -> float:
        """Weighted share of the smaller anchor set that the other one carries too."""
        shared = a.anchors & b.anchors
        if not shared:
            return 0.0
        return sum(map(self.idf, shared)) / max(min(self.weight(a), self.weight(b)), 1e-9)

    def time_penalty(self, a: Features, b: Features) -> float:
        gap = abs(a.day - b.day) - self.params.grace_days
        return self.params.decay_per_day * gap if gap > 0 else 0.0

    def pair_score(self, a: Features, b: Features) -> float:
        cosine = float(a.vector @ b.vector)
        return cosine + self.params.anchor_weight * self.overlap(a, b) - self.time_penalty(a, b)

    def story_score(self, feats: Features, story: int) -> float:
        """Average linkage: the mean pair score with every member."""
        members = self.stories[story].members
        return sum(self.pair_score(feats, self.features[m]) for m in members) / len(members)

    def add(self, feats: Features, story: int | None = None) -> int:
        """Group one article (or, with `story`, record a known assignment)."""
        if not self._fixed_df:
            self._total += 1
            for anchor in feats.anchors:
                self._df[anchor] += 1
        self._close_stale(feats.day)
        if story is None:
            story = self._best_story(feats)
        index = len(self.features)
        self.features.append(feats)
        self.story_of.append(story if story is not None else len(self.stories))
        if story is None or story >= len(self.stories):
            while len(self.stories) <= self.story_of[-1]:
                self.stories.append(_Story([], np.zeros_like(feats.vector), feats.day))
        target = self.stories[self.story_of[-1]]
        target.members.append(index)
        target.vector_sum = target.vector_sum + feats.vector
        target.last_day = max(target.last_day, feats.day)
        self._open.add(self.story_of[-1])
        for anchor in feats.anchors:
            self._index[anchor].add(self.story_of[-1])
        return self.story_of[-1]

    def _close_stale(self, day: float) -> None:
        # Articles come roughly in time order; a story quiet for window_days is closed.
        limit = day - self.params.window_days
        if len(self._open) > self.params.dense_limit:
            self._open = {s for s in self._open if self.stories[s].last_day >= limit}

    def _candidates(self, feats: Features) -> Iterable[int]:
        limit = feats.day - self.params.window_days
        if len(self._open) <= self.params.dense_limit:
            pool: Iterable[int] = self._open
        else:
            found: set[int] = set()
            for anchor in feats.anchors:
                if self._df.get(anchor, 0) <= self.params.max_anchor_df:
                    found |= self._index.get(anchor, set())
            pool = found
        return [s for s in pool if self.stories[s].last_day >= limit]

    def _best_story(self, feats: Features) -> int | None:
        params = self.params
        best, best_score = None, params.threshold
        for story in self._candidates(feats):
            data = self.stories[story]
            # Upper bound first: anchor overlap is at most 1 and time only subtracts, so
            # a story whose mean cosine is too low cannot reach the threshold.
            mean_cosine = float(feats.vector @ data.vector_sum) / len(data.members)
            if mean_cosine + params.anchor_weight < best_score:
                continue
            score = self.story_score(feats, story)
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
    for i in order:
        assigned[i] = grouper.add(features[i])
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
