"""Progress of long work (poll of many feeds, classify of a backlog, eval).

On a terminal: a Rich progress bar on stderr, gone when the work is done. Elsewhere
(cron, systemd, a pipe): plain log lines at INFO, one per tenth of the work, so a
scheduler's mail stays quiet by default and `-v` shows how far a run got.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

log = logging.getLogger("chipwatch.progress")

Advance = Callable[[int, int], None]  # (done so far, total)
Track = Callable[[str], Advance]  # the advance function of one named step ("poll: feeds")


def on_terminal() -> bool:
    return sys.stderr.isatty()


@contextmanager
def progress(*, terminal: bool | None = None) -> Iterator[Track]:
    """Yield `track(step)`, which gives that step's `advance(done, total)`; the steps of
    one command (poll, then classify) share one display. Totals may grow."""
    if terminal if terminal is not None else on_terminal():
        with _rich() as track:
            yield track
    else:
        yield _plain


@contextmanager
def _rich() -> Iterator[Track]:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    columns = (TextColumn("{task.description:<22}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        tasks: dict[str, Advance] = {}

        def track(step: str) -> Advance:
            if step not in tasks:
                task = bar.add_task(step, total=None)
                tasks[step] = lambda done, total: bar.update(task, completed=done, total=total)
            return tasks[step]

        yield track


def _plain(step: str) -> Advance:
    shown = -1

    def advance(done: int, total: int) -> None:
        nonlocal shown
        tenth = done * 10 // total if total else 10
        if tenth != shown:
            shown = tenth
            log.info("%s: %d/%d", step, done, total)

    return advance


@contextmanager
def status(message: str, *, terminal: bool | None = None) -> Iterator[None]:
    """A spinner for work without steps to count (eval's single classify call)."""
    if terminal if terminal is not None else on_terminal():
        from rich.console import Console

        with Console(stderr=True).status(message):
            yield
    else:
        log.info("%s", message)
        yield
