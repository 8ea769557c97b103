"""Editing the feed list: a configured feed removed stays disabled, a re-added feed keeps
its settings, another URL of a stored feed is refused, OPML categories are kept as tags.

Real SQLite file, real HTTP (the demo's feed server on 127.0.0.1), the real command for
exit codes and messages."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from chipwatch_cli import run_chipwatch

from chipwatch import manage, pipeline
from chipwatch.classify import load_corpus
from chipwatch.demo.server import serve_demo_feeds
from chipwatch.errors import UsageError
from chipwatch.settings import Settings, load_settings

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture()
def feeds() -> Iterator[list[str]]:
    with serve_demo_feeds(load_corpus(REPO / "config" / "corpus")) as (_, urls):
        yield urls


def write_config(tmp_path: Path, sources: list[str]) -> Path:
    listed = "".join(f'[[sources]]\nurl = "{url}"\ntags = ["listed"]\n' for url in sources)
    path = tmp_path / "chipwatch.toml"
    path.write_text(
        f'data_dir = "{tmp_path / "data"}"\n'
        f'topics = "{REPO / "config" / "topics.toml"}"\n'
        f'corpus_dir = "{REPO / "config" / "corpus"}"\n'
        "[fetch]\nallow_private_networks = true\n" + listed,
        encoding="utf-8",
    )
    return path


def rows(settings: Settings) -> dict[str, tuple[int, str, str | None, int, str | None]]:
    with sqlite3.connect(settings.database_path) as db:
        query = "SELECT url, id, name, article_text, enabled, tags FROM sources ORDER BY id"
        return {url: tuple(rest) for url, *rest in db.execute(query)}


def test_removing_a_configured_feed_disables_it_for_good(tmp_path: Path, feeds: list[str]) -> None:
    config = write_config(tmp_path, feeds[:1])
    removed = run_chipwatch(config, "feeds", "remove", feeds[0])
    assert removed.returncode == 0, removed.stderr
    assert "disabled feed 1" in removed.stdout and str(config) in removed.stdout
    # Later commands sync the config again: the feed is not back, not under a new id.
    listing = run_chipwatch(config, "feeds", "list").stdout
    assert listing.count(feeds[0]) == 1 and "\n1   off" in listing
    polled = run_chipwatch(config, "poll", "--no-classify")
    assert polled.returncode == 0, polled.stderr
    assert "polled 0 feeds" in polled.stdout
    settings = load_settings(config, environ={})
    assert [(r[0], r[3]) for r in rows(settings).values()] == [(1, 0)]

    # A feed added by hand is deleted; its articles would stay.
    settings = replace(settings, sources=())
    manage.add_feed(settings, feeds[1])
    assert manage.remove_feed(settings, feeds[1]).startswith("removed feed 2")
    assert feeds[1] not in rows(settings)
    # `feeds add` enables the configured one again.
    assert "enabled again" in manage.add_feed(load_settings(config, environ={}), feeds[0])


def test_re_adding_keeps_settings_and_duplicates_are_refused(
    tmp_path: Path, feeds: list[str]
) -> None:
    config = write_config(tmp_path, [])
    settings = load_settings(config, environ={})
    assert manage.add_feed(settings, feeds[0], "Presse", "fetch").startswith("added feed 1")
    again = manage.add_feed(settings, feeds[0])
    assert "already in the list" in again and "kept" in again
    assert rows(settings)[feeds[0]][1:3] == ("Presse", "fetch")
    assert manage.add_feed(settings, feeds[0], article_text="feed") == (
        "updated feed 1: article_text = 'feed'"
    )
    assert rows(settings)[feeds[0]][1:3] == ("Presse", "feed")

    for other in (feeds[0] + "?utm_source=mail", feeds[0] + "#top", feeds[0] + "/"):
        with pytest.raises(UsageError, match="is feed 1 already"):
            manage.add_feed(settings, other)
    refused = run_chipwatch(config, "feeds", "add", feeds[0].replace("http:", "HTTP:"))
    assert refused.returncode == 2
    assert refused.stderr.startswith("error: refused:") and "Traceback" not in refused.stderr
    assert len(rows(settings)) == 1


def test_opml_categories_are_kept_as_tags_and_exported(tmp_path: Path, feeds: list[str]) -> None:
    config = write_config(tmp_path, feeds[2:3])  # tags = ["listed"] in the config
    opml = tmp_path / "in.opml"
    opml.write_text(
        '<?xml version="1.0"?><opml version="2.0"><head/><body>'
        f'<outline text="Trade"><outline text="FR" xmlUrl="{feeds[0]}" category="chips"/>'
        "</outline>"
        f'<outline text="EN" xmlUrl="{feeds[1]}" category="/wires,english"/>'
        f'<outline text="again" xmlUrl="{feeds[1]}/"/>'
        "</body></opml>",
        encoding="utf-8",
    )
    imported = run_chipwatch(config, "feeds", "import", str(opml))
    assert imported.returncode == 0, imported.stderr
    assert "imported 2 new feeds" in imported.stdout
    assert f"refused: {feeds[1]}/ is the same feed as {feeds[1]}" in imported.stdout

    exported = run_chipwatch(config, "feeds", "export")
    assert exported.returncode == 0, exported.stderr
    assert 'category="Trade,chips"' in exported.stdout
    assert 'category="wires,english"' in exported.stdout
    assert 'category="listed"' in exported.stdout  # tags of the config file's sources

    # A round trip into a fresh database keeps every feed's tags.
    (tmp_path / "out.opml").write_text(exported.stdout, encoding="utf-8")
    (tmp_path / "fresh").mkdir()
    fresh = write_config(tmp_path / "fresh", [])
    assert run_chipwatch(fresh, "feeds", "import", str(tmp_path / "out.opml")).returncode == 0
    settings = load_settings(fresh, environ={})
    tags = {url: row[4] for url, row in rows(settings).items()}
    assert tags == {
        feeds[2]: '["listed"]',
        feeds[0]: '["Trade", "chips"]',
        feeds[1]: '["wires", "english"]',
    }


def test_opml_errors_name_the_file_not_a_configuration(tmp_path: Path) -> None:
    config = write_config(tmp_path, [])
    missing = run_chipwatch(config, "feeds", "import", str(tmp_path / "absent.opml"))
    assert missing.returncode == 2
    assert missing.stderr.strip() == (
        f"error: {tmp_path / 'absent.opml'}: cannot read OPML: No such file or directory"
    )
    broken = tmp_path / "broken.opml"
    broken.write_text("<opml><body><outline", encoding="utf-8")
    result = run_chipwatch(config, "feeds", "import", str(broken))
    assert result.returncode == 2 and result.stderr.startswith(f"error: {broken}: line 1")


def test_sources_in_the_config_with_another_url_of_a_feed_are_not_stored_twice(
    tmp_path: Path, feeds: list[str]
) -> None:
    config = write_config(tmp_path, [feeds[0], feeds[0] + "/"])
    settings = load_settings(config, environ={})
    pipeline.sync_config_sources(settings, pipeline.open_sessions(settings))
    assert list(rows(settings)) == [feeds[0]]


def test_a_language_that_is_no_language_code_is_refused(tmp_path: Path, feeds: list[str]) -> None:
    # It is stored, compared with each article's language and shown in the site.
    config = write_config(tmp_path, [])
    result = run_chipwatch(config, "feeds", "add", feeds[0], "--language", "<script>")
    assert result.returncode == 2 and "--language: not a language code" in result.stderr
    assert "Traceback" not in result.stderr
    added = run_chipwatch(config, "feeds", "add", feeds[0], "--language", "pt-BR")
    assert added.returncode == 0, added.stderr
    # A line break in a name would split the rows of `feeds list` and `feeds status`.
    named = run_chipwatch(config, "feeds", "add", feeds[0], "--name", "Wire\nservice")
    assert named.returncode == 2 and "--name: a line break" in named.stderr
    # A blank name was stored as the feed's name; a long one cut at the column's length.
    for name, says in (("", "--name: empty"), ("   ", "--name: empty"), ("n" * 301, "at most 300")):
        refused = run_chipwatch(config, "feeds", "add", feeds[0], "--name", name)
        assert refused.returncode == 2 and says in refused.stderr, refused.stderr


def test_an_internationalised_host_is_one_feed_however_it_is_spelt() -> None:
    from chipwatch.store.source_admin import feed_key

    # Stored as two feeds before: the same host in Unicode and in its DNS (punycode) form.
    assert feed_key("http://bücher.example/feed") == feed_key("http://xn--bcher-kva.example/feed")
    assert feed_key("http://Bücher.example:8080/feed") == "xn--bcher-kva.example:8080/feed"
    assert feed_key("http://bücher.example/feed") != feed_key("http://buecher.example/feed")


def test_a_path_is_one_feed_however_its_characters_are_escaped() -> None:
    from chipwatch.store.source_admin import feed_key

    unicode = feed_key("https://presse.example/actualités/flux?rubrique=économie")
    escaped = feed_key("https://presse.example/actualit%C3%A9s/flux?rubrique=%C3%A9conomie")
    assert (
        unicode
        == escaped
        == feed_key("https://presse.example/actualit%c3%a9s/flux?rubrique=économie")
    )
    assert feed_key("https://ex.example/%7Euser/feed") == feed_key("https://ex.example/~user/feed")
    # An escaped separator names another resource: it stays apart.
    assert feed_key("https://ex.example/a%2Fb/feed") != feed_key("https://ex.example/a/b/feed")
    assert feed_key("https://ex.example/f?a=1%262") != feed_key("https://ex.example/f?a=1&2")
    assert feed_key("https://ex.example/%FF/feed") == "ex.example/%FF/feed"  # not UTF-8: as is
