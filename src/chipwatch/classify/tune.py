"""Tune the handful of weights of ClassifierParams on labelled rows (dev set, labels).

Two small logistic regressions on hand-made features: 7 relevance weights + bias, and
4 topic weights shared by all topics + one bias per topic. Nothing else is learned, so
what ships is these numbers, never a model of the labelled text.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

import numpy as np
from sklearn.linear_model import LogisticRegression

from chipwatch.classify.features import Matcher, relevance_features, topic_features
from chipwatch.classify.model import ClassifierParams
from chipwatch.classify.text import detect_language, optional_str
from chipwatch.classify.topics import ScopeTerms
from chipwatch.types import Topic

# L2 strength: strong enough that 135 rows cannot push a weight to an extreme.
REGULARISATION_C = 1.0


def tune_params(
    rows: Sequence[Mapping[str, object]],
    topics: Sequence[Topic],
    scope: ScopeTerms,
    base: ClassifierParams | None = None,
) -> ClassifierParams:
    """Fit relevance and topic weights on rows with id/title/text/relevant/topics."""
    base = base or ClassifierParams()
    matcher = Matcher(scope, topics)
    matches = [
        matcher.article(
            str(r["title"]),
            str(r["text"]),
            detect_language(str(r["title"]), str(r["text"]), optional_str(r.get("language"))),
        )
        for r in rows
    ]
    y = np.array([bool(r["relevant"]) for r in rows])
    if len(set(y.tolist())) < 2:
        return base
    rel = LogisticRegression(C=REGULARISATION_C, max_iter=1000)
    rel.fit(np.array([relevance_features(m) for m in matches]), y)

    x_topic: list[list[float]] = []
    y_topic: list[bool] = []
    for r, m in zip(rows, matches, strict=True):
        if not r["relevant"]:
            continue  # topics are only decided for relevant articles
        for index, topic in enumerate(topics):
            onehot = [1.0 if k == index else 0.0 for k in range(len(topics))]
            x_topic.append(topic_features(m, topic.id) + onehot)
            y_topic.append(topic.id in r["topics"])  # type: ignore[operator]
    if len(set(y_topic)) < 2:
        return replace(
            base,
            relevance_weights=tuple(float(w) for w in rel.coef_[0]),
            relevance_bias=float(rel.intercept_[0]),
        )
    top = LogisticRegression(C=REGULARISATION_C, max_iter=1000, fit_intercept=False)
    top.fit(np.array(x_topic), np.array(y_topic))
    n_feat = len(x_topic[0]) - len(topics)
    weights = top.coef_[0]
    biases = tuple((t.id, round(float(weights[n_feat + i]), 4)) for i, t in enumerate(topics))
    return replace(
        base,
        relevance_weights=tuple(round(float(w), 4) for w in rel.coef_[0]),
        relevance_bias=round(float(rel.intercept_[0]), 4),
        topic_weights=tuple(round(float(w), 4) for w in weights[:n_feat]),
        topic_bias=biases,
        default_topic_bias=round(float(np.mean([b for _, b in biases])), 4),
    )
