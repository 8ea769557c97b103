"""Tables of the review site: users and their sessions, what each user marked, the label
history (for undo), unsubscribed digest addresses and decisions on suggested topics.

Migration 0005_review creates them (and the full-text index, see store/search.py).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from chipwatch.store.models import Base


class UserRow(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    email: Mapped[str | None] = mapped_column(String(320), index=True)  # = a digest recipient
    password_hash: Mapped[str] = mapped_column(String(255))
    feed_token: Mapped[str] = mapped_column(String(64), unique=True)  # Atom feeds' secret
    created_at: Mapped[datetime] = mapped_column(DateTime)


class WebSessionRow(Base):
    __tablename__ = "web_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # SHA-256 of the cookie
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    expires_at: Mapped[datetime] = mapped_column(DateTime, index=True)


class ArticleMarkRow(Base):
    """Read and starred, per user and article."""

    __tablename__ = "article_marks"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    article_id: Mapped[int] = mapped_column(
        ForeignKey("articles.id", ondelete="CASCADE"), primary_key=True
    )
    read: Mapped[bool] = mapped_column(Boolean, default=False)
    starred: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[datetime] = mapped_column(DateTime)


class StoryMarkRow(Base):
    """A muted or followed story, recorded on each article it had when marked: story keys
    change as articles join, the articles do not."""

    __tablename__ = "story_marks"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    article_id: Mapped[int] = mapped_column(
        ForeignKey("articles.id", ondelete="CASCADE"), primary_key=True
    )
    state: Mapped[str] = mapped_column(String(8))  # mute | follow
    created_at: Mapped[datetime] = mapped_column(DateTime)


class LabelEventRow(Base):
    """Each label change with the label it replaced, so that it can be undone."""

    __tablename__ = "label_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    article_id: Mapped[int] = mapped_column(
        ForeignKey("articles.id", ondelete="CASCADE"), index=True
    )
    actor: Mapped[str] = mapped_column(String(320))  # user name, or digest recipient
    relevant: Mapped[bool] = mapped_column(Boolean)
    topics: Mapped[list[str]] = mapped_column(JSON)
    previous: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # None: there was no label
    undone: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime)


class UnsubscribeRow(Base):
    __tablename__ = "unsubscribes"

    address: Mapped[str] = mapped_column(String(320), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)


class TopicDecisionRow(Base):
    """An accepted or dismissed `topics suggest` proposal, by the hash of its members."""

    __tablename__ = "topic_decisions"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    decision: Mapped[str] = mapped_column(String(16))  # accepted | dismissed
    topic_id: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(DateTime)
