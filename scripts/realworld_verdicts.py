"""The classifier on real feed entries: which ones it lets through.

    .venv/bin/python scripts/realworld_verdicts.py [--shared ../shared] [--cache DIR]

Reads ../shared/feeds/realworld/*.xml at run time (200 feeds saved from the public web:
blogs, tech and general news, games; nearly nothing on chip export controls). Each entry
is classified twice: as the feed gives it (title + summary) and as its headline alone,
the shape of news-search feeds. Printed: how many are judged relevant and which, and
the closest ones below the bar. An entry judged relevant here is, with few exceptions,
off-subject: this is the unlabelled check on text the classifier was never tuned on
(docs/classifier.md, "Real feed entries").
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

from bench_classify import feed_entries

from chipwatch.classify import load_or_fit
from chipwatch.types import ClassifyInput

ROOT = Path(__file__).resolve().parents[1]


def report(label: str, items: list[ClassifyInput], classifier) -> None:  # type: ignore[no-untyped-def]
    results = classifier.classify(items)
    judged = sorted(zip(items, results, strict=True), key=lambda pair: -pair[1].relevance)
    relevant = [(item, r) for item, r in judged if r.relevant]
    print(f"== {label}: {len(items)} entries, {len(relevant)} judged relevant")
    for item, r in relevant:
        topics = ",".join(r.topics) or ("novel" if r.novel else "-")
        print(f"  {r.relevance:.2f} {r.language:3} {topics:28} {item.title[:90]}")
    print("  closest below the bar:")
    for item, r in [pair for pair in judged if not pair[1].relevant][:8]:
        print(f"  {r.relevance:.2f} {r.language:3} {item.title[:90]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    parser.add_argument("--cache", type=Path, default=None)
    args = parser.parse_args()
    folder = args.shared / "feeds/realworld"
    if not folder.is_dir():
        print(f"no real feeds at {folder}: nothing to check", file=sys.stderr)
        return 2
    cache = args.cache or Path(tempfile.mkdtemp(prefix="chipwatch-realworld-"))
    classifier = load_or_fit(ROOT / "config/corpus", ROOT / "config/topics.toml", [], cache)
    entries = feed_entries(folder)
    report("entries (title + summary)", entries, classifier)
    headlines = [replace(item, text="") for item in entries if item.title]
    report("headlines alone", headlines, classifier)
    return 0


if __name__ == "__main__":
    sys.exit(main())
