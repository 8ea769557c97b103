"""The topics page: each topic's examples (corpus documents and labelled articles), its
figures (articles in the last 7 days, a 90-day chart), and `topics suggest`'s proposals
with accept (added to the user's topics file) or dismiss."""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from markupsafe import Markup
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from chipwatch.digest.render import NOVEL
from chipwatch.errors import ConfigError
from chipwatch.settings import Settings
from chipwatch.store.labels import relabel
from chipwatch.store.review import (
    article_detail,
    decide_topic,
    labelled_examples,
    marks_of,
    topic_daily_counts,
    topic_decisions,
)
from chipwatch.types import MAX_ROW_ID
from chipwatch.web.articles import current_topics
from chipwatch.web.charts import bar_chart, daily_series
from chipwatch.web.site import (
    Site,
    form_action,
    now_utc,
    page,
    redirect,
    render,
    site_of,
    user_of,
)

CHART_DAYS = 90
EXAMPLES_SHOWN = 5
SUGGEST_DAYS = 30
SUGGEST_COUNT = 5


@dataclass(frozen=True)
class TopicView:
    id: str
    name: str
    description: str
    week: int
    total: int
    chart: Markup
    corpus: list[str]
    labelled: list[tuple[int, str]]


def _views(site: Site) -> list[TopicView]:
    from chipwatch.classify import load_corpus

    now = now_utc()
    with site.sessions() as session:
        counts = topic_daily_counts(session, now - timedelta(days=CHART_DAYS))
        labelled = labelled_examples(session)
    corpus: dict[str, list[str]] = defaultdict(list)
    for doc in load_corpus(site.settings.corpus_dir):
        for topic in doc.topics:
            corpus[topic].append(doc.title or doc.id)
    entries = [(t.id, t.name, t.description) for t in site.topics()]
    entries.append((NOVEL, "Novel: no topic yet", "Relevant articles that match no topic."))
    views = []
    for topic_id, name, description in entries:
        series = daily_series(counts.get(topic_id, {}), now.date(), CHART_DAYS)  # type: ignore[arg-type]
        views.append(
            TopicView(
                id=topic_id,
                name=name,
                description=description,
                week=sum(n for _, n in series[-7:]),
                total=sum(n for _, n in series),
                chart=Markup(bar_chart(series, name)),  # noqa: S704 - built from escaped parts
                corpus=corpus.get(topic_id, [])[:EXAMPLES_SHOWN],
                labelled=[(i, title) for i, title, ts in labelled if topic_id in ts][
                    :EXAMPLES_SHOWN
                ],
            )
        )
    return views


@page
def topics_page(request: Request) -> Response:
    site, user = site_of(request), user_of(request)
    with site.sessions() as session:
        starred = sorted(marks_of(session, user.id).starred)
    return render(
        request, "topics.html.j2", views=_views(site), days=CHART_DAYS, starred=starred[:50]
    )


# --- suggestions -----------------------------------------------------------------------


@dataclass(frozen=True)
class Proposal:
    key: str
    size: int
    terms: tuple[str, ...]
    members: list[tuple[str, str]]  # (article id, title)


def proposals(site: Site) -> list[Proposal]:
    """What `chipwatch topics suggest` proposes now, less what was decided before."""
    from chipwatch.classify import suggest_topics
    from chipwatch.store.classifications import novel_since

    since = now_utc() - timedelta(days=SUGGEST_DAYS)
    with site.sessions() as session:
        novel = novel_since(session, since)
        decided = topic_decisions(session)
        titles = {item.id: item.title for item in novel}
    found = []
    for suggestion in suggest_topics(novel, SUGGEST_COUNT) if novel else []:
        key = hashlib.sha256(",".join(sorted(suggestion.member_ids)).encode()).hexdigest()[:32]
        if key in decided:
            continue
        found.append(
            Proposal(
                key=key,
                size=suggestion.size,
                terms=tuple(suggestion.label_terms),
                members=[(m, titles.get(m, "")) for m in suggestion.member_ids[:8]],
            )
        )
    return found


