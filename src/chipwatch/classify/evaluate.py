"""Measure a classifier on labelled rows (dev.jsonl format) and compare with a baseline.

Metrics: relevance P/R/F1; topic micro F1 (every (article, topic) decision pooled) and
macro F1 (mean of per-topic F1); novel P/R/F1; each overall and per language. A topic's
predictions count only on articles predicted relevant, as the digest would show them.
Convention: an F1 with neither gold nor predicted positives is undefined (shown "-") and
left out of macro averages.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from sklearn.model_selection import StratifiedKFold

from chipwatch.classify.model import ClassifierParams, FittedClassifier
from chipwatch.classify.text import optional_str
from chipwatch.classify.tune import tune_params
from chipwatch.errors import ClassifierError
from chipwatch.types import Classification, ClassifyInput, Evidence

Row = Mapping[str, object]


@dataclass(frozen=True)
class PRF:
    tp: int
    fp: int
    fn: int

    @property
    def precision(self) -> float | None:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else None

    @property
    def recall(self) -> float | None:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else None

    @property
    def f1(self) -> float | None:
        denominator = 2 * self.tp + self.fp + self.fn
        return 2 * self.tp / denominator if denominator else None


def _prf(gold: Sequence[bool], pred: Sequence[bool]) -> PRF:
    pairs = list(zip(gold, pred, strict=True))
    return PRF(
        tp=sum(g and p for g, p in pairs),
        fp=sum(p and not g for g, p in pairs),
        fn=sum(g and not p for g, p in pairs),
    )


@dataclass(frozen=True)
class Scores:
    """Metrics over one set of rows (all, or one language)."""

    n: int
    relevance: PRF
    topic_micro: PRF
    topic_macro_f1: float | None
    per_topic: Mapping[str, PRF]
    novel: PRF


@dataclass(frozen=True)
class Report:
    overall: Scores
    by_language: Mapping[str, Scores] = field(default_factory=dict)
    name: str = "classifier"


def _scores(
    rows: Sequence[Row], preds: Sequence[Classification], topic_ids: Sequence[str]
) -> Scores:
    per_topic = {
        t: _prf(
            [t in r["topics"] for r in rows],  # type: ignore[operator]
            [p.relevant and t in p.topics for p in preds],
        )
        for t in topic_ids
    }
    micro = PRF(*(sum(getattr(s, k) for s in per_topic.values()) for k in ("tp", "fp", "fn")))
    defined = [s.f1 for s in per_topic.values() if s.f1 is not None]
    return Scores(
        n=len(rows),
        relevance=_prf([bool(r["relevant"]) for r in rows], [p.relevant for p in preds]),
        topic_micro=micro,
        topic_macro_f1=float(np.mean(defined)) if defined else None,
        per_topic=per_topic,
        novel=_prf([bool(r["novel"]) for r in rows], [p.novel for p in preds]),
    )


def evaluate(
    rows: Sequence[Row],
    predictions: Sequence[Classification],
    topic_ids: Sequence[str] | None = None,
    name: str = "classifier",
) -> Report:
    """Compare predictions (same order or matched by id) with the labelled rows."""
    by_id = {p.id: p for p in predictions}
    try:
        preds = [by_id[str(r["id"])] for r in rows]
    except KeyError as exc:
        raise ClassifierError(f"no prediction for row id {exc}") from exc
    if topic_ids is None:
        topic_ids = sorted({t for r in rows for t in r["topics"]})  # type: ignore[attr-defined]
    languages = sorted({str(r.get("language") or "und") for r in rows})
    by_language = {}
    for lang in languages:
        idx = [i for i, r in enumerate(rows) if str(r.get("language") or "und") == lang]
        by_language[lang] = _scores([rows[i] for i in idx], [preds[i] for i in idx], topic_ids)
    return Report(_scores(rows, preds, topic_ids), by_language, name)


# ---------- rendering ----------
def _fmt(value: float | None) -> str:
    return "    -" if value is None else f"{value:5.3f}"


def _lines(scores: Scores) -> list[tuple[str, float | None]]:
    out: list[tuple[str, float | None]] = [
        ("relevance P", scores.relevance.precision),
        ("relevance R", scores.relevance.recall),
        ("relevance F1", scores.relevance.f1),
        ("topic micro F1", scores.topic_micro.f1),
        ("topic macro F1", scores.topic_macro_f1),
    ]
    out += [(f"  {t} F1", s.f1) for t, s in scores.per_topic.items()]
    out += [
        ("novel P", scores.novel.precision),
        ("novel R", scores.novel.recall),
        ("novel F1", scores.novel.f1),
    ]
    return out


def render_report(report: Report, baseline: Report | None = None) -> str:
    """Plain-text table: one column per language; a baseline's table below, not beside
    (side by side they made 200 columns)."""
    tables = [_table(report)]
    if baseline is not None:
        tables.append(_table(baseline))
    return "\n\n".join(tables)


def _table(report: Report) -> str:
    columns: list[tuple[str, Scores]] = [("all", report.overall)]
    columns += list(report.by_language.items())
    headers = [f"{name}({s.n})" for name, s in columns]
    labels = _lines(report.overall)
    width = max(len(label) for label, _ in labels) + 2
    cell = max(8, *(len(h) + 2 for h in headers))
    lines = [report.name.ljust(width) + "".join(h.rjust(cell) for h in headers)]
    values = [_lines(s) for _, s in columns]
    for i, (label, _) in enumerate(labels):
        lines.append(label.ljust(width) + "".join(_fmt(v[i][1]).rjust(cell) for v in values))
    return "\n".join(lines)


# ---------- keyword baseline ----------
# What a Google Alerts user would type: an English + French query for the subject
# ((control words) AND (goods words)) and one OR-list per topic. Whole-word match on
# lower-cased text ("ban" is not "bank"), a trailing "*" allowed as in a search box.
_BASELINE_SUBJECT = (
    (
        "export control*",
        "export ban*",
        "export restriction*",
        "export curb*",
        "export licen*",
        "ban",
        "banned",
        "bans",
        "restrict*",
        "curb*",
        "sanction*",
        "embargo",
        "blacklist*",
        "contrôle* des exportations",
        "restriction*",
        "interdi*",
        "licence*",
        "embargo",
    ),
    (
        "chip*",
        "semiconductor*",
        "nvidia",
        "gpu*",
        "rare earth*",
        "gallium",
        "germanium",
        "lithography",
        "asml",
        "puce*",
        "semi-conducteur*",
        "semiconducteur*",
        "terres rares",
    ),
)
_BASELINE_TOPICS = {
    "ai-chip-licensing": ("h20", "h200", "mi308", "export licen*", "licen*", "licence*"),
    "rare-earths-leverage": (
        "rare earth*",
        "terres rares",
        "gallium",
        "germanium",
        "magnet*",
        "aimant*",
    ),
    "security-debate": (
        "national security",
        "sécurité nationale",
        "lawmaker*",
        "congress",
        "senat*",
        "sénat*",
        "hawk*",
    ),
    "chipmaker-stakes": (
        "revenue",
        "shares",
        "chiffre d'affaires",
        "earnings",
        "market share",
        "part de marché",
    ),
    "china-response": ("huawei", "beijing", "pékin", "deepseek", "antitrust"),
}


def _query(words: Sequence[str]) -> re.Pattern[str]:
    parts = [re.escape(w.rstrip("*")) + (r"\w*" if w.endswith("*") else "") for w in words]
    return re.compile(r"\b(?:" + "|".join(parts) + r")\b")


class KeywordBaseline:
    """Keyword-query classifier for side-by-side comparison (`--baseline keywords`)."""

    name = "keywords"

    def __init__(self) -> None:
        self._subject = [_query(group) for group in _BASELINE_SUBJECT]
        self._topics = {t: _query(words) for t, words in _BASELINE_TOPICS.items()}

    def classify(self, items: Sequence[ClassifyInput]) -> list[Classification]:
        return [self._one(item) for item in items]

    def _one(self, item: ClassifyInput) -> Classification:
        text = f"{item.title}\n{item.text}".lower()
        relevant = all(q.search(text) for q in self._subject)
        topics = tuple(t for t, q in self._topics.items() if relevant and q.search(text))
        return Classification(
            id=item.id,
            relevant=relevant,
            relevance=1.0 if relevant else 0.0,
            topics=topics,
            topic_scores={t: float(t in topics) for t in self._topics},
            novel=relevant and not topics,
            language=item.language or "und",
            evidence=Evidence(matched_terms={}, summary="keyword query"),
        )


def baseline_keywords() -> KeywordBaseline:
    return KeywordBaseline()


# ---------- data and cross-validation ----------
def load_rows(path: Path) -> list[dict[str, object]]:
    """Labelled rows of a dev.jsonl-format file; errors name the line."""
    rows = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ClassifierError(f"{path}:{number}: invalid JSON: {exc.msg}") from exc
            for key in ("id", "title", "text", "relevant", "topics", "novel"):
                if not isinstance(row, dict) or key not in row:
                    raise ClassifierError(f"{path}:{number}: missing field {key!r}")
            rows.append(row)
    return rows


def as_input(row: Row) -> ClassifyInput:
    return ClassifyInput(
        id=str(row["id"]),
        title=str(row.get("title") or ""),
        text=str(row.get("text") or ""),
        url=optional_str(row.get("url")),
        published=optional_str(row.get("published")),
        language=optional_str(row.get("language")),
    )


def with_params(classifier: FittedClassifier, params: ClassifierParams) -> FittedClassifier:
    """The same fitted corpus and labels with other weights (no re-embedding)."""
    clone = replace(classifier, params=params)
    clone._embedder = classifier._embedder
    return clone


def cross_validate(
    rows: Sequence[Row], classifier: FittedClassifier, folds: int = 5, seed: int = 0
) -> list[Classification]:
    """Tune the weights on k-1 folds, classify the held-out fold; predictions in row order."""
    strata = [f"{r['relevant']}-{r['novel']}-{r.get('language')}" for r in rows]
    counts = {s: strata.count(s) for s in strata}
    # Strata smaller than the fold count fall back to their relevance class.
    strata = [
        s if counts[s] >= folds else str(r["relevant"]) for s, r in zip(strata, rows, strict=True)
    ]
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    predictions: list[Classification | None] = [None] * len(rows)
    for train, test in splitter.split(np.zeros(len(rows)), strata):
        params = tune_params(
            [rows[i] for i in train], classifier.topics, classifier.scope, base=classifier.params
        )
        fold_model = with_params(classifier, params)
        for i, pred in zip(
            test, fold_model.classify([as_input(rows[i]) for i in test]), strict=True
        ):
            predictions[i] = pred
    return [p for p in predictions if p is not None]
