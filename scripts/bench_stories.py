"""Benchmark story grouping on synthetic stored articles.

    .venv/bin/python scripts/bench_stories.py [--articles 100000] [--db PATH]

Generates events, writes one to eight reports per event in English, French or German
(ArticleRow + ClassificationRow) into a real SQLite file, loads them back through
`select_items` as the digest does, groups them with `stories.cluster`, and prints the
time of each phase, the peak RSS, and how well the stories match the generated events.
"""

from __future__ import annotations

import argparse
import random
import resource
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

import psutil
from sqlalchemy import insert

from chipwatch.digest.select import select_items
from chipwatch.digest.stories import cluster
from chipwatch.settings import DigestSettings, Recipient
from chipwatch.store.db import open_engine, session_factory
from chipwatch.store.models import ArticleRow, ClassificationRow

NOW = datetime(2025, 8, 12, 9, 0)
COMPANIES = ["Nvidia", "AMD", "Huawei", "ASML", "TSMC", "SMIC", "Intel", "Micron", "Samsung"]
FIRST = ["Ana", "Bruno", "Chen", "Dara", "Elif", "Farid", "Greta", "Hiro", "Ines", "Jonas"]
LAST = [
    f"{a}{b}"
    for a in ("Kov", "Lam", "Mor", "Nak", "Orl", "Pet", "Quin", "Ros", "Sal", "Tor")
    for b in ("ach", "ella", "ini", "ovic", "sen", "ter", "ura", "wick")
]
FILLER = {
    "en": "the officials said that export rules for chips would change after talks with "
    "partners while companies warned about revenue and licences in the coming months",
    "fr": "les responsables ont indiqué que les règles d'exportation des puces changeraient "
    "après des discussions tandis que les entreprises s'inquiètent des revenus",
    "de": "die Beamten sagten dass die Exportregeln für Chips nach Gesprächen geändert würden "
    "während Unternehmen vor Umsatzeinbußen und Lizenzen warnten",
}
HEAD = {
    "en": "{company} faces new {code} rule as {person} sets {pct}% condition",
    "fr": "{company} : nouvelle règle sur la {code}, {person} fixe une condition de {pct} %",
    "de": "{company}: neue Regel für {code}, {person} verlangt {pct} Prozent",
}


def synthesize(n: int, rng: random.Random) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    event = 0
    while len(rows) < n:
        event += 1
        facts = {
            "company": rng.choice(COMPANIES),
            "code": f"{rng.choice('ABHKMX')}{rng.randint(10, 9999)}",
            "person": f"{rng.choice(FIRST)} {rng.choice(LAST)}",
            "pct": rng.randint(2, 60),
            "amount": rng.randint(100, 99999),
        }
        start = NOW - timedelta(hours=rng.uniform(1, 24 * 6.5))
        for _ in range(min(rng.choice((1, 1, 1, 2, 2, 3, 4, 8)), n - len(rows))):
            lang = rng.choice(("en", "en", "fr", "de"))
            words = FILLER[lang].split()
            rng.shuffle(words)
            text = (
                f"{HEAD[lang].format(**facts)}. {' '.join(words[:18])} "
                f"{facts['amount']} {facts['company']} {' '.join(words[18:])}."
            )
            published = start + timedelta(hours=rng.uniform(0, 20))
            rows.append(
                {
                    "event": event,
                    "lang": lang,
                    "title": HEAD[lang].format(**facts),
                    "text": text,
                    "published": published,
                }
            )
    return rows


def store(db: Path, rows: list[dict[str, object]]) -> None:
    engine = open_engine(db)
    with engine.begin() as connection:
        connection.execute(
            insert(ArticleRow),
            [
                {
                    "id": i + 1,
                    "identity": f"bench:{i}",
                    "content_hash": f"{i:064x}",
                    "source_name": f"Outlet {i % 300}",
                    "url": f"https://bench.example/{i}",
                    "title": r["title"],
                    "text": r["text"],
                    "language": r["lang"],
                    "published_at": r["published"],
                    "fetched_at": r["published"],
                }
                for i, r in enumerate(rows)
            ],
        )
        connection.execute(
            insert(ClassificationRow),
            [
                {
                    "article_id": i + 1,
                    "relevant": True,
                    "relevance": 0.5 + (i % 50) / 100,
                    "topics": ["ai-chip-licensing"],
                    "topic_scores": {"ai-chip-licensing": 0.7},
                    "novel": False,
                    "language": r["lang"],
                    "evidence": {},
                    "model_key": "bench",
                    "classified_at": NOW,
                }
                for i, r in enumerate(rows)
            ],
        )


def quality(stories: list, events: dict[int, int]) -> tuple[float, float]:  # type: ignore[type-arg]
    """Purity: stories whose members share one event. Completeness: events in one story."""
    pure = sum(len({events[i] for i in s.article_ids}) == 1 for s in stories) / len(stories)
    per_event = Counter()  # type: Counter[int]
    for s in stories:
        for ev in {events[i] for i in s.article_ids}:
            per_event[ev] += 1
    return pure, sum(c == 1 for c in per_event.values()) / len(per_event)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=100_000)
    parser.add_argument("--db", type=Path, default=None)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    process = psutil.Process()
    with tempfile.TemporaryDirectory(prefix="cw-bench-") as tmp:
        db = args.db or Path(tmp) / "bench.sqlite3"
        t0 = time.perf_counter()
        rows = synthesize(args.articles, rng)
        store(db, rows)
        t1 = time.perf_counter()
        with session_factory(open_engine(db))() as session:
            reader = Recipient("bench@localhost", min_relevance=0.0)
            items = select_items(session, reader, DigestSettings(lookback_days=8), NOW)
        t2 = time.perf_counter()
        rss_before = process.memory_info().rss
        stories = cluster(items)
        t3 = time.perf_counter()
    events = {i + 1: int(r["event"]) for i, r in enumerate(rows)}  # type: ignore[call-overload]
    pure, complete = quality(stories, events)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"articles:        {len(items):,} ({len(set(events.values())):,} generated events)")
    print(f"generate+store:  {t1 - t0:6.1f} s")
    print(f"load (select):   {t2 - t1:6.1f} s")
    print(f"cluster:         {t3 - t2:6.1f} s -> {len(stories):,} stories")
    print(f"purity {pure:.3f}, completeness {complete:.3f}")
    print(
        f"RSS: {rss_before / 2**20:.0f} MiB before clustering, "
        f"{process.memory_info().rss / 2**20:.0f} MiB after, peak {peak:.0f} MiB"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
