"""The maintainers' busy-week protocol on the labelled dev set, end to end.

    .venv/bin/python scripts/digest_week.py [--eval-dir ../shared/eval] [--days 6] [--seed 0]
        [--data-dir DIR] [--max-items N] [--screenshot PNG]

Every dev article (relevant or not) becomes an item of one RSS feed served on 127.0.0.1,
published at a random time within the last `--days` days (dev articles mostly carry no
date). The watch then runs as a user runs it: a first poll with classification, the
digest delivered into a Maildir, the stories exported. Printed:

- how many relevant articles the watch judged relevant and how many off-subject ones it let in;
- the share of relevant articles whose headline a reader can see in the delivered digest
  (as a lead or under one), and the share of labelled events with at least one visible
  headline (issue 13's "what the reader sees": goals 80 % and 95 %);
- B-cubed precision / recall / F1 of the exported stories against `dev_events.jsonl`, over
  the labelled relevant articles (one the watch did not store as relevant counts as a
  story of its own).

The classifier's weights and the story model were tuned on this same dev set, so these
figures are in-sample for them: what the script measures honestly is the path between
(selection, the per-topic cap, rendering, the export). Dev text is read at run time and
never written into the project.
"""

from __future__ import annotations

import argparse
import html
import json
import random
import re
import sys
import tempfile
import threading
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import ThreadingHTTPServer
from pathlib import Path

from chipwatch import pipeline
from chipwatch.demo.run import screenshot
from chipwatch.demo.samples import SampleItem
from chipwatch.demo.server import _FeedHandler, rss  # the demo's loopback handler
from chipwatch.settings import (
    Settings,
    SmtpSettings,
    SourceConfig,
    load_settings,
    with_overrides,
)

EVAL = Path(__file__).resolve().parents[2] / "shared" / "eval"


