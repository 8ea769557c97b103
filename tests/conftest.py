"""Shared test set-up."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from backends import BACKENDS, create_database, drop_database, new_name, server_problem

# Every test that runs chipwatch in a fresh data directory would otherwise refit the
# classifier; one cache for the session keeps that to a single fit (the cache is keyed by
# the corpus, topics and labels, so sharing it cannot mix up different inputs).
_CACHE = str(Path(tempfile.gettempdir()) / f"chipwatch-test-cache-{os.getuid()}")
os.environ.setdefault("CHIPWATCH_CLASSIFY_CACHE_DIR", _CACHE)
# The language model's cache (keyed by py3langid's version and the language list): the
# same directory, so test runs neither write to ~/.cache nor reload the model each time.
os.environ.setdefault("CHIPWATCH_CACHE_DIR", _CACHE)


# --- database backends -------------------------------------------------------------------
# A test that touches the store requests `database_url` (directly, through a fixture, or
# with `pytestmark = pytest.mark.usefixtures("database_url")`): it then runs once on a
# SQLite file and once on a fresh PostgreSQL database. The URL is also put in
# CHIPWATCH_DATABASE_URL, for the CLI run in a subprocess and for `make_settings`.


@pytest.fixture(scope="session")
def postgres_template() -> Iterator[str]:
    """A database at the newest revision, copied for each test (faster than migrating)."""
    problem = server_problem()
    if problem is not None:
        pytest.skip(problem)
    from chipwatch.store.db import open_database

    name = new_name("template")
    database = open_database(create_database(name))
    database.dispose()
    yield name
    drop_database(name)


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """ "" on SQLite (the default file in the data folder), else a fresh PostgreSQL URL."""
    if request.param == "sqlite":
        monkeypatch.delenv("CHIPWATCH_DATABASE_URL", raising=False)
        yield ""
        return
    template = request.getfixturevalue("postgres_template")
    name = new_name("db")
    url = create_database(name, template=template)
    monkeypatch.setenv("CHIPWATCH_DATABASE_URL", url)
    yield url
    drop_database(name)
