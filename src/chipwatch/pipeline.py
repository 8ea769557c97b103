"""The order of the stages: poll -> classify -> digest. Each step is one call per stage.

The CLI, the scheduler and the demo all go through these functions, so a one-shot
`chipwatch poll` from cron and the in-process scheduler do exactly the same work.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from chipwatch.errors import ConfigError, NotFound
from chipwatch.settings import Settings
from chipwatch.store.db import open_engine, session_factory
from chipwatch.store.models import ArticleRow, ClassificationRow, LabelRow
from chipwatch.types import Classification, ClassifyInput, Label

if TYPE_CHECKING:  # the classifier and the digest load numpy & co.: imported when used
    from chipwatch.classify import FittedClassifier
    from chipwatch.digest.stories import Embedder
    from chipwatch.settings import Recipient
    from chipwatch.types import Topic

log = logging.getLogger(__name__)

CLASSIFY_BATCH = 256


@dataclass(frozen=True)
class ClassifyReport:
    classified: int
    relevant: int
    novel: int


def open_sessions(settings: Settings) -> sessionmaker[Session]:
    return session_factory(open_engine(settings.database_path))


def stored_labels(session: Session) -> list[Label]:
    rows = session.execute(select(LabelRow, ArticleRow).join(ArticleRow)).all()
    return [
        Label(str(article.id), article.title, article.text, label.relevant, tuple(label.topics))
        for label, article in rows
    ]


def load_classifier(
    settings: Settings, sessions: sessionmaker[Session]
) -> tuple[FittedClassifier, str]:
    """The classifier fitted on the corpus, the topics and the user's labels (cached), and
    the key of what it was fitted on (stored with each classification)."""
    from chipwatch.classify import ClassifierParams, load_or_fit
    from chipwatch.classify.cache import fit_key

    with sessions() as session:
        labels = stored_labels(session)
    model = load_or_fit(settings.corpus_dir, settings.topics_path, labels, settings.cache_dir)
    key = fit_key(settings.corpus_dir, settings.topics_path, labels, ClassifierParams())
    return model, key


def classify_backlog(settings: Settings, sessions: sessionmaker[Session]) -> ClassifyReport:
    """Classify every stored article that has no classification yet, a batch at a time
    (a backlog left by `poll --no-classify` is never held in memory whole)."""
    classifier: FittedClassifier | None = None
    key = ""
    classified = relevant = novel = 0
    while batch := _unclassified(sessions, CLASSIFY_BATCH):
        if classifier is None:
            classifier, key = load_classifier(settings, sessions)
        results = classifier.classify([as_input(row) for row in batch])
        with sessions.begin() as session:
            for row, result in zip(batch, results, strict=True):
                session.add(_classification_row(row.id, result, key[:64]))
        classified += len(batch)
        relevant += sum(r.relevant for r in results)
        novel += sum(r.novel for r in results)
    return ClassifyReport(classified, relevant, novel)


def _unclassified(sessions: sessionmaker[Session], limit: int) -> list[ArticleRow]:
    with sessions() as session:
        return list(
            session.scalars(
                select(ArticleRow)
                .outerjoin(ClassificationRow)
                .where(ClassificationRow.article_id.is_(None))
                .order_by(ArticleRow.id)
                .limit(limit)
            )
        )


def as_input(row: ArticleRow) -> ClassifyInput:
    return ClassifyInput(
        id=str(row.id),
        title=row.title,
        text=row.text,
        url=row.url,
        published=row.published_at.date().isoformat(),
        language=row.language or None,
    )


def _classification_row(article_id: int, result: Classification, key: str) -> ClassificationRow:
    payload = result.to_json()
    return ClassificationRow(
        article_id=article_id,
        relevant=result.relevant,
        relevance=result.relevance,
        topics=list(result.topics),
        topic_scores=dict(payload["topic_scores"]),  # type: ignore[call-overload]
        novel=result.novel,
        language=result.language,
        evidence=dict(payload["evidence"]),  # type: ignore[call-overload]
        model_key=key,
        classified_at=datetime.now(UTC).replace(tzinfo=None),
    )


def reclassify_all(settings: Settings, sessions: sessionmaker[Session]) -> ClassifyReport:
    """Drop every stored classification and classify again (after a corpus or label change)."""
    with sessions.begin() as session:
        session.query(ClassificationRow).delete()
    return classify_backlog(settings, sessions)


def label_article(
    sessions: sessionmaker[Session], article_id: int, relevant: bool, topics: Sequence[str]
) -> None:
    with sessions.begin() as session:
        if session.get(ArticleRow, article_id) is None:
            raise NotFound(f"no stored article with id {article_id}")
        existing = session.get(LabelRow, article_id)
        if existing is not None:
            session.delete(existing)
            session.flush()
        session.add(
            LabelRow(
                article_id=article_id,
                relevant=relevant,
                topics=list(topics),
                created_at=datetime.now(UTC).replace(tzinfo=None),
            )
        )


# --- poll --------------------------------------------------------------------------------


@dataclass(frozen=True)
class PollSummary:
    feeds: int
    failed: int
    not_modified: int
    new_articles: int
    seconds: float
    classified: ClassifyReport | None
    errors: tuple[str, ...]

    def __str__(self) -> str:
        lines = [
            f"polled {self.feeds} feeds in {self.seconds:.1f}s: {self.new_articles} new articles, "
            f"{self.not_modified} unchanged (304), {self.failed} failed"
        ]
        if self.classified is not None:
            c = self.classified
            lines.append(f"classified {c.classified}: {c.relevant} relevant, {c.novel} novel")
        lines += [f"  error: {e}" for e in self.errors]
        return "\n".join(lines)


def sync_config_sources(settings: Settings, sessions: sessionmaker[Session]) -> None:
    """The sources listed in the config file join those added with `feeds add`."""
    from chipwatch.store.sources import sync_sources

    with sessions.begin() as session:
        sync_sources(session, settings.sources)


def poll_and_classify(settings: Settings, *, all_feeds: bool, classify: bool) -> PollSummary:
    from chipwatch.collect import poll_sync

    sessions = open_sessions(settings)
    sync_config_sources(settings, sessions)
    report = poll_sync(settings, sessions, all_feeds=all_feeds)
    classified = classify_backlog(settings, sessions) if classify else None
    return PollSummary(
        feeds=report.feeds_polled,
        failed=report.feeds_failed,
        not_modified=report.feeds_not_modified,
        new_articles=report.new_articles,
        seconds=report.seconds,
        classified=classified,
        errors=tuple(f"{f.url}: {f.error}" for f in report.feeds if f.error),
    )


# --- digest ------------------------------------------------------------------------------


def _topics(settings: Settings) -> tuple[Topic, ...]:
    from chipwatch.classify import load_topics

    return load_topics(settings.topics_path)


@functools.cache
def story_embedder() -> Embedder:
    """Multilingual sentence embeddings, so one event told in French and English is one story.

    One instance per process: the scheduler's ticks would otherwise reload the weights."""
    from chipwatch.digest.stories import default_embedder

    return default_embedder()


