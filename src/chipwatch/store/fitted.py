"""The fitted classifier in the database, by the key of what it was fitted on.

Every worker, on any host, classifies with the model stored under its key: the first to
need it fits and stores it; the others read it. Pickled bytes (the same format as the
local cache, `classify.cache`); one key is kept at a time.
"""

from __future__ import annotations

from datetime import datetime
from typing import cast

from sqlalchemy import Table, delete, select
from sqlalchemy.orm import Session

from chipwatch.store.dialect import insert_ignoring_duplicates
from chipwatch.store.models import FittedModelRow


def stored_model(session: Session, key: str) -> bytes | None:
    row = session.scalar(select(FittedModelRow.model).where(FittedModelRow.key == key[:64]))
    return None if row is None else bytes(row)


def store_model(session: Session, key: str, model: bytes, now: datetime) -> None:
    """Keep this model under its key (a model another worker stored first wins: both were
    fitted on the same inputs); models of other keys are dropped."""
    session.execute(delete(FittedModelRow).where(FittedModelRow.key != key[:64]))
    table = cast(Table, FittedModelRow.__table__)
    insert_ignoring_duplicates(
        session, table, [{"key": key[:64], "model": model, "fitted_at": now}]
    )


def stored_keys(session: Session) -> list[str]:
    return list(session.scalars(select(FittedModelRow.key)))
