"""The fast path's routing rule: what goes to fastfeedparser and what to feedparser.

tests/test_parse_equivalence.py proves the combination equal to feedparser over the
corpora; these cases pin the rule itself on small documents of our own.
"""

from __future__ import annotations

import feedparser
from feedserver import Item, rss

from chipwatch.parse import fast_parse, fast_path_allowed, parse_feed

XML = "application/xml"


def fast(content: bytes, content_type: str = XML):  # type: ignore[no-untyped-def]
    return fast_parse(content, content_type, 500, 100_000)


def test_plain_rss_takes_the_fast_path_and_matches_feedparser() -> None:
    feed = rss(
        [
            Item("Export rules", "http://x.test/1", "g1", "<p>Licence &amp; tools</p>"),
            Item("Memory chips", "http://x.test/2", None, "Second"),
        ],
        ttl=90,
    )
    quick = fast(feed)
    assert quick is not None
    assert quick == parse_feed(feed, "http://x.test/feed", XML, fast=False)
    # fastfeedparser fills a missing guid with the link; feedparser does not.
    assert [e.guid for e in quick.entries] == ["g1", None]
    assert quick.ttl_minutes == 90


def test_documents_outside_the_proven_class_go_to_feedparser() -> None:
    base = rss([Item("Export rules", "http://x.test/1", "g1", "text")])
    latin = base.replace(b'encoding="utf-8"', b'encoding="iso-8859-1"')
    ill_formed = base.replace(b"text", b"A & B")
    media = base.replace(
        b"<item>", b'<item><media:description xmlns:media="m">x</media:description>'
    )
    atom03 = b'<feed version="0.3" xmlns="http://purl.org/atom/ns#"><entry/></feed>'
    for document in (latin, ill_formed, media, atom03):
        assert not fast_path_allowed(document, XML), document[:80]
        assert fast(document) is None
    assert not fast_path_allowed(base, "text/xml")  # feedparser reads text/* as US-ASCII
    assert not fast_path_allowed(base, "application/xml; charset=windows-1252")
    # ...while the same bytes in CDATA (HTML in a description) are only text:
    cdata = base.replace(b"<description>text", b"<description><![CDATA[<body>x</body>]]>")
    assert fast_path_allowed(cdata, XML)


def test_fast_output_checks_decline_what_feedparser_may_read_differently() -> None:
    undated = rss([Item("No date", "http://x.test/1", "g1", "text", pub_date=None)])
    untitled = rss([Item("", "http://x.test/1", "g1", "text")])
    for document in (undated, untitled):
        assert fast_path_allowed(document, XML)
        assert fast(document) is None  # parse_feed then uses feedparser
        assert parse_feed(document, "http://x.test/f", XML) == parse_feed(
            document, "http://x.test/f", XML, fast=False
        )


def test_entries_without_a_link_take_the_fast_path_only_when_surely_linkless() -> None:
    # No link element, and a guid that is not a permalink or no guid at all: feedparser
    # has no link either.
    linkless = rss([
        Item("Quiet entry", None, "g1", "Nothing to follow here."),
        Item("Another quiet one", None, None, "Still nothing to follow."),
    ])  # fmt: skip
    quick = fast(linkless)
    assert quick is not None and [e.url for e in quick.entries] == [None, None]
    assert quick == parse_feed(linkless, "http://x.test/f", XML, fast=False)
    permalink_guid = linkless.replace(b' isPermaLink="false"', b"")  # the guid is the link
    atom_id = (
        b'<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
        b"<title>T</title><entry><title>E</title><id>http://x.test/e</id>"
        b"<updated>2025-03-03T09:00:00Z</updated><summary>S</summary></entry></feed>"
    )  # feedparser takes an entry's id as its link too
    mentions = rss([Item("Quiet entry", None, "g1", "See the link below.")])  # maybe a link
    for document in (permalink_guid, atom_id, mentions):
        assert fast(document) is None
        assert parse_feed(document, "http://x.test/f", XML) == parse_feed(
            document, "http://x.test/f", XML, fast=False
        )
    assert feedparser.parse(permalink_guid).entries[0].link == "g1"


