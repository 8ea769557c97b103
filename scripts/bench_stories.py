"""Benchmark story grouping on synthetic stored articles.

    .venv/bin/python scripts/bench_stories.py [--articles 100000] [--db PATH] [--use-sample 200]

Generates events, writes one to eight reports per event in English, French or German
(ArticleRow + ClassificationRow) into a real SQLite file (in a child process, so the
figures below are the grouping's own), then groups every stored relevant article as the
watch does (`export.group_all`: batches, one open window, assignments stored), then a
day's worth of new articles incrementally on top. Prints the time of each phase, the
peak RSS, and how well the stories match the generated events.

The multilingual USE is far too slow for 100,000 texts on this machine (it is measured
on `--use-sample` texts and reported as a per-article cost: the watch embeds each article
once, when it is first grouped). The bulk run uses a stand-in embedder of the same shape
(512 dims, unit length: hashed words through a fixed random projection), so what is
timed is the grouping, the storage and the loading.
"""

from __future__ import annotations

import argparse
import multiprocessing
import random
import resource
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import psutil
from sklearn.feature_extraction.text import HashingVectorizer
from sqlalchemy import func, insert, select

from chipwatch.digest.export import group_all
from chipwatch.store.db import open_engine, session_factory
from chipwatch.store.models import ArticleRow, ClassificationRow, StoryMemberRow

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


class HashedNames:
    """Stand-in embedder: the text's codes and amounts (tokens with digits), hashed
    through a fixed random projection to 512 dims, plus noise. The generated texts share
    all their other words (one template), which would make any bag of words call every
    pair similar, unlike USE on real articles of different developments."""

    def __init__(self, dims: int = 512, buckets: int = 2**14, noise: float = 0.5) -> None:
        self.vectorizer = HashingVectorizer(
            n_features=buckets,
            alternate_sign=False,
            norm="l2",
            lowercase=False,
            token_pattern=r"\b\w*\d\w*\b",
            dtype=np.float32,  # as the projection: no float64 copy of it per batch
        )
        self.rng = np.random.default_rng(0)
        self.projection = self.rng.standard_normal((buckets, dims)).astype(np.float32)
        self.projection /= np.sqrt(dims)
        self.noise = noise

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        vectors = np.asarray(self.vectorizer.transform(list(texts)) @ self.projection)
        vectors += self.noise * self.rng.standard_normal(vectors.shape).astype(np.float32) / 22.6
        return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-9)


def quality(stories: dict[int, list[int]], events: dict[int, int]) -> tuple[float, ...]:
    """Purity: stories whose members share one event. Completeness: events in one story.
    And B-cubed precision, recall, F1 of the stories against the generated events."""
    pure = sum(len({events[i] for i in s}) == 1 for s in stories.values()) / len(stories)
    per_event: Counter[int] = Counter()
    for members in stories.values():
        for ev in {events[i] for i in members}:
            per_event[ev] += 1
    complete = sum(c == 1 for c in per_event.values()) / len(per_event)
    size: Counter[int] = Counter(events.values())
    precision = recall = 0.0
    for members in stories.values():
        counts = Counter(events[i] for i in members)
        for ev, n in counts.items():
            precision += n * n / len(members)
            recall += n * n / size[ev]
    p, r = precision / len(events), recall / len(events)
    return pure, complete, p, r, 2 * p * r / (p + r)


def _generate(db: Path, n: int, seed: int) -> None:
    """In a child process: store the articles; keep each one's event and time in .npy."""
    rows = synthesize(n, random.Random(seed))
    store(db, rows)
    np.save(db.with_suffix(".events.npy"), np.array([int(r["event"]) for r in rows]))  # type: ignore[call-overload]
    stamps = [r["published"].timestamp() for r in rows]  # type: ignore[union-attr]
    np.save(db.with_suffix(".published.npy"), np.array(stamps))


