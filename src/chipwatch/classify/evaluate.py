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

from chipwatch.classify.model import ClassifierParams, FittedClassifier, _Draft
from chipwatch.classify.text import optional_str
from chipwatch.classify.tune import tune_params
from chipwatch.errors import ClassifierError
from chipwatch.types import UNDETERMINED, Classification, ClassifyInput, Evidence, TextKind

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
    languages = sorted({str(r.get("language") or UNDETERMINED) for r in rows})
    by_language = {}
    for lang in languages:
        idx = [i for i, r in enumerate(rows) if str(r.get("language") or UNDETERMINED) == lang]
        by_language[lang] = _scores([rows[i] for i in idx], [preds[i] for i in idx], topic_ids)
    return Report(_scores(rows, preds, topic_ids), by_language, name)


# ---------- rendering ----------
def fmt(value: float | None) -> str:
    return "    -" if value is None else f"{value:5.3f}"


def _mean_prf(values: Sequence[PRF]) -> PRF:
    """Counts summed over repeated runs: the F1 of the pooled decisions."""
    return PRF(*(sum(getattr(v, k) for v in values) for k in ("tp", "fp", "fn")))


def _mean_scores(items: Sequence[Scores]) -> Scores:
    macros = [s.topic_macro_f1 for s in items if s.topic_macro_f1 is not None]
    return Scores(
        n=items[0].n,
        relevance=_mean_prf([s.relevance for s in items]),
        topic_micro=_mean_prf([s.topic_micro for s in items]),
        topic_macro_f1=float(np.mean(macros)) if macros else None,
        per_topic={t: _mean_prf([s.per_topic[t] for s in items]) for t in items[0].per_topic},
        novel=_mean_prf([s.novel for s in items]),
    )


def mean_report(reports: Sequence[Report], name: str) -> Report:
    """Several runs (CV shuffles) as one report, decisions pooled."""
    langs = reports[0].by_language
    return Report(
        _mean_scores([r.overall for r in reports]),
        {k: _mean_scores([r.by_language[k] for r in reports]) for k in langs},
        name,
    )


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


def render_report(report: Report, baseline: Report | None = None, *, by_lang: bool = True) -> str:
    """Plain-text table: one column for all rows, then (by_lang) one per language; a
    baseline's table below, not beside (side by side they made 200 columns)."""
    tables = [_table(report, by_lang)]
    if baseline is not None:
        tables.append(_table(baseline, by_lang))
    return "\n\n".join(tables)


def _table(report: Report, by_lang: bool = True) -> str:
    columns: list[tuple[str, Scores]] = [("all", report.overall)]
    if by_lang:
        columns += list(report.by_language.items())
    headers = [f"{name}({s.n})" for name, s in columns]
    labels = _lines(report.overall)
    width = max(len(label) for label, _ in labels) + 2
    cell = max(8, *(len(h) + 2 for h in headers))
    lines = [report.name.ljust(width) + "".join(h.rjust(cell) for h in headers)]
    values = [_lines(s) for _, s in columns]
    for i, (label, _) in enumerate(labels):
        lines.append(label.ljust(width) + "".join(fmt(v[i][1]).rjust(cell) for v in values))
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
            language=item.language or UNDETERMINED,
            evidence=Evidence(matched_terms={}, summary="keyword query"),
        )


def baseline_keywords() -> KeywordBaseline:
    return KeywordBaseline()


