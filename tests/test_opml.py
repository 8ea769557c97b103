"""OPML import and export."""

from __future__ import annotations

from pathlib import Path

import pytest

from chipwatch.errors import ConfigError
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
        SourceConfig("https://wire.test/rss", "Wire service"),
        SourceConfig("https://gazette.test/atom", "Gazette", "fr", "fetch"),
    ]


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
    with pytest.raises(ConfigError, match=message):
        parse_opml(data, "feeds.opml")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read OPML"):
        read_opml(tmp_path / "absent.opml")