def test_text_feedparser_would_rewrite_goes_to_feedparser() -> None:
    # A C1 control (feedparser maps it to its Windows-1252 character), next to ordinary
    # accented text and a no-break space, which stay on the fast path.
    plain = rss([Item("Caf\u00e9 au lait\u00a0matin", "http://x.test/1", "g1", "d\u00e9j\u00e0")])
    assert fast(plain) is not None
    for text in ("quote \u0093here\u0094", "dash \u0096", "\u0085"):
        document = rss([Item("Title", "http://x.test/1", "g1", f"Body {text} end")])
        assert fast_path_allowed(document, XML) and fast(document) is None
        assert parse_feed(document, "http://x.test/f", XML) == parse_feed(
            document, "http://x.test/f", XML, fast=False
        )


MRSS = 'xmlns:media="http://search.yahoo.com/mrss/"'


def media_rss(item_inner: bytes, channel_extra: bytes = b"", namespace: str = MRSS) -> bytes:
    return (
        (
            f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0" {namespace}><channel>'
            "<title>T</title><link>http://x.test/</link>"
        ).encode()
        + channel_extra
        + b"<item>"
        + item_inner
        + b"</item></channel></rss>"
    )


def test_media_titles_inside_titled_items_take_the_fast_path() -> None:
    common = (
        b"<link>http://x.test/1</link><guid>g1</guid><description>d</description>"
        b"<pubDate>Mon, 03 Mar 2025 09:00:00 GMT</pubDate>"
    )
    media = b'<media:content url="http://x.test/1.jpg"><media:title>Photo</media:title>'
    media += b"</media:content>"
    before = media_rss(media + b"<title>Export rules</title>" + common)
    after = media_rss(b"<title>Export rules</title>" + common + media)
    for document in (before, after):
        quick = fast(document)
        assert quick is not None
        assert quick == parse_feed(document, "http://x.test/f", XML, fast=False)
        assert quick.entries[0].title == "Export rules"
    # Refused: untitled item, a <source> in the item (it resets feedparser's title
    # depth), a media title outside any item, the prefix bound to another namespace.
    refused = (
        media_rss(b"<title> </title>" + common + media),
        media_rss(
            b"<title>Export rules</title><source url='http://s.test/'>S</source>" + common + media
        ),  # fmt: skip
        media_rss(b"<title>Export rules</title>" + common, channel_extra=media),
        media_rss(b"<title>Export rules</title>" + common + media, namespace='xmlns:media="m"'),
        # a media title as the item's own child before its title: fastfeedparser would
        # take it as the title
        media_rss(b"<media:title>Photo</media:title><title>Export rules</title>" + common),
    )
    for document in refused:
        assert not fast_path_allowed(document, XML), document
        assert parse_feed(document, "http://x.test/f", XML) == parse_feed(
            document, "http://x.test/f", XML, fast=False
        )


def test_a_bare_doctype_is_no_obstacle_but_a_declaring_one_is() -> None:
    base = rss([Item("Export rules", "http://x.test/1", "g1", "text")])
    bare = base.replace(b"<rss", b"<!DOCTYPE html>\n<rss", 1)
    assert fast_path_allowed(bare, XML)
    assert fast(bare) == parse_feed(bare, "http://x.test/f", XML, fast=False)
    public = base.replace(
        b"<rss", b'<!DOCTYPE rss PUBLIC "-//Netscape Communications//DTD RSS 0.91//EN">\n<rss', 1
    )
    netscape = base.replace(b"<rss", b"<!DOCTYPE netscape>\n<rss", 1)
    subset = base.replace(b"<rss", b"<!DOCTYPE rss [ ]>\n<rss", 1)
    for document in (public, netscape, subset):
        assert not fast_path_allowed(document, XML), document[:120]


# --- media:description: feedparser's summary/content blocks replayed from the bytes ------

