"""One article: its text (sanitised), why it matched, its story; and the one-click
corrections (relevant / not relevant / topics on and off, undo, add to the corpus), read,
star, mute or follow its story."""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any

import nh3
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from chipwatch.digest.select import plain_text, safe_url
from chipwatch.digest.stories import Story
from chipwatch.store.labels import can_undo, relabel, undo_last
from chipwatch.store.review import ArticleDetail, article_detail, mark_story, marks_of, set_mark
from chipwatch.store.review import story_marks as load_story_marks
from chipwatch.web.site import (
    form_action,
    now_utc,
    page,
    redirect,
    render,
    row_id,
    site_of,
    user_of,
)
from chipwatch.web.stories import Filters, group, live_items

# What a feed's markup may keep on the article page: text structure and http(s) links.
ALLOWED_TAGS = {
    "p", "br", "em", "strong", "b", "i", "ul", "ol", "li", "blockquote", "a", "h2", "h3",
    "h4", "code", "pre", "q", "sub", "sup",
}  # fmt: skip


def sanitised_text(text: str) -> str:
    """Feed HTML reduced to ALLOWED_TAGS (no script, style, event handler, image or
    javascript: URL survives); plain text is split into paragraphs and escaped."""
    if "<" not in text:
        paragraphs = [p.strip() for p in text.split("\n\n") if p.strip()]
        return "".join(f"<p>{html.escape(p)}</p>" for p in paragraphs)
    return nh3.clean(
        text,
        tags=ALLOWED_TAGS,
        attributes={"a": {"href"}},
        url_schemes={"http", "https"},
        link_rel="noopener noreferrer nofollow",
        clean_content_tags={"script", "style"},
    )


def article_id_of(request: Request) -> int:
    return row_id(request, "article_id")


@dataclass(frozen=True)
class Evidence:
    summary: str
    relevance: float | None
    topic_scores: list[tuple[str, float]]
    matched_terms: list[tuple[str, list[str]]]
    passages: list[dict[str, Any]]


def evidence_of(detail: ArticleDetail) -> Evidence:
    row = detail.classification
    if row is None:
        return Evidence("not classified yet", None, [], [], [])
    ev = row.evidence or {}
    return Evidence(
        summary=plain_text(str(ev.get("summary") or "")),
        relevance=float(row.relevance),
        topic_scores=sorted(
            ((str(k), float(v)) for k, v in (row.topic_scores or {}).items()),
            key=lambda kv: -kv[1],
        ),
        matched_terms=[
            (str(k), [plain_text(str(t)) for t in v])
            for k, v in (ev.get("matched_terms") or {}).items()
        ],
        passages=[
            {
                "doc_id": str(p.get("doc_id", "")),
                "text": plain_text(str(p.get("text", ""))),
                "score": float(p.get("score", 0.0)),
            }
            for p in ev.get("passages") or []
        ],
    )


def story_of(request: Request, article_id: int) -> Story | None:
    """The article's story among the live stories of the default window."""
    site = site_of(request)
    filters = Filters(days=site.settings.digest.lookback_days, min_relevance=0.0)
    with site.sessions() as session:
        items = live_items(session, site, filters)
        grouped = group(session, items)
    return next((s for s in grouped if article_id in s.article_ids), None)


def current_topics(detail: ArticleDetail) -> tuple[str, ...]:
    if detail.label is not None:
        return tuple(detail.label.topics or ())
    if detail.classification is not None:
        return tuple(detail.classification.topics or ())
    return ()


@page
def article_page(request: Request) -> Response:
    site, user = site_of(request), user_of(request)
    article_id = article_id_of(request)
    with site.sessions() as session:
        detail = article_detail(session, article_id)
        if detail is None:
            raise HTTPException(404)
        marks = marks_of(session, user.id, [article_id])
        states = load_story_marks(session, user.id)
        undo = can_undo(session, article_id, user.name)
    story = story_of(request, article_id)
    article = detail.article
    return render(
        request,
        "article.html.j2",
        article=article,
        title=plain_text(article.title or "") or "(untitled)",
        source=plain_text(article.source_name or ""),
        link=safe_url(article.url),
        body=sanitised_text(article.text or ""),
        evidence=evidence_of(detail),
        label=detail.label,
        chosen=current_topics(detail),
        topics=site.topics(),
        story=story,
        story_state=states.get(article_id, ""),
        read=article_id in marks.read,
        starred=article_id in marks.starred,
        can_undo=undo,
    )


