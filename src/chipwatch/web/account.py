"""Log in, log out, and the account page (Atom feed links, digest subscription)."""

from __future__ import annotations

import functools
from datetime import timedelta

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from chipwatch.digest.render import NOVEL
from chipwatch.store.review import is_unsubscribed, resubscribe, unsubscribe
from chipwatch.store.users import close_session, open_session, password_hash_of
from chipwatch.web.passwords import verify_password
from chipwatch.web.security import SESSION_COOKIE, set_cookie
from chipwatch.web.site import form_action, now_utc, page, redirect, render, site_of, url, user_of

# Only a local path may follow a login: never another site (an open redirect).
_SAFE_NEXT = ("/stories", "/articles/", "/topics", "/sources", "/outbox", "/account", "/d/")


def safe_next(value: str) -> str:
    return value if value.startswith(_SAFE_NEXT) and "//" not in value else "/stories"


@page
def login_page(request: Request) -> Response:
    return render(request, "login.html.j2", next=safe_next(request.query_params.get("next", "")))


def _login(request: Request, form: FormData) -> Response:
    site = site_of(request)
    name = str(form.get("name", ""))[:100]
    password = str(form.get("password", ""))
    target = safe_next(str(form.get("next", "")))
    client = request.client.host if request.client else "unknown"
    keys = [f"name:{name.casefold()}", f"addr:{client}"]
    wait, ticket = site.limiter.attempt(keys)
    if wait:
        refused = render(
            request,
            "login.html.j2",
            status_code=429,
            next=target,
            error=f"Too many failed logins: try again in {wait // 60 + 1} minutes.",
        )
        refused.headers["Retry-After"] = str(wait)
        return refused
    with site.sessions.begin() as session:
        found = password_hash_of(session, name)
        # A missing name still pays for one hash, so timing does not tell names apart.
        ok = verify_password(password, found[1] if found else _dummy_hash())
        if not (found and ok):  # the attempt stays counted as failed
            return render(
                request,
                "login.html.j2",
                status_code=401,
                next=target,
                error="Wrong name or password.",
            )
        token = open_session(
            session, found[0], now_utc(), timedelta(hours=site.settings.web.session_hours)
        )
    site.limiter.succeeded(keys, ticket)
    response: Response = redirect(request, target)
    set_cookie(
        response,
        request,
        SESSION_COOKIE,
        token,
        samesite="lax",
        max_age=site.settings.web.session_hours * 3600,
    )
    return response


@functools.cache
def _dummy_hash() -> str:
    from chipwatch.web.passwords import hash_password

    return hash_password("not a password")


def _logout(request: Request, form: FormData) -> Response:
    token = request.cookies.get(SESSION_COOKIE, "")
    with site_of(request).sessions.begin() as session:
        close_session(session, token)
    response = redirect(request, "/login")
    response.delete_cookie(SESSION_COOKIE, path=url(request, "") or "/")
    return response


@page
def account_page(request: Request) -> Response:
    site, user = site_of(request), user_of(request)
    with site.sessions() as session:
        unsubscribed = bool(user.email) and is_unsubscribed(session, user.email or "")
    base = site.settings.web.public_url.rstrip("/")
    feeds = [(t.id, t.name) for t in site.topics()] + [(NOVEL, "Novel: no topic yet")]
    return render(
        request,
        "account.html.j2",
        feeds=[(name, f"{base}/feeds/{user.feed_token}/{tid}.xml") for tid, name in feeds],
        unsubscribed=unsubscribed,
    )


def _subscription(request: Request, form: FormData) -> Response:
    site, user = site_of(request), user_of(request)
    if user.email:
        with site.sessions.begin() as session:
            if form.get("digest") == "on":
                resubscribe(session, user.email)
            else:
                unsubscribe(session, user.email, now_utc())
    return redirect(request, "/account", "subscribed")


login_action = form_action(_login)
logout_action = form_action(_logout)
subscription_action = form_action(_subscription)
