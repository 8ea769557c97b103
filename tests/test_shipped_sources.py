"""The shipped source list (config/chipwatch.toml): every entry documented, queries
time-bounded, five languages, the primary sources present."""

from __future__ import annotations

from collections import Counter
from datetime import date
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from chipwatch.resolve import NewsSearch, article_text_mode, news_search_kind
from chipwatch.settings import SourceConfig, load_settings
from chipwatch.types import Source

SHIPPED = Path(__file__).resolve().parents[1] / "config" / "chipwatch.toml"
SETTINGS = load_settings(SHIPPED, environ={})
SOURCES = SETTINGS.sources
LANGUAGES = ("en", "fr", "de", "it", "es")


def kind(source: SourceConfig) -> NewsSearch | None:
    return news_search_kind(source.url, SETTINGS.news_search)


@pytest.mark.parametrize("source", SOURCES, ids=lambda s: s.name)
def test_every_entry_says_what_it_covers_and_how_it_was_checked(source: SourceConfig) -> None:
    assert source.name and source.covers, "covers is missing"
    assert source.checked_against, "checked_against is missing"
    assert source.checked_how, "checked_how is missing"
    checked = date.fromisoformat(source.checked_on)  # a missing or bad date fails here
    assert date(2026, 1, 1) <= checked <= date.today()
    assert source.url.startswith("https://")
    assert source.language


def test_no_source_twice() -> None:
    assert not [url for url, n in Counter(s.url for s in SOURCES).items() if n > 1]


def test_news_search_queries_ask_for_recent_items() -> None:
    for source in SOURCES:
        query = parse_qs(urlsplit(source.url).query)
        if kind(source) is NewsSearch.GOOGLE:
            assert "when:7d" in query["q"][0], source.name
            assert {"hl", "gl", "ceid"} <= set(query), source.name
        elif kind(source) is NewsSearch.BING:
            assert query["qft"] == ['interval="7"'] and query["format"] == ["rss"], source.name


def test_five_languages_for_the_topics_and_novel_subjects() -> None:
    google = Counter(s.language for s in SOURCES if kind(s) is NewsSearch.GOOGLE)
    bing = Counter(s.language for s in SOURCES if kind(s) is NewsSearch.BING)
    for language in LANGUAGES:
        assert google[language] >= 5, language  # five topics, the novel subjects folded in
        assert bing[language] == 1, language
    novel = [s for s in SOURCES if "Entity List" in s.covers]
    assert {s.language for s in novel} == set(LANGUAGES)


def test_primary_sources_and_specialist_outlets() -> None:
    hosts = {urlsplit(s.url).hostname for s in SOURCES}
    assert "www.federalregister.gov" in hosts  # BIS rules and notices
    assert {"ec.europa.eu", "www.consilium.europa.eu"} <= hosts  # the EU
    assert "www.meti.go.jp" in hosts  # Japan's export-control authority
    outlets = [s for s in SOURCES if kind(s) is None and s.language in LANGUAGES]
    assert {s.language for s in outlets} == set(LANGUAGES)


def test_news_search_sources_fetch_articles_by_default() -> None:
    for i, config in enumerate(SOURCES):
        source = Source(i, config.url, config.name, article_text=config.article_text)
        expected = "fetch" if kind(config) else "feed"
        assert article_text_mode(source, SETTINGS.news_search) == expected, config.name