@page
def suggestions_page(request: Request) -> Response:
    return render(request, "suggestions.html.j2", proposals=proposals(site_of(request)))


def add_site_topic(
    settings: Settings, topic_id: str, name: str, description: str, terms: Sequence[str]
) -> None:
    """A topic from the site's forms, into the user's topics file as `chipwatch topics
    add` writes it (never the shipped topics); a refusal is a 400 naming the field."""
    from chipwatch.classify.topics import add_user_topic
    from chipwatch.settings import shipped_file

    target = settings.user_topics_path
    if shipped_file(target):
        raise HTTPException(
            400,
            "the shipped configuration is never written: run `chipwatch init` for an "
            "editable copy and serve with it",
        )
    try:
        add_user_topic(settings.topics_path, target, topic_id, name, description, {"en": terms})
    except ConfigError as exc:
        raise HTTPException(
            400, f"{exc.field}: {exc.message}" if exc.field else exc.message
        ) from None


def topic_id_for(name: str, known: set[str]) -> str:
    topic_id = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:60]
    if not topic_id or not topic_id[0].isalpha():
        topic_id = "topic-" + topic_id
    if topic_id in known:
        raise HTTPException(409, f"a topic {topic_id!r} exists already")
    return topic_id


def _decide(request: Request, form: FormData) -> Response:
    site = site_of(request)
    key = str(form.get("key", ""))
    decision = str(form.get("decision", ""))
    if not re.fullmatch(r"[0-9a-f]{32}", key) or decision not in {"accept", "dismiss"}:
        raise HTTPException(400, "unknown suggestion or decision")
    topic_id = None
    if decision == "accept":
        terms = [str(t).strip()[:80] for t in form.getlist("term") if str(t).strip()][:10]
        name = str(form.get("name", "")).strip()[:100] or " / ".join(terms[:3])
        topic_id = topic_id_for(name, {t.id for t in site.topics()})
        description = f"Proposed by topics suggest from novel articles: {', '.join(terms)}."
        add_site_topic(site.settings, topic_id, name, description, terms)
    with site.sessions.begin() as session:
        decide_topic(session, key, "accepted" if topic_id else "dismissed", topic_id, now_utc())
    return redirect(request, "/topics", "topic-accepted" if topic_id else "topic-dismissed")


def example_ids(field: str) -> list[int]:
    """The article ids in the examples field; one no stored article could have (past
    MAX_ROW_ID, or thousands of digits, which int() refuses) is a 400."""
    numbers = re.findall(r"\d+", field)
    if any(len(n) > len(str(MAX_ROW_ID)) or int(n) > MAX_ROW_ID for n in numbers):
        raise HTTPException(400, "an example is not a stored article")
    return sorted({int(n) for n in numbers})


def _add_topic(request: Request, form: FormData) -> Response:
    """A new topic from example articles: added to the user's topics file, and each
    example labelled with it, so the next fit learns the topic from them (terms are an
    optional boost)."""
    site, user = site_of(request), user_of(request)
    name = str(form.get("name", "")).strip()[:100]
    terms = [t.strip()[:80] for t in str(form.get("terms", "")).split(",") if t.strip()][:20]
    examples = example_ids(str(form.get("examples", "")))
    if not name or not examples:
        raise HTTPException(400, "a topic needs a name and at least one example article")
    known = {t.id for t in site.topics()}
    topic_id = topic_id_for(name, known)
    description = str(form.get("description", "")).strip()[:500] or f"Topic of articles {examples}."
    with site.sessions.begin() as session:
        details = [article_detail(session, i) for i in examples]
        if any(d is None for d in details):
            raise HTTPException(400, "an example is not a stored article")
        add_site_topic(site.settings, topic_id, name, description, terms)
        for detail in details:
            assert detail is not None
            current = [t for t in current_topics(detail) if t in known]
            relabel(session, detail.article.id, True, [*current, topic_id], user.name, now_utc())
    return redirect(request, "/topics", "topic-added")


decision_action = form_action(_decide)
add_topic_action = form_action(_add_topic)