def export_stories(settings: Settings, since: datetime | None) -> list[dict[str, object]]:
    """Every relevant stored article in exactly one story (grouping what is new first)."""
    from chipwatch.digest.export import export_stories as export

    if since is not None and since.tzinfo is not None:
        since = since.astimezone(UTC).replace(tzinfo=None)  # the database keeps naive UTC
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

    def __str__(self) -> str:
        if not self.sent_now:
            return f"built {self.built} digests into the outbox (not sent)"
        lines = [f"built {self.built} digests; sent {self.sent}, failed {len(self.failures)}"]
        lines += [f"  {failure} (kept in the outbox, retried later)" for failure in self.failures]
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
            return DigestRun(len(built), 0, (), sent_now=False)
        report = send_pending(session, settings, now)
    failures = tuple(f"digest {digest_id}: {error}" for digest_id, error in report.failed)
    return DigestRun(len(built), len(report.sent), failures, sent_now=True)


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


def scheduled(settings: Settings, job: str) -> None:
    """One scheduler job under its lock; failures are logged and the scheduler goes on."""
    from chipwatch.errors import LockBusy
    from chipwatch.lock import job_lock

    try:
        with job_lock(settings.data_dir, job):
            if job == "poll":
                log.info(
                    "%s",
                    poll_and_classify(
                        settings, all_feeds=False, classify=settings.poll.classify_on_poll
                    ),
                )
            log.info("%s", run_due_digests(settings))
    except LockBusy as exc:
        log.warning("skipped: %s", exc)
    except Exception:  # noqa: BLE001 - one failed run must not stop the watch
        log.exception("scheduled %s run failed", job)
