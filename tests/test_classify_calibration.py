"""Topic decisions calibrated for F1, and termless topics judged by their closest examples."""

from __future__ import annotations

import numpy as np
import pytest

from chipwatch.classify import tune
from chipwatch.classify.semantic import SemanticModel, TopicPrototype, closeness
from chipwatch.classify.weights import TopicLinear


def test_the_shift_is_the_f1_best_one_nearest_zero() -> None:
    # A log-loss fit would call only the last one positive; F1 is best from -1 upwards.
    scores = np.array([-1.5, -1.0, -0.5, 0.5])
    gold = np.array([False, True, True, True])
    assert tune._best_shift(scores, gold) == pytest.approx(1.0)
    # Nothing to gain: no shift.
    assert tune._best_shift(np.array([-1.0, 1.0]), np.array([False, True])) == 0.0


def _rare_topic(rng: np.random.Generator, n: int) -> list[tuple[list[float], str, bool]]:
    """One weak feature, a topic present in ~15% of the rows: where a log-loss fit's 0.5
    is too high for F1. Judged as a topic the model has never seen ("new")."""
    rows = []
    for _ in range(n):
        gold = bool(rng.random() < 0.15)
        rows.append(([float(rng.normal(1.0 if gold else 0.0, 1.0))], "t", gold))
    return rows


def _f1(model: TopicLinear, rows: list[tuple[list[float], str, bool]]) -> float:
    pred = [model.probability("new", x) >= 0.5 for x, _, _ in rows]
    gold = [g for _, _, g in rows]
    tp = sum(p and g for p, g in zip(pred, gold, strict=True))
    return 2 * tp / (sum(pred) + sum(gold))


def test_the_termless_bias_is_calibrated_for_f1_on_new_rows(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rng = np.random.default_rng(7)
    train, test = _rare_topic(rng, 300), _rare_topic(rng, 3000)
    base = TopicLinear((0.0,), (), 0.0)
    calibrated = tune._topic_linear(train, ["t"], base, per_topic_bias=False)
    monkeypatch.setattr(tune, "_f1_shift", lambda x, y: 0.0)
    plain = tune._topic_linear(train, ["t"], base, per_topic_bias=False)
    assert calibrated.default_bias > plain.default_bias  # a lower threshold
    assert _f1(calibrated, test) > _f1(plain, test) + 0.05


def test_each_topic_gets_its_own_fitted_bias() -> None:
    # Same feature distribution, base rates 10% and 60%: the biases must differ by about
    # the difference of their log-odds (they were all 0 when the one-hot column was empty).
    rng = np.random.default_rng(3)
    rows = []
    for topic, rate in (("rare", 0.1), ("common", 0.6)):
        for _ in range(400):
            rows.append(([float(rng.normal())], topic, bool(rng.random() < rate)))
    base = TopicLinear((0.0,), (), 0.0)
    model = tune._topic_linear(rows, ["rare", "common"], base, per_topic_bias=True)
    bias = dict(model.bias)
    assert bias["rare"] < -1.5 and bias["common"] > 0.0
    assert model.default_bias == pytest.approx((bias["rare"] + bias["common"]) / 2, abs=1e-3)


def test_closeness_is_the_mean_of_the_k_largest() -> None:
    sims = np.array([[0.1, 0.9, 0.5, 0.3]])
    assert closeness(sims, 1)[0] == pytest.approx(0.9)
    assert closeness(sims, 2)[0] == pytest.approx(0.7)
    assert closeness(sims, 10)[0] == pytest.approx(0.45)  # fewer examples than k: all


def _proto(topic_id: str, examples: np.ndarray) -> TopicPrototype:
    return TopicPrototype(
        topic_id=topic_id,
        description=np.zeros(3, dtype=np.float32),
        examples=examples,
        desc_mean=0.0,
        desc_std=1.0,
        example_mean=0.0,
        example_std=1.0,
        neighbours_mean=0.0,
        neighbours_std=1.0,
    )


def test_one_stray_example_decides_the_closest_match_not_the_neighbours() -> None:
    article = np.array([[1.0, 0.0, 0.0]], dtype=np.float32)
    # "stray": one example right on the article, the rest elsewhere; "steady": every
    # example moderately close.
    stray = np.array([[1.0, 0, 0], *([[0, 1.0, 0]] * 4)], dtype=np.float32)
    steady = np.array([[0.6, 0.8, 0]] * 5, dtype=np.float32)
    model = SemanticModel(
        positive=article,
        negative=article[:0],
        topics=(_proto("stray", stray), _proto("steady", steady)),
    )
    closest = model.topic_signals(article)
    neighbours = model.topic_signals(article, 5)
    assert closest["stray"][0] > closest["steady"][0]
    assert neighbours["steady"][0] > neighbours["stray"][0]
