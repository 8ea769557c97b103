"""What a reader of the command's output sees: --version, help without placeholders,
one-line logs (text or JSON), quiet libraries, tables within 100 columns, small wording."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from chipwatch.classify import HashingEmbedder, suggest_topics
from chipwatch.manage import format_table
from chipwatch.types import ClassifyInput

REPO = Path(__file__).resolve().parents[1]


def chipwatch(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "chipwatch", *args],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "COLUMNS": "100", **(env or {})},
        timeout=300,
    )


def test_version_reads_no_config(tmp_path: Path) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text("[poll\n", encoding="utf-8")
    result = chipwatch("--version", env={"CHIPWATCH_CONFIG": str(broken)})
    assert result.returncode == 0, result.stderr
    assert result.stdout == "chipwatch 0.1.0\n"


COMMANDS = [
    [],
    ["init"],
    ["poll"],
    ["classify"],
    ["eval"],
    ["label"],
    ["digest"],
    ["run"],
    ["prune"],
    ["export"],
    ["health"],
    ["feeds", "add"],
    ["feeds", "remove"],
    ["feeds", "import"],
    ["corpus", "add"],
    ["topics", "suggest"],
    ["topics", "add"],
    ["topics", "accept"],
    ["stories"],
    ["serve"],
    ["users", "add"],
    ["db", "check"],
    ["db", "backup"],
]


def test_help_has_no_type_placeholders_and_fits_100_columns() -> None:
    for command in COMMANDS:
        result = chipwatch(*command, "--help")
        assert result.returncode == 0, (command, result.stderr)
        text = result.stdout
        for placeholder in ("<bool>", "<path>", "<str>", "<int>", "{"):
            assert placeholder not in text, (command, placeholder, text)
        assert max(len(line) for line in text.splitlines()) <= 100, command


def test_shell_completion_completes_commands() -> None:
    script = str(Path(sys.executable).with_name("chipwatch"))
    shown = subprocess.run(
        # The shell named: detecting it from the parent processes fails where the suite
        # runs detached from any shell (a scheduler, `setsid`).
        [script, "--show-completion", "bash"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert shown.returncode == 0 and "_CHIPWATCH_COMPLETE" in shown.stdout
    completion = {
        "_CHIPWATCH_COMPLETE": "complete_bash",
        "COMP_WORDS": "chipwatch fee",
        "COMP_CWORD": "1",
    }
    result = subprocess.run(
        [script], capture_output=True, text=True, check=False, env={**os.environ, **completion}
    )
    assert result.stdout.split() == ["feeds"]


def test_logs_are_quiet_by_default_and_one_json_object_per_line(tmp_path: Path) -> None:
    config = tmp_path / "chipwatch.toml"
    config.write_text("", encoding="utf-8")
    # A fresh database: Alembic runs the migrations, and says so at INFO.
    args = ("--config", str(config), "--data-dir", str(tmp_path / "data"))
    quiet = chipwatch(*args, "feeds", "list")
    assert quiet.returncode == 0 and quiet.stderr == ""
    verbose = chipwatch(*args, "-v", "--log-format", "json", "feeds", "list")
    assert "alembic" not in verbose.stderr.lower()

    script = (
        "import logging\n"
        "from chipwatch.logs import configure_logging\n"
        "configure_logging(verbose=True, json_lines=JSON)\n"
        "log = logging.getLogger('chipwatch.test')\n"
        "log.info('two\\nlines')\n"
        "try:\n    1 / 0\nexcept ZeroDivisionError:\n    log.exception('failed')\n"
        "logging.getLogger('apscheduler.scheduler').info('Added job')\n"
    )
    for json_lines in (True, False):
        result = subprocess.run(
            [sys.executable, "-c", script.replace("JSON", str(json_lines))],
            capture_output=True,
            text=True,
            check=True,
        )
        lines = result.stderr.splitlines()
        assert len(lines) == 2, lines  # two records, two lines; apscheduler's INFO hidden
        if json_lines:
            records = [json.loads(line) for line in lines]
            assert records[0]["message"] == "two\nlines" and records[0]["level"] == "info"
            assert "ZeroDivisionError" in records[1]["exception"]
        else:
            assert lines[0].endswith("chipwatch.test: two\\nlines")
            assert "ZeroDivisionError" in lines[1]


def test_tables_are_cut_to_100_columns() -> None:
    rows = [("id", "state", "name / url"), ("1", "ok", "x" * 300)]
    table = format_table(rows)
    assert max(len(line) for line in table.splitlines()) == 100
    assert table.splitlines()[1].endswith("…")


def test_topic_suggestions_are_not_named_after_function_words() -> None:
    texts = [
        "ASML says it will ship more lithography tools for Chinese fabs this year.",
        "ASML expects more orders for its older lithography machines from China.",
        "For ASML, more Chinese demand for lithography offsets the Dutch licence rules.",
        "Les ventes d'ASML pour la Chine sont plus fortes que prévu dans la lithographie.",
    ]
    novel = [ClassifyInput(id=str(i), title=t, text=t) for i, t in enumerate(texts)]
    (suggestion,) = suggest_topics(novel, 1, embedder=HashingEmbedder())
    assert suggestion.label_terms
    stop = {"for", "more", "the", "its", "pour", "les", "plus", "dans", "que"}
    assert not {word for term in suggestion.label_terms for word in term.split()} & stop


def test_corpus_add_writes_into_the_users_copy_never_the_package(tmp_path: Path) -> None:
    """Without --config the packaged defaults are read; `corpus add` copies them to
    $XDG_CONFIG_HOME/chipwatch first and writes there. A bad --topics lists the ids."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHIPWATCH_") or "CACHE" in k}
    env |= {"XDG_CONFIG_HOME": str(tmp_path / "xdg"), "XDG_DATA_HOME": str(tmp_path / "data")}
    packaged = REPO / "config" / "corpus" / "corpus.toml"
    before = packaged.read_bytes()
    memo = tmp_path / "memo.txt"
    memo.write_text(
        "Seoul adds wafer-etching tools to its strategic export list.\n\nKorea's trade "
        "ministry will require licences for shipments of etching tools to China.",
        encoding="utf-8",
    )

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "chipwatch", *args],
            capture_output=True,
            text=True,
            check=False,
            env=env,
        )

    bad = run("corpus", "add", str(memo), "--topics", "made-up")
    assert bad.returncode == 2
    assert "unknown topic ids: made-up; valid ids: ai-chip-licensing" in bad.stderr
    assert "corpus.toml" not in bad.stderr  # not blamed on the corpus file
    added = run("corpus", "add", str(memo), "--topics", "china-response", "--language", "en")
    assert added.returncode == 0, added.stderr
    users = tmp_path / "xdg" / "chipwatch" / "corpus"
    assert str(users) in added.stdout
    assert "china-response" in (users / "corpus.toml").read_text(encoding="utf-8")
    assert packaged.read_bytes() == before  # the package (here: the checkout) untouched
    listing = run("corpus", "list")  # later commands find the user's copy
    assert len(listing.stdout.strip().splitlines()) == 6


def test_an_unforeseen_error_is_one_line_to_report_and_exit_1(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A bug in a command body (here a ZeroDivisionError) is one line saying what to
    report, exit 1 (README: exit codes), not Typer's page-long traceback; a command's own
    exit code passes through untouched."""
    import typer

    from chipwatch.cli import guarded

    with pytest.raises(typer.Exit) as stopped:
        guarded(lambda: 1 / 0)
    assert stopped.value.exit_code == 1
    said = capsys.readouterr().err
    assert said.startswith("unexpected error: ZeroDivisionError: division by zero; ")
    assert "--verbose" in said and len(said.splitlines()) == 1

    def own_code() -> None:
        raise typer.Exit(75)

    with pytest.raises(typer.Exit) as passed:
        guarded(own_code)
    assert passed.value.exit_code == 75 and capsys.readouterr().err == ""
