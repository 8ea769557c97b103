"""Load and validate configuration into one frozen Settings object.

Sources, lowest precedence first: built-in defaults, the config file,
`CHIPWATCH_<SECTION>_<KEY>` environment variables, command-line flags (`--data-dir`).
The config file is the first of: `--config`, `$CHIPWATCH_CONFIG`,
`$XDG_CONFIG_HOME/chipwatch/chipwatch.toml`, `/etc/chipwatch/chipwatch.toml`, the
defaults packaged with chipwatch. Data lives in `--data-dir`, `$CHIPWATCH_DATA_DIR`, the
file's `data_dir`, else `$XDG_DATA_HOME/chipwatch`.
Every error names its true source (the file, the variable or the flag) and the field, and
the CLI exits with code 2. A `CHIPWATCH_*` variable that is no setting is an error too.
"""

from __future__ import annotations

import difflib
import os
import re
import shutil
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from chipwatch.errors import ConfigError
from chipwatch.store.url import (
    SQLITE_FILENAME,
    DatabaseUrlError,
    is_sqlite,
    normalise_url,
    sqlite_url,
)
from chipwatch.types import language_code_problem

ENV_PREFIX = "CHIPWATCH_"
CONFIG_FILE = "chipwatch.toml"
# The defaults shipped in the wheel (in a checkout: a link to the tracked config/ folder).
PACKAGED_CONFIG_DIR = Path(__file__).parent / "defaults"
SYSTEM_CONFIG_DIR = Path("/etc/chipwatch")
# Variables that are read by chipwatch but are not settings of the file.
NON_SETTING_VARIABLES = frozenset(
    {"CHIPWATCH_CONFIG", "CHIPWATCH_CACHE_DIR", "CHIPWATCH_DATABASE_URL", "CHIPWATCH_DATA_DIR"}
)


def user_config_dir(environ: Mapping[str, str] | None = None) -> Path:
    """`$XDG_CONFIG_HOME/chipwatch` (default `~/.config/chipwatch`): the user's own copy."""
    env = os.environ if environ is None else environ
    base = env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base).expanduser() / "chipwatch"


def user_data_dir(environ: Mapping[str, str] | None = None) -> Path:
    """`$XDG_DATA_HOME/chipwatch` (default `~/.local/share/chipwatch`)."""
    env = os.environ if environ is None else environ
    base = env.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base).expanduser() / "chipwatch"


BOUNDS = "bounds"  # field metadata key: (lowest, highest) allowed, both included


def bounded(default: Any, lowest: float, highest: float) -> Any:
    """A numeric setting with the range enforced at start-up (and found by the tests by
    introspection: every int or float setting must have one)."""
    return field(default=default, metadata={BOUNDS: (lowest, highest)})


def check_bounds(cls: type, name: str, value: object, source: str, where: str) -> None:
    """ConfigError naming the file (or variable) and field when `value` is out of range."""
    spec = next((f for f in fields(cls) if f.name == name), None)
    if spec is None or BOUNDS not in spec.metadata or isinstance(value, bool):
        return
    lowest, highest = spec.metadata[BOUNDS]
    if not isinstance(value, int | float) or not lowest <= value <= highest:  # NaN too
        raise ConfigError(source, where, f"must be between {lowest:g} and {highest:g}, got {value}")


# The file `chipwatch topics add` writes, in the folder of the user's config.
USER_TOPICS_FILE = "user-topics.toml"


@dataclass(frozen=True)
class FetchSettings:
    concurrency: int = bounded(32, 1, 1024)  # requests in flight across all hosts
    per_host_concurrency: int = bounded(2, 1, 64)  # requests in flight to one host
    # pause between two requests to one host
    per_host_delay_seconds: float = bounded(0.0, 0.0, 3600.0)
    connect_timeout_seconds: float = bounded(10.0, 0.01, 600.0)  # TCP and TLS connect
    read_timeout_seconds: float = bounded(20.0, 0.01, 3600.0)  # between two received chunks
    # whole fetch, however slowly the server trickles
    deadline_seconds: float = bounded(60.0, 0.01, 3600.0)
    max_body_bytes: int = bounded(10 * 1024 * 1024, 1024, 1 << 30)  # cap on the decompressed body
    max_redirects: int = bounded(5, 0, 30)  # redirects followed per fetch
    allow_private_networks: bool = False  # allow loopback/private addresses (demo, tests)
    parse_timeout_seconds: float = bounded(20.0, 0.01, 600.0)  # limit on parsing one feed
    max_entries_per_feed: int = bounded(500, 1, 100_000)  # entries kept from one feed document
    max_entry_chars: int = bounded(100_000, 100, 10_000_000)  # characters kept of one entry's text


@dataclass(frozen=True)
class PollSettings:
    interval_minutes: int = bounded(30, 1, 10_080)  # how often `chipwatch run` polls due feeds
    min_interval_minutes: int = bounded(15, 1, 10_080)  # adaptive interval lower bound per feed
    max_interval_minutes: int = bounded(1440, 1, 525_600)  # adaptive interval upper bound per feed
    # a feed is disabled after this many failures in a row
    max_consecutive_errors: int = bounded(10, 1, 10_000)
    classify_on_poll: bool = True  # classify new articles right after they are stored
    # On a source's first successful poll, items published longer ago than this are
    # stored and classified but never mailed: the first digest is not the feed's history.
    first_poll_backfill_hours: float = bounded(24.0, 0.0, 87_600.0)


