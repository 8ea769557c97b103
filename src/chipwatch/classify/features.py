"""Lexical evidence of one article: which scope and topic terms occur in which unit.

A unit is the headline or one paragraph (or sentence window). The taxonomy's rule,
"a topic applies when the headline or at least one paragraph is about it", is read at
this level: signals are counted per unit, then summarised per article.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from chipwatch.classify.text import TermIndex, fold, split_units, terms_for
from chipwatch.classify.topics import ScopeTerms
from chipwatch.types import Topic


@dataclass(frozen=True)
class UnitMatches:
    text: str
    goods: frozenset[str]
    controls: frozenset[str]
    places: frozenset[str]
    topics: Mapping[str, frozenset[str]]
    # Topics with anchors (ScopeTerms.anchors) whose anchor this unit names.
    anchored: frozenset[str] = field(default=frozenset())

    @property
    def in_scope(self) -> bool:
        """Goods and a control named together: the core pattern of an on-subject unit."""
        return bool(self.goods) and bool(self.controls)


@dataclass(frozen=True)
class ArticleMatches:
    language: str
    title: UnitMatches
    body: tuple[UnitMatches, ...]

    @property
    def units(self) -> tuple[UnitMatches, ...]:
        return (self.title, *self.body)

    def terms(self, group: str) -> set[str]:
        return {t for u in self.units for t in getattr(u, group)}

    def topic_terms(self, topic_id: str) -> set[str]:
        return {t for u in self.units for t in u.topics[topic_id]}


class Matcher:
    """Term indexes per language (built lazily, once per language)."""

    def __init__(self, scope: ScopeTerms, topics: Sequence[Topic]) -> None:
        self.scope = scope
        self.topics = tuple(topics)
        all_goods = [t for terms in scope.goods.values() for t in terms]
        # The cheap gate: every language's goods terms, since it runs before detection.
        self.gate = TermIndex({"goods": all_goods})
        self._indexes: dict[str, TermIndex] = {}

    def index(self, language: str) -> TermIndex:
        if language not in self._indexes:
            self._indexes[language] = self._build(language)
        return self._indexes[language]

    def _build(self, language: str) -> TermIndex:
        groups: dict[str, list[str]] = {
            "goods": terms_for(self.scope.goods, language),
            "controls": terms_for(self.scope.controls, language),
            "places": terms_for(self.scope.places, language),
        }
        for topic in self.topics:
            groups[f"topic:{topic.id}"] = terms_for(topic.terms, language)
            if topic.id in self.scope.anchors:
                groups[f"anchor:{topic.id}"] = terms_for(self.scope.anchors[topic.id], language)
        return TermIndex(groups)

    def passes_gate(self, title: str, text: str) -> bool:
        # The headline first: it usually names the goods of an on-subject story, and then
        # the whole text is neither folded nor scanned here. A headline match is a match
        # in headline + text, so the verdict is the same.
        return self.gate.any_match(fold(title)) or self.gate.any_match(fold(f"{title}\n{text}"))

    def unit(self, text: str, language: str) -> UnitMatches:
        found = self.index(language).find(fold(text))
        return UnitMatches(
            text=text,
            goods=frozenset(found["goods"]),
            controls=frozenset(found["controls"]),
            places=frozenset(found["places"]),
            topics={t.id: frozenset(found[f"topic:{t.id}"]) for t in self.topics},
            anchored=frozenset(t.id for t in self.topics if found.get(f"anchor:{t.id}")),
        )

    def _anchor(self, unit: UnitMatches, title: UnitMatches) -> UnitMatches:
        """Drop the terms of anchored topics whose anchor neither the unit nor the headline
        names."""
        dropped = [
            t
            for t in self.scope.anchors
            if unit.topics.get(t) and t not in unit.anchored and t not in title.anchored
        ]
        if not dropped:
            return unit
        topics = {t: (frozenset() if t in dropped else s) for t, s in unit.topics.items()}
        return replace(unit, topics=topics)

    def article(self, title: str, text: str, language: str) -> ArticleMatches:
        # A feed often repeats the headline (or a paragraph) in the text: counted once, or
        # a repeated headline would weigh as two "paragraphs about the topic".
        seen = {" ".join(title.split()).casefold()}
        units = []
        for u in split_units(text):
            key = " ".join(u.split()).casefold()
            if key not in seen:
                seen.add(key)
                units.append(u)
        head = self.unit(title, language)
        body = tuple(self._anchor(self.unit(u, language), head) for u in units)
        return ArticleMatches(language, self._anchor(head, head), body)


def relevance_features(m: ArticleMatches) -> list[float]:
    """Lexical relevance signals (names in RELEVANCE_FEATURES)."""
    scoped = [u for u in m.body if u.in_scope]
    china_scoped = any(u.places for u in (*scoped, m.title) if u.in_scope or u is m.title)
    n_units = max(len(m.body), 1)
    return [
        float(m.title.in_scope),
        float(bool(m.title.goods)),
        math.log1p(len(scoped)),
        len(scoped) / n_units,
        float(china_scoped),
        math.log1p(len(m.terms("controls"))),
        math.log1p(len(m.terms("goods"))),
    ]


RELEVANCE_FEATURES: tuple[str, ...] = (
    "title_in_scope",
    "title_goods",
    "log_scoped_units",
    "scoped_share",
    "places_in_scope",
    "log_controls",
    "log_goods",
)


def topic_features(m: ArticleMatches, topic_id: str) -> list[float]:
    """Lexical signals that the article is about one topic (names in TOPIC_FEATURES)."""
    per_unit = [len(u.topics[topic_id]) for u in m.body]
    best = max(per_unit, default=0)
    total = len(m.topic_terms(topic_id))
    return [
        float(min(len(m.title.topics[topic_id]), 3)),
        float(min(best, 5)),
        math.log1p(total),
        sum(1 for n in per_unit if n >= 2) / max(len(per_unit), 1),
    ]


TOPIC_FEATURES: tuple[str, ...] = ("title_hits", "best_unit_hits", "log_total", "dense_share")
