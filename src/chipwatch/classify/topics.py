"""Load config/topics.toml: the corpus topics and the scope vocabulary."""

from __future__ import annotations

import difflib
import os
import re
import tempfile
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chipwatch.classify.text import TERM_LANGUAGES, fold, tokenize
from chipwatch.errors import ConfigError
from chipwatch.lock import file_lock
from chipwatch.types import Topic

_ID_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
# An id names a file (<data>/feeds/<id>.xml) and shows in URLs and the digest: bounded
# well below any file system's name limit. Name and description are read in the digest.
MAX_ID_CHARS = 64
MAX_NAME_CHARS = 200
# The digest's section, Atom feed and site filter of relevant articles on no topic.
RESERVED_IDS = frozenset({"novel"})
# Invisible characters no name or description means to hold (tab and line breaks are fine).
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
MAX_DESCRIPTION_CHARS = 2000
# The groups of the [scope] table; `goods` feeds the cheap gate.
SCOPE_GROUPS: tuple[str, ...] = ("goods", "controls", "places")
# The keys a term table may have: the languages with term lists, and "any".
TERM_KEYS: tuple[str, ...] = ("any", *TERM_LANGUAGES)
# Every key the files may hold: a typo ([topic.trems]) would silently drop what it holds.
_TOP_KEYS = ("scope", "topic")
_USER_TOP_KEYS = ("topic",)
_SCOPE_KEYS = ("description", *SCOPE_GROUPS, "counter_examples", "novel_examples")
_TOPIC_KEYS = ("id", "name", "description", "alert", "terms", "anchors")

Terms = Mapping[str, tuple[str, ...]]


@dataclass(frozen=True)
class ScopeTerms:
    """The vocabulary of the overall subject, per group and language."""

    description: str
    goods: Terms = field(default_factory=dict)
    controls: Terms = field(default_factory=dict)
    places: Terms = field(default_factory=dict)
    # Topic id -> anchor terms per language (the optional `anchors` table of a [[topic]]):
    # such a topic's terms count in a unit only when that unit or the headline names an
    # anchor ("licence" is ai-chip-licensing evidence next to an AI accelerator, not next
    # to a lithography machine or a rare-earth magnet).
    anchors: Mapping[str, Terms] = field(default_factory=dict)
    # Off-subject news in a sentence each (`[scope] counter_examples`): the semantic
    # signals measure an article's margin over them (chip news without a control angle).
    counter_examples: tuple[str, ...] = ()
    # On-subject news no topic covers yet, a sentence each (`[scope] novel_examples`):
    # a topic's semantic lead is measured over them too, so such news stays novel.
    novel_examples: tuple[str, ...] = ()


def read_file(path: Path) -> bytes:
    """A file the classifier is fitted from; one that cannot be read is the user's to fix."""
    try:
        return path.read_bytes()
    except FileNotFoundError as exc:
        raise ConfigError(str(path), "(file)", "file not found") from exc
    except OSError as exc:  # a folder, no permission, an I/O error
        raise ConfigError(str(path), "(file)", f"cannot read: {exc.strerror or exc}") from exc


