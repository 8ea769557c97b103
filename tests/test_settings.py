"""Configuration: defaults, environment overrides, and errors that name file and field."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from chipwatch.errors import ConfigError
from chipwatch.settings import FetchSettings, load_settings

REPO = Path(__file__).resolve().parents[1]
SHIPPED_CONFIG = REPO / "config" / "chipwatch.toml"


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "chipwatch.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_shipped_config_loads_and_lists_real_sources() -> None:
    settings = load_settings(SHIPPED_CONFIG, environ={})
    assert settings.fetch == FetchSettings()  # the file repeats every default
    assert settings.digest.schedule == "30 7 * * *"
    assert settings.digest.timezone == "Europe/Paris"
    assert settings.topics_path == REPO / "config" / "topics.toml"
    assert settings.corpus_dir == REPO / "config" / "corpus"
    languages = {source.language for source in settings.sources}
    assert {"en", "fr"} <= languages
    assert any("federalregister.gov" in source.url for source in settings.sources)


def test_every_setting_is_documented_in_the_shipped_config() -> None:
    """Each field of each section appears, with a comment, in config/chipwatch.toml."""
    from dataclasses import fields

    from chipwatch.settings import _SECTIONS

    lines = SHIPPED_CONFIG.read_text(encoding="utf-8").splitlines()
    for section, cls in _SECTIONS.items():
        start = lines.index(f"[{section}]")
        block = lines[start + 1 :]
        for field in fields(cls):
            documented = [
                line for line in block if line.startswith(f"{field.name} =") and "#" in line
            ]
            assert documented, f"[{section}] {field.name} is missing or has no comment"


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    path = write_config(tmp_path, "[poll]\ninterval_minutes = 30\n")
    env = {
        "CHIPWATCH_POLL_INTERVAL_MINUTES": "45",
        "CHIPWATCH_FETCH_ALLOW_PRIVATE_NETWORKS": "true",
        "CHIPWATCH_SMTP_HOST": "mail.example.org",
        "CHIPWATCH_DATA_DIR": str(tmp_path / "elsewhere"),
    }
    settings = load_settings(path, environ=env)
    assert settings.poll.interval_minutes == 45
    assert settings.fetch.allow_private_networks is True
    assert settings.smtp.host == "mail.example.org"
    assert settings.data_dir == tmp_path / "elsewhere"


def test_smtp_password_is_read_from_the_named_environment_variable(tmp_path: Path) -> None:
    import os

    path = write_config(tmp_path, "[smtp]\npassword_env = 'RELAY_SECRET_FOR_TEST'\n")
    settings = load_settings(path, environ={})
    os.environ["RELAY_SECRET_FOR_TEST"] = "hunter2"
    try:
        assert settings.smtp_password == "hunter2"
    finally:
        del os.environ["RELAY_SECRET_FOR_TEST"]
    assert "hunter2" not in repr(settings)


def test_data_dir_flag_beats_environment(tmp_path: Path) -> None:
    path = write_config(tmp_path, "")
    settings = load_settings(
        path, data_dir=tmp_path / "flag", environ={"CHIPWATCH_DATA_DIR": "/nowhere"}
    )
    assert settings.data_dir == tmp_path / "flag"


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("[poll]\ninterval_minutes = 'often'\n", "poll.interval_minutes"),
        ("[poll]\ninterval_minutes = 0\n", "poll.interval_minutes"),
        ("[fetch]\nspeed = 3\n", "fetch.speed"),
        ("colour = 'blue'\n", "colour"),
        ("[smtp]\nsecurity = 'ssl3'\n", "smtp.security"),
        ("[smtp]\nport = 70000\n", "smtp.port"),
        ("[smtp]\nca_file = '/nonexistent/ca.pem'\n", "smtp.ca_file"),
        ("[digest]\nschedule = '61 7 * * *'\n", "digest.schedule"),
        ("[digest]\ntimezone = 'Mars/Olympus'\n", "digest.timezone"),
        ("[[recipients]]\ntopics = ['x']\n", "recipients[0].address"),
        ("[[recipients]]\naddress = 'nobody'\n", "recipients[0].address"),
        ("[[recipients]]\naddress = 'a@b.c'\nwhen_empty = 'maybe'\n", "recipients[0].when_empty"),
        ("[[sources]]\nurl = 'ftp://example.org/feed'\n", "sources[0].url"),
        ("[[sources]]\nurl = 'https://x.org/f'\nfull_text = 'yes'\n", "sources[0].full_text"),
        ("[[sources]]\nurl = 'https://x.org/f'\nlanguage = '<b>fr'\n", "sources[0].language"),
        ("[web]\nhost = '999.1.1.1'\n", "web.host"),
        ('[[sources]]\nurl = "https://x.org/f"\nname = "two\\nlines"\n', "sources[0].name"),
        ("[web]\nhost = 'my host'\n", "web.host"),
        ("[classify]\nrelevance_threshold = 1.5\n", "classify.relevance_threshold"),
        ("[poll\n", ""),
        # Mail headers: one address each, no line break (a Bcc: of its own).
        (
            '[[recipients]]\naddress = "a@example.org\\r\\nBcc: b@example.org"\n',
            "recipients[0].address",
        ),
        (
            "[[recipients]]\naddress = 'Ann <a@example.org>, b@example.org'\n",
            "recipients[0].address",
        ),
        (
            "[[recipients]]\naddress = 'a@example.org'\n"
            "[[recipients]]\naddress = 'A@Example.ORG'\n",
            "recipients[1].address",
        ),
        ("[smtp]\nsender = 'not an address'\n", "smtp.sender"),
        ("[smtp]\nsender = ''\n", "smtp.sender"),
        ('[digest]\nsubject_prefix = "news\\nBcc: b@example.org"\n', "digest.subject_prefix"),
        # Valid cron that never fires: 30 February.
        ("[digest]\nschedule = '0 0 30 2 *'\n", "digest.schedule"),
        (
            "[[recipients]]\naddress = 'a@example.org'\nschedule = '0 0 31 4 *'\n",
            "recipients[0].schedule",
        ),
        # prune would refuse it: articles pruned before their lookback ends come back as new.
        ("[retention]\ndays = 3\n[digest]\nlookback_days = 7\n", "retention.days"),
    ],
)
def test_bad_config_names_file_and_field(tmp_path: Path, text: str, field: str) -> None:
    path = write_config(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ={})
    assert caught.value.field == field
    assert caught.value.source == str(path)
    assert str(path) in str(caught.value)


def test_bad_environment_value_names_the_variable(tmp_path: Path) -> None:
    path = write_config(tmp_path, "")
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ={"CHIPWATCH_FETCH_CONCURRENCY": "many"})
    assert caught.value.source == "environment variable CHIPWATCH_FETCH_CONCURRENCY"
    assert caught.value.field == "fetch.concurrency"


def test_a_range_error_from_the_environment_is_blamed_on_the_variable(tmp_path: Path) -> None:
    path = write_config(tmp_path, "[fetch]\nconcurrency = 4\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ={"CHIPWATCH_FETCH_CONCURRENCY": "0"})
    assert caught.value.source == "environment variable CHIPWATCH_FETCH_CONCURRENCY"
    # The same value in the file is blamed on the file.
    path.write_text("[fetch]\nconcurrency = 0\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ={})
    assert caught.value.source == str(path)


def test_a_mistyped_variable_is_an_error_naming_it(tmp_path: Path) -> None:
    path = write_config(tmp_path, "")
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ={"CHIPWATCH_POLL_INTERVAL_MINUTS": "60"})
    assert caught.value.source == "environment variable CHIPWATCH_POLL_INTERVAL_MINUTS"
    assert "CHIPWATCH_POLL_INTERVAL_MINUTES" in str(caught.value)  # the likely meaning


def test_variables_that_are_not_settings_are_accepted(tmp_path: Path) -> None:
    path = write_config(tmp_path, "[smtp]\npassword_env = 'CHIPWATCH_RELAY_SECRET'\n")
    env = {
        "CHIPWATCH_CONFIG": str(path),
        "CHIPWATCH_CACHE_DIR": str(tmp_path / "cache"),
        "CHIPWATCH_DATABASE_URL": "sqlite:///x",
        "CHIPWATCH_RELAY_SECRET": "s3cret",  # named by smtp.password_env
        "CHIPWATCH_DATA_DIR": str(tmp_path / "data"),
    }
    assert load_settings(None, environ=env).config_path == path
    with pytest.raises(ConfigError, match="CHIPWATCH_SMTP_PASSWORD"):
        # The default password variable is no longer known once another one is named.
        load_settings(path, environ={"CHIPWATCH_SMTP_PASSWORD": "x"})


def test_a_data_folder_that_is_a_file_is_a_config_error(tmp_path: Path) -> None:
    path = write_config(tmp_path, "")
    a_file = tmp_path / "notes.txt"
    a_file.write_text("not a folder", encoding="utf-8")
    with pytest.raises(ConfigError, match="is a file, not a folder") as caught:
        load_settings(path, data_dir=a_file, environ={})
    assert caught.value.source == "--data-dir"
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ={"CHIPWATCH_DATA_DIR": str(a_file / "below")})
    assert caught.value.source == "environment variable CHIPWATCH_DATA_DIR"


def test_cli_reports_a_data_folder_that_is_a_file_in_one_line(tmp_path: Path) -> None:
    path = write_config(tmp_path, "")
    a_file = tmp_path / "data"
    a_file.write_text("", encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "chipwatch", "--config", str(path), "--data-dir", str(a_file)]
        + ["feeds", "list"],
        capture_output=True,
        text=True,
        check=False,
        env=_clean_env(tmp_path),
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"configuration error: --data-dir: data_dir: {a_file} is a file, not a folder "
        "(give another path)"
    ]


def test_an_unreadable_config_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    folder = tmp_path / "config-folder.toml"  # a folder where the file should be
    folder.mkdir()
    (folder / "chipwatch.toml").mkdir()
    result = subprocess.run(
        [sys.executable, "-m", "chipwatch", "--config", str(folder), "feeds", "list"],
        capture_output=True,
        text=True,
        check=False,
        env=_clean_env(tmp_path),
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith(f"configuration error: {folder / 'chipwatch.toml'}: cannot")


def _clean_env(tmp_path: Path) -> dict[str, str]:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith(("CHIPWATCH_", "XDG_"))}
    env["XDG_CONFIG_HOME"] = str(tmp_path / "xdg-config")
    env["XDG_DATA_HOME"] = str(tmp_path / "xdg-data")
    return env


def test_config_search_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from chipwatch import settings as settings_module

    monkeypatch.setattr(settings_module, "SYSTEM_CONFIG_DIR", tmp_path / "etc")
    env = {"XDG_CONFIG_HOME": str(tmp_path / "xdg"), "XDG_DATA_HOME": str(tmp_path / "share")}
    packaged = load_settings(None, environ=env)
    assert packaged.config_origin == "packaged" and not packaged.config_is_users
    assert packaged.data_dir == tmp_path / "share" / "chipwatch"

    (tmp_path / "etc").mkdir()
    write_config(tmp_path / "etc", "[poll]\ninterval_minutes = 41\n")
    assert load_settings(None, environ=env).poll.interval_minutes == 41

    (tmp_path / "xdg" / "chipwatch").mkdir(parents=True)
    write_config(tmp_path / "xdg" / "chipwatch", "[poll]\ninterval_minutes = 42\n")
    found = load_settings(None, environ=env)
    assert found.poll.interval_minutes == 42 and found.config_is_users

    write_config(tmp_path, "[poll]\ninterval_minutes = 43\n")
    by_variable = {**env, "CHIPWATCH_CONFIG": str(tmp_path)}  # a folder stands for its file
    assert load_settings(None, environ=by_variable).poll.interval_minutes == 43
    explicit = tmp_path / "etc" / "chipwatch.toml"
    assert load_settings(explicit, environ=by_variable).poll.interval_minutes == 41


def test_writable_copy_never_writes_into_the_package_or_a_checkout(tmp_path: Path) -> None:
    from chipwatch.settings import PACKAGED_CONFIG_DIR, writable_copy

    env = {"XDG_CONFIG_HOME": str(tmp_path / "xdg"), "XDG_DATA_HOME": str(tmp_path / "share")}
    for config in (PACKAGED_CONFIG_DIR / "chipwatch.toml", SHIPPED_CONFIG):
        paths = writable_copy(load_settings(config, environ=env), env)
        assert paths.config_dir == tmp_path / "xdg" / "chipwatch"
        assert paths.topics_path.is_file() and (paths.corpus_dir / "corpus.toml").is_file()
    # The user's own folder is written in place.
    mine = load_settings(paths.config_path, environ=env)
    assert writable_copy(mine, env).corpus_dir == paths.corpus_dir


def test_missing_config_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_settings(tmp_path / "absent.toml", environ={})


def test_cli_exits_2_and_names_file_and_field(tmp_path: Path) -> None:
    path = write_config(tmp_path, "[fetch]\ndeadline_seconds = -1\n")
    result = subprocess.run(
        [sys.executable, "-m", "chipwatch", "--config", str(path), "feeds", "list"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert str(path) in result.stderr
    assert "fetch.deadline_seconds" in result.stderr


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_a_data_folder_that_cannot_be_created_is_one_line(tmp_path: Path) -> None:
    path = write_config(tmp_path, "")
    result = subprocess.run(
        [sys.executable, "-m", "chipwatch", "--config", str(path), "feeds", "list"],
        capture_output=True,
        text=True,
        check=False,
        env={**_clean_env(tmp_path), "CHIPWATCH_DATA_DIR": "/proc/chipwatch-data"},
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "configuration error: environment variable CHIPWATCH_DATA_DIR: data_dir: "
        "cannot create /proc/chipwatch-data: No such file or directory"
    ]


def test_a_topics_file_or_corpus_named_but_absent_is_refused_at_start_up(tmp_path: Path) -> None:
    for key, value in (("topics", "my-topics.toml"), ("corpus_dir", "my-corpus")):
        config = tmp_path / "chipwatch.toml"
        config.write_text(f'{key} = "{value}"\n', encoding="utf-8")
        with pytest.raises(ConfigError) as caught:
            load_settings(config)
        assert caught.value.field == key and caught.value.source == str(config)
        assert str(tmp_path / value) in caught.value.message


def test_without_topics_or_corpus_beside_it_a_config_uses_the_packaged_ones(
    tmp_path: Path,
) -> None:
    from chipwatch.settings import PACKAGED_CONFIG_DIR

    config = tmp_path / "chipwatch.toml"
    config.write_text("", encoding="utf-8")
    loaded = load_settings(config)
    assert loaded.topics_path == PACKAGED_CONFIG_DIR / "topics.toml"
    assert loaded.corpus_dir == PACKAGED_CONFIG_DIR / "corpus"
    (tmp_path / "topics.toml").write_text("", encoding="utf-8")
    (tmp_path / "corpus").mkdir()
    beside = load_settings(config)  # the ones next to the file come first
    assert beside.topics_path == tmp_path / "topics.toml"
    assert beside.corpus_dir == tmp_path / "corpus"


@pytest.mark.parametrize(
    ("body", "field", "says"),
    [
        ('[[recipients]]\naddress = "a@example.org"\ntopics = ["licensing"]\n',
         "recipients[0].topics", "unknown topic ids: licensing"),
        ('[web]\npublic_url = "http://[::1"\n', "web.public_url", "IPv6"),
        ('[web]\npublic_url = "https://"\n', "web.public_url", "no host name"),
        ('database_url = "sqlite:////no/such/folder/w.db"\n', "database_url", "no such folder"),
    ],
)  # fmt: skip
def test_settings_that_could_only_fail_later_are_refused_at_start_up(
    tmp_path: Path, body: str, field: str, says: str
) -> None:
    config = tmp_path / "chipwatch.toml"
    config.write_text(body, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_settings(config)
    assert caught.value.field == field and says in caught.value.message


def test_a_recipient_may_name_the_users_own_topics(tmp_path: Path) -> None:
    config = tmp_path / "chipwatch.toml"
    config.write_text(
        '[[recipients]]\naddress = "a@example.org"\ntopics = ["entity-list"]\n', encoding="utf-8"
    )
    (tmp_path / "user-topics.toml").write_text(
        '[[topic]]\nid = "entity-list"\nname = "Entity List"\ndescription = "Additions."\n',
        encoding="utf-8",
    )
    assert load_settings(config).recipients[0].topics == ("entity-list",)


def test_addresses_with_a_display_name_or_a_local_host_are_kept(tmp_path: Path) -> None:
    path = write_config(
        tmp_path,
        "[smtp]\nsender = 'chipwatch <watch@example.org>'\n"
        "[[recipients]]\naddress = 'Ann Analyst <ann@example.org>'\n"
        "[[recipients]]\naddress = 'reader@localhost'\n",
    )
    settings = load_settings(path, environ={})
    assert [r.address for r in settings.recipients] == [
        "Ann Analyst <ann@example.org>",
        "reader@localhost",
    ]


def test_relative_cache_and_textfile_paths_are_taken_from_the_config_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "conf"
    folder.mkdir()
    path = write_config(folder, "[classify]\ncache_dir = 'fits'\n[metrics]\ntextfile = 'm.prom'\n")
    monkeypatch.chdir(tmp_path)  # a cron job's working directory must not decide
    settings = load_settings(path, environ={})
    assert settings.cache_dir == folder / "fits"
    assert settings.metrics_textfile == folder / "m.prom"


def test_a_cache_dir_that_is_a_file_is_refused_at_start_up(tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("a file of the user's\n", encoding="utf-8")
    path = write_config(tmp_path, "[classify]\ncache_dir = 'taken/fits'\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ={})
    assert caught.value.field == "classify.cache_dir" and "is a file" in str(caught.value)


# database_url mistakes that failed only when connecting: a traceback from SQLAlchemy's
# URL parser, or exit 5 as if the server were at fault.
BAD_DATABASE_URLS = [
    ("postgresql://h:secret@[::1", "Invalid IPv6 URL"),
    ("postgresql://h:secret@[::1/chip", "Invalid IPv6 URL"),
    ("postgresql://h:secret@db.example.org:99999/chip", "not a TCP port"),
    ("postgresql://h:secret@db.example.org:abc/chip", "not a TCP port"),
    ("postgresql://h:secret@db.example.org:0/chip", "not a TCP port"),
    ("postgresql://h:secret@h1:5432,h2:5433/chip", "several hosts go in the query"),
    ("postgresql://h@127.0.0.1:5432/chip?sslmode=bogus", "sslmode='bogus' is not one of"),
    ("postgresql://h@127.0.0.1/chip?target_session_attrs=primry", "target_session_attrs="),
    ("postgresql://h@127.0.0.1/chip?gssencmode=maybe", "gssencmode='maybe'"),
    ("postgresql://h@127.0.0.1/chip?sslmod=require", "'sslmod'; did you mean sslmode?"),
    ("postgresql://h@127.0.0.1/chip?nonsense=1", "unknown connection option 'nonsense'"),
    ("postgresql://h@127.0.0.1/chip?connect_timeout=abc", "connect_timeout='abc' is not a whole"),
    ("postgresql://h@/chip?host=h1&port=5432,70000", "not a TCP port"),
    ("postgresql://h@127.0.0.1:5432/", "must name the database"),
]


@pytest.mark.parametrize(("url", "says"), BAD_DATABASE_URLS)
def test_a_malformed_database_url_is_a_config_error_naming_its_source(
    tmp_path: Path, url: str, says: str
) -> None:
    path = write_config(tmp_path, f'database_url = "{url}"\n')
    with pytest.raises(ConfigError) as from_file:
        load_settings(path, environ={})
    with pytest.raises(ConfigError) as from_env:
        load_settings(write_config(tmp_path, ""), environ={"CHIPWATCH_DATABASE_URL": url})
    assert from_file.value.source == str(path)
    assert from_env.value.source == "CHIPWATCH_DATABASE_URL"
    for caught in (from_file, from_env):
        assert caught.value.field == "database_url" and says in caught.value.message
        assert "secret" not in str(caught.value)  # a password never reaches a log


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://h@[::1]:5432/chip",
        "postgresql:///chip",  # libpq: the local Unix socket
        "postgresql://h@/chip?host=/var/run/postgresql",
        "postgresql://h@/chip?host=h1:5432&host=h2:5433",  # SQLAlchemy's several hosts
        "postgresql://h@/chip?host=h1,h2&port=5432,",  # libpq's lists; empty = default port
        "postgresql://h@db.example.org/chip?sslmode=verify-full&target_session_attrs=read-write",
        "postgresql://h@db.example.org/chip?connect_timeout=0&application_name=chipwatch",
    ],
)
def test_well_formed_database_urls_are_kept(tmp_path: Path, url: str) -> None:
    settings = load_settings(write_config(tmp_path, ""), environ={"CHIPWATCH_DATABASE_URL": url})
    assert settings.store_url == url.replace("postgresql://", "postgresql+psycopg://")


def test_cli_refuses_a_malformed_database_url_in_one_line(tmp_path: Path) -> None:
    path = write_config(tmp_path, "")
    for url, says in BAD_DATABASE_URLS[:1] + BAD_DATABASE_URLS[6:7]:
        result = subprocess.run(
            [sys.executable, "-m", "chipwatch", "--config", str(path), "outbox"],
            capture_output=True,
            text=True,
            check=False,
            env=_clean_env(tmp_path) | {"CHIPWATCH_DATABASE_URL": url},
            timeout=60,
        )
        assert result.returncode == 2, result.stderr[-2000:]
        assert "Traceback" not in result.stderr
        (line,) = result.stderr.strip().splitlines()
        assert line.startswith("configuration error: CHIPWATCH_DATABASE_URL: database_url: ")
        assert says in line
