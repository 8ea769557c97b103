"""The `chipwatch` command: builds the parts and calls them; the logic lives elsewhere."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer

from chipwatch.errors import (
    ChipwatchError,
    ClassifierError,
    ConfigError,
    DeliveryError,
    ExitCode,
    FetchError,
    InvalidURLError,
    LockBusy,
    NotFound,
    ParseError,
    StorageError,
    UnsafeURLError,
)
from chipwatch.lock import job_lock
from chipwatch.settings import Settings, load_settings

app = typer.Typer(
    help="chipwatch: a multilingual news watch on chip export controls.",
    no_args_is_help=True,
    add_completion=False,
)
feeds_app = typer.Typer(help="Manage the feeds the watch polls.", no_args_is_help=True)
corpus_app = typer.Typer(
    help="The reference corpus the classifier is fitted on.", no_args_is_help=True
)
topics_app = typer.Typer(help="The topics of the corpus.", no_args_is_help=True)
app.add_typer(feeds_app, name="feeds")
app.add_typer(corpus_app, name="corpus")
app.add_typer(topics_app, name="topics")
db_app = typer.Typer(help="Check or back up the database.", no_args_is_help=True)
app.add_typer(db_app, name="db")

T = TypeVar("T")


class _State:
    config: Path | None = None
    data_dir: Path | None = None
    settings: Settings | None = None


state = _State()


@app.callback()
def main_options(
    config: Annotated[
        Path | None, typer.Option("--config", help="Config file (default config/chipwatch.toml).")
    ] = None,
    data_dir: Annotated[
        Path | None, typer.Option("--data-dir", help="Data directory (database, Maildir, cache).")
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log progress.")] = False,
) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    state.config = config
    state.data_dir = data_dir


def settings() -> Settings:
    if state.settings is None:
        state.settings = load_settings(state.config, state.data_dir)
    return state.settings


def guarded(action: Callable[[], T]) -> T:
    """Run a command body, turning errors into one line and an exit code (the README's
    table, `chipwatch.errors.ExitCode`); a traceback only with --verbose."""
    try:
        return action()
    except ConfigError as exc:
        typer.echo(f"configuration error: {exc}", err=True)
        raise typer.Exit(ExitCode.CONFIG) from None
    except StorageError as exc:
        typer.echo(f"storage error: {exc}", err=True)  # names the file, and a hint
        _log_traceback()
        raise typer.Exit(ExitCode.STORAGE) from None
    except LockBusy as exc:
        typer.echo(f"skipped: {exc}", err=True)
        raise typer.Exit(ExitCode.LOCKED) from None  # EX_TEMPFAIL: cron may try again later
    except (InvalidURLError, UnsafeURLError, NotFound) as exc:
        typer.echo(f"error: {exc}", err=True)  # a URL or a name the user gave: usage
        raise typer.Exit(ExitCode.CONFIG) from None
    except (FetchError, ParseError, DeliveryError) as exc:
        typer.echo(f"error: {exc}", err=True)  # the one feed/page/send of the command failed
        raise typer.Exit(ExitCode.ALL_FAILED) from None
    except ClassifierError as exc:
        typer.echo(f"classifier error: {exc}", err=True)  # the corpus or topics: configuration
        raise typer.Exit(ExitCode.CONFIG) from None
    except ChipwatchError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(ExitCode.UNEXPECTED) from None
    except ImportError as exc:
        typer.echo(
            f"unexpected error: a dependency does not import ({exc}); reinstall chipwatch "
            "(pip install chipwatch) and report it if it persists",
            err=True,
        )
        _log_traceback()
        raise typer.Exit(ExitCode.UNEXPECTED) from None


def _log_traceback() -> None:
    logging.getLogger("chipwatch").debug("traceback", exc_info=True)


# --- collect -----------------------------------------------------------------------------


@app.command()
def poll(
    all_feeds: Annotated[
        bool, typer.Option("--all", help="Poll every enabled feed, due or not.")
    ] = False,
    no_classify: Annotated[
        bool, typer.Option("--no-classify", help="Store new articles without classifying them.")
    ] = False,
) -> None:
    """Fetch the due feeds, store new articles once, and classify them."""
    from chipwatch import pipeline

    def body() -> None:
        with job_lock(settings().data_dir, "poll"):
            report = pipeline.poll_and_classify(
                settings(), all_feeds=all_feeds, classify=not no_classify
            )
        typer.echo(report)
        if report.exit_code:  # 3: some feeds failed (the rest stored); 4: every feed failed
            raise typer.Exit(report.exit_code)

    guarded(body)


# --- classify ----------------------------------------------------------------------------


@app.command()
def classify(
    input_path: Annotated[
        Path | None, typer.Option("--input", help="JSONL of articles: id, title, text, ...")
    ] = None,
    output_path: Annotated[
        Path | None, typer.Option("--output", help="JSONL of classifications.")
    ] = None,
    again: Annotated[
        bool, typer.Option("--again", help="Reclassify every stored article.")
    ] = False,
) -> None:
    """Classify a JSONL file, or (without --input) the stored articles not yet classified."""
    from chipwatch import pipeline

    def body() -> None:
        s = settings()
        if input_path is None:
            sessions = pipeline.open_sessions(s)
            run = pipeline.reclassify_all if again else pipeline.classify_backlog
            typer.echo(run(s, sessions))
            return
        if output_path is None:
            raise typer.BadParameter("--output is required with --input")
        from chipwatch.classify import load_or_fit, run_classify

        classifier = load_or_fit(s.corpus_dir, s.topics_path, [], s.cache_dir)
        count = run_classify(input_path, output_path, classifier)
        typer.echo(f"classified {count} articles into {output_path}")

    guarded(body)


@app.command("eval")
def evaluate(
    path: Annotated[Path, typer.Argument(help="Labelled JSONL (format of shared/eval).")],
    baseline: Annotated[
        str | None, typer.Option("--baseline", help="Also score a baseline: keywords.")
    ] = None,
    cross_validate: Annotated[
        bool,
        typer.Option("--cross-validate/--no-cross-validate", help="Tune on folds, score held out."),
    ] = False,
) -> None:
    """Score the classifier on a labelled file: relevance, topics, novel, per language."""

    def body() -> None:
        if not path.is_file():
            raise NotFound(f"no such file: {path}")
        s = settings()
        from chipwatch.classify import load_or_fit, run_eval

        classifier = load_or_fit(s.corpus_dir, s.topics_path, [], s.cache_dir)
        typer.echo(run_eval(path, classifier, baseline=baseline, cross_validate=cross_validate))

    guarded(body)


@app.command()
def label(
    article_id: Annotated[int, typer.Argument(help="Stored article id (see the digest).")],
    topics: Annotated[
        str | None, typer.Option("--topics", help="Comma-separated topic ids it is about.")
    ] = None,
    not_relevant: Annotated[
        bool, typer.Option("--not-relevant", help="Mark the article as off-subject.")
    ] = False,
) -> None:
    """Record a judgement on a stored article; it counts at the classifier's next fit."""
    from chipwatch import pipeline
    from chipwatch.classify import load_topics

    def body() -> None:
        if not_relevant == (topics is not None):
            raise typer.BadParameter("give either --topics a,b or --not-relevant")
        chosen = _topic_ids(topics or "")
        known = {t.id for t in load_topics(settings().topics_path)}
        unknown = sorted(set(chosen) - known)
        if unknown:
            raise typer.BadParameter(f"unknown topic ids: {', '.join(unknown)}")
        sessions = pipeline.open_sessions(settings())
        pipeline.label_article(sessions, article_id, not not_relevant, chosen)
        typer.echo(f"labelled article {article_id}: " + (", ".join(chosen) or "not relevant"))

    guarded(body)


