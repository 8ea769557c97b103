"""Where a digest's signed links lead: a confirmation page (GET changes nothing: mail
scanners follow links) and the POST that records the correction or the unsubscribe."""

from __future__ import annotations

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from chipwatch.digest.select import plain_text
from chipwatch.store.labels import relabel
from chipwatch.store.review import article_detail, unsubscribe
from chipwatch.web.signing import (
    NOT_RELEVANT,
    UNSUBSCRIBE,
    WRONG_TOPIC,
    BadLink,
    LinkClaim,
    verify,
)
from chipwatch.web.site import form_action, now_utc, page, render, site_of

CORRECTIONS = frozenset({NOT_RELEVANT, WRONG_TOPIC})


def _claim(request: Request, actions: frozenset[str]) -> LinkClaim | Response:
    site = site_of(request)
    try:
        return verify(site.secret, request.path_params["token"], actions, now_utc())
    except BadLink as exc:
        return render(request, "link_refused.html.j2", status_code=403, reason=str(exc))


@page
def correction_page(request: Request) -> Response:
    claim = _claim(request, CORRECTIONS)
    if isinstance(claim, Response):
        return claim
    site = site_of(request)
    with site.sessions() as session:
        detail = article_detail(session, claim.article_id)
        title = plain_text(detail.article.title) if detail else ""
        current = (
            tuple(detail.classification.topics or ()) if detail and detail.classification else ()
        )
    if detail is None:
        return render(request, "link_refused.html.j2", status_code=404, reason="no such article")
    return render(
        request,
        "correction.html.j2",
        claim=claim,
        title=title,
        current=current,
        topics=site.topics(),
        done=False,
    )


def _correct(request: Request, form: FormData) -> Response:
    claim = _claim(request, CORRECTIONS)
    if isinstance(claim, Response):
        return claim
    site = site_of(request)
    known = [t.id for t in site.topics()]
    if claim.action == NOT_RELEVANT:
        relevant, topics = False, []
    else:
        chosen = {str(v) for v in form.getlist("topic")}
        relevant, topics = True, [t for t in known if t in chosen]
    with site.sessions.begin() as session:
        if article_detail(session, claim.article_id) is None:
            return render(
                request, "link_refused.html.j2", status_code=404, reason="no such article"
            )
        relabel(session, claim.article_id, relevant, topics, claim.recipient, now_utc())
    return render(
        request,
        "correction.html.j2",
        claim=claim,
        title="",
        current=tuple(topics),
        topics=site.topics(),
        done=True,
    )


@page
def unsubscribe_page(request: Request) -> Response:
    claim = _claim(request, frozenset({UNSUBSCRIBE}))
    if isinstance(claim, Response):
        return claim
    return render(request, "unsubscribe.html.j2", claim=claim, done=False)


def _unsubscribe(request: Request, form: FormData) -> Response:
    claim = _claim(request, frozenset({UNSUBSCRIBE}))
    if isinstance(claim, Response):
        return claim
    with site_of(request).sessions.begin() as session:
        unsubscribe(session, claim.recipient, now_utc())
    return render(request, "unsubscribe.html.j2", claim=claim, done=True)


correction_action = form_action(_correct)
# RFC 8058: the mail client POSTs "List-Unsubscribe=One-Click" with no cookie; the signed
# link is the authority, so this one POST takes no CSRF token.
unsubscribe_action = form_action(_unsubscribe, csrf=False)
