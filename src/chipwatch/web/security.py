"""Who is asking, and may they: session cookies, CSRF tokens, login rate limits, headers.

- Sessions: a random cookie (HttpOnly, SameSite=Lax, Secure when the request came over
  https, also behind a proxy that says so in X-Forwarded-Proto); the database keeps its hash.
- CSRF: every POST carries a token. Logged in, it is an HMAC of the session id; before
  login (the login form, digest-link confirmations) it is the double-submitted value of a
  SameSite=Strict cookie. The one exception is the RFC 8058 one-click unsubscribe, which a
  mail client POSTs without cookies; its signed link is its authority.
- Login attempts: at most [web].login_attempts failures per name and per client address in
  a sliding 15-minute window, counted in this process (one `chipwatch serve`).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response

SESSION_COOKIE = "cw_session"
PRE_COOKIE = "cw_csrf"  # the double-submit token before login
LOGIN_WINDOW_SECONDS = 15 * 60

# No inline script anywhere (there is no script at all); styles only from our file.
CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",  # signed digest tokens stay out of Referer headers
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


def is_https(request: Request) -> bool:
    return request.url.scheme == "https"


def set_cookie(
    response: Response, request: Request, name: str, value: str, **kwargs: object
) -> None:
    response.set_cookie(
        name,
        value,
        httponly=True,
        secure=is_https(request),
        path=request.scope.get("root_path", "") or "/",
        **kwargs,  # type: ignore[arg-type]
    )


def csrf_for_session(secret: bytes, session_id: str) -> str:
    return hmac.new(secret, b"csrf\0" + session_id.encode(), hashlib.sha256).hexdigest()


def pre_login_token(request: Request) -> str:
    """The double-submit value: the cookie's if set, else a new one (set by `with_pre_cookie`)."""
    existing = request.cookies.get(PRE_COOKIE, "")
    if len(existing) >= 32:
        return existing
    token = getattr(request.state, "new_pre_token", None) or secrets.token_urlsafe(32)
    request.state.new_pre_token = token
    return token


def with_pre_cookie(request: Request, response: Response) -> Response:
    token = getattr(request.state, "new_pre_token", None)
    if token:
        set_cookie(response, request, PRE_COOKIE, token, samesite="strict", max_age=3600)
    return response


def expected_csrf(request: Request, secret: bytes) -> str | None:
    session_id = getattr(request.state, "session_id", None)
    if session_id:
        return csrf_for_session(secret, session_id)
    cookie = request.cookies.get(PRE_COOKIE, "")
    return cookie if len(cookie) >= 32 else None


def csrf_ok(request: Request, secret: bytes, submitted: str) -> bool:
    expected = expected_csrf(request, secret)
    if not expected or not submitted:
        return False
    return hmac.compare_digest(expected.encode(), submitted.encode("utf-8", "replace"))


class LoginLimiter:
    """Failed logins in a sliding window, per key ("name:x" and "addr:y").

    An attempt counts as a failure from the moment it starts (`attempt`) until it is
    known to have succeeded: requests sent together cannot all pass the check while the
    first password is still being hashed. A success clears the account's count only; the
    address keeps its failures, or one's own account would reset the count between
    guesses at others'."""

    def __init__(self, limit: int, window: float = LOGIN_WINDOW_SECONDS) -> None:
        self.limit = limit
        self.window = window
        self._failures: dict[str, deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> deque[float]:
        failures = self._failures[key]
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        return failures

    def attempt(self, keys: list[str], now: float | None = None) -> tuple[int, float]:
        """(seconds to wait, 0 when the attempt may go ahead; the attempt's ticket). An
        attempt that goes ahead is counted as failed until `succeeded` is told."""
        now = time.monotonic() if now is None else now
        with self._lock:
            waits = [
                int(failures[0] + self.window - now) + 1
                for key in keys
                if len(failures := self._recent(key, now)) >= self.limit
            ]
            if not waits:
                for key in keys:
                    self._failures[key].append(now)
        return max(waits, default=0), now

    def succeeded(self, keys: list[str], ticket: float) -> None:
        """The attempt was right: its provisional failure goes, and an account key's
        earlier failures (the user's own typos) with it."""
        with self._lock:
            for key in keys:
                if key.startswith("name:"):
                    self._failures.pop(key, None)
                elif ticket in (failures := self._failures.get(key, deque())):
                    failures.remove(ticket)


Handler = Callable[[Request], Awaitable[Response]]


def add_headers(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response
