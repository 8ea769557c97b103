"""The shared weights of the decisions, one set per text kind (headline, summary, full).

Each kind has four small logistic models over named features:
* `relevance`: lexical + semantic signals, for a language with term lists;
* `relevance_semantic`: semantic signals + the language-neutral names only, for any
  other language (Chinese, Russian, Japanese...), so relevance is never zero there by
  construction;
* `topic`: lexical + semantic signals of a topic that has terms, one bias per topic;
* `topic_termless`: semantic signals only, for a topic defined by its description and
  examples (a topic the user just added), one shared bias.

The shipped numbers are in weights.json, written by `scripts/tune_classifier.py` from
the dev set (docs/classifier.md): they are the only thing learned from dev.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

from chipwatch.types import TextKind

WEIGHTS_FILE = Path(__file__).with_name("weights.json")


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(min(x, 40.0), -40.0)))


@dataclass(frozen=True)
class Linear:
    weights: tuple[float, ...]
    bias: float

    def probability(self, x: Sequence[float]) -> float:
        return sigmoid(self.bias + sum(w * v for w, v in zip(self.weights, x, strict=True)))


@dataclass(frozen=True)
class TopicLinear:
    weights: tuple[float, ...]
    # per-topic bias of the topics tuned on; others (added later) get `default_bias`
    bias: tuple[tuple[str, float], ...]
    default_bias: float

    def probability(self, topic_id: str, x: Sequence[float]) -> float:
        bias = dict(self.bias).get(topic_id, self.default_bias)
        return sigmoid(bias + sum(w * v for w, v in zip(self.weights, x, strict=True)))


@dataclass(frozen=True)
class KindWeights:
    relevance: Linear
    relevance_semantic: Linear
    topic: TopicLinear
    topic_termless: TopicLinear


def _linear(raw: Mapping[str, object]) -> Linear:
    return Linear(tuple(float(w) for w in raw["weights"]), float(raw["bias"]))  # type: ignore[attr-defined, arg-type]


def _topic_linear(raw: Mapping[str, object]) -> TopicLinear:
    bias = raw["bias"]
    assert isinstance(bias, Mapping)
    return TopicLinear(
        tuple(float(w) for w in raw["weights"]),  # type: ignore[attr-defined]
        tuple((str(k), float(v)) for k, v in bias.items()),
        float(raw["default_bias"]),  # type: ignore[arg-type]
    )


def kind_weights_from_json(raw: Mapping[str, Mapping[str, Mapping[str, object]]]) -> KindWeights:
    return KindWeights(
        relevance=_linear(raw["relevance"]),
        relevance_semantic=_linear(raw["relevance_semantic"]),
        topic=_topic_linear(raw["topic"]),
        topic_termless=_topic_linear(raw["topic_termless"]),
    )


def to_json(kinds: Mapping[str, KindWeights]) -> dict[str, object]:
    out: dict[str, object] = {}
    for kind, weights in kinds.items():
        entry = asdict(weights)
        for name in ("topic", "topic_termless"):
            entry[name]["bias"] = dict(entry[name]["bias"])
        out[kind] = entry
    return out


@lru_cache(maxsize=1)
def shipped_weights() -> tuple[tuple[str, KindWeights], ...]:
    raw = json.loads(WEIGHTS_FILE.read_text(encoding="utf-8"))
    return tuple((kind.value, kind_weights_from_json(raw[kind.value])) for kind in TextKind)
