"""The time as the store keeps it: naive UTC."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    """Naive UTC: the database stores naive UTC datetimes everywhere."""
    return datetime.now(UTC).replace(tzinfo=None)
