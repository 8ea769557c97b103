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
from sqlalchemy import Connection, Engine, MetaData, inspect, make_url
from sqlalchemy import create_engine as sqlalchemy_engine
from sqlalchemy.orm import Session, sessionmaker

from chipwatch.errors import StorageError
from chipwatch.store import dialect, faults, queue_schema
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


def open_database(url: str, *, pre_ping: bool = True) -> Database:
    """Connect, create or upgrade the schema, and return the database. `pre_ping=False`
    for a worker: see `dialect.engine_options`."""
    engine = create_engine(url, pre_ping=pre_ping)
    try:
        upgrade(engine)  # an unreachable server or a damaged file: StorageError (faults)
        queue_schema.ensure_queue_schema(engine)  # PostgreSQL: the workers' task queue
    except StorageError:
        engine.dispose()
        raise
    return Database(engine, sessionmaker(engine, expire_on_commit=False))


def create_engine(url: str, *, pre_ping: bool = True) -> Engine:
    """The engine for a `database_url`, with the backend's connection set-up; no schema."""
    normalised = normalise_url(url)
    parsed = make_url(normalised)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        _make_folder(Path(parsed.database).parent)
    engine = sqlalchemy_engine(normalised, **dialect.engine_options(parsed, pre_ping=pre_ping))
    dialect.configure(engine)
    faults.install(engine)  # storage failures of any statement become StorageError
    return engine


