"""The `chipwatch` commands as a user runs them: feeds, corpus, label, classify, topics.

Each test runs the real command in a subprocess against a real SQLite file (and, where
the command reads or writes the store, a PostgreSQL database too: the `database_url`
fixture) and, where it fetches, the demo's feed server on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from backends import configured_url
from chipwatch_cli import run_chipwatch as run
from sqlalchemy import Row, text

from chipwatch.classify import load_corpus
from chipwatch.demo.server import serve_demo_feeds
from chipwatch.errors import ExitCode
from chipwatch.store.db import create_engine

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture()
def config(tmp_path: Path) -> Path:
    """A config with no sources, its own copy of the corpus, and loopback fetching allowed."""
    corpus = tmp_path / "corpus"
    shutil.copytree(REPO / "config" / "corpus", corpus)
    path = tmp_path / "chipwatch.toml"
    path.write_text(
        f'data_dir = "{tmp_path / "data"}"\n'
        f'topics = "{REPO / "config" / "topics.toml"}"\n'
        f'corpus_dir = "{corpus}"\n'
        "[fetch]\nallow_private_networks = true\n",
        encoding="utf-8",
    )
    return path


@pytest.fixture()
def feeds() -> Iterator[tuple[str, list[str]]]:
    with serve_demo_feeds(load_corpus(REPO / "config" / "corpus")) as served:
        yield served


@pytest.mark.usefixtures("database_url")  # on SQLite and PostgreSQL
def test_feeds_add_list_status_export_import_remove(
    config: Path, feeds: tuple[str, list[str]], tmp_path: Path
) -> None:
    _, urls = feeds
    added = run(config, "feeds", "add", urls[0], "--name", "French press")
    assert added.returncode == 0, added.stderr
    assert "added feed 1" in added.stdout
    assert run(config, "feeds", "add", urls[1]).returncode == 0

    listing = run(config, "feeds", "list").stdout
    assert "French press" in listing and urls[1] in listing

    exported = run(config, "feeds", "export")
    assert exported.returncode == 0
    opml = tmp_path / "feeds.opml"
    opml.write_text(exported.stdout, encoding="utf-8")
    assert urls[0] in exported.stdout and "<opml" in exported.stdout

    assert "removed" in run(config, "feeds", "remove", urls[0]).stdout
    assert urls[0] not in run(config, "feeds", "list").stdout
    missing = run(config, "feeds", "remove", urls[0])
    assert missing.returncode == ExitCode.CONFIG and "no feed" in missing.stderr

    imported = run(config, "feeds", "import", str(opml))
    assert imported.returncode == 0, imported.stderr
    assert "imported 1 new feeds" in imported.stdout

    assert run(config, "poll").returncode == 0
    status = run(config, "feeds", "status").stdout
    assert "ok" in status and "errors" in status


def test_feeds_add_refuses_a_page_that_is_not_a_feed(
    config: Path, feeds: tuple[str, list[str]]
) -> None:
    base_url, _ = feeds
    result = run(config, "feeds", "add", base_url + "/nothing-here")
    assert result.returncode == ExitCode.ALL_FAILED
    assert "404" in result.stderr


@pytest.mark.usefixtures("database_url")  # on SQLite and PostgreSQL
def test_feeds_status_shows_a_failing_feed(config: Path, feeds: tuple[str, list[str]]) -> None:
    base_url, _ = feeds
    config.write_text(
        config.read_text(encoding="utf-8")
        + f'[[sources]]\nurl = "{base_url}/gone.xml"\nname = "Broken feed"\n',
        encoding="utf-8",
    )
    polled = run(config, "poll")
    assert polled.returncode == ExitCode.ALL_FAILED, polled.stderr  # its only feed failed
    assert "1 failed" in polled.stdout and "[http] HTTP 404" in polled.stdout
    status = run(config, "feeds", "status").stdout
    assert "failing" in status and "Broken feed" in status and "404" in status
    assert " http " in status  # the kind column


@pytest.mark.usefixtures("database_url")  # on SQLite and PostgreSQL
def test_label_then_reclassify(config: Path, feeds: tuple[str, list[str]]) -> None:
    _, urls = feeds
    config.write_text(
        config.read_text(encoding="utf-8") + f'[[sources]]\nurl = "{urls[1]}"\n', encoding="utf-8"
    )
    assert run(config, "poll").returncode == 0
    (phone_id,) = query_one(
        config, "SELECT id FROM articles WHERE title LIKE 'A new folding phone%'"
    )
    bad = run(config, "label", str(phone_id), "--topics", "no-such-topic")
    assert bad.returncode == 2 and "unknown topic" in bad.stderr
    assert run(config, "label", "9999", "--not-relevant").returncode == ExitCode.CONFIG

    labelled = run(config, "label", str(phone_id), "--topics", "chipmaker-stakes")
    assert labelled.returncode == 0, labelled.stderr
    assert run(config, "classify", "--again").returncode == 0
    relevant, topics = query_one(
        config, "SELECT relevant, topics FROM classifications WHERE article_id = :id", id=phone_id
    )
    # The user's judgement wins at the next fit.
    assert relevant == 1 and "chipmaker-stakes" in topics


def query_one(config: Path, sql: str, **params: object) -> Row[tuple[object, ...]]:
    """One row from the database the commands used (SQLite file or PostgreSQL)."""
    url = configured_url() or f"sqlite:///{config.parent / 'data' / 'chipwatch.sqlite3'}"
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return connection.execute(text(sql), params).one()
    finally:
        engine.dispose()


def test_corpus_add_and_list(config: Path, tmp_path: Path) -> None:
    document = tmp_path / "memo.txt"
    document.write_text(
        "Tokyo adds chipmaking tools to its export licence list.\n\n"
        "Japan's trade ministry will require licences for shipments of etching and "
        "deposition equipment to China, following the Dutch and American rules.",
        encoding="utf-8",
    )
    bad = run(config, "corpus", "add", str(document), "--topics", "made-up")
    assert bad.returncode == 2
    tagged = run(
        config, "corpus", "add", str(document), "--topics", "security-debate", "--language", "<b>"
    )
    assert tagged.returncode == 2 and "--language: not a language code" in tagged.stderr
    added = run(config, "corpus", "add", str(document), "--topics", "security-debate")
    assert added.returncode == 0, added.stderr
    listing = run(config, "corpus", "list").stdout
    assert len(listing.strip().splitlines()) == 6
    assert "security-debate" in listing.splitlines()[-1]


def test_classify_jsonl_through_the_command(config: Path, tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    lines = [
        {
            "id": "a",
            "title": "Washington approves H20 licences for Nvidia's China sales",
            "text": "The Commerce Department granted export licences for the H20 accelerator.",
        },
        {"id": "b", "title": "Recette : la tarte aux pommes", "text": "Des pommes et du beurre."},
    ]
    source.write_text("\n".join(json.dumps(line) for line in lines) + "\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    result = run(config, "classify", "--input", str(source), "--output", str(out))
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [row["id"] for row in rows] == ["a", "b"]
    assert set(rows[0]) == {
        "id",
        "relevant",
        "relevance",
        "topics",
        "topic_scores",
        "novel",
        "language",
        "evidence",
    }
    assert rows[0]["relevant"] and "ai-chip-licensing" in rows[0]["topics"]
    assert not rows[1]["relevant"] and rows[1]["language"] == "fr"

    # Without --output it is a filter: the same JSONL on standard output, nothing else.
    piped = run(config, "classify", "--input", str(source))
    assert piped.returncode == 0, piped.stderr
    assert [json.loads(line) for line in piped.stdout.splitlines()] == rows

    # A lone surrogate escape is valid JSON but not text: replaced, not a traceback.
    source.write_text(
        '{"id": "s", "title": "\\ud800 US bans H20 exports", "text": "chips \\udfff"}\n',
        encoding="utf-8",
    )
    odd = run(config, "classify", "--input", str(source))
    assert odd.returncode == 0 and "Traceback" not in odd.stderr, odd.stderr
    assert json.loads(odd.stdout)["relevant"]

    source.write_text('{"id": "c", "title": "no text"}\n', encoding="utf-8")
    before = out.read_bytes()
    broken = run(config, "classify", "--input", str(source), "--output", str(out))
    assert broken.returncode != 0
    assert "in.jsonl:1" in broken.stderr
    assert out.read_bytes() == before  # replaced only once complete

    # --output is checked before any work, as export's is (these were tracebacks, the
    # input overwritten by its results, or --output ignored without --input).
    for bad, says in (
        (str(tmp_path), "is a folder"),
        (str(tmp_path / "nowhere" / "x.jsonl"), "no such folder"),
        ("", "an empty path"),
        (str(source), "is the --input file"),
    ):
        refused = run(config, "classify", "--input", str(source), "--output", bad)
        assert refused.returncode == 2 and says in refused.stderr, (bad, refused.stderr)
        assert len(refused.stderr.splitlines()) == 1 and "Traceback" not in refused.stderr
    alone = run(config, "classify", "--output", str(out))
    assert alone.returncode == 2 and "--output: only with --input" in alone.stderr

    # A language is a code, not markup (it came out cut to "<s").
    source.write_text('{"id": "l", "title": "t", "text": "x", "language": "<script>"}\n')
    tagged = run(config, "classify", "--input", str(source))
    assert tagged.returncode != 0 and "Traceback" not in tagged.stderr
    assert "in.jsonl:1: field 'language': not a language code" in tagged.stderr


@pytest.mark.usefixtures("database_url")  # on SQLite and PostgreSQL
def test_topics_list_and_suggest(config: Path, feeds: tuple[str, list[str]]) -> None:
    _, urls = feeds
    topics = run(config, "topics", "list").stdout
    assert "ai-chip-licensing" in topics and len(topics.strip().splitlines()) == 5
    empty = run(config, "topics", "suggest")
    assert empty.returncode == 0 and "no novel articles" in empty.stdout
    config.write_text(
        config.read_text(encoding="utf-8") + f'[[sources]]\nurl = "{urls[1]}"\n', encoding="utf-8"
    )
    assert run(config, "poll").returncode == 0
    suggested = run(config, "topics", "suggest")
    assert suggested.returncode == 0, suggested.stderr
    assert "description:" in suggested.stdout and "ASML" in suggested.stdout
    assert "chipwatch topics accept 1" in suggested.stdout
    blank = run(config, "topics", "accept", "1", "--id", "")  # an empty shell variable
    assert blank.returncode == 2 and "--id: empty" in blank.stderr
    accepted = run(config, "topics", "accept", "1", "--id", "equipment-controls")
    assert accepted.returncode == 0, accepted.stderr
    assert "equipment-controls" in run(config, "topics", "list").stdout
    corpus = run(config, "corpus", "list").stdout
    assert "equipment-controls" in corpus


@pytest.mark.usefixtures("database_url")  # on SQLite and PostgreSQL
def test_a_second_poll_while_one_runs_is_skipped(config: Path) -> None:
    from chipwatch.lock import job_lock

    with job_lock(config.parent / "data", "poll"):
        busy = run(config, "poll")
    assert busy.returncode == 75
    assert "skipped" in busy.stderr and "poll" in busy.stderr
    assert run(config, "poll").returncode == 0  # the lock went with its holder


def test_files_and_urls_given_on_the_command_line_are_usage_errors(
    config: Path, tmp_path: Path
) -> None:
    for args in (
        ("eval", str(tmp_path / "absent.jsonl")),
        ("corpus", "add", str(tmp_path / "absent.txt"), "--topics", "licensing"),
        ("corpus", "add", "http://0177.0.0.1/page", "--topics", "licensing"),
        ("feeds", "add", "http://user:pw@example.test/feed"),
    ):
        result = run(config, *args)
        assert result.returncode == ExitCode.CONFIG, (args, result.stderr)
        assert "Traceback" not in result.stderr and len(result.stderr.splitlines()) == 1


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (b"\xff\xfe not text\n", "cannot read"),
        (b"[1, 2]\n", ":1: expected a JSON object"),
        (
            b'{"id": "a", "title": "t", "text": "x", "relevant": "yes", "topics": [], '
            b'"novel": false}\n',
            ":1: field 'relevant'",
        ),
        (
            b'{"id": "a", "title": "t", "text": "x", "relevant": true, "topics": "ai", '
            b'"novel": false}\n',
            ":1: field 'topics'",
        ),
    ],
)
def test_a_malformed_labelled_file_is_named_with_its_line(
    config: Path, tmp_path: Path, content: bytes, says: str
) -> None:
    labelled = tmp_path / "labelled.jsonl"
    labelled.write_bytes(content)
    result = run(config, "eval", str(labelled))
    assert result.returncode == ExitCode.CONFIG, result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.splitlines()) == 1
    assert "labelled.jsonl" in result.stderr and says in result.stderr


@pytest.mark.parametrize(
    ("options", "says"),
    [(["--seeds", "3"], "add --cross-validate"), (["--seeds", "0", "--cross-validate"], "--seeds")],
)
def test_eval_seeds_without_cross_validation_or_out_of_range_are_refused(
    config: Path, tmp_path: Path, options: list[str], says: str
) -> None:
    labelled = tmp_path / "labelled.jsonl"
    labelled.write_text("", encoding="utf-8")
    result = run(config, "eval", str(labelled), *options)
    assert result.returncode == ExitCode.CONFIG and says in result.stderr, result.stderr


def _not_utf8(path: Path) -> None:
    path.write_bytes(b"\xff\xfe [scope]\n")


def _a_folder(path: Path) -> None:
    path.unlink()
    path.mkdir()


@pytest.mark.parametrize("damage", [_not_utf8, _a_folder, Path.unlink])
@pytest.mark.parametrize("which", ["topics.toml", "corpus/corpus.toml", "chipwatch.toml"])
def test_a_damaged_config_file_is_named_not_a_traceback(
    config: Path, tmp_path: Path, damage: Callable[[Path], None], which: str
) -> None:
    topics = tmp_path / "topics.toml"
    shutil.copy(REPO / "config" / "topics.toml", topics)
    config.write_text(
        config.read_text(encoding="utf-8").replace(
            str(REPO / "config" / "topics.toml"), str(topics)
        ),
        encoding="utf-8",
    )
    articles = tmp_path / "articles.jsonl"
    articles.write_text('{"id": "a", "title": "US bans H20 exports", "text": ""}\n')
    damage(tmp_path / which)
    result = run(config, "classify", "--input", str(articles))
    assert result.returncode == ExitCode.CONFIG, result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.splitlines()) == 1
    assert which.split("/")[-1] in result.stderr


def test_corpus_add_on_a_config_with_no_corpus_copies_the_packaged_one(tmp_path: Path) -> None:
    from chipwatch.settings import PACKAGED_CONFIG_DIR

    packaged = sorted(p.name for p in (PACKAGED_CONFIG_DIR / "corpus").iterdir())
    config = tmp_path / "chipwatch.toml"
    config.write_text(f'data_dir = "{tmp_path / "data"}"\n', encoding="utf-8")
    example = tmp_path / "example.txt"
    example.write_text("Washington widens a chip rule\nThe rule covers more chips.\n")
    added = run(config, "corpus", "add", str(example), "--topics", "ai-chip-licensing")
    assert added.returncode == 0, added.stderr
    assert sorted(p.name for p in (PACKAGED_CONFIG_DIR / "corpus").iterdir()) == packaged
    copied = sorted(p.name for p in (tmp_path / "corpus").iterdir())
    assert set(packaged) < set(copied) and len(copied) == len(packaged) + 1


@pytest.mark.parametrize(
    "args",
    [
        ("label", str(2**80), "--not-relevant"),
        ("label", "0", "--not-relevant"),
        ("feeds", "remove", str(2**80)),
        ("prune", "--older-than", str(2**80)),
        ("prune", "--older-than", "-5"),
        ("export", "--csv", "--days", "1000000"),
        ("export", "--csv", "--days", "99999999999999999999"),
        ("export", "--csv", "--days", "0"),
        ("export", "--csv", "--days", "-5"),
        ("topics", "suggest", "--days", "1000000"),
        ("topics", "suggest", "--days", "0"),
        ("topics", "suggest", "--days", "-1"),
        ("topics", "suggest", "--count", "0"),  # said "no novel articles in the last 30 days"
        ("topics", "suggest", "--count", str(2**80)),
    ],
)
def test_numbers_out_of_any_range_are_usage_errors(config: Path, args: tuple[str, ...]) -> None:
    result = run(config, *args)  # were tracebacks (OverflowError) for the huge ones
    assert result.returncode == ExitCode.CONFIG, result.stderr
    assert "Traceback" not in result.stderr


def _chipwatch_at_home(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """A run whose default config and data folders are under `home`, never the user's."""
    env = {
        **os.environ,
        "XDG_CONFIG_HOME": str(home / "config"),
        "XDG_DATA_HOME": str(home / "data"),
    }
    env.pop("CHIPWATCH_CONFIG", None)
    return subprocess.run(
        [sys.executable, "-m", "chipwatch", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )


def test_init_writes_where_it_is_told(tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    told = _chipwatch_at_home(tmp_path, "init", str(mine))
    assert told.returncode == 0, told.stderr
    assert (mine / "chipwatch.toml").is_file() and (mine / "topics.toml").is_file()
    # The global --config names the folder too (it was ignored: the copy went to the
    # default folder).
    flagged = tmp_path / "flagged"
    by_flag = _chipwatch_at_home(tmp_path, "--config", str(flagged), "init")
    assert by_flag.returncode == 0, by_flag.stderr
    assert (flagged / "chipwatch.toml").is_file()
    assert not (tmp_path / "config" / "chipwatch").exists()
    empty = _chipwatch_at_home(tmp_path, "init", "")
    assert empty.returncode == ExitCode.CONFIG and "DIR: empty" in empty.stderr


def test_a_page_without_article_text_is_one_line_without_the_extractor_s_logs(
    config: Path,
) -> None:
    from feedserver import FeedServer

    with FeedServer() as server:
        server.add(
            "/empty.html", "<html><body></body></html>", headers={"Content-Type": "text/html"}
        )
        result = run(
            config, "corpus", "add", server.url("/empty.html"), "--topics", "security-debate"
        )
    assert result.returncode != 0
    # trafilatura logged "ERROR trafilatura.utils: parsed tree length: 0" lines before ours.
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "no article text" in result.stderr


def test_export_output_is_replaced_only_once_complete(config: Path, tmp_path: Path) -> None:
    kept = tmp_path / "k.csv"
    kept.write_text("old\n", encoding="utf-8")
    kept.chmod(0o640)
    broken = tmp_path / "broken.toml"
    broken.write_text('data_dir = "a quote never closed\n', encoding="utf-8")
    failed = run(broken, "export", "--csv", "--output", str(kept))
    assert failed.returncode == ExitCode.CONFIG, failed.stderr
    assert kept.read_text(encoding="utf-8") == "old\n"  # was emptied before the config failed

    database = tmp_path / "data" / "chipwatch.sqlite3"
    database.parent.mkdir()
    database.write_text("these lines of ours are no SQLite database\n" * 200, encoding="utf-8")
    damaged = run(config, "export", "--csv", "--output", str(kept))
    assert damaged.returncode == ExitCode.STORAGE, damaged.stderr
    assert kept.read_text(encoding="utf-8") == "old\n"  # was left header-only or empty

    database.unlink()
    done = run(config, "export", "--csv", "--output", str(kept))
    assert done.returncode == 0, done.stderr
    assert kept.read_text(encoding="utf-8").startswith("id,published,")
    assert kept.stat().st_mode & 0o777 == 0o640  # the user's file keeps its mode
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".k.csv")]


