"""Each [web] setting does what it says, on a second `chipwatch serve` (empty store):
login_attempts, the base path of public_url, forwarded_allow_ips; and their validation."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from review_site import REPO, ReviewSite, csrf_of, free_port, run_cli, start_server, write_config
from starlette.exceptions import HTTPException

from chipwatch.errors import ConfigError
from chipwatch.settings import load_settings

PASSWORD = "a long password"


@pytest.fixture(scope="module")
def proxied(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReviewSite]:
    root = tmp_path_factory.mktemp("proxied")
    port = free_port()
    config = write_config(
        root,
        port,
        [],
        'login_attempts = 2\nforwarded_allow_ips = "192.0.2.1"\n',
    )
    text = config.read_text(encoding="utf-8").replace(
        f'public_url = "http://127.0.0.1:{port}/"', 'public_url = "https://watch.example/cw/"'
    )
    config.write_text(text, encoding="utf-8")
    made = run_cli(config, "users", "add", "carol", stdin=PASSWORD + "\n")
    assert made.returncode == 0, made.stderr
    running = start_server(config, load_settings(config), port)
    yield running
    running.stop()


def _try(client: httpx.Client, name: str, password: str) -> httpx.Response:
    form = client.get("/login")
    token = csrf_of(form.text)
    # The cookie's path is /cw, as the browser sees the site through the proxy; this
    # client talks to the server behind it, so it hands the cookie over itself.
    return client.post(
        "/login",
        data={"csrf": token, "name": name, "password": password},
        headers={"Cookie": f"cw_csrf={token}"},
    )


def test_login_attempts_are_limited(proxied: ReviewSite) -> None:
    with httpx.Client(base_url=proxied.url) as client:
        assert _try(client, "carol", "wrong one").status_code == 401
        assert _try(client, "carol", "wrong two").status_code == 401
        blocked = _try(client, "carol", PASSWORD)  # right, but after 2 failures
        assert blocked.status_code == 429
        assert int(blocked.headers["retry-after"]) > 0
        assert _try(client, "someone", "x").status_code == 429  # the same address


def test_the_base_path_of_public_url_prefixes_every_link(proxied: ReviewSite) -> None:
    # The proxy strips /cw before passing a request on (README: proxy_pass with a slash).
    with httpx.Client(base_url=proxied.url) as client:
        page = client.get("/login")
        redirect = client.get("/stories", follow_redirects=False)
        css = client.get("/static/site.css")
    assert page.status_code == 200 and css.status_code == 200
    assert 'href="/cw/static/site.css"' in page.text
    assert 'action="/cw/login"' in page.text
    assert redirect.headers["location"].startswith("/cw/login?next=")


def test_forwarded_headers_only_from_trusted_proxies(proxied: ReviewSite) -> None:
    # 127.0.0.1 is not in forwarded_allow_ips here: its X-Forwarded-Proto is ignored.
    with httpx.Client(base_url=proxied.url, headers={"X-Forwarded-Proto": "https"}) as client:
        answer = client.get("/login")
    assert "Secure" not in answer.headers["set-cookie"]


@pytest.mark.parametrize(
    ("line", "field"),
    [
        ("port = 0", "web.port"),
        ('public_url = "ftp://x/"', "web.public_url"),
        ("session_hours = 0", "web.session_hours"),
        ("link_ttl_days = -1", "web.link_ttl_days"),
        ("login_attempts = 0", "web.login_attempts"),
        # A typo trusted no proxy, without a word:
        ('forwarded_allow_ips = "not-an-ip"', "web.forwarded_allow_ips"),
        ('forwarded_allow_ips = "127.0.0.1, 10.0.0.0/33"', "web.forwarded_allow_ips"),
    ],
)
def test_web_settings_are_validated(tmp_path: Path, line: str, field: str) -> None:
    config = tmp_path / "chipwatch.toml"
    config.write_text(f"[web]\n{line}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_settings(config)
    assert caught.value.field == field and caught.value.source == str(config)


def test_proxies_may_be_addresses_networks_or_any() -> None:
    from chipwatch.settings import _proxy_address

    for good in ("127.0.0.1", "::1", "10.0.0.0/8", "2001:db8::/32", "*"):
        assert _proxy_address(good), good
    for bad in ("", "localhost", "10.0.0.0/33", "1.2.3"):
        assert not _proxy_address(bad), bad


def test_serve_reports_a_bad_setting_without_a_traceback(tmp_path: Path) -> None:
    config = tmp_path / "chipwatch.toml"
    config.write_text("[web]\nport = 70000\n", encoding="utf-8")
    answer = run_cli(config, "serve")
    assert answer.returncode == 2
    assert "web.port" in answer.stderr and "Traceback" not in answer.stderr


def test_serve_names_an_address_it_cannot_listen_on(tmp_path: Path) -> None:
    config = tmp_path / "chipwatch.toml"
    config.write_text(f'data_dir = "{tmp_path / "data"}"\n', encoding="utf-8")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        cases = [
            (["--host", "127.0.0.1", "--port", str(port)], "cannot listen"),
            (["--host", "192.0.2.1", "--port", "0"], "cannot listen"),
            (["--port", "99999"], "--port 99999"),
        ]
        for args, says in cases:
            answer = run_cli(config, "serve", *args)
            assert answer.returncode == 2, (args, answer.stderr)
            assert says in answer.stderr and "Traceback" not in answer.stderr, answer.stderr
            assert len(answer.stderr.splitlines()) == 1, answer.stderr


def test_the_site_never_writes_a_topic_beside_the_shipped_topics(tmp_path: Path) -> None:
    from chipwatch.classify.topics import add_user_topic
    from chipwatch.settings import PACKAGED_CONFIG_DIR, load_settings
    from chipwatch.web.topics import add_site_topic

    for config in (PACKAGED_CONFIG_DIR / "chipwatch.toml", REPO / "config" / "chipwatch.toml"):
        settings = load_settings(config, tmp_path / "data", {})
        with pytest.raises(HTTPException) as caught:
            add_site_topic(settings, "lithography-tools", "Lithography tools", "EUV machines.", [])
        assert caught.value.status_code == 400 and "chipwatch init" in caught.value.detail
        assert not settings.user_topics_path.exists()
    own = tmp_path / "user-topics.toml"
    add_user_topic(REPO / "config" / "topics.toml", own, "lithography-tools", "Litho", "EUV.")
    assert "lithography-tools" in own.read_text(encoding="utf-8")


def test_attempts_count_as_failed_until_they_succeed() -> None:
    """Logins sent together are counted as they start, not when their hash is done:
    with a limit of 3, the fourth of ten simultaneous attempts is already refused."""
    from chipwatch.web.security import LoginLimiter

    limiter = LoginLimiter(3, window=60)
    keys = ["name:carol", "addr:192.0.2.9"]
    answers = [limiter.attempt(keys, now=100.0)[0] for _ in range(10)]
    assert answers[:3] == [0, 0, 0] and all(wait > 0 for wait in answers[3:])
    assert limiter.attempt(keys, now=161.0)[0] == 0  # the window has passed


def test_a_success_clears_the_account_not_the_address() -> None:
    """One's own account logged into between guesses must not reset the address's count
    (it did: every key was cleared on success)."""
    from chipwatch.web.security import LoginLimiter

    limiter = LoginLimiter(3, window=60)
    address = "addr:192.0.2.9"
    for i in range(2):  # guesses at two accounts, one each: no account key is full
        assert limiter.attempt([f"name:victim{i}", address], now=100.0 + i)[0] == 0
    wait, ticket = limiter.attempt(["name:mallory", address], now=103.0)
    assert wait == 0
    limiter.succeeded(["name:mallory", address], ticket)  # mallory's own password
    assert limiter.attempt(["name:victim2", address], now=104.0)[0] == 0  # the third
    assert limiter.attempt(["name:victim3", address], now=105.0)[0] > 0
    # An account's own typos are forgiven by its success (its key starts afresh).
    for when in (106.0, 107.0):
        limiter.attempt(["name:carol", f"addr:198.51.100.{when}"], now=when)
    wait, ticket = limiter.attempt(["name:carol", "addr:198.51.100.8"], now=108.0)
    limiter.succeeded(["name:carol", "addr:198.51.100.8"], ticket)
    for when in (109.0, 110.0, 111.0):
        assert limiter.attempt(["name:carol", f"addr:203.0.113.{when}"], now=when)[0] == 0


def test_a_password_longer_than_login_takes_is_refused_by_users_add(tmp_path: Path) -> None:
    from chipwatch.web.passwords import MAX_PASSWORD_CHARS, hash_password, verify_password

    config = write_config(tmp_path, free_port(), [])
    too_long = "p" * (MAX_PASSWORD_CHARS + 1)
    made = run_cli(config, "users", "add", "dave", stdin=too_long + "\n")
    assert made.returncode == 2 and "8 to 1,000 characters" in made.stderr, made.stderr
    assert "Traceback" not in made.stderr
    longest = "p" * MAX_PASSWORD_CHARS
    assert verify_password(longest, hash_password(longest, log2_n=4))
    assert not verify_password(too_long, hash_password(longest, log2_n=4))


def test_a_damaged_database_is_a_503_page_and_one_log_line(tmp_path: Path) -> None:
    """Tables gone from the file (edited by another program): every request that needs
    them was a bare 500 and a 60-frame traceback in the log; the login form and a
    request carrying a session cookie (read before any route) alike."""
    import sqlite3

    port = free_port()
    config = write_config(tmp_path, port, [])
    made = run_cli(config, "users", "add", "erin", stdin=PASSWORD + "\n")
    assert made.returncode == 0, made.stderr
    settings = load_settings(config)
    with sqlite3.connect(settings.data_dir / "chipwatch.sqlite3") as connection:
        connection.execute("DROP TABLE web_sessions")
        connection.execute("DROP TABLE users")
    running = start_server(config, settings, port)
    try:
        with httpx.Client(base_url=running.url) as client:
            token = csrf_of(client.get("/login").text)
            login = client.post("/login", data={"csrf": token, "name": "erin", "password": "x"})
            client.cookies.set("cw_session", "a" * 43)  # any: it is looked up first
            stories = client.get("/stories", follow_redirects=False)
        for answer in (login, stories):
            assert answer.status_code == 503, answer.text
            assert "cannot be read or written just now" in answer.text
            assert answer.headers["retry-after"] == "60"
    finally:
        running.stop()
    assert running.process.stdout is not None
    log = running.process.stdout.read()
    assert "Traceback" not in log, log[-3000:]
    assert log.count("storage error: ") == 2 and "no such table: " in log, log[-2000:]


def test_two_servers_started_at_once_on_one_port(tmp_path: Path) -> None:
    """Both bound the port; the second one's listen() failed inside uvicorn: a 35-line
    traceback and "a chipwatch bug" instead of the one line of a port in use."""
    from chipwatch.errors import UsageError
    from chipwatch.web.serve import listening_socket

    first = listening_socket("127.0.0.1", 0)
    try:
        port = first.getsockname()[1]
        with pytest.raises(UsageError, match=f"127.0.0.1:{port}: cannot listen: "):
            listening_socket("127.0.0.1", port).close()
    finally:
        first.close()
