"""The review site over HTTP against `chipwatch serve` on loopback: the login gate,
CSRF, sessions, signed digest links, unsubscribe, the API, Atom feeds, search."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy

import httpx
import pytest
from review_site import (
    EMAIL,
    PASSWORD,
    USER,
    ReviewSite,
    csrf_of,
    login,
    run_cli,
)
from sqlalchemy import select

from chipwatch.pipeline import open_sessions
from chipwatch.store.models import ArticleRow, LabelRow
from chipwatch.store.review_models import UnsubscribeRow
from chipwatch.web.app import PUBLIC_PREFIXES, routes
from chipwatch.web.signing import NOT_RELEVANT, UNSUBSCRIBE, sign, site_secret


@pytest.fixture()
def client(site: ReviewSite) -> Iterator[httpx.Client]:
    logged_in = login(site.url)
    yield logged_in
    logged_in.close()


def _article_ids(site: ReviewSite) -> list[int]:
    with open_sessions(site.settings)() as session:
        return list(session.scalars(select(ArticleRow.id).order_by(ArticleRow.id)))


def _label(site: ReviewSite, article_id: int) -> LabelRow | None:
    with open_sessions(site.settings)() as session:
        return session.get(LabelRow, article_id)


def _verdict(site: ReviewSite, article_id: int) -> tuple[bool, tuple[str, ...]] | None:
    """The label as a value (other tests share the store: compare before and after)."""
    label = _label(site, article_id)
    return None if label is None else (label.relevant, tuple(label.topics))


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "1", path)


# --- the login gate ----------------------------------------------------------------------


def test_every_route_refuses_an_anonymous_request(site: ReviewSite) -> None:
    gated = [r for r in routes() if not r.path.startswith(PUBLIC_PREFIXES)]
    gated = [r for r in gated if getattr(r, "methods", None)]
    assert len(gated) > 20
    with httpx.Client(base_url=site.url, follow_redirects=False) as anonymous:
        for route in gated:
            for method in sorted(route.methods - {"HEAD"}):  # type: ignore[union-attr]
                path = _concrete(route.path)
                answer = anonymous.request(method, path)
                if path.startswith("/api/"):
                    assert answer.status_code == 401, path
                    assert answer.json() == {"error": "login required"}
                elif method == "GET":
                    assert answer.status_code == 303, path
                    assert "/login?next=" in answer.headers["location"]
                else:
                    assert answer.status_code == 401, (method, path)


def test_login_sets_a_protected_session_cookie(site: ReviewSite) -> None:
    with httpx.Client(base_url=site.url) as browser:
        form = browser.get("/login")
        answer = browser.post(
            "/login",
            data={"csrf": csrf_of(form.text), "name": USER, "password": PASSWORD},
            follow_redirects=False,
        )
    cookie = answer.headers["set-cookie"]
    assert "cw_session=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie
    assert "Secure" not in cookie  # plain http on loopback
    assert f"Max-Age={site.settings.web.session_hours * 3600}" in cookie


def test_behind_an_https_proxy_the_cookie_is_secure(site: ReviewSite) -> None:
    # 127.0.0.1 is in [web].forwarded_allow_ips: its X-Forwarded-Proto is believed.
    headers = {"X-Forwarded-Proto": "https"}
    with httpx.Client(base_url=site.url, headers=headers) as browser:
        form = browser.get("/login")
        assert "Secure" in form.headers["set-cookie"]
        token = form.cookies["cw_csrf"]
        # httpx keeps a Secure cookie off plain http, as a browser would: the proxy's
        # client side is https, so hand the cookie over as that browser would.
        answer = browser.post(
            "/login",
            data={"csrf": token, "name": USER, "password": PASSWORD},
            headers={"Cookie": f"cw_csrf={token}"},
            follow_redirects=False,
        )
    assert answer.status_code == 303
    assert "Secure" in answer.headers["set-cookie"]


def test_wrong_password_is_refused(site: ReviewSite) -> None:
    with httpx.Client(base_url=site.url) as browser:
        form = browser.get("/login")
        answer = browser.post(
            "/login", data={"csrf": csrf_of(form.text), "name": USER, "password": "nope nope"}
        )
    assert answer.status_code == 401
    assert "cw_session" not in answer.headers.get("set-cookie", "")


def test_login_without_csrf_is_refused(site: ReviewSite) -> None:
    with httpx.Client(base_url=site.url) as browser:
        browser.get("/login")
        answer = browser.post("/login", data={"name": USER, "password": PASSWORD})
    assert answer.status_code == 403


def test_post_without_the_csrf_token_is_refused(site: ReviewSite, client: httpx.Client) -> None:
    article_id = _article_ids(site)[0]
    before = _verdict(site, article_id)
    answer = client.post(f"/articles/{article_id}/label", data={"verdict": "not-relevant"})
    assert answer.status_code == 403
    forged = client.post(
        f"/articles/{article_id}/label", data={"verdict": "not-relevant", "csrf": "0" * 64}
    )
    assert forged.status_code == 403
    assert _verdict(site, article_id) == before


def test_pages_send_a_csp_without_inline_script(site: ReviewSite, client: httpx.Client) -> None:
    article_id = _article_ids(site)[0]
    for path in [
        "/stories",
        f"/articles/{article_id}",
        "/topics",
        "/sources",
        "/outbox",
        "/account",
    ]:
        answer = client.get(path)
        assert answer.status_code == 200, path
        csp = answer.headers["content-security-policy"]
        assert "script-src" not in csp and "default-src 'none'" in csp
        assert "unsafe-inline" not in csp
        assert "<script" not in answer.text.lower()
        assert " style=" not in answer.text  # the CSP would block inline styles


# --- relabelling ----------------------------------------------------------------------


def test_relabel_and_undo_over_http(site: ReviewSite, client: httpx.Client) -> None:
    article_id = _article_ids(site)[1]
    before = _verdict(site, article_id)
    page = client.get(f"/articles/{article_id}")
    token = csrf_of(page.text)
    done = client.post(
        f"/articles/{article_id}/label", data={"csrf": token, "verdict": "not-relevant"}
    )
    assert done.status_code == 303 and "done=labelled" in done.headers["location"]
    label = _label(site, article_id)
    assert label is not None and label.relevant is False
    shown = client.get(done.headers["location"]).text
    assert "counts at the classifier" in shown
    undone = client.post(f"/articles/{article_id}/undo", data={"csrf": token})
    assert "done=undone" in undone.headers["location"]
    assert _verdict(site, article_id) == before


def test_topic_toggle_sets_the_topics(site: ReviewSite, client: httpx.Client) -> None:
    article_id = _article_ids(site)[2]
    token = csrf_of(client.get(f"/articles/{article_id}").text)
    client.post(
        f"/articles/{article_id}/label",
        data={"csrf": token, "verdict": "topic", "topic": "security-debate", "on": "1"},
    )
    label = _label(site, article_id)
    assert label is not None and label.relevant and "security-debate" in label.topics
    client.post(
        f"/articles/{article_id}/label",
        data={"csrf": token, "verdict": "topic", "topic": "security-debate", "on": "0"},
    )
    label = _label(site, article_id)
    assert label is not None and "security-debate" not in label.topics


# --- signed digest links ----------------------------------------------------------------


def _digest_links(site: ReviewSite) -> tuple[list[str], str, str]:
    messages = sorted(site.maildir.glob("new/*"))
    message = message_from_bytes(messages[0].read_bytes(), policy=policy.default)
    html = message.get_body(preferencelist=("html",)).get_content()  # type: ignore[union-attr]
    links = re.findall(r'href="(http://127\.0\.0\.1:\d+/d/[^"]+)"', html)
    return links, str(message["List-Unsubscribe"]), str(message["List-Unsubscribe-Post"])


def test_a_digest_link_opens_a_confirmation_and_get_changes_nothing(site: ReviewSite) -> None:
    links, _, _ = _digest_links(site)
    assert links, "the digest carries review links"
    path = links[0].removeprefix(site.url)
    with open_sessions(site.settings)() as session:
        labels_before = session.scalars(select(LabelRow.article_id)).all()
    with httpx.Client(base_url=site.url) as mail_scanner:
        for _ in range(3):
            page = mail_scanner.get(path)
            assert page.status_code == 200 and "Confirm" in page.text
    with open_sessions(site.settings)() as session:
        assert session.scalars(select(LabelRow.article_id)).all() == labels_before


def test_confirming_a_digest_link_records_the_label(site: ReviewSite) -> None:
    links, _, _ = _digest_links(site)
    path = links[0].removeprefix(site.url)  # each item: "not relevant" first
    with httpx.Client(base_url=site.url) as reader:
        page = reader.get(path)
        without = reader.post(path, data={})
        assert without.status_code == 403  # no CSRF token: refused
        done = reader.post(path, data={"csrf": csrf_of(page.text)})
    assert done.status_code == 200 and "Correction recorded" in done.text


def test_tampered_or_expired_links_are_refused(site: ReviewSite) -> None:
    secret = site_secret(site.settings.data_dir)
    article_id = _article_ids(site)[3]
    before = _verdict(site, article_id)
    now = datetime.now(UTC)
    good = sign(secret, NOT_RELEVANT, EMAIL, article_id, now, timedelta(days=1))
    body, mac = good.split(".")
    other = sign(secret, NOT_RELEVANT, EMAIL, article_id + 1, now, timedelta(days=1)).split(".")
    expired = sign(
        secret, NOT_RELEVANT, EMAIL, article_id, now - timedelta(days=2), timedelta(days=1)
    )
    wrong_key = sign(b"k" * 32, NOT_RELEVANT, EMAIL, article_id, now, timedelta(days=1))
    unsubscribe_token = sign(secret, UNSUBSCRIBE, EMAIL, 0, now, timedelta(days=1))
    cases = {
        "changed byte": f"{body[:-2]}A{body[-1]}.{mac}",
        "payload of another article": f"{other[0]}.{mac}",
        "expired": expired,
        "other key": wrong_key,
        "other action": unsubscribe_token,
        "garbage": "not-a-token",
    }
    with httpx.Client(base_url=site.url) as reader:
        assert reader.get(f"/d/{good}").status_code == 200
        for name, token in cases.items():
            answer = reader.get(f"/d/{token}")
            assert answer.status_code in (403, 404), name
            posted = reader.post(f"/d/{token}", data={"csrf": reader.cookies.get("cw_csrf", "")})
            assert posted.status_code in (403, 404), name
        assert "expired" in reader.get(f"/d/{expired}").text
    assert _verdict(site, article_id) == before


def test_link_expiry_follows_the_setting(site: ReviewSite) -> None:
    links, _, _ = _digest_links(site)
    token = links[0].rsplit("/", 1)[1]
    import base64
    import json

    body = token.split(".")[0]
    expires = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))[3]
    days = (datetime.fromtimestamp(expires, UTC) - datetime.now(UTC)).total_seconds() / 86400
    assert site.settings.web.link_ttl_days - 1 < days <= site.settings.web.link_ttl_days


def test_one_click_unsubscribe_works_and_stops_the_digest(site: ReviewSite) -> None:
    _, header, post_header = _digest_links(site)
    assert post_header == "List-Unsubscribe=One-Click"
    target = re.fullmatch(r"<(http://\S+)>", header)
    assert target, header
    path = target.group(1).removeprefix(site.url)
    with httpx.Client(base_url=site.url) as mail_client:
        assert mail_client.get(path).status_code == 200  # a scanner's GET: nothing happens
        with open_sessions(site.settings)() as session:
            assert session.get(UnsubscribeRow, EMAIL) is None
        answer = mail_client.post(
            path,
            content=b"List-Unsubscribe=One-Click",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
    assert answer.status_code == 200
    from chipwatch import pipeline

    run = pipeline.build_and_send_digests(site.settings, send=False, only=None)
    assert run.built == 0  # unsubscribed: no digest built
    with open_sessions(site.settings).begin() as session:
        session.delete(session.get(UnsubscribeRow, EMAIL))


# --- machine-readable ---------------------------------------------------------------------


def test_api_stories_follow_the_stories_json_schema(client: httpx.Client) -> None:
    stories = client.get("/api/stories").json()["stories"]
    assert stories
    for story in stories:
        assert set(story) == {"id", "lead", "topics", "articles"}
        assert story["lead"] in [a["id"] for a in story["articles"]]
        for article in story["articles"]:
            assert set(article) == {"id", "url", "canonical_url", "title", "language", "outlet"}


def test_api_article_and_labels(site: ReviewSite, client: httpx.Client) -> None:
    article_id = _article_ids(site)[0]
    body = client.get(f"/api/articles/{article_id}").json()
    assert body["id"] == article_id and "classification" in body
    assert "labels" in client.get("/api/labels").json()
    assert client.get("/api/articles/999999").status_code == 404


def test_atom_feeds_need_the_users_token(site: ReviewSite, client: httpx.Client) -> None:
    account = client.get("/account").text
    feed_url = re.search(r'href="(http://[^"]+/feeds/[^"]+/ai-chip-licensing\.xml)"', account)
    assert feed_url
    with httpx.Client() as reader:
        feed = reader.get(feed_url.group(1))
        assert feed.status_code == 200
        assert feed.headers["content-type"].startswith("application/atom+xml")
        assert b"<feed" in feed.content and b"<entry>" in feed.content
        wrong = feed_url.group(1).replace("/feeds/", "/feeds/x")
        assert reader.get(wrong).status_code == 404


# --- search and filters ----------------------------------------------------------------------


def test_full_text_search_filters_the_stories(client: httpx.Client) -> None:
    everything = client.get("/api/stories", params={"min": "0"}).json()["stories"]
    found = client.get("/api/stories", params={"min": "0", "q": "Nvidia"}).json()["stories"]
    assert 0 < len(found) < len(everything)
    none = client.get("/api/stories", params={"min": "0", "q": "zzzunknownword"}).json()
    assert none["stories"] == []


def test_language_filter(client: httpx.Client) -> None:
    french = client.get("/api/stories", params={"min": "0", "language": "fr"}).json()["stories"]
    assert french
    assert all(a["language"] == "fr" for s in french for a in s["articles"])


# --- users ---------------------------------------------------------------------------------


def test_users_add_refuses_an_existing_name(site: ReviewSite) -> None:
    again = run_cli(site.config, "users", "add", USER, stdin="another password\n")
    assert again.returncode == 2
    assert "exists already" in again.stderr
    assert "Traceback" not in again.stderr


def test_users_add_refuses_a_password_that_is_not_text_and_a_header_in_the_email(
    site: ReviewSite,
) -> None:
    binary = subprocess.run(
        [sys.executable, "-m", "chipwatch", "--config", str(site.config), "users", "add", "dan"],
        input=b"\xff\xfe not utf-8 at all\n",
        capture_output=True,
        timeout=300,
        check=False,
    )
    assert binary.returncode == 2, binary.stderr
    assert b"not UTF-8" in binary.stderr and b"Traceback" not in binary.stderr
    header = run_cli(
        site.config,
        "users",
        "add",
        "erin",
        "--email",
        "e@example.org\r\nBcc: x@example.org",
        stdin="erin's password\n",
    )
    assert header.returncode == 2 and "--email" in header.stderr, header.stderr


def test_users_add_reads_the_password_from_stdin(site: ReviewSite) -> None:
    made = run_cli(site.config, "users", "add", "bob", stdin="bob's password\n")
    assert made.returncode == 0, made.stderr
    login(site.url, "bob", "bob's password").close()


def test_stored_passwords_are_scrypt_hashes(site: ReviewSite) -> None:
    from chipwatch.store.review_models import UserRow

    with open_sessions(site.settings)() as session:
        stored = session.scalars(select(UserRow.password_hash)).all()
    assert stored and all(h.startswith("scrypt$") and PASSWORD not in h for h in stored)


def test_sources_page_disables_and_enables_a_feed(site: ReviewSite, client: httpx.Client) -> None:
    page = client.get("/sources").text
    source_id = re.search(r'action="/sources/(\d+)/enabled"', page)
    assert source_id
    token = csrf_of(page)
    off = client.post(
        f"/sources/{source_id.group(1)}/enabled", data={"csrf": token, "enabled": "0"}
    )
    assert "done=source-off" in off.headers["location"]
    assert "disabled by alice" in client.get("/sources").text
    client.post(f"/sources/{source_id.group(1)}/enabled", data={"csrf": token, "enabled": "1"})
    assert "disabled by alice" not in client.get("/sources").text


def test_outbox_lists_the_digest(client: httpx.Client) -> None:
    page = client.get("/outbox").text
    assert "sent" in page and EMAIL in page


# --- marks, story mute, corpus, topics ---------------------------------------------------


def test_star_and_read_marks_filter_the_stories(site: ReviewSite, client: httpx.Client) -> None:
    stories = client.get("/api/stories").json()["stories"]
    lead = stories[0]["lead"]
    token = csrf_of(client.get(f"/articles/{lead}").text)
    client.post(f"/articles/{lead}/mark", data={"csrf": token, "field": "starred", "on": "1"})
    starred = client.get("/stories", params={"show": "starred"}).text
    assert f'href="/articles/{lead}"' in starred
    assert starred.count('class="story') == 1
    client.post(f"/articles/{lead}/mark", data={"csrf": token, "field": "starred", "on": "0"})
    assert 'class="story' not in client.get("/stories", params={"show": "starred"}).text


def test_a_muted_story_leaves_the_list(site: ReviewSite, client: httpx.Client) -> None:
    stories = client.get("/api/stories").json()["stories"]
    lead = stories[-1]["lead"]
    token = csrf_of(client.get(f"/articles/{lead}").text)
    client.post(f"/articles/{lead}/story", data={"csrf": token, "state": "mute"})
    assert f'href="/articles/{lead}"' not in client.get("/stories").text
    assert f'href="/articles/{lead}"' in client.get("/stories", params={"show": "muted"}).text
    client.post(f"/articles/{lead}/story", data={"csrf": token, "state": "clear"})
    assert f'href="/articles/{lead}"' in client.get("/stories").text


def test_add_to_the_corpus_as_an_example(site: ReviewSite, client: httpx.Client) -> None:
    from chipwatch.classify import load_corpus

    before = len(load_corpus(site.settings.corpus_dir))
    article_id = _article_ids(site)[4]
    token = csrf_of(client.get(f"/articles/{article_id}").text)
    done = client.post(
        f"/articles/{article_id}/corpus", data={"csrf": token, "topic": "china-response"}
    )
    assert "done=corpus" in done.headers["location"]
    corpus = load_corpus(site.settings.corpus_dir)
    assert len(corpus) == before + 1 and corpus[-1].topics == ("china-response",)
    again = client.post(
        f"/articles/{article_id}/corpus", data={"csrf": token, "topic": "china-response"}
    )
    assert again.status_code == 409  # the same text twice: refused, said so


def test_topics_page_has_counts_and_an_svg_chart(client: httpx.Client) -> None:
    page = client.get("/topics").text
    assert page.count('<svg class="chart"') >= 5
    assert re.search(r"(\d+) relevant articles in the last 7 days", page)
    assert "<rect" in page  # at least one day with articles


def test_topic_suggestions_can_be_accepted_or_dismissed(
    site: ReviewSite, client: httpx.Client
) -> None:
    from chipwatch.classify import load_topics

    page = client.get("/topics/suggestions")
    assert page.status_code == 200
    keys = re.findall(r'name="key" value="([0-9a-f]{32})"', page.text)
    assert keys, "the demo's novel article makes one proposal"
    done = client.post(
        "/topics/suggestions",
        data={"csrf": csrf_of(page.text), "key": keys[0], "decision": "dismiss"},
    )
    assert "done=topic-dismissed" in done.headers["location"]
    assert keys[0] not in client.get("/topics/suggestions").text
    # Accepting: the same form with its terms adds the topic to the user's topics file.
    accepted = client.post(
        "/topics/suggestions",
        data={
            "csrf": csrf_of(page.text),
            "key": "f" * 32,
            "decision": "accept",
            "name": "Dutch lithography rules",
            "term": ["ASML", "immersion"],
        },
    )
    assert "done=topic-accepted" in accepted.headers["location"]
    topics = {t.id: t for t in load_topics(site.settings.topics_path, site.user_topics)}
    assert topics["dutch-lithography-rules"].terms["en"] == ("ASML", "immersion")


def test_add_a_topic_from_examples(site: ReviewSite, client: httpx.Client) -> None:
    from chipwatch.classify import load_topics

    examples = _article_ids(site)[5:7]
    page = client.get("/topics").text
    done = client.post(
        "/topics",
        data={
            "csrf": csrf_of(page),
            "name": "Lithography tools",
            "terms": "lithography, EUV, DUV",
            "examples": ", ".join(map(str, examples)),
        },
    )
    assert "done=topic-added" in done.headers["location"]
    topics = {t.id: t for t in load_topics(site.settings.topics_path, site.user_topics)}
    assert "lithography-tools" in topics
    assert topics["lithography-tools"].terms["en"] == ("lithography", "EUV", "DUV")
    for article_id in examples:
        label = _label(site, article_id)
        assert label is not None and "lithography-tools" in label.topics
    assert "Lithography tools" in client.get("/topics").text
    twice = client.post(
        "/topics",
        data={"csrf": csrf_of(page), "name": "Lithography tools", "terms": "x", "examples": "1"},
    )
    assert twice.status_code == 409


def test_a_topic_that_would_not_load_is_refused_and_names_the_field(
    site: ReviewSite, client: httpx.Client
) -> None:
    path = site.user_topics
    before = path.read_bytes() if path.exists() else None
    page = client.get("/topics").text
    for field, value, says in (
        ("terms", "\x01", "terms.en[0]"),  # a term with no word: it would match nothing
        ("terms", "\x00", "a field holds a NUL character"),
        ("name", "Bell\x07tower", "holds the control character U+0007"),
        ("description", "two\x1bwords", "holds the control character U+001B"),
    ):
        form = {"csrf": csrf_of(page), "name": "Broken", "examples": str(_article_ids(site)[0])}
        answer = client.post("/topics", data={**form, field: value})
        assert answer.status_code == 400 and says in answer.text, (field, answer.text)
        assert "Traceback" not in answer.text and ".new" not in answer.text
        assert (path.read_bytes() if path.exists() else None) == before


def test_topics_added_at_the_same_moment_are_all_kept(
    site: ReviewSite, client: httpx.Client
) -> None:
    """Each request writes a trial file of its own and takes the file lock: none of the
    topics added together is lost (they shared one trial file name and overwrote it)."""
    from concurrent.futures import ThreadPoolExecutor

    from chipwatch.classify import load_topics

    page = client.get("/topics").text
    example = str(_article_ids(site)[1])
    names = [f"Parallel topic {i}" for i in range(6)]

    def add(name: str) -> int:
        form = {"csrf": csrf_of(page), "name": name, "examples": example}
        return client.post("/topics", data=form).status_code

    with ThreadPoolExecutor(6) as pool:
        codes = list(pool.map(add, names))
    assert codes == [303] * 6, codes
    ids = {t.id for t in load_topics(site.settings.topics_path, site.user_topics)}
    assert {f"parallel-topic-{i}" for i in range(6)} <= ids
    assert not list(site.user_topics.parent.glob(".user-topics.toml.*.new"))


def test_a_topic_added_with_the_cli_is_on_the_site(site: ReviewSite, client: httpx.Client) -> None:
    from chipwatch.classify.topics import add_user_topic

    add_user_topic(
        site.settings.topics_path,
        site.user_topics,
        "fab-tools",
        "Fab tools",
        "Controls on the machines that make chips.",
    )
    assert "Fab tools" in client.get("/topics").text


def test_add_a_feed_by_url_and_by_opml(site: ReviewSite, client: httpx.Client) -> None:
    from feedserver import FeedServer
    from review_site import hostile_feed

    with FeedServer() as server:
        server.add("/new.xml", hostile_feed(), headers={"Content-Type": "application/rss+xml"})
        page = client.get("/sources").text
        added = client.post(
            "/sources/add", data={"csrf": csrf_of(page), "url": server.url("/new.xml")}
        )
        assert "done=source-added" in added.headers["location"], added.text
        assert server.url("/new.xml") in client.get("/sources").text
    opml = (
        b'<?xml version="1.0"?><opml version="2.0"><head><title>t</title></head><body>'
        b'<outline type="rss" text="Imported" xmlUrl="https://example.org/imported.xml"/>'
        b"</body></opml>"
    )

    def upload(data: bytes, kind: str = "text/x-opml") -> httpx.Response:
        files = {"opml": ("feeds.opml", data, kind)}
        return client.post("/sources/opml", data={"csrf": csrf_of(page)}, files=files)

    imported = upload(opml)
    assert "done=opml" in imported.headers["location"], imported.text
    assert "https://example.org/imported.xml" in client.get("/sources").text
    # An outline whose URL is refused, and one that is another spelling of a stored feed:
    # the import goes on and says what it left out (it dropped them without a word).
    mixed = (
        b'<?xml version="1.0"?><opml version="2.0"><head><title>t</title></head><body>'
        b'<outline type="rss" text="Script" xmlUrl="javascript:alert(1)"/>'
        b'<outline type="rss" text="Again" xmlUrl="http://example.org/imported.xml/"/>'
        b'<outline type="rss" text="Fresh" xmlUrl="https://example.org/fresh.xml"/>'
        b"</body></opml>"
    )
    reported = upload(mixed)
    assert reported.status_code == 200, reported.text
    assert "1 new feeds" in reported.text and "2 left out" in reported.text
    assert "javascript:alert(1)" in reported.text and "scheme" in reported.text
    assert "same feed as https://example.org/imported.xml" in reported.text
    assert "https://example.org/fresh.xml" in client.get("/sources").text
    bad = upload(b"<html>not opml</html>", "text/html")
    assert bad.status_code == 400 and "Not imported" in bad.text


def test_an_id_no_row_could_have_is_not_found(client: httpx.Client) -> None:
    huge = str(2**80)  # beyond any database integer: was a 500 (OverflowError)
    for path in (f"/articles/{huge}", f"/api/articles/{huge}", "/articles/0", "/articles/-3"):
        assert client.get(path).status_code == 404, path
    token = csrf_of(client.get("/sources").text)
    for path in (f"/articles/{huge}/label", f"/sources/{huge}/enabled"):
        answer = client.post(path, data={"csrf": token, "relevant": "0", "enabled": "1"})
        assert answer.status_code == 404, path
    form = {"csrf": csrf_of(client.get("/topics").text), "name": "X", "terms": "x"}
    assert client.post("/topics", data={**form, "examples": huge}).status_code == 400


def test_marks_on_an_article_that_is_not_stored_are_not_found(client: httpx.Client) -> None:
    token = csrf_of(client.get("/topics").text)
    missing = 987_654_321  # a valid id no row has: the mark's foreign key made it a 500
    for path, form in (
        (f"/articles/{missing}/mark", {"field": "starred", "on": "1"}),
        (f"/articles/{missing}/story", {"state": "mute"}),
        (f"/articles/{missing}/story", {"state": "follow"}),
        (f"/articles/{missing}/label", {"verdict": "relevant"}),
    ):
        assert client.post(path, data={"csrf": token, **form}).status_code == 404, path


def test_the_same_correction_twice_at_once_is_done_once(
    site: ReviewSite, client: httpx.Client
) -> None:
    """A double click sends two requests together: both succeed (they met the unique
    constraint of the label or mark row and one of them was a 500)."""
    from concurrent.futures import ThreadPoolExecutor

    from chipwatch.store.review_models import ArticleMarkRow, LabelEventRow, StoryMarkRow

    article_id = _article_ids(site)[2]
    token = csrf_of(client.get(f"/articles/{article_id}").text)
    events = select(LabelEventRow).filter_by(article_id=article_id)
    with open_sessions(site.settings)() as session:
        events_before = len(session.scalars(events).all())

    def post(action: str, form: dict[str, str]) -> int:
        path = f"/articles/{article_id}/{action}"
        return client.post(path, data={"csrf": token, **form}).status_code

    for action, form in (
        ("label", {"verdict": "not-relevant"}),
        ("mark", {"field": "starred", "on": "1"}),
        ("story", {"state": "follow"}),
    ):
        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(post, [action] * 4, [form] * 4))
        assert answers == [303] * 4, (action, answers)
    assert _verdict(site, article_id) == (False, ())
    with open_sessions(site.settings)() as session:
        marks = session.scalars(select(ArticleMarkRow).filter_by(article_id=article_id)).all()
        assert [m.starred for m in marks] == [True]
        story = session.scalars(select(StoryMarkRow).filter_by(article_id=article_id)).all()
        assert [m.state for m in story] == ["follow"]
        # Each request is its own change, and each can be undone.
        assert len(session.scalars(events).all()) == events_before + 4


def test_the_api_refuses_a_malformed_number_and_the_page_falls_back(
    client: httpx.Client,
) -> None:
    for params, says in (
        ({"days": "abc"}, "days='abc': must be a whole number"),
        ({"min": "nan"}, "min='nan': must be a number from 0 to 1"),
        ({"min": "inf"}, "min='inf'"),
        ({"days": "9" * 5000}, "days="),
    ):
        answer = client.get("/api/stories", params=params)
        assert answer.status_code == 400 and says in answer.text, (params, answer.text)
        assert client.get("/stories", params=params).status_code == 200, params
    assert client.get("/api/stories", params={"days": "3", "min": "0.2"}).status_code == 200


def test_a_nul_in_an_address_or_a_field_is_refused(client: httpx.Client, site: ReviewSite) -> None:
    """PostgreSQL refuses a NUL in any text it compares (a feed token, the login name, the
    language filter): those were 500s there, two of them without login. Refused before
    any lookup, on both backends."""
    for path in ("/feeds/%00/novel.xml", "/stories?language=%00", "/api/stories?language=%00"):
        assert client.get(path).status_code == 400, path
    with httpx.Client(base_url=site.url) as anonymous:
        assert anonymous.get("/feeds/%00/novel.xml").status_code == 400
        page = anonymous.get("/login")
        token = csrf_of(page.text)
        form = {"csrf": token, "name": "al\x00ice", "password": "x", "next": "/stories"}
        assert anonymous.post("/login", data=form).status_code == 400
    form = {"csrf": csrf_of(client.get("/topics").text), "name": "A\x00B", "examples": "1"}
    assert client.post("/topics", data=form).status_code == 400
