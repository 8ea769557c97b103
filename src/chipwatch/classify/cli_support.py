"""What the Typer CLI calls: classify a JSONL file, evaluate on a labelled file."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TextIO

import chipwatch.classify.evaluate as ev
from chipwatch.classify.model import FittedClassifier
from chipwatch.errors import ClassifierError
from chipwatch.markup import json_document
from chipwatch.types import (
    UNDETERMINED,
    ClassifyInput,
    CorpusDocument,
    TextKind,
    language_code_problem,
)

REQUIRED_FIELDS: tuple[str, ...] = ("id", "title", "text")
OPTIONAL_FIELDS: tuple[str, ...] = ("url", "published", "language", "text_kind")
# Articles classified per batch: bounds memory and keeps the embedder's batches useful.
BATCH_SIZE = 256


def parse_input_line(line: str, source: str, number: int) -> ClassifyInput:
    """One `classify` input line -> ClassifyInput; errors name file and line."""
    try:
        raw = json_document(line)
    except json.JSONDecodeError as exc:
        raise ClassifierError(f"{source}:{number}: invalid JSON: {exc.msg}") from exc
    if not isinstance(raw, dict):
        raise ClassifierError(f"{source}:{number}: expected a JSON object")
    for key in REQUIRED_FIELDS:
        if key not in raw:
            raise ClassifierError(f"{source}:{number}: missing field {key!r}")
        if not isinstance(raw[key], str):
            raise ClassifierError(f"{source}:{number}: field {key!r} must be a string")
    for key in OPTIONAL_FIELDS:
        if raw.get(key) is not None and not isinstance(raw[key], str):
            raise ClassifierError(f"{source}:{number}: field {key!r} must be a string or null")
    language = raw.get("language")
    problem = language_code_problem(language) if language else None
    if problem:
        raise ClassifierError(f"{source}:{number}: field 'language': {problem}")
    kind = raw.get("text_kind")
    if kind is not None and kind not in {k.value for k in TextKind}:
        known = ", ".join(k.value for k in TextKind)
        raise ClassifierError(f"{source}:{number}: field 'text_kind' must be one of {known}")
    return ClassifyInput(
        id=raw["id"],
        title=raw["title"],
        text=raw["text"],
        url=raw.get("url"),
        published=raw.get("published"),
        language=raw.get("language") or None,
        text_kind=TextKind(kind) if kind else None,
    )


def read_inputs(path: Path) -> list[ClassifyInput]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ClassifierError(f"{path}: cannot read: {exc}") from exc
    return [
        parse_input_line(line, str(path), number)
        for number, line in enumerate(text.splitlines(), start=1)
        if line.strip()
    ]


def run_classify(
    input_jsonl: Path,
    out: TextIO,
    classifier: FittedClassifier,
    on_batch: Callable[[int, int], None] | None = None,
) -> int:
    """Classify every line of `input_jsonl` into `out` as JSONL; returns the count.

    The whole input is validated before anything is written, so a malformed line
    leaves no half-written output.
    """
    items = read_inputs(input_jsonl)
    for start in range(0, len(items), BATCH_SIZE):
        for result in classifier.classify(items[start : start + BATCH_SIZE]):
            out.write(json.dumps(result.to_json(), ensure_ascii=False) + "\n")
        if on_batch is not None:  # progress: (done, total)
            on_batch(min(start + BATCH_SIZE, len(items)), len(items))
    return len(items)


def run_eval(
    path: Path,
    classifier: FittedClassifier,
    baseline: str | None = None,
    cross_validate: bool = False,
    *,
    folds: int = 5,
    protocol: str = "standard",
    text: str = "full",
    by_lang: bool = True,
    corpus: Sequence[CorpusDocument] = (),
    seeds: int = 1,
) -> str:
    """Report text for a labelled file.

    `protocol` "standard" scores relevance, topics and novelty; "new-topic" takes each
    topic in turn, drops its terms and its labels, keeps its description and two corpus
    examples, refits, and scores that topic. `text` cuts the inputs (full, headline, or
    a number of characters); `cross_validate` re-tunes the shared weights per fold.
    """
    rows = ev.load_rows(path)
    if cross_validate:
        ev.check_folds(path, rows, folds)
    text = ev.check_text_mode(text)
    if protocol == "new-topic":
        return _new_topic_report(rows, classifier, corpus, text, cross_validate, folds, by_lang)
    if protocol not in PROTOCOLS:
        raise ClassifierError(f"unknown protocol {protocol!r} (known: {', '.join(PROTOCOLS)})")
    # no-terms: every article as if in a language without term lists (Chinese, Russian):
    # what the embeddings alone carry, scored where labels exist.
    as_language = NO_TERMS_LANGUAGE if protocol == "no-terms" else None
    topic_ids = [t.id for t in classifier.topics]
    reports = []
    for seed in range(seeds if cross_validate else 1):
        predictions = ev.predict(
            rows,
            classifier,
            text=text,
            cross_validate=cross_validate,
            folds=folds,
            seed=seed,
            as_language=as_language,
        )
        reports.append(ev.evaluate(rows, predictions, topic_ids))
    name = f"chipwatch ({folds}-fold CV)" if cross_validate else "chipwatch"
    shown = f", protocol={protocol}" if as_language else ""
    report = ev.mean_report(reports, name=f"{name}, text={text}{shown}")
    base_report = None
    if baseline is not None:
        if baseline != "keywords":
            raise ClassifierError(f"unknown baseline {baseline!r} (known: keywords)")
        base_preds = ev.baseline_keywords().classify([ev.as_input(r, text) for r in rows])
        base_report = ev.evaluate(rows, base_preds, topic_ids, name="keywords")
    return ev.render_report(report, base_report, by_lang=by_lang)


PROTOCOLS = ("standard", "new-topic", "no-terms")
# A language code no term list has (ISO 639 reserves "zz"-style codes; none is used).
NO_TERMS_LANGUAGE = "zz"

# Example documents kept for a topic in the new-topic protocol.
NEW_TOPIC_EXAMPLES = 2


def _new_topic_report(
    rows: Sequence[ev.Row],
    classifier: FittedClassifier,
    corpus: Sequence[CorpusDocument],
    text: str,
    cross_validate: bool,
    folds: int,
    by_lang: bool,
) -> str:
    from chipwatch.classify.model import fit

    lines = [
        f"new-topic protocol (terms and labels dropped, description + "
        f"{NEW_TOPIC_EXAMPLES} corpus examples kept), text={text}"
        + (f", {folds}-fold CV" if cross_validate else ""),
    ]
    languages = sorted({str(r.get("language") or UNDETERMINED) for r in rows}) if by_lang else []
    lines.append("topic".ljust(24) + "".join(c.rjust(9) for c in ["P", "R", "F1", *languages]))
    f1s: list[float] = []
    per_lang: dict[str, list[int]] = {lang: [0, 0, 0] for lang in languages}
    pooled = [0, 0, 0]
    for topic in classifier.topics:
        topics = [replace(t, terms={}) if t.id == topic.id else t for t in classifier.topics]
        examples = [d for d in corpus if topic.id in d.topics][:NEW_TOPIC_EXAMPLES]
        reduced = [
            d
            if d in examples or topic.id not in d.topics
            else replace(d, topics=tuple(t for t in d.topics if t != topic.id))
            for d in corpus
        ]
        model = fit(reduced, topics, classifier.scope, (), classifier.params, classifier.embedder)
        predictions = ev.predict(
            rows,
            model,
            text=text,
            cross_validate=cross_validate,
            folds=folds,
            hidden=frozenset({topic.id}),
        )
        report = ev.evaluate(rows, predictions, [topic.id])
        prf = report.overall.per_topic[topic.id]
        for k, v in enumerate((prf.tp, prf.fp, prf.fn)):
            pooled[k] += v
        cells = [prf.precision, prf.recall, prf.f1]
        for lang in languages:
            lp = report.by_language[lang].per_topic[topic.id]
            for k, v in enumerate((lp.tp, lp.fp, lp.fn)):
                per_lang[lang][k] += v
            cells.append(lp.f1)
        if prf.f1 is not None:
            f1s.append(prf.f1)
        lines.append(topic.id.ljust(24) + "".join(ev.fmt(c).rjust(9) for c in cells))
    micro = ev.PRF(*pooled)
    cells = [micro.precision, micro.recall, micro.f1]
    cells += [ev.PRF(*per_lang[lang]).f1 for lang in languages]
    lines.append("pooled (micro)".ljust(24) + "".join(ev.fmt(c).rjust(9) for c in cells))
    mean = sum(f1s) / len(f1s) if f1s else None
    lines.append("mean topic F1 (macro)".ljust(24) + ev.fmt(mean).rjust(27))
    return "\n".join(lines)