DATED = (
    b"<link>http://x.test/1</link><guid>g1</guid><pubDate>Mon, 03 Mar 2025 09:00:00 GMT</pubDate>"
)


def photo(caption: bytes, attributes: bytes = b"", wrap: bytes = b"media:content") -> bytes:
    """A media description inside `wrap` (one level below the item, like most feeds)."""
    inner = b"<media:description" + attributes + b">" + caption + b"</media:description>"
    return b"<" + wrap + b' url="http://x.test/1.jpg">' + inner + b"</" + wrap + b">"


def agrees(document: bytes) -> str:
    """The fast result equals feedparser's (read by its strict parser); the summary."""
    assert not feedparser.parse(document).bozo, document
    quick = fast(document)
    assert quick is not None, document
    assert quick == parse_feed(document, "http://x.test/f", XML, fast=False)
    return quick.entries[0].summary


def with_content(item_inner: bytes, channel_extra: bytes = b"", namespace: str = MRSS) -> bytes:
    return media_rss(item_inner, channel_extra, f"{namespace} {CONTENT_NS}")


CONTENT_NS = 'xmlns:content="http://purl.org/rss/1.0/modules/content/"'
SHORT = b"<description>Chip export rules tightened.</description>"
LONG_CAPTION = b"A wafer inspection line photographed at the fab in Dresden last week."


def test_media_descriptions_take_the_fast_path_with_feedparser_s_text() -> None:
    title = b"<title>Export rules</title>"
    # description first: the caption becomes a content block, and is the longer text.
    assert (
        agrees(with_content(title + DATED + SHORT + photo(LONG_CAPTION))) == LONG_CAPTION.decode()
    )
    # caption first: it is the summary, the description a content block.
    assert (
        agrees(with_content(title + DATED + photo(LONG_CAPTION) + SHORT)) == LONG_CAPTION.decode()
    )
    # a short caption loses to the description
    assert (
        agrees(with_content(title + DATED + SHORT + photo(b"Fab")))
        == "Chip export rules tightened."
    )
    # type="plain" is text for feedparser (no base64), and so are html and text/html
    for kind in (b' type="plain"', b' type="html"', b' type="text/html"'):
        caption = agrees(with_content(title + DATED + SHORT + photo(LONG_CAPTION, kind)))
        assert caption == LONG_CAPTION.decode()


def test_the_replay_follows_has_content_and_depths() -> None:
    title = b"<title>Export rules</title>"
    body = b"<content:encoded><![CDATA[<p>Full text.</p>]]></content:encoded>"
    # description, caption, content: all three are candidates; the caption is longest.
    three = with_content(title + DATED + SHORT + photo(LONG_CAPTION) + body)
    assert agrees(three) == LONG_CAPTION.decode()
    # description, content, then a deeper caption: feedparser drops the caption (a
    # summary from a shallower element stays), so the description wins.
    dropped = with_content(title + DATED + SHORT + body + photo(LONG_CAPTION))
    assert agrees(dropped) == "Chip export rules tightened."
    # a second deeper caption after the first one became content is dropped too.
    longer = LONG_CAPTION + b" Second caption, longer than any other text here."
    twice = with_content(title + DATED + SHORT + photo(LONG_CAPTION) + photo(longer))
    assert agrees(twice) == LONG_CAPTION.decode()
    # ...but a caption at the item's own level after content replaces the summary.
    direct = b"<media:description>" + longer + b"</media:description>"
    assert agrees(with_content(title + DATED + SHORT + body + direct)) == longer.decode()


def test_an_atom_entry_whose_only_text_is_a_media_group_description() -> None:
    document = (
        b'<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom"'
        b' xmlns:media="http://search.yahoo.com/mrss/"><title>Videos</title>'
        b'<link rel="alternate" href="http://x.test/"/><entry><id>v1</id>'
        b'<title>Wafer tour</title><link rel="alternate" href="http://x.test/v1"/>'
        b"<published>2025-03-03T09:00:00+00:00</published><media:group>"
        b"<media:title>Wafer tour</media:title><media:description>A walk through the fab."
        b"</media:description></media:group></entry></feed>"
    )
    assert agrees(document) == "A walk through the fab."


