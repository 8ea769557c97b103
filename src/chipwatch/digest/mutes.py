"""Stories a reader muted in the review site stay out of their digests, later articles too.

A mute is stored on the articles the story had (store.review.StoryMarkRow). The muted
articles are grouped together with the new candidates, so that a new article that joins
a muted story is recognised, and every story holding a muted article is left out.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from sqlalchemy.orm import Session

from chipwatch.digest.select import DigestItem, items_by_ids
from chipwatch.digest.stories import Story
from chipwatch.store.review import muted_article_ids

Grouper = Callable[[Sequence[DigestItem]], list[Story]]


def without_muted(
    session: Session, address: str, items: Sequence[DigestItem], group: Grouper
) -> list[Story]:
    muted = muted_article_ids(session, address)
    if not muted:
        return group(items)
    present = {item.article_id for item in items}
    extra = items_by_ids(session, sorted(muted - present))
    return [story for story in group([*items, *extra]) if not muted & set(story.article_ids)]
