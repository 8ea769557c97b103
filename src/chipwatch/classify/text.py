"""Text helpers shared by the classifier: normalisation, units, term matching, language.

Matching runs on accent-stripped text so that a term list written once ("Etats Unis")
matches every spelling the press uses ("États-Unis", "Etats-Unis").
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from chipwatch.types import UNDETERMINED, UNSURE_BELOW

# Languages the identifier may answer: the five of the dev set plus the ones a European
# feed list plausibly carries. Restricting the set makes short titles far less error-prone.
DETECTABLE_LANGUAGES: tuple[str, ...] = (
    "en",
    "fr",
    "de",
    "it",
    "es",
    "nl",
    "pt",
    "pl",
    "sv",
    "da",
    "ja",
    "zh",
    "ko",
    "ru",
    "uk",
)
# Languages that have their own term lists in config/topics.toml.
TERM_LANGUAGES: tuple[str, ...] = ("en", "fr", "de", "it", "es")

_QUOTES = str.maketrans({"’": "'", "‘": "'", "`": "'", "ß": "ss", "\u00a0": " "})
_PARA_SPLIT = re.compile(r"\n\s*\n|\n")
_SENTENCE_SPLIT = re.compile(r"(?<=[.!?])\s+(?=[A-ZÀ-Ý0-9«\"“])|(?<=[\u3002\uff01\uff1f])")
# A paragraph longer than this is cut into sentence windows: a feed summary or a corpus
# file often comes as one block, and "a paragraph is about the topic" needs units.
MAX_UNIT_CHARS = 700


class _FoldTable(dict[int, str]):
    """str.translate table: each character's NFKD decomposition without its combining
    marks, worked out the first time the character is seen. Per character, this is the
    same as decomposing the whole text (canonical reordering only moves combining
    marks, which are dropped), at a fraction of the cost on French or German text."""

    def __missing__(self, code: int) -> str:
        decomposed = unicodedata.normalize("NFKD", chr(code))
        folded = "".join(c for c in decomposed if not unicodedata.combining(c))
        self[code] = folded
        return folded


_FOLD = _FoldTable()


def fold(text: str) -> str:
    """Strip accents and unify quotes; keeps case (short acronyms match case-sensitively)."""
    text = text.translate(_QUOTES)
    if text.isascii():  # most English text: nothing to decompose (a third of the lexical cost)
        return text
    return text.translate(_FOLD)


# Text beyond this many characters is not read: the verdict is made on the opening, the
# same for every layout (a 1 MB text costs what its first 200,000 characters cost).
MAX_TEXT_CHARS = 200_000
_SPACES = re.compile(r"[ \t\r\f\v]+")


def clean_text(text: str) -> str:
    """Plain text to match on: markup (tags, scripts, entities) removed, bounded length.

    Matching runs on what a reader sees: "export controls" inside a <script> is not the
    article's text.
    """
    text = text[: MAX_TEXT_CHARS * 3] if len(text) > MAX_TEXT_CHARS * 3 else text
    if "<" in text or "&" in text:
        from chipwatch.markup import to_text

        text = to_text(text)
    return text[:MAX_TEXT_CHARS]


def _sentences(text: str) -> list[str]:
    """Sentences of every line; a line break ends a sentence, so does ".!?" + capital."""
    out: list[str] = []
    for line in _PARA_SPLIT.split(text):
        line = _SPACES.sub(" ", line).strip()
        if line:
            out.extend(s for s in _SENTENCE_SPLIT.split(line) if s)
    return out


def _hard_cut(sentence: str, max_chars: int) -> list[str]:
    """A "sentence" longer than a unit (no punctuation at all) cut at spaces."""
    pieces: list[str] = []
    while len(sentence) > max_chars:
        cut = sentence.rfind(" ", 0, max_chars)
        cut = cut if cut > max_chars // 2 else max_chars
        pieces.append(sentence[:cut].strip())
        sentence = sentence[cut:].strip()
    if sentence:
        pieces.append(sentence)
    return pieces


def split_units(text: str, max_chars: int = MAX_UNIT_CHARS) -> list[str]:
    """The text as units of whole sentences, packed up to ~`max_chars` / 2 characters.

    A unit stands for the taxonomy's "paragraph". Units are built from sentences, not
    from the layout: the same text on one line or with a line break after every
    sentence gives the same units (so the same verdict), and a line without any
    punctuation is still cut. A line that does not end a sentence (a subheading) is
    never glued to the next one.
    """
    target = max_chars // 2
    units: list[str] = []
    for sentence in _sentences(text):
        for piece in _hard_cut(sentence, max_chars):
            if units and _is_sentence_end(units[-1]) and len(units[-1]) + len(piece) < target:
                units[-1] = f"{units[-1]} {piece}"
            else:
                units.append(piece)
    return units


def _is_sentence_end(text: str) -> bool:
    return text.endswith((".", "!", "?", "\u3002", '"', "\u00bb", "\u201d", "\uff01", "\uff1f"))


_TOKEN = re.compile(r"\w+|%")


def tokenize(folded_text: str) -> list[str]:
    """Word tokens (apostrophes, dots and hyphens separate words); "%" is a token."""
    return _TOKEN.findall(folded_text)


@dataclass(frozen=True)
class _Entry:
    group: str
    term: str
    tokens: tuple[str, ...]  # lowercase, or original case when case_sensitive
    prefix: tuple[bool, ...]  # token i matches any word starting with it ("chip*")
    case_sensitive: bool


def _entry(group: str, term: str) -> _Entry | None:
    folded = fold(term.strip())
    words = tokenize(folded.replace("*", "_STAR_"))
    if not words:
        return None
    prefix = tuple(w.endswith("_STAR_") for w in words)
    words = [w.removesuffix("_STAR_") for w in words]
    letters = "".join(c for c in folded if c.isalnum())
    # Short all-caps acronyms (US, BIS, PLA) would collide with common words once
    # case-folded ("us", German "bis"), so they keep their case.
    case_sensitive = len(letters) <= 4 and letters.isupper()
    tokens = tuple(words if case_sensitive else (w.lower() for w in words))
    return _Entry(group, term, tokens, prefix, case_sensitive)


# Distinct words whose term candidates a TermIndex remembers.
_SEEN_WORDS = 50_000


class TermIndex:
    """Term lists of several groups, matched in one pass over an article's tokens.

    A dict lookup per token (plus one per distinct prefix length for "word*" terms)
    instead of a regex alternation: the latter tries every term at every position and
    was the classifier's bottleneck.
    """

    def __init__(self, groups: Mapping[str, Iterable[str]]) -> None:
        self._exact: dict[str, list[_Entry]] = {}
        self._stems: dict[str, list[_Entry]] = {}
        for group, terms in groups.items():
            for term in dict.fromkeys(terms):
                entry = _entry(group, term)
                if entry is None:
                    continue
                table = self._stems if entry.prefix[0] else self._exact
                table.setdefault(entry.tokens[0].lower(), []).append(entry)
        self._stem_lengths = sorted({len(k) for k in self._stems})
        self._seen: dict[str, list[_Entry]] = {}
        self.groups = tuple(groups)

    def _candidates(self, low: str) -> list[_Entry]:
        # Words repeat within and across articles: each word's candidates are looked up
        # once (one lookup per stem length otherwise); bounded, cleared when full.
        found = self._seen.get(low)
        if found is None:
            found = list(self._exact.get(low, ()))
            for length in self._stem_lengths:
                if length > len(low):
                    break
                found.extend(self._stems.get(low[:length], ()))
            if len(self._seen) >= _SEEN_WORDS:
                self._seen.clear()
            self._seen[low] = found
        return found

    @staticmethod
    def _matches(entry: _Entry, raw: Sequence[str], low: Sequence[str], i: int) -> bool:
        if i + len(entry.tokens) > len(raw):
            return False
        words = raw if entry.case_sensitive else low
        for k, (token, is_prefix) in enumerate(zip(entry.tokens, entry.prefix, strict=True)):
            word = words[i + k]
            if not (word.startswith(token) if is_prefix else word == token):
                return False
        return True

    def find(self, folded_text: str) -> dict[str, set[str]]:
        """group -> distinct terms present in the text (already folded)."""
        raw = tokenize(folded_text)
        low = [w.lower() for w in raw]
        out: dict[str, set[str]] = {g: set() for g in self.groups}
        for i, word in enumerate(low):
            for entry in self._candidates(word):
                if self._matches(entry, raw, low, i):
                    out[entry.group].add(entry.term)
        return out

    def any_match(self, folded_text: str) -> bool:
        raw = tokenize(folded_text)
        low = [w.lower() for w in raw]
        return any(
            self._matches(entry, raw, low, i)
            for i, word in enumerate(low)
            for entry in self._candidates(word)
        )


def terms_for(by_language: Mapping[str, Sequence[str]], language: str) -> list[str]:
    """Terms of one language plus the language-neutral names ("any").

    Other languages' lists stay out: "urge*" or "charge" in English are false friends in
    French. For a language without its own list, every list applies.
    """
    if language not in TERM_LANGUAGES:
        return [t for terms in by_language.values() for t in terms]
    return [t for key in ("any", language) for t in by_language.get(key, ())]


@lru_cache(maxsize=1)
def _identifier() -> Any:
    # A private instance, so restricting its languages cannot affect other modules;
    # memory-mapped from the on-disk cache (a few ms instead of ~0.6 s of LZMA).
    from chipwatch.langid_model import load_identifier

    return load_identifier(DETECTABLE_LANGUAGES, norm_probs=True)


def optional_str(value: object) -> str | None:
    """A JSON field that should be a string: None when absent, empty or not a string."""
    return value if isinstance(value, str) and value else None


def detect_language(title: str, text: str, given: str | None = None) -> str:
    """The caller's language when given (trusted), else py3langid on title + opening;
    `UNDETERMINED` when the identifier is unsure (`UNSURE_BELOW`)."""
    if given:
        return given.strip().lower()[:2]
    # The opening is enough and the identifier's cost grows with length.
    sample = f"{title}\n{text[:600]}".strip()
    if not sample:
        return UNDETERMINED
    language, confidence = _identifier().classify(sample)
    return str(language) if confidence >= UNSURE_BELOW else UNDETERMINED


def judged_by_terms(language: str, title: str, text: str) -> bool:
    """Whether the term lists judge an article: its language has lists, or its language is
    undetermined and it is written in the Latin script (then every list applies).

    A short headline is where the identifier guesses: "DOOM 3" came out Dutch, "Nvidia
    H20 ban" German, "KartRider: Drift" Danish, each with a probability under 0.5 while
    headlines in those languages are identified above 0.9. Judged by meaning alone, as a
    language without lists is, such headlines were let through at 0.55-0.7 (a news-search
    feed is made of them); read against every list, as what they are: Latin-script text
    in some language, with the cheap gate of the lists."""
    if language in TERM_LANGUAGES:
        return True
    return language == UNDETERMINED and mostly_latin(f"{title} {text[:600]}")


# A corpus unit shorter than this says nothing about a topic: "L'info en 3 points" and
# "Source : The Register" (seed corpus furniture) were on-subject references, and any
# short text with a "3" in it came out close to the subject ("DOOM 3"). A design choice,
# not tuned on dev; headings of five words and more stay.
MIN_PASSAGE_WORDS = 5


def substantive(unit: str) -> bool:
    """Whether a corpus unit is long enough to be a reference passage."""
    words = unit.split()
    if len(words) >= MIN_PASSAGE_WORDS:
        return True
    # Scripts written without spaces (Chinese, Japanese): about two characters a word.
    return not mostly_latin(unit) and len("".join(words)) >= 2 * MIN_PASSAGE_WORDS


def mostly_latin(text: str) -> bool:
    """More Latin letters than letters of other scripts (Chinese, Cyrillic, ...)."""
    latin = other = 0
    for ch in text:
        if ch.isalpha():
            if ch < "\u0250" or "\u1e00" <= ch <= "\u1eff":  # Basic to Extended-B, Vietnamese
                latin += 1
            else:
                other += 1
    return latin > other
