"""The sources page (health, enable/disable, add by URL or OPML) and the outbox page."""

from __future__ import annotations

from collections.abc import Sequence

from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from chipwatch.errors import ChipwatchError
from chipwatch.store.review import set_source_enabled
from chipwatch.web.site import form_action, page, redirect, render, row_id, site_of, user_of

MAX_OPML_BYTES = 2 * 1024 * 1024


def _health_rows(request: Request, error: str = "", report: Sequence[str] = ()) -> Response:
    from chipwatch.pipeline import sync_config_sources
    from chipwatch.store.sources import feed_health

    site = site_of(request)
    sync_config_sources(site.settings, site.sessions)
    with site.sessions() as session:
        feeds = feed_health(session)
    return render(
        request,
        "sources.html.j2",
        status_code=400 if error else 200,
        feeds=feeds,
        error=error,
        report=list(report),
    )


@page
def sources_page(request: Request) -> Response:
    return _health_rows(request)


def _enable(request: Request, form: FormData) -> Response:
    site, user = site_of(request), user_of(request)
    on = form.get("enabled") == "1"
    with site.sessions.begin() as session:
        found = set_source_enabled(
            session, row_id(request, "source_id"), on, f"disabled by {user.name}"
        )
    if not found:
        raise HTTPException(404)
    return redirect(request, "/sources", "source-on" if on else "source-off")


def _add(request: Request, form: FormData) -> Response:
    from chipwatch.manage import add_feed

    feed_url = str(form.get("url", "")).strip()
    if not feed_url.startswith(("http://", "https://")):
        return _health_rows(request, "A feed address starts with http:// or https://.")
    try:
        name = str(form.get("name", "")).strip() or None  # too long: said, not cut
        add_feed(site_of(request).settings, feed_url, name)
    except ChipwatchError as exc:
        return _health_rows(request, f"Not added: {exc}")
    return redirect(request, "/sources", "source-added")


def _opml(request: Request, form: FormData) -> Response:
    from chipwatch.opml import parse_opml
    from chipwatch.store.source_admin import apply_tags, without_duplicates
    from chipwatch.store.sources import sync_sources

    upload = form.get("opml")
    if not isinstance(upload, UploadFile):
        return _health_rows(request, "Choose an OPML file.")
    data = upload.file.read(MAX_OPML_BYTES + 1)
    if len(data) > MAX_OPML_BYTES:
        return _health_rows(request, "The OPML file is larger than 2 MiB.")
    try:
        read = parse_opml(data, upload.filename or "OPML")
    except ChipwatchError as exc:
        return _health_rows(request, f"Not imported: {exc}")
    with site_of(request).sessions.begin() as session:
        kept, refused = without_duplicates(session, list(read.sources))
        report = sync_sources(session, kept)
        apply_tags(session, kept)
    if not (read.skipped or refused):
        return redirect(request, "/sources", "opml")
    # What was left out is said, outline by outline, as `feeds import` prints it.
    left_out = [
        *read.skipped,
        *(f"refused: {url} is the same feed as {known}" for url, known in refused),
    ]
    summary = (
        f"OPML imported: {len(report.added)} new feeds, {len(report.updated)} updated, "
        f"{report.unchanged} unchanged; {len(left_out)} left out:"
    )
    return _health_rows(request, report=[summary, *left_out])


@page
def outbox_page(request: Request) -> Response:
    from chipwatch.digest import list_outbox

    with site_of(request).sessions() as session:
        entries = list_outbox(session, limit=200)
    return render(request, "outbox.html.j2", entries=entries)


enable_action = form_action(_enable)
add_action = form_action(_add)
opml_action = form_action(_opml)
