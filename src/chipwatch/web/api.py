"""Machine-readable: JSON under /api/ (behind the login like every page) and the per-topic
Atom feeds under /feeds/<the user's feed token>/<topic>.xml (for feed readers, which
cannot log in)."""

from __future__ import annotations

from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from chipwatch.digest.render import NOVEL, primary_topic
from chipwatch.digest.select import DigestItem
from chipwatch.digest.stories import Story
from chipwatch.store.labels import list_labels
from chipwatch.store.review import article_detail
from chipwatch.store.users import user_by_feed_token
from chipwatch.web.site import now_utc, page, row_id, site_of
from chipwatch.web.stories import Filters, group, live_items, request_filters


def article_entry(item: DigestItem) -> dict[str, Any]:
    # canonical_url: the stored URL until the store keeps a canonical one beside it.
    return {
        "id": item.article_id,
        "url": item.url,
        "canonical_url": item.url,
        "title": item.title,
        "language": item.language,
        "outlet": item.source_name,
    }


def story_entry(story: Story) -> dict[str, Any]:
    """One story in the schema of `chipwatch stories --json`."""
    topics = sorted(story.topic_weights(), key=lambda t: -story.topic_weights()[t])
    return {
        "id": story.key,
        "lead": story.lead.article_id,
        "topics": topics,
        "articles": [article_entry(item) for item in story.items],
    }


@page
def stories_json(request: Request) -> Response:
    site = site_of(request)
    filters = request_filters(request, strict=True)
    with site.sessions() as session:
        items = live_items(session, site, filters)
        grouped = group(session, items)
    stories = sorted(grouped, key=lambda s: (s.latest, s.key), reverse=True)
    return JSONResponse({"stories": [story_entry(s) for s in stories]})


@page
def article_json(request: Request) -> Response:
    site = site_of(request)
    with site.sessions() as session:
        detail = article_detail(session, row_id(request, "article_id"))
        if detail is None:
            raise HTTPException(404)
        a, c, label = detail.article, detail.classification, detail.label
        body: dict[str, Any] = {
            "id": a.id,
            "url": a.url,
            "canonical_url": a.url,
            "title": a.title,
            "language": a.language,
            "outlet": a.source_name,
            "published": a.published_at.isoformat(),
            "classification": None
            if c is None
            else {
                "relevant": c.relevant,
                "relevance": c.relevance,
                "topics": c.topics,
                "topic_scores": c.topic_scores,
                "novel": c.novel,
                "evidence": c.evidence,
            },
            "label": None
            if label is None
            else {"relevant": label.relevant, "topics": label.topics},
        }
    return JSONResponse(body)


@page
def labels_json(request: Request) -> Response:
    with site_of(request).sessions() as session:
        labels = list_labels(session)
    return JSONResponse(
        {
            "labels": [
                {
                    "article_id": lb.article_id,
                    "relevant": lb.relevant,
                    "topics": list(lb.topics),
                    "created_at": lb.created_at.isoformat(),
                }
                for lb in labels
            ]
        }
    )


@page
def atom_feed(request: Request) -> Response:
    from chipwatch.digest.atom import build_feed

    site = site_of(request)
    with site.sessions() as session:
        user = user_by_feed_token(session, request.path_params["token"])
        if user is None:
            raise HTTPException(404)
        items = live_items(session, site, Filters(days=site.settings.digest.lookback_days))
        grouped = group(session, items)
    topic_id = request.path_params["topic"]
    names = {t.id: t.name for t in site.topics()} | {NOVEL: "Novel: no topic yet"}
    if topic_id not in names:
        raise HTTPException(404)
    chosen = [s for s in grouped if (NOVEL if s.novel else primary_topic(s, ())) == topic_id]
    return Response(
        build_feed(topic_id, names[topic_id], chosen, now_utc()),
        media_type="application/atom+xml; charset=utf-8",
    )