# ---------- data and cross-validation ----------
def load_rows(path: Path) -> list[dict[str, object]]:
    """Labelled rows of a dev.jsonl-format file; errors name the line."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ClassifierError(f"{path}: cannot read: {exc}") from exc
    rows = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ClassifierError(f"{path}:{number}: invalid JSON: {exc.msg}") from exc
        problem = _row_problem(row)
        if problem:
            raise ClassifierError(f"{path}:{number}: {problem}")
        rows.append(row)
    return rows


def check_folds(path: Path, rows: Sequence[Row], folds: int) -> None:
    """Cross-validation needs `folds` rows of each relevance class, so that every fold is
    tuned and scored on both (sklearn's ValueError named neither the file nor the need)."""
    relevant = sum(1 for r in rows if r["relevant"])
    counts = {"relevant": relevant, "not relevant": len(rows) - relevant}
    short = [name for name, count in counts.items() if count < folds]
    if short:
        raise ClassifierError(
            f"{path}: {folds}-fold cross-validation needs at least {folds} relevant and "
            f"{folds} not relevant labelled rows; the file has {relevant} relevant and "
            f"{len(rows) - relevant} not relevant"
        )


_ROW_TYPES: dict[str, tuple[type, ...]] = {
    "id": (str, int),
    "title": (str,),
    "text": (str,),
    "relevant": (bool,),
    "topics": (list,),
    "novel": (bool,),
}


def _row_problem(row: object) -> str:
    """What is wrong with one labelled row, or "" (a JSON object with the six fields)."""
    if not isinstance(row, dict):
        return "expected a JSON object"
    for key, types in _ROW_TYPES.items():
        if key not in row:
            return f"missing field {key!r}"
        if not isinstance(row[key], types) or (bool in types) != isinstance(row[key], bool):
            return f"field {key!r}: expected {' or '.join(t.__name__ for t in types)}"
    if not all(isinstance(topic, str) for topic in row["topics"]):
        return "field 'topics': expected a list of topic ids"
    return ""


def as_input(row: Row, text: str = "full", kind: TextKind | None = None) -> ClassifyInput:
    """A labelled row as classifier input, cut as `text` says: "full" (as labelled),
    "headline" (the title alone, as news-search feeds give it) or a number of characters
    of the text after the title ("300": a short summary)."""
    body = str(row.get("text") or "")
    if text == "headline":
        body = ""
    elif text != "full":
        body = body[: int(text)]
    return ClassifyInput(
        id=str(row["id"]),
        title=str(row.get("title") or ""),
        text=body,
        url=optional_str(row.get("url")),
        published=optional_str(row.get("published")),
        language=optional_str(row.get("language")),
        text_kind=kind,
    )


def check_text_mode(text: str) -> str:
    if text in ("full", "headline") or (text.isdigit() and int(text) > 0):
        return text
    raise ClassifierError(f"--text must be full, headline or a number of characters, not {text!r}")


# How the dev set is cut to tune each kind's weights: each kind learns from inputs of
# its own shape.
TUNING_CUTS: dict[TextKind, str] = {
    TextKind.HEADLINE: "headline",
    TextKind.SUMMARY: "300",
    TextKind.FULL: "full",
}


def _tuning_drafts(
    rows: Sequence[Row], classifier: FittedClassifier
) -> dict[TextKind, list[_Draft]]:
    return {
        kind: classifier.prepare([as_input(r, cut, kind) for r in rows], gate=False)
        for kind, cut in TUNING_CUTS.items()
    }


def _tune_on(
    indices: Sequence[int],
    rows: Sequence[Row],
    drafts: Mapping[TextKind, Sequence[_Draft]],
    classifier: FittedClassifier,
    hidden: frozenset[str],
) -> ClassifierParams:
    by_kind = {}
    for kind, kind_drafts in drafts.items():
        keep = [i for i in indices if kind_drafts[i].signals is not None]
        by_kind[kind] = (
            [kind_drafts[i].signals for i in keep],
            [rows[i] for i in keep],
        )
    topic_ids = [t.id for t in classifier.topics]
    return tune_params(by_kind, topic_ids, classifier.params, hidden=hidden)  # type: ignore[arg-type]


def tune_on_rows(rows: Sequence[Row], classifier: FittedClassifier) -> ClassifierParams:
    """Shared weights tuned on every row (what ships in weights.json)."""
    return _tune_on(
        range(len(rows)), rows, _tuning_drafts(rows, classifier), classifier, frozenset()
    )


def predict(
    rows: Sequence[Row],
    classifier: FittedClassifier,
    *,
    text: str = "full",
    cross_validate: bool = False,
    folds: int = 5,
    seed: int = 0,
    hidden: frozenset[str] = frozenset(),
    as_language: str | None = None,
) -> list[Classification]:
    """Predictions in row order for inputs cut as `text` (and, with `as_language`, said
    to be in that language: a language without term lists judges by meaning alone).

    With `cross_validate`, the shared weights are re-tuned on k-1 folds (stratified by
    relevance, novelty and language) and the held-out fold is scored; without, the
    classifier's own weights are used, unless topics are `hidden` (then they are tuned
    on all rows without those topics' labels).
    """
    inputs = [as_input(r, text) for r in rows]
    if as_language is not None:
        inputs = [replace(item, language=as_language) for item in inputs]
    drafts = classifier.prepare(inputs)
    if not cross_validate and not hidden:
        for draft in drafts:
            classifier.decide(draft, classifier.params)
        return _build(classifier, drafts)
    tuning = _tuning_drafts(rows, classifier)
    if not cross_validate:
        params = _tune_on(range(len(rows)), rows, tuning, classifier, hidden)
        for draft in drafts:
            classifier.decide(draft, params)
        return _build(classifier, drafts)
    from sklearn.model_selection import StratifiedKFold  # ~1 s of import: only here

    strata = [f"{r['relevant']}-{r['novel']}-{r.get('language')}" for r in rows]
    counts = {s: strata.count(s) for s in strata}
    # Strata smaller than the fold count fall back to their relevance class.
    strata = [
        s if counts[s] >= folds else str(r["relevant"]) for s, r in zip(strata, rows, strict=True)
    ]
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for train, test in splitter.split(np.zeros(len(rows)), strata):
        params = _tune_on(list(train), rows, tuning, classifier, hidden)
        for i in test:
            classifier.decide(drafts[i], params)
    return _build(classifier, drafts)


def _build(classifier: FittedClassifier, drafts: Sequence[_Draft]) -> list[Classification]:
    classifier._attach_passages(drafts)
    return [d.build() for d in drafts]
