"""The database schema (SQLAlchemy 2 declarative). Alembic migrations mirror it."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class DigestKind(StrEnum):
    """What an outbox row carries (stored as its value)."""

    DIGEST = "digest"
    ALERT = "alert"


class DigestStatus(StrEnum):
    """Where an outbox row is: waiting to be sent, sent, or a scheduled run that found
    nothing new ("skip" policy; kept so the schedule does not fire again at once)."""

    PENDING = "pending"
    SENT = "sent"
    SKIPPED = "skipped"


class SourceRow(Base):
    __tablename__ = "sources"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    url: Mapped[str] = mapped_column(String(2048), unique=True)
    name: Mapped[str] = mapped_column(String(300), default="")
    site_url: Mapped[str | None] = mapped_column(String(2048))
    language: Mapped[str] = mapped_column(String(8), default="")
    # "feed" | "fetch"; NULL = the default for the source's kind (fetch for news search)
    article_text: Mapped[str | None] = mapped_column(String(8))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    disabled_reason: Mapped[str | None] = mapped_column(Text)
    etag: Mapped[str | None] = mapped_column(String(1024))
    last_modified: Mapped[str | None] = mapped_column(String(128))
    last_checked_at: Mapped[datetime | None] = mapped_column(DateTime)
    next_check_at: Mapped[datetime | None] = mapped_column(DateTime, index=True)
    last_success_at: Mapped[datetime | None] = mapped_column(DateTime)
    last_status: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    last_error_kind: Mapped[str | None] = mapped_column(String(16))  # errors.FeedErrorKind
    consecutive_errors: Mapped[int] = mapped_column(Integer, default=0)
    interval_minutes: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    tags: Mapped[list[str] | None] = mapped_column(JSON)  # OPML categories, kept on export


class ArticleRow(Base):
    __tablename__ = "articles"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    identity: Mapped[str] = mapped_column(String(512), unique=True)
    content_hash: Mapped[str] = mapped_column(String(64), index=True)
    source_id: Mapped[int | None] = mapped_column(ForeignKey("sources.id", ondelete="SET NULL"))
    source_name: Mapped[str] = mapped_column(String(300), default="")
    url: Mapped[str | None] = mapped_column(String(2048), index=True)
    title: Mapped[str] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text)
    language: Mapped[str] = mapped_column(String(8), default="")
    published_at: Mapped[datetime] = mapped_column(DateTime, index=True)
    fetched_at: Mapped[datetime] = mapped_column(DateTime, index=True)
    date_flag: Mapped[str | None] = mapped_column(String(32))
    text_kind: Mapped[str | None] = mapped_column(String(16))  # chipwatch.types.TextKind
    story_key: Mapped[str | None] = mapped_column(String(64), index=True)
    # Stored by a source's first poll but published before its backfill window: shown by
    # `stories` and the review page, never mailed (poll.first_poll_backfill_hours).
    backfill: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class FetchedPageRow(Base):
    """What fetching a URL once gave, so a poll never fetches it again (store/pages.py):
    a news-search link resolved to the publisher's URL (kind "link"), or an article
    page's verdict and text (kind "page")."""

    __tablename__ = "fetched_pages"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256 of kind + url
    kind: Mapped[str] = mapped_column(String(8))
    url: Mapped[str] = mapped_column(String(2048))
    target_url: Mapped[str | None] = mapped_column(String(2048))
    verdict: Mapped[str] = mapped_column(String(16))
    text: Mapped[str | None] = mapped_column(Text)
    fetched_at: Mapped[datetime] = mapped_column(DateTime, index=True)


