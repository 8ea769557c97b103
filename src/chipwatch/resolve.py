"""News-search items -> the publisher's article: URL, outlet and a clean title.

Google News and Bing News link every item to a redirect of their own, name the
publisher in the item (`<source>`, `News:Source`) and append " - Outlet" to the title.
This stage, run on the new articles of each feed before anything fetches their pages:
- Bing: the publisher's URL is the `url` parameter of the `apiclick.aspx` link (no request);
- Google News: an old-style article id carries the URL itself (base64 of a small
  protobuf); a current one does not, and is decoded by Google's own service, in two
  requests: the article page `/rss/articles/<id>` gives a signature and a timestamp
  (`data-n-a-sg`, `data-n-a-ts`), then one POST to its `batchexecute` endpoint turns up
  to `resolve_batch_size` (id, timestamp, signature) triples into URLs. If the article
  page redirects off Google instead, its final URL is the answer.
- the resolved URL is canonicalised (`extract.canonical_url`), and an identity that
  rested on the redirect URL is recomputed from it, so the same article found by two
  queries, or by a news search and the publisher's own feed, is stored once (the writer's
  URL check);
- the outlet (`<source>`) becomes the article's outlet and is cut from the title and
  from a text that is only "headline outlet".

Every request goes through the poll's guarded `Fetcher` (private addresses, caps,
deadline, redirects, per-host limits). The services' base URLs are settings
(`[news_search]`), so loopback fixtures stand in for them in tests. Resolved links are
cached (`store/pages.py`, kind "link"): each link is decoded once.

Why not the `googlenewsdecoder` package (0.2.2, read before deciding): it makes the same
two requests, but with its own httpx client (redirects followed freely, HTTP/2, a proxy
option), so none of our guards or limits would apply; its Google URLs are module
constants, so a loopback service could only stand in by patching them; and it brings
selectolax, h2 and socksio for two regular expressions and a JSON parse.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any
from urllib.parse import parse_qs, parse_qsl, quote, urlencode, urlsplit

from chipwatch.dedupe import content_hash, key_identity
from chipwatch.extract import canonical_url
from chipwatch.fetch import Fetcher
from chipwatch.markup import json_document
from chipwatch.settings import NewsSearchSettings
from chipwatch.types import Article, Source

HTML_ACCEPT = "text/html, application/xhtml+xml;q=0.9, */*;q=0.5"
GOOGLE_ARTICLE_PATH = "/rss/articles/"
GOOGLE_BATCH_PATH = "/_/DotsSplashUi/data/batchexecute"
GOOGLE_RPC = "Fbv4je"  # the decoder's remote procedure, named in request and answer
# The request context the decoder expects before the article id: its shape is fixed by
# Google's web client and the values are placeholders it accepts; this is the context the
# googlenewsdecoder package (0.2.2) sends, read on 2026-12-01 (a fact of the protocol).
_GOOGLE_CONTEXT: list[Any] = [
    ["X", "X", ["X", "X"], None, None, 1, 1, "US:en", None, 1]
    + [None, None, None, None, None, 0, 1],
    "X",
    "X",
    1,
    [1, 1, 1],
    1,
    1,
    None,
    0,
    0,
    None,
    0,
]
_SIGNATURE = re.compile(rb'data-n-a-sg="([^"]+)"')
_TIMESTAMP = re.compile(rb'data-n-a-ts="([^"]+)"')
# " - Reuters", " – Le Monde", " | Les Echos": the separators the services put before
# the outlet's name.
_SUFFIX_SEPARATORS = (" - ", " – ", " — ", " | ")


class NewsSearch(StrEnum):
    GOOGLE = "google"
    BING = "bing"


# --- what a source and a link are (pure) -------------------------------------------------


def _same_origin(url: str, base: str) -> bool:
    """Same host as the base URL, and same port if the base names one: the services'
    feeds give http:// links for an https:// service (Bing does)."""
    try:
        a, b = urlsplit(url), urlsplit(base)
        same_host = (a.hostname or "").lower() == (b.hostname or "").lower()
        return same_host and (b.port is None or a.port == b.port)
    except ValueError:
        return False


def news_search_kind(url: str, settings: NewsSearchSettings) -> NewsSearch | None:
    """Which news-search service a feed URL belongs to, if any."""
    path = urlsplit(url).path
    if _same_origin(url, settings.google_news_url) and path.startswith("/rss"):
        return NewsSearch.GOOGLE
    if _same_origin(url, settings.bing_url) and path.startswith("/news"):
        return NewsSearch.BING
    return None


def article_text_mode(source: Source, settings: NewsSearchSettings) -> str:
    """The source's `article_text`, or its kind's default: "fetch" for news search."""
    if source.article_text:
        return source.article_text
    return "fetch" if news_search_kind(source.url, settings) else "feed"


def bing_target(link: str, settings: NewsSearchSettings) -> str | None:
    """The publisher URL in a Bing News `apiclick.aspx?...&url=...` link."""
    if not _same_origin(link, settings.bing_url):
        return None
    parts = urlsplit(link)
    if not parts.path.lower().endswith("/apiclick.aspx"):
        return None
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name.lower() == "url" and value.lower().startswith(("http://", "https://")):
            return value
    return None


