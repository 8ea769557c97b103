"""News-search links and article pages, the pure parts (resolve.py, pagetext.py)."""

from __future__ import annotations

import json

import pytest
from newsserver import (
    GoogleNewsService,
    article_page,
    article_paragraphs,
    bing_link,
    consent_page,
    paywall_page,
)

from chipwatch.pagetext import PageVerdict, judge
from chipwatch.resolve import (
    DecodeRequest,
    NewsSearch,
    article_text_mode,
    batch_answers,
    batch_form,
    bing_target,
    google_article_id,
    google_article_page,
    news_search_kind,
    offline_google_target,
    page_signature,
    strip_outlet,
    strip_outlet_text,
)
from chipwatch.settings import NewsSearchSettings
from chipwatch.types import Source

REAL = NewsSearchSettings()


def test_news_search_kind_by_configured_base() -> None:
    google = "https://news.google.com/rss/search?q=chips+when:7d&hl=en-US&gl=US&ceid=US:en"
    assert news_search_kind(google, REAL) is NewsSearch.GOOGLE
    assert news_search_kind("https://www.bing.com/news/search?q=x&format=rss", REAL) == "bing"
    assert news_search_kind("https://www.example.com/rss", REAL) is None
    local = NewsSearchSettings(google_news_url="http://127.0.0.1:8123")
    assert news_search_kind("http://127.0.0.1:8123/rss/search?q=x", local) == "google"
    assert news_search_kind("http://127.0.0.1:8124/rss/search?q=x", local) is None


def test_article_text_default_is_fetch_for_news_search_only() -> None:
    google = Source(1, "https://news.google.com/rss/search?q=x", "g")
    assert article_text_mode(google, REAL) == "fetch"
    assert article_text_mode(Source(2, "https://www.example.com/feed", "e"), REAL) == "feed"
    chosen = Source(3, "https://news.google.com/rss/search?q=x", "g", article_text="feed")
    assert article_text_mode(chosen, REAL) == "feed"


def test_bing_link_gives_its_url_parameter() -> None:
    target = "https://www.example.com/tech/2026/12/01/chip-rules?id=7"
    link = bing_link("http://www.bing.com", target)
    assert bing_target(link, REAL) == target
    assert bing_target("http://www.bing.com/news/search?q=x", REAL) is None
    assert bing_target(bing_link("http://elsewhere.test", target), REAL) is None
    javascript = "http://www.bing.com/news/apiclick.aspx?url=javascript%3aalert(1)"
    assert bing_target(javascript, REAL) is None


def test_google_ids_old_style_decode_offline_new_style_do_not() -> None:
    with GoogleNewsService() as google:
        old = google.link_to("https://www.example.com/a/b.html", old_style=True)
        new = google.link_to("https://www.example.com/c.html")
    settings = NewsSearchSettings(google_news_url=google.origin)
    old_id, new_id = google_article_id(old, settings), google_article_id(new, settings)
    assert old_id and new_id
    assert offline_google_target(old_id) == "https://www.example.com/a/b.html"
    assert offline_google_target(new_id) is None
    assert google_article_id("https://www.example.com/rss/articles/x", settings) is None


def test_article_page_keeps_the_feed_locale() -> None:
    source = "https://news.google.com/rss/search?q=x&hl=fr&gl=FR&ceid=FR:fr"
    page = google_article_page("AU_yqLabc", source, REAL)
    assert page == "https://news.google.com/rss/articles/AU_yqLabc?hl=fr&gl=FR&ceid=FR%3Afr"


def test_decoder_round_trip_against_the_fake_service() -> None:
    """Our request body is what the service reads; its answer is what we read."""
    with GoogleNewsService() as google:
        links = [google.link_to(f"https://pub{i}.example/story-{i}") for i in range(3)]
        ids = [link.split("/")[-1].split("?")[0] for link in links]
        requests = []
        for article_id in ids:
            signature, timestamp = google.signatures[article_id]
            requests.append(DecodeRequest(article_id, timestamp, signature))
        requests[1] = DecodeRequest(ids[1], requests[1].timestamp, "forged")
        status, _, body = google._batch("", "", batch_form(requests))
    assert status == 200
    assert batch_answers(body) == {
        0: "https://pub0.example/story-0",
        2: "https://pub2.example/story-2",
    }


