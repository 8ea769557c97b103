"""The stories page: the live digest (every classified article of the window, delivered
or not), in the stories stored for the digest (the same stories as the digest, the Atom
feeds and `chipwatch stories`), by topic then "novel", newest first, with filters and
full-text search."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import timedelta

from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import Response

from chipwatch.digest.assign import stored_stories
from chipwatch.digest.render import NOVEL, Section, build_sections
from chipwatch.digest.select import DigestItem, select_items
from chipwatch.digest.stories import Story
from chipwatch.settings import Recipient
from chipwatch.store.classifications import article_languages
from chipwatch.store.review import Marks, marks_of, story_marks
from chipwatch.store.search import search_article_ids
from chipwatch.store.sources import list_sources
from chipwatch.web.site import Site, float_param, int_param, now_utc, page, render, site_of, user_of

SHOW = ("all", "unread", "starred", "followed", "muted")
MAX_DAYS = 3650  # the digest's lookback_days allows as much


def group(session: Session, items: Sequence[DigestItem]) -> list[Story]:
    """The items in their stored stories, the one place the site asks for stories.

    An article not grouped yet is grouped (and stored) as the digest would group it, so
    the page never shows a grouping of its own: a story here is the digest's story."""
    return stored_stories(session, items)


@dataclass(frozen=True)
class Filters:
    topic: str = ""  # a topic id, "novel", or "" for all
    language: str = ""
    source: str = ""  # source name as shown
    days: int = 7
    min_relevance: float = 0.5
    q: str = ""
    show: str = "all"

    @classmethod
    def from_query(
        cls,
        params: dict[str, str],
        default_relevance: float,
        default_days: int = 7,
        strict: bool = False,
    ) -> Filters:
        """The filters of a request; without `days`, the digest's own window. `strict`:
        a malformed number is a 400, not the default (site.int_param)."""
        show = params.get("show", "all")
        return cls(
            topic=params.get("topic", "")[:100],
            language=params.get("language", "")[:8],
            source=params.get("source", "")[:300],
            days=int_param(params, "days", min(default_days, MAX_DAYS), 1, MAX_DAYS, strict),
            min_relevance=float_param(params, "min", default_relevance, strict),
            q=params.get("q", "")[:200],
            show=show if show in SHOW else "all",
        )


def live_items(session: Session, site: Site, filters: Filters) -> list[DigestItem]:
    recipient = Recipient(
        address="review",
        topics=(filters.topic,) if filters.topic and filters.topic != NOVEL else (),
        min_relevance=filters.min_relevance,
        languages=(filters.language,) if filters.language else (),
        include_novel=filters.topic in ("", NOVEL),
    )
    if filters.topic == NOVEL:
        recipient = replace(recipient, topics=(NOVEL,))  # no article carries it: novel only
    window = replace(site.settings.digest, lookback_days=filters.days)
    items = select_items(session, recipient, window, now_utc(), include_delivered=True)
    if filters.source:
        items = [item for item in items if item.source_name == filters.source]
    if filters.q:
        found = set(search_article_ids(session, filters.q, limit=5000))
        items = [item for item in items if item.article_id in found]
    return items


def keep(story: Story, show: str, marks: Marks, story_state: dict[int, str]) -> bool:
    ids = set(story.article_ids)
    states = {story_state[i] for i in ids if i in story_state}
    if show == "muted":
        return "mute" in states
    if "mute" in states:
        return False  # muted stories only under "muted"
    if show == "unread":
        return not ids <= marks.read
    if show == "starred":
        return bool(ids & marks.starred)
    if show == "followed":
        return "follow" in states
    return True


@dataclass(frozen=True)
class StoryView:
    story: Story
    read: bool
    starred: bool
    state: str  # "", mute or follow


def sections_for(request: Request, filters: Filters) -> tuple[list[Section], dict[str, StoryView]]:
    site, user = site_of(request), user_of(request)
    with site.sessions() as session:
        items = live_items(session, site, filters)
        marks = marks_of(session, user.id, [item.article_id for item in items])
        states = story_marks(session, user.id)
        grouped = group(session, items)
    stories = [s for s in grouped if keep(s, filters.show, marks, states)]
    stories.sort(key=lambda s: (s.latest, s.key), reverse=True)  # newest first
    recipient = Recipient(
        address=user.name,
        topics=(filters.topic,) if filters.topic and filters.topic != NOVEL else (),
    )
    sections = list(build_sections(stories, site.topics(), recipient, max_items=200))
    views = {
        story.key: StoryView(
            story=story,
            read=set(story.article_ids) <= marks.read,
            starred=bool(set(story.article_ids) & marks.starred),
            state=next((states[i] for i in story.article_ids if i in states), ""),
        )
        for section in sections
        for story in section.stories
    }
    return sections, views


def filter_choices(site: Site) -> dict[str, list[str]]:
    with site.sessions() as session:
        sources = sorted({row.name or row.url for row in list_sources(session)})
        languages = article_languages(session)
    return {"sources": sources, "languages": languages}


def request_filters(request: Request, strict: bool = False) -> Filters:
    """The filters of a stories request, with the site's defaults (threshold, window)."""
    settings = site_of(request).settings
    return Filters.from_query(
        dict(request.query_params),
        settings.classify.relevance_threshold,
        settings.digest.lookback_days,
        strict,
    )


@page
def stories_page(request: Request) -> Response:
    site = site_of(request)
    filters = request_filters(request)
    sections, views = sections_for(request, filters)
    return render(
        request,
        "stories.html.j2",
        sections=sections,
        views=views,
        filters=filters,
        choices=filter_choices(site),
        topics=site.topics(),
        show_options=SHOW,
        total=len(views),
        window=timedelta(days=filters.days),
    )
