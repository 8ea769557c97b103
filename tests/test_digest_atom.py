"""Atom feeds per topic: well-formed, escaped, only http(s) links."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from test_digest_data import NOW, TOPICS, make_settings, open_db, seed

from chipwatch.digest import write_feeds

pytestmark = pytest.mark.usefixtures("database_url")  # on SQLite and PostgreSQL

A = "{http://www.w3.org/2005/Atom}"


def test_feeds_per_topic_and_novel(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    with open_db(settings)() as session:
        seed(session)
        paths = write_feeds(session, settings, TOPICS, NOW)
    names = sorted(p.name for p in paths)
    assert names == sorted([f"{t.id}.xml" for t in TOPICS] + ["novel.xml"])
    assert all(p.parent == settings.data_dir / "feeds" for p in paths)

    licensing = ET.parse(settings.data_dir / "feeds" / "ai-chip-licensing.xml").getroot()
    assert licensing.tag == f"{A}feed"
    (entry,) = licensing.findall(f"{A}entry")
    assert "H20" in entry.findtext(f"{A}title")
    assert "Also reported" in entry.findtext(f"{A}summary")
    related = entry.findall(f"{A}link[@rel='related']")
    assert len(related) == 2

    novel = ET.parse(settings.data_dir / "feeds" / "novel.xml").getroot()
    assert "DUV" in novel.find(f"{A}entry").findtext(f"{A}title")

    hostile = (settings.data_dir / "feeds" / "china-response.xml").read_text(encoding="utf-8")
    for needle in ("<script", "onerror", "javascript:", "<img", "tracker.example"):
        assert needle not in hostile
    root = ET.fromstring(hostile)
    (entry,) = root.findall(f"{A}entry")
    assert entry.findtext(f"{A}title") == "Chip curbs widen"
    assert entry.find(f"{A}link") is None  # its javascript: URL was dropped
    # Stable ids across rewrites.
    with open_db(settings)() as session:
        write_feeds(session, settings, TOPICS, NOW)
    again = ET.parse(settings.data_dir / "feeds" / "china-response.xml").getroot()
    assert again.find(f"{A}entry").findtext(f"{A}id") == entry.findtext(f"{A}id")


def test_a_feed_that_cannot_be_written_is_logged_and_the_others_are_written(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(tmp_path)
    blocked = settings.data_dir / "feeds" / "security-debate.xml.tmp"
    blocked.mkdir(parents=True)  # a folder where the temporary file goes: an OSError
    with open_db(settings)() as session:
        seed(session)
        paths = write_feeds(session, settings, TOPICS, NOW)  # raised IsADirectoryError
    names = {p.name for p in paths}
    assert "security-debate.xml" not in names and "ai-chip-licensing.xml" in names
    assert len(names) == len(TOPICS)  # the four other topics and novel.xml
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and "security-debate.xml" in errors[0]
