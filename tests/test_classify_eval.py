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


# Our own short labelled articles, for the protocols (the dev set is not needed).
OWN_ROWS = [
    (
        "a",
        "US grants Nvidia licences to sell H20 chips to China",
        "The Commerce Department "
        "approved export licences for Nvidia's H20 AI chips. Nvidia shares rose 4%.",
        True,
        ["ai-chip-licensing", "chipmaker-stakes"],
    ),
    (
        "b",
        "China curbs exports of rare earth magnets",
        "Beijing requires export licences "
        "for rare earths and magnets, a lever in talks over US chip controls.",
        True,
        ["rare-earths-leverage"],
    ),
    (
        "c",
        "Senators push bill to block AI chip sales to China",
        "Lawmakers warned that selling advanced chips to China threatens national security.",
        True,
        ["security-debate", "ai-chip-licensing"],
    ),
    (
        "d",
        "Beijing tells firms to stop buying Nvidia chips",
        "Chinese regulators urged companies to buy Huawei Ascend accelerators instead of the H20.",
        True,
        ["china-response"],
    ),
    ("e", "New gaming card launched", "Nvidia unveiled a graphics card for gamers.", False, []),
    ("f", "Soybean prices slip", "Farmers sold fewer soybeans to China this month.", False, []),
    ("g", "Chipmaker opens a new office", "The semiconductor firm hired 200 engineers.", False, []),
    ("h", "Rare earth miner expands", "A rare earth mine in Australia raised output.", False, []),
]


def _own_file(tmp_path: Path) -> Path:
    import json

    path = tmp_path / "own.jsonl"
    lines = [
        json.dumps(
            {
                "id": i,
                "title": t,
                "text": x,
                "language": "en",
                "relevant": rel,
                "topics": top,
                "novel": False,
            }
        )
        for i, t, x, rel, top in OWN_ROWS
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_inputs_are_cut_as_the_text_option_says() -> None:
    row = {"id": "x", "title": "T", "text": "y" * 1000, "relevant": False, "topics": []}
    assert as_input(row, "headline").text == ""
    assert len(as_input(row, "300").text) == 300
    assert len(as_input(row).text) == 1000


def test_eval_protocols_and_options(tmp_path: Path) -> None:
    from chipwatch.classify import load_corpus, run_eval

    path = _own_file(tmp_path)
    classifier = load_or_fit(
        ROOT / "config/corpus", ROOT / "config/topics.toml", [], tmp_path / "cache"
    )
    standard = run_eval(path, classifier, text="headline", by_lang=False)
    assert "text=headline" in standard and "en(" not in standard
    by_lang = run_eval(path, classifier, text="300", cross_validate=True, folds=2)
    assert "en(8)" in by_lang and "2-fold CV" in by_lang
    new_topic = run_eval(
        path, classifier, protocol="new-topic", corpus=load_corpus(ROOT / "config/corpus")
    )
    for topic in classifier.topics:
        assert topic.id in new_topic
    assert "pooled (micro)" in new_topic


def test_the_no_terms_protocol_judges_every_article_by_meaning_alone(tmp_path: Path) -> None:
    from chipwatch.classify import run_eval
    from chipwatch.classify.evaluate import load_rows, predict

    path = _own_file(tmp_path)
    classifier = load_or_fit(
        ROOT / "config/corpus", ROOT / "config/topics.toml", [], tmp_path / "cache"
    )
    report = run_eval(path, classifier, protocol="no-terms", by_lang=False)
    assert "protocol=no-terms" in report
    rows = load_rows(path)
    seen = predict(rows, classifier, as_language="zz")
    assert {c.language for c in seen} == {"zz"}
    verdicts = {c.id: c for c in seen}
    assert verdicts["a"].relevant and verdicts["b"].relevant  # no term list needed
    assert "rare-earths-leverage" in verdicts["b"].topics
    assert not verdicts["f"].relevant


def test_two_runs_saving_one_embedding_cache_each_leave_a_whole_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two `eval` runs on one data folder save the same cache file; the second saves while
    the first is between writing and moving its file (the interleaving that failed with a
    shared temporary name: FileNotFoundError, a traceback of the whole run)."""
    from chipwatch.classify import embed

    path = tmp_path / "cache" / "embeddings-hashing.npz"
    first = embed.CachedEmbedder(embed.HashingEmbedder(), path)
    second = embed.CachedEmbedder(embed.HashingEmbedder(), path)
    real_replace = embed.os.replace
    interleaved: list[str] = []

    def replace_after_the_other_saves(src: str, dst: object) -> None:
        if not interleaved:
            interleaved.append(src)
            second.embed(["Beijing answers with rare-earth limits."])
        real_replace(src, dst)  # type: ignore[arg-type]

    monkeypatch.setattr(embed.os, "replace", replace_after_the_other_saves)
    first.embed(["Washington bans the export of AI chips."])
    assert interleaved
    monkeypatch.setattr(embed.os, "replace", real_replace)
    again = embed.CachedEmbedder(embed.HashingEmbedder(), path)
    assert len(again._vectors) == 1  # a whole file: the last one moved in place
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary left


def test_an_embedding_cache_that_cannot_be_written_costs_only_time(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from chipwatch.classify import embed

    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder would go\n", encoding="utf-8")
    cached = embed.CachedEmbedder(embed.HashingEmbedder(), blocker / "embeddings.npz")
    texts = ["Washington bans the export of AI chips.", "Nvidia sells fewer chips in China."]
    vectors = cached.embed(texts)
    assert vectors.shape[0] == 2
    assert (vectors == embed.HashingEmbedder().embed(texts)).all()
    assert "embedding cache" in caplog.text and "not written" in caplog.text
