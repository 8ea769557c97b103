"""The digest HTML in Debian's headless chromium: nothing overflows at phone or desk width."""

from __future__ import annotations

from pathlib import Path

import browser
import pytest
from test_digest_data import (
    BUSY_WEEK,
    NOW,
    TOPICS,
    add_article,
    make_settings,
    open_db,
    seed,
    seed_busy_week,
)

from chipwatch.digest import FeedHealth, preview

pytestmark = pytest.mark.skipif(not browser.available(), reason=browser.SKIP_REASON)

LONG_WORD = "Exportkontrollverschärfungsdurchführungsverordnungsentwurf" * 3


@pytest.fixture(scope="module")
def digest_html(tmp_path_factory: pytest.TempPathFactory) -> str:
    tmp = tmp_path_factory.mktemp("browser")
    settings = make_settings(tmp)
    with open_db(settings)() as session:
        seed(session)
        # Worst cases for a narrow screen: an unbroken word and a very long link.
        add_article(
            session,
            title=LONG_WORD,
            text=LONG_WORD + " " + "x" * 300,
            source="S" * 120,
            url="https://long.example/" + "a" * 400,
        )
        session.commit()
        health = [FeedHealth("F" * 200, "https://feeds.example/" + "b" * 300, True, 4, "E" * 400)]
        rendered = preview(session, settings, TOPICS, health, tmp / "digest.html", now=NOW)
    return rendered.html


@pytest.mark.parametrize("width", [375, 1024])
def test_nothing_overflows_horizontally(digest_html: str, width: int) -> None:
    result = browser.measure(digest_html, width)
    assert result["innerWidth"] == width
    assert result["scrollWidth"] <= result["innerWidth"], result
    assert result["overflowing"] == [], result


def test_screenshot_at_phone_width(digest_html: str, tmp_path: Path) -> None:
    png = browser.screenshot(digest_html, 375, tmp_path / "digest-375.png", height=1200)
    assert png.stat().st_size > 10_000


@pytest.fixture(scope="module")
def busy_week(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, list[str]]:
    tmp = tmp_path_factory.mktemp("busy")
    settings = make_settings(tmp)
    with open_db(settings)() as session:
        seed_busy_week(session)
        session.commit()
        rendered = preview(session, settings, TOPICS, [], tmp / "busy.html", now=NOW)
    return rendered.html, [row[0] for row in BUSY_WEEK]


@pytest.mark.parametrize("width", [375, 1024])
def test_busy_week_fits_and_shows_every_headline(
    busy_week: tuple[str, list[str]], width: int, tmp_path: Path
) -> None:
    html, titles = busy_week
    result = browser.measure(html, width, height=3000)
    assert result["scrollWidth"] <= result["innerWidth"], result
    assert result["overflowing"] == [], result
    text = browser.visible_text(html, width)
    for title in titles:  # each grouped article's headline is on the page, as text
        assert title in text, title
    png = browser.screenshot(html, width, tmp_path / f"busy-{width}.png", height=2400)
    assert png.stat().st_size > 10_000