def _make_folder(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise faults.from_os_error(folder, exc) from exc


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
        return _revision_of(connection, engine)


def _revision_of(connection: Connection, engine: Engine) -> str | None:
    """The schema revision; a version table with several rows is a damaged database (no
    chipwatch writes two), not a bug: alembic's CommandError was an exit 1."""
    from alembic.util import CommandError

    try:
        return MigrationContext.configure(connection).get_current_revision()
    except CommandError as exc:
        raise StorageError(
            faults.target_of(engine), f"alembic_version: {exc}".split(";")[0], faults.DAMAGED
        ) from None


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Run the missing migrations up to `revision`, in one transaction (all or nothing).

    A database already there is only read (no write lock, so a read-only file can still
    be read by the commands that only read). Several processes may start at once (cron
    and the scheduler): the first takes the write lock (SQLite: BEGIN IMMEDIATE;
    PostgreSQL: an advisory lock) and the others wait for it, then find nothing to do."""
    config = _alembic_config(engine)
    target = (
        ScriptDirectory.from_config(config).get_current_head() if revision == "head" else revision
    )
    current = current_revision(engine)
    refuse_unknown_revision(engine, current)
    if current == target:
        return
    with engine.begin() as connection:
        begin_schema_change(connection)
        dialect.lock_for_migration(connection)
        current = _revision_of(connection, engine)
        if current == target:
            return
        config.attributes["connection"] = connection
        if current is None:
            repair_half_made(connection, config, faults.target_of(engine))
        command.upgrade(config, revision)


# --- storage safety: atomic creation, half-made folders, newer revisions (issue 9) -------


def begin_schema_change(connection: Connection) -> None:
    """SQLite: open the transaction ourselves. Python's sqlite3 begins one only before
    INSERT/UPDATE/DELETE, so without this each CREATE TABLE commits on its own and a
    crash or a full disk halfway leaves tables without a schema revision. IMMEDIATE
    takes the write lock at once: a second first run waits, then finds the schema."""
    if dialect.backend_of(connection) is Backend.SQLITE:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def refuse_unknown_revision(engine: Engine, current: str | None) -> None:
    """A revision this code does not know was written by a newer chipwatch: refuse, never
    downgrade or touch it."""
    if current is None:
        return
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    known = {script.revision for script in ScriptDirectory.from_config(config).walk_revisions()}
    if current not in known:
        raise StorageError(
            faults.target_of(engine),
            f"schema revision {current} is newer than this chipwatch knows "
            f"(up to {head_revision()}), or the database is not chipwatch's",
            faults.NEWER,
        )


def repair_half_made(connection: Connection, config: Config, target: str) -> None:
    """Tables without a schema revision, left by an older chipwatch whose first run
    failed halfway ("table digests already exists" ever after). Empty tables that are
    chipwatch's own are dropped, so the upgrade then creates the schema whole; a full set
    of chipwatch tables of a known revision is stamped with it. Anything else is refused."""
    tables = set(inspect(connection).get_table_names()) - {"alembic_version"}
    if not tables:
        return
    match = _matching_revision(connection, tables)
    if match is None:
        raise StorageError(
            target,
            "tables without a schema revision that are not chipwatch's: "
            + ", ".join(sorted(tables)),
            "point data_dir or database_url at chipwatch's own database",
        )
    revision, complete = match
    if complete:
        command.stamp(config, revision)
        return
    if any(connection.exec_driver_sql(f'SELECT 1 FROM "{t}" LIMIT 1').first() for t in tables):
        raise StorageError(
            target,
            "some of chipwatch's tables are missing and others hold rows, without a schema "
            "revision",
            "restore a backup, or move the file aside to start a new one",
        )
    metadata = MetaData()
    metadata.reflect(connection, only=sorted(tables))
    for table in reversed(metadata.sorted_tables):  # dependants first (foreign keys)
        table.drop(connection)


def schema_problem(engine: Engine, revision: str | None) -> str:
    """What `db check` says of the tables (SQLite; the reference schema is built there):
    those of the revision missing, or their columns; without a revision, tables that are
    not chipwatch's. "" when the schema is whole (integrity_check reads pages, not this)."""
    with engine.connect() as connection:
        tables = set(inspect(connection).get_table_names()) - {"alembic_version"}
        if revision is None:
            if not tables or _matching_revision(connection, tables) is not None:
                return ""  # none yet, or chipwatch's own: the next command completes them
            return "tables that are not chipwatch's: " + ", ".join(sorted(tables)[:10])
        reference = _reference_schema(revision)
        found = inspect(connection)
        missing = sorted(reference.keys() - tables)
        columns = sorted(
            f"{table}.{column}"
            for table in reference.keys() & tables
            for column in reference[table] - {c["name"] for c in found.get_columns(table)}
        )
    parts = ([f"missing tables: {', '.join(missing)}"] if missing else []) + (
        [f"missing columns: {', '.join(columns)}"] if columns else []
    )
    return "schema damaged: " + "; ".join(parts) if parts else ""


def _matching_revision(connection: Connection, tables: set[str]) -> tuple[str, bool] | None:
    """The revision whose tables have exactly these columns, and whether all are there."""
    found = inspect(connection)
    columns = {t: {c["name"] for c in found.get_columns(t)} for t in tables}
    for revision in _revisions_oldest_first():
        reference = _reference_schema(revision)
        if tables <= reference.keys() and all(columns[t] == reference[t] for t in tables):
            return revision, tables == reference.keys()
    return None


def _revisions_oldest_first() -> list[str]:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return [
        s.revision for s in reversed(list(ScriptDirectory.from_config(config).walk_revisions()))
    ]


def _reference_schema(revision: str) -> dict[str, set[str]]:
    """Tables and columns of `revision`, built by the migrations in a scratch in-memory
    database (the migrations are the one statement of the schema)."""
    scratch = sqlalchemy_engine("sqlite://")
    try:
        upgrade(scratch, revision)
        found = inspect(scratch)
        return {
            t: {c["name"] for c in found.get_columns(t)}
            for t in found.get_table_names()
            if t != "alembic_version"
        }
    finally:
        scratch.dispose()


# --- the former entry points, kept for callers that hold a path --------------------------


def open_engine(database: Path | str) -> Engine:
    """Open (and upgrade) a SQLite file by path, or any database by URL."""
    url = sqlite_url(database) if isinstance(database, Path) else database
    return open_database(url).engine


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)