def _topic_ids(text: str) -> tuple[str, ...]:
    return tuple(t.strip() for t in text.split(",") if t.strip())


# --- digest ------------------------------------------------------------------------------


@app.command()
def digest(
    preview: Annotated[
        Path | None, typer.Option("--preview", help="Write the HTML here; mark nothing.")
    ] = None,
    send: Annotated[
        bool, typer.Option("--send/--no-send", help="Send pending digests (default on).")
    ] = True,
    recipient: Annotated[
        str | None, typer.Option("--recipient", help="Only this recipient.")
    ] = None,
    retry_now: Annotated[
        bool,
        typer.Option(
            "--retry-now", help="Send the pending digests now, backoff or not; build none."
        ),
    ] = False,
) -> None:
    """Build the digest of new relevant articles and deliver it (SMTP or Maildir)."""
    from chipwatch import pipeline

    def body() -> None:
        s = settings()
        if retry_now:
            with job_lock(s.data_dir, "digest"):
                result = pipeline.retry_pending(s)
            typer.echo(result)
            if result.failures:
                raise typer.Exit(ExitCode.PARTIAL if result.sent else ExitCode.ALL_FAILED)
            return
        if preview is not None:
            written = pipeline.preview_digest(s, preview, recipient)
            typer.echo(f"preview written to {written}")
            return
        with job_lock(s.data_dir, "digest"):
            result = pipeline.build_and_send_digests(s, send=send, only=recipient)
        typer.echo(result)
        if result.failures:  # cron and timers report it; the digest waits in the outbox
            raise typer.Exit(ExitCode.PARTIAL if result.sent else ExitCode.ALL_FAILED)

    guarded(body)