@dataclass(frozen=True)
class WorkersSettings:
    """`chipwatch worker` and `poll --wait` on PostgreSQL (the Procrastinate task queue)."""

    concurrency: int = bounded(8, 1, 256)  # jobs one worker runs at once (--concurrency)
    # how long `poll --wait` waits for the workers before it exits 75 (jobs stay queued)
    wait_timeout_seconds: float = bounded(3600.0, 0.1, 7 * 86_400.0)
    heartbeat_seconds: float = bounded(10.0, 0.1, 3600.0)  # how often a worker says it lives
    # a worker silent this long is dead: its running jobs are retried by another worker
    stalled_after_seconds: float = bounded(60.0, 0.5, 86_400.0)
    # finished jobs are deleted this long after they finished (failed ones are kept)
    keep_jobs_hours: int = bounded(72, 1, 87_600)
    # when the workers' schedule runs (polls due feeds, due digests, outbox retries);
    # six fields give seconds; "" runs none in this worker. Deduplicated across workers.
    tick_cron: str = "* * * * *"


@dataclass(frozen=True)
class ClassifySettings:
    # relevance probability above which an article is kept
    relevance_threshold: float = bounded(0.5, 0.0, 1.0)
    cache_dir: str = ""  # where the fitted classifier is cached ("" = <data_dir>/cache)


@dataclass(frozen=True)
class SmtpSettings:
    host: str = ""  # empty: no SMTP, the digest goes to <data_dir>/maildir
    port: int = bounded(587, 1, 65535)  # 587 for STARTTLS, 465 for TLS, 25 for plain
    security: str = "starttls"  # starttls | tls | none
    username: str = ""  # login; empty means no authentication
    password_env: str = "CHIPWATCH_SMTP_PASSWORD"  # environment variable holding the password
    sender: str = "chipwatch <chipwatch@localhost>"  # From: header
    timeout_seconds: float = bounded(30.0, 0.01, 3600.0)  # SMTP connection timeout
    ca_file: str = ""  # extra CA certificates to trust (a private relay); empty = system store


@dataclass(frozen=True)
class Recipient:
    address: str
    topics: tuple[str, ...] = ()  # subscribed topic ids; empty = all topics
    min_relevance: float = bounded(0.5, 0.0, 1.0)  # items below this relevance are left out
    languages: tuple[str, ...] = ()  # article languages wanted; empty = all
    include_novel: bool = True  # include the "novel: no topic yet" section
    schedule: str = ""  # cron expression; empty = [digest].schedule
    timezone: str = ""  # empty = [digest].timezone
    when_empty: str = "skip"  # skip | send: what to do when nothing is new


@dataclass(frozen=True)
class DigestSettings:
    schedule: str = "30 7 * * *"  # cron expression (minute hour day month weekday)
    timezone: str = "Europe/Paris"  # timezone of the schedule
    max_items_per_topic: int = bounded(20, 1, 1000)  # stories shown per topic section
    excerpt_chars: int = bounded(280, 20, 10_000)  # length of each item's excerpt
    lookback_days: int = bounded(
        7, 1, 3650
    )  # only articles published in this window are candidates
    subject_prefix: str = "chipwatch"  # start of the subject line


@dataclass(frozen=True)
class ArticleSettings:
    """Fetching the article page of items whose feed gives a headline or a short summary."""

    # feed text shorter than this is replaced by the page's
    fetch_below_chars: int = bounded(600, 0, 1_000_000)
    # page text shorter than this is not an article: feed text kept
    min_text_chars: int = bounded(300, 0, 1_000_000)
    # page fetches per poll, all sources together; the rest wait
    max_per_cycle: int = bounded(200, 0, 100_000)
    per_host_concurrency: int = bounded(1, 1, 64)  # page requests in flight to one publisher
    # pause between two page requests to one publisher
    per_host_delay_seconds: float = bounded(1.0, 0.0, 3600.0)
    # limit on one page fetch (and at most fetch.deadline_seconds)
    deadline_seconds: float = bounded(30.0, 0.01, 3600.0)
    # a page (or resolved link) is fetched again after this many days
    cache_days: int = bounded(30, 1, 3650)


@dataclass(frozen=True)
class NewsSearchSettings:
    """The news-search services whose item links are redirects to publishers' pages."""

    google_news_url: str = "https://news.google.com"  # base of Google News links and its decoder
    bing_url: str = "https://www.bing.com"  # base of Bing News links (apiclick.aspx?url=...)
    resolve_batch_size: int = bounded(20, 1, 1000)  # Google News links decoded per decoder request


ARTICLE_TEXT_MODES = ("feed", "fetch")


@dataclass(frozen=True)
class RetentionSettings:
    # `chipwatch prune` without --older-than; 0 = keep everything
    days: int = bounded(0, 0, 36_500)


