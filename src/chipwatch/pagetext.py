"""An article page -> its text, or the verdict that it holds none (runs in a parse worker).

A fetched page is not always the article: a cookie-consent wall, a paywall teaser, a
soft error page ("page not found" with status 200) all extract to a few lines of
boilerplate, which would then be classified as the article ("You have a preview view of
this article while we are checking your access..."). `judge` tells them apart with
signals that do not depend on one site's markup:
- the page's `<title>` names an error (404, not found, access denied) in one of the
  watch's languages;
- the extracted text is short and carries the stock phrases of consent dialogs or
  paywalls (en, fr, de, it, es), or the page declares its content paywalled with the
  schema.org `isAccessibleForFree: false` markup publishers use for search engines;
- the extracted text is shorter than `min_chars`.
A long text that mentions a phrase in passing (an article about cookie rules) is kept:
walls and teasers are short (`WALL_MAX_CHARS`). Lines of a kept text that are only
such a phrase ("Already a subscriber? Sign in") are dropped from it.
The phrase lists are ordinary publishing vocabulary, written from knowledge of such
pages, not fitted to the evaluation data.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from chipwatch.errors import ParseError
from chipwatch.extract import detect_language, extract_full_text
from chipwatch.parse import time_limit

# A consent wall or a paywall teaser extracts to a few hundred characters; an article
# that mentions cookies or subscriptions is longer than this.
WALL_MAX_CHARS = 1500
_HEAD_BYTES = 256 * 1024  # where <title> and the structured data are looked for

CONSENT_PHRASES = (
    "accept all cookies", "accept cookies", "we value your privacy", "manage cookies",
    "cookie settings", "cookie preferences", "before you continue", "we use cookies",
    "your consent", "manage preferences", "reject all",
    "tout accepter", "nous utilisons des cookies", "paramétrer les cookies",
    "gérer mes choix", "votre consentement", "tout refuser", "respectons votre vie privée",
    "alle akzeptieren", "wir verwenden cookies", "cookie-einstellungen", "ihre einwilligung",
    "datenschutzeinstellungen", "alle ablehnen",
    "accetta tutti", "utilizziamo i cookie", "rifiuta tutti", "il tuo consenso",
    "aceptar todas", "utilizamos cookies", "configurar cookies", "rechazar todas",
    "su consentimiento",
)  # fmt: skip
PAYWALL_PHRASES = (
    "subscribe to continue", "subscribe to read", "already a subscriber", "subscribers only",
    "checking your access", "preview view of this article", "sign in to continue reading",
    "this article is for subscribers", "to continue reading", "start your free trial",
    "réservé aux abonnés", "déjà abonné", "abonnez-vous pour lire", "la suite est réservée",
    "nur für abonnenten", "bereits abonnent", "jetzt abonnieren", "weiterlesen mit",
    "riservato agli abbonati", "sei già abbonato", "abbonati per continuare",
    "exclusivo para suscriptores", "ya eres suscriptor", "suscríbete para seguir leyendo",
    "contenido exclusivo para suscriptores",
)  # fmt: skip
ERROR_TITLES = re.compile(
    r"\b404\b|page not found|access denied|page introuvable|accès refusé|"
    r"seite nicht gefunden|zugriff verweigert|pagina non trovata|accesso negato|"
    r"página no encontrada|acceso denegado",
    re.IGNORECASE,
)
_TITLE = re.compile(rb"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_NOT_FREE = re.compile(rb'"isAccessibleForFree"\s*:\s*"?(false|False|FALSE)"?')


class PageVerdict(StrEnum):
    ARTICLE = "article"  # the text is the article's: it replaces the feed's
    CONSENT = "consent"  # a cookie/consent wall
    PAYWALL = "paywall"  # a subscription wall or teaser
    ERROR = "error"  # an error page (by its title), or the fetch failed
    SHORT = "short"  # no text, or too little to be an article


@dataclass(frozen=True)
class PageReading:
    verdict: PageVerdict
    text: str | None = None  # set for ARTICLE only
    language: str = ""
    final_url: str | None = None  # where the page was, after the publisher's redirects


def read_page(page: bytes, url: str, hint: str, limit: float, min_chars: int) -> PageReading:
    """Extract and judge one article page (in a worker, under a time limit)."""
    try:
        with time_limit(limit, url):
            text = extract_full_text(page, url, min_chars=1)
            verdict, kept = judge(page, text, min_chars)
            if verdict is not PageVerdict.ARTICLE or kept is None:
                return PageReading(verdict)
            return PageReading(verdict, kept, detect_language(kept, hint))
    except ParseError:
        return PageReading(PageVerdict.SHORT)


def judge(page: bytes, text: str | None, min_chars: int) -> tuple[PageVerdict, str | None]:
    """The verdict on a page and its extracted text, and the text to keep."""
    head = page[:_HEAD_BYTES]
    title = _TITLE.search(head)
    if title and ERROR_TITLES.search(title.group(1).decode("utf-8", "replace")):
        return PageVerdict.ERROR, None
    body = text or ""
    folded = body.casefold()
    consent = _hits(folded, CONSENT_PHRASES)
    paywall = _hits(folded, PAYWALL_PHRASES) or bool(_NOT_FREE.search(head))
    if len(body) < WALL_MAX_CHARS and (consent or paywall):
        return (PageVerdict.PAYWALL if paywall else PageVerdict.CONSENT), None
    kept = _without_wall_lines(body)
    if len(kept) < min_chars:
        return PageVerdict.SHORT, None
    return PageVerdict.ARTICLE, kept


def _hits(folded: str, phrases: tuple[str, ...]) -> int:
    return sum(1 for phrase in phrases if phrase in folded)


def _without_wall_lines(text: str) -> str:
    """Drop short lines that are only a wall's phrase (a subscribe prompt in an article)."""
    kept = [
        line
        for line in text.splitlines()
        if not (
            len(line) < 200
            and (_hits(line.casefold(), PAYWALL_PHRASES) or _hits(line.casefold(), CONSENT_PHRASES))
        )
    ]
    return "\n".join(kept).strip()
