"""The review site in Debian's chromium, driven by Playwright, against `chipwatch serve`
on loopback: a keyboard-only relabel and its effect after the next classify, a digest
link's confirmation, layout at phone and desktop widths, axe, hostile feed markup.

Screenshots of each page go to $CHIPWATCH_SCREENS (default /work/notes/screens/review
where that folder exists), for the closing note; they are not part of the repository."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import pytest
from review_site import (
    HOSTILE_TITLE,
    PASSWORD,
    USER,
    ReviewSite,
    run_cli,
)
from sqlalchemy import select

from chipwatch.pipeline import open_sessions
from chipwatch.store.models import ArticleRow, ClassificationRow, LabelRow

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
WIDTHS = (375, 1280)
SCREENS = Path(os.environ.get("CHIPWATCH_SCREENS", "/work/notes/screens/review"))

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="Debian chromium not installed (/usr/bin/chromium): bash scripts/ensure-chromium.sh",
)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield launched
        launched.close()


def _login_by_keyboard(page: Any, base: str) -> None:
    page.goto(f"{base}/login")
    page.locator("#name").focus()  # autofocus, unless the tab is in the background
    page.keyboard.type(USER)
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r".*/stories$"))


@pytest.fixture()
def page(browser: Any, site: ReviewSite) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    tab = context.new_page()
    _login_by_keyboard(tab, site.url)
    yield tab
    context.close()


def _tab_to(page: Any, element_id: str, limit: int = 80) -> None:
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement && document.activeElement.id") == element_id:
            return
    raise AssertionError(f"#{element_id} not reached with the Tab key")


def _classification(site: ReviewSite, article_id: int) -> ClassificationRow | None:
    with open_sessions(site.settings)() as session:
        return session.get(ClassificationRow, article_id)


def test_relabel_with_the_keyboard_counts_at_the_next_classify(page: Any, site: ReviewSite) -> None:
    # Open a story: the first relevant lead on the stories page.
    first = page.locator("article.story h3 a").first
    href = first.get_attribute("href")
    article_id = int(href.rsplit("/", 1)[1])
    before = _classification(site, article_id)
    assert before is not None and before.relevant, "a relevant lead to correct"
    first.focus()
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(rf".*/articles/{article_id}$"))
    _tab_to(page, "mark-not-relevant")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r".*done=labelled"))
    assert "counts at the classifier's next fit" in page.locator(".notice").inner_text()
    assert page.locator("#mark-not-relevant").get_attribute("aria-pressed") == "true"
    with open_sessions(site.settings)() as session:
        label = session.get(LabelRow, article_id)
        assert label is not None and label.relevant is False and label.topics == []
    classified = run_cli(site.config, "classify", "--again")
    assert classified.returncode == 0, classified.stderr
    after = _classification(site, article_id)
    assert after is not None and after.relevant is False


def _digest_html(site: ReviewSite) -> str:
    message = message_from_bytes(
        sorted(site.maildir.glob("new/*"))[0].read_bytes(), policy=policy.default
    )
    return message.get_body(preferencelist=("html",)).get_content()  # type: ignore[union-attr]


def _labels(site: ReviewSite) -> list[tuple[int, bool]]:
    with open_sessions(site.settings)() as session:
        return [(r.article_id, r.relevant) for r in session.scalars(select(LabelRow))]


def test_a_digest_link_leads_to_a_confirmation(browser: Any, site: ReviewSite) -> None:
    links = re.findall(r'href="(http://127\.0\.0\.1:\d+/d/[^"]+)"', _digest_html(site))
    wrong_topic = links[-1]  # each item: "not relevant", then "wrong topic"
    context = browser.new_context()  # a reader who is not logged in
    tab = context.new_page()
    before = _labels(site)
    tab.goto(wrong_topic)
    assert tab.locator("h1").inner_text() == "Confirm a correction"
    assert _labels(site) == before  # the GET changed nothing
    boxes = tab.locator("input[type=checkbox]")
    for i in range(boxes.count()):
        boxes.nth(i).uncheck()
    tab.locator("label", has_text="Security debate").click()
    tab.locator("#confirm").click()
    assert tab.locator("h1").inner_text() == "Correction recorded"
    changed = [label for label in _labels(site) if label not in before]
    assert len(changed) == 1
    with open_sessions(site.settings)() as session:
        label = session.get(LabelRow, changed[0][0])
        assert label is not None and label.topics == ["security-debate"]
    context.close()


def _pages(site: ReviewSite) -> dict[str, str]:
    with open_sessions(site.settings)() as session:
        article_id = session.scalars(
            select(ArticleRow.id)
            .join(ClassificationRow)
            .where(ClassificationRow.relevant.is_(True))
            .order_by(ArticleRow.id)
        ).first()
    return {
        "stories": "/stories",
        "article": f"/articles/{article_id}",
        "topics": "/topics",
        "suggestions": "/topics/suggestions",
        "sources": "/sources",
        "outbox": "/outbox",
        "account": "/account",
    }


def _signed_pages(site: ReviewSite) -> dict[str, str]:
    """The pages a digest's links open, without login."""
    message = message_from_bytes(
        sorted(site.maildir.glob("new/*"))[0].read_bytes(), policy=policy.default
    )
    links = re.findall(r'href="(http://127\.0\.0\.1:\d+/d/[^"]+)"', _digest_html(site))
    unsubscribe = str(message["List-Unsubscribe"]).strip("<>")
    return {
        "login": "/login",
        "confirm-not-relevant": links[0].removeprefix(site.url),
        "confirm-wrong-topic": links[1].removeprefix(site.url),
        "unsubscribe": unsubscribe.removeprefix(site.url),
        "link-refused": "/d/not-a-token",
    }