@pytest.mark.parametrize("where", ["folder", "missing-folder", "trailing-slash", "empty", "full"])
def test_export_output_that_cannot_be_a_file_is_one_line(
    config: Path, tmp_path: Path, where: str
) -> None:
    given = {
        "folder": str(tmp_path),
        "missing-folder": str(tmp_path / "nowhere" / "k.csv"),
        "trailing-slash": f"{tmp_path / 'new'}/",
        "empty": "",
        "full": "/dev/full",  # every write fails with ENOSPC, as on a full disk
    }[where]
    result = run(config, "export", "--csv", "--output", given)
    assert result.returncode == ExitCode.CONFIG, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert "--output" in lines[0]
    assert not (tmp_path / "new").exists() and not (tmp_path / "nowhere").exists()


@pytest.mark.parametrize(
    "where", ["missing-folder", "folder", "trailing-slash", "empty", "full", "a-file"]
)
def test_digest_preview_path_is_checked_and_a_write_failure_is_one_line(
    config: Path, tmp_path: Path, where: str
) -> None:
    given = {
        "missing-folder": str(tmp_path / "nowhere" / "x.html"),  # was created
        "folder": str(tmp_path),
        "trailing-slash": f"{tmp_path / 'new'}/",
        "empty": "",
        "full": "/dev/full",
        "a-file": str(tmp_path / "old.html"),
    }[where]
    (tmp_path / "old.html").write_text("an older preview\n", encoding="utf-8")
    result = run(config, "digest", "--preview", given)
    if where == "a-file":  # replaced once complete, nothing left beside it
        assert result.returncode == 0, result.stderr
        assert "<html" in (tmp_path / "old.html").read_text(encoding="utf-8").lower()
        assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".old.html")]
        return
    assert result.returncode == ExitCode.CONFIG, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert given in lines[0] if given else "--preview" in lines[0]
    assert not (tmp_path / "nowhere").exists() and not (tmp_path / "new").exists()