def test_signature_from_an_article_page() -> None:
    page = b'<c-wiz><div jscontroller="x" data-n-a-ts="1764600000" data-n-a-sg="AbC-1"></div>'
    assert page_signature(page) == ("AbC-1", "1764600000")
    assert page_signature(b"<html>nothing</html>") is None


def test_batch_answers_ignores_junk() -> None:
    assert batch_answers(b")]}'\n\nnot json") == {}
    row = ["wrb.fr", "Fbv4je", '["garturlres","javascript:x",1]', None, None, None, "0"]
    assert batch_answers(b")]}'\n\n" + json.dumps([row]).encode()) == {}


@pytest.mark.parametrize(
    ("title", "outlet", "expected"),
    [
        ("Chip curbs widen - Reuters", "Reuters", "Chip curbs widen"),
        ("Les puces sous contrôle – Le Monde", "Le Monde", "Les puces sous contrôle"),
        ("Reuters", "Reuters", "Reuters"),  # nothing would be left
        ("Chip curbs widen - Reuters", None, "Chip curbs widen - Reuters"),
        ("Talks - what next", "Reuters", "Talks - what next"),
    ],
)
def test_strip_outlet(title: str, outlet: str | None, expected: str) -> None:
    assert strip_outlet(title, outlet) == expected


def test_headline_and_outlet_text_keeps_the_headline() -> None:
    assert strip_outlet_text("Chip curbs widen  Reuters", "Chip curbs widen", "Reuters") == (
        "Chip curbs widen"
    )


# --- page verdicts -----------------------------------------------------------------------


def _judge(html: str, text: str | None) -> PageVerdict:
    return judge(html.encode(), text, min_chars=300)[0]


def test_article_page_is_an_article() -> None:
    paragraphs = article_paragraphs("the licence regime")
    verdict, kept = judge(article_page("T", paragraphs).encode(), "\n".join(paragraphs), 300)
    assert verdict is PageVerdict.ARTICLE and kept and "licence regime" in kept


def test_consent_wall() -> None:
    text = "We value your privacy\nWe and our partners use cookies... Accept all cookies"
    assert _judge(consent_page(), text) is PageVerdict.CONSENT


def test_paywall_by_phrase_and_by_structured_data() -> None:
    text = (
        "Officials met on Monday. You have a preview view of this article while we are"
        " checking your access."
    )
    assert _judge(paywall_page("Rules"), text) is PageVerdict.PAYWALL
    marked = '<script type="application/ld+json">{"isAccessibleForFree": "False"}</script>'
    assert (
        _judge(marked, "Officials met on Monday to discuss the rules. " * 8) is PageVerdict.PAYWALL
    )


def test_error_page_by_title() -> None:
    html = "<html><head><title>Seite nicht gefunden</title></head><body>x</body></html>"
    assert _judge(html, "Die Seite gibt es nicht. " * 30) is PageVerdict.ERROR


def test_short_text() -> None:
    assert _judge("<html><title>Story</title></html>", "Only a line.") is PageVerdict.SHORT
    assert _judge("<html><title>Story</title></html>", None) is PageVerdict.SHORT


def test_long_article_mentioning_cookies_is_kept_without_the_prompt_line() -> None:
    paragraphs = article_paragraphs("the new cookie consent rules for websites", 10)
    text = "\n".join([*paragraphs[:5], "Already a subscriber? Sign in", *paragraphs[5:]])
    verdict, kept = judge(b"<html><title>Cookie rules</title></html>", text, 300)
    assert verdict is PageVerdict.ARTICLE and kept
    assert "Already a subscriber" not in kept and len(kept) > 1500


def test_same_headline_from_two_outlets_is_two_articles() -> None:
    from datetime import datetime

    from chipwatch.resolve import publisher_article
    from chipwatch.types import Article

    def item(outlet: str) -> Article:
        return Article(
            identity=f"guid:1:{outlet}",
            source_url="https://news.google.com/rss/search?q=x",
            url=f"https://{outlet.lower()}.example/story",
            title=f"Nvidia shares fall on export news - {outlet}",
            text=f"Nvidia shares fall on export news {outlet}",
            published=datetime(2026, 12, 1),
            fetched_at=datetime(2026, 12, 1),
            language="en",
            content_hash="x",
            outlet=outlet,
        )

    source = Source(1, "https://news.google.com/rss/search?q=x", "g")
    one, two = (publisher_article(source, item(o), item(o).url) for o in ("Ledger", "Wire"))
    assert one.title == two.title == one.text == "Nvidia shares fall on export news"
    assert one.content_hash != two.content_hash
