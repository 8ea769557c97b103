"""`chipwatch stories`: every relevant stored article in exactly one story, as JSON.

Schema (one JSON array):

    [{"id": 17, "lead": 17, "topics": ["ai-chip-licensing"],
      "articles": [{"id": 17, "url": "...", "canonical_url": "...", "title": "...",
                    "language": "en", "outlet": "..."}, ...]}, ...]

`id` is the story id (its first article's id, stable as the story grows); `lead` is the
article the digest shows first; `url` is the link as the feed gave it, `canonical_url`
the same without tracking parameters or fragment. Stories are in order of their first
article; articles in order of publication. Singletons are stories too.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from chipwatch.digest.assign import StoryAssigner
from chipwatch.digest.grouping import GroupingParams
from chipwatch.digest.select import MATCH_TEXT_CHARS, UNTITLED, title_and_lead, to_item
from chipwatch.digest.stories import Embedder, GroupingItem, default_embedder, make_story
from chipwatch.extract import canonical_url
from chipwatch.store import stories as repo
from chipwatch.store.classifications import ClassifiedArticle

EXCERPT_CHARS = 300  # the export carries no excerpt; the items need one for the lead choice
GROUP_BATCH = 5000  # articles loaded (and committed) at a time when grouping a backlog


def group_all(
    session: Session, embed: Embedder | None = None, params: GroupingParams | None = None
) -> int:
    """Group every relevant stored article not in a story yet, a batch at a time, oldest
    first, against one open window (nothing is loaded twice); returns how many."""
    params = params or GroupingParams()
    earliest = repo.earliest_ungrouped(session)
    if earliest is None:
        return 0
    since = earliest - timedelta(days=params.window_days)
    assigner = StoryAssigner(session, since, embed or default_embedder(), params)
    done, after = 0, None
    while rows := repo.ungrouped_relevant(session, limit=GROUP_BATCH, after=after):
        items = [grouping_item(row) for row in rows]
        assigner.add(items)
        session.commit()
        session.expunge_all()  # the batch's rows are not needed any more
        done += len(items)
        after = (rows[-1].published_at, rows[-1].id)
    return done


def grouping_item(row: repo.UngroupedArticle) -> GroupingItem:
    """The article as grouping reads it: headline and lead cleaned as for the digest."""
    title, text = title_and_lead(row.title, row.text)
    return GroupingItem(
        article_id=row.id,
        title=title or UNTITLED,
        text=text[:MATCH_TEXT_CHARS],
        language=row.language,
        published=row.published_at,
    )


def export_stories(
    session: Session, since: datetime | None = None, embed: Embedder | None = None
) -> list[dict[str, Any]]:
    """The stories (those with an article published since `since`, or all), as dicts."""
    group_all(session, embed)
    by_story: dict[int, list[ClassifiedArticle]] = {}
    for story_id, row in repo.grouped_relevant(session, since):
        by_story.setdefault(story_id, []).append(row)
    return [_story(story_id, members) for story_id, members in sorted(by_story.items())]


def _story(story_id: int, members: Sequence[ClassifiedArticle]) -> dict[str, Any]:
    items = [to_item(row, EXCERPT_CHARS) for row in members]
    story = make_story(items, story_id=story_id)
    weights = story.topic_weights()
    return {
        "id": story_id,
        "lead": story.lead.article_id,
        "topics": sorted(weights, key=lambda t: (-weights[t], t)),
        "articles": [_article(article) for article in members],
    }


def _article(article: ClassifiedArticle) -> dict[str, Any]:
    return {
        "id": article.id,
        "url": article.url,
        "canonical_url": canonical_url(article.url),
        "title": article.title,
        "language": article.language,
        "outlet": article.source_name,
    }


def story_lines(stories: Sequence[dict[str, Any]]) -> list[str]:
    """The plain listing (without --json): one line per story, its articles under it."""
    lines = []
    for story in stories:
        lead = next(a for a in story["articles"] if a["id"] == story["lead"])
        count = len(story["articles"])
        lines.append(f"story {story['id']}: {lead['title']} ({count} article{'s' * (count > 1)})")
        for article in story["articles"]:
            if article["id"] != story["lead"]:
                lines.append(f"    {article['title']} ({article['outlet']}, {article['language']})")
    return lines
