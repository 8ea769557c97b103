"""Signed links for digest emails, bound to one recipient, one article and one action.

A token is base64url(JSON payload) "." base64url(HMAC-SHA256(secret, payload)). The
payload holds the action, the recipient, the article id (0 for unsubscribe) and the expiry
time; a changed byte anywhere, another action or an expired time is refused.
The secret is a random key made once in <data_dir>/web-secret.key (mode 0600): the site
and the digest builder share it through the data directory.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

SECRET_FILE = "web-secret.key"
NOT_RELEVANT = "not-relevant"
WRONG_TOPIC = "wrong-topic"
UNSUBSCRIBE = "unsubscribe"
ACTIONS = frozenset({NOT_RELEVANT, WRONG_TOPIC, UNSUBSCRIBE})
_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,2000}\.[A-Za-z0-9_-]{43}")


class BadLink(Exception):
    """A link whose signature, action or expiry does not hold; the message says which."""


@dataclass(frozen=True)
class LinkClaim:
    action: str
    recipient: str
    article_id: int
    expires: datetime


def site_secret(data_dir: Path) -> bytes:
    """The key, created on first use; O_EXCL so two processes starting together agree."""
    path = data_dir / SECRET_FILE
    try:
        return bytes.fromhex(path.read_text(encoding="ascii").strip())
    except FileNotFoundError:
        pass
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return bytes.fromhex(path.read_text(encoding="ascii").strip())
    key = secrets.token_bytes(32)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(key.hex())
    return key


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: bytes, body: str) -> str:
    # The purpose prefix keeps these MACs apart from any other use of the key (CSRF).
    return _b64(hmac.new(secret, b"link\0" + body.encode("ascii"), hashlib.sha256).digest())


def sign(
    secret: bytes, action: str, recipient: str, article_id: int, now: datetime, ttl: timedelta
) -> str:
    if action not in ACTIONS:
        raise ValueError(action)
    expires = int((now.astimezone(UTC) + ttl).timestamp())
    payload = json.dumps([action, recipient, article_id, expires], separators=(",", ":"))
    body = _b64(payload.encode("utf-8"))
    return f"{body}.{_mac(secret, body)}"


def verify(secret: bytes, token: str, actions: frozenset[str], now: datetime) -> LinkClaim:
    """The link's claim, if it is ours, unchanged, for one of `actions` and not expired."""
    if not _TOKEN.fullmatch(token):
        raise BadLink("the link is malformed")
    body, _, mac = token.partition(".")
    if not hmac.compare_digest(mac, _mac(secret, body)):
        raise BadLink("the link's signature does not match (changed or not ours)")
    try:
        kind, recipient, article_id, expires = json.loads(_unb64(body))
    except (ValueError, TypeError) as exc:
        raise BadLink("the link is malformed") from exc
    if kind not in actions:
        raise BadLink("the link is for another action")
    moment = datetime.fromtimestamp(int(expires), UTC)
    if moment <= now.astimezone(UTC):
        raise BadLink(f"the link expired on {moment:%d %b %Y}")
    return LinkClaim(kind, str(recipient), int(article_id), moment)
