"""Stored stories: incremental grouping, updates across digests, the export, the headlines.

A real SQLite file, the real multilingual USE, real Maildir delivery, the real command.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from chipwatch_cli import run_chipwatch
from sqlalchemy import select
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

from chipwatch.digest import build_digests, preview, send_pending
from chipwatch.digest.assign import assign, stored_stories
from chipwatch.digest.select import select_items
from chipwatch.digest.stories import default_embedder
from chipwatch.extract import canonical_url
from chipwatch.settings import DigestSettings, Recipient
from chipwatch.store.models import ArticleRow, ClassificationRow, StoryMemberRow

READER = Recipient("reader@localhost", min_relevance=0.0)

RESUME_FR = dict(
    title="Les États-Unis autorisent Nvidia à revendre ses puces H20 en Chine contre 15 %",
    text="Howard Lutnick a confirmé que Nvidia et AMD verseront 15 % de leurs revenus chinois "
    "tirés des H20 et MI308 au gouvernement américain en échange des licences d'exportation.",
    source="Le Courrier Tech",
    language="fr",
)


class Counting:
    """The real embedder, counting the texts it is asked for."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        self.texts += list(texts)
        return default_embedder()(texts)


def items_of(session, now=NOW):  # noqa: ANN001, ANN201
    return select_items(session, READER, DigestSettings(lookback_days=7), now)


@pytest.mark.usefixtures("database_url")  # SQLite and PostgreSQL: the window is streamed
def test_a_new_article_joins_its_story_without_regrouping(tmp_path: Path) -> None:
    factory = open_db(make_settings(tmp_path))
    with factory() as session:
        ids = seed(session)
        session.commit()
        first = Counting()
        before = assign(session, items_of(session), first)
        assert len(first.texts) == len(before)
        new_id = add_article(session, **RESUME_FR, published=NOW - timedelta(minutes=30))
        session.commit()
        second = Counting()
        after = assign(session, items_of(session), second)
        assert len(second.texts) == 1  # only the new article is embedded and grouped
        assert {k: after[k] for k in before} == before  # nothing else moved
        assert after[new_id] == after[ids["h20_en"]] == after[ids["h20_fr"]]
        assert after[ids["magnets"]] != after[ids["h20_en"]]
        stored = session.scalars(select(StoryMemberRow)).all()
        assert len(stored) == len(after)


