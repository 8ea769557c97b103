"""The Starlette application of `chipwatch serve`: routes, the login gate, headers.

Every route needs a logged-in session except the login form, the stylesheet, the signed
digest links (/d/, /u/: the signature is their authority) and the Atom feeds (/feeds/:
the per-user token in the path is). Anonymous requests get 401 under /api/ and a redirect
to the login form elsewhere.
"""

from __future__ import annotations

import logging

from sqlalchemy.orm import Session, sessionmaker
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from chipwatch.errors import StorageError
from chipwatch.settings import Settings
from chipwatch.store.users import session_user
from chipwatch.web import account, api, articles, digest_links, sources, stories, topics
from chipwatch.web.security import SESSION_COOKIE, LoginLimiter, add_headers
from chipwatch.web.signing import site_secret
from chipwatch.web.site import STATIC, Site, make_environment, now_utc, route_path, url

log = logging.getLogger(__name__)
PUBLIC_PREFIXES = ("/login", "/static/", "/d/", "/u/", "/feeds/")


STORAGE_PAGE = (
    "The database cannot be read or written just now (the server's log says why: a "
    "storage error). Nothing was changed; try again later."
)


async def storage_fault(request: Request, exc: Exception) -> Response:
    """A damaged, locked or unreachable database: one log line naming the file and the
    hint, and a 503 page (it was a bare 500 and a 60-frame traceback per request)."""
    log.error("storage error: %s %s: %s", request.method, request.url.path, exc)
    response = PlainTextResponse(STORAGE_PAGE, status_code=503)
    response.headers["Retry-After"] = "60"
    return add_headers(response)


def _resolve_user(sessions: sessionmaker[Session], token: str) -> object:
    with sessions() as session:
        return session_user(session, token, now_utc())


def _holds_nul(request: Request) -> bool:
    """A NUL in the path or the query: no address of the site has one, and PostgreSQL
    refuses it in any text it is compared with (a feed token, a filter: a 500)."""
    raw = request.scope.get("raw_path", b"") + b"?" + request.scope.get("query_string", b"")
    return b"%00" in raw or b"\x00" in raw or "\x00" in request.url.path


class LoginGate(BaseHTTPMiddleware):
    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        site: Site = request.app.state.site
        if _holds_nul(request):
            return add_headers(PlainTextResponse("no address holds a NUL", status_code=400))
        request.state.user = None
        request.state.session_id = None
        token = request.cookies.get(SESSION_COOKIE, "")
        if token:
            try:
                found = await run_in_threadpool(_resolve_user, site.sessions, token)
            except StorageError as exc:  # before the routes: their handler is not reached
                return await storage_fault(request, exc)
            if found is not None:
                request.state.session_id, request.state.user = found  # type: ignore[misc]
        path = route_path(request)
        if request.state.user is None and not path.startswith(PUBLIC_PREFIXES):
            if path.startswith("/api/") or path == "/api":
                response: Response = JSONResponse({"error": "login required"}, status_code=401)
                response.headers["WWW-Authenticate"] = 'Cookie realm="chipwatch"'
            elif request.method in {"GET", "HEAD"}:
                next_path = path if path != "/" else "/stories"
                response = RedirectResponse(url(request, f"/login?next={next_path}"), 303)
            else:
                response = PlainTextResponse("login required", status_code=401)
            return add_headers(response)
        return add_headers(await call_next(request))


def _home(request: Request) -> Response:
    return RedirectResponse(url(request, "/stories"), status_code=303)


def routes() -> list[Route | Mount]:
    return [
        Route("/", _home),
        Route("/login", account.login_page, methods=["GET"]),
        Route("/login", account.login_action, methods=["POST"]),
        Route("/logout", account.logout_action, methods=["POST"]),
        Route("/account", account.account_page, methods=["GET"]),
        Route("/account/digest", account.subscription_action, methods=["POST"]),
        Route("/stories", stories.stories_page, methods=["GET"]),
        Route("/articles/{article_id}", articles.article_page, methods=["GET"]),
        Route("/articles/{article_id}/label", articles.label_action, methods=["POST"]),
        Route("/articles/{article_id}/undo", articles.undo_action, methods=["POST"]),
        Route("/articles/{article_id}/corpus", articles.corpus_action, methods=["POST"]),
        Route("/articles/{article_id}/mark", articles.mark_action, methods=["POST"]),
        Route("/articles/{article_id}/story", articles.story_action, methods=["POST"]),
        Route("/topics", topics.topics_page, methods=["GET"]),
        Route("/topics", topics.add_topic_action, methods=["POST"]),
        Route("/topics/suggestions", topics.suggestions_page, methods=["GET"]),
        Route("/topics/suggestions", topics.decision_action, methods=["POST"]),
        Route("/sources", sources.sources_page, methods=["GET"]),
        Route("/sources/{source_id:int}/enabled", sources.enable_action, methods=["POST"]),
        Route("/sources/add", sources.add_action, methods=["POST"]),
        Route("/sources/opml", sources.opml_action, methods=["POST"]),
        Route("/outbox", sources.outbox_page, methods=["GET"]),
        Route("/d/{token}", digest_links.correction_page, methods=["GET"]),
        Route("/d/{token}", digest_links.correction_action, methods=["POST"]),
        Route("/u/{token}", digest_links.unsubscribe_page, methods=["GET"]),
        Route("/u/{token}", digest_links.unsubscribe_action, methods=["POST"]),
        Route("/feeds/{token}/{topic}.xml", api.atom_feed, methods=["GET"]),
        Route("/api/stories", api.stories_json, methods=["GET"]),
        Route("/api/articles/{article_id:int}", api.article_json, methods=["GET"]),
        Route("/api/labels", api.labels_json, methods=["GET"]),
        Mount("/static", app=StaticFiles(directory=STATIC), name="static"),
    ]


def create_app(settings: Settings, sessions: sessionmaker[Session]) -> Starlette:
    app = Starlette(
        routes=routes(),
        middleware=[Middleware(LoginGate)],
        exception_handlers={StorageError: storage_fault},
    )
    app.state.site = Site(
        settings=settings,
        sessions=sessions,
        secret=site_secret(settings.data_dir),
        limiter=LoginLimiter(settings.web.login_attempts),
        env=make_environment(),
    )
    return app