def _overflow(tab: Any) -> dict[str, Any]:
    return tab.evaluate(
        """() => {
        const limit = document.documentElement.clientWidth, wide = [];
        for (const el of document.body.querySelectorAll('*')) {
          const r = el.getBoundingClientRect();
          if (r.right > limit + 1 && !el.closest('.table-wrap'))
            wide.push(el.tagName + '.' + el.className);
        }
        return {scroll: document.documentElement.scrollWidth, limit, wide: wide.slice(0, 8)};
    }"""
    )


@pytest.mark.parametrize("width", WIDTHS)
def test_pages_fit_the_width(browser: Any, site: ReviewSite, width: int) -> None:
    context = browser.new_context(viewport={"width": width, "height": 900})
    tab = context.new_page()
    _login_by_keyboard(tab, site.url)
    SCREENS.mkdir(parents=True, exist_ok=True)
    for name, path in _pages(site).items():
        _measure_and_shoot(tab, site.url + path, name, width)
    context.close()
    anonymous = browser.new_context(viewport={"width": width, "height": 900})
    reader = anonymous.new_page()
    for name, path in _signed_pages(site).items():
        _measure_and_shoot(reader, site.url + path, name, width)
    anonymous.close()


def _measure_and_shoot(tab: Any, address: str, name: str, width: int) -> None:
    tab.goto(address)
    measured = _overflow(tab)
    assert measured["scroll"] <= measured["limit"], (name, width, measured)
    tab.screenshot(path=str(SCREENS / f"{name}-{width}.png"), full_page=True)


def test_no_serious_accessibility_violations(page: Any, site: ReviewSite) -> None:
    from axe_playwright_python.sync_playwright import Axe

    axe = Axe()
    problems = {}
    for name, path in {**_pages(site), **_signed_pages(site)}.items():
        page.goto(site.url + path)
        violations = axe.run(page).response["violations"]
        serious = [v["id"] for v in violations if v["impact"] in ("serious", "critical")]
        if serious:
            problems[name] = serious
    assert problems == {}


def test_hostile_feed_markup_is_inert(page: Any, site: ReviewSite) -> None:
    with open_sessions(site.settings)() as session:
        article_id = session.scalars(
            select(ArticleRow.id).where(ArticleRow.url == "https://example.org/hostile")
        ).one()
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    for path in (f"/articles/{article_id}", "/stories?min=0", "/sources"):
        page.goto(site.url + path)
        state = page.evaluate(
            """() => ({
            pwned: window.cwPwned === undefined ? null : window.cwPwned,
            scripts: document.scripts.length,
            frames: document.querySelectorAll('iframe, img, svg:not(.chart), style').length,
            handlers: [...document.querySelectorAll('*')].filter(
                el => [...el.attributes].some(a => a.name.startsWith('on'))).length,
            jsLinks: document.querySelectorAll('a[href^="javascript"]').length,
            foreignForms: [...document.forms].filter(
                f => !f.action.startsWith(location.origin)).length,
            visible: getComputedStyle(document.body).display !== 'none',
        })"""
        )
        assert state == {
            "pwned": None,
            "scripts": 0,
            "frames": 0,
            "handlers": 0,
            "jsLinks": 0,
            "foreignForms": 0,
            "visible": True,
        }, (path, state)
    page.goto(f"{site.url}/articles/{article_id}")
    assert "<script>" not in page.locator("h1").inner_text()  # the tag was stripped
    assert HOSTILE_TITLE.startswith(page.locator("h1").inner_text().split(" ")[0])
    assert dialogs == []
