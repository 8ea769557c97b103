"""Open the database file and bring its schema to the newest migration."""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.orm import Session, sessionmaker

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def _alembic_config(url: str) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", url)
    return config


def _enable_sqlite_pragmas(dbapi_connection: object, _record: object) -> None:
    cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
    # WAL lets the digest read while a poll writes; busy_timeout waits out short locks.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def open_engine(database_path: Path) -> Engine:
    """Create the engine, run pending migrations, and return it."""
    database_path.parent.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{database_path}"
    engine = create_engine(url)
    event.listen(engine, "connect", _enable_sqlite_pragmas)
    upgrade(engine, url)
    return engine


def upgrade(engine: Engine, url: str) -> None:
    """Migrate to the newest revision. Alembic (0.5 s to import) is loaded only when a
    migration is due: a database at head is recognised from the files' revision ids."""
    if _stored_revision(engine) == head_revision():
        return
    from alembic import command

    config = _alembic_config(url)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


_REVISION = re.compile(r'^(down_revision|revision) = (?:"([^"]*)"|None)$', re.MULTILINE)


@functools.cache
def head_revision() -> str:
    """The revision no other migration revises (the files declare `revision = "..."`
    and `down_revision = "..."` at the top, as Alembic writes them)."""
    revisions: set[str] = set()
    revised: set[str] = set()
    for path in (MIGRATIONS_DIR / "versions").glob("*.py"):
        for name, value in _REVISION.findall(path.read_text(encoding="utf-8")):
            (revisions if name == "revision" else revised).add(value)
    heads = revisions - revised
    if len(heads) != 1:  # a branch: let Alembic decide (and say what is wrong)
        return ""
    return heads.pop()


def _stored_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        if not inspect(connection).has_table("alembic_version"):
            return None
        return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)