@dataclass(frozen=True)
class MetricsSettings:
    # `chipwatch run` serves Prometheus metrics on 127.0.0.1:port; 0 = off
    port: int = bounded(0, 0, 65535)
    textfile: str = ""  # file rewritten after each poll and digest (node_exporter); "" = off


@dataclass(frozen=True)
class HealthSettings:
    # `chipwatch health` bound; 0 = 3 poll intervals
    max_poll_age_minutes: int = bounded(0, 0, 525_600)
    # an unsent digest older than this is unhealthy
    max_send_age_hours: float = bounded(24.0, 0.01, 87_600.0)


@dataclass(frozen=True)
class WebSettings:
    host: str = "127.0.0.1"  # address `chipwatch serve` listens on
    port: int = bounded(8080, 1, 65535)  # its TCP port
    public_url: str = "http://127.0.0.1:8080/"  # the site as readers reach it (digest links)
    session_hours: int = bounded(336, 1, 87_600)  # a login lasts this long (14 days)
    # digest links ("not relevant", unsubscribe) expire after this
    link_ttl_days: int = bounded(30, 1, 3650)
    # failed logins per name or address within 15 minutes
    login_attempts: int = bounded(5, 1, 1000)
    forwarded_allow_ips: str = "127.0.0.1"  # proxies whose X-Forwarded-* headers are trusted


@dataclass(frozen=True)
class SourceConfig:
    url: str
    name: str = ""
    language: str = ""  # expected language; empty = detect per article
    # "feed": the feed's text; "fetch": the article page for items whose feed text is
    # short; "" = the default ("fetch" for news-search feeds, "feed" otherwise).
    # `full_text = true` (the older setting) is read as "fetch".
    article_text: str = ""
    covers: str = ""  # what the source covers (the shipped list documents each entry)
    checked_against: str = ""  # the publisher's documentation the URL was checked against
    checked_on: str = ""  # date of that check (YYYY-MM-DD)
    checked_how: str = ""  # how it was checked (the shipped list is checked on paper)
    tags: tuple[str, ...] = ()  # categories (OPML folders and `category`), kept on export