def use_cost(sample: int) -> float:
    """Seconds per article for the multilingual USE on headline + lead (600 chars)."""
    from chipwatch.digest.stories import default_embedder

    rows = synthesize(sample, random.Random(1))
    texts = [f"{r['title']}. {str(r['text'])[:600]}" for r in rows]
    embed = default_embedder()
    embed(texts[:4])  # load the weights first
    start = time.perf_counter()
    embed(texts)
    return (time.perf_counter() - start) / len(texts)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=100_000)
    parser.add_argument("--day", type=int, default=1_000, help="new articles added after")
    parser.add_argument("--db", type=Path, default=None)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--use-sample", type=int, default=200)
    args = parser.parse_args()
    process = psutil.Process()
    with tempfile.TemporaryDirectory(prefix="cw-bench-") as tmp:
        db = args.db or Path(tmp) / "bench.sqlite3"
        t0 = time.perf_counter()
        total = args.articles + args.day
        child = multiprocessing.get_context("spawn").Process(
            target=_generate, args=(db, total, args.seed)
        )
        child.start()
        child.join()
        t1 = time.perf_counter()
        event_of = np.load(db.with_suffix(".events.npy"))
        published = np.load(db.with_suffix(".published.npy"))
        events = {i + 1: int(e) for i, e in enumerate(event_of)}
        late = [int(i) + 1 for i in np.argsort(published, kind="stable")[-args.day :]]
        engine = open_engine(db)
        with engine.begin() as connection:  # the day's articles arrive later
            connection.execute(
                ClassificationRow.__table__.update()
                .where(ClassificationRow.article_id.in_(late))
                .values(relevant=False)
            )
        embed = HashedNames()
        rss_before = process.memory_info().rss
        with session_factory(engine)() as session:
            t2, c2 = time.perf_counter(), time.process_time()
            grouped = group_all(session, embed)
            t3, c3 = time.perf_counter(), time.process_time()
            peak_backlog = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            with engine.begin() as connection:
                connection.execute(
                    ClassificationRow.__table__.update()
                    .where(ClassificationRow.article_id.in_(late))
                    .values(relevant=True)
                )
            t4 = time.perf_counter()
            added = group_all(session, embed)
            t5 = time.perf_counter()
            members: dict[int, list[int]] = {}
            for article_id, story_id in session.execute(
                select(StoryMemberRow.article_id, StoryMemberRow.story_id)
            ):
                members.setdefault(story_id, []).append(article_id)
            stored = session.scalar(select(func.count()).select_from(ArticleRow))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    pure, complete, p, r, f = quality(members, events)
    per_article = use_cost(args.use_sample) if args.use_sample else float("nan")
    print(f"load average:    {' '.join(f'{x:.2f}' for x in psutil.getloadavg())}")
    print(f"stored:          {stored:,} articles ({len(set(events.values())):,} generated events)")
    print(f"generate+store:  {t1 - t0:6.1f} s (child process)")
    print(
        f"group backlog:   {t3 - t2:6.1f} s ({c3 - c2:.1f} s CPU) -> {grouped:,} articles "
        "(target <= 30 s)"
    )
    print(f"group a day:     {t5 - t4:6.2f} s -> {added:,} new articles on the stored stories")
    print(f"stories:         {len(members):,}; purity {pure:.3f}, completeness {complete:.3f}")
    print(f"B-cubed vs generated events: P {p:.3f} R {r:.3f} F1 {f:.3f}")
    print(
        f"RSS: {rss_before / 2**20:.0f} MiB before grouping, "
        f"{process.memory_info().rss / 2**20:.0f} MiB after, peak {peak:.0f} MiB (target < 500; "
        f"{peak_backlog:.0f} MiB by the end of the backlog)"
    )
    print(
        f"USE (multilingual) on this machine: {per_article * 1000:.0f} ms per article "
        f"({args.use_sample} texts), paid once per article when it is first grouped"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