def _back(request: Request, article_id: int, done: str) -> Response:
    return redirect(request, f"/articles/{article_id}", done)


def _label(request: Request, form: FormData) -> Response:
    site, user = site_of(request), user_of(request)
    article_id = article_id_of(request)
    known = [t.id for t in site.topics()]
    verdict = str(form.get("verdict", ""))
    with site.sessions.begin() as session:
        detail = article_detail(session, article_id)
        if detail is None:
            raise HTTPException(404)
        chosen = list(current_topics(detail))
        if verdict == "not-relevant":
            relevant, topics = False, []
        elif verdict == "relevant":
            relevant, topics = True, chosen
        elif verdict == "topic" and str(form.get("topic", "")) in known:
            topic = str(form["topic"])
            on = form.get("on") == "1"
            topics = [t for t in chosen if t != topic] + ([topic] if on else [])
            relevant = True
        else:
            raise HTTPException(400, "unknown verdict or topic")
        topics = [t for t in known if t in topics]  # file order, known ids only
        relabel(session, article_id, relevant, topics, user.name, now_utc())
    return _back(request, article_id, "labelled")


def _undo(request: Request, form: FormData) -> Response:
    site, user = site_of(request), user_of(request)
    article_id = article_id_of(request)
    with site.sessions.begin() as session:
        done = undo_last(session, article_id, user.name)
    return _back(request, article_id, "undone" if done else "nothing-to-undo")


def _corpus(request: Request, form: FormData) -> Response:
    from chipwatch.classify import add_document

    site = site_of(request)
    article_id = article_id_of(request)
    topic = str(form.get("topic", ""))
    known = [t.id for t in site.topics()]
    if topic not in known:
        raise HTTPException(400, "unknown topic")
    with site.sessions() as session:
        detail = article_detail(session, article_id)
        if detail is None:
            raise HTTPException(404)
        title = plain_text(detail.article.title or "")
        text = plain_text(detail.article.text or "")
        language = detail.article.language or None
    from chipwatch.classify.corpus import MAX_DOCUMENT_CHARS
    from chipwatch.errors import ConfigError

    try:
        add_document(
            site.settings.corpus_dir,
            # What the classifier reads of an article: a longer one would be refused.
            f"{title}\n\n{text}"[:MAX_DOCUMENT_CHARS],
            [topic],
            language=language,
            title=title,
            known_topics=known,
        )
    except ConfigError as exc:
        raise HTTPException(409, exc.message) from None
    return _back(request, article_id, "corpus")


def _mark(request: Request, form: FormData) -> Response:
    site, user = site_of(request), user_of(request)
    article_id = article_id_of(request)
    field = str(form.get("field", ""))
    if field not in {"read", "starred"}:
        raise HTTPException(400, "unknown mark")
    with site.sessions.begin() as session:
        if article_detail(session, article_id) is None:
            raise HTTPException(404)
        set_mark(session, user.id, [article_id], field, form.get("on") == "1", now_utc())
    return _back(request, article_id, "read")


def _story(request: Request, form: FormData) -> Response:
    site, user = site_of(request), user_of(request)
    article_id = article_id_of(request)
    state = str(form.get("state", ""))
    if state not in {"mute", "follow", "clear"}:
        raise HTTPException(400, "unknown story mark")
    with site.sessions() as session:
        if article_detail(session, article_id) is None:
            raise HTTPException(404)
    story = story_of(request, article_id)
    ids = story.article_ids if story else (article_id,)
    with site.sessions.begin() as session:
        mark_story(session, user.id, ids, None if state == "clear" else state, now_utc())
        if state == "mute":
            set_mark(session, user.id, ids, "read", True, now_utc())
    return _back(request, article_id, "story")


label_action = form_action(_label)
undo_action = form_action(_undo)
corpus_action = form_action(_corpus)
mark_action = form_action(_mark)
story_action = form_action(_story)
