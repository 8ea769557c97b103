"""Evaluation metrics on a hand-made example, and the dev-set check against the baseline."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from chipwatch.classify import load_or_fit
from chipwatch.classify.evaluate import (
    as_input,
    baseline_keywords,
    evaluate,
    load_rows,
    render_report,
)
from chipwatch.types import Classification, Evidence

ROOT = Path(__file__).resolve().parents[1]
DEV = Path(__file__).resolve().parents[2] / "shared" / "eval" / "dev.jsonl"


def _pred(id_: str, relevant: bool, topics: tuple[str, ...]) -> Classification:
    return Classification(
        id=id_,
        relevant=relevant,
        relevance=float(relevant),
        topics=topics,
        topic_scores={},
        novel=relevant and not topics,
        language="en",
        evidence=Evidence(matched_terms={}),
    )


def _row(id_: str, lang: str, relevant: bool, topics: list[str], novel: bool = False) -> dict:
    return {"id": id_, "language": lang, "relevant": relevant, "topics": topics, "novel": novel}


def test_metrics_on_a_hand_made_example() -> None:
    rows = [
        _row("a", "en", True, ["x", "y"]),
        _row("b", "en", True, [], novel=True),
        _row("c", "fr", False, []),
        _row("d", "fr", True, ["y"]),
    ]
    preds = [
        _pred("a", True, ("x",)),  # x: TP; y: FN
        _pred("b", True, ()),  # novel: TP
        _pred("c", True, ("y",)),  # relevance FP; y: FP
        _pred("d", False, ()),  # relevance FN; y: FN
    ]
    report = evaluate(rows, preds, ["x", "y"])
    overall = report.overall
    # relevance: TP a,b; FP c; FN d -> P = R = 2/3, F1 = 2/3
    assert overall.relevance.precision == pytest.approx(2 / 3)
    assert overall.relevance.recall == pytest.approx(2 / 3)
    assert overall.relevance.f1 == pytest.approx(2 / 3)
    # topics: x TP=1; y TP=0, FP=1, FN=2 -> micro TP=1, FP=1, FN=2: F1 = 2/(2+1+2) = 0.4
    assert overall.topic_micro.f1 == pytest.approx(0.4)
    # macro: F1(x) = 1, F1(y) = 0 -> 0.5
    assert overall.topic_macro_f1 == pytest.approx(0.5)
    # novel: gold {b}, predicted {b} -> 1.0
    assert overall.novel.f1 == pytest.approx(1.0)
    # per language: French relevance has FP c and FN d, no TP -> F1 0
    assert report.by_language["fr"].relevance.f1 == pytest.approx(0.0)
    assert report.by_language["en"].relevance.f1 == pytest.approx(1.0)
    # French has no novel article, gold or predicted: undefined, rendered "-"
    assert report.by_language["fr"].novel.f1 is None
    table = render_report(report)
    assert "relevance F1" in table and "fr(2)" in table
    # With a baseline, its table goes below: still within 100 columns.
    both = render_report(report, replace(report, name="keywords"))
    assert both.count("relevance F1") == 2
    assert max(len(line) for line in both.splitlines()) <= 100


@pytest.mark.skipif(not DEV.exists(), reason=f"dev set absent at {DEV} (shared/eval not here)")
def test_dev_relevance_beats_the_keyword_baseline(tmp_path: Path) -> None:
    rows = load_rows(DEV)
    items = [as_input(r) for r in rows]
    classifier = load_or_fit(
        ROOT / "config/corpus", ROOT / "config/topics.toml", [], tmp_path / "cache"
    )
    ours = evaluate(rows, classifier.classify(items)).overall.relevance.f1
    theirs = evaluate(rows, baseline_keywords().classify(items)).overall.relevance.f1
    assert ours is not None and theirs is not None
    assert ours > theirs
