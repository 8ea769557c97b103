"""Turn stories into the digest's subject, HTML and plain-text parts.

Each story goes in one section: its primary topic (the highest summed topic score among
the recipient's topics), with its other topics shown as tags, so the per-topic counts of
the subject add up to the number of stories. Stories with no topic go to "novel".

Safety: every string that came from a feed was reduced to plain text in select.py (tags
and script content stripped) and is escaped again by Jinja2's autoescape; links are only
rendered when `safe_url` accepted them (http/https); the templates contain no images, so
nothing remote is loaded when the mail is opened.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from chipwatch.digest.links import DigestLinks
from chipwatch.digest.select import DigestItem, excerpt, plain_text, safe_url
from chipwatch.digest.stories import Story
from chipwatch.settings import DigestSettings, Recipient
from chipwatch.types import Topic

TEMPLATES = Path(__file__).parent / "templates"
NOVEL = "novel"

# Short names for the subject line. Topic has no short-name field; unknown ids fall back
# to their last word(s).
SHORT_NAMES = {
    "ai-chip-licensing": "licensing",
    "rare-earths-leverage": "rare earths",
    "security-debate": "security",
    "chipmaker-stakes": "chipmakers",
    "china-response": "China response",
    NOVEL: "novel",
}


@dataclass(frozen=True)
class FeedHealth:
    """What the footer says about one feed."""

    name: str
    url: str
    enabled: bool
    consecutive_errors: int
    last_error: str | None = None
    polled: bool = True  # polled successfully at least once


@dataclass(frozen=True)
class Section:
    topic_id: str
    name: str
    short_name: str
    stories: tuple[Story, ...]
    left_out: int = 0  # stories over max_items_per_topic, kept for the next digest


@dataclass(frozen=True)
class RenderedDigest:
    subject: str
    html: str
    text: str
    article_ids: tuple[int, ...]  # every article shown (leads and "also in")
    sections: tuple[Section, ...]

    @property
    def story_count(self) -> int:
        return sum(len(s.stories) for s in self.sections)


def short_name(topic_id: str) -> str:
    if topic_id in SHORT_NAMES:
        return SHORT_NAMES[topic_id]
    return topic_id.replace("-", " ").replace("_", " ")


def primary_topic(story: Story, allowed: Sequence[str]) -> str:
    weights = story.topic_weights()
    wanted = {t: w for t, w in weights.items() if not allowed or t in allowed}
    if not wanted:
        return NOVEL
    return max(sorted(wanted), key=lambda t: wanted[t])


def build_sections(
    stories: Sequence[Story],
    topics: Sequence[Topic],
    recipient: Recipient,
    max_items: int,
) -> tuple[Section, ...]:
    """Stories (already ranked) into sections in the order of the topic list, novel last."""
    by_topic: dict[str, list[Story]] = {}
    for story in stories:
        topic = NOVEL if story.novel else primary_topic(story, recipient.topics)
        if topic == NOVEL and not recipient.include_novel:
            continue
        by_topic.setdefault(topic, []).append(story)
    names = {t.id: t.name for t in topics}
    order = [t.id for t in topics] + sorted(set(by_topic) - set(names) - {NOVEL}) + [NOVEL]
    sections = []
    for topic_id in order:
        found = by_topic.get(topic_id)
        if not found:
            continue
        name = "Novel: no topic yet" if topic_id == NOVEL else names.get(topic_id, topic_id)
        sections.append(
            Section(
                topic_id=topic_id,
                name=name,
                short_name=short_name(topic_id),
                stories=tuple(found[:max_items]),
                left_out=max(len(found) - max_items, 0),
            )
        )
    return tuple(sections)


def subject_line(prefix: str, sections: Sequence[Section]) -> str:
    total = sum(len(s.stories) for s in sections)
    if total == 0:
        return f"{prefix}: nothing new"
    parts = [f"{total} {'story' if total == 1 else 'stories'}"]
    parts += [f"{len(s.stories)} {s.short_name}" for s in sections]
    return f"{prefix}: " + ", ".join(parts)


def _format_date(value: datetime | None) -> str:
    return value.strftime("%d %b %Y %H:%M UTC") if value else ""


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        # Autoescape every HTML template; the .txt templates are plain text by design.
        autoescape=lambda name: (name or "").endswith(".html.j2"),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["date"] = _format_date
    env.filters["day"] = lambda value: value.strftime("%d %b %Y")
    env.filters["pct"] = lambda value: f"{float(value):.2f}"
    env.filters["safe_url"] = safe_url
    env.filters["short"] = lambda value, n=160: excerpt(plain_text(str(value or "")), n)
    env.filters["topic_short"] = short_name
    return env


_ENV = _environment()


def why(item: DigestItem) -> str:
    """One line of evidence: the classifier's sentence, else the matched terms; then what
    the classifier read (a headline-only judgement is weaker, the reader should know)."""
    if item.evidence_summary:
        reason = item.evidence_summary
    else:
        terms = sorted({t for values in item.matched_terms.values() for t in values})
        reason = "matched: " + ", ".join(terms[:8]) if terms else ""
    read = TEXT_KIND_NOTES.get(item.text_kind or "")
    if not read:
        return reason
    return f"{reason} ({read})" if reason else read.capitalize()


# What the classifier read, by `chipwatch.types.TextKind` value.
TEXT_KIND_NOTES = {
    "headline": "judged on the headline only",
    "summary": "judged on the feed's summary",
    "full": "judged on the article's text",
}


def feed_problems(health: Sequence[FeedHealth]) -> tuple[list[FeedHealth], list[FeedHealth]]:
    failing = [h for h in health if h.enabled and h.consecutive_errors > 0]
    disabled = [h for h in health if not h.enabled]
    return failing, disabled


def render_digest(
    stories: Sequence[Story],
    topics: Sequence[Topic],
    recipient: Recipient,
    digest: DigestSettings,
    health: Sequence[FeedHealth],
    now: datetime,
    links: DigestLinks | None = None,
) -> RenderedDigest:
    """`links`: the review site's signed links per item, and the unsubscribe link."""
    sections = build_sections(stories, topics, recipient, digest.max_items_per_topic)
    subject = subject_line(digest.subject_prefix, sections)
    failing, disabled = feed_problems(health)
    context = {
        "subject": subject,
        "sections": sections,
        "recipient": recipient.address,
        "generated": now,
        "failing": failing,
        "disabled": disabled,
        # "all feeds OK" only once they were polled: before, nothing is known.
        "unpolled": sum(1 for h in health if h.enabled and not h.polled),
        "why": why,
        "topic_names": {t.id: t.name for t in topics},
        "lookback_days": digest.lookback_days,
        # The window select_items used: publication times from here to now.
        "window_start": now - timedelta(days=digest.lookback_days),
        "counts": Counter(s.topic_id for s in sections),
        "links": links,
    }
    ids = tuple(i for s in sections for story in s.stories for i in story.article_ids)
    return RenderedDigest(
        subject=subject,
        html=_ENV.get_template("digest.html.j2").render(context),
        text=_ENV.get_template("digest.txt.j2").render(context),
        article_ids=ids,
        sections=sections,
    )


def render_alert(story: Story, topic: Topic, prefix: str, now: datetime) -> tuple[str, str, str]:
    """Subject, HTML and text of a short immediate alert about one story."""
    subject = f"{prefix} alert: {short_name(topic.id)}: {excerpt(story.lead.title, 90)}"
    context = {"subject": subject, "story": story, "topic": topic, "generated": now, "why": why}
    return (
        subject,
        _ENV.get_template("alert.html.j2").render(context),
        _ENV.get_template("alert.txt.j2").render(context),
    )
