"""What every page shares: the Site (settings, database, secret, templates), rendering,
URLs under the base path, and the wrappers that run page bodies off the event loop and
check the CSRF token of every POST before its body runs."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from chipwatch.settings import Settings
from chipwatch.store.users import User
from chipwatch.types import MAX_ROW_ID, Topic
from chipwatch.web.security import (
    LoginLimiter,
    csrf_ok,
    expected_csrf,
    pre_login_token,
    with_pre_cookie,
)

T = TypeVar("T", int, float)

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"

# Fixed notices shown after a redirect (?done=key): a URL can pick one, never write one.
NOTICES = {
    "labelled": "Label saved. It counts at the classifier's next fit "
    "(the next `chipwatch poll` or `chipwatch classify --again`).",
    "undone": "Label change undone.",
    "nothing-to-undo": "There was nothing to undo.",
    "corpus": "Added to the corpus; the classifier refits at its next use.",
    "read": "Marked.",
    "story": "Story mark saved: a muted story's later articles stay out of your digests.",
    "source-on": "Feed enabled.",
    "source-off": "Feed disabled.",
    "source-added": "Feed added.",
    "opml": "OPML imported.",
    "subscribed": "Digest subscription saved.",
    "topic-accepted": "Topic added to your topics file; it counts at the next fit.",
    "topic-dismissed": "Suggestion dismissed.",
    "topic-added": "Topic added to your topics file and its examples labelled with it; "
    "both count at the next fit.",
}


def now_utc() -> datetime:
    """Naive UTC, as stored."""
    return datetime.now(UTC).replace(tzinfo=None)


@dataclass
class Site:
    settings: Settings
    sessions: sessionmaker[Session]
    secret: bytes
    limiter: LoginLimiter
    env: Environment

    def topics(self) -> tuple[Topic, ...]:
        from chipwatch.classify import load_topics

        # Read per request: `topics add` or another request may have changed the files.
        return load_topics(self.settings.topics_path, self.settings.user_topics_path)


def make_environment() -> Environment:
    from chipwatch.digest.render import _format_date  # one date format for digest and site

    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["date"] = _format_date
    env.filters["pct"] = lambda value: f"{float(value):.2f}"
    return env


def site_of(request: Request) -> Site:
    site: Site = request.app.state.site
    return site


def user_of(request: Request) -> User:
    user: User | None = getattr(request.state, "user", None)
    if user is None:  # the middleware lets no anonymous request reach a page
        raise HTTPException(401)
    return user


def route_path(request: Request) -> str:
    """The path inside the site: without the base path, whether the proxy stripped it or not."""
    root = request.scope.get("root_path") or ""
    path: str = request.scope["path"]
    return path[len(root) :] or "/" if root and path.startswith(root) else path


def url(request: Request, path: str) -> str:
    return (request.scope.get("root_path") or "") + path


def redirect(request: Request, path: str, done: str | None = None) -> RedirectResponse:
    target = url(request, path)
    if done:
        target += ("&" if "?" in target else "?") + f"done={done}"
    return RedirectResponse(target, status_code=303)


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> Response:
    site = site_of(request)
    user = getattr(request.state, "user", None)
    csrf = expected_csrf(request, site.secret) if user else pre_login_token(request)
    done = request.query_params.get("done", "")
    html = site.env.get_template(template).render(
        user=user,
        csrf=csrf,
        url=lambda path: url(request, path),
        notice=NOTICES.get(done, ""),
        path=route_path(request),
        **context,
    )
    response = HTMLResponse(html, status_code=status_code)
    return with_pre_cookie(request, response)


PageBody = Callable[[Request], Response]
FormBody = Callable[[Request, FormData], Response]


def page(body: PageBody) -> Callable[[Request], Awaitable[Response]]:
    """A GET page whose body (database, templates) runs in the thread pool."""

    async def endpoint(request: Request) -> Response:
        return await run_in_threadpool(body, request)

    endpoint.__name__ = body.__name__
    return endpoint


def form_action(body: FormBody, *, csrf: bool = True) -> Callable[[Request], Awaitable[Response]]:
    """A POST: read the form, refuse it without the right CSRF token, then run the body."""

    async def endpoint(request: Request) -> Response:
        try:
            form = await request.form(max_files=1, max_fields=200)
        except ClientDisconnect:  # gone halfway through its body: no one reads an answer
            return HTMLResponse("the request's body did not arrive whole", status_code=400)
        if any("\x00" in value for value in form.values() if isinstance(value, str)):
            # No field means a NUL, and PostgreSQL refuses one in a lookup (a 500).
            return HTMLResponse("Refused: a field holds a NUL character.", status_code=400)
        submitted = form.get("csrf") or request.headers.get("x-csrf-token", "")
        if csrf and not csrf_ok(request, site_of(request).secret, str(submitted)):
            return HTMLResponse(
                "Refused: the form's CSRF token is missing or wrong. Reload the page and retry.",
                status_code=403,
            )
        return await run_in_threadpool(_once_more_on_conflict, body, request, form)

    endpoint.__name__ = body.__name__
    return endpoint


def _once_more_on_conflict(body: FormBody, request: Request, form: FormData) -> Response:
    """The body, run again where a request done at the same moment (a double click, two
    tabs) took a row first; a 409 if it is taken again, not a 500."""
    from chipwatch.store.dialect import WriteConflict, once_more_on_conflict

    try:
        return once_more_on_conflict(lambda: body(request, form))
    except WriteConflict:
        message = "changed by another request at the same time: reload and retry"
        raise HTTPException(409, message) from None


def row_id(request: Request, name: str) -> int:
    """A row id from the path, or 404: not a number, or no row could have it."""
    try:
        value = int(request.path_params[name])
    except ValueError:
        raise HTTPException(404) from None
    if not 1 <= value <= MAX_ROW_ID:
        raise HTTPException(404)
    return value


def int_param(
    params: Mapping[str, str], name: str, default: int, low: int, high: int, strict: bool = False
) -> int:
    """A whole-number query parameter kept within [low, high]; a malformed one is the
    default on a page, and a 400 naming it where `strict` (the JSON API: a script that
    asked for days=abc must not get a week's stories as if it had asked for them)."""
    raw = params.get(name)
    try:
        value = default if raw is None else int(raw)
    except ValueError:
        return _malformed(name, raw, "a whole number", default, strict)
    return min(max(value, low), high)


def float_param(
    params: Mapping[str, str], name: str, default: float, strict: bool = False
) -> float:
    """A score between 0 and 1 (nan and infinities are malformed, as with int_param)."""
    raw = params.get(name)
    try:
        value = default if raw is None else float(raw)
    except ValueError:
        return _malformed(name, raw, "a number from 0 to 1", default, strict)
    if not math.isfinite(value):
        return _malformed(name, raw, "a number from 0 to 1", default, strict)
    return min(max(value, 0.0), 1.0)


def _malformed(name: str, raw: str | None, wanted: str, default: T, strict: bool) -> T:
    if strict:
        raise HTTPException(400, f"{name}={str(raw)[:40]!r}: must be {wanted}")
    return default