@dataclass(frozen=True)
class Settings:
    config_path: Path
    config_dir: Path
    data_dir: Path
    topics_path: Path
    corpus_dir: Path
    fetch: FetchSettings = field(default_factory=FetchSettings)
    poll: PollSettings = field(default_factory=PollSettings)
    classify: ClassifySettings = field(default_factory=ClassifySettings)
    smtp: SmtpSettings = field(default_factory=SmtpSettings)
    digest: DigestSettings = field(default_factory=DigestSettings)
    articles: ArticleSettings = field(default_factory=ArticleSettings)
    news_search: NewsSearchSettings = field(default_factory=NewsSearchSettings)
    retention: RetentionSettings = field(default_factory=RetentionSettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    health: HealthSettings = field(default_factory=HealthSettings)
    web: WebSettings = field(default_factory=WebSettings)
    workers: WorkersSettings = field(default_factory=WorkersSettings)
    recipients: tuple[Recipient, ...] = ()
    sources: tuple[SourceConfig, ...] = ()
    config_origin: str = "--config"  # how the file was found, for messages
    data_dir_origin: str = "--data-dir"  # where data_dir came from, for messages

    @property
    def config_is_users(self) -> bool:
        """Whether `corpus add` and `topics add` may write next to this config: not the
        packaged defaults, not a source checkout's tracked config/, and writable."""
        folder = self.config_dir.resolve()
        if folder == PACKAGED_CONFIG_DIR.resolve() or _in_checkout(folder):
            return False
        return os.access(folder, os.W_OK)

    database_url: str = ""  # sqlite:///PATH or postgresql://...; "" = database_path

    @property
    def database_path(self) -> Path:
        """The default database: a SQLite file in the data folder."""
        return self.data_dir / SQLITE_FILENAME

    @property
    def store_url(self) -> str:
        """The database every command opens (`database_url`, else `database_path`)."""
        return (
            normalise_url(self.database_url)
            if self.database_url
            else sqlite_url(self.database_path)
        )

    @property
    def maildir_path(self) -> Path:
        return self.data_dir / "maildir"

    @property
    def user_topics_path(self) -> Path:
        """The user's own topics (`chipwatch topics add`), next to the active config; the
        shipped topics.toml is never written."""
        return self.config_dir / USER_TOPICS_FILE

    @property
    def cache_dir(self) -> Path:
        """[classify] cache_dir (relative to the config file's folder, as the config's other
        paths; it was taken relative to the working directory), else <data_dir>/cache."""
        if self.classify.cache_dir:
            return _relative_to(self.config_dir, self.classify.cache_dir)
        return self.data_dir / "cache"

    @property
    def metrics_textfile(self) -> Path | None:
        """[metrics] textfile, relative to the config file's folder; None when off."""
        textfile = self.metrics.textfile
        return _relative_to(self.config_dir, textfile) if textfile else None

    @property
    def smtp_password(self) -> str:
        return os.environ.get(self.smtp.password_env, "")


_SECTIONS: dict[str, type] = {
    "fetch": FetchSettings,
    "poll": PollSettings,
    "classify": ClassifySettings,
    "smtp": SmtpSettings,
    "digest": DigestSettings,
    "articles": ArticleSettings,
    "news_search": NewsSearchSettings,
    "retention": RetentionSettings,
    "metrics": MetricsSettings,
    "health": HealthSettings,
    "web": WebSettings,
    "workers": WorkersSettings,
}
_TOP_LEVEL_KEYS = {
    "data_dir",
    "database_url",
    "topics",
    "corpus_dir",
    "recipients",
    "sources",
    *_SECTIONS,
}


def load_settings(
    config_path: Path | None = None,
    data_dir: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Find and read the config file, apply the environment, validate everything."""
    env = os.environ if environ is None else environ
    config_path, origin = find_config(config_path, env)
    raw = _read_toml(config_path)
    source = str(config_path)
    unknown = set(raw) - _TOP_LEVEL_KEYS
    if unknown:
        raise ConfigError(source, sorted(unknown)[0], "unknown setting")

    config_dir = config_path.parent
    origins: dict[str, str] = {}
    sections = {
        name: _build_section(cls, raw.get(name, {}), name, source, env, origins)
        for name, cls in _SECTIONS.items()
    }
    _check_environment(env, sections["smtp"].password_env)
    resolved_data_dir = _data_dir(data_dir, env, raw, config_dir, source, origins)
    settings = Settings(
        config_path=config_path,
        config_dir=config_dir,
        data_dir=resolved_data_dir,
        topics_path=_classifier_input(raw, "topics", "topics.toml", config_dir, source),
        corpus_dir=_classifier_input(raw, "corpus_dir", "corpus", config_dir, source),
        recipients=_build_recipients(raw.get("recipients", []), source),
        sources=_build_sources(raw.get("sources", []), source),
        config_origin=origin,
        data_dir_origin=origins["data_dir"],
        database_url=_database_url(env, raw, source),
        **sections,
    )
    _validate(settings, lambda name: origins.get(name, source))
    return settings


def find_config(explicit: Path | None, env: Mapping[str, str]) -> tuple[Path, str]:
    """The config file to read and how it was found (`--config`, the variable, the user's
    folder, /etc, or the packaged defaults). A folder stands for its chipwatch.toml."""
    if explicit is not None:
        return _config_file(explicit), "--config"
    if env.get(ENV_PREFIX + "CONFIG"):
        return _config_file(Path(env[ENV_PREFIX + "CONFIG"])), ENV_PREFIX + "CONFIG"
    for folder, origin in (
        (user_config_dir(env), "user"),
        (SYSTEM_CONFIG_DIR, "system"),
    ):
        if (folder / CONFIG_FILE).is_file():
            return folder / CONFIG_FILE, origin
    return PACKAGED_CONFIG_DIR / CONFIG_FILE, "packaged"


def _config_file(path: Path) -> Path:
    path = path.expanduser()
    return path / CONFIG_FILE if path.is_dir() else path


def _in_checkout(folder: Path) -> bool:
    """A chipwatch source tree's config/ (tracked files: `git pull` would conflict)."""
    root = folder.parent
    return (root / "pyproject.toml").is_file() and (root / "src" / "chipwatch").is_dir()


def _data_dir(
    flag: Path | None,
    env: Mapping[str, str],
    raw: Mapping[str, Any],
    config_dir: Path,
    source: str,
    origins: dict[str, str],
) -> Path:
    """--data-dir, $CHIPWATCH_DATA_DIR, the file's data_dir (relative to the folder above
    the file's), else $XDG_DATA_HOME/chipwatch; refused if it is (or lies in) a file."""
    if flag is not None:
        path, where = flag.expanduser(), "--data-dir"
    elif env.get(ENV_PREFIX + "DATA_DIR"):
        path, where = Path(env[ENV_PREFIX + "DATA_DIR"]).expanduser(), "CHIPWATCH_DATA_DIR"
        where = f"environment variable {where}"
    elif _str(raw.get("data_dir", ""), source, "data_dir"):
        path, where = _relative_to(config_dir.parent, raw["data_dir"]), source
    else:
        path, where = user_data_dir(env), "$XDG_DATA_HOME"
    origins["data_dir"] = where
    _check_folder(path, where)
    return path


def _check_folder(path: Path, where: str) -> None:
    """A data folder that is a file (or under one) is a user's mistake, not a traceback."""
    for candidate in (path, *path.parents):
        if candidate.exists():
            if not candidate.is_dir():
                raise ConfigError(
                    where, "data_dir", f"{candidate} is a file, not a folder (give another path)"
                )
            return


def _check_environment(env: Mapping[str, str], password_env: str) -> None:
    """A mistyped CHIPWATCH_ variable would silently do nothing: refuse it, with a guess."""
    known = set(NON_SETTING_VARIABLES) | {password_env}
    for section, cls in _SECTIONS.items():
        known |= {f"{ENV_PREFIX}{section.upper()}_{f.name.upper()}" for f in fields(cls)}
    for name in sorted(env):
        if name.startswith(ENV_PREFIX) and name not in known:
            close = difflib.get_close_matches(name, sorted(known), n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            raise ConfigError(f"environment variable {name}", "", f"not a chipwatch setting{hint}")


def ensure_data_dir(settings: Settings) -> Path:
    """Create the data folder; a folder that cannot be made is the user's to fix (one
    line naming where the path came from), not a traceback."""
    try:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            settings.data_dir_origin,
            "data_dir",
            f"cannot create {settings.data_dir}: {exc.strerror or exc}",
        ) from None
    return settings.data_dir


@dataclass(frozen=True)
class UserPaths:
    """The user's writable copy: where `corpus add` and `topics add` write."""

    config_dir: Path
    config_path: Path
    topics_path: Path
    corpus_dir: Path


def writable_copy(settings: Settings, environ: Mapping[str, str] | None = None) -> UserPaths:
    """The folder the user may edit: the config's own when it is theirs; otherwise (the
    packaged defaults, a checkout's tracked config/, /etc not writable) a copy of the
    current config, topics and corpus in `$XDG_CONFIG_HOME/chipwatch`, made on first use.
    The copy is what later commands find (it comes before /etc and the defaults)."""
    if settings.config_is_users:
        return UserPaths(
            settings.config_dir,
            settings.config_path,
            _own(settings.topics_path, settings.config_dir / "topics.toml"),
            _own(settings.corpus_dir, settings.config_dir / "corpus"),
        )
    target = user_config_dir(environ)
    if not (target / CONFIG_FILE).is_file():
        copy_config(settings, target, force=False)
    copy = load_settings(target / CONFIG_FILE, settings.data_dir, environ)
    return UserPaths(copy.config_dir, copy.config_path, copy.topics_path, copy.corpus_dir)


def _packaged(path: Path) -> bool:
    """Whether `path` is (in) the packaged defaults."""
    resolved, packaged = path.resolve(), PACKAGED_CONFIG_DIR.resolve()
    return resolved == packaged or packaged in resolved.parents


def shipped_file(path: Path) -> bool:
    """Whether `path` is (in) the packaged defaults or a checkout's tracked config/."""
    resolved = path.resolve()
    folder = resolved if resolved.is_dir() else resolved.parent
    return _packaged(path) or _in_checkout(folder)


def _own(path: Path, beside: Path) -> Path:
    """`path`, or, when it is the packaged one (the config names none and has none beside
    it), a copy of it beside the config: the package is never written."""
    if not _packaged(path):
        return path
    try:
        if path.is_dir():
            shutil.copytree(path, beside)
        else:
            shutil.copyfile(path, beside)
    except OSError as exc:
        raise ConfigError(str(beside), "", f"cannot write: {exc.strerror or exc}") from None
    return beside


def copy_config(settings: Settings, target: Path, *, force: bool) -> list[Path]:
    """Write the config file, the topics and the corpus of `settings` into `target`.

    Refuses (ConfigError naming the first existing file) to overwrite without `force`."""
    destinations = [target / CONFIG_FILE, target / "topics.toml", target / "corpus"]
    existing = [path for path in destinations if path.exists()]
    if existing and not force:
        raise ConfigError(str(existing[0]), "", "already exists (hint: --force overwrites it)")
    _check_folder(target, str(target))
    try:
        target.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(settings.config_path, destinations[0])
        shutil.copyfile(settings.topics_path, destinations[1])
        if destinations[2].exists():
            shutil.rmtree(destinations[2])
        shutil.copytree(settings.corpus_dir, destinations[2])
    except OSError as exc:
        where = exc.filename or target
        raise ConfigError(str(where), "", f"cannot write: {exc.strerror or exc}") from None
    return destinations


def _database_url(env: Mapping[str, str], raw: Mapping[str, Any], source: str) -> str:
    """The `database_url` setting (CHIPWATCH_DATABASE_URL first), normalised; "" if unset."""
    key = ENV_PREFIX + "DATABASE_URL"
    where, value = (key, env[key]) if key in env else (source, raw.get("database_url", ""))
    value = _str(value, where, "database_url")
    if not value.strip():
        return ""
    try:
        url = normalise_url(value)
    except DatabaseUrlError as exc:
        raise ConfigError(where, "database_url", str(exc)) from None
    if is_sqlite(url):
        folder = Path(url.partition(":///")[2].partition("?")[0]).parent
        if not folder.is_dir():
            raise ConfigError(where, "database_url", f"no such folder: {folder}")
    return url


def with_overrides(settings: Settings, **sections: Mapping[str, Any]) -> Settings:
    """Return settings with some section fields replaced (used by the demo and tests)."""
    changes = {
        name: replace(getattr(settings, name), **values) for name, values in sections.items()
    }
    return replace(settings, **changes)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(
            str(path), "", "file not found (hint: `chipwatch init` writes one)"
        ) from None
    except OSError as exc:  # a folder, no permission, an I/O error
        raise ConfigError(str(path), "", f"cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(str(path), "", f"not UTF-8 text: {exc.reason}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), "", f"invalid TOML: {exc}") from None
    except RecursionError:  # arrays or tables nested thousands deep
        raise ConfigError(str(path), "", "invalid TOML: nested too deeply") from None


def _classifier_input(
    raw: Mapping[str, Any], key: str, default: str, config_dir: Path, source: str
) -> Path:
    """The topics file or corpus folder: as the config names it (which must exist: said
    at start-up, not after a poll has fetched everything), else the one beside the config
    file, else the packaged one (a config file of a few lines needs neither)."""
    if key in raw:
        path = _relative_to(config_dir, _str(raw[key], source, key))
        if not path.exists():
            raise ConfigError(source, key, f"{path} does not exist")
        return path
    beside = config_dir / default
    return beside if beside.exists() else PACKAGED_CONFIG_DIR / default


def _relative_to(base: Path, value: str | Path) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else base / path


def _str(value: object, source: str, name: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(source, name, f"expected a string, got {value!r}")
    return value


def _build_section(
    cls: type,
    table: object,
    section: str,
    source: str,
    env: Mapping[str, str],
    origins: dict[str, str],
) -> Any:
    """One [section]; `origins` learns which fields came from the environment."""
    if not isinstance(table, dict):
        raise ConfigError(source, section, "expected a table")
    known = {f.name: f for f in fields(cls)}
    unknown = set(table) - set(known)
    if unknown:
        raise ConfigError(source, f"{section}.{sorted(unknown)[0]}", "unknown setting")
    values: dict[str, Any] = {}
    defaults = cls()
    for name in known:
        env_key = f"{ENV_PREFIX}{section.upper()}_{name.upper()}"
        default = getattr(defaults, name)
        if env_key in env:
            where = f"environment variable {env_key}"
            origins[f"{section}.{name}"] = where
            values[name] = _coerce_text(env[env_key], type(default), where, f"{section}.{name}")
            check_bounds(cls, name, values[name], where, f"{section}.{name}")
        elif name in table:
            where = f"{section}.{name}"
            values[name] = _coerce_value(table[name], type(default), source, where)
            check_bounds(cls, name, values[name], source, where)
    return cls(**values)


def _coerce_text(text: str, kind: type, source: str, name: str) -> Any:
    try:
        if kind is bool:
            lowered = text.strip().lower()
            if lowered in {"1", "true", "yes", "on"}:
                return True
            if lowered in {"0", "false", "no", "off"}:
                return False
            raise ValueError(text)
        return kind(text)
    except ValueError:
        raise ConfigError(source, name, f"expected {kind.__name__}, got {text!r}") from None


def _coerce_value(value: object, kind: type, source: str, name: str) -> Any:
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind is int and isinstance(value, bool):
        raise ConfigError(source, name, f"expected int, got {value!r}")
    if not isinstance(value, kind):
        raise ConfigError(source, name, f"expected {kind.__name__}, got {value!r}")
    return value


def _build_recipients(items: object, source: str) -> tuple[Recipient, ...]:
    return tuple(
        _build_list_item(Recipient, item, f"recipients[{i}]", source, required="address")
        for i, item in enumerate(_list_of_tables(items, "recipients", source))
    )


def _build_sources(items: object, source: str) -> tuple[SourceConfig, ...]:
    return tuple(
        _build_source(item, f"sources[{i}]", source)
        for i, item in enumerate(_list_of_tables(items, "sources", source))
    )


def _build_source(item: dict[str, Any], where: str, source: str) -> SourceConfig:
    """One [[sources]] block; the older `full_text = true|false` means "fetch"|"feed"."""
    item = dict(item)
    if "full_text" in item:
        legacy = item.pop("full_text")
        if not isinstance(legacy, bool):
            raise ConfigError(source, f"{where}.full_text", f"expected bool, got {legacy!r}")
        item.setdefault("article_text", "fetch" if legacy else "feed")
    config: SourceConfig = _build_list_item(SourceConfig, item, where, source, required="url")
    if config.article_text not in ("", *ARTICLE_TEXT_MODES):
        raise ConfigError(source, f"{where}.article_text", "must be feed or fetch")
    problem = language_code_problem(config.language) if config.language else None
    if problem:
        raise ConfigError(source, f"{where}.language", problem)
    if not config.name.isprintable():
        raise ConfigError(source, f"{where}.name", "a line break or control character")
    return config


def _list_of_tables(items: object, name: str, source: str) -> list[dict[str, Any]]:
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise ConfigError(source, name, "expected an array of tables ([[" + name + "]])")
    return items


def _build_list_item(
    cls: type, item: dict[str, Any], where: str, source: str, required: str
) -> Any:
    if required not in item:
        raise ConfigError(source, f"{where}.{required}", "missing required setting")
    known = {f.name: f for f in fields(cls)}
    values: dict[str, Any] = {}
    for key, value in item.items():
        if key not in known:
            raise ConfigError(source, f"{where}.{key}", "unknown setting")
        default = known[key].default
        if isinstance(default, tuple):
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ConfigError(source, f"{where}.{key}", "expected a list of strings")
            values[key] = tuple(value)
        elif known[key].type == "str" or isinstance(default, str) or key == required:
            values[key] = _str(value, source, f"{where}.{key}")
        else:
            values[key] = _coerce_value(value, type(default), source, f"{where}.{key}")
            check_bounds(cls, key, values[key], source, f"{where}.{key}")
    return cls(**values)


def _validate(settings: Settings, origin: Callable[[str], str]) -> None:
    """Cross-field checks; `origin(field)` is the file or the variable a value came from.
    Ranges of single fields were checked as they were read (check_bounds)."""
    poll, smtp, digest = settings.poll, settings.smtp, settings.digest
    for name in ("google_news_url", "bing_url"):
        if not getattr(settings.news_search, name).startswith(("http://", "https://")):
            raise ConfigError(
                origin(f"news_search.{name}"),
                f"news_search.{name}",
                "must start with http:// or https://",
            )
    if poll.min_interval_minutes > poll.max_interval_minutes:
        raise ConfigError(
            origin("poll.min_interval_minutes"),
            "poll.min_interval_minutes",
            "greater than max_interval_minutes",
        )
    if smtp.security not in {"starttls", "tls", "none"}:
        raise ConfigError(
            origin("smtp.security"), "smtp.security", "must be one of starttls, tls, none"
        )
    problem = _smtp_host_problem(smtp.host) if smtp.host else None
    if problem:  # it was found out at each send, as a DNS error, pushing the back-off
        raise ConfigError(origin("smtp.host"), "smtp.host", problem)
    if smtp.ca_file and not Path(smtp.ca_file).is_file():
        raise ConfigError(origin("smtp.ca_file"), "smtp.ca_file", f"no such file: {smtp.ca_file}")
    _check_schedule(
        origin("digest.schedule"),
        "digest",
        digest.schedule,
        digest.timezone,
        origin("digest.timezone"),
    )
    _check_mail_fields(settings, origin)
    _check_textfile(settings.metrics_textfile, origin("metrics.textfile"))
    if settings.classify.cache_dir:
        for candidate in (settings.cache_dir, *settings.cache_dir.parents):
            if candidate.exists() and not candidate.is_dir():
                raise ConfigError(
                    origin("classify.cache_dir"),
                    "classify.cache_dir",
                    f"{candidate} is a file, not a folder",
                )
    if 0 < settings.retention.days < digest.lookback_days:
        # prune would refuse it (see manage.prune): a pruned article still in its feed
        # would be stored again as new and mailed a second time.
        raise ConfigError(
            origin("retention.days"),
            "retention.days",
            f"{settings.retention.days} is shorter than digest.lookback_days "
            f"({digest.lookback_days})",
        )
    for i, recipient in enumerate(settings.recipients):
        where = f"recipients[{i}]"
        if recipient.when_empty not in {"skip", "send"}:
            raise ConfigError(
                str(settings.config_path), f"{where}.when_empty", "must be skip or send"
            )
        _check_schedule(
            str(settings.config_path),
            where,
            recipient.schedule or digest.schedule,
            recipient.timezone or digest.timezone,
        )
    _check_recipient_topics(settings)
    _validate_web(settings.web, origin)
    _check_tick_cron(origin("workers.tick_cron"), settings.workers.tick_cron)
    for i, feed in enumerate(settings.sources):
        _check_source_url(str(settings.config_path), f"sources[{i}].url", feed.url)


# Characters that end a mail header line (and NUL): never inside a header value.
_LINE_BREAKS = "\r\n\0"


def mailbox(value: str) -> str:
    """The one address of a header value ("Name <a@example.org>" -> a@example.org), or ""
    when it holds none, several, or a line break (a header of its own: Bcc injection)."""
    from email.utils import getaddresses

    if any(ch in value for ch in _LINE_BREAKS):
        return ""
    found = getaddresses([value])
    if len(found) != 1:
        return ""
    address = found[0][1]
    local, at, domain = address.rpartition("@")
    plausible = bool(local) and ("." in domain.strip(".") or domain == "localhost")
    return address if at and plausible else ""


def _check_mail_fields(settings: Settings, origin: Callable[[str], str]) -> None:
    """Addresses and the subject go into mail headers: one address each, no line breaks."""
    if not mailbox(settings.smtp.sender):
        raise ConfigError(
            origin("smtp.sender"),
            "smtp.sender",
            f"not one email address: {settings.smtp.sender!r} (e.g. chipwatch <watch@example.org>)",
        )
    if any(ch in settings.digest.subject_prefix for ch in _LINE_BREAKS):
        raise ConfigError(origin("digest.subject_prefix"), "digest.subject_prefix", "a line break")
    seen: dict[str, int] = {}  # mailbox -> the first recipient with it
    for i, recipient in enumerate(settings.recipients):
        where = f"recipients[{i}].address"
        key = mailbox(recipient.address).casefold()
        if not key:
            raise ConfigError(
                str(settings.config_path), where, f"not one email address: {recipient.address!r}"
            )
        if key in seen:
            raise ConfigError(
                str(settings.config_path),
                where,
                f"the same mailbox as recipients[{seen[key]}] (addresses ignore case): "
                "it would get every digest twice",
            )
        seen[key] = i


def _check_source_url(source: str, where: str, url: str) -> None:
    from chipwatch.errors import FetchError
    from chipwatch.urls import check_url

    try:
        check_url(url)
    except FetchError as exc:
        raise ConfigError(source, where, str(exc)) from None


def _check_tick_cron(source: str, cron: str) -> None:
    """Five cron fields, or six (the last one seconds), as Procrastinate's croniter reads;
    "" runs no schedule in this worker (other workers may)."""
    fields_ = cron.split()
    if not fields_:
        return
    if len(fields_) not in (5, 6) or not all(set(f) <= set("0123456789*/,-") for f in fields_):
        raise ConfigError(
            source, "workers.tick_cron", f"not a cron expression of 5 or 6 numeric fields: {cron!r}"
        )


def _host_problem(host: str) -> str | None:
    """Why `host` cannot be listened on by name or address, or None."""
    import ipaddress

    try:
        ipaddress.ip_address(host.strip("[]"))
        return None
    except ValueError:
        pass
    labels = host.rstrip(".").split(".")
    if all(label.isdigit() for label in labels):
        return f"{host!r} is not an IP address"  # 999.1.1.1
    if not all(_DNS_LABEL.fullmatch(label) for label in labels) or len(host) > 253:
        return f"{host!r} is not a host name or an IP address"
    return None


_DNS_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")


def _smtp_host_problem(host: str) -> str | None:
    """A name or an address for smtplib: no port (that is smtp.port), no URL, no spaces,
    an IPv6 address without brackets (smtplib reads them as part of a name)."""
    if host.startswith("[") or host.endswith("]"):
        return f"{host[:80]!r}: write an IPv6 address without brackets"
    if ":" in host and "://" not in host and host.count(":") == 1:
        return f"{host[:80]!r}: give the port as smtp.port, the host alone here"
    problem = _host_problem(host)
    return problem and f"{problem} (a name such as smtp.example.org, or an IP address)"


def _proxy_address(text: str) -> bool:
    """What uvicorn reads in forwarded_allow_ips: an address, a network, or "*" (a typo
    there trusted no proxy, without a word)."""
    import ipaddress

    if text == "*":
        return True
    try:
        ipaddress.ip_network(text, strict=False)
    except ValueError:
        return False
    return True


def _validate_web(web: WebSettings, origin: Callable[[str], str]) -> None:
    problem = _host_problem(web.host)
    if problem:
        raise ConfigError(origin("web.host"), "web.host", problem)
    for proxy in web.forwarded_allow_ips.split(","):
        if not _proxy_address(proxy.strip()):
            raise ConfigError(
                origin("web.forwarded_allow_ips"),
                "web.forwarded_allow_ips",
                f"{proxy.strip()[:80]!r} is not an IP address, a network (10.0.0.0/8) or *",
            )
    if not web.public_url.startswith(("http://", "https://")):
        raise ConfigError(
            origin("web.public_url"), "web.public_url", "must start with http:// or https://"
        )
    try:
        parts = urlsplit(web.public_url)
        parts.port  # noqa: B018 - raises on a port out of range
    except ValueError as exc:
        raise ConfigError(origin("web.public_url"), "web.public_url", str(exc)) from None
    if not parts.hostname:
        raise ConfigError(origin("web.public_url"), "web.public_url", "no host name")


def _check_recipient_topics(settings: Settings) -> None:
    """A recipient's topic ids must be topics: a typo would mean digests without them."""
    wanted = [(i, r.topics) for i, r in enumerate(settings.recipients) if r.topics]
    if not wanted:
        return
    from chipwatch.classify.topics import load_topics  # classify imports settings

    known = {t.id for t in load_topics(settings.topics_path, settings.user_topics_path)}
    for i, topics in wanted:
        unknown = [t for t in topics if t not in known]
        if unknown:
            raise ConfigError(
                str(settings.config_path),
                f"recipients[{i}].topics",
                f"unknown topic ids: {', '.join(unknown)}; known: {', '.join(sorted(known))}",
            )


def _check_textfile(path: Path | None, source: str) -> None:
    """[metrics] textfile at start-up, not after a poll's work: a file (replaced by rename,
    so a device or a pipe there would be destroyed) in a folder that exists."""
    if path is None:
        return
    if path.is_dir():
        raise ConfigError(source, "metrics.textfile", f"{path} is a folder; name a file in it")
    if path.exists() and not path.is_file():
        raise ConfigError(
            source, "metrics.textfile", f"{path} is not a regular file (it is replaced by rename)"
        )
    if not path.parent.is_dir():
        raise ConfigError(source, "metrics.textfile", f"no such folder: {path.parent}")


def _check_schedule(
    source: str, where: str, cron: str, timezone: str, timezone_source: str = ""
) -> None:
    """The cron expression (named after `source`) and the zone (after `timezone_source`,
    which may be another file or variable: each error names its true source)."""
    timezone_source = timezone_source or source
    from chipwatch.schedule import cron_trigger  # schedule imports Settings from here

    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        # OSError: "Europe" names a folder of the zone database, a very long name no file.
        raise ConfigError(
            timezone_source, f"{where}.timezone", f"unknown timezone {timezone[:80]!r}"
        ) from None
    try:
        trigger = cron_trigger(cron, zone)
    except (ValueError, IndexError) as exc:
        raise ConfigError(source, f"{where}.schedule", f"invalid cron expression: {exc}") from None
    from datetime import datetime

    if trigger.get_next_fire_time(None, datetime.now(zone)) is None:
        # "0 0 30 2 *" (30 February) is valid cron: no digest would ever go out.
        raise ConfigError(source, f"{where}.schedule", f"{cron!r} never fires")