def google_article_id(link: str, settings: NewsSearchSettings) -> str | None:
    """The article id of a Google News link (`/rss/articles/<id>`, `/articles/<id>`)."""
    if not _same_origin(link, settings.google_news_url):
        return None
    segments = urlsplit(link).path.rstrip("/").split("/")
    if len(segments) >= 2 and segments[-2] in ("articles", "read") and segments[-1]:
        return segments[-1]
    return None


def offline_google_target(article_id: str) -> str | None:
    """The URL inside an old-style id: base64url of a protobuf whose field 4 is the URL.

    Current ids hold an opaque token there instead ("AU_yqL..."): None, ask Google."""
    try:
        raw = base64.urlsafe_b64decode(article_id + "=" * (-len(article_id) % 4))
    except (binascii.Error, ValueError):
        return None
    if not raw.startswith(b"\x08\x13\x22"):
        return None
    length, offset = _varint(raw, 3)
    value = raw[offset : offset + length]
    if length <= 0 or len(value) != length:
        return None
    text = value.decode("utf-8", "replace")
    return text if text.startswith(("http://", "https://")) else None


def _varint(data: bytes, offset: int) -> tuple[int, int]:
    value = shift = 0
    while offset < len(data):
        byte = data[offset]
        offset += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, offset
        shift += 7
    return -1, offset


def strip_outlet(title: str, outlet: str | None) -> str:
    """The title without the " - Outlet" the service appended."""
    if not outlet:
        return title
    for separator in _SUFFIX_SEPARATORS:
        suffix = separator + outlet
        if title.endswith(suffix) and title[: -len(suffix)].strip():
            return title[: -len(suffix)].rstrip()
    return title


def strip_outlet_text(text: str, title: str, outlet: str | None) -> str:
    """A news-search item's text is often "headline outlet" only: keep the headline."""
    flat = " ".join(text.split())
    if outlet and flat.endswith(outlet):
        flat = flat[: -len(outlet)].rstrip()
    return flat if flat else title


# --- Google's decoder protocol (pure) ----------------------------------------------------


def google_article_page(article_id: str, source_url: str, settings: NewsSearchSettings) -> str:
    """The article page that carries the decoding signature, in the feed's locale."""
    query = parse_qs(urlsplit(source_url).query)
    locale = {key: query[key][0] for key in ("hl", "gl", "ceid") if query.get(key)}
    base = settings.google_news_url.rstrip("/")
    suffix = f"?{urlencode(locale)}" if locale else ""
    return f"{base}{GOOGLE_ARTICLE_PATH}{quote(article_id, safe='-_')}{suffix}"


def page_signature(page: bytes) -> tuple[str, str] | None:
    """(signature, timestamp) of a Google News article page, if it has them."""
    signature, timestamp = _SIGNATURE.search(page), _TIMESTAMP.search(page)
    if not signature or not timestamp:
        return None
    return signature.group(1).decode("ascii", "replace"), timestamp.group(1).decode(
        "ascii", "replace"
    )


@dataclass(frozen=True)
class DecodeRequest:
    article_id: str
    timestamp: str
    signature: str


def batch_form(requests: Sequence[DecodeRequest]) -> bytes:
    """The urlencoded body of one batchexecute call decoding every request; each call's
    id is its index, so answers are matched whatever order they come in."""
    calls = [
        [
            GOOGLE_RPC,
            json.dumps(
                [
                    "garturlreq",
                    _GOOGLE_CONTEXT,
                    r.article_id,
                    int(r.timestamp) if r.timestamp.isdigit() else r.timestamp,
                    r.signature,
                ],
                separators=(",", ":"),
            ),
            None,
            str(index),
        ]
        for index, r in enumerate(requests)
    ]
    return urlencode({"f.req": json.dumps([calls], separators=(",", ":"))}).encode()


def batch_answers(body: bytes) -> dict[int, str]:
    """Request index -> URL from a batchexecute answer (XSSI prefix, then JSON rows;
    the chunked form, with length lines between, is read too)."""
    text = body.decode("utf-8", "replace")
    text = text.split("\n", 1)[1] if text.startswith(")]}'") else text
    answers: dict[int, str] = {}
    for rows in _json_documents(text):
        for row in rows if isinstance(rows, list) else []:
            found = _answer(row)
            if found is not None:
                answers.setdefault(found[0], found[1])
    return answers


def _json_documents(text: str) -> list[Any]:
    try:
        return [json_document(text)]
    except ValueError:
        pass
    documents = []
    for line in text.splitlines():
        if line.lstrip().startswith("["):
            try:
                documents.append(json_document(line))
            except ValueError:
                continue
    return documents


