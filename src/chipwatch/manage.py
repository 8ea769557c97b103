"""What the administrative commands do: feeds, corpus, topics, outbox listings.

`pipeline.py` holds the watch's stages; this module holds the bodies of the commands
that inspect or change its inputs, so `cli.py` keeps to parsing arguments.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from chipwatch.errors import NotFound
from chipwatch.pipeline import open_sessions, sync_config_sources
from chipwatch.settings import Settings


def outbox_table(settings: Settings) -> str:
    from chipwatch.digest import list_outbox, pending

    sessions = open_sessions(settings)
    with sessions() as session:
        entries = list_outbox(session)
        waiting = pending(session).describe(datetime.now(UTC))
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
    return format_table(rows) + (f"\n{waiting}" if waiting else "")


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
    from chipwatch.urls import check_url

    feed_url = asyncio.run(discover_feed_url(check_url(url.strip()), settings.fetch))
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
    rows = [("id", "state", "errors", "kind", "last ok", "next check", "name / last error")]
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
                (f.last_error_kind or "-") if f.last_error else "-",
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

    read = read_opml(path)
    with open_sessions(settings).begin() as session:
        report = sync_sources(session, read.sources)
    skipped = f", {len(read.skipped)} skipped" if read.skipped else ""
    lines = [
        f"imported {len(report.added)} new feeds, updated {len(report.updated)}, "
        f"{report.unchanged} unchanged{skipped}",
        *read.skipped,
    ]
    return "\n".join(lines)


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
    """Add a file, or the main text of a web page, to the corpus with its topics."""
    from chipwatch.classify import add_document, load_topics

    content: Path | str = Path(source)
    title = None
    if source.startswith(("http://", "https://")):
        from chipwatch.urls import check_url

        title, content = fetch_page_text(settings, check_url(source.strip()))
    elif not Path(source).is_file():
        raise NotFound(f"no such file: {source}")
    doc = add_document(
        settings.corpus_dir,
        content,
        topics,
        language=language or None,
        title=title,
        known_topics=[t.id for t in load_topics(settings.topics_path)],
    )
    return f"added {doc.id} to the corpus with topics {', '.join(doc.topics)}"


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
            raise FetchError(url, fetched.error.message, status=fetched.status)
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
    from chipwatch.store.classifications import novel_since

    sessions = open_sessions(settings)
    since = datetime.now(UTC).replace(tzinfo=None) - timedelta(days=days)
    with sessions() as session:
        novel = novel_since(session, since)
    titles = {item.id: item.title for item in novel}
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