@app.command()
def outbox() -> None:
    """List the stored digests: pending, sent, failed, with their attempts."""
    from chipwatch import manage

    guarded(lambda: typer.echo(manage.outbox_table(settings())))


# --- schedule ----------------------------------------------------------------------------


@app.command()
def run() -> None:
    """Run the watch: poll on an interval, digests at their cron times, until stopped."""
    from chipwatch import pipeline, schedule

    def body() -> None:
        s = settings()
        logging.getLogger().setLevel(logging.INFO)  # a long-running service reports its runs
        scheduler = schedule.build_scheduler(
            s,
            poll_job=lambda: pipeline.scheduled(s, "poll"),
            digest_job=lambda: pipeline.scheduled(s, "digest"),
        )
        typer.echo(f"chipwatch running; data in {s.data_dir}; Ctrl-C or SIGTERM stops it")
        schedule.run_forever(scheduler)

    guarded(body)


# --- feeds -------------------------------------------------------------------------------


@feeds_app.command("add")
def feeds_add(
    url: str,
    name: Annotated[str, typer.Option("--name", help="Display name.")] = "",
    full_text: Annotated[
        bool, typer.Option("--full-text", help="Fetch each entry's page for its full text.")
    ] = False,
) -> None:
    """Add a feed."""
    from chipwatch import manage

    guarded(lambda: typer.echo(manage.add_feed(settings(), url, name, full_text)))


@feeds_app.command("list")
def feeds_list() -> None:
    """List the feeds."""
    from chipwatch import manage

    guarded(lambda: typer.echo(manage.feeds_table(settings(), health=False)))


@feeds_app.command("status")
def feeds_status() -> None:
    """Show each feed's health: errors, last success, next check, disabled."""
    from chipwatch import manage

    guarded(lambda: typer.echo(manage.feeds_table(settings(), health=True)))


@feeds_app.command("remove")
def feeds_remove(url_or_id: str) -> None:
    """Remove a feed by URL or id (its stored articles stay)."""
    from chipwatch import manage

    guarded(lambda: typer.echo(manage.remove_feed(settings(), url_or_id)))


