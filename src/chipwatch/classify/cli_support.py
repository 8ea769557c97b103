"""What the Typer CLI calls: classify a JSONL file, evaluate on a labelled file."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import chipwatch.classify.evaluate as ev
from chipwatch.classify.model import FittedClassifier
from chipwatch.errors import ClassifierError
from chipwatch.types import ClassifyInput

REQUIRED_FIELDS: tuple[str, ...] = ("id", "title", "text")
OPTIONAL_FIELDS: tuple[str, ...] = ("url", "published", "language")
# Articles classified per batch: bounds memory and keeps the embedder's batches useful.
BATCH_SIZE = 256


def parse_input_line(line: str, source: str, number: int) -> ClassifyInput:
    """One `classify` input line -> ClassifyInput; errors name file and line."""
    try:
        raw = json.loads(line)
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
    return ClassifyInput(
        id=raw["id"],
        title=raw["title"],
        text=raw["text"],
        url=raw.get("url"),
        published=raw.get("published"),
        language=raw.get("language") or None,
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
    output_jsonl: Path,
    classifier: FittedClassifier,
    on_batch: Callable[[int, int], None] | None = None,
) -> int:
    """Classify every line of `input_jsonl` into `output_jsonl`; returns the count.

    The whole input is validated before anything is written, so a malformed line
    leaves no half-written output.
    """
    items = read_inputs(input_jsonl)
    with output_jsonl.open("w", encoding="utf-8") as out:
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
) -> str:
    """Report text for a labelled file; `cross_validate` re-tunes the weights per fold."""
    rows = ev.load_rows(path)
    topic_ids = [t.id for t in classifier.topics]
    if cross_validate:
        predictions = ev.cross_validate(rows, classifier, folds=folds)
        name = f"chipwatch ({folds}-fold CV)"
    else:
        predictions = classifier.classify([ev.as_input(r) for r in rows])
        name = "chipwatch"
    report = ev.evaluate(rows, predictions, topic_ids, name=name)
    base_report = None
    if baseline is not None:
        if baseline != "keywords":
            raise ClassifierError(f"unknown baseline {baseline!r} (known: keywords)")
        base_preds = ev.baseline_keywords().classify([ev.as_input(r) for r in rows])
        base_report = ev.evaluate(rows, base_preds, topic_ids, name="keywords")
    return ev.render_report(report, base_report)
