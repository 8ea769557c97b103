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
    sources = parse_opml(NESTED)
    assert sources == [
        SourceConfig("https://wire.test/rss", "Wire service", tags=("Policy",)),
        SourceConfig("https://gazette.test/atom", "Gazette", "fr", True, ("Policy", "Deeper")),
    ]


def test_categories_become_tags_and_survive_a_round_trip(tmp_path: Path) -> None:
    data = b"""<opml version="2.0"><body>
      <outline text="Trade"><outline text="A" xmlUrl="https://a.test/rss"
          category="/export-controls,chips"/></outline>
      <outline text="B" xmlUrl="https://b.test/rss" category="rare earths"/>
      <outline text="C" xmlUrl="https://c.test/rss"/>
    </body></opml>"""
    sources = parse_opml(data)
    assert [s.tags for s in sources] == [
        ("Trade", "export-controls", "chips"),
        ("rare earths",),
        (),
    ]
    exported = write_opml(sources)
    assert 'category="Trade,export-controls,chips"' in exported
    assert read_opml(_write(tmp_path, exported)) == sources


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "feeds.opml"
    path.write_text(text, encoding="utf-8")
    return path


def test_round_trip(tmp_path: Path) -> None:
    sources = parse_opml(NESTED)
    path = tmp_path / "feeds.opml"
    path.write_text(write_opml(sources), encoding="utf-8")
    assert read_opml(path) == sources
    assert 'version="2.0"' in path.read_text()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"<opml><body><outline xmlUrl='x'", "malformed OPML"),
        (b"<rss/>", "not an OPML document"),
        (b"<opml version='2.0'><head/></opml>", "without <body>"),
        (b"<opml><body><outline xmlUrl='ftp://x.test/'/></body></opml>", "must start with http"),
        (b'<!DOCTYPE x [<!ENTITY a "b">]><opml/>', "DTD"),
    ],
)
def test_malformed_opml_is_a_clear_error(data: bytes, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_opml(data, "feeds.opml")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="cannot read OPML"):
        read_opml(tmp_path / "absent.opml")
