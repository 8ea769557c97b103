"""What the administrative commands do: feeds, corpus, topics, outbox listings.

`pipeline.py` holds the watch's stages; this module holds the bodies of the commands
that inspect or change its inputs, so `cli.py` keeps to parsing arguments.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from sqlalchemy import select

from chipwatch.errors import NotFound
from chipwatch.pipeline import as_input, open_sessions, sync_config_sources
from chipwatch.settings import Settings
from chipwatch.store.models import ArticleRow, ClassificationRow


def outbox_table(settings: Settings) -> str:
    from chipwatch.digest import list_outbox

    sessions = open_sessions(settings)
    with sessions() as session:
        entries = list_outbox(session)
    if not entries:
        return "the outbox is empty"
    rows: list[tuple[str, ...]] = [
        ("id", "kind", "status", "tries", "recipient", "created", "subject / last error")
    ]
    for e in entries:
        note = e.subject if not e.last_error else f"{e.subject} | {e.last_error}"
        rows.append(
            (
                str(e.id),
                e.kind,
                e.status,
                str(e.attempts),
                e.recipient,
                f"{e.created_at:%Y-%m-%d %H:%M}",
                note[:90],
            )
        )
    return format_table(rows)


def format_table(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False))
        + "  "
        + row[-1]
        for row in rows
    )


# --- feeds -------------------------------------------------------------------------------


def add_feed(settings: Settings, url: str, name: str, full_text: bool) -> str:
    import asyncio

    from chipwatch.collect import discover_feed_url
    from chipwatch.store.sources import add_source

    feed_url = asyncio.run(discover_feed_url(url, settings.fetch))
    sessions = open_sessions(settings)
    with sessions.begin() as session:
        row, created = add_source(session, feed_url, name, "", full_text)
        row_id = row.id
    found = f" (found from {url})" if feed_url != url else ""
    return f"{'added' if created else 'updated'} feed {row_id}: {feed_url}{found}"


def remove_feed(settings: Settings, key: str) -> str:
    from chipwatch.store.sources import remove_source

    with open_sessions(settings).begin() as session:
        if not remove_source(session, key):
            raise NotFound(f"no feed {key!r}")
    return f"removed feed {key}"


def feeds_table(settings: Settings, *, health: bool) -> str:
    from chipwatch.store.sources import feed_health

    sessions = open_sessions(settings)
    sync_config_sources(settings, sessions)
    with sessions() as session:
        feeds = feed_health(session)
    if not feeds:
        return "no feeds: add one with `chipwatch feeds add URL`"
    if not health:
        listing = [("id", "state", "name / url")]
        listing += [(str(f.id), "on" if f.enabled else "off", f"{f.name}  {f.url}") for f in feeds]
        return format_table(listing)
    rows = [("id", "state", "errors", "last ok", "next check", "name / last error")]
    for f in feeds:
        state = (
            "ok"
            if f.enabled and not f.consecutive_errors
            else ("failing" if f.enabled else "disabled")
        )
        note = f.name or f.url
        if f.last_error:
            note += f" | {f.disabled_reason or f.last_error}"
        rows.append(
            (
                str(f.id),
                state,
                str(f.consecutive_errors),
                _when(f.last_success_at),
                _when(f.next_check_at),
                note[:100],
            )
        )
    return format_table(rows)


def _when(moment: datetime | None) -> str:
    return f"{moment:%Y-%m-%d %H:%M}" if moment else "-"


def import_opml(settings: Settings, path: Path) -> str:
    from chipwatch.opml import read_opml
    from chipwatch.store.sources import sync_sources

    configs = read_opml(path)
    with open_sessions(settings).begin() as session:
        report = sync_sources(session, configs)
    return (
        f"imported {len(report.added)} new feeds, updated {len(report.updated)}, "
        f"{report.unchanged} unchanged"
    )


def export_opml(settings: Settings) -> str:
    from chipwatch.opml import write_opml
    from chipwatch.store.sources import list_sources, to_config

    sessions = open_sessions(settings)
    sync_config_sources(settings, sessions)
    with sessions() as session:
        return write_opml([to_config(row) for row in list_sources(session)])


# --- corpus and topics -------------------------------------------------------------------


def add_corpus_document(
    settings: Settings, source: str, topics: Sequence[str], language: str
) -> str:
    """Add a file, or the main text of a web page, to the user's copy of the corpus.

    Never into the packaged defaults or a checkout's tracked config/: `writable_copy`
    gives (and on first use makes) the user's copy. Unknown topic ids are refused
    before anything is fetched or written, with the valid ids."""
    from chipwatch.classify.corpus import add_document
    from chipwatch.classify.topics import load_topics
    from chipwatch.errors import UsageError
    from chipwatch.settings import writable_copy

    known = [t.id for t in load_topics(settings.topics_path)]
    unknown = [t for t in topics if t not in known]
    if unknown or not topics:
        given = ", ".join(unknown) if unknown else "none"
        raise UsageError(f"--topics: unknown topic ids: {given}; valid ids: {', '.join(known)}")
    content: Path | str = Path(source)
    title = None
    if source.startswith(("http://", "https://")):
        title, content = fetch_page_text(settings, source)
    elif not Path(source).is_file():
        raise NotFound(f"no such file: {source}")
    paths = writable_copy(settings)
    doc = add_document(
        paths.corpus_dir,
        content,
        topics,
        language=language or None,
        title=title,
        known_topics=known,
    )
    return f"added {doc.id} to the corpus ({paths.corpus_dir}) with topics {', '.join(doc.topics)}"


def fetch_page_text(settings: Settings, url: str) -> tuple[str | None, str]:
    """Fetch a page through the guarded fetcher and extract its title and main text."""
    import asyncio

    import trafilatura

    from chipwatch.errors import FetchError
    from chipwatch.fetch import Fetcher

    async def get() -> bytes:
        async with Fetcher(settings.fetch) as fetcher:
            fetched = await fetcher.fetch_url(url)
        if fetched.error:
            raise FetchError(url, fetched.error, status=fetched.status)
        return fetched.content

    page = asyncio.run(get())
    extracted = trafilatura.bare_extraction(page.decode("utf-8", "replace"), url=url)
    text = getattr(extracted, "text", None) or ""
    if not text.strip():
        raise FetchError(url, "no article text found on the page")
    return getattr(extracted, "title", None), text


def suggest_topics_text(settings: Settings, days: int, count: int) -> str:
    """Candidate topics from recent novel articles, as TOML blocks to paste into topics.toml."""
    from datetime import timedelta

    from chipwatch.classify import suggest_topics

    sessions = open_sessions(settings)
    since = datetime.now(UTC).replace(tzinfo=None) - timedelta(days=days)
    with sessions() as session:
        rows = session.scalars(
            select(ArticleRow)
            .join(ClassificationRow)
            .where(ClassificationRow.novel.is_(True), ArticleRow.fetched_at >= since)
        ).all()
        titles = {str(row.id): row.title for row in rows}
        novel = [as_input(row) for row in rows]
    if not novel:
        return f"no novel articles in the last {days} days"
    blocks = []
    for number, suggestion in enumerate(suggest_topics(novel, count), start=1):
        members = "\n".join(
            f"#   {member}: {titles.get(member, '')[:80]}" for member in suggestion.member_ids
        )
        terms = ", ".join(f'"{term}"' for term in suggestion.label_terms)
        name = " / ".join(suggestion.label_terms[:3])
        blocks.append(
            f"# suggestion {number}: {suggestion.size} novel articles\n{members}\n"
            f'[[topic]]\nid = "new-topic-{number}"\nname = "{name}"\n'
            f'description = ""\n[topic.terms]\nen = [{terms}]\n'
        )
    return "\n".join(blocks)


# --- retention and export ----------------------------------------------------------------


def prune(settings: Settings, older_than_days: int | None, now: datetime | None = None) -> str:
    """Remove articles older than the given days (else `[retention] days`)."""
    from datetime import timedelta

    from chipwatch.errors import UsageError
    from chipwatch.store.retention import prune_articles

    days = older_than_days if older_than_days is not None else settings.retention.days
    if days <= 0:
        raise UsageError("give --older-than DAYS, or set [retention] days in the config")
    lookback = settings.digest.lookback_days
    if days < lookback:
        # A pruned article still listed by its feed would be stored again as new, and an
        # undated one (dated by its fetch) would be mailed a second time.
        raise UsageError(
            f"--older-than {days}: must be at least [digest] lookback_days ({lookback})"
        )
    moment = now or datetime.now(UTC)
    cutoff = moment.replace(tzinfo=None) - timedelta(days=days)
    with open_sessions(settings).begin() as session:
        return str(prune_articles(session, cutoff))


CSV_COLUMNS = (
    "id",
    "published",
    "fetched",
    "source",
    "language",
    "title",
    "url",
    "relevant",
    "relevance",
    "topics",
    "novel",
    "backfill",
)


def export_csv(settings: Settings, out: TextIO, since_days: int | None = None) -> int:
    """Write the classified articles as CSV (UTF-8, a header row); returns the row count.

    Cells that a spreadsheet would run as a formula (=, +, -, @ first) get a leading
    apostrophe: a feed's title is untrusted text."""
    import csv
    from datetime import timedelta

    from chipwatch.digest.select import plain_text
    from chipwatch.store.export import classified_articles

    since = None
    if since_days is not None:
        since = datetime.now(UTC).replace(tzinfo=None) - timedelta(days=since_days)
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    count = 0
    with open_sessions(settings)() as session:
        for row in classified_articles(session, since):
            writer.writerow(
                (
                    row.id,
                    f"{row.published:%Y-%m-%d %H:%M}",
                    f"{row.fetched:%Y-%m-%d %H:%M}",
                    _cell(plain_text(row.source)),
                    row.language,
                    _cell(plain_text(row.title)),
                    _cell(row.url),
                    "yes" if row.relevant else "no",
                    f"{row.relevance:.3f}",
                    " ".join(row.topics),
                    "yes" if row.novel else "no",
                    "yes" if row.backfill else "no",
                )
            )
            count += 1
    return count


def _cell(text: str) -> str:
    return "'" + text if text[:1] in {"=", "+", "-", "@", "\t", "\r"} else text
