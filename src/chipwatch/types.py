"""The values that pass between the stages of the pipeline. No I/O here.

Source -> FetchResult -> FeedEntry -> Article -> Classification -> DigestItem -> Digest
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from functools import cached_property

from chipwatch.errors import FeedError
from chipwatch.markup import to_text

# The largest id a database integer column holds: a larger number names no row (and
# the drivers refuse to bind it).
MAX_ROW_ID = 2**63 - 1

# The language of a text the identifier cannot tell (or of one with no words).
UNDETERMINED = "und"
# Below this probability the language identifier's answer is a guess, not stored as the
# text's language (a design choice, not tuned on dev: headlines in the identifier's
# languages come out above 0.9; the misread short ones of the real feeds, such as "DOOM 3"
# as Dutch, under 0.5).
UNSURE_BELOW = 0.5

# A language code as BCP 47 starts (en, fr, pt-BR, zh-Hant): a feed's or an input's
# language is compared, stored and shown, never markup or free text.
LANGUAGE_CODE = re.compile(r"[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{1,8})*")


def language_code_problem(value: str) -> str | None:
    """Why `value` is not a language code, or None when it is one."""
    if LANGUAGE_CODE.fullmatch(value):
        return None
    return f"not a language code: {value[:40]!r} (two or three letters: en, fr, pt-BR)"


class TextKind(StrEnum):
    """How much of an article the classifier gets: news-search feeds give a headline only."""

    HEADLINE = "headline"  # the title alone, perhaps with the outlet's name
    SUMMARY = "summary"  # a title and a short summary (a lead, a teaser)
    FULL = "full"  # the article's text

    @classmethod
    def guess(cls, title: str, text: str) -> TextKind:
        """The kind of an input whose source does not say, from the length of its text."""
        body = text.strip()
        if body.startswith(title.strip()):
            body = body[len(title.strip()) :].strip()
        if len(body) < HEADLINE_MAX_BODY_CHARS:
            return cls.HEADLINE
        if len(body) < SUMMARY_MAX_BODY_CHARS:
            return cls.SUMMARY
        return cls.FULL


# Below these lengths of text beyond the title, an input is a headline or a summary: an
# outlet's name or a dateline is under 60 characters; a news-search or RSS teaser under 600.
HEADLINE_MAX_BODY_CHARS = 60
SUMMARY_MAX_BODY_CHARS = 600


@dataclass(frozen=True)
class Topic:
    """One topic of the current corpus (config/topics.toml)."""

    id: str
    name: str
    description: str
    # language code -> terms; a term is a phrase matched on word boundaries, case-folded
    terms: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    alert: bool = False


@dataclass(frozen=True)
class CorpusDocument:
    """A document of the reference corpus with the topics it carries."""

    id: str
    title: str
    text: str
    topics: tuple[str, ...]
    language: str = "fr"
    relevant: bool = True
    published: str | None = None  # YYYY-MM or YYYY-MM-DD, where the document tells


@dataclass(frozen=True)
class Label:
    """A user's judgement on a stored article (`chipwatch label`)."""

    article_id: str
    title: str
    text: str
    relevant: bool
    topics: tuple[str, ...] = ()


@dataclass(frozen=True)
class Source:
    """A feed as storage knows it."""

    id: int
    url: str
    name: str
    # "feed" | "fetch" (see SourceConfig.article_text); "" = the default for its kind
    article_text: str = ""
    etag: str | None = None
    last_modified: str | None = None
    language: str = ""  # configured language: a hint for detection ("" = detect)

    @property
    def full_text(self) -> bool:
        """The older name of `article_text == "fetch"` (set explicitly)."""
        return self.article_text == "fetch"


@dataclass(frozen=True)
class FetchResult:
    """What one HTTP fetch of a feed gave. `error` is set instead of raising."""

    source_url: str
    final_url: str
    status: int | None
    content: bytes = b""
    content_type: str = ""
    etag: str | None = None
    last_modified: str | None = None
    not_modified: bool = False
    permanent_redirect: str | None = None  # new URL after a 301/308
    gone: bool = False  # 410
    retry_after_seconds: float | None = None
    max_age_seconds: float | None = None  # Cache-Control max-age or Expires
    error: FeedError | None = None
    fetched_at: datetime | None = None
    elapsed_seconds: float = 0.0


@dataclass(frozen=True)
class FeedEntry:
    """One entry as the parser returns it, before extraction.

    Its text is kept as the feed's markup and converted on first use (`summary`): the
    collector never converts an entry it finds stored already, and converting is most of
    the cost of an entry once the feed is parsed."""

    guid: str | None
    url: str | None
    title: str  # plain text (short; the parser needs it to judge the entry)
    markup: str  # the entry's longest text as the feed has it: HTML or plain text
    published: datetime | None
    author_markup: str | None = None
    max_chars: int | None = None  # cap on the plain text
    outlet: str | None = None  # the item's <source> (news-search feeds name the publisher)

    @cached_property
    def summary(self) -> str:
        """The plain text of `markup`, at most `max_chars` characters."""
        return to_text(self.markup, self.max_chars)[: self.max_chars]

    @cached_property
    def author(self) -> str | None:
        return to_text(self.author_markup)[:300] or None


@dataclass(frozen=True)
class ParsedFeed:
    title: str
    entries: tuple[FeedEntry, ...]
    ttl_minutes: int | None = None
    site_url: str | None = None


@dataclass(frozen=True)
class Article:
    """An entry made ready to store: canonical URL, identity, language, normalised date."""

    identity: str  # stable key: guid:..., url:..., or hash:...
    source_url: str
    url: str | None
    title: str
    text: str
    published: datetime
    fetched_at: datetime
    language: str
    content_hash: str
    date_flag: str | None = None  # "missing" or "future-clamped"
    outlet: str | None = None  # the publisher, when not the feed itself (news search)
    text_kind: TextKind | None = None  # what `text` is; None: not known (guessed later)


@dataclass(frozen=True)
class ClassifyInput:
    """What the classifier reads: the fields of a `classify` input line."""

    id: str
    title: str
    text: str
    url: str | None = None
    published: str | None = None
    language: str | None = None
    # How much of the article this is; None: guessed from the length (TextKind.guess).
    text_kind: TextKind | None = None


@dataclass(frozen=True)
class Passage:
    """A corpus passage close to the article, shown as evidence."""

    doc_id: str
    text: str
    score: float


@dataclass(frozen=True)
class Evidence:
    matched_terms: Mapping[str, tuple[str, ...]]  # topic id (or "scope") -> terms found
    passages: tuple[Passage, ...] = ()
    summary: str = ""  # one human sentence: why the article is here


@dataclass(frozen=True)
class Classification:
    id: str
    relevant: bool
    relevance: float  # calibrated probability of relevance
    topics: tuple[str, ...]
    topic_scores: Mapping[str, float]
    novel: bool
    language: str
    evidence: Evidence

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "relevant": self.relevant,
            "relevance": round(self.relevance, 4),
            "topics": list(self.topics),
            "topic_scores": {k: round(v, 4) for k, v in self.topic_scores.items()},
            "novel": self.novel,
            "language": self.language,
            "evidence": {
                "summary": self.evidence.summary,
                "matched_terms": {k: list(v) for k, v in self.evidence.matched_terms.items()},
                "passages": [
                    {"doc_id": p.doc_id, "text": p.text, "score": round(p.score, 4)}
                    for p in self.evidence.passages
                ],
            },
        }