def test_media_description_shapes_the_replay_does_not_model_go_to_feedparser() -> None:
    title = b"<title>Export rules</title>"
    body = b"<content:encoded>Full text.</content:encoded>"
    refused = (
        with_content(title + DATED + SHORT + photo(b"AAAA", b' type="image/jpeg"')),  # base64
        with_content(title + DATED + SHORT + photo(b"AAAA", b' mode="base64"')),
        with_content(title + DATED + SHORT + photo(b"A <b>bold</b> caption")),  # child element
        with_content(title + DATED + SHORT, channel_extra=photo(LONG_CAPTION)),  # the feed's own
        with_content(title + DATED + b"<source url='http://s.test/'>S</source>" + photo(b"x")),
        with_content(title + DATED + b"<Description>Other case</Description>" + photo(b"x")),
        with_content(title + DATED + SHORT + photo(b"x", wrap=b"image")),  # feed image context
        # a summary or content outside entries first: feedparser's hasContent leaks
        with_content(title + DATED + SHORT + photo(b"x"), channel_extra=body),
        # a default namespace feedparser may map elsewhere, `content` bound elsewhere
        with_content(title + DATED + SHORT + photo(b"x")).replace(b"<item>", b'<item xmlns="u:x">'),
        with_content(
            title + DATED + SHORT + photo(b"x") + body.replace(b">", b' xmlns:content="u:x">', 1)
        ),
        # the media prefix bound to another namespace
        with_content(title + DATED + SHORT + photo(b"x"), namespace='xmlns:media="m"'),
    )
    for document in refused:
        assert not fast_path_allowed(document, XML), document
        assert parse_feed(document, "http://x.test/f", XML) == parse_feed(
            document, "http://x.test/f", XML, fast=False
        )


# --- ids equal to their link: CDATA sections and empty guids ---------------------------


def item_rss(item_inner: bytes) -> bytes:
    return (
        b'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>T</title>'
        b"<link>http://x.test/</link><item><title>Export rules</title>"
        b"<pubDate>Mon, 03 Mar 2025 09:00:00 GMT</pubDate>"
        + item_inner
        + b"</item></channel></rss>"
    )


def test_ids_in_cdata_and_empty_guids_are_resolved_from_the_bytes() -> None:
    url = b"http://x.test/1?a=1&b=2"
    link = b"<link><![CDATA[" + url + b"]]></link>"
    cases = {
        # the guid holds the link's value in a CDATA section: it is the id
        link + b"<guid><![CDATA[" + url + b"]]></guid>": url.decode(),
        # empty guids (fastfeedparser falls back to the link): feedparser has no id
        link + b'<guid isPermaLink="false"></guid>': None,
        b'<guid isPermaLink="false"/>' + link: None,
        link + b"<guid> </guid>": None,
    }
    for inner, guid in cases.items():
        document = item_rss(inner)
        assert not feedparser.parse(document).bozo
        quick = fast(document)
        assert quick is not None, document
        assert quick == parse_feed(document, "http://x.test/f", XML, fast=False)
        assert quick.entries[0].guid == guid
    # an empty guid next to another id element: not resolved, feedparser decides
    other_id = item_rss(link + b"<guid></guid><id>" + url.replace(b"&", b"&amp;") + b"</id>")
    assert fast(other_id) is None


# --- itunes:summary: read by feedparser as a <summary>, replayed like media captions -----

ITUNES = 'xmlns:itunes="http://www.itunes.com/dtds/podcast-1.0.dtd"'
ITUNES_AS_IT = 'xmlns:it="http://www.itunes.com/dtds/podcast-1.0.dtd"'
SHOW_NOTES = b"Episode 12: chip export rules, wafer supply and the new fab in Dresden, discussed."


