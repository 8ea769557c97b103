"""Where the database is opened: the URL, the engine, and the schema brought to head.

Every command goes through `open_database(url)`, on SQLite or PostgreSQL alike:
1. `normalise_url` turns the `database_url` setting into a SQLAlchemy URL (plain
   `postgresql://` gets the psycopg 3 driver; empty means the SQLite file in the data
   folder, `sqlite_url(path)`);
2. `create_engine` applies the backend's connection set-up (`store.dialect`);
3. `upgrade` runs the Alembic revisions still missing, the same ones on both backends.
Anything that must happen once per database (an integrity check, a backup before an
upgrade) belongs next to `upgrade` here, so no caller opens an engine another way.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, make_url
from sqlalchemy import create_engine as sqlalchemy_engine
from sqlalchemy.orm import Session, sessionmaker

from chipwatch.store import dialect
from chipwatch.store.dialect import Backend
from chipwatch.store.url import normalise_url, sqlite_url

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


@dataclass(frozen=True)
class Database:
    """An open, upgraded database: the engine and the sessions the repositories use."""

    engine: Engine
    sessions: sessionmaker[Session]

    @property
    def backend(self) -> Backend:
        return dialect.backend_of(self.engine)

    @property
    def sqlite_file(self) -> str | None:
        """The SQLite file the parse workers may read directly (None on PostgreSQL)."""
        return dialect.sqlite_file(self.engine)

    def read(self) -> Session:
        """A session for reading (`with db.read() as session:`)."""
        return self.sessions()

    def write(self) -> AbstractContextManager[Session]:
        """A session in a transaction committed on success (`with db.write() as session:`)."""
        return self.sessions.begin()

    def dispose(self) -> None:
        self.engine.dispose()


def open_database(url: str) -> Database:
    """Connect, create or upgrade the schema, and return the database."""
    engine = create_engine(url)
    upgrade(engine)
    return Database(engine, sessionmaker(engine, expire_on_commit=False))


def create_engine(url: str) -> Engine:
    """The engine for a `database_url`, with the backend's connection set-up; no schema."""
    normalised = normalise_url(url)
    parsed = make_url(normalised)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = sqlalchemy_engine(normalised, **dialect.engine_options(parsed.get_backend_name()))
    dialect.configure(engine)
    return engine


def _alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # Only for `alembic` run by hand; chipwatch hands over its own connection.
    config.set_main_option(
        "sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%")
    )
    return config


def head_revision() -> str | None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return ScriptDirectory.from_config(config).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Run the missing migrations up to `revision`, in one transaction.

    Several processes may start at once (cron and the scheduler): on PostgreSQL the
    first takes an advisory lock and the others wait for it, then find nothing to do."""
    config = _alembic_config(engine)
    target = (
        ScriptDirectory.from_config(config).get_current_head() if revision == "head" else revision
    )
    with engine.begin() as connection:
        dialect.lock_for_migration(connection)
        if MigrationContext.configure(connection).get_current_revision() == target:
            return
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


# --- the former entry points, kept for callers that hold a path --------------------------


def open_engine(database: Path | str) -> Engine:
    """Open (and upgrade) a SQLite file by path, or any database by URL."""
    url = sqlite_url(database) if isinstance(database, Path) else database
    return open_database(url).engine


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)
