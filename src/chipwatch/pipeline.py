"""The order of the stages: poll -> classify -> digest. Each step is one call per stage.

The CLI, the scheduler and the demo all go through these functions, so a one-shot
`chipwatch poll` from cron and the in-process scheduler do exactly the same work.
The stages reach the database only through the repositories in `chipwatch.store`;
the transactions they run in are opened here (`sessions()` reads, `sessions.begin()`
commits on success).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session, sessionmaker

from chipwatch.errors import ConfigError, ExitCode, StorageError
from chipwatch.settings import Settings
from chipwatch.store import classifications, labels
from chipwatch.store.db import open_database

if TYPE_CHECKING:  # the classifier and the digest load numpy & co.: imported when used
    from chipwatch.articles_fetch import ArticleStats
    from chipwatch.classify import FittedClassifier
    from chipwatch.collect import PollReport
    from chipwatch.digest.stories import Embedder
    from chipwatch.settings import Recipient
    from chipwatch.stop import StopRequest
    from chipwatch.types import ClassifyInput, Topic

log = logging.getLogger(__name__)

CLASSIFY_BATCH = 256


@dataclass(frozen=True)
class ClassifyReport:
    classified: int
    relevant: int
    novel: int

    def __str__(self) -> str:
        return f"classified {self.classified}: {self.relevant} relevant, {self.novel} novel"


def open_sessions(settings: Settings, *, pre_ping: bool = True) -> sessionmaker[Session]:
    """The configured database, its schema brought to the newest revision."""
    return open_database(settings.store_url, pre_ping=pre_ping).sessions


def load_classifier(
    settings: Settings, sessions: sessionmaker[Session]
) -> tuple[FittedClassifier, str]:
    """The classifier fitted on the corpus, the topics and the user's labels (cached), and
    the key of what it was fitted on (stored with each classification). On PostgreSQL the
    model is the one stored in the database under that key, so every worker on every host
    classifies with the same one (the first to need it fits and stores it)."""
    from chipwatch.classify import ClassifierParams, load_or_fit
    from chipwatch.classify.cache import fit_key
    from chipwatch.store.url import is_sqlite

    with sessions() as session:
        stored = labels.stored_labels(session)
    key = fit_key(
        settings.corpus_dir,
        settings.topics_path,
        stored,
        ClassifierParams(),
        settings.user_topics_path,
    )
    threshold = settings.classify.relevance_threshold
    if not is_sqlite(settings.store_url):
        shared = _shared_classifier(settings, sessions, key, stored)
        return shared.with_params(replace(shared.params, relevance_threshold=threshold)), key
    model = load_or_fit(
        settings.corpus_dir,
        settings.topics_path,
        stored,
        settings.cache_dir,
        user_topics=settings.user_topics_path,
        relevance_threshold=threshold,
    )
    return model, key


def _shared_classifier(
    settings: Settings, sessions: sessionmaker[Session], key: str, stored: Sequence[object]
) -> FittedClassifier:
    import pickle

    from chipwatch.classify import FittedClassifier, load_or_fit
    from chipwatch.clock import utcnow
    from chipwatch.store import fitted

    held = (settings.store_url, key)  # another database may not hold this model yet
    cached = _SHARED_MODELS.get(held)
    if cached is not None:
        return cached
    with sessions() as session:
        data = fitted.stored_model(session, key)
    model = pickle.loads(data) if data is not None else None  # our own rows, by their key
    if not isinstance(model, FittedClassifier):
        model = load_or_fit(
            settings.corpus_dir,
            settings.topics_path,
            stored,  # type: ignore[arg-type]
            settings.cache_dir,
            user_topics=settings.user_topics_path,
            warm=False,
        )
        with sessions.begin() as session:
            fitted.store_model(session, key, pickle.dumps(model), utcnow())
        with sessions() as session:  # the stored one: another worker's, if it came first
            model = pickle.loads(fitted.stored_model(session, key) or pickle.dumps(model))
    model.warm_up()
    _SHARED_MODELS.clear()
    _SHARED_MODELS[held] = model
    return model


# per process: the stored model by (database, fit key)
_SHARED_MODELS: dict[tuple[str, str], FittedClassifier] = {}


def classify_backlog(
    settings: Settings,
    sessions: sessionmaker[Session],
    on_batch: Callable[[int, int], None] | None = None,
) -> ClassifyReport:
    """Classify every stored article that has no classification yet, a batch at a time
    (a backlog left by `poll --no-classify` is never held in memory whole).
    `on_batch(done, total)` follows the progress."""
    from chipwatch.store.stats import count_unclassified

    total = 0
    if on_batch is not None:
        with sessions() as session:
            total = count_unclassified(session)
    classifier: FittedClassifier | None = None
    key = ""
    classified = relevant = novel = 0
    while batch := _unclassified(sessions):
        if classifier is None:
            classifier, key = load_classifier(settings, sessions)
        results = classifier.classify(batch)
        with sessions.begin() as session:
            classifications.add_classifications(session, results, key)
        classified += len(batch)
        if on_batch is not None:
            on_batch(classified, max(total, classified))
        relevant += sum(r.relevant for r in results)
        novel += sum(r.novel for r in results)
    return ClassifyReport(classified, relevant, novel)


def _unclassified(sessions: sessionmaker[Session]) -> list[ClassifyInput]:
    with sessions() as session:
        return classifications.unclassified(session, CLASSIFY_BATCH)


def reclassify_all(
    settings: Settings,
    sessions: sessionmaker[Session],
    on_batch: Callable[[int, int], None] | None = None,
) -> ClassifyReport:
    """Drop every stored classification and classify again (after a corpus or label change)."""
    with sessions.begin() as session:
        classifications.delete_all(session)
    return classify_backlog(settings, sessions, on_batch)


def label_article(
    sessions: sessionmaker[Session], article_id: int, relevant: bool, topics: Sequence[str]
) -> None:
    from chipwatch.store.labels import set_label

    with sessions.begin() as session:
        set_label(session, article_id, relevant, topics, datetime.now(UTC).replace(tzinfo=None))


# --- poll --------------------------------------------------------------------------------


@dataclass(frozen=True)
class PollSummary:
    """The collector's report (one FeedReport per feed, its FeedError included) and the
    classification that followed; no copy of either."""

    report: PollReport
    classified: ClassifyReport | None

    @property
    def exit_code(self) -> ExitCode:
        """0 all feeds fine; 3 some failed, the rest stored; 4 every feed failed."""
        if self.report.all_failed:
            return ExitCode.ALL_FAILED
        return ExitCode.PARTIAL if self.report.feeds_failed else ExitCode.OK

    @property
    def new_articles(self) -> int:
        return self.report.new_articles

    @property
    def pages(self) -> str:
        """What the article stage did (pages fetched, walls, deferred), or ""."""
        return _pages_line(self.report.articles)

    backfill: int = 0  # of the new articles: first-poll history, stored but never mailed

    @property
    def fetch_seconds(self) -> tuple[float, ...]:
        """Per feed polled, for the metrics."""
        return tuple(f.seconds for f in self.report.feeds)

    def __str__(self) -> str:
        r = self.report
        lines = [
            f"polled {r.feeds_polled} feeds in {r.seconds:.1f}s: {r.new_articles} new articles, "
            f"{r.feeds_not_modified} unchanged (304), {r.feeds_failed} failed"
        ]
        if self.pages:
            lines.append(self.pages)
        if self.backfill:
            lines.append(
                f"{self.backfill} of them older than the first-poll backfill window: "
                "stored and classified, not mailed"
            )
        if r.stopped:
            lines.append(f"stopped: {r.stopped} feeds cut short, left for the next poll")
        if self.classified is not None:
            lines.append(str(self.classified))
        lines += [
            f"  error: {f.url}: [{f.error.kind}] {f.error.message}" for f in r.feeds if f.error
        ]
        return "\n".join(lines)


def sync_config_sources(settings: Settings, sessions: sessionmaker[Session]) -> None:
    """The sources listed in the config file join those added with `feeds add` (another
    URL of a stored feed is skipped, not stored twice; a disabled one stays disabled)."""
    from chipwatch.store.dialect import serialise_sync
    from chipwatch.store.source_admin import apply_tags, without_duplicates
    from chipwatch.store.sources import sync_sources

    with sessions.begin() as session:
        serialise_sync(session)  # workers starting together on PostgreSQL
        kept, _ = without_duplicates(session, settings.sources)
        sync_sources(session, kept)
        apply_tags(session, kept)


def poll_and_classify(
    settings: Settings,
    *,
    all_feeds: bool,
    classify: bool,
    track: Callable[[str], Callable[[int, int], None]] | None = None,
    stop: StopRequest | None = None,
) -> PollSummary:
    """Poll, flag first-poll backfill, classify. `track(step)` gives each step's progress
    callback (chipwatch.progress). After a `stop`, what was stored is flagged but not
    classified: the next poll classifies the whole backlog anyway."""
    from chipwatch.clock import utcnow
    from chipwatch.collect import poll_sync
    from chipwatch.store.backfill import mark_backfill, never_polled

    sessions = open_sessions(settings)
    sync_config_sources(settings, sessions)
    with sessions() as session:
        first_time = never_polled(session)
    started = utcnow()
    on_feed = None
    if track is not None:
        advance, done = track("poll: feeds"), [0]

        def on_feed(_report: object, total: int) -> None:
            done[0] += 1
            advance(done[0], total)

    report = poll_sync(settings, sessions, all_feeds=all_feeds, on_feed=on_feed, stop=stop)
    with sessions.begin() as session:
        backfill = mark_backfill(
            session, first_time, started, settings.poll.first_poll_backfill_hours
        )
    if stop is not None and stop.is_set():
        return PollSummary(report, None, backfill)
    on_batch = track("classify: articles") if track is not None else None
    classified = classify_backlog(settings, sessions, on_batch) if classify else None
    return PollSummary(report, classified, backfill)


def _pages_line(stats: ArticleStats) -> str:
    if not (stats.fetched or stats.from_cache or stats.deferred or stats.unresolved):
        return ""
    return (
        f"article pages: {stats.fetched} fetched, {stats.from_cache} from the cache; "
        f"{stats.full_text} full texts, {stats.kept_feed_text} kept the feed's text "
        f"(walls, errors, short pages); {stats.deferred} left for the next cycle (budget); "
        f"{stats.unresolved} news-search links unresolved"
    )


# --- digest ------------------------------------------------------------------------------


def digest_topics(settings: Settings) -> tuple[Topic, ...]:
    """The topics the digest is grouped by (the shipped ones, then the user's)."""
    return _topics(settings)


def _topics(settings: Settings) -> tuple[Topic, ...]:
    from chipwatch.classify import load_topics

    return load_topics(settings.topics_path, settings.user_topics_path)


@functools.cache
def story_embedder() -> Embedder:
    """Multilingual sentence embeddings, so one event told in French and English is one story.

    One instance per process: the scheduler's ticks would otherwise reload the weights."""
    from chipwatch.digest.stories import default_embedder

    return default_embedder()


def export_stories(settings: Settings, since: datetime | None) -> list[dict[str, object]]:
    """Every relevant stored article in exactly one story (grouping what is new first).
    `since` is naive UTC, as the database keeps it (the CLI converts --since)."""
    from chipwatch.digest.export import export_stories as export

    sessions = open_sessions(settings)
    with sessions() as session:
        return export(session, since, embed=story_embedder())


def _recipient(settings: Settings, address: str | None) -> Recipient | None:
    from chipwatch.digest import recipients_of

    if address is None:
        return None
    for recipient in recipients_of(settings):
        if recipient.address == address:
            return recipient
    raise ConfigError(str(settings.config_path), "recipients", f"no recipient {address!r}")


def preview_digest(settings: Settings, path: Path, address: str | None) -> Path:
    from chipwatch.digest import load_feed_health, preview

    sessions = open_sessions(settings)
    with sessions() as session:
        preview(
            session,
            settings,
            _topics(settings),
            load_feed_health(session),
            path,
            _recipient(settings, address),
            embed=story_embedder(),
        )
    return path


@dataclass(frozen=True)
class DigestRun:
    built: int
    sent: int
    failures: tuple[str, ...]
    sent_now: bool
    pending: str = ""  # what still waits in the outbox, and when it is retried
    retried_only: bool = False  # --retry-now: nothing built, pending rows sent at once

    def __str__(self) -> str:
        if not self.sent_now:
            lines = [f"built {self.built} digests into the outbox (not sent)"]
        else:
            done = f"sent {self.sent}, failed {len(self.failures)}"
            lines = [
                f"retried pending digests: {done}"
                if self.retried_only
                else f"built {self.built} digests; {done}"
            ]
            lines += [f"  {f}" for f in self.failures]
        if self.pending:
            lines.append(self.pending)
        return "\n".join(lines)


def build_and_send_digests(settings: Settings, *, send: bool, only: str | None) -> DigestRun:
    """Build a digest for every recipient (or one) now, then send what is pending."""
    from chipwatch.digest import build_digests, load_feed_health, send_pending, write_feeds

    sessions = open_sessions(settings)
    now = datetime.now(UTC)
    topics = _topics(settings)
    with sessions() as session:
        chosen = None if only is None else _recipient(settings, only)
        recipients = None if chosen is None else [chosen]
        built = build_digests(
            session,
            settings,
            topics,
            load_feed_health(session),
            now,
            recipients=recipients,
            embed=story_embedder(),
        )
        write_feeds(session, settings, topics, now)
        if not send:
            return DigestRun(len(built), 0, (), sent_now=False, pending=_pending(session, now))
        report = send_pending(session, settings, now)
        failures = tuple(
            f"digest {digest_id}: {error}{_next_try(session, digest_id)}"
            for digest_id, error in report.failed
        )
        waiting = _pending(session, now)
    return DigestRun(len(built), len(report.sent), failures, sent_now=True, pending=waiting)


def retry_pending(settings: Settings) -> DigestRun:
    """`digest --retry-now`: send every pending digest at once, backoff or not; build none."""
    from chipwatch.digest import send_pending

    sessions = open_sessions(settings)
    now = datetime.now(UTC)
    with sessions() as session:
        report = send_pending(session, settings, now, retry_now=True)
        failures = tuple(f"digest {digest_id}: {error}" for digest_id, error in report.failed)
        waiting = _pending(session, now)
    return DigestRun(0, len(report.sent), failures, True, waiting, retried_only=True)


def _pending(session: Session, now: datetime) -> str:
    from chipwatch.digest import pending

    return pending(session).describe(now)


def _next_try(session: Session, digest_id: int) -> str:
    """When a failed send is tried again: `chipwatch run` does it then, cron's next
    `chipwatch digest` from then on."""
    from chipwatch.store.outbox import next_attempt_at

    when = next_attempt_at(session, digest_id)
    if when is None:
        return " (kept in the outbox)"
    return f" (kept in the outbox; next try from {when:%Y-%m-%d %H:%M} UTC)"


def run_due_digests(settings: Settings) -> str:
    """The scheduler's tick: alerts, digests whose cron time came, retries of failed sends."""
    from chipwatch.digest import load_feed_health, run_due

    sessions = open_sessions(settings)
    now = datetime.now(UTC)
    with sessions() as session:
        built, report = run_due(
            session,
            settings,
            _topics(settings),
            load_feed_health(session),
            now,
            embed=story_embedder(),
        )
    return f"built {len(built)}; sent {len(report.sent)}, failed {len(report.failed)}"


# --- scheduled jobs ----------------------------------------------------------------------


def scheduled(settings: Settings, job: str, stop: StopRequest | None = None) -> None:
    """One scheduler job under its lock; failures are logged and the scheduler goes on.
    Once `stop` is requested, a poll stores what it fetched and no digest is started."""
    from chipwatch import metrics
    from chipwatch.errors import LockBusy
    from chipwatch.lock import job_lock

    try:
        with job_lock(settings.data_dir, job):
            if job == "poll":
                summary = poll_and_classify(
                    settings, all_feeds=False, classify=settings.poll.classify_on_poll, stop=stop
                )
                metrics.observe_poll(summary)
                log.info("%s", summary)
            if stop is None or not stop.is_set():
                log.info("%s", run_due_digests(settings))
        metrics.write_textfile(settings)
    except LockBusy as exc:
        log.warning("skipped: %s", exc)
    except StorageError as exc:  # one line naming the file; the next tick tries again
        log.error("scheduled %s run failed: storage error: %s", job, exc)
    except Exception:  # noqa: BLE001 - one failed run must not stop the watch
        log.exception("scheduled %s run failed", job)
