"""The `chipwatch` command: builds the parts and calls them; the logic lives elsewhere."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer
import typer.exceptions

from chipwatch import __version__
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
    UsageError,
)
from chipwatch.lock import job_lock
from chipwatch.logs import configure_logging, set_chipwatch_level
from chipwatch.settings import Settings, ensure_data_dir, load_settings
from chipwatch.types import MAX_ROW_ID

if TYPE_CHECKING:  # the model is imported by the commands that classify, not at start-up
    from chipwatch.classify import FittedClassifier
    from chipwatch.progress import Advance

app = typer.Typer(
    help="chipwatch: a multilingual news watch on chip export controls.",
    no_args_is_help=True,
    add_completion=True,  # --install-completion / --show-completion (bash, zsh, fish)
    rich_markup_mode=None,  # plain help: the same on a terminal, in a pipe and in docs
    pretty_exceptions_show_locals=False,  # a bug's traceback must not print the password
)
feeds_app = typer.Typer(help="Manage the feeds the watch polls.", no_args_is_help=True)
corpus_app = typer.Typer(
    help="The reference corpus the classifier is fitted on.", no_args_is_help=True
)
topics_app = typer.Typer(help="The topics of the corpus.", no_args_is_help=True)
users_app = typer.Typer(help="Accounts of the review site.", no_args_is_help=True)
app.add_typer(feeds_app, name="feeds")
app.add_typer(corpus_app, name="corpus")
app.add_typer(topics_app, name="topics")
app.add_typer(users_app, name="users")
db_app = typer.Typer(help="Check or back up the database.", no_args_is_help=True)
app.add_typer(db_app, name="db")

T = TypeVar("T")


def _argument_help_without_type_labels() -> None:
    """Typer (pinned 0.29.1) prints arguments as `{path}` in the usage line and adds a
    `<path>` label after each argument's name; click's plain `FILE` / `[DIR]` say it
    better. The metavar given to each argument is its whole display."""
    from typer.core import TyperArgument

    def usage_name(self: TyperArgument) -> str:
        name = self.metavar or (self.name or "").upper()
        return name if self.required or name.startswith("[") else f"[{name}]"

    TyperArgument.display_type_rich = lambda self, ctx: None  # type: ignore[method-assign]
    TyperArgument._usage_display_name = usage_name  # type: ignore[method-assign]


_argument_help_without_type_labels()


class _State:
    config: Path | None = None
    data_dir: Path | None = None
    settings: Settings | None = None
    verbose: bool = False


state = _State()


def _print_version(value: bool) -> None:
    if value:  # eager: printed before any config is looked for
        typer.echo(f"chipwatch {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            metavar="FILE",
            help="Config file or folder (default: $CHIPWATCH_CONFIG, "
            "$XDG_CONFIG_HOME/chipwatch, /etc/chipwatch, the packaged defaults).",
        ),
    ] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            "--data-dir",
            metavar="DIR",
            help="Data folder: database, Maildir, cache (default $XDG_DATA_HOME/chipwatch).",
        ),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log progress.")] = False,
    log_format: Annotated[
        str,
        typer.Option("--log-format", metavar="text|json", help="Log lines as text or JSON."),
    ] = "text",
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version."
        ),
    ] = False,
) -> None:
    if log_format not in {"text", "json"}:
        raise typer.BadParameter("text or json", param_hint="--log-format")
    configure_logging(verbose=verbose, json_lines=log_format == "json")
    state.config = config
    state.data_dir = data_dir
    state.verbose = verbose


def settings() -> Settings:
    if state.settings is None:
        loaded = load_settings(state.config, state.data_dir)
        ensure_data_dir(loaded)
        state.settings = loaded
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
    except (InvalidURLError, UnsafeURLError, NotFound, UsageError) as exc:
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
    except (typer.Exit, typer.Abort, typer.exceptions.TyperException):
        raise  # a command's own exit code or usage message
    except Exception as exc:  # a bug: one line to report; the traceback with --verbose
        typer.echo(
            f"unexpected error: {type(exc).__name__}: {str(exc)[:300]}; this is a chipwatch "
            "bug: run the command again with --verbose for the traceback and report it",
            err=True,
        )
        if state.verbose:
            traceback.print_exc()
        raise typer.Exit(ExitCode.UNEXPECTED) from None


def _log_traceback() -> None:
    logging.getLogger("chipwatch").debug("traceback", exc_info=True)


# --- set-up ------------------------------------------------------------------------------


@app.command()
def init(
    folder: Annotated[
        str | None,  # not Path: Typer reads "" as ".", the working directory
        typer.Argument(
            metavar="[DIR]",
            help="Where to write (default: --config, else $XDG_CONFIG_HOME/chipwatch).",
        ),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing copy.")] = False,
) -> None:
    """Write an editable config, topics and corpus copy, and create the database."""
    from chipwatch import pipeline
    from chipwatch.settings import PACKAGED_CONFIG_DIR, copy_config, user_config_dir

    def body() -> None:
        if folder is not None and not folder.strip():
            raise UsageError("DIR: empty (leave it out for the default folder)")
        defaults = load_settings(PACKAGED_CONFIG_DIR, state.data_dir)
        target = Path(folder).expanduser() if folder is not None else _init_target()
        copy_config(defaults, target, force=force)
        written = load_settings(target, state.data_dir)
        pipeline.open_sessions(written)  # creates the database and its schema
        typer.echo(f"wrote {target / 'chipwatch.toml'}, topics.toml and corpus/ ({target})")
        typer.echo(f"database: {written.database_path}")
        if target.resolve() != user_config_dir().resolve():
            typer.echo(f"use it with --config {target} or CHIPWATCH_CONFIG={target}")

    guarded(body)


def _init_target() -> Path:
    """`chipwatch --config X init` writes to X (the folder, or the file's folder): the
    global option was ignored and the copy went to the default folder."""
    from chipwatch.settings import user_config_dir

    if state.config is None:
        return user_config_dir()
    return state.config.parent if state.config.suffix == ".toml" else state.config


# --- collect -----------------------------------------------------------------------------


@app.command()
def poll(
    all_feeds: Annotated[
        bool, typer.Option("--all", help="Poll every enabled feed, due or not.")
    ] = False,
    no_classify: Annotated[
        bool, typer.Option("--no-classify", help="Store new articles without classifying them.")
    ] = False,
    wait: Annotated[
        bool,
        typer.Option(
            "--wait",
            help="PostgreSQL: hand each feed to the workers (`chipwatch worker`) and wait "
            "for them; exit with the poll's code. SQLite: no effect.",
        ),
    ] = False,
    defer: Annotated[
        bool,
        typer.Option("--defer", help="PostgreSQL: hand the feeds to the workers, return at once."),
    ] = False,
    local: Annotated[
        bool,
        typer.Option(
            "--local",
            help="PostgreSQL: fetch in this process even when workers are running.",
        ),
    ] = False,
) -> None:
    """Fetch the due feeds, store new articles once, and classify them."""
    from chipwatch import pipeline

    def body() -> None:
        from chipwatch import metrics
        from chipwatch.progress import progress
        from chipwatch.store.url import is_sqlite

        if not is_sqlite(settings().store_url) and (
            wait or defer or (not local and _workers_running())
        ):
            _poll_through_workers(all_feeds, not no_classify, wait)
            return
        with job_lock(settings().data_dir, "poll"), progress() as track:
            report = pipeline.poll_and_classify(
                settings(), all_feeds=all_feeds, classify=not no_classify, track=track
            )
        metrics.observe_poll(report)
        metrics.write_textfile(settings())  # for cron set-ups: node_exporter's textfile
        typer.echo(report)
        if report.exit_code:  # 3: some feeds failed (the rest stored); 4: every feed failed
            raise typer.Exit(report.exit_code)

    guarded(body)


def _workers_running() -> bool:
    """On PostgreSQL with live workers, a plain `poll` defers and returns at once (issue
    16); with none, it fetches in this process as before, so no feed waits for nobody."""
    from chipwatch import pipeline
    from chipwatch.queue.client import workers_alive

    s = settings()
    return workers_alive(s, pipeline.open_sessions(s))


def _poll_through_workers(all_feeds: bool, classify: bool, wait: bool) -> None:
    from chipwatch import pipeline
    from chipwatch.queue.client import poll_through_workers

    s = settings()
    sessions = pipeline.open_sessions(s)
    pipeline.sync_config_sources(s, sessions)
    result = poll_through_workers(s, sessions, all_feeds=all_feeds, classify=classify, wait=wait)
    typer.echo(result)
    if result.exit_code:
        raise typer.Exit(result.exit_code)


@app.command()
def worker(
    concurrency: Annotated[
        int | None,
        typer.Option(
            "--concurrency",
            metavar="N",
            min=1,
            max=256,
            help="Jobs run at once (default [workers].concurrency).",
        ),
    ] = None,
) -> None:
    """Run a worker (PostgreSQL): poll, classify and digest jobs from the shared queue,
    and the schedule, on any number of hosts, until stopped."""

    def body() -> None:
        from chipwatch.queue.worker import run_worker

        set_chipwatch_level(logging.INFO)
        s = settings()
        typer.echo(
            f"chipwatch worker: {concurrency or s.workers.concurrency} jobs at once; "
            "Ctrl-C or SIGTERM stops it after the running jobs"
        )
        run_worker(s, concurrency)

    guarded(body)


@app.command("queue")
def queue_status() -> None:
    """Show the workers' queue (PostgreSQL): workers alive, jobs by task and status."""
    from datetime import UTC, datetime

    from chipwatch import pipeline

    def body() -> None:
        from chipwatch.queue.app import require_postgresql
        from chipwatch.queue.client import queue_report

        s = settings()
        require_postgresql(s, "queue")
        typer.echo(queue_report(pipeline.open_sessions(s), datetime.now(UTC)))

    guarded(body)


# --- classify ----------------------------------------------------------------------------


@app.command()
def classify(
    input_path: Annotated[
        Path | None,
        typer.Option("--input", metavar="FILE", help="JSONL of articles: id, title, text, ..."),
    ] = None,
    output: Annotated[
        str | None,  # not Path: Typer reads "" as "." (output_path refuses both)
        typer.Option(
            "--output",
            metavar="FILE",
            help="JSONL of classifications (default: stdout). Replaced once complete.",
        ),
    ] = None,
    again: Annotated[
        bool, typer.Option("--again", help="Reclassify every stored article.")
    ] = False,
) -> None:
    """Classify a JSONL file, or (without --input) the stored articles not yet classified."""
    from chipwatch import pipeline

    def body() -> None:
        target = _classify_output(input_path, output)
        s = settings()
        if input_path is None:
            from chipwatch.progress import progress

            sessions = pipeline.open_sessions(s)
            run = pipeline.reclassify_all if again else pipeline.classify_backlog
            with progress() as track:
                report = run(s, sessions, track("classify: articles"))
            typer.echo(report)
            return
        from chipwatch.classify import load_or_fit
        from chipwatch.progress import progress

        classifier = load_or_fit(
            s.corpus_dir,
            s.topics_path,
            [],
            s.cache_dir,
            user_topics=s.user_topics_path,
            relevance_threshold=s.classify.relevance_threshold,
        )
        with progress() as track:
            count = _write_classified(input_path, target, classifier, track("classify: articles"))
        if target is not None:
            typer.echo(f"classified {count} articles into {target}")

    guarded(body)


def _classify_output(input_path: Path | None, output: str | None) -> Path | None:
    """--output checked before the model loads: a file, not the input it would replace,
    and only with --input (the stored articles are classified into the database)."""
    from chipwatch.outfile import output_path

    if output is None:
        return None
    if input_path is None:
        raise UsageError("--output: only with --input (stored articles are classified in place)")
    target = output_path(output, "--output")
    if target.exists() and target.resolve() == input_path.resolve():
        raise UsageError(f"--output {output}: is the --input file, which it would replace")
    return target


def _write_classified(
    input_path: Path, target: Path | None, classifier: FittedClassifier, track: Advance
) -> int:
    """A filter, JSONL in and JSONL out: to standard output, or to `target` replaced only
    once complete (a failure leaves the user's old file as it was)."""
    import sys

    from chipwatch.classify import run_classify
    from chipwatch.outfile import write_replacing

    if target is None:
        return run_classify(input_path, sys.stdout, classifier, track)
    return write_replacing(
        target, "--output", lambda out: run_classify(input_path, out, classifier, track)
    )


@app.command("eval")
def evaluate(
    path: Annotated[
        Path, typer.Argument(metavar="FILE", help="Labelled JSONL (format of shared/eval).")
    ],
    baseline: Annotated[
        str | None,
        typer.Option("--baseline", metavar="NAME", help="Also score a baseline: keywords."),
    ] = None,
    cross_validate: Annotated[
        bool,
        typer.Option("--cross-validate/--no-cross-validate", help="Tune on folds, score held out."),
    ] = False,
    protocol: Annotated[
        str,
        typer.Option(
            "--protocol",
            metavar="standard|new-topic|no-terms",
            help="standard; new-topic (each topic in turn without its terms and labels, "
            "from its description and two corpus examples); or no-terms (every article as "
            "if in a language without term lists, such as Chinese: meaning alone).",
        ),
    ] = "standard",
    text: Annotated[
        str,
        typer.Option(
            "--text",
            metavar="full|headline|N",
            help="Inputs as given (full), the title alone (headline), or N characters.",
        ),
    ] = "full",
    by_lang: Annotated[
        bool, typer.Option("--by-lang/--no-by-lang", help="One column per language.")
    ] = True,
    seeds: Annotated[
        int,
        typer.Option(
            "--seeds",
            metavar="N",
            min=1,
            max=50,
            help="CV shuffles pooled (with --cross-validate).",
        ),
    ] = 1,
) -> None:
    """Score the classifier on a labelled file: relevance, topics, novel, per language."""

    def body() -> None:
        if seeds > 1 and not cross_validate:  # it would be ignored: one fit, one score
            raise UsageError(
                f"--seeds {seeds}: pools cross-validation shuffles; add --cross-validate"
            )
        if not path.is_file():
            raise NotFound(f"{path}: is a folder" if path.is_dir() else f"no such file: {path}")
        s = settings()
        if cross_validate:  # before the fit: a file too small for folds is known at once
            from chipwatch.classify.evaluate import check_folds, load_rows

            check_folds(path, load_rows(path), 5)
        from chipwatch.classify import get_embedder, load_corpus, load_or_fit, run_eval
        from chipwatch.classify.embed import CachedEmbedder
        from chipwatch.progress import status

        # Evaluation embeds the same texts run after run: their vectors are kept.
        inner = get_embedder("use")
        embedder = CachedEmbedder(inner, s.cache_dir / f"embeddings-{inner.name}.npz")
        with status(f"eval: fitting, then scoring {path.name}"):
            classifier = load_or_fit(
                s.corpus_dir,
                s.topics_path,
                [],
                s.cache_dir,
                embedder=embedder,
                user_topics=s.user_topics_path,
                relevance_threshold=s.classify.relevance_threshold,
            )
            report = run_eval(
                path,
                classifier,
                baseline=baseline,
                cross_validate=cross_validate,
                protocol=protocol,
                text=text,
                by_lang=by_lang,
                corpus=load_corpus(s.corpus_dir) if protocol == "new-topic" else (),
                seeds=max(seeds, 1),
            )
        typer.echo(report)

    guarded(body)


@app.command()
def label(
    article_id: Annotated[
        int,
        typer.Argument(
            metavar="ID", help="Stored article id (see the digest).", min=1, max=MAX_ROW_ID
        ),
    ],
    topics: Annotated[
        str | None,
        typer.Option("--topics", metavar="IDS", help="Comma-separated topic ids it is about."),
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
        if topics is not None and not chosen:
            # An empty shell variable must not turn into "not relevant": that judgement
            # is --not-relevant's alone.
            raise UsageError(
                "--topics: no topic id given (for an off-subject article: --not-relevant)"
            )
        s = settings()
        known = {t.id for t in load_topics(s.topics_path, s.user_topics_path)}
        unknown = sorted(set(chosen) - known)
        if unknown:
            raise typer.BadParameter(f"unknown topic ids: {', '.join(unknown)}")
        sessions = pipeline.open_sessions(settings())
        pipeline.label_article(sessions, article_id, not not_relevant, chosen)
        typer.echo(f"labelled article {article_id}: " + (", ".join(chosen) or "not relevant"))

    guarded(body)


def _topic_ids(text: str) -> tuple[str, ...]:
    """The ids of a comma-separated option, each once, in the order given."""
    return tuple(dict.fromkeys(t.strip() for t in text.split(",") if t.strip()))


# --- digest ------------------------------------------------------------------------------


@app.command()
def digest(
    preview: Annotated[
        str | None,
        typer.Option("--preview", metavar="FILE", help="Write the HTML here; mark nothing."),
    ] = None,
    send: Annotated[
        bool, typer.Option("--send/--no-send", help="Send pending digests (default on).")
    ] = True,
    recipient: Annotated[
        str | None, typer.Option("--recipient", metavar="ADDRESS", help="Only this recipient.")
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
        if retry_now and (preview is not None or not send or recipient is not None):
            # It sends every pending digest: "--no-send" or one recipient would be ignored.
            raise UsageError(
                "--retry-now sends every pending digest: not with --preview, --no-send "
                "or --recipient"
            )
        s = settings()
        if retry_now:
            with job_lock(s.data_dir, "digest"):
                result = pipeline.retry_pending(s)
            typer.echo(result)
            if result.failures:
                raise typer.Exit(ExitCode.PARTIAL if result.sent else ExitCode.ALL_FAILED)
            return
        if preview is not None:
            from chipwatch.outfile import output_path

            written = pipeline.preview_digest(s, output_path(preview, "--preview"), recipient)
            typer.echo(f"preview written to {written}")
            return
        from chipwatch import metrics

        with job_lock(s.data_dir, "digest"):
            result = pipeline.build_and_send_digests(s, send=send, only=recipient)
        metrics.write_textfile(s)
        typer.echo(result)
        if result.failures:  # cron and timers report it; the digest waits in the outbox
            raise typer.Exit(ExitCode.PARTIAL if result.sent else ExitCode.ALL_FAILED)

    guarded(body)


def _since_utc(since: str | None) -> datetime | None:
    """--since as naive UTC (what the database keeps); a date whose offset takes it past
    year 1 or 9999 is out of range, said as such (it was an OverflowError)."""
    if since is None:
        return None
    try:
        start = datetime.fromisoformat(since)
    except ValueError:
        raise ConfigError("--since", "DATE", f"not an ISO date: {since[:80]!r}") from None
    try:
        return start.astimezone(UTC).replace(tzinfo=None) if start.tzinfo else start
    except OverflowError:
        raise ConfigError("--since", "DATE", f"out of range in UTC: {since!r}") from None


@app.command()
def stories(
    since: Annotated[
        str | None,
        typer.Option("--since", metavar="DATE", help="Only stories with an article since DATE."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON array of stories.")] = False,
) -> None:
    """Export the stories: every relevant stored article in exactly one story."""
    import json

    from chipwatch import pipeline
    from chipwatch.digest.export import story_lines

    def body() -> None:
        start = _since_utc(since)
        found = pipeline.export_stories(settings(), start)
        typer.echo(
            json.dumps(found, ensure_ascii=False) if as_json else "\n".join(story_lines(found))
        )

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

    def body() -> ExitCode:
        from chipwatch import metrics
        from chipwatch.stop import StopRequest

        s = settings()
        set_chipwatch_level(logging.INFO)  # a service reports its runs; libraries stay quiet
        stop = StopRequest()
        scheduler = schedule.build_scheduler(
            s,
            poll_job=lambda: pipeline.scheduled(s, "poll", stop),
            digest_job=lambda: pipeline.scheduled(s, "digest", stop),
        )
        # For its whole life: a second `run` on this data folder exits at once (75),
        # before it binds the metrics port or polls anything.
        with job_lock(s.data_dir, "run"):
            port = metrics.serve(s)
            if port is not None:
                typer.echo(f"metrics on http://127.0.0.1:{port}/metrics")
            typer.echo(f"chipwatch running; data in {s.data_dir}; Ctrl-C or SIGTERM stops it")
            return schedule.run_forever(scheduler, stop)

    raise typer.Exit(guarded(body))  # 130 after SIGINT, 143 after SIGTERM


# --- retention, export, health ----------------------------------------------------------


@app.command()
def prune(
    older_than: Annotated[
        int | None,
        typer.Option(
            "--older-than",
            metavar="DAYS",
            help="Age limit (default [retention] days).",
            min=1,
            max=36_500,
        ),
    ] = None,
) -> None:
    """Remove old articles and what hangs on them; labels and the corpus stay."""
    from chipwatch import manage

    def body() -> None:
        s = settings()
        with job_lock(s.data_dir, "poll"):  # not while a poll stores articles
            typer.echo(manage.prune(s, older_than))

    guarded(body)


@app.command()
def export(
    csv: Annotated[bool, typer.Option("--csv", help="CSV (the one format so far).")] = False,
    output: Annotated[
        str | None,
        typer.Option(
            "--output", metavar="FILE", help="Default: standard output. Replaced once complete."
        ),
    ] = None,
    days: Annotated[
        int | None,
        typer.Option("--days", metavar="N", help="Only the last N days.", min=1, max=36_500),
    ] = None,
) -> None:
    """Write the classified articles for a spreadsheet."""
    import sys

    from chipwatch import manage
    from chipwatch.outfile import output_path, write_replacing

    def body() -> None:
        if not csv:
            raise UsageError("give the format: --csv")
        if output is None:
            manage.export_csv(settings(), sys.stdout, days)
            return
        target = output_path(output, "--output")
        s = settings()
        count = write_replacing(target, "--output", lambda out: manage.export_csv(s, out, days))
        typer.echo(f"wrote {count} articles to {target}")

    guarded(body)


@app.command()
def health() -> None:
    """Exit 0 if polls and sends are recent enough ([health] bounds), else 4."""
    from datetime import UTC, datetime

    from chipwatch import health as health_check

    def body() -> None:
        report = health_check.check(settings(), datetime.now(UTC).replace(tzinfo=None))
        typer.echo(report)
        if not report.healthy:
            raise typer.Exit(ExitCode.ALL_FAILED)

    guarded(body)


# --- feeds -------------------------------------------------------------------------------


@feeds_app.command("add")
def feeds_add(
    url: Annotated[str, typer.Argument(metavar="URL", help="A feed, or a page linking one.")],
    name: Annotated[
        str | None, typer.Option("--name", metavar="TEXT", help="Display name.")
    ] = None,
    article_text: Annotated[
        str | None,
        typer.Option(
            "--article-text",
            metavar="feed|fetch",
            help="feed: keep the feed's text; fetch: fetch the article page of items whose"
            " feed text is short. Default: fetch for news-search feeds, feed otherwise.",
        ),
    ] = None,
    full_text: Annotated[
        bool | None,
        typer.Option(
            "--full-text/--no-full-text",
            help="The older names of --article-text fetch / --article-text feed.",
        ),
    ] = None,
    language: Annotated[
        str | None,
        typer.Option("--language", metavar="CODE", help="Expected language (ISO 639-1)."),
    ] = None,
) -> None:
    """Add a feed; a feed already there keeps its settings except those given."""
    from chipwatch import manage

    def body() -> None:
        mode = article_text
        if mode is None and full_text is not None:
            mode = "fetch" if full_text else "feed"
        if mode not in (None, "feed", "fetch"):
            raise ConfigError("--article-text", "article_text", "must be feed or fetch")
        typer.echo(manage.add_feed(settings(), url, name, mode, language))

    guarded(body)


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
def feeds_remove(
    url_or_id: Annotated[str, typer.Argument(metavar="URL|ID", help="The feed's URL or id.")],
) -> None:
    """Remove a feed (its stored articles stay); a feed of the config file is disabled."""
    from chipwatch import manage

    guarded(lambda: typer.echo(manage.remove_feed(settings(), url_or_id)))


@feeds_app.command("import")
def feeds_import(
    path: Annotated[Path, typer.Argument(metavar="FILE", help="An OPML file.")],
) -> None:
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
    source: Annotated[
        str, typer.Argument(metavar="FILE|URL", help="A text file, or an http(s) URL to extract.")
    ],
    topics: Annotated[
        str, typer.Option("--topics", metavar="IDS", help="Comma-separated topic ids.")
    ],
    language: Annotated[
        str, typer.Option("--language", metavar="CODE", help="ISO 639-1 code; detected if empty.")
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
    """List the topics: config/topics.toml, then yours (user-topics.toml)."""
    from chipwatch.classify import load_topics

    def body() -> None:
        s = settings()
        for topic in load_topics(s.topics_path, s.user_topics_path):
            typer.echo(f"{topic.id}\t{topic.name}")

    guarded(body)


@topics_app.command("add")
def topics_add(
    topic_id: Annotated[str, typer.Argument(help="New lowercase-dashed id, e.g. entity-list.")],
    name: Annotated[
        str, typer.Option("--name", metavar="TEXT", help="Short name shown in the digest.")
    ],
    description: Annotated[
        str,
        typer.Option("--description", metavar="TEXT", help="One or two sentences: what belongs."),
    ],
) -> None:
    """Add a topic to your topics file; then give it examples with `corpus add --topics`."""
    from chipwatch.classify.topics import add_user_topic
    from chipwatch.settings import USER_TOPICS_FILE, writable_copy

    def body() -> None:
        s = settings()
        target = writable_copy(s).config_dir / USER_TOPICS_FILE  # never the package's
        topic = add_user_topic(s.topics_path, target, topic_id, name, description)
        typer.echo(
            f"added topic {topic.id} to {target}; add examples with "
            f"`chipwatch corpus add FILE --topics {topic.id}`"
        )

    guarded(body)


@topics_app.command("suggest")
def topics_suggest(
    days: Annotated[
        int,
        typer.Option(
            "--days", metavar="N", help="Novel articles of this many days.", min=1, max=36_500
        ),
    ] = 30,
    count: Annotated[
        int,
        typer.Option("--count", metavar="N", help="At most this many suggestions.", min=1, max=100),
    ] = 5,
) -> None:
    """Cluster recent novel articles and propose new topics (name, description, examples)."""
    from chipwatch import manage

    guarded(lambda: typer.echo(manage.suggest_topics_text(settings(), days, count)))


@topics_app.command("accept")
def topics_accept(
    number: Annotated[int, typer.Argument(help="The suggestion's number (topics suggest).")],
    topic_id: Annotated[
        str | None,
        typer.Option("--id", metavar="ID", help="Id for the topic (default: the suggested one)."),
    ] = None,
) -> None:
    """Add a suggested topic with its example articles as corpus documents."""
    from chipwatch import manage

    def body() -> None:
        if topic_id is not None and not topic_id.strip():  # an empty shell variable
            raise UsageError("--id: empty (leave it out to take the suggested id)")
        typer.echo(manage.accept_suggestion(settings(), number, topic_id))

    guarded(body)


# --- review site -------------------------------------------------------------------------


@app.command()
def serve(
    host: Annotated[
        str | None,
        typer.Option("--host", metavar="HOST", help="Listen address (default [web].host)."),
    ] = None,
    port: Annotated[
        int | None,
        typer.Option("--port", metavar="PORT", help="TCP port (default [web].port; 0: any free)."),
    ] = None,
) -> None:
    """Serve the review site: stories, articles, relabelling, topics, sources, outbox."""
    from chipwatch.web.serve import serve as run_server

    guarded(lambda: run_server(settings(), host, port))


@users_app.command("add")
def users_add(
    name: Annotated[str, typer.Argument(help="Login name.")],
    email: Annotated[
        str,
        typer.Option(
            "--email", metavar="ADDRESS", help="Address: the same as a digest recipient's."
        ),
    ] = "",
) -> None:
    """Add a user; asks for the password (or reads one line from standard input)."""
    from chipwatch.web.users import add_account, read_password

    guarded(lambda: typer.echo(add_account(settings(), name, read_password(), email)))


# --- db ----------------------------------------------------------------------------------


@db_app.command("check")
def db_check() -> None:
    """Report the database's integrity and schema revision; changes nothing (exit 5 if
    damaged or missing)."""
    from chipwatch.store import maintenance

    def body() -> None:
        # Not settings(): that makes the data folder, and a check creates nothing.
        s = state.settings or load_settings(state.config, state.data_dir)
        report = maintenance.check(s.store_url)
        typer.echo(report)
        if not report.ok:
            raise typer.Exit(ExitCode.STORAGE)

    guarded(body)


@db_app.command("backup")
def db_backup(
    path: Annotated[
        str, typer.Argument(metavar="PATH", help="The copy to write (must not exist yet).")
    ],
) -> None:
    """Write a consistent copy of the SQLite database (safe while a poll runs)."""
    from chipwatch.outfile import output_path
    from chipwatch.store import maintenance

    def body() -> None:
        # The text as typed: a trailing / names a folder, and Path would drop it.
        target = output_path(path, "db backup")
        if target.exists():
            raise typer.BadParameter(f"{target} exists; chipwatch never overwrites a file")
        try:
            written = maintenance.backup(settings().store_url, target)
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
    """Run poll, classify and digest once on loopback sample feeds, into a Maildir, in
    --data-dir (default ./demo-data): an empty folder or an earlier demo's, reset each run;
    database_url is not used."""
    from chipwatch.demo.run import run_demo

    def body() -> None:
        data_dir = state.data_dir or Path("demo-data")
        code = run_demo(state.config, data_dir)
        if code:
            raise typer.Exit(code)

    guarded(body)


def main() -> None:
    app()