def _answer(row: Any) -> tuple[int, str] | None:
    if not (isinstance(row, list) and len(row) >= 3 and row[0] == "wrb.fr"):
        return None
    if row[1] != GOOGLE_RPC or not isinstance(row[2], str):
        return None
    try:
        payload = json_document(row[2])
    except ValueError:
        return None
    if not (isinstance(payload, list) and len(payload) > 1 and payload[0] == "garturlres"):
        return None
    ids = [cell for cell in row[3:] if isinstance(cell, str) and cell.isdigit()]
    url = payload[1]
    if not ids or not isinstance(url, str) or not url.startswith(("http://", "https://")):
        return None
    return int(ids[-1]), url


# --- the stage ---------------------------------------------------------------------------

KnownLinks = Callable[[Sequence[str]], Awaitable[Mapping[str, str]]]
RememberLinks = Callable[[Mapping[str, str]], Awaitable[None]]


@dataclass(frozen=True)
class Resolved:
    """One article after resolution; `pending` when its link is still a redirect."""

    article: Article
    pending: bool = False


class Resolver:
    """Resolves the news-search links of one poll (one instance per poll)."""

    def __init__(
        self,
        settings: NewsSearchSettings,
        fetcher: Fetcher,
        known: KnownLinks,
        remember: RememberLinks,
    ) -> None:
        self._settings = settings
        self._fetcher = fetcher
        self._known = known
        self._remember = remember

    async def resolve(self, source: Source, articles: Sequence[Article]) -> list[Resolved]:
        """The articles with publisher URLs, outlets and clean titles, in order."""
        links = list(dict.fromkeys(a.url for a in articles if a.url and self._is_redirect(a.url)))
        targets: dict[str, str] = {}
        if links:
            targets.update(await self._known(links))
            found = await self._resolve_new(source, [u for u in links if u not in targets])
            if found:
                await self._remember(found)
                targets.update(found)
        return [self._finish(source, a, targets) for a in articles]

    def _is_redirect(self, url: str) -> bool:
        return bool(bing_target(url, self._settings) or google_article_id(url, self._settings))

    async def _resolve_new(self, source: Source, links: Sequence[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        online: list[tuple[str, str]] = []  # (link, article id) Google must decode
        for link in links:
            target = bing_target(link, self._settings)
            article_id = google_article_id(link, self._settings)
            if target is None and article_id:
                target = offline_google_target(article_id)
                if target is None:
                    online.append((link, article_id))
            if target:
                found[link] = target
        size = self._settings.resolve_batch_size
        for start in range(0, len(online), size):
            found.update(await self._decode(source, online[start : start + size]))
        return found

    async def _decode(self, source: Source, batch: Sequence[tuple[str, str]]) -> dict[str, str]:
        """One Google batch: each article page for its signature, then one POST."""
        found: dict[str, str] = {}
        requests: list[tuple[str, DecodeRequest]] = []
        pages = await asyncio.gather(
            *(
                self._fetcher.fetch_url(
                    google_article_page(article_id, source.url, self._settings),
                    accept=HTML_ACCEPT,
                )
                for _, article_id in batch
            )
        )  # the fetcher's per-host limit keeps Google's share polite
        for (link, article_id), page in zip(batch, pages, strict=True):
            if page.error:
                continue  # stays a redirect: stored with the feed's text, no page fetched
            if not _same_origin(page.final_url, self._settings.google_news_url):
                found[link] = page.final_url  # Google redirected to the publisher
                continue
            signed = page_signature(page.content)
            if signed:
                requests.append((link, DecodeRequest(article_id, signed[1], signed[0])))
        if not requests:
            return found
        answer = await self._fetcher.fetch_url(
            self._settings.google_news_url.rstrip("/") + GOOGLE_BATCH_PATH,
            accept="*/*",
            form=batch_form([r for _, r in requests]),
        )
        if answer.error:
            return found
        for index, url in batch_answers(answer.content).items():
            if 0 <= index < len(requests):
                found[requests[index][0]] = url
        return found

    def _finish(self, source: Source, article: Article, targets: Mapping[str, str]) -> Resolved:
        url = article.url
        pending = bool(url and self._is_redirect(url))
        if url and pending and url in targets:
            url = canonical_url(targets[url]) or url
            pending = url == article.url
        return Resolved(publisher_article(source, article, url), pending)


def publisher_article(source: Source, article: Article, url: str | None) -> Article:
    """The article under its publisher's URL, outlet and title; identity and content hash
    follow, so copies from other queries or feeds match it."""
    title = strip_outlet(article.title, article.outlet)
    text = article.text
    if article.outlet and (title != article.title or text.endswith(article.outlet)):
        text = strip_outlet_text(text, title, article.outlet)
    identity = article.identity
    if url != article.url and identity.startswith("url:"):
        identity = key_identity(source.id, None, url) or identity
    if url == article.url and title == article.title and text == article.text:
        return article
    # The outlet joins the hash: two outlets' items with the same headline (and no more
    # text) are two articles, as their texts "headline outlet" were before cleaning.
    hashed = f"{text}\n{article.outlet}" if article.outlet else text
    return replace(
        article,
        url=url,
        title=title,
        text=text,
        identity=identity,
        content_hash=content_hash(title, hashed),
    )
