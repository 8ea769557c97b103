"""Load and validate configuration into one frozen Settings object.

Sources, lowest precedence first: built-in defaults, `config/chipwatch.toml` (or `--config`),
`CHIPWATCH_<SECTION>_<KEY>` environment variables, command-line flags (`--data-dir`).
Every error names the file (or variable) and the field, and the CLI exits with code 2.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from chipwatch.errors import ConfigError
from chipwatch.store.url import SQLITE_FILENAME, DatabaseUrlError, normalise_url, sqlite_url

ENV_PREFIX = "CHIPWATCH_"
DEFAULT_CONFIG_DIR = Path("config")
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
    lookback_days: int = bounded(7, 1, 3650)  # only articles stored in this window are candidates
    subject_prefix: str = "chipwatch"  # start of the subject line


@dataclass(frozen=True)
class SourceConfig:
    url: str
    name: str = ""
    language: str = ""  # expected language; empty = detect per article
    full_text: bool = False  # fetch and extract each entry's page (summary-only feeds)


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
    recipients: tuple[Recipient, ...] = ()
    sources: tuple[SourceConfig, ...] = ()
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
    def cache_dir(self) -> Path:
        return Path(self.classify.cache_dir) if self.classify.cache_dir else self.data_dir / "cache"

    @property
    def smtp_password(self) -> str:
        return os.environ.get(self.smtp.password_env, "")


_SECTIONS: dict[str, type] = {
    "fetch": FetchSettings,
    "poll": PollSettings,
    "classify": ClassifySettings,
    "smtp": SmtpSettings,
    "digest": DigestSettings,
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
    """Read the config file, apply the environment, validate everything."""
    env = os.environ if environ is None else environ
    if config_path is None:
        config_path = Path(env.get(ENV_PREFIX + "CONFIG", DEFAULT_CONFIG_DIR / "chipwatch.toml"))
    raw = _read_toml(config_path)
    source = str(config_path)
    unknown = set(raw) - _TOP_LEVEL_KEYS
    if unknown:
        raise ConfigError(source, sorted(unknown)[0], "unknown setting")

    config_dir = config_path.parent
    sections = {
        name: _build_section(cls, raw.get(name, {}), name, source, env)
        for name, cls in _SECTIONS.items()
    }
    data_dir_value = _env_or(env, "DATA_DIR", raw.get("data_dir", "data"), source, "data_dir")
    resolved_data_dir = data_dir or _relative_to(config_dir.parent, data_dir_value)
    settings = Settings(
        config_path=config_path,
        config_dir=config_dir,
        data_dir=resolved_data_dir,
        topics_path=_relative_to(
            config_dir, _str(raw.get("topics", "topics.toml"), source, "topics")
        ),
        corpus_dir=_relative_to(
            config_dir, _str(raw.get("corpus_dir", "corpus"), source, "corpus_dir")
        ),
        recipients=_build_recipients(raw.get("recipients", []), source),
        sources=_build_sources(raw.get("sources", []), source),
        database_url=_database_url(env, raw, source),
        **sections,
    )
    _validate(settings, source)
    return settings


def _database_url(env: Mapping[str, str], raw: Mapping[str, Any], source: str) -> str:
    """The `database_url` setting (CHIPWATCH_DATABASE_URL first), normalised; "" if unset."""
    key = ENV_PREFIX + "DATABASE_URL"
    where, value = (key, env[key]) if key in env else (source, raw.get("database_url", ""))
    value = _str(value, where, "database_url")
    if not value.strip():
        return ""
    try:
        return normalise_url(value)
    except DatabaseUrlError as exc:
        raise ConfigError(where, "database_url", str(exc)) from None


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
        raise ConfigError(str(path), "-", "file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), "-", f"invalid TOML: {exc}") from None


def _relative_to(base: Path, value: str | Path) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else base / path


def _str(value: object, source: str, name: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(source, name, f"expected a string, got {value!r}")
    return value


def _env_or(env: Mapping[str, str], key: str, default: Any, source: str, name: str) -> Any:
    value = env.get(ENV_PREFIX + key)
    return value if value is not None else _str(default, source, name)


def _build_section(
    cls: type, table: object, section: str, source: str, env: Mapping[str, str]
) -> Any:
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
            values[name] = _coerce_text(env[env_key], type(default), env_key, name)
            check_bounds(cls, name, values[name], env_key, name)
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
        _build_list_item(SourceConfig, item, f"sources[{i}]", source, required="url")
        for i, item in enumerate(_list_of_tables(items, "sources", source))
    )


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


def _validate(settings: Settings, source: str) -> None:
    poll, smtp, digest = settings.poll, settings.smtp, settings.digest
    # Ranges of single fields were checked as they were read (check_bounds).
    if poll.min_interval_minutes > poll.max_interval_minutes:
        raise ConfigError(source, "poll.min_interval_minutes", "greater than max_interval_minutes")
    if smtp.security not in {"starttls", "tls", "none"}:
        raise ConfigError(source, "smtp.security", "must be one of starttls, tls, none")
    if smtp.ca_file and not Path(smtp.ca_file).is_file():
        raise ConfigError(source, "smtp.ca_file", f"no such file: {smtp.ca_file}")
    _check_schedule(source, "digest", digest.schedule, digest.timezone)
    for i, recipient in enumerate(settings.recipients):
        where = f"recipients[{i}]"
        if "@" not in recipient.address:
            raise ConfigError(source, f"{where}.address", "not an email address")
        if recipient.when_empty not in {"skip", "send"}:
            raise ConfigError(source, f"{where}.when_empty", "must be skip or send")
        _check_schedule(
            source,
            where,
            recipient.schedule or digest.schedule,
            recipient.timezone or digest.timezone,
        )
    for i, feed in enumerate(settings.sources):
        _check_source_url(source, f"sources[{i}].url", feed.url)


def _check_source_url(source: str, where: str, url: str) -> None:
    from chipwatch.errors import FetchError
    from chipwatch.urls import check_url

    try:
        check_url(url)
    except FetchError as exc:
        raise ConfigError(source, where, str(exc)) from None


def _check_schedule(source: str, where: str, cron: str, timezone: str) -> None:
    from chipwatch.schedule import cron_trigger  # schedule imports Settings from here

    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(source, f"{where}.timezone", f"unknown timezone {timezone!r}") from None
    try:
        cron_trigger(cron, zone)
    except (ValueError, IndexError) as exc:
        raise ConfigError(source, f"{where}.schedule", f"invalid cron expression: {exc}") from None
