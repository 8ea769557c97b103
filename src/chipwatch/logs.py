"""Log set-up: quiet by default, one line per record, text or JSON.

A collector (journald, Loki, a syslog relay) splits records at newlines, so a traceback
or a multi-line message must stay on its line: text escapes the newlines, JSON carries
them inside a string. Libraries (Alembic, APScheduler, httpx) log at WARNING only, even
with `--verbose`: their INFO lines tell an operator nothing chipwatch does not.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

QUIET_LIBRARIES = ("alembic", "apscheduler", "httpx", "httpcore", "trafilatura", "urllib3")
# Text extraction libraries log their views of a page ("ERROR trafilatura.utils: parsed
# tree length: 0") beside our own one-line error about it: shown with --verbose only.
EXTRACTION_LIBRARIES = ("trafilatura", "htmldate", "courlan", "justext")


class OneLineFormatter(logging.Formatter):
    """`time level logger: message`, with newlines of the message or traceback as `\\n`."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        return super().format(record).replace("\r", "").replace("\n", "\\n")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, exception."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(*, verbose: bool, json_lines: bool, level: int | None = None) -> None:
    """Root handler on stderr; chipwatch at INFO when verbose (or `level`), else WARNING."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if json_lines else OneLineFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    set_chipwatch_level(level if level is not None else logging.INFO if verbose else None)
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(logging.WARNING)
    for name in EXTRACTION_LIBRARIES:
        logging.getLogger(name).setLevel(logging.WARNING if verbose else logging.CRITICAL)


def set_chipwatch_level(level: int | None) -> None:
    """chipwatch's own records at `level` (None: inherit the root's WARNING)."""
    logging.getLogger("chipwatch").setLevel(level if level is not None else logging.NOTSET)
