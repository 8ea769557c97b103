"""The user's edits of the feed list: duplicates, disabling, tags. Portable SQLAlchemy.

Two URLs are one feed when they differ only in scheme (http/https), letter case of the
host, a default port, tracking parameters, a fragment, a trailing slash or the spelling of
characters (é or %C3%A9, ~ or %7E): `feed_key`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from urllib.parse import quote, unquote

from sqlalchemy import select
from sqlalchemy.orm import Session

from chipwatch.extract import canonical_url
from chipwatch.settings import SourceConfig
from chipwatch.store.models import SourceRow

REMOVED_REASON = "removed with `chipwatch feeds remove`; listed in the config file"


def feed_key(url: str) -> str:
    """What makes two feed URLs the same feed (see the module docstring)."""
    canonical = canonical_url(url) or url.strip()
    without_scheme = canonical.split("://", 1)[-1]
    host, _, rest = without_scheme.partition("/")
    path, _, query = rest.partition("?")
    path = "/".join(_escaped(segment, _PATH_SAFE) for segment in path.rstrip("/").split("/"))
    query = "&".join(_escaped(part, _QUERY_SAFE) for part in query.split("&")) if query else ""
    return f"{_ascii_host(host)}/{path}" + (f"?{query}" if query else "")


# What a path segment or a query part may hold unescaped (RFC 3986); "/" in a segment and
# "&" in a query part stay escaped, they would change what the URL names.
_PATH_SAFE = "-._~!$'()*+,;=:@"
_QUERY_SAFE = "-._~!$'()*+,;=:@/?"


def _escaped(part: str, safe: str) -> str:
    """One spelling of a URL part: /actualités and /actualit%C3%A9s, %7E and ~, %c3 and
    %C3 are the same address (they were two feeds). A part whose escapes are not UTF-8
    is kept as written."""
    try:
        return quote(unquote(part, errors="strict"), safe=safe)
    except UnicodeDecodeError:
        return part


def _ascii_host(host: str) -> str:
    """An internationalised host as DNS spells it: bücher.example and xn--bcher-kva.example
    are one host (they were two feeds)."""
    if host.isascii():
        return host
    name, colon, port = (
        host.rpartition(":") if host.rpartition(":")[2].isdigit() else (host, "", "")
    )
    try:
        return name.encode("idna").decode("ascii") + colon + port
    except UnicodeError:
        return host


def same_feed(session: Session, url: str) -> SourceRow | None:
    """The stored source that is this feed, by exact URL first, then by `feed_key`."""
    exact = session.scalars(select(SourceRow).where(SourceRow.url == url)).first()
    if exact is not None:
        return exact
    key = feed_key(url)
    for row in session.scalars(select(SourceRow).order_by(SourceRow.id)):
        if feed_key(row.url) == key:
            return row
    return None


def is_configured(url: str, configured: Iterable[SourceConfig]) -> bool:
    key = feed_key(url)
    return any(feed_key(config.url) == key for config in configured)


def disable(row: SourceRow, reason: str) -> None:
    """Stops polling for good: config syncs never re-enable a source."""
    row.enabled = False
    row.disabled_reason = reason


def enable(row: SourceRow) -> None:
    row.enabled, row.disabled_reason = True, None
    row.consecutive_errors, row.next_check_at = 0, None


def without_duplicates(
    session: Session, configs: Sequence[SourceConfig]
) -> tuple[list[SourceConfig], list[tuple[str, str]]]:
    """Configs to sync, and (url, stored url) of those that are another URL of a stored
    feed, or of an earlier config in the list: refused, not stored twice."""
    stored = {feed_key(row.url): row.url for row in session.scalars(select(SourceRow))}
    kept: list[SourceConfig] = []
    refused: list[tuple[str, str]] = []
    for config in configs:
        key = feed_key(config.url)
        known = stored.get(key)
        if known is not None and known != config.url:
            refused.append((config.url, known))
            continue
        stored[key] = config.url
        kept.append(config)
    return kept, refused


def apply_tags(session: Session, configs: Iterable[SourceConfig]) -> None:
    """Store the tags (OPML categories, config `tags`) of the configs that have some."""
    tagged = {config.url: list(config.tags) for config in configs if config.tags}
    if not tagged:
        return
    for row in session.scalars(select(SourceRow).where(SourceRow.url.in_(list(tagged)))):
        if row.tags != tagged[row.url]:
            row.tags = tagged[row.url]


def change_feed(
    row: SourceRow, name: str | None, article_text: str | None, language: str | None
) -> list[str]:
    """Apply the options the user gave; each change, described."""
    changes = []
    for attr, value in (("name", name), ("article_text", article_text), ("language", language)):
        if value is not None and getattr(row, attr) != value:
            setattr(row, attr, value)
            changes.append(f"{attr} = {value!r}")
    return changes
