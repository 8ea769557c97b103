"""FeedEntry -> Article: canonical URL, identity, language, normalised date (pure).

Full-text extraction (trafilatura) is here too; fetching the page is the collector's job,
through the same guarded fetcher as the feeds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

from chipwatch.dedupe import content_hash, hash_identity, key_identity
from chipwatch.types import UNDETERMINED, UNSURE_BELOW, Article, FeedEntry, Source
from chipwatch.urls import MAX_URL_CHARS

# Query parameters that only track the reader; dropping them makes URLs comparable.
TRACKING_PARAMS = {
    "fbclid",
    "gclid",
    "dclid",
    "gbraid",
    "wbraid",
    "msclkid",
    "yclid",
    "mc_cid",
    "mc_eid",
    "_hsenc",
    "_hsmi",
    "mkt_tok",
    "igshid",
    "ref_src",
    "cmpid",
    "oly_anon_id",
    "oly_enc_id",
    "vero_id",
}
TRACKING_PREFIXES = ("utm_", "pk_", "mtm_", "itm_")
DEFAULT_PORTS = {"http": 80, "https": 443}

# Restricting the model to languages a news watch meets avoids exotic misfires on
# short titles (py3langid knows 97 languages).
LANGUAGES = (
    "en", "fr", "de", "es", "it", "pt", "nl", "sv", "da", "no", "fi", "pl", "cs", "ro",
    "hu", "el", "ru", "uk", "tr", "ar", "he", "fa", "hi", "zh", "ja", "ko", "vi", "id",
)  # fmt: skip
MIN_CONFIDENT_CHARS = 40  # below this a source's configured language beats the detector
MIN_CONFIDENCE = 0.90
LANGUAGE_SAMPLE_CHARS = 400  # langid cost grows with length; 400 chars are plenty
FUTURE_TOLERANCE = timedelta(days=1)


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def canonical_url(url: str | None, base: str | None = None) -> str | None:
    """Absolute http(s) URL without tracking parameters, fragment or default port.

    None (the entry is kept without a link) where a link cannot be shown or stored as
    given: a control character in it (a NUL fails PostgreSQL's lookup of the whole feed),
    a user name or password (how `trusted.example@evil.example` tricks are spelt), more
    than MAX_URL_CHARS (it was stored cut: a broken link). Spaces inside are escaped."""
    if not url:
        return None
    url = url.strip().replace(" ", "%20")
    if _CONTROL.search(url) or len(url) > MAX_URL_CHARS:
        return None
    try:  # a malformed link ("http://[::1") is no link; its entry is kept without one
        if base:
            url = urljoin(base, url)
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname:
        return None
    host = parts.hostname.lower().rstrip(".")
    if ":" in host:
        host = f"[{host}]"  # IPv6 literal
    if port is not None and port != DEFAULT_PORTS[scheme]:
        host = f"{host}:{port}"
    if "@" in parts.netloc:
        return None
    netloc = host
    query = parts.query and urlencode(
        [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not _tracking(k)]
    )
    return urlunsplit((scheme, netloc, parts.path or "/", query, ""))


def _tracking(name: str) -> bool:
    lowered = name.lower()
    return lowered in TRACKING_PARAMS or lowered.startswith(TRACKING_PREFIXES)


def normalise_date(published: datetime | None, fetched_at: datetime) -> tuple[datetime, str | None]:
    """Naive UTC; missing -> fetch time ("missing"); far future -> fetch time ("future-clamped")."""
    if published is None:
        return fetched_at, "missing"
    if published.tzinfo is not None:
        published = published.astimezone(tz=None).replace(tzinfo=None)  # pragma: no cover
    if published > fetched_at + FUTURE_TOLERANCE:
        return fetched_at, "future-clamped"
    return published, None


@lru_cache(maxsize=1)
def _identifier() -> Any:
    # Once per process: every parser worker of every pool needs it. From the on-disk
    # cache (memory-mapped, a few ms) rather than py3langid's compressed model (~0.6 s).
    from chipwatch.langid_model import load_identifier

    return load_identifier(LANGUAGES, norm_probs=True)


# Three word characters, anywhere: a search stops at the third instead of listing all.
_THREE_WORD_CHARS = re.compile(r"\w\W*\w\W*\w")


def detect_language(text: str, hint: str = "") -> str:
    """ISO 639-1 code; the source's configured language wins when evidence is thin."""
    sample = text[:LANGUAGE_SAMPLE_CHARS]
    if not _THREE_WORD_CHARS.search(sample):
        return hint or UNDETERMINED
    language, confidence = _identifier().classify(sample)
    if hint and (len(sample) < MIN_CONFIDENT_CHARS or confidence < MIN_CONFIDENCE):
        return hint
    # A guess is not stored as a language: the classifier trusts the language it is given,
    # and reads an undetermined Latin-script text against every term list.
    return str(language) if confidence >= UNSURE_BELOW else UNDETERMINED


def article_language(title: str, text: str, hint: str = "") -> str:
    """The language of an entry from its title and text (what `to_article` detects)."""
    return detect_language(f"{title}\n{text}", hint)


@dataclass(frozen=True)
class EntryKey:
    """What identifies an entry before its text is converted: its canonical URL, and
    its identity unless that rests on the content hash (no GUID and no URL)."""

    url: str | None
    identity: str | None


def entry_key(entry: FeedEntry, source: Source, base_url: str | None = None) -> EntryKey:
    url = canonical_url(entry.url, base=base_url or source.url)
    return EntryKey(url, key_identity(source.id, entry.guid, url))


def to_article(
    entry: FeedEntry,
    source: Source,
    fetched_at: datetime,
    base_url: str | None = None,
    *,
    language: bool = True,
    key: EntryKey | None = None,
) -> Article:
    """Make one parsed entry ready to store; relative links resolve against `base_url`.

    `language=False` leaves `Article.language` empty: the collector detects it only for
    the articles that turn out to be new (`article_language`), detection being the
    costliest step here and most entries of a changed feed being already stored.
    `key` is the entry's `entry_key`, when the caller has it already."""
    key = key or entry_key(entry, source, base_url)
    digest = content_hash(entry.title, entry.summary)
    published, flag = normalise_date(entry.published, fetched_at)
    detected = article_language(entry.title, entry.summary, source.language) if language else ""
    return Article(
        identity=key.identity or hash_identity(digest),
        source_url=source.url,
        url=key.url,
        title=entry.title,
        text=entry.summary,
        published=published,
        fetched_at=fetched_at,
        language=detected,
        content_hash=digest,
        date_flag=flag,
        outlet=entry.outlet,
    )


def extract_full_text(page: bytes, url: str, min_chars: int = 200) -> str | None:
    """Main text of an article page, or None when trafilatura finds nothing useful
    (less than `min_chars` characters)."""
    import trafilatura  # imported lazily: only full_text sources need it

    text = trafilatura.extract(
        page, url=url, include_comments=False, include_tables=False, favor_precision=True
    )
    return text.strip() if text and len(text.strip()) >= max(1, min_chars) else None