def podcast(item_inner: bytes, channel_extra: bytes = b"", namespace: str = ITUNES) -> bytes:
    """A podcast feed: the channel describes the show like most podcast hosts do."""
    show = (
        b"<description>A show about chips.</description>"
        b"<itunes:summary>A show about chips.</itunes:summary>"
        b"<itunes:subtitle>Chips, weekly.</itunes:subtitle>"
    )
    title = b"<title>Episode 12</title><itunes:title>Ep. 12</itunes:title>"
    return with_content(title + DATED + item_inner, show + channel_extra, namespace)


def test_itunes_summaries_take_the_fast_path_with_feedparser_s_text() -> None:
    body = b"<content:encoded><![CDATA[<p>Notes.</p>]]></content:encoded>"
    notes = b"<itunes:summary>" + SHOW_NOTES + b"</itunes:summary>"
    # description, content, then the iTunes summary at the same depth: it replaces the
    # summary (fastfeedparser alone would give the description or the content).
    assert agrees(podcast(SHORT + body + notes)) == SHOW_NOTES.decode()
    # summary first: the description after it becomes a content block; longest wins.
    assert agrees(podcast(notes + SHORT)) == SHOW_NOTES.decode()
    short_notes = b"<itunes:summary>Chips.</itunes:summary>"
    assert agrees(podcast(short_notes + SHORT)) == "Chip export rules tightened."
    # the only text of the item; and an item subtitle, which feedparser keeps apart
    assert agrees(podcast(notes + b"<itunes:subtitle>Chips</itunes:subtitle>")) == (
        SHOW_NOTES.decode()
    )
    # the other URI feedparser knows, and the capitalised spelling of the usual one
    for uri in (
        "http://example.com/DTDs/PodCast-1.0.dtd",
        "http://www.itunes.com/DTDs/PodCast-1.0.dtd",
    ):
        document = podcast(SHORT + body + notes, namespace=f'xmlns:itunes="{uri}"')
        assert agrees(document) == SHOW_NOTES.decode()


def test_itunes_shapes_the_replay_does_not_model_go_to_feedparser() -> None:
    notes = b"<itunes:summary>" + SHOW_NOTES + b"</itunes:summary>"
    untitled_first = with_content(
        b"<itunes:title>Ep. 12</itunes:title><title>Episode 12</title>" + DATED + notes,
        namespace=ITUNES,
    )  # fastfeedparser would take the iTunes title as the entry's title
    refused = (
        podcast(SHORT + notes, namespace='xmlns:itunes="u:x"'),  # bound elsewhere
        podcast(SHORT + notes).replace(b"<item>", b'<item xmlns:itunes="u:x">'),  # rebound
        # another prefix bound to the iTunes namespace: feedparser reads it:summary too
        podcast(SHORT + notes.replace(b"itunes:", b"it:"), namespace=f"{ITUNES} {ITUNES_AS_IT}"),
        podcast(SHORT + b"<itunes:summary>A <b>bold</b> note</itunes:summary>"),  # child
        podcast(SHORT + b'<itunes:summary type="image/png">AAAA</itunes:summary>'),  # base64
        podcast(SHORT + b"<source url='http://s.test/'>S</source>" + notes),
        untitled_first,
        # the feed's own summary followed by a description or a second summary: a content
        # block for feedparser, whose hasContent then leaks into the first entry
        podcast(SHORT + notes, b"<description>Again.</description>"),
        podcast(SHORT + notes, b"<itunes:summary>Again.</itunes:summary>"),
        podcast(SHORT + notes, b"<content:encoded>Show.</content:encoded>"),
        podcast(SHORT + notes).replace(
            b"<itunes:summary>A show", b"<itunes:summary><p>x</p>A show", 1
        ),  # markup in the feed's summary
        podcast(SHORT + notes, b"<itunes:title>Show</itunes:title>"),  # the feed's title
    )
    for document in refused:
        assert not fast_path_allowed(document, XML), document
        assert fast(document) is None
        assert parse_feed(document, "http://x.test/f", XML) == parse_feed(
            document, "http://x.test/f", XML, fast=False
        )
