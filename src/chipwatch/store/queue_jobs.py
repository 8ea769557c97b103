"""What `poll --wait` and `chipwatch queue` read of Procrastinate's job table (schema
`procrastinate`, see store.queue_schema); nothing here writes to it."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.orm import Session

JOBS = "procrastinate.procrastinate_jobs"
UNFINISHED = ("todo", "doing")


def unfinished(session: Session, job_ids: Sequence[int]) -> int:
    """How many of these jobs are still to do or being done."""
    if not job_ids:
        return 0
    # One array parameter: asked every WAIT_POLL_SECONDS for thousands of ids.
    query = text(
        f"SELECT count(*) FROM {JOBS} WHERE id = ANY(CAST(:ids AS bigint[])) "
        "AND status IN ('todo', 'doing')"
    )
    return int(session.execute(query, {"ids": list(job_ids)}).scalar_one())


def unfinished_of_task(session: Session, task_name: str, since: datetime) -> int:
    """Jobs of a task deferred since `since` (aware UTC) not finished yet."""
    query = text(
        f"SELECT count(*) FROM {JOBS} j WHERE task_name = :task "
        "AND status IN ('todo', 'doing') AND EXISTS (SELECT 1 FROM "
        "procrastinate.procrastinate_events e WHERE e.job_id = j.id AND e.type = 'deferred' "
        "AND e.at >= :since)"
    )
    return int(session.execute(query, {"task": task_name, "since": since}).scalar_one())


def queued_by_lock(session: Session, locks: Sequence[str]) -> list[int]:
    """The ids of the jobs waiting under these queueing locks (deferred by someone else)."""
    if not locks:
        return []
    query = text(
        f"SELECT id FROM {JOBS} WHERE queueing_lock = ANY(CAST(:locks AS text[])) "
        "AND status = 'todo'"
    )
    return [int(i) for i in session.scalars(query, {"locks": list(locks)})]


def first_job_for_timestamp(session: Session, task_name: str, timestamp: int) -> int | None:
    """The oldest job of a task deferred with this `timestamp` argument (kept ones only)."""
    query = text(
        f"SELECT min(id) FROM {JOBS} WHERE task_name = :task "
        "AND args->>'timestamp' = CAST(:timestamp AS text)"
    )
    found = session.execute(query, {"task": task_name, "timestamp": timestamp}).scalar_one()
    return None if found is None else int(found)


def counts(session: Session) -> list[tuple[str, str, int]]:
    """(task, status, jobs) for every task and status present."""
    query = text(
        f"SELECT task_name, status::text, count(*) FROM {JOBS} GROUP BY 1, 2 ORDER BY 1, 2"
    )
    return [(str(t), str(s), int(n)) for t, s, n in session.execute(query).all()]


def workers(session: Session) -> list[tuple[int, datetime]]:
    """(worker id, last heartbeat) of the workers that registered and did not stop."""
    query = text("SELECT id, last_heartbeat FROM procrastinate.procrastinate_workers ORDER BY id")
    return [(int(i), at) for i, at in session.execute(query).all()]


def live_workers(session: Session, max_age_seconds: float) -> int:
    """Workers whose last heartbeat is at most `max_age_seconds` old (a killed worker's
    row stays until another worker prunes it, so the age is what says it lives)."""
    query = text(
        "SELECT count(*) FROM procrastinate.procrastinate_workers"
        " WHERE last_heartbeat > now() - make_interval(secs => :age)"
    )
    return int(session.execute(query, {"age": max_age_seconds}).scalar_one())