def test_digest_shows_each_grouped_articles_headline(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    with open_db(settings)() as session:
        ids = seed(session)
        session.commit()
        rendered = preview(session, settings, TOPICS, [], tmp_path / "d.html", now=NOW)
        titles = {i: session.get(ArticleRow, i).title for i in (ids["h20_en"], ids["h20_fr"])}
    html = rendered.html
    story = next(
        s for sec in rendered.sections for s in sec.stories if ids["h20_en"] in s.article_ids
    )
    assert ids["h20_fr"] in story.article_ids  # grouped, not a story of its own
    for title in titles.values():
        assert title.replace("'", "&#39;") in html
    assert "Le Quotidien Tech" in html and "Also reported (2)" in html
    assert rendered.text.count("Puces H20 : Nvidia pourra revendre") == 1


def test_a_continuing_story_is_shown_as_an_update_once(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    with open_db(settings)() as session:
        en = add_article(
            session,
            title="Washington lets Nvidia resume H20 sales to China for a 15% cut",
            text="Commerce Secretary Howard Lutnick confirmed that Nvidia and AMD will hand 15% "
            "of their China revenue from H20 and MI308 chips to the US government in exchange "
            "for export licences.",
            source="Harbor Wire",
            published=NOW - timedelta(hours=5),
        )
        session.commit()
        (first,) = build_digests(session, settings, TOPICS, [], NOW)
        assert send_pending(session, settings, NOW).sent == [first]

        later = NOW + timedelta(hours=20)
        fr = add_article(session, **RESUME_FR, published=later - timedelta(hours=2))
        other = add_article(
            session,
            title="Japan adds 23 chipmaking tools to its export licence list",
            text="Tokyo's trade ministry will require permits for 23 kinds of lithography tools.",
            source="Harbor Wire",
            published=later - timedelta(hours=1),
        )
        session.commit()
        items = select_items(session, READER, settings.digest, later)
        stories = stored_stories(session, items, recipient=READER.address)
        update = next(s for s in stories if fr in s.article_ids)
        assert update.is_update and update.story_id == en
        assert update.earlier == ("Washington lets Nvidia resume H20 sales to China for a 15% cut",)
        assert not next(s for s in stories if other in s.article_ids).is_update

        (second,) = build_digests(session, settings, TOPICS, [], later)
        assert send_pending(session, settings, later).sent == [second]
        html = _html_of_last_message(settings.maildir_path)
        assert html.count("Update</b> to a story in an earlier digest") == 1
        assert html.count("Les États-Unis autorisent Nvidia") == 1  # once, as the news
        assert "chipwatch: 2 stories" in html

        # Nothing new about it afterwards: it is not shown again.
        nothing = build_digests(session, settings, TOPICS, [], later + timedelta(hours=1))
        assert nothing == []


def _html_of_last_message(maildir: Path) -> str:
    import mailbox

    box = mailbox.Maildir(maildir)
    message = max(box, key=lambda m: m["Date"] and m.get_date())
    for part in message.walk():
        if part.get_content_type() == "text/html":
            return part.get_payload(decode=True).decode("utf-8")
    raise AssertionError("no HTML part")


@pytest.fixture()
def config_with_db(tmp_path: Path) -> tuple[Path, dict[str, int]]:
    settings = make_settings(tmp_path)
    with open_db(settings)() as session:
        ids = seed(session)
        session.commit()
    path = tmp_path / "chipwatch.toml"
    path.write_text(f'data_dir = "{settings.data_dir}"\n', encoding="utf-8")
    return path, ids


def test_export_round_trips_every_relevant_article_once(
    config_with_db: tuple[Path, dict[str, int]],
) -> None:
    config, ids = config_with_db
    result = run_chipwatch(config, "stories", "--json")
    assert result.returncode == 0, result.stderr
    exported = json.loads(result.stdout)
    assert json.loads(json.dumps(exported, ensure_ascii=False)) == exported
    settings_dir = config.parent
    with open_db(make_settings(settings_dir))() as session:
        relevant = {
            a.id: a
            for a, c in session.execute(
                select(ArticleRow, ClassificationRow).join(
                    ClassificationRow, ClassificationRow.article_id == ArticleRow.id
                )
            )
            if c.relevant
        }
        grouped = {m.article_id: m.story_id for m in session.scalars(select(StoryMemberRow))}
    seen = [a["id"] for story in exported for a in story["articles"]]
    assert sorted(seen) == sorted(relevant)  # every relevant article in exactly one story
    for story in exported:
        assert set(story) == {"id", "lead", "topics", "articles"}
        assert story["lead"] in {a["id"] for a in story["articles"]}
        for article in story["articles"]:
            row = relevant[article["id"]]
            assert grouped[row.id] == story["id"]
            assert article["url"] == row.url and article["title"] == row.title
            assert article["outlet"] == row.source_name
            assert article["language"] == row.language
            assert article["canonical_url"] in (None, canonical_url(row.url))
    h20 = next(s for s in exported if ids["h20_en"] in {a["id"] for a in s["articles"]})
    assert ids["h20_fr"] in {a["id"] for a in h20["articles"]}
    assert h20["topics"][0] == "ai-chip-licensing"
    assert h20["articles"][0]["canonical_url"].startswith("https://")
    again = run_chipwatch(config, "stories", "--json")
    assert json.loads(again.stdout) == exported  # stored: the same stories the next time

    recent = json.loads(run_chipwatch(config, "stories", "--json", "--since", "2025-08-12").stdout)
    assert recent and {s["id"] for s in recent} < {s["id"] for s in exported}
    listing = run_chipwatch(config, "stories").stdout
    assert f"story {h20['id']}:" in listing and "Le Quotidien Tech" in listing


def test_export_refuses_a_bad_date(config_with_db: tuple[Path, dict[str, int]]) -> None:
    config, _ = config_with_db
    result = run_chipwatch(config, "stories", "--since", "last tuesday")
    assert result.returncode == 2
    assert "--since" in result.stderr and "Traceback" not in result.stderr
    empty = run_chipwatch(config, "stories", "--since", "")  # was every story, unfiltered
    assert empty.returncode == 2 and "--since" in empty.stderr


# The development each BUSY_WEEK article reports (our labels, in the fixture's order).
BUSY_EVENTS = (
    "resumed",
    "resumed",
    "resumed",
    "summons",
    "summons",
    "revenue",
    "revenue",
    "write-off",
    "bill",
    "magnets",
    "magnets",
)


@pytest.mark.parametrize("cap", [1, 10])
def test_busy_week_every_headline_visible_and_a_story_counts_once(tmp_path: Path, cap: int) -> None:
    settings = make_settings(tmp_path)
    settings = settings.__class__(
        **{**settings.__dict__, "digest": DigestSettings(max_items_per_topic=cap)}
    )
    with open_db(settings)() as session:
        ids = seed_busy_week(session)
        session.commit()
        rendered = preview(session, settings, TOPICS, [], tmp_path / "busy.html", now=NOW)
    shown = [story for section in rendered.sections for story in section.stories]
    event_of = dict(zip(ids, BUSY_EVENTS, strict=True))
    # Each development is one story, whole: what a reader sees is one item per development.
    groups = {frozenset(event_of[i] for i in story.article_ids) for story in shown}
    assert all(len(g) == 1 for g in groups)
    for section in rendered.sections:
        assert len(section.stories) <= cap  # stories are capped, however many articles
    visible = [row[0] for row in BUSY_WEEK if row[0] in rendered.text]
    if cap == 10:
        assert len(visible) == len(BUSY_WEEK)  # every relevant headline, as a lead or under one
        assert len(shown) == len(set(BUSY_EVENTS))  # every development, once
    else:
        # The licensing section holds one story of three articles: all three headlines.
        licensing = next(s for s in rendered.sections if s.topic_id == "ai-chip-licensing")
        (story,) = licensing.stories
        assert len(story.article_ids) == 3
        assert all(BUSY_WEEK[k][0] in rendered.text for k in range(3))


def test_a_backlog_is_grouped_on_the_texts_the_digest_reads(tmp_path: Path) -> None:
    from chipwatch.digest.export import grouping_item
    from chipwatch.store import stories as repo

    settings = make_settings(tmp_path)
    with open_db(settings)() as session:
        for title, text, language in [
            (
                "<b>Commerce</b> clears Nvidia &amp; AMD for H20 sales",
                "date 2025-08-12\nIntroduction\nSubscribe to our newsletter\n"
                "The Commerce Department cleared Nvidia and AMD to resume H20 and MI308 "
                "sales to China &lt;script&gt;alert(1)&lt;/script&gt; after weeks of talks.\r\n"
                "Officials said licences would follow within days.",
                "en",
            ),
            (
                "Pékin convoque Nvidia",
                "Le régulateur chinois a convoqué Nvidia au sujet de prétendues portes "
                "dérobées dans les puces H20, selon un communiqué publié dimanche.",
                "",
            ),
        ]:
            add_article(session, title=title, text=text, language=language)
        session.commit()
        digest_items = {item.article_id: item for item in items_of(session)}
        rows = repo.ungrouped_relevant(session)
        assert len(rows) == len(digest_items) == 2
        for row in rows:
            grouped, shown = grouping_item(row), digest_items[row.id]
            assert (grouped.title, grouped.text, grouped.published) == (
                shown.title,
                shown.text,
                shown.published,
            )
            assert grouped.language == shown.language
        first = grouping_item(rows[0])
        assert first.title == "Commerce clears Nvidia & AMD for H20 sales"
        assert first.text.startswith("The Commerce Department") and "script" not in first.text