class ClassificationRow(Base):
    __tablename__ = "classifications"

    article_id: Mapped[int] = mapped_column(
        ForeignKey("articles.id", ondelete="CASCADE"), primary_key=True
    )
    relevant: Mapped[bool] = mapped_column(Boolean, index=True)
    relevance: Mapped[float] = mapped_column(Float)
    topics: Mapped[list[str]] = mapped_column(JSON)
    topic_scores: Mapped[dict[str, float]] = mapped_column(JSON)
    novel: Mapped[bool] = mapped_column(Boolean)
    language: Mapped[str] = mapped_column(String(8))
    evidence: Mapped[dict[str, Any]] = mapped_column(JSON)
    model_key: Mapped[str] = mapped_column(String(64))
    classified_at: Mapped[datetime] = mapped_column(DateTime)


class LabelRow(Base):
    __tablename__ = "labels"

    article_id: Mapped[int] = mapped_column(
        ForeignKey("articles.id", ondelete="CASCADE"), primary_key=True
    )
    relevant: Mapped[bool] = mapped_column(Boolean)
    topics: Mapped[list[str]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime)


class DigestRow(Base):
    """The outbox: a digest is rendered and stored here before any send is tried."""

    __tablename__ = "digests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    recipient: Mapped[str] = mapped_column(String(320), index=True)
    kind: Mapped[str] = mapped_column(String(16), default=DigestKind.DIGEST.value)
    subject: Mapped[str] = mapped_column(Text)
    message_id: Mapped[str] = mapped_column(String(255), unique=True)
    message: Mapped[bytes] = mapped_column(LargeBinary)  # the full RFC 5322 message
    status: Mapped[str] = mapped_column(String(16), default=DigestStatus.PENDING.value, index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime)
    transport: Mapped[str | None] = mapped_column(String(16))  # smtp | maildir


class DigestItemRow(Base):
    __tablename__ = "digest_items"

    digest_id: Mapped[int] = mapped_column(
        ForeignKey("digests.id", ondelete="CASCADE"), primary_key=True
    )
    article_id: Mapped[int] = mapped_column(
        ForeignKey("articles.id", ondelete="CASCADE"), primary_key=True
    )


class DeliveryRow(Base):
    """One article delivered to one recipient: the guard against sending it twice."""

    __tablename__ = "deliveries"
    __table_args__ = (UniqueConstraint("recipient", "article_id", name="uq_delivery"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    recipient: Mapped[str] = mapped_column(String(320))
    article_id: Mapped[int] = mapped_column(ForeignKey("articles.id", ondelete="CASCADE"))
    digest_id: Mapped[int] = mapped_column(ForeignKey("digests.id", ondelete="CASCADE"))
    delivered_at: Mapped[datetime] = mapped_column(DateTime)


Index("ix_deliveries_recipient", DeliveryRow.recipient)


class StoryMemberRow(Base):
    """Which story an article belongs to, with what grouping compared it by.

    `story_id` is the id of the story's first article, so it is stable and needs no table
    of its own. The vector (float16 embedding of headline + lead) and the anchors are kept
    so a later article is compared with the story's members without embedding them again.
    """

    __tablename__ = "story_members"

    article_id: Mapped[int] = mapped_column(
        ForeignKey("articles.id", ondelete="CASCADE"), primary_key=True
    )
    story_id: Mapped[int] = mapped_column(Integer, index=True)
    vector: Mapped[bytes] = mapped_column(LargeBinary)
    anchors: Mapped[list[str]] = mapped_column(JSON)
    grouped_at: Mapped[datetime] = mapped_column(DateTime)


class FittedModelRow(Base):
    """The fitted classifier, pickled, under the key of what it was fitted on: every
    worker on every host classifies with the same model (store.fitted)."""

    __tablename__ = "fitted_models"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    model: Mapped[bytes] = mapped_column(LargeBinary)
    fitted_at: Mapped[datetime] = mapped_column(DateTime)


class HostSlotRow(Base):
    """When a host may be fetched next, shared by every worker (store.host_gate)."""

    __tablename__ = "host_slots"

    host: Mapped[str] = mapped_column(String(255), primary_key=True)
    next_at: Mapped[datetime] = mapped_column(DateTime)


# The review site's tables join the same metadata (the migrations' target).
from chipwatch.store import review_models as _review_models  # noqa: E402, F401
