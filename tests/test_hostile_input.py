"""Hostile or mistaken input to the files and commands a user edits and runs: each is one
line naming its source (file and field, or option) and a documented exit code.

Real files and real `chipwatch` runs in a subprocess; the texts are written for these tests.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from chipwatch_cli import run_chipwatch as run

from chipwatch.errors import ExitCode

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture()
def config(tmp_path: Path) -> Path:
    """A config with its own copies of topics.toml and the corpus (edited by the tests)."""
    shutil.copytree(REPO / "config" / "corpus", tmp_path / "corpus")
    shutil.copy(REPO / "config" / "topics.toml", tmp_path / "topics.toml")
    path = tmp_path / "chipwatch.toml"
    path.write_text(
        f'data_dir = "{tmp_path / "data"}"\n'
        f'topics = "{tmp_path / "topics.toml"}"\n'
        f'corpus_dir = "{tmp_path / "corpus"}"\n',
        encoding="utf-8",
    )
    return path


def one_line(result: subprocess.CompletedProcess[str], code: int = ExitCode.CONFIG) -> str:
    """The one stderr line of a refused command (and that it exited with `code`)."""
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.splitlines()) == 1, result.stderr
    return result.stderr


# --- 1. topic ids, names and descriptions are bounded ----------------------------------


def test_topics_add_refuses_an_overlong_id_name_or_description(config: Path) -> None:
    long_id = run(config, "topics", "add", "a" * 5000, "--name", "N", "--description", "D")
    says = one_line(long_id)
    assert "user-topics.toml: id:" in says and "at most 64" in says
    long_name = run(config, "topics", "add", "x", "--name", "n" * 201, "--description", "D")
    assert "name:" in one_line(long_name) and "at most 200" in long_name.stderr
    long_text = run(config, "topics", "add", "x", "--name", "N", "--description", "d" * 2001)
    assert "description:" in one_line(long_text) and "at most 2,000" in long_text.stderr
    assert not (config.parent / "user-topics.toml").exists()  # nothing was written
    longest = run(config, "topics", "add", "a" * 64, "--name", "N", "--description", "D")
    assert longest.returncode == 0, longest.stderr


def test_the_id_of_the_novel_section_is_not_a_topic_id(config: Path) -> None:
    """ "novel" is the digest's section, Atom feed and site filter of relevant articles on
    no topic: a topic of that id collided with all three (it was accepted)."""
    says = one_line(run(config, "topics", "add", "novel", "--name", "N", "--description", "D"))
    assert "id:" in says and "'novel' is reserved" in says
    assert not (config.parent / "user-topics.toml").exists()
    (config.parent / "user-topics.toml").write_text(
        '[[topic]]\nid = "novel"\nname = "N"\ndescription = "D"\n', encoding="utf-8"
    )
    assert "topic[0].id: 'novel' is reserved" in one_line(run(config, "topics", "list"))


def test_a_timezone_that_names_a_folder_of_the_zone_database(config: Path) -> None:
    """ZoneInfo("Europe") opens a folder (IsADirectoryError) and a 300-character name no
    file (name too long): both were a traceback from every command."""
    base = config.read_text(encoding="utf-8")
    for zone in ("Europe", "America", "x" * 300):
        config.write_text(base + f'[digest]\ntimezone = "{zone}"\n', encoding="utf-8")
        says = one_line(run(config, "feeds", "list"))
        assert f"{config}: digest.timezone: unknown timezone" in says, says
    config.write_text(base, encoding="utf-8")
    from_env = run(config, "feeds", "list", env={"CHIPWATCH_DIGEST_TIMEZONE": "Etc"})
    # Named after its true source, the variable (it named the file, digest.schedule's).
    assert "CHIPWATCH_DIGEST_TIMEZONE: digest.timezone: unknown timezone 'Etc'" in one_line(
        from_env
    )


def test_stories_since_a_date_that_leaves_the_calendar_in_utc(config: Path) -> None:
    for since in ("9999-12-31T23:59:59-12:00", "0001-01-01T00:00:00+14:00"):
        says = one_line(run(config, "stories", "--since", since))
        assert "--since: DATE: out of range in UTC" in says, says
    assert run(config, "stories", "--since", "2026-01-01T00:00:00+01:00").returncode == 0


def test_an_overlong_id_in_a_topics_file_is_named_with_its_field(config: Path) -> None:
    (config.parent / "user-topics.toml").write_text(
        f'[[topic]]\nid = "{"a" * 300}"\nname = "N"\ndescription = "D"\n', encoding="utf-8"
    )
    says = one_line(run(config, "topics", "list"))
    assert "user-topics.toml: topic[0].id:" in says and "at most 64" in says


def test_a_digest_whose_atom_feeds_cannot_be_written_still_runs(config: Path) -> None:
    feeds = config.parent / "data" / "feeds"
    feeds.parent.mkdir(parents=True)
    feeds.write_text("a file where the feeds folder goes\n", encoding="utf-8")
    result = run(config, "digest", "--no-send")  # was a traceback (FileExistsError)
    assert result.returncode == ExitCode.OK, result.stderr
    assert "Traceback" not in result.stderr
    (error,) = [line for line in result.stderr.splitlines() if "Atom feeds" in line]
    assert str(feeds) in error


# --- 3. no key of topics.toml or corpus.toml is ignored; no term matches all or nothing ---

FIRST_TERMS = '[topic.terms]\nany = ["H20"'


@pytest.mark.parametrize(
    ("old", "new", "field", "says"),
    [
        ("[topic.terms]", "[topic.trems]", "topic[0].trems", "unknown key; did you mean terms?"),
        ("counter_examples =", "counter_exmples =", "scope.counter_exmples", "counter_examples?"),
        ("[scope]", "bogus_top = 1\n[scope]", "bogus_top", "unknown key"),
        ("[scope.places]", "[scope.placs]", "scope.placs", "did you mean places?"),
        (FIRST_TERMS, '[topic.terms]\nxx = ["H20"]\nany = ["H20"', "topic[0].terms.xx", "unknown"),
        (FIRST_TERMS, '[topic.terms]\nany = ["*", "H20"', "topic[0].terms.any[0]", "lone *"),
        (FIRST_TERMS, '[topic.terms]\nany = ["H20", ""', "topic[0].terms.any[1]", "empty"),
        (FIRST_TERMS, '[topic.terms]\nany = ["  ", "H20"', "topic[0].terms.any[0]", "empty"),
        (FIRST_TERMS, '[topic.terms]\nany = ["H20", "* *"', "topic[0].terms.any[1]", "lone *"),
        (FIRST_TERMS, '[topic.terms]\nany = ["--", "H20"', "topic[0].terms.any[0]", "no word"),
    ],
)
def test_a_mistake_in_topics_toml_is_refused_naming_the_key(
    config: Path, old: str, new: str, field: str, says: str
) -> None:
    topics = config.parent / "topics.toml"
    text = topics.read_text(encoding="utf-8")
    assert old in text
    topics.write_text(text.replace(old, new, 1), encoding="utf-8")
    line = one_line(run(config, "topics", "list"))  # was accepted, dropping what it held
    assert f"{topics}: {field}: " in line and says in line


def test_a_scope_key_in_the_users_topics_file_is_refused(config: Path) -> None:
    user_topics = config.parent / "user-topics.toml"
    user_topics.write_text(
        '[scope]\ndescription = "Mine."\n[[topic]]\nid = "mine"\nname = "N"\ndescription = "D"\n',
        encoding="utf-8",
    )
    line = one_line(run(config, "topics", "list"))  # only topics.toml's [scope] is read
    assert f"{user_topics}: scope: unknown key" in line


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        ("[[document]]", "[[documnt]]", "documnt"),
        ('language = "fr"', 'langage = "fr"', "document[0].langage"),
    ],
)
def test_a_mistake_in_corpus_toml_is_refused_naming_the_key(
    config: Path, old: str, new: str, field: str
) -> None:
    corpus = config.parent / "corpus" / "corpus.toml"
    text = corpus.read_text(encoding="utf-8")
    corpus.write_text(text.replace(old, new, 1), encoding="utf-8")
    line = one_line(run(config, "corpus", "list"))  # the document vanished silently
    assert f"{corpus}: {field}: unknown key" in line


# --- 2. a corpus document is no longer than the classifier reads of an article -----------

SENTENCE = "Officials in the capital discuss the weather and the harvest at length. "


def test_corpus_add_refuses_a_document_beyond_the_limit(config: Path, tmp_path: Path) -> None:
    huge = tmp_path / "huge.txt"
    huge.write_text(SENTENCE * 4000, encoding="utf-8")  # 288,000 characters
    line = one_line(run(config, "corpus", "add", str(huge), "--topics", "rare-earths-leverage"))
    assert f"{huge}: longer than 200,000 characters" in line
    assert "huge" not in (config.parent / "corpus" / "corpus.toml").read_text(encoding="utf-8")
    assert len(list((config.parent / "corpus").glob("*.txt"))) == 5  # nothing copied


def test_a_huge_document_put_in_the_corpus_by_hand_is_cut_not_a_stall(
    config: Path, tmp_path: Path
) -> None:
    corpus = config.parent / "corpus"
    (corpus / "huge.txt").write_text(SENTENCE * 70_000, encoding="utf-8")  # 5 MB
    with (corpus / "corpus.toml").open("a", encoding="utf-8") as handle:
        handle.write(
            '\n[[document]]\nid = "huge"\nfile = "huge.txt"\nlanguage = "en"\n'
            'topics = ["rare-earths-leverage"]\nrelevant = false\n'
        )
    articles = tmp_path / "one.jsonl"
    articles.write_text('{"id": "a", "title": "US bans H20 exports", "text": ""}\n')
    result = run(config, "classify", "--input", str(articles))  # was killed after 60 s
    assert result.returncode == ExitCode.OK, result.stderr
    (warning,) = result.stderr.splitlines()
    assert "document[5].file: huge.txt is longer than 200,000 characters" in warning


# --- 4. label --topics: an empty value is no judgement; each id once -------------------


def test_label_with_an_empty_topics_value_is_a_usage_error(config: Path) -> None:
    line = one_line(run(config, "label", "1", "--topics", ""))  # was: "not relevant", exit 0
    assert "--topics: no topic id given" in line
    line = one_line(run(config, "label", "1", "--topics", " , "))
    assert "--topics" in line


@pytest.mark.usefixtures("database_url")  # on SQLite and PostgreSQL
def test_label_stores_a_topic_given_twice_once(config: Path) -> None:
    from chipwatch.classify import load_corpus
    from chipwatch.demo.server import serve_demo_feeds

    with serve_demo_feeds(load_corpus(REPO / "config" / "corpus")) as (_, urls):
        config.write_text(
            config.read_text(encoding="utf-8")
            + f'[fetch]\nallow_private_networks = true\n[[sources]]\nurl = "{urls[1]}"\n',
            encoding="utf-8",
        )
        polled = run(config, "poll", "--no-classify")
        assert polled.returncode == ExitCode.OK, polled.stderr
    labelled = run(config, "label", "1", "--topics", "security-debate,security-debate")
    assert labelled.returncode == ExitCode.OK, labelled.stderr
    assert labelled.stdout.strip() == "labelled article 1: security-debate"
    assert stored_label_topics(config, 1) == ["security-debate"]


def stored_label_topics(config: Path, article_id: int) -> list[str]:
    from backends import configured_url
    from sqlalchemy import text

    from chipwatch.store.db import create_engine

    url = configured_url() or f"sqlite:///{config.parent / 'data' / 'chipwatch.sqlite3'}"
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            query = text("SELECT topics FROM labels WHERE article_id = :id")
            topics = connection.execute(query, {"id": article_id}).scalar_one()
    finally:
        engine.dispose()
    return json.loads(topics) if isinstance(topics, str) else list(topics)


# --- 5. corpus add names the input it refuses ---------------------------------------------


@pytest.mark.parametrize("content", ["", "  \n\t\n"])
def test_corpus_add_of_an_empty_file_names_that_file(
    config: Path, tmp_path: Path, content: str
) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text(content, encoding="utf-8")
    line = one_line(run(config, "corpus", "add", str(empty), "--topics", "security-debate"))
    assert f"{empty}: the document is empty" in line and "corpus.toml" not in line


def test_corpus_add_of_a_folder_or_a_file_with_a_byte_order_mark(
    config: Path, tmp_path: Path
) -> None:
    folder = one_line(run(config, "corpus", "add", str(tmp_path), "--topics", "security-debate"))
    assert f"{tmp_path}: is a folder" in folder  # it said "no such file"
    marked = tmp_path / "memo.txt"
    marked.write_bytes(
        "\ufeffExport rules\x00 widen\nThe ministry widens its export rules.\n".encode()
    )
    added = run(config, "corpus", "add", str(marked), "--topics", "security-debate")
    assert added.returncode == 0, added.stderr
    listed = run(config, "corpus", "list")
    assert listed.stdout.splitlines()[-1].endswith("\tsecurity-debate\tExport rules widen")
    assert "\ufeff" not in listed.stdout and "\x00" not in listed.stdout


def test_corpus_add_with_an_empty_topics_value_names_the_option(
    config: Path, tmp_path: Path
) -> None:
    document = tmp_path / "memo.txt"
    document.write_text("Export rules widen\nThe ministry widens its export rules.\n")
    line = one_line(run(config, "corpus", "add", str(document), "--topics", ""))
    assert "--topics: no topic id given; valid ids: ai-chip-licensing" in line
    assert "unknown" not in line  # was "unknown topic ids: none"


def test_corpus_add_of_a_url_of_another_scheme_says_so(config: Path) -> None:
    source = "javascript:alert(document.cookie)"
    line = one_line(run(config, "corpus", "add", source, "--topics", "security-debate"))
    assert f"{source}: not a file, and javascript: URLs are not fetched" in line
    assert "no such file" not in line


# --- 6. eval --cross-validate on too few labelled rows --------------------------------


def labelled_file(path: Path, relevant: int, not_relevant: int) -> Path:
    rows = [
        {
            "id": f"r{i}",
            "title": f"Washington tightens chip export licences, step {i}",
            "text": "The Commerce Department requires licences for accelerator sales to China.",
            "relevant": True,
            "topics": ["ai-chip-licensing"],
            "novel": False,
        }
        for i in range(relevant)
    ] + [
        {
            "id": f"n{i}",
            "title": f"The football club wins match {i}",
            "text": "The supporters celebrated in the town square until late.",
            "relevant": False,
            "topics": [],
            "novel": False,
        }
        for i in range(not_relevant)
    ]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


@pytest.mark.parametrize(("relevant", "not_relevant"), [(3, 0), (2, 1), (4, 6), (9, 2)])
def test_cross_validation_on_too_few_rows_says_what_it_needs(
    config: Path, tmp_path: Path, relevant: int, not_relevant: int
) -> None:
    path = labelled_file(tmp_path / "few.jsonl", relevant, not_relevant)
    line = one_line(run(config, "eval", str(path), "--cross-validate"))  # was sklearn's traceback
    assert f"{path}: 5-fold cross-validation needs at least 5 relevant and 5 not relevant" in line
    assert f"the file has {relevant} relevant and {not_relevant} not relevant" in line


def test_a_metrics_textfile_that_cannot_be_written_is_refused_before_the_work(
    config: Path, tmp_path: Path
) -> None:
    """It was found out after the poll, whose report it then replaced (exit 2 for a poll
    that worked), naming the config file even for the variable; and a device at the path
    was replaced by a regular file (the rename)."""
    base = config.read_text(encoding="utf-8")
    for path, says in (
        (tmp_path / "nodir" / "x.prom", "no such folder"),
        (tmp_path, "is a folder"),
        (Path("/dev/null"), "is not a regular file"),
    ):
        config.write_text(base + f'[metrics]\ntextfile = "{path}"\n', encoding="utf-8")
        line = one_line(run(config, "feeds", "list"))
        assert f"{config}: metrics.textfile: " in line and says in line, line
    config.write_text(base, encoding="utf-8")
    from_env = run(config, "poll", env={"CHIPWATCH_METRICS_TEXTFILE": str(tmp_path / "a" / "b")})
    assert "CHIPWATCH_METRICS_TEXTFILE: metrics.textfile: no such folder" in one_line(from_env)
    assert Path("/dev/null").is_char_device()


def test_input_nested_deeper_than_the_interpreter_goes(config: Path, tmp_path: Path) -> None:
    """100,000 levels of arrays: a RecursionError (exit 1, a traceback) from the config
    file, a topics file and classify --input; now invalid TOML or JSON, named."""
    deep_json = "[" * 100_000 + "]" * 100_000
    articles = tmp_path / "deep.jsonl"
    articles.write_text('{"id": "a", "title": "t", "text": ' + deep_json + "}\n")
    says = one_line(run(config, "classify", "--input", str(articles)))
    assert "deep.jsonl:1: invalid JSON: nested too deeply" in says, says
    (config.parent / "user-topics.toml").write_text("x = " + deep_json + "\n", encoding="utf-8")
    assert "user-topics.toml: (syntax): invalid TOML: nested too deeply" in one_line(
        run(config, "topics", "list")
    )
    (config.parent / "user-topics.toml").unlink()
    config.write_text(config.read_text(encoding="utf-8") + "x = " + deep_json + "\n")
    assert f"{config}: invalid TOML: nested too deeply" in one_line(run(config, "feeds", "list"))


def test_a_json_feed_nested_too_deeply_is_a_parse_error() -> None:
    from chipwatch.errors import ParseError
    from chipwatch.parse import parse_json_feed

    deep = b'{"version": "https://jsonfeed.org/version/1.1", "items": ' + b"[" * 100_000
    with pytest.raises(ParseError, match="invalid JSON: nested too deeply"):
        parse_json_feed(deep + b"]" * 100_000 + b"}", "https://wire.test/feed.json", 100, 1000)


def test_an_smtp_host_that_no_server_could_have_is_refused_at_start_up(config: Path) -> None:
    """Each was found out at every send, as a DNS error pushing the digest's back-off."""
    for host, says in (
        ("127.0.0.1:2525", "give the port as smtp.port"),
        ("smtp example.org", "is not a host name or an IP address"),
        ("http://smtp.example.org", "is not a host name or an IP address"),
        ("[::1]", "without brackets"),
        ("-oProxyCommand=x", "is not a host name"),
    ):
        line = one_line(run(config, "feeds", "list", env={"CHIPWATCH_SMTP_HOST": host}))
        assert "CHIPWATCH_SMTP_HOST: smtp.host: " in line and says in line, line
    for host in ("smtp.example.org", "127.0.0.1", "::1", "localhost"):
        ok = run(config, "feeds", "list", env={"CHIPWATCH_SMTP_HOST": host})
        assert ok.returncode == 0, (host, ok.stderr)
