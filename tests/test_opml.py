"""OPML import and export."""

from __future__ import annotations

from pathlib import Path

import pytest

from chipwatch.errors import UsageError
from chipwatch.opml import parse_opml, read_opml, write_opml
from chipwatch.settings import SourceConfig

NESTED = b"""<?xml version="1.0"?>
<opml version="1.0"><head><title>mine</title></head><body>
  <outline text="Policy">
    <outline text="Wire" title="Wire service" type="rss" xmlUrl="https://wire.test/rss"/>
    <outline text="Deeper"><outline text="Gazette" xmlUrl="https://gazette.test/atom"
       language="fr" fullText="true"/></outline>
  </outline>
  <outline text="Dup" xmlUrl="https://wire.test/rss"/>
  <outline text="A folder with nothing"/>
</body></opml>"""


def test_nested_outlines() -> None:
    read = parse_opml(NESTED)
    assert read.sources == (
        SourceConfig("https://wire.test/rss", "Wire service", tags=("Policy",)),
        SourceConfig(
            "https://gazette.test/atom", "Gazette", "fr", "fetch", tags=("Policy", "Deeper")
        ),
    )
    # The second listing of a URL: left out, and said (it went without a word).
    assert read.skipped == (
        "OPML: outline 5: skipped: https://wire.test/rss is listed already (outline 2)",
    )


def test_categories_become_tags_and_survive_a_round_trip(tmp_path: Path) -> None:
    data = b"""<opml version="2.0"><body>
      <outline text="Trade"><outline text="A" xmlUrl="https://a.test/rss"
          category="/export-controls,chips"/></outline>
      <outline text="B" xmlUrl="https://b.test/rss" category="rare earths"/>
      <outline text="C" xmlUrl="https://c.test/rss"/>
    </body></opml>"""
    sources = parse_opml(data).sources
    assert [s.tags for s in sources] == [
        ("Trade", "export-controls", "chips"),
        ("rare earths",),
        (),
    ]
    exported = write_opml(sources)
    assert 'category="Trade,export-controls,chips"' in exported
    assert read_opml(_write(tmp_path, exported)).sources == sources


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "feeds.opml"
    path.write_text(text, encoding="utf-8")
    return path


def test_round_trip(tmp_path: Path) -> None:
    sources = parse_opml(NESTED).sources
    path = tmp_path / "feeds.opml"
    path.write_text(write_opml(sources), encoding="utf-8")
    assert read_opml(path).sources == sources
    assert 'version="2.0"' in path.read_text()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"<opml><body><outline xmlUrl='x'", "malformed OPML"),
        (b"<rss/>", "not an OPML document"),
        (b"<opml version='2.0'><head/></opml>", "without <body>"),
        (b'<!DOCTYPE x [<!ENTITY a "b">]><opml/>', "DTD"),
    ],
)
def test_malformed_opml_is_a_clear_error(data: bytes, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_opml(data, "feeds.opml")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="cannot read OPML"):
        read_opml(tmp_path / "absent.opml")


def test_bad_outline_urls_are_skipped_and_named_while_the_import_goes_on() -> None:
    data = b"""<opml version="2.0"><body>
      <outline text="ok" xmlUrl="https://good.test/feed"/>
      <outline text="ftp" xmlUrl="ftp://x.test/feed"/>
      <outline text="octal" xmlUrl="http://0177.0.0.1/feed.xml"/>
      <outline text="port" xmlUrl="http://a.test:99999/feed"/>
      <outline text="creds" xmlUrl="http://user:pw@a.test/feed"/>
      <outline text="ok2" xmlUrl="https://good2.test/feed"/>
    </body></opml>"""
    read = parse_opml(data, "feeds.opml")
    assert [s.url for s in read.sources] == ["https://good.test/feed", "https://good2.test/feed"]
    assert len(read.skipped) == 4
    assert all(line.startswith("feeds.opml: outline ") for line in read.skipped)
    assert "scheme 'ftp'" in read.skipped[0] and "0177.0.0.1" in read.skipped[1]
    assert "99999" in read.skipped[2] and "user name or password" in read.skipped[3]
    assert "pw" not in read.skipped[3] and "***@a.test" in read.skipped[3]  # never echoed


def _nested(depth: int) -> bytes:
    opening = "".join(f'<outline text="level {n}">' for n in range(depth))
    feed = '<outline text="Deep wire" xmlUrl="https://deep.test/rss"/>'
    return f"<opml><body>{opening}{feed}{'</outline>' * depth}</body></opml>".encode()


def test_a_deep_but_plausible_folder_tree_imports() -> None:
    read = parse_opml(_nested(40))
    assert [s.url for s in read.sources] == ["https://deep.test/rss"]
    assert read.sources[0].tags[-1] == "level 39"


def test_outlines_nested_a_thousand_deep_are_a_clear_error() -> None:
    # The recursive walk ran out of stack here: a RecursionError traceback.
    with pytest.raises(UsageError, match="nested deeper than"):
        parse_opml(_nested(1000), "feeds.opml")