def read_jsonl(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def feed_items(rows: Sequence[dict[str, object]], days: int, seed: int) -> list[SampleItem]:
    rng = random.Random(seed)
    now = datetime.now(UTC).replace(microsecond=0)
    items = []
    for row in rows:
        when = now - timedelta(seconds=rng.uniform(3600, days * 86400))
        items.append(
            SampleItem(
                slug=str(row["id"]),
                title=str(row["title"]),
                text=str(row["text"]),
                published=when.isoformat().replace("+00:00", "Z"),
                relevant=bool(row["relevant"]),
            )
        )
    return items


def week_settings(data_dir: Path, feed_url: str, days: int, max_items: int | None) -> Settings:
    base = load_settings(None, data_dir)
    source = SourceConfig(url=feed_url, name="Busy week (dev)", article_text="feed")
    settings = replace(base, sources=(source,), smtp=SmtpSettings(), recipients=())
    digest: dict[str, object] = {"lookback_days": days + 2}
    if max_items is not None:
        digest["max_items_per_topic"] = max_items
    return with_overrides(
        settings,
        fetch={"allow_private_networks": True},
        poll={"first_poll_backfill_hours": (days + 2) * 24},
        digest=digest,
    )


def delivered_text(settings: Settings) -> str:
    messages = sorted(settings.maildir_path.glob("new/*")) + sorted(
        settings.maildir_path.glob("cur/*")
    )
    if not messages:
        return ""
    message = message_from_bytes(messages[-1].read_bytes(), policy=policy.default)
    assert isinstance(message, EmailMessage)
    body = message.get_body(preferencelist=("html",))
    page = str(body.get_content()) if body is not None else ""
    return normalise(html.unescape(re.sub(r"<[^>]+>", " ", page)))


def normalise(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().casefold()


def bcubed(stories: dict[str, int], gold: dict[str, str]) -> tuple[float, float, float]:
    ids = sorted(gold)
    by_story: dict[int, set[str]] = defaultdict(set)
    by_event: dict[str, set[str]] = defaultdict(set)
    for article in ids:
        by_story[stories[article]].add(article)
        by_event[gold[article]].add(article)
    precision = recall = 0.0
    for article in ids:
        mine, truth = by_story[stories[article]], by_event[gold[article]]
        both = len(mine & truth)
        precision += both / len(mine)
        recall += both / len(truth)
    p, r = precision / len(ids), recall / len(ids)
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def exported_stories(settings: Settings, slugs: dict[str, str]) -> dict[str, int]:
    from chipwatch.digest.export import export_stories

    sessions = pipeline.open_sessions(settings)
    with sessions() as session:
        stories = export_stories(session)
    assigned: dict[str, int] = {}
    for story in stories:
        for article in story["articles"]:
            slug = slugs.get(str(article["url"]))
            if slug is not None:
                assigned[slug] = int(story["id"])
    return assigned


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--eval-dir", type=Path, default=EVAL)
    parser.add_argument("--days", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--max-items", type=int, default=None, help="[digest].max_items_per_topic")
    parser.add_argument("--screenshot", type=Path, default=None, help="the digest page as PNG")
    args = parser.parse_args()
    rows = read_jsonl(args.eval_dir / "dev.jsonl")
    gold = {str(r["id"]): str(r["event"]) for r in read_jsonl(args.eval_dir / "dev_events.jsonl")}
    items = feed_items(rows, args.days, args.seed)
    with tempfile.TemporaryDirectory() as scratch:
        data_dir = (args.data_dir or Path(scratch)).resolve()
        data_dir.mkdir(parents=True, exist_ok=True)
        return run(items, gold, data_dir, args.days, args.max_items, args.screenshot)


def run(
    items: list[SampleItem],
    gold: dict[str, str],
    data_dir: Path,
    days: int,
    max_items: int | None,
    picture: Path | None,
) -> int:
    documents: dict[str, bytes] = {}
    handler = type("WeekHandler", (_FeedHandler,), {"documents": documents})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    base_url = f"http://127.0.0.1:{server.server_address[1]}"
    documents["/week.xml"] = rss("Busy week (dev)", base_url, items)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        settings = week_settings(data_dir, base_url + "/week.xml", days, max_items)
        print(pipeline.poll_and_classify(settings, all_feeds=True, classify=True))
    finally:
        server.shutdown()
        server.server_close()
    if picture is not None:
        page = pipeline.preview_digest(settings, data_dir / "digest-preview.html", None)
        print(f"screenshot: {screenshot(page, picture)}")
    print(pipeline.build_and_send_digests(settings, send=True, only=None))
    text = delivered_text(settings)
    slugs = {f"{base_url}/articles/{item.slug}": item.slug for item in items}
    stories = exported_stories(settings, slugs)
    report(items, gold, text, stories)
    return 0


def report(
    items: list[SampleItem], gold: dict[str, str], text: str, stories: dict[str, int]
) -> None:
    relevant = [item for item in items if item.relevant]
    judged = [item for item in relevant if item.slug in stories]
    intruders = [item for item in items if not item.relevant and item.slug in stories]
    visible = {item.slug for item in relevant if normalise(item.title) in text}
    events: dict[str, list[str]] = defaultdict(list)
    for slug, event in gold.items():
        events[event].append(slug)
    seen_events = [e for e, members in events.items() if any(m in visible for m in members)]
    print(f"relevant articles judged relevant: {len(judged)} of {len(relevant)}")
    print(f"off-subject articles judged relevant: {len(intruders)}")
    print(
        f"relevant headlines visible in the digest: {len(visible)} of {len(relevant)} "
        f"({len(visible) / len(relevant):.0%}; goal 80 %)"
    )
    print(
        f"events with a visible headline: {len(seen_events)} of {len(events)} "
        f"({len(seen_events) / len(events):.0%}; goal 95 %)"
    )
    singles = {slug: stories.get(slug, -1 - i) for i, slug in enumerate(sorted(gold))}
    p, r, f = bcubed(singles, gold)
    print(f"stories B-cubed over the labelled events: P {p:.3f} R {r:.3f} F1 {f:.3f}")
    for item in relevant:
        if item.slug not in visible:
            where = "not stored as relevant" if item.slug not in stories else "not shown"
            print(f"  hidden ({where}): {item.slug} {item.title[:80]}")


if __name__ == "__main__":
    sys.exit(main())
