"""Users of the review site and their login sessions."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from chipwatch.store.review_models import UserRow, WebSessionRow


@dataclass(frozen=True)
class User:
    id: int
    name: str
    email: str | None
    feed_token: str


def _user(row: UserRow) -> User:
    return User(id=row.id, name=row.name, email=row.email, feed_token=row.feed_token)


def add_user(
    session: Session, name: str, password_hash: str, email: str | None, now: datetime
) -> User | None:
    """The new user, or None when the name is taken."""
    if session.scalar(select(UserRow.id).where(UserRow.name == name)) is not None:
        return None
    row = UserRow(
        name=name,
        email=email or None,
        password_hash=password_hash,
        feed_token=secrets.token_urlsafe(24),
        created_at=now,
    )
    session.add(row)
    session.flush()
    return _user(row)


def password_hash_of(session: Session, name: str) -> tuple[int, str] | None:
    row = session.scalars(select(UserRow).where(UserRow.name == name)).first()
    return (row.id, row.password_hash) if row else None


def user_by_feed_token(session: Session, token: str) -> User | None:
    row = session.scalars(select(UserRow).where(UserRow.feed_token == token)).first()
    return _user(row) if row else None


def users_with_email(session: Session, address: str) -> list[User]:
    rows = session.scalars(select(UserRow).where(UserRow.email == address)).all()
    return [_user(row) for row in rows]


def _token_id(token: str) -> str:
    # Only the hash is stored: a copy of the database opens no session.
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def open_session(session: Session, user_id: int, now: datetime, lifetime: timedelta) -> str:
    """A new login session; returns the cookie value."""
    token = secrets.token_urlsafe(32)
    session.execute(delete(WebSessionRow).where(WebSessionRow.expires_at < now))
    session.add(
        WebSessionRow(
            id=_token_id(token), user_id=user_id, created_at=now, expires_at=now + lifetime
        )
    )
    return token


def session_user(session: Session, token: str, now: datetime) -> tuple[str, User] | None:
    """(session id, user) of a live session cookie, else None."""
    row = session.get(WebSessionRow, _token_id(token))
    if row is None or row.expires_at <= now:
        return None
    user = session.get(UserRow, row.user_id)
    return (row.id, _user(user)) if user else None


def close_session(session: Session, token: str) -> None:
    session.execute(delete(WebSessionRow).where(WebSessionRow.id == _token_id(token)))