@feeds_app.command("import")
def feeds_import(path: Path) -> None:
    """Import feeds from an OPML file."""
    from chipwatch import manage

    guarded(lambda: typer.echo(manage.import_opml(settings(), path)))


@feeds_app.command("export")
def feeds_export() -> None:
    """Write the feeds as OPML to standard output."""
    from chipwatch import manage

    guarded(lambda: typer.echo(manage.export_opml(settings()), nl=False))


# --- corpus and topics -------------------------------------------------------------------


@corpus_app.command("list")
def corpus_list() -> None:
    """List the corpus documents and their topics."""
    from chipwatch.classify import load_corpus

    def body() -> None:
        for doc in load_corpus(settings().corpus_dir):
            typer.echo(f"{doc.id}\t{doc.language}\t{','.join(doc.topics)}\t{doc.title[:70]}")

    guarded(body)


@corpus_app.command("add")
def corpus_add(
    source: Annotated[str, typer.Argument(help="A text file, or an http(s) URL to extract.")],
    topics: Annotated[str, typer.Option("--topics", help="Comma-separated topic ids.")],
    language: Annotated[
        str, typer.Option("--language", help="ISO 639-1 code; detected if empty.")
    ] = "",
) -> None:
    """Add a document to the corpus; the classifier refits at its next use."""
    from chipwatch import manage

    guarded(
        lambda: typer.echo(
            manage.add_corpus_document(settings(), source, _topic_ids(topics), language)
        )
    )


@topics_app.command("list")
def topics_list() -> None:
    """List the topics of config/topics.toml."""
    from chipwatch.classify import load_topics

    def body() -> None:
        for topic in load_topics(settings().topics_path):
            typer.echo(f"{topic.id}\t{topic.name}")

    guarded(body)


@topics_app.command("suggest")
def topics_suggest(
    days: Annotated[int, typer.Option("--days", help="Novel articles of this many days.")] = 30,
    count: Annotated[int, typer.Option("--count", help="At most this many suggestions.")] = 5,
) -> None:
    """Cluster recent novel articles and propose candidate topics for topics.toml."""
    from chipwatch import manage

    guarded(lambda: typer.echo(manage.suggest_topics_text(settings(), days, count)))


# --- db ----------------------------------------------------------------------------------


@db_app.command("check")
def db_check() -> None:
    """Report the database's integrity and schema revision; changes nothing (exit 5 if
    damaged)."""
    from chipwatch.store import maintenance

    def body() -> None:
        report = maintenance.check(settings().store_url)
        typer.echo(report)
        if not report.ok:
            raise typer.Exit(ExitCode.STORAGE)

    guarded(body)


@db_app.command("backup")
def db_backup(
    path: Annotated[Path, typer.Argument(help="The copy to write (must not exist yet).")],
) -> None:
    """Write a consistent copy of the SQLite database (safe while a poll runs)."""
    from chipwatch.store import maintenance

    def body() -> None:
        if path.exists():
            raise typer.BadParameter(f"{path} exists; chipwatch never overwrites a file")
        if not path.parent.is_dir():
            raise typer.BadParameter(f"no such folder: {path.parent}")
        try:
            written = maintenance.backup(settings().store_url, path)
        except ValueError:
            typer.echo(
                "error: db backup copies SQLite files; on PostgreSQL use pg_dump "
                "(pg_dump -Fc DBNAME > chipwatch.dump), see the README",
                err=True,
            )
            raise typer.Exit(ExitCode.CONFIG) from None
        typer.echo(f"backed up to {written}")

    guarded(body)


# --- demo --------------------------------------------------------------------------------


@app.command()
def demo() -> None:
    """Run poll, classify and digest once on loopback sample feeds, into a Maildir."""
    from chipwatch.demo.run import run_demo

    def body() -> None:
        data_dir = state.data_dir or Path("demo-data")
        code = run_demo(state.config, data_dir)
        if code:
            raise typer.Exit(code)

    guarded(body)


def main() -> None:
    app()
