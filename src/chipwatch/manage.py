"""What the administrative commands do: feeds, corpus, topics, outbox listings.

`pipeline.py` holds the watch's stages; this module holds the bodies of the commands
that inspect or change its inputs, so `cli.py` keeps to parsing arguments.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from chipwatch.errors import ConfigError, NotFound
from chipwatch.pipeline import open_sessions, sync_config_sources
from chipwatch.settings import Settings
from chipwatch.types import language_code_problem

if TYPE_CHECKING:
    from chipwatch.store.sources import FeedHealth


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


TABLE_WIDTH = 100  # a terminal's usual width and an e-mail's: no line wraps


def format_table(rows: Sequence[Sequence[str]], width: int = TABLE_WIDTH) -> str:
    """Columns padded to their widest cell; the last one cut (with "…") to fit `width`."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    room = max(width - sum(widths) - 2 * len(widths), 10)
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False))
        + "  "
        + (row[-1] if len(row[-1]) <= room else row[-1][: room - 1] + "…")
        for row in rows
    ).replace("  \n", "\n")


# --- feeds -------------------------------------------------------------------------------


def add_feed(
    settings: Settings,
    url: str,
    name: str | None = None,
    article_text: str | None = None,
    language: str | None = None,
) -> str:
    """Add a feed. A feed already there keeps its settings except those given (and is
    enabled again if it was removed); another URL of a stored feed is refused."""
    import asyncio

    from chipwatch.collect import discover_feed_url
    from chipwatch.errors import UsageError
    from chipwatch.store.source_admin import change_feed, enable, feed_key, same_feed
    from chipwatch.store.sources import NAME_CHARS, add_source
    from chipwatch.urls import check_url

    url = check_url(url.strip())
    problem = language_code_problem(language) if language else None
    if problem:
        raise UsageError(f"--language: {problem}")
    if name and not name.isprintable():  # a line break would split the feeds tables
        raise UsageError("--name: a line break or control character")
    if name is not None and not name.strip():  # it was stored as the feed's blank name
        raise UsageError("--name: empty; leave it out to keep the feed's own title")
    if name is not None and len(name.strip()) > NAME_CHARS:
        raise UsageError(f"--name: {len(name.strip()):,} characters; at most {NAME_CHARS}")
    sessions = open_sessions(settings)
    sync_config_sources(settings, sessions)
    with sessions() as session:
        known = same_feed(session, url)  # no fetch for a feed we have
    feed_url = (
        known.url if known is not None else asyncio.run(discover_feed_url(url, settings.fetch))
    )
    found = f" (found from {url})" if feed_url != url and known is None else ""
    with sessions.begin() as session:
        row = same_feed(session, feed_url)
        if row is None:
            row, _ = add_source(session, feed_url, name or "", language or "", article_text or "")
            return f"added feed {row.id}: {feed_url}{found}"
        if feed_key(row.url) == feed_key(url) and row.url != url:
            raise UsageError(f"refused: {url} is feed {row.id} already ({row.url})")
        if row.url != feed_url:
            raise UsageError(f"refused: {feed_url}{found} is feed {row.id} already ({row.url})")
        changes = change_feed(row, name, article_text, language)
        if not row.enabled:
            enable(row)
            changes.append("enabled again")
    if not changes:
        return (
            f"feed {row.id} is already in the list: {row.url}; its settings are kept "
            "(--name, --article-text, --language change them)"
        )
    return f"updated feed {row.id}: {', '.join(changes)}"


