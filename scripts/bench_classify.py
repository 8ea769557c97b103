"""Benchmark the classifier: model load time, articles/s on the dev set and on real feed
entries (../shared/feeds/realworld/*.xml, parsed here with feedparser), peak RSS.

Usage: .venv/bin/python scripts/bench_classify.py [--shared ../shared] [--cache DIR]
"""

from __future__ import annotations

import argparse
import html
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import feedparser

from chipwatch.classify import load_or_fit
from chipwatch.types import ClassifyInput

ROOT = Path(__file__).resolve().parents[1]
_CACHED_STARTUP = """
import sys, time
start = time.perf_counter()
from pathlib import Path
from chipwatch.classify import load_or_fit
root, cache = Path(sys.argv[1]), Path(sys.argv[2])
load_or_fit(root / "config/corpus", root / "config/topics.toml", [], cache)
print(f"{time.perf_counter() - start:.2f}")
"""
_TAGS = re.compile(r"<[^>]+>")


def _plain(value: str) -> str:
    return html.unescape(_TAGS.sub(" ", value or "")).strip()


def feed_entries(folder: Path) -> list[ClassifyInput]:
    items = []
    for path in sorted(folder.glob("*.xml")):
        parsed = feedparser.parse(path.read_bytes())
        for n, entry in enumerate(parsed.entries):
            items.append(
                ClassifyInput(
                    id=f"{path.stem}:{n}",
                    title=_plain(entry.get("title", "")),
                    text=_plain(entry.get("summary", "")),
                    url=entry.get("link"),
                )
            )
    return items


def dev_items(path: Path, *, relevant_only: bool = False) -> list[ClassifyInput]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    return [
        ClassifyInput(id=r["id"], title=r["title"], text=r["text"])
        for r in rows
        if r["relevant"] or not relevant_only
    ]


def rate(classifier, items: list[ClassifyInput]) -> tuple[float, int, float]:  # type: ignore[no-untyped-def]
    """Articles per wall-clock second, relevant count, and articles per CPU second of this
    process (all its threads): fairer than wall time on a shared machine."""
    start, cpu = time.perf_counter(), time.process_time()
    results = classifier.classify(items)
    elapsed, used = time.perf_counter() - start, time.process_time() - cpu
    return len(items) / elapsed, sum(r.relevant for r in results), len(items) / max(used, 1e-9)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    parser.add_argument("--cache", type=Path, default=None)
    args = parser.parse_args()
    cache = args.cache or Path(tempfile.mkdtemp(prefix="chipwatch-bench-"))

    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())} ({os.cpu_count()} cores)")
    start = time.perf_counter()
    load_or_fit(ROOT / "config/corpus", ROOT / "config/topics.toml", [], cache)
    print(f"start-up, fit from cold (incl. embedder load): {time.perf_counter() - start:.2f} s")
    # From cache, as a fresh `chipwatch classify` process would: the import and the
    # embedder's weights are paid again, so this runs in a child process.
    child = subprocess.run(
        [sys.executable, "-c", _CACHED_STARTUP, str(ROOT), str(cache)],
        capture_output=True,
        text=True,
        check=True,
    )
    print(f"start-up from cache (new process: imports, load, warm-up): {child.stdout.strip()} s")
    start = time.perf_counter()
    classifier = load_or_fit(ROOT / "config/corpus", ROOT / "config/topics.toml", [], cache)
    print(
        f"start-up from cache (in this process, imports done): {time.perf_counter() - start:.2f} s"
    )

    dev = args.shared / "eval/dev.jsonl"
    if dev.exists():
        # Language detection is left to the classifier, as for real input. One small
        # batch first: the embedder's first large batch pays one-time allocations.
        classifier.classify(dev_items(dev)[:20])
        per_s, hits, per_cpu = rate(classifier, dev_items(dev))
        print(f"dev set:   {per_s:8.1f} articles/s, {per_cpu:.1f}/CPU-s  ({hits} relevant)")
        per_s, hits, per_cpu = rate(classifier, dev_items(dev, relevant_only=True))
        print(
            f"dev, relevant articles only: {per_s:8.1f} articles/s, {per_cpu:.1f}/CPU-s"
            f"  ({hits} relevant)"
        )
    else:
        print(f"dev set absent at {dev}: skipped")
    feeds = args.shared / "feeds/realworld"
    if feeds.exists():
        items = feed_entries(feeds)
        per_s, hits, per_cpu = rate(classifier, items)
        print(
            f"realworld: {per_s:8.1f} articles/s, {per_cpu:.1f}/CPU-s"
            f"  ({len(items)} entries, {hits} relevant)"
        )
    else:
        print(f"feeds absent at {feeds}: skipped")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS:  {peak:8.1f} MB")


if __name__ == "__main__":
    main()
