"""Tune the shared weights (weights.py) on labelled rows: the dev set, or CV folds of it.

Per text kind, four small L2-regularised logistic regressions over the signals the
classifier computed for each row (model.Signals). Nothing else is learned from labelled
rows, so what ships is these few numbers, never a model of the labelled text.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace

import numpy as np

from chipwatch.classify.model import ClassifierParams, Signals
from chipwatch.classify.weights import KindWeights, Linear, TopicLinear
from chipwatch.types import TextKind

# L2 strength: strong enough that ~100 rows cannot push a weight to an extreme.
REGULARISATION_C = 1.0

Row = Mapping[str, object]


def _round(values: Iterable[float]) -> tuple[float, ...]:
    return tuple(round(float(v), 4) for v in values)


def _linear(x: list[list[float]], y: list[bool], base: Linear) -> Linear:
    from sklearn.linear_model import LogisticRegression  # imported only when tuning

    if len(set(y)) < 2:
        return base
    model = LogisticRegression(C=REGULARISATION_C, max_iter=2000).fit(np.array(x), np.array(y))
    return Linear(_round(model.coef_[0]), round(float(model.intercept_[0]), 4))


def _topic_linear(
    rows: Sequence[tuple[list[float], str, bool]],
    topic_ids: Sequence[str],
    base: TopicLinear,
    *,
    per_topic_bias: bool,
) -> TopicLinear:
    """Shared weights over (features, topic, gold) rows; a bias per topic, or one."""
    from sklearn.linear_model import LogisticRegression

    if len({gold for _, _, gold in rows}) < 2:
        return base
    index = {t: i for i, t in enumerate(topic_ids)}
    x = []
    for features, topic, _ in rows:
        onehot = [1.0 if index[topic] == k else 0.0 for k in range(len(index))]
        x.append(features + (onehot if per_topic_bias else []))
    y = [gold for _, _, gold in rows]
    model = LogisticRegression(
        C=REGULARISATION_C, max_iter=2000, fit_intercept=not per_topic_bias
    ).fit(np.array(x), np.array(y))
    n = len(rows[0][0])
    coef = model.coef_[0]
    if not per_topic_bias:
        # One bias for topics it has never seen: set where F1 is best out of fold.
        bias = float(model.intercept_[0]) + _f1_shift(np.array(x), np.array(y))
        return TopicLinear(_round(coef), (), round(bias, 4))
    biases = tuple((t, round(float(coef[n + i]), 4)) for t, i in index.items())
    return TopicLinear(_round(coef[:n]), biases, round(float(np.mean([b for _, b in biases])), 4))


def _f1_shift(x: np.ndarray, y: np.ndarray) -> float:
    """The bias shift that maximises F1 on out-of-fold decision values (3-fold).

    For the termless model: a log-loss fit over topics it knows puts 0.5 where a topic
    it has never seen (judged by two examples) is rarely reached, so such a topic never
    fired; F1 is what the digest needs. (Measured on the per-topic biases too: no gain
    on dev once those biases were really fitted, so they keep their log-loss values.)
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    if min(np.bincount(y.astype(int), minlength=2)) < 3:
        return 0.0
    model = LogisticRegression(C=REGULARISATION_C, max_iter=2000)
    folds = StratifiedKFold(n_splits=3, shuffle=True, random_state=0)
    scores = cross_val_predict(model, x, y, cv=folds, method="decision_function")
    return _best_shift(scores, y)


def _best_shift(scores: np.ndarray, gold: np.ndarray) -> float:
    """The shift of the decision value (within +-2, nearest 0 on ties) with the best F1."""
    best = (-1.0, 0.0)
    for shift in np.linspace(-2.0, 2.0, 41):
        pred = scores + shift >= 0
        tp = float(np.sum(pred & gold))
        f1 = 2 * tp / (np.sum(pred) + np.sum(gold)) if np.sum(pred) + np.sum(gold) else 0.0
        if f1 > best[0] + 1e-9 or (abs(f1 - best[0]) < 1e-9 and abs(shift) < abs(best[1])):
            best = (f1, float(shift))
    return best[1]


def tune_kind(
    signals: Sequence[Signals],
    rows: Sequence[Row],
    topic_ids: Sequence[str],
    base: KindWeights,
    *,
    hidden: frozenset[str] = frozenset(),
) -> KindWeights:
    """The four models of one kind from rows and their signals (same order).

    `hidden` topics are left out of topic tuning (the new-topic protocol: their labels
    are not seen). Topic models learn from relevant rows only: topics are decided for
    relevant articles.
    """
    y = [bool(r["relevant"]) for r in rows]
    lexical = [s.relevance_x() if s.termed_language else [] for s in signals]
    relevance = (
        _linear(
            [x for x in lexical if x],
            [g for x, g in zip(lexical, y, strict=True) if x],
            base.relevance,
        )
        if any(lexical)
        else base.relevance
    )
    semantic = _linear([list(s.relevance_semantic) for s in signals], y, base.relevance_semantic)
    termed_rows: list[tuple[list[float], str, bool]] = []
    termless_rows: list[tuple[list[float], str, bool]] = []
    kept = [t for t in topic_ids if t not in hidden]
    for s, r in zip(signals, rows, strict=True):
        if not r["relevant"]:
            continue
        gold = set(r["topics"])  # type: ignore[call-overload]
        for t in kept:
            termed_rows.append((s.topic_x(t, termless=False), t, t in gold))
            termless_rows.append((s.topic_x(t, termless=True), t, t in gold))
    return KindWeights(
        relevance=relevance,
        relevance_semantic=semantic,
        topic=_topic_linear(termed_rows, kept, base.topic, per_topic_bias=True),
        topic_termless=_topic_linear(
            termless_rows, kept, base.topic_termless, per_topic_bias=False
        ),
    )


def tune_params(
    by_kind: Mapping[TextKind, tuple[Sequence[Signals], Sequence[Row]]],
    topic_ids: Sequence[str],
    base: ClassifierParams,
    *,
    hidden: frozenset[str] = frozenset(),
) -> ClassifierParams:
    """Every kind's weights from its own rows (the dev set cut as that kind's inputs)."""
    kinds = dict(base.kinds)
    for kind, (signals, rows) in by_kind.items():
        kinds[kind.value] = tune_kind(signals, rows, topic_ids, base.for_kind(kind), hidden=hidden)
    return replace(base, kinds=tuple(kinds.items()))