def read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(read_file(path).decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(str(path), "(file)", f"not UTF-8 text: {exc.reason}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), "(syntax)", f"invalid TOML: {exc}") from exc
    except RecursionError:  # arrays or tables nested thousands deep
        raise ConfigError(str(path), "(syntax)", "invalid TOML: nested too deeply") from None


def check_keys(table: Mapping[str, Any], known: Sequence[str], source: str, where: str) -> None:
    """Refuse a key the file format does not have, naming it (and the likely meant one)."""
    for key in table:
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            field_name = f"{where}.{key}" if where else key
            raise ConfigError(source, field_name, f"unknown key{hint}")


def _term_problem(term: str) -> str:
    """Why a term cannot be matched usefully, or "" (matching tokenizes it the same way)."""
    if not term.strip():
        return "an empty term matches nothing"
    words = tokenize(fold(term.strip()).replace("*", "_STAR_"))
    if not words:
        return f"{term!r} has no word in it and matches nothing"
    if any(not w.removesuffix("_STAR_") for w in words):
        return f"{term!r}: a lone * matches every word"
    return ""


def _terms(raw: object, source: str, where: str) -> dict[str, tuple[str, ...]]:
    if not isinstance(raw, dict):
        raise ConfigError(source, where, "must be a table of language = [terms]")
    check_keys(raw, TERM_KEYS, source, where)
    out: dict[str, tuple[str, ...]] = {}
    for lang, terms in raw.items():
        if not isinstance(terms, list) or not all(isinstance(t, str) for t in terms):
            raise ConfigError(source, f"{where}.{lang}", "must be a list of strings")
        for index, term in enumerate(terms):
            problem = _term_problem(term)
            if problem:
                raise ConfigError(source, f"{where}.{lang}[{index}]", problem)
        out[str(lang)] = tuple(terms)
    return out


def _string(table: Mapping[str, Any], key: str, source: str, where: str) -> str:
    value = table.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(source, f"{where}.{key}", "missing or not a non-empty string")
    control = _CONTROL_RE.search(value)
    if control:
        code = f"U+{ord(control[0]):04X}"
        raise ConfigError(source, f"{where}.{key}", f"holds the control character {code}")
    return value.strip()


def _bounded(value: str, limit: int, source: str, where: str) -> str:
    if len(value) > limit:
        raise ConfigError(source, where, f"{len(value):,} characters; at most {limit:,}")
    return value


def _check_id(topic_id: str, source: str, where: str) -> None:
    if len(topic_id) > MAX_ID_CHARS:
        raise ConfigError(
            source, where, f"{len(topic_id):,} characters; an id has at most {MAX_ID_CHARS}"
        )
    if not _ID_RE.match(topic_id):
        raise ConfigError(source, where, f"{topic_id!r} is not a lowercase-dashed id")
    if topic_id in RESERVED_IDS:
        raise ConfigError(
            source, where, f"{topic_id!r} is reserved: the digest's section of articles on no topic"
        )


def _topic(raw: object, source: str, where: str) -> Topic:
    if not isinstance(raw, dict):
        raise ConfigError(source, where, "must be a table")
    check_keys(raw, _TOPIC_KEYS, source, where)
    topic_id = _string(raw, "id", source, where)
    _check_id(topic_id, source, f"{where}.id")
    alert = raw.get("alert", False)
    if not isinstance(alert, bool):
        raise ConfigError(source, f"{where}.alert", "must be true or false")
    # Terms are an optional boost: a topic is defined by its description and examples.
    terms = _terms(raw.get("terms", {}), source, f"{where}.terms")
    return Topic(
        id=topic_id,
        name=_bounded(_string(raw, "name", source, where), MAX_NAME_CHARS, source, f"{where}.name"),
        description=_bounded(
            _string(raw, "description", source, where),
            MAX_DESCRIPTION_CHARS,
            source,
            f"{where}.description",
        ),
        terms=terms,
        alert=alert,
    )


def load_topics(path: Path, user_path: Path | None = None) -> tuple[Topic, ...]:
    """The topics of config/topics.toml, then those of the user's topics file (written by
    `chipwatch topics add`; optional), in file order; ids must be unique across both."""
    topics = list(_topics_of(path, required=True))
    if user_path is not None and user_path.exists():
        for index, topic in enumerate(_topics_of(user_path, required=False)):
            if any(t.id == topic.id for t in topics):
                raise ConfigError(
                    str(user_path), f"topic[{index}].id", f"duplicate id {topic.id!r}"
                )
            topics.append(topic)
    return tuple(topics)


def _topics_of(path: Path, *, required: bool) -> list[Topic]:
    data = read_toml(path)
    source = str(path)
    check_keys(data, _TOP_KEYS if required else _USER_TOP_KEYS, source, "")
    if required:
        _check_scope_keys(data.get("scope"), source)
    raw_topics = data.get("topic", [])
    if not isinstance(raw_topics, list) or (required and not raw_topics):
        raise ConfigError(source, "topic", "no [[topic]] table")
    topics: list[Topic] = []
    for index, raw in enumerate(raw_topics):
        topic = _topic(raw, source, f"topic[{index}]")
        if any(t.id == topic.id for t in topics):
            raise ConfigError(source, f"topic[{index}].id", f"duplicate id {topic.id!r}")
        topics.append(topic)
    return topics


def _check_scope_keys(raw: object, source: str) -> None:
    """The keys of [scope] and its term tables, also where the scope is not read (`topics
    list`): a typo there is reported by every command, not only by those that classify."""
    if not isinstance(raw, dict):
        return  # load_scope names what is wrong with the table itself
    check_keys(raw, _SCOPE_KEYS, source, "scope")
    for group in SCOPE_GROUPS:
        if isinstance(raw.get(group), dict):
            check_keys(raw[group], TERM_KEYS, source, f"scope.{group}")


_USER_HEADER = """# Your topics, added by `chipwatch topics add` (or `topics accept`); the shipped
# topics are in topics.toml. A topic is its description and the corpus documents
# annotated with it (`chipwatch corpus add FILE --topics ID`); a [topic.terms] table is
# an optional boost. The classifier refits at its next use.
"""


def _toml_string(value: str) -> str:
    """A TOML basic string of the text on one line: every control character a form or a
    shell can carry escaped, so no user text can break (or add keys to) the file."""
    escaped = " ".join(value.split()).replace("\\", "\\\\").replace('"', '\\"')
    return '"' + re.sub(r"[\x00-\x1f\x7f]", lambda m: f"\\u{ord(m[0]):04x}", escaped) + '"'


def _terms_block(terms: Mapping[str, Sequence[str]]) -> str:
    lines = [
        f"{language} = [{', '.join(_toml_string(t) for t in listed)}]"
        for language, listed in terms.items()
        if listed
    ]
    return "[topic.terms]\n" + "\n".join(lines) + "\n" if lines else ""


def add_user_topic(
    topics_path: Path,
    user_path: Path,
    topic_id: str,
    name: str,
    description: str,
    terms: Mapping[str, Sequence[str]] | None = None,
) -> Topic:
    """Append a topic to the user's topics file (created if absent); never touches the
    shipped topics.toml. The id must be new and lowercase-dashed; `terms` (language ->
    terms) is the optional boost. Two writers at once (the site's form, the CLI) take
    turns, and the file is replaced only by a version that loads whole."""
    source = str(user_path)
    _check_id(topic_id, source, "id")
    for key, value, limit in (
        ("name", name, MAX_NAME_CHARS),
        ("description", description, MAX_DESCRIPTION_CHARS),
    ):
        if not value.strip():
            raise ConfigError(source, key, "must not be empty")
        _bounded(" ".join(value.split()), limit, source, key)
    block = (
        f"\n[[topic]]\nid = {_toml_string(topic_id)}\nname = {_toml_string(name)}\n"
        f"description = {_toml_string(description)}\n{_terms_block(terms or {})}"
    )
    user_path.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(user_path):
        if any(t.id == topic_id for t in load_topics(topics_path, user_path)):
            raise ConfigError(source, "id", f"topic {topic_id!r} already exists")
        current = user_path.read_text(encoding="utf-8") if user_path.exists() else _USER_HEADER
        _replace_if_it_loads(topics_path, user_path, current.rstrip("\n") + "\n" + block)
    return next(t for t in load_topics(topics_path, user_path) if t.id == topic_id)


def _replace_if_it_loads(topics_path: Path, user_path: Path, text: str) -> None:
    """Write `text` beside the user's file, load the topics with it, then rename it over."""
    descriptor, name = tempfile.mkstemp(
        dir=user_path.parent, prefix=f".{user_path.name}.", suffix=".new"
    )
    trial = Path(name)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
        try:
            load_topics(topics_path, trial)
        except ConfigError as exc:  # named after the user's file, not the trial copy
            raise ConfigError(str(user_path), exc.field, exc.message) from None
        os.chmod(trial, user_path.stat().st_mode & 0o7777 if user_path.exists() else 0o644)
        os.replace(trial, user_path)
    finally:
        trial.unlink(missing_ok=True)


def load_scope(path: Path) -> ScopeTerms:
    """The [scope] table of config/topics.toml."""
    data = read_toml(path)
    source = str(path)
    check_keys(data, _TOP_KEYS, source, "")
    raw = data.get("scope")
    if not isinstance(raw, dict):
        raise ConfigError(source, "scope", "missing [scope] table")
    check_keys(raw, _SCOPE_KEYS, source, "scope")
    groups = {g: _terms(raw.get(g, {}), source, f"scope.{g}") for g in SCOPE_GROUPS}
    if not any(groups["goods"].values()):
        raise ConfigError(source, "scope.goods", "the gate needs at least one goods term")
    anchors: dict[str, Terms] = {}
    raw_topics = data.get("topic")
    for index, topic in enumerate(raw_topics if isinstance(raw_topics, list) else []):
        if isinstance(topic, dict) and "anchors" in topic:
            where = f"topic[{index}].anchors"
            table = _terms(topic["anchors"], source, where)
            if not any(table.values()):
                raise ConfigError(source, where, "an anchors table needs at least one term")
            anchors[_string(topic, "id", source, f"topic[{index}]")] = table
    counter = raw.get("counter_examples", [])
    if not isinstance(counter, list) or not all(isinstance(c, str) for c in counter):
        raise ConfigError(source, "scope.counter_examples", "must be a list of strings")
    novel = raw.get("novel_examples", [])
    if not isinstance(novel, list) or not all(isinstance(c, str) for c in novel):
        raise ConfigError(source, "scope.novel_examples", "must be a list of strings")
    return ScopeTerms(
        description=_string(raw, "description", source, "scope"),
        anchors=anchors,
        counter_examples=tuple(c.strip() for c in counter if c.strip()),
        novel_examples=tuple(c.strip() for c in novel if c.strip()),
        **groups,
    )
