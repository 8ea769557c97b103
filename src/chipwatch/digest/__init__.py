"""The digest: select what a reader has not had, group it into stories, render, deliver.

The CLI and the scheduler use the functions re-exported here; see docs/digest.md.
"""

from chipwatch.digest.atom import write_feeds
from chipwatch.digest.outbox import (
    DEFAULT_RECIPIENT,
    OutboxEntry,
    Pending,
    SendReport,
    build_alerts,
    build_digests,
    due_recipients,
    last_run_by_recipient,
    list_outbox,
    load_feed_health,
    pending,
    preview,
    recipients_of,
    run_due,
    send_pending,
)
from chipwatch.digest.render import FeedHealth, RenderedDigest
from chipwatch.digest.select import DigestItem
from chipwatch.digest.stories import Story

__all__ = [
    "DEFAULT_RECIPIENT",
    "DigestItem",
    "FeedHealth",
    "OutboxEntry",
    "Pending",
    "RenderedDigest",
    "SendReport",
    "Story",
    "build_alerts",
    "build_digests",
    "due_recipients",
    "last_run_by_recipient",
    "list_outbox",
    "load_feed_health",
    "pending",
    "preview",
    "recipients_of",
    "run_due",
    "send_pending",
    "write_feeds",
]
