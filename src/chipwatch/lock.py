"""File locks: one per job, so two runs of the same job (cron, timer, `chipwatch run`) never
overlap, and `chipwatch run` holds one named "run" for its whole life (one watch per data
folder); one per edited file, so two writers of it take turns."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from chipwatch.errors import LockBusy


@contextmanager
def job_lock(data_dir: Path, job: str) -> Iterator[None]:
    """Hold an exclusive lock named after the job; raise LockBusy at once if it is taken.

    flock locks vanish with the process that holds them, so a crashed run never leaves
    a stale lock behind.
    """
    lock_dir = data_dir / "locks"
    path = lock_dir / f"{job}.lock"
    try:
        lock_dir.mkdir(parents=True, exist_ok=True)
        handle = path.open("a+")
    except OSError as exc:  # a read-only or full data folder: a storage fault (exit 5)
        from chipwatch.store.faults import from_os_error

        raise from_os_error(exc.filename or path, exc) from exc
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LockBusy(_busy_message(job, path, handle)) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        yield
    finally:
        handle.close()


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Wait for, then hold, an exclusive lock on `path`'s companion `.<name>.lock` (the
    file itself is replaced by rename, which would leave a lock on it behind)."""
    lock_path = path.with_name(f".{path.name}.lock")
    with lock_path.open("a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _busy_message(job: str, path: Path, handle: IO[str]) -> str:
    """One line naming the lock and its holder (the pid it wrote, when it had the time)."""
    handle.seek(0)
    holder = handle.read().strip()
    pid = f" (pid {holder})" if holder.isdigit() else ""
    if job == "run":  # the lock of the whole watch, not of one job
        return f"chipwatch run is already running on this data folder{pid}: {path}"
    return f"another '{job}' run holds {path}{pid}"
