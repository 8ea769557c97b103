"""The lead of an article without the page furniture that precedes it.

Feed summaries and extracted pages often start with a date line, a section label
("Introduction", "Article", "Input / Modified"), a photo credit, a language menu, the
headline repeated, or a paywall notice. The excerpt a reader sees, and the lead that
grouping embeds, start at the first line that reads like a sentence of the article.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# Date lines: "date 2025-07", "April 9, 2025", "10/10/2025, 7:02 PM | China", "13:15 28-08-2025".
_DATE_PREFIX = re.compile(r"^\s*date\s+\d{4}(?:-\d{2}){0,2}\b\s*", re.I)
_MONTHS = (
    r"jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec|janv|févr|fevr|avr|mai|juin|juil|"
    r"août|aout|sept|déc|dez|mär|märz|okt|gen|giu|lug|ago|set|ott|dic|ene|abr|dic"
)
_DATE_LINE = re.compile(
    r"^[\W_]*(?:(?:published|updated|modified|publié|mis à jour|veröffentlicht|aktualisiert)"
    r"\s*(?:on|le|am)?\s*:?\s*)?"
    rf"(?:\d{{1,4}}[./-]\d{{1,2}}[./-]\d{{1,4}}|\d{{1,2}}:\d{{2}}|(?:{_MONTHS})\w*\.?\s+\d{{1,2}}"
    rf"|\d{{1,2}}\.?\s+(?:{_MONTHS})\w*)",
    re.I,
)
# Notices and labels that are never the article's first sentence.
_NOTICE = re.compile(
    r"skip to (?:main )?content|subscribe|subscribers? only|sign in to|log in to|"
    r"already a subscriber|réservé aux abonnés|abonnez-vous|article réservé|nur für abonnenten|"
    r"jetzt abonnieren|riservato agli abbonati|riproduzione riservata|solo para suscriptores|"
    r"cookies?\b|all rights reserved|tous droits réservés|©|\(c\) \d{4}|"
    r"^(?:introduction|article|input|modified|advertisement|anzeige|publicité|home)\b",
    re.I,
)
_SENTENCE_WORDS = 8  # a line this long (in words) reads as prose, not a label


def lead_lines(text: str, title: str = "") -> list[str]:
    """The article's lines from its first real sentence on (all lines if none qualifies)."""
    lines = [" ".join(line.split()) for line in text.splitlines()]
    lines = [line for line in lines if line]
    if lines:
        lines[0] = _DATE_PREFIX.sub("", lines[0])
    start = _first_prose(lines, title)
    return lines[start:] if start is not None else lines


def clean_lead(text: str, title: str = "") -> str:
    """The text from its first real sentence on, as one line."""
    return " ".join(lead_lines(text, title))


def _first_prose(lines: Iterable[str], title: str) -> int | None:
    folded_title = _key(title)
    for i, line in enumerate(lines):
        if _is_furniture(line, folded_title):
            continue
        return i
    return None


def _is_furniture(line: str, folded_title: str) -> bool:
    # Lengths first: the patterns are searched only in lines short enough to be furniture
    # (a long lead paragraph is one line of thousands of characters).
    words = len(line.split())
    if words < 25 and _NOTICE.search(line):
        return True
    if words < _SENTENCE_WORDS and _DATE_LINE.match(line):
        return True
    key = _key(line)
    # The headline repeated (maybe cut short or with a site name around it).
    if folded_title and key and (key in folded_title or folded_title in key):
        return True
    # Short label-like lines: a name, a credit, a menu entry.
    return words < _SENTENCE_WORDS and not line.rstrip().endswith((".", "!", "?", "»", '"'))


def _key(text: str) -> str:
    return " ".join(re.findall(r"\w+", text.casefold()))
