"""Storage faults with real files: each gives one line naming the file, a hint, exit 5.

Every case runs the real `chipwatch` command in a subprocess against a real SQLite file
that was damaged the way it happens in the field: random bytes, a file cut in half, a
file or folder the user cannot write (the command run as `nobody` with setpriv: the
tests run as root, for whom permission bits do not count), another process holding an
exclusive lock, a full disk (a file-size limit on the command's process), a kill -9 in
the middle of the first run's schema creation, tables left without a schema revision by
an older version, a revision newer than the code, a WAL file left by a crash; and a
database_url whose port holds a server that accepts and never answers (connect timeout).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import resource
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from backends import configured_url
from sqlalchemy import event, make_url, text

from chipwatch.errors import ExitCode
from chipwatch.store import dialect, faults
from chipwatch.store.db import create_engine, head_revision, upgrade

REPO = Path(__file__).resolve().parents[1]
DB_NAME = "chipwatch.sqlite3"

# Commands that open the database; each must give the one-line answer on a bad one.
COMMANDS: tuple[tuple[str, ...], ...] = (
    ("outbox",),
    ("feeds", "list"),
    ("feeds", "status"),
    ("feeds", "export"),
    ("feeds", "remove", "1"),
    ("label", "1", "--not-relevant"),
    ("classify",),
    ("poll", "--no-classify"),
    ("digest", "--no-send"),
    ("db", "check"),
)
# A reader, a writer under its job lock, and the check: for the cases beyond the first
# (each command is a subprocess of a few seconds on a loaded machine).
QUICK: tuple[tuple[str, ...], ...] = (("outbox",), ("poll", "--no-classify"), ("db", "check"))


@pytest.fixture()
def folder() -> Iterator[Path]:
    """A folder every user can enter (pytest's tmp_path is root's alone), for setpriv."""
    path = Path(tempfile.mkdtemp(prefix="chipwatch-faults-"))
    path.chmod(0o755)
    yield path
    subprocess.run(["chattr", "-R", "-i", str(path)], capture_output=True, check=False)
    shutil.rmtree(path, ignore_errors=True)


def write_config(folder: Path, data: Path | None = None, extra: str = "") -> Path:
    config = folder / "chipwatch.toml"
    config.write_text(
        f'data_dir = "{data or folder / "data"}"\n'
        f'topics = "{REPO / "config" / "topics.toml"}"\n'
        f'corpus_dir = "{REPO / "config" / "corpus"}"\n'
        "[fetch]\nallow_private_networks = true\n" + extra,
        encoding="utf-8",
    )
    config.chmod(0o644)
    return config


def chipwatch(
    config: Path,
    *args: str,
    preexec: Callable[[], None] | None = None,
    user: str | None = None,
    timeout: float = 120,
    database_url: str | None = None,
) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "chipwatch", "--config", str(config), *args]
    if user is not None:
        command = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", *command]
    env = {k: v for k, v in os.environ.items() if k != "CHIPWATCH_DATABASE_URL"}
    if database_url is not None:
        env["CHIPWATCH_DATABASE_URL"] = database_url
    env["CHIPWATCH_CACHE_DIR"] = env.get(
        "CHIPWATCH_CACHE_DIR", str(Path.home() / ".cache/chipwatch")
    )
    return subprocess.run(
        command,
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
        preexec_fn=preexec,  # noqa: PLW1509 - only resource limits, set before exec
        env=env,
    )


def assert_storage_line(result: subprocess.CompletedProcess[str], names: Path) -> str:
    """Exit 5, one line on stderr naming the file, with a hint after the problem."""
    assert result.returncode == ExitCode.STORAGE, (result.returncode, result.stderr[-2000:])
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert lines[0].startswith("storage error: ") and str(names) in lines[0]
    assert lines[0].count(";") >= 1  # "<file>: <problem>; <hint>"
    return lines[0]


def digest_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def make_database(data: Path, rows: int = 0) -> Path:
    """A real database at head, with `rows` sources and digests (several hundred pages)."""
    data.mkdir(parents=True, exist_ok=True)
    path = data / DB_NAME
    engine = create_engine(f"sqlite:///{path}")
    upgrade(engine)
    with engine.begin() as connection:
        for i in range(rows):
            connection.execute(
                text(
                    "INSERT INTO sources (url, name, language, article_text, enabled, "
                    "consecutive_errors, created_at) VALUES (:u, :n, 'en', NULL, 1, 0, "
                    "'2026-12-01 00:00:00')"
                ),
                {"u": f"https://example.org/{i}/feed.xml", "n": f"feed {i} " + "x" * 200},
            )
            connection.execute(
                text(
                    "INSERT INTO digests (recipient, kind, subject, message_id, message, "
                    "status, attempts, created_at) VALUES ('a@example.org', 'digest', 's', "
                    ":m, :b, 'sent', 1, '2026-12-01 00:00:00')"
                ),
                {"m": f"<{i}@example.org>", "b": os.urandom(3000)},
            )
    engine.dispose()
    checkpoint(path)
    return path


def checkpoint(path: Path) -> None:
    """Fold the WAL into the file, so the file alone holds the database (still in WAL
    mode, as chipwatch sets it: opening it changes no byte)."""
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    connection.close()


def tables_of(path: Path) -> set[str]:
    connection = sqlite3.connect(path)
    try:
        return {
            r[0] for r in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")
        }
    finally:
        connection.close()


# --- damaged files ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(lambda: os.urandom(64 * 1024), id="random-bytes"),
        pytest.param(lambda: b"<?xml version='1.0'?><opml/>\n" * 100, id="not-sqlite"),
        pytest.param(lambda: b"SQLite format 3\x00" + os.urandom(8192), id="bad-header"),
    ],
)
def test_damaged_file_gives_one_line_from_every_command_and_is_never_touched(
    folder: Path, content: Callable[[], bytes], request: pytest.FixtureRequest
) -> None:
    data = folder / "data"
    data.mkdir()
    database = data / DB_NAME
    database.write_bytes(content())
    before = digest_of(database)
    config = write_config(folder)
    every = "random-bytes" in request.node.name
    for args in COMMANDS if every else QUICK:
        result = chipwatch(config, *args)
        line = assert_storage_line(result, database)
        assert "untouched" in line or "not a database" in line, (args, line)
    exported = chipwatch(config, "export", "--csv")  # to standard output
    assert_storage_line(exported, database)
    assert exported.stdout == ""  # not the CSV header, then the error
    backup = chipwatch(config, "db", "backup", str(folder / "copy.sqlite3"))
    assert_storage_line(backup, database)
    assert not (folder / "copy.sqlite3").exists()
    assert digest_of(database) == before  # never overwritten, never "repaired"
    assert sorted(p.name for p in data.iterdir() if p.name.startswith(DB_NAME)) == [DB_NAME]


def test_truncated_database_is_reported_by_check_and_by_commands_reading_it(folder: Path) -> None:
    database = make_database(folder / "data", rows=300)
    size = database.stat().st_size
    assert size > 1_000_000
    with database.open("r+b") as handle:
        handle.truncate(size // 2)
    before = digest_of(database)
    config = write_config(folder)
    check = chipwatch(config, "db", "check")
    assert_storage_line(check, database) if check.returncode == ExitCode.STORAGE else None
    assert check.returncode == ExitCode.STORAGE, check.stdout + check.stderr
    # The outbox lists the newest rows, which were in the lost half.
    assert_storage_line(chipwatch(config, "outbox"), database)
    for args in QUICK:
        result = chipwatch(config, *args)
        assert "Traceback" not in result.stderr, (args, result.stderr[-1500:])
        assert result.returncode in (0, ExitCode.CONFIG, ExitCode.STORAGE), (args, result.stderr)
        if result.returncode == ExitCode.STORAGE:
            assert_storage_line(result, database)
    assert digest_of(database) == before


def test_database_path_that_is_a_folder(folder: Path) -> None:
    (folder / "data" / DB_NAME).mkdir(parents=True)
    config = write_config(folder)
    for args in (("outbox",), ("poll",), ("db", "check")):
        line = assert_storage_line(chipwatch(config, *args), folder / "data" / DB_NAME)
        assert "folder" in line
    backup = chipwatch(config, "db", "backup", str(folder / "copy.sqlite3"))
    line = assert_storage_line(backup, folder / "data" / DB_NAME)
    assert "a folder" in line and "data_dir or database_url" in line  # no setting database_path
    assert not (folder / "copy.sqlite3").exists()


def test_data_dir_that_is_a_file(folder: Path) -> None:
    # The user's setting points at a file: a configuration error (exit 2), one line naming
    # where the path came from, checked before any database is opened.
    (folder / "data").write_text("not a folder\n")
    config = write_config(folder)
    for args in (("outbox",), ("poll",)):
        result = chipwatch(config, *args)
        assert result.returncode == ExitCode.CONFIG, result.stderr
        (line,) = result.stderr.strip().splitlines()
        assert str(folder / "data") in line and "is a file, not a folder" in line


# --- read-only file and folder (as an unprivileged user) ----------------------------------


def _can_setpriv() -> str | None:
    if shutil.which("setpriv") is None:
        return "setpriv is not installed"
    probe = subprocess.run(
        ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", sys.executable, "-c",
         "import chipwatch"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if probe.returncode != 0:
        return f"cannot run chipwatch as nobody: {probe.stderr.strip()[-200:]}"
    return None


_SETPRIV_PROBLEM = "not root" if os.geteuid() != 0 else _can_setpriv()
needs_setpriv = pytest.mark.skipif(
    _SETPRIV_PROBLEM is not None,
    reason=f"read-only cases need root and setpriv ({_SETPRIV_PROBLEM})",
)
NOBODY = "65534"


@needs_setpriv
def test_read_only_database_file_as_nobody(folder: Path) -> None:
    data = folder / "data"
    database = make_database(data, rows=3)
    os.chown(data, int(NOBODY), int(NOBODY))  # the folder is nobody's; the file stays root's
    for name in ("locks", "cache"):
        (data / name).mkdir()
        os.chown(data / name, int(NOBODY), int(NOBODY))
    database.chmod(0o644)
    before = digest_of(database)
    config = write_config(folder)
    # Not `poll` here: as nobody under setpriv in this sandbox, Python's forkserver (the
    # parse pool) prints resource_tracker noise even on a good poll; the folder tests
    # below cover poll (its job lock fails first).
    for args in (("feeds", "remove", "1"), ("digest", "--no-send")):
        result = chipwatch(config, *args, user=NOBODY)
        line = assert_storage_line(result, database)
        assert "read-only" in line or "readonly" in line, line
    for args in (("outbox",), ("feeds", "list"), ("db", "check")):
        result = chipwatch(config, *args, user=NOBODY)  # only reads: works, or says why
        assert result.returncode in (0, ExitCode.STORAGE), result.stderr
        if result.returncode:
            assert_storage_line(result, database)
    assert digest_of(database) == before


@needs_setpriv
def test_read_only_data_folder_as_nobody(folder: Path) -> None:
    data = folder / "data"
    make_database(data, rows=3)  # root's folder and file: read-only for nobody
    config = write_config(folder)
    for args in QUICK:
        result = chipwatch(config, *args, user=NOBODY)
        assert "Traceback" not in result.stderr, (args, result.stderr[-1500:])
        assert result.returncode in (0, ExitCode.CONFIG, ExitCode.STORAGE), (args, result.stderr)
        if result.returncode == ExitCode.STORAGE:
            line = result.stderr.strip()
            assert "\n" not in line and str(data) in line, line
    # A job needing its lock file or a write fails with the folder named.
    assert_storage_line(chipwatch(config, "poll", user=NOBODY), data)


@needs_setpriv
def test_unwritable_data_folder_on_first_run(folder: Path) -> None:
    data = folder / "data"
    data.mkdir()  # root's, 0755: nobody cannot create the database in it
    config = write_config(folder)
    for args in (("outbox",), ("feeds", "list"), ("poll",)):
        assert_storage_line(chipwatch(config, *args, user=NOBODY), data)
    assert list(data.iterdir()) == []


def test_immutable_database_file(folder: Path) -> None:
    """root too: chattr +i makes the file unwritable for everyone (where supported)."""
    data = folder / "data"
    database = make_database(data, rows=3)
    flag = subprocess.run(["chattr", "+i", str(database)], capture_output=True, text=True)
    if flag.returncode != 0:
        pytest.skip(f"chattr +i not supported here: {flag.stderr.strip()}")
    try:
        config = write_config(folder)
        result = chipwatch(config, "feeds", "remove", "1")
        assert_storage_line(result, database)
    finally:
        subprocess.run(["chattr", "-i", str(database)], check=False)


# --- locked ---------------------------------------------------------------------------------


def test_locked_database_says_so_then_works_when_free(folder: Path) -> None:
    """Another process holds BEGIN EXCLUSIVE (in exclusive locking mode, as a tool that
    keeps the file to itself does): exit 5 naming the file (not 75: that code is for
    chipwatch's own job lock), and the command works once the lock is gone."""
    database = make_database(folder / "data", rows=1)
    config = write_config(folder)
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sqlite3, sys, time
            c = sqlite3.connect({str(database)!r}, isolation_level=None)
            c.execute("PRAGMA locking_mode=EXCLUSIVE")
            c.execute("BEGIN EXCLUSIVE")
            c.execute("UPDATE sources SET name = name")
            print("held", flush=True)
            time.sleep(60)
        """)],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        result = chipwatch(config, "feeds", "remove", "1")
        line = assert_storage_line(result, database)
        assert "lock" in line
    finally:
        holder.kill()
        holder.wait()
    assert chipwatch(config, "feeds", "remove", "1").returncode == 0  # free again


# --- full disk ------------------------------------------------------------------------------


def file_size_limit(limit: int) -> Callable[[], None]:
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of death, as ENOSPC
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def test_full_disk_on_first_run_leaves_no_half_schema(folder: Path) -> None:
    """The disk fills up during the first run's schema creation: exit 5, and the file
    holds no table at all (one transaction); the next run with space creates it whole."""
    config = write_config(folder)
    database = folder / "data" / DB_NAME
    result = chipwatch(config, "outbox", preexec=file_size_limit(24 * 1024))
    line = assert_storage_line(result, database)
    assert "full" in line
    assert tables_of(database) == set()
    clean = chipwatch(config, "outbox")
    assert clean.returncode == 0, clean.stderr
    check = chipwatch(config, "db", "check")
    assert check.returncode == 0 and f"revision {head_revision()} (current)" in check.stdout


def test_full_disk_during_a_write(folder: Path) -> None:
    database = make_database(folder / "data", rows=50)
    config = write_config(folder)
    opml = folder / "feeds.opml"
    outlines = "".join(
        f'<outline type="rss" text="f{i}" xmlUrl="https://example.org/new/{i}/feed.xml"/>'
        for i in range(3000)
    )
    opml.write_text(f'<?xml version="1.0"?><opml version="2.0"><body>{outlines}</body></opml>')
    limit = database.stat().st_size + 16 * 1024
    result = chipwatch(config, "feeds", "import", str(opml), preexec=file_size_limit(limit))
    line = assert_storage_line(result, database)
    assert "full" in line
    listing = chipwatch(config, "feeds", "list")
    assert listing.returncode == 0 and "new/1/" not in listing.stdout  # rolled back whole
    assert chipwatch(config, "db", "check").returncode == 0


# --- first-run creation: a crash, then a clean run ---------------------------------------


def test_kill_9_during_first_run_schema_creation_then_clean_run(folder: Path) -> None:
    database = folder / "data" / DB_NAME
    killer = textwrap.dedent(f"""
        import os, signal
        from sqlalchemy import event
        from chipwatch.store.db import create_engine, upgrade

        engine = create_engine("sqlite:///{database}")

        @event.listens_for(engine, "before_cursor_execute")
        def die(conn, cursor, statement, *args):
            if statement.lstrip().upper().startswith("CREATE TABLE ARTICLES"):
                os.kill(os.getpid(), signal.SIGKILL)  # digests and sources are made by now

        upgrade(engine)
    """)
    crashed = subprocess.run([sys.executable, "-c", killer], capture_output=True, check=False)
    assert crashed.returncode == -signal.SIGKILL
    assert database.exists()
    assert tables_of(database) == set()  # nothing of the half-done creation survived
    config = write_config(folder)
    assert chipwatch(config, "outbox").returncode == 0
    check = chipwatch(config, "db", "check")
    assert check.returncode == 0 and f"revision {head_revision()} (current)" in check.stdout


# --- a data folder half-made by an older version -------------------------------------------


def _half_made(database: Path, drop: tuple[str, ...], rows: bool) -> None:
    """Revision 0001's tables without alembic_version, as an older first run left them."""
    database.parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(f"sqlite:///{database}")
    upgrade(engine, "0001")
    with engine.begin() as connection:
        connection.execute(text("DROP TABLE alembic_version"))
        for table in drop:
            connection.execute(text(f"DROP TABLE {table}"))
        if rows:
            connection.execute(
                text(
                    "INSERT INTO sources (url, name, language, full_text, enabled, "
                    "consecutive_errors, created_at) VALUES ('https://example.org/kept.xml', "
                    "'kept', 'en', 0, 1, 0, '2026-12-01 00:00:00')"
                )
            )
    engine.dispose()


def test_half_made_empty_tables_are_completed(folder: Path) -> None:
    database = folder / "data" / DB_NAME
    _half_made(database, drop=("labels", "digest_items", "deliveries"), rows=False)
    config = write_config(folder)
    result = chipwatch(config, "feeds", "list")
    assert result.returncode == 0, result.stderr
    check = chipwatch(config, "db", "check")
    assert f"revision {head_revision()} (current)" in check.stdout
    assert {"labels", "digest_items", "deliveries", "alembic_version"} <= tables_of(database)


def test_complete_unversioned_0001_schema_with_rows_is_stamped_and_upgraded(folder: Path) -> None:
    database = folder / "data" / DB_NAME
    _half_made(database, drop=(), rows=True)
    config = write_config(folder)
    status = chipwatch(config, "feeds", "status")
    assert status.returncode == 0, status.stderr
    assert "kept" in status.stdout  # the row survived; 0002's column was added
    assert f"revision {head_revision()} (current)" in chipwatch(config, "db", "check").stdout


def test_partial_unversioned_schema_with_rows_is_refused_untouched(folder: Path) -> None:
    database = folder / "data" / DB_NAME
    _half_made(database, drop=("labels",), rows=True)
    before = digest_of(database)
    config = write_config(folder)
    line = assert_storage_line(chipwatch(config, "outbox"), database)
    assert "without a schema revision" in line
    assert digest_of(database) == before


def test_foreign_tables_are_refused(folder: Path) -> None:
    database = folder / "data" / DB_NAME
    database.parent.mkdir(parents=True)
    connection = sqlite3.connect(database)
    connection.execute("CREATE TABLE digests (id INTEGER PRIMARY KEY, body TEXT)")
    connection.commit()
    connection.close()
    line = assert_storage_line(chipwatch(write_config(folder), "outbox"), database)
    assert "not chipwatch's" in line


# --- a newer schema, a WAL file left over --------------------------------------------------


def test_newer_schema_revision_is_refused_never_downgraded(folder: Path) -> None:
    database = make_database(folder / "data", rows=2)
    connection = sqlite3.connect(database)
    connection.execute("UPDATE alembic_version SET version_num = '0099'")
    connection.commit()
    connection.close()
    checkpoint(database)
    before = digest_of(database)
    config = write_config(folder)
    for args in (*QUICK, ("label", "1", "--not-relevant")):
        line = assert_storage_line(chipwatch(config, *args), database)
        assert "0099" in line and "upgrade chipwatch" in line, (args, line)
    assert digest_of(database) == before


def test_wal_left_by_a_crash_is_recovered(folder: Path) -> None:
    database = make_database(folder / "data", rows=0)
    writer = textwrap.dedent(f"""
        import os, sqlite3
        c = sqlite3.connect({str(database)!r})
        c.execute("PRAGMA journal_mode=WAL")
        c.execute("INSERT INTO sources (url, name, language, article_text, enabled, "
                  "consecutive_errors, created_at) VALUES ('https://example.org/wal.xml', "
                  "'in the wal', 'en', NULL, 1, 0, '2026-12-01 00:00:00')")
        c.commit()
        os._exit(0)  # no close: no checkpoint, the row lives only in the -wal file
    """)
    subprocess.run([sys.executable, "-c", writer], check=True)
    assert Path(f"{database}-wal").stat().st_size > 0
    listing = chipwatch(write_config(folder), "feeds", "list")
    assert listing.returncode == 0 and "wal.xml" in listing.stdout


# --- db check and db backup -----------------------------------------------------------------


def test_db_check_reports_integrity_and_revision(folder: Path) -> None:
    database = make_database(folder / "data", rows=5)
    config = write_config(folder)
    check = chipwatch(config, "db", "check")
    assert check.returncode == 0, check.stderr
    assert str(database) in check.stdout and "integrity ok" in check.stdout
    # An older revision is reported, not upgraded by the check.
    engine = create_engine(f"sqlite:///{folder / 'old' / DB_NAME}")
    upgrade(engine, "0001")
    engine.dispose()
    old = write_config(folder, data=folder / "old")
    report = chipwatch(old, "db", "check")
    assert report.returncode == 0 and "revision 0001 (the next command upgrades" in report.stdout


def test_db_check_on_a_missing_database_reports_it_and_creates_nothing(folder: Path) -> None:
    config = write_config(folder)  # data_dir = folder/data, which does not exist
    check = chipwatch(config, "db", "check")
    line = assert_storage_line(check, folder / "data" / DB_NAME)
    assert "no such database file" in line and "data_dir" in line  # was "integrity ok"
    assert not (folder / "data").exists()  # neither the folder nor the file was made
    (folder / "data").mkdir()
    assert_storage_line(chipwatch(config, "db", "check"), folder / "data" / DB_NAME)
    assert list((folder / "data").iterdir()) == []


def test_db_backup_writes_a_consistent_copy_and_never_overwrites(folder: Path) -> None:
    make_database(folder / "data", rows=40)
    config = write_config(folder)
    copy = folder / "backup.sqlite3"
    result = chipwatch(config, "db", "backup", str(copy))
    assert result.returncode == 0, result.stderr
    connection = sqlite3.connect(copy)
    assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert connection.execute("SELECT count(*) FROM sources").fetchone()[0] == 40
    assert connection.execute("SELECT version_num FROM alembic_version").fetchone()[0] == (
        head_revision()
    )
    connection.close()
    before = digest_of(copy)
    again = chipwatch(config, "db", "backup", str(copy))
    assert again.returncode == ExitCode.CONFIG and "never overwrites" in again.stderr
    assert digest_of(copy) == before
    missing = chipwatch(config, "db", "backup", str(folder / "nowhere" / "b.sqlite3"))
    assert missing.returncode == ExitCode.CONFIG
    # A trailing / names a folder: refused, not a file named "newdir" (it was written).
    slashed = chipwatch(config, "db", "backup", f"{folder / 'newdir'}/")
    assert slashed.returncode == ExitCode.CONFIG, slashed.stderr
    assert len(slashed.stderr.strip().splitlines()) == 1 and "names a folder" in slashed.stderr
    assert not (folder / "newdir").exists()


@pytest.mark.usefixtures("database_url")
def test_db_check_and_backup_on_each_backend(folder: Path) -> None:
    url = configured_url()
    extra = f'database_url = "{url}"\n' if url else ""
    config = write_config(folder, extra="")
    if extra:
        config.write_text(extra + config.read_text())
    assert chipwatch(config, "outbox").returncode == 0
    check = chipwatch(config, "db", "check")
    assert check.returncode == 0, check.stderr
    assert f"revision {head_revision()} (current)" in check.stdout
    backup = chipwatch(config, "db", "backup", str(folder / "b.sqlite3"))
    if url:
        assert backup.returncode == ExitCode.CONFIG and "pg_dump" in backup.stderr
        assert "connected" in check.stdout
    else:
        assert backup.returncode == 0 and (folder / "b.sqlite3").is_file()


def test_unreachable_postgresql_server(folder: Path) -> None:
    config = write_config(folder)
    config.write_text(
        'database_url = "postgresql://nobody@127.0.0.1:9/chipwatch"\n' + config.read_text()
    )
    for args in (("outbox",), ("db", "check")):
        line = assert_storage_line(chipwatch(config, *args), Path("127.0.0.1:9"))
        assert "server" in line


@pytest.fixture()
def silent_server() -> Iterator[int]:
    """The port of a TCP server on 127.0.0.1 that accepts connections and never answers
    (a proxy or another service on the port database_url names)."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                accepted.append(listener.accept()[0])  # held open, never read or written

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join()
    for connection in [*accepted, listener]:
        connection.close()


def test_a_server_that_never_answers_ends_with_exit_5_in_time(
    folder: Path, silent_server: int
) -> None:
    """Without a connect timeout this waited for psycopg's 130 s per attempt."""
    url = f"postgresql://nobody@127.0.0.1:{silent_server}/chipwatch?connect_timeout=2"
    started = time.monotonic()
    result = chipwatch(write_config(folder), "outbox", database_url=url, timeout=60)
    took = time.monotonic() - started
    line = assert_storage_line(result, Path(f"127.0.0.1:{silent_server}"))
    assert "timeout" in line and "server" in line
    assert took < 30, took  # 2 s per attempt, plus the start-up of a loaded machine


def test_the_default_connect_timeout_reaches_psycopg(monkeypatch: pytest.MonkeyPatch) -> None:
    """What the driver is given: the default, unless the URL or PGCONNECT_TIMEOUT sets one."""
    monkeypatch.delenv("PGCONNECT_TIMEOUT", raising=False)
    url = "postgresql://nobody@127.0.0.1:9/chipwatch"
    assert _connect_params(url)["connect_timeout"] == dialect.CONNECT_TIMEOUT_SECONDS == 10
    assert _connect_params(url + "?connect_timeout=3")["connect_timeout"] == "3"
    monkeypatch.setenv("PGCONNECT_TIMEOUT", "4")  # libpq's own variable: psycopg reads it
    assert "connect_timeout" not in _connect_params(url)
    assert dialect.engine_options(make_url("sqlite:////tmp/x.sqlite3")) == {}


def _connect_params(url: str) -> dict[str, object]:
    """The keyword arguments the engine passes to psycopg.connect (no connection made)."""
    engine = create_engine(url)
    seen: dict[str, object] = {}

    def record(_dialect: object, _record: object, _args: object, params: dict) -> None:
        seen.update(params)
        raise _Recorded

    event.listen(engine, "do_connect", record)
    with pytest.raises(_Recorded):
        engine.connect()
    engine.dispose()
    return seen


class _Recorded(Exception):
    """Stops a connection once its parameters are seen."""


def test_a_host_that_does_not_resolve_gets_the_server_hint() -> None:
    """psycopg resolves names itself; its message read as a disk fault."""
    message = "failed to resolve host 'db.invalid': [Errno -2] Name or service not known"
    assert faults.hint_for(message) == faults.SERVER


def test_full_disk_during_a_poll(folder: Path) -> None:
    """A poll of real feeds on loopback hits the file-size limit while storing articles:
    exit 5, one line; the next poll with room stores them."""
    from chipwatch.classify import load_corpus
    from chipwatch.demo.server import serve_demo_feeds

    database = make_database(folder / "data", rows=0)
    with serve_demo_feeds(load_corpus(REPO / "config" / "corpus")) as (_, urls):
        sources = "".join(
            f'[[sources]]\nurl = "{url}"\nname = "f{i}"\n' for i, url in enumerate(urls)
        )
        config = write_config(folder, extra=sources)
        # Room for the -shm file (32 KiB) and a few WAL frames: the sources fit, the
        # articles' pages do not. The database file itself is only read meanwhile.
        assert database.stat().st_size > 40 * 1024
        full = chipwatch(config, "poll", "--no-classify", preexec=file_size_limit(40 * 1024))
        line = assert_storage_line(full, database)
        assert "full" in line
        again = chipwatch(config, "poll", "--no-classify", "--all")
        assert again.returncode == 0, again.stderr
        assert "new articles" in again.stdout and " 0 new articles" not in again.stdout


@pytest.mark.usefixtures("database_url")
def test_newer_revision_refused_on_each_backend(folder: Path) -> None:
    url = configured_url()
    config = write_config(folder)
    if url:
        config.write_text(f'database_url = "{url}"\n' + config.read_text())
    assert chipwatch(config, "outbox").returncode == 0  # created at head
    engine = create_engine(url or f"sqlite:///{folder / 'data' / DB_NAME}")
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '0099'"))
    engine.dispose()
    for args in (("outbox",), ("db", "check")):
        result = chipwatch(config, *args)
        assert result.returncode == ExitCode.STORAGE, result.stderr
        assert "0099" in result.stderr and "upgrade chipwatch" in result.stderr
    engine = create_engine(url or f"sqlite:///{folder / 'data' / DB_NAME}")
    with engine.connect() as connection:  # untouched: never downgraded
        assert connection.execute(text("SELECT version_num FROM alembic_version")).scalar() == (
            "0099"
        )
    engine.dispose()


def test_garbage_wal_and_shm_files_are_ignored(folder: Path) -> None:
    """-wal/-shm files of random bytes (another tool's leftovers): SQLite checks the WAL's
    header and checksums and ignores them; the database and its rows are intact."""
    database = make_database(folder / "data", rows=2)
    Path(f"{database}-wal").write_bytes(os.urandom(40_000))
    Path(f"{database}-shm").write_bytes(os.urandom(100))
    config = write_config(folder)
    listing = chipwatch(config, "feeds", "list")
    assert listing.returncode == 0 and "feed 1 x" in listing.stdout  # the rows, intact
    check = chipwatch(config, "db", "check")
    assert check.returncode == 0 and "integrity ok" in check.stdout


def test_a_schema_edited_by_another_program_is_reported_as_damage(folder: Path) -> None:
    """Two rows in alembic_version (an alembic error: exit 1, "a chipwatch bug"), a table
    or a column dropped (the hint blamed the disk; db check said all was well), another
    program's tables (db check said "no schema yet")."""
    cases: list[tuple[str, list[str], str]] = [
        ("two-revisions", ["INSERT INTO alembic_version VALUES ('0001')"], "more than one head"),
        ("no-labels", ["DROP TABLE labels"], "missing tables: labels"),
        ("no-column", ["ALTER TABLE sources DROP COLUMN tags"], "missing columns: sources.tags"),
    ]
    for name, statements, says in cases:
        database = make_database(folder / name)
        with sqlite3.connect(database) as connection:
            for statement in statements:
                connection.execute(statement)
        config = write_config(folder, data=folder / name)
        check = chipwatch(config, "db", "check")
        assert check.returncode == ExitCode.STORAGE, (name, check.stdout, check.stderr)
        assert says in check.stdout + check.stderr, (name, check.stdout, check.stderr)
        assert "Traceback" not in check.stderr
    broken = chipwatch(write_config(folder, data=folder / "two-revisions"), "feeds", "list")
    assert "damaged or not a chipwatch database" in assert_storage_line(
        broken, folder / "two-revisions" / DB_NAME
    )
    listed = chipwatch(write_config(folder, data=folder / "no-column"), "feeds", "list")
    line = assert_storage_line(listed, folder / "no-column" / DB_NAME)
    assert "no such column: sources.tags" in line and "not a chipwatch database" in line
    foreign = folder / "foreign"
    foreign.mkdir()
    with sqlite3.connect(foreign / DB_NAME) as connection:
        connection.execute("CREATE TABLE moz_places (id INTEGER PRIMARY KEY, url TEXT)")
    check = chipwatch(write_config(folder, data=foreign), "db", "check")
    assert check.returncode == ExitCode.STORAGE, check.stdout
    assert "tables that are not chipwatch's: moz_places" in check.stdout