def remove_feed(settings: Settings, key: str) -> str:
    """Delete a feed added by hand; a feed of the config file is disabled instead (for
    good: deleted, the next config sync would add it again under a new id)."""
    from chipwatch.store.source_admin import REMOVED_REASON, disable, is_configured, same_feed
    from chipwatch.store.sources import get_source, remove_source

    sessions = open_sessions(settings)
    sync_config_sources(settings, sessions)
    with sessions.begin() as session:
        row = get_source(session, key) or same_feed(session, key)
        if row is None:
            raise NotFound(f"no feed {key!r} (see `chipwatch feeds list`)")
        if is_configured(row.url, settings.sources):
            disable(row, REMOVED_REASON)
            return (
                f"disabled feed {row.id}: {row.url} is listed in {settings.config_path}; "
                "it stays disabled (delete its [[sources]] entry to drop it from the list, "
                "`chipwatch feeds add` enables it again)"
            )
        row_id, url = row.id, row.url
        remove_source(session, row_id)
    return f"removed feed {row_id}: {url} (its stored articles stay)"


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
        listing += [(str(f.id), "on" if f.enabled else "off", _name_url(f)) for f in feeds]
        return format_table(listing)
    rows = [("id", "state", "errors", "kind", "last ok", "next check", "name / last error")]
    for f in feeds:
        state = (
            ("ok" if f.last_success_at else "new")  # "new": never polled yet
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


def _name_url(feed: FeedHealth) -> str:
    return feed.url if feed.name in ("", feed.url) else f"{feed.name}  {feed.url}"


def _when(moment: datetime | None) -> str:
    return f"{moment:%Y-%m-%d %H:%M}" if moment else "-"


def import_opml(settings: Settings, path: Path) -> str:
    from chipwatch.opml import read_opml
    from chipwatch.store.source_admin import apply_tags, without_duplicates
    from chipwatch.store.sources import sync_sources

    read = read_opml(path)
    with open_sessions(settings).begin() as session:
        kept, refused = without_duplicates(session, list(read.sources))
        report = sync_sources(session, kept)
        apply_tags(session, kept)
    skipped = f", {len(read.skipped)} skipped" if read.skipped else ""
    lines = [
        f"imported {len(report.added)} new feeds, updated {len(report.updated)}, "
        f"{report.unchanged} unchanged{skipped}",
        *read.skipped,
    ]
    lines += [f"  refused: {url} is the same feed as {known}" for url, known in refused]
    return "\n".join(lines)


def export_opml(settings: Settings) -> str:
    from dataclasses import replace

    from chipwatch.opml import write_opml
    from chipwatch.store.sources import list_sources, to_config

    sessions = open_sessions(settings)
    sync_config_sources(settings, sessions)
    with sessions() as session:
        configs = [
            replace(to_config(row), tags=tuple(row.tags or ())) for row in list_sources(session)
        ]
    return write_opml(configs)


# --- corpus and topics -------------------------------------------------------------------


# What `corpus add` takes for a URL rather than a file name: a scheme and a colon.
_URL_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")


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

    problem = language_code_problem(language) if language else None
    if problem:  # written into corpus.toml and listed
        raise UsageError(f"--language: {problem}")
    known = [t.id for t in load_topics(settings.topics_path, settings.user_topics_path)]
    if not topics:
        raise UsageError(f"--topics: no topic id given; valid ids: {', '.join(known)}")
    unknown = [t for t in topics if t not in known]
    if unknown:
        raise UsageError(
            f"--topics: unknown topic ids: {', '.join(unknown)}; valid ids: {', '.join(known)}"
        )
    content: Path | str = Path(source)
    title = None
    scheme = _URL_SCHEME.match(source)
    if scheme and scheme.group(1).lower() in ("http", "https"):
        from chipwatch.urls import check_url

        title, content = fetch_page_text(settings, check_url(source.strip()))
    elif not Path(source).is_file():
        if scheme and not Path(source).exists():
            # "javascript:..." is no file name anyone meant: say what is fetched instead.
            raise UsageError(
                f"{source[:200]}: not a file, and {scheme.group(1)}: URLs are not fetched "
                "(http and https only)"
            )
        raise NotFound(
            f"{source}: is a folder; give a UTF-8 text file"
            if Path(source).is_dir()
            else f"no such file: {source}"
        )
    paths = writable_copy(settings)
    doc = add_document(
        paths.corpus_dir,
        content,
        topics,
        language=language or None,
        title=title,
        known_topics=known,
        origin=source,
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
            raise FetchError(url, fetched.error.message, status=fetched.status)
        return fetched.content

    page = asyncio.run(get())
    extracted = trafilatura.bare_extraction(page.decode("utf-8", "replace"), url=url)
    text = getattr(extracted, "text", None) or ""
    if not text.strip():
        raise FetchError(url, "no article text found on the page")
    return getattr(extracted, "title", None), text


# The last `topics suggest` output, for `topics accept N`.
SUGGESTIONS_FILE = "topic-suggestions.json"


def suggest_topics_text(settings: Settings, days: int, count: int) -> str:
    """Candidate topics from recent novel articles: a name, a description and example
    articles each; `chipwatch topics accept N` adds one (saved in the data folder)."""
    import json
    from datetime import timedelta

    from chipwatch.classify import suggest_topics
    from chipwatch.store.classifications import novel_since

    sessions = open_sessions(settings)
    since = datetime.now(UTC).replace(tzinfo=None) - timedelta(days=days)
    with sessions() as session:
        novel = {item.id: item for item in novel_since(session, since)}
    if not novel:
        return f"no novel articles in the last {days} days"
    saved = []
    blocks = []
    for number, suggestion in enumerate(suggest_topics(list(novel.values()), count), start=1):
        members = [novel[m] for m in suggestion.member_ids]
        entry = {
            "number": number,
            "id": suggestion.topic_id,
            "name": suggestion.name,
            "description": suggestion.description(members[0].title),
            "examples": [
                {"title": m.title, "text": m.text, "language": m.language} for m in members
            ],
        }
        saved.append(entry)
        titles = "\n".join(f"    - {m.title[:90]}" for m in members)
        blocks.append(
            f"{number}. {entry['name']} ({suggestion.size} novel articles)\n"
            f"  id: {entry['id']}\n  description: {entry['description']}\n"
            f"  examples:\n{titles}\n"
            f"  accept: chipwatch topics accept {number} [--id ID]\n"
        )
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    (settings.data_dir / SUGGESTIONS_FILE).write_text(json.dumps(saved, ensure_ascii=False))
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
    import itertools
    from datetime import timedelta

    from chipwatch.digest.select import plain_text
    from chipwatch.store.export import classified_articles

    since = None
    if since_days is not None:
        since = datetime.now(UTC).replace(tzinfo=None) - timedelta(days=since_days)
    writer = csv.writer(out)
    count = 0
    with open_sessions(settings)() as session:
        rows = classified_articles(session, since)
        # The first row is read before the header is written: on standard output a
        # database that cannot be read must leave nothing, not a header and an error.
        first = next(rows, None)
        writer.writerow(CSV_COLUMNS)
        for row in itertools.chain([first] if first else [], rows):
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


def accept_suggestion(settings: Settings, number: int, topic_id: str | None) -> str:
    """Add suggestion `number` of the last `topics suggest`: the topic in the user's
    topics file, its example articles as corpus documents annotated with it."""
    import json

    from chipwatch.classify import add_document, load_topics
    from chipwatch.classify.corpus import MAX_DOCUMENT_CHARS
    from chipwatch.classify.topics import add_user_topic
    from chipwatch.settings import USER_TOPICS_FILE, writable_copy

    path = settings.data_dir / SUGGESTIONS_FILE
    if not path.exists():
        raise NotFound("no topic suggestions yet: run `chipwatch topics suggest` first")
    chosen = [e for e in json.loads(path.read_text(encoding="utf-8")) if e["number"] == number]
    if not chosen:
        raise NotFound(f"no suggestion {number} in {path}")
    entry = chosen[0]
    new_id = topic_id or entry["id"]
    paths = writable_copy(settings)  # never the package's or a checkout's files
    user_topics = paths.config_dir / USER_TOPICS_FILE
    add_user_topic(paths.topics_path, user_topics, new_id, entry["name"], entry["description"])
    known = [t.id for t in load_topics(paths.topics_path, user_topics)]
    added = 0
    for example in entry["examples"]:
        # What the classifier reads of an article: a longer one would be refused.
        text = f"{example['title']}\n{example['text']}".strip()[:MAX_DOCUMENT_CHARS]
        try:
            add_document(
                paths.corpus_dir,
                text,
                [new_id],
                language=example.get("language"),
                title=example["title"] or None,
                known_topics=known,
            )
            added += 1
        except ConfigError:
            continue  # already in the corpus (the same text): nothing to add
    return f"added topic {new_id} with {added} example documents; the next classify refits"
