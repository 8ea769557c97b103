"""Story grouping with the real multilingual USE: one development per story.

The articles are our own words, written like this watch's news: every one of them names
Nvidia, China, H20 or the Commerce Department, but they report different developments.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import numpy as np
import pytest

from chipwatch.digest.boilerplate import clean_lead
from chipwatch.digest.grouping import Features, Grouper, GroupingParams, anchors, centre
from chipwatch.digest.select import DigestItem
from chipwatch.digest.stories import cluster, default_embedder

T0 = datetime(2025, 8, 12, 8, 0)


def item(
    i: int,
    title: str,
    text: str,
    *,
    lang: str = "en",
    hours: float = 0,
    relevance: float = 0.8,
) -> DigestItem:
    return DigestItem(
        article_id=i,
        title=title,
        source_name=f"Outlet {i}",
        url=None,
        published=T0 + timedelta(hours=hours),
        language=lang,
        excerpt=text[:100],
        relevance=relevance,
        topics=("ai-chip-licensing",),
        topic_scores={"ai-chip-licensing": 0.8},
        novel=False,
        text=text,
    )


# One week, four developments, the same names throughout.
RESUME_EN = item(
    1,
    "US lets Nvidia resume H20 sales to China",
    "The Commerce Department told Nvidia it will grant licences for H20 shipments to China, "
    "reversing the April ban. Jensen Huang announced the decision in Beijing.",
    relevance=0.95,
)
RESUME_FR = item(
    2,
    "Les États-Unis autorisent Nvidia à revendre ses puces H20 en Chine",
    "Le département du Commerce accordera à Nvidia des licences pour livrer des H20 en Chine, "
    "revenant sur l'interdiction d'avril. Jensen Huang a annoncé la décision à Pékin.",
    lang="fr",
    hours=4,
)
RESUME_DE = item(
    3,
    "USA erlauben Nvidia wieder den Verkauf von H20-Chips nach China",
    "Das US-Handelsministerium will Nvidia Lizenzen für die Lieferung von H20-Chips nach China "
    "erteilen und hebt damit das Verbot vom April auf. Jensen Huang verkündete die "
    "Entscheidung in Peking.",
    lang="de",
    hours=7,
)
SUMMONED = item(
    4,
    "Beijing summons Nvidia over H20 security risks",
    "China's internet regulator summoned Nvidia representatives and asked them to explain "
    "alleged tracking and remote shutdown features in H20 chips.",
    hours=30,
)
SUMMONED_2 = item(
    5,
    "China's cyberspace regulator calls in Nvidia about backdoor fears in H20",
    "The Cyberspace Administration of China said it met Nvidia to discuss whether H20 chips "
    "carry backdoors that could track them or switch them off remotely.",
    hours=33,
)
REVENUE = item(
    6,
    "Nvidia and AMD will pay Washington 15% of their China chip revenue",
    "Under an unusual arrangement with the Commerce Department, Nvidia and AMD agreed to hand "
    "the US government 15% of revenue from H20 and MI308 sales to China.",
    hours=60,
)
WRITE_OFF = item(
    7,
    "Nvidia takes a $4.5 billion charge on unsold H20 inventory",
    "Nvidia said its quarterly results include a $4.5 billion charge for H20 chips it could "
    "not ship to China while the licence requirement was in force.",
    hours=90,
)
WEEK = [RESUME_EN, RESUME_FR, RESUME_DE, SUMMONED, SUMMONED_2, REVENUE, WRITE_OFF]


@pytest.fixture(scope="module")
def week_stories():  # noqa: ANN201
    return cluster(WEEK, embed=default_embedder())


def story_of(stories, article_id: int) -> set[int]:  # noqa: ANN001
    return next(set(s.article_ids) for s in stories if article_id in s.article_ids)


def test_distinct_developments_with_the_same_names_stay_apart(week_stories) -> None:  # noqa: ANN001
    assert story_of(week_stories, 4).isdisjoint({1, 2, 3, 6, 7})
    assert story_of(week_stories, 6) == {6}
    assert story_of(week_stories, 7) == {7}
    assert story_of(week_stories, 1).isdisjoint({4, 5, 6, 7})


def test_same_development_in_english_french_and_german_joins(week_stories) -> None:  # noqa: ANN001
    resumed = next(s for s in week_stories if 1 in s.article_ids)
    assert set(resumed.article_ids) == {1, 2, 3}
    assert {o.language for o in resumed.others} == {"fr", "de"}
    assert story_of(week_stories, 4) == {4, 5}  # two English reports of one summons


def test_lead_is_the_most_informative_article() -> None:
    bare = item(20, "Nvidia and AMD to pay US 15% of China sales", "", relevance=0.99)
    (story,) = cluster([bare, REVENUE], embed=default_embedder())
    # The bare headline is the more relevant, but the article with a text leads.
    assert story.lead.article_id == REVENUE.article_id


def test_anchors_survive_translation() -> None:
    en = anchors(REVENUE.title + " " + REVENUE.text)
    fr = anchors("Nvidia et AMD verseront 15 % de leurs ventes de H20 et de MI308 en Chine")
    assert {"#H20", "#MI308", "%15", "@nvidia", "@amd"} <= en & fr


def _vectors(*rows: Sequence[float]) -> np.ndarray:
    return np.array(rows, dtype=np.float32)


def test_average_linkage_does_not_chain() -> None:
    # b is close to a, c is close to b but far from a: single-link would chain all three.
    a, b, c = _vectors([1, 0, 0]), _vectors([0.8, 0.6, 0]), _vectors([0.28, 0.96, 0])
    params = GroupingParams(threshold=0.7, anchor_weight=0.0)
    grouper = Grouper(params, {}, 3)
    stories = [grouper.add(Features(v[0], frozenset(), 0.0)) for v in (a, b, c)]
    assert stories[0] == stories[1] != stories[2]


def test_time_decay_keeps_a_much_later_article_apart() -> None:
    same = _vectors([1, 0])[0]
    params = GroupingParams(threshold=0.7, anchor_weight=0.0, decay_per_day=0.03, grace_days=2)
    grouper = Grouper(params, {}, 3)
    first = grouper.add(Features(same, frozenset(), 0.0))
    assert grouper.add(Features(same, frozenset(), 1.5)) == first  # within the grace days
    assert grouper.add(Features(same, frozenset(), 30.0)) != first  # a month later: apart


def test_anchor_weight_lifts_a_pair_over_the_threshold() -> None:
    a, b = _vectors([1, 0])[0], _vectors([0.6, 0.8])[0]  # cosine 0.6
    shared = frozenset({"#H20", "%15"})
    for weight, together in ((0.0, False), (0.5, True)):
        grouper = Grouper(GroupingParams(threshold=0.7, anchor_weight=weight), {}, 2)
        first = grouper.add(Features(a, shared, 0.0))
        assert (grouper.add(Features(b, shared, 0.1)) == first) is together


def test_centring_removes_what_every_article_shares() -> None:
    common = np.ones(4, dtype=np.float32)
    vectors = np.array([common + np.eye(4)[i] * 0.3 for i in range(4)] * 10)
    raw = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)) @ (
        vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    ).T
    centred = centre(vectors)
    assert raw[0, 1] > 0.9 and centred[0] @ centred[1] < 0.5
    assert centred[0] @ centred[4] > 0.99  # the same direction stays the same


def test_excerpt_skips_date_lines_labels_and_paywall_notices() -> None:
    text = (
        " date 2025-07 \nIntroduction\nSubscribe to read the full story\n"
        "US lets Nvidia resume H20 sales to China\n"
        "The Commerce Department told Nvidia it will grant licences for H20 shipments."
    )
    assert clean_lead(text, "US lets Nvidia resume H20 sales to China").startswith(
        "The Commerce Department told Nvidia"
    )
    assert clean_lead("Headline only", "Headline only") == "Headline only"


def test_empty_and_single() -> None:
    assert cluster([]) == []
    (story,) = cluster([WRITE_OFF], embed=default_embedder())
    assert story.lead == WRITE_OFF and story.others == ()


def test_cross_language_bonus_lifts_a_translation_over_the_threshold() -> None:
    a, b = _vectors([1, 0])[0], _vectors([0.4, np.sqrt(1 - 0.16)])[0]  # cosine 0.4
    for bonus, together in ((0.0, False), (0.1, True)):
        params = GroupingParams(
            threshold=0.44, anchor_weight=0.0, cross_language_bonus=bonus, cross_language_cosine=0
        )
        grouper = Grouper(params, {}, 2)
        first = grouper.add(Features(a, frozenset(), 0.0, "en"))
        assert (grouper.add(Features(b, frozenset(), 0.1, "fr")) == first) is together
    # Two articles in one language get no bonus.
    grouper = Grouper(GroupingParams(threshold=0.44, cross_language_bonus=0.1), {}, 2)
    first = grouper.add(Features(a, frozenset(), 0.0, "en"))
    assert grouper.add(Features(b, frozenset(), 0.1, "en")) != first


def test_cross_language_cosine_weighs_a_translation_cosine_more() -> None:
    a, b = _vectors([1, 0])[0], _vectors([0.4, np.sqrt(1 - 0.16)])[0]  # cosine 0.4
    for weight, together in ((0.0, False), (0.25, True)):  # 0.4 * 1.25 = 0.5 >= 0.44
        params = GroupingParams(
            threshold=0.44, anchor_weight=0.0, cross_language_bonus=0, cross_language_cosine=weight
        )
        grouper = Grouper(params, {}, 2)
        first = grouper.add(Features(a, frozenset(), 0.0, "en"))
        assert (grouper.add(Features(b, frozenset(), 0.1, "de")) == first) is together
        grouper = Grouper(params, {}, 2)
        first = grouper.add(Features(a, frozenset(), 0.0, "en"))
        assert grouper.add(Features(b, frozenset(), 0.1, "en")) != first


def test_each_kind_of_anchor_has_its_weight() -> None:
    a, b = _vectors([1, 0])[0], _vectors([0.6, 0.8])[0]  # cosine 0.6
    shared = {
        "code": frozenset({"#H20"}),
        "number": frozenset({"%15"}),
        "name": frozenset({"@lutnick"}),
    }
    for kind in shared:
        for weight, together in ((0.0, False), (0.5, True)):
            weights = {"code_weight": 0.0, "number_weight": 0.0, "name_weight": 0.0}
            weights[f"{kind}_weight"] = weight
            params = GroupingParams(threshold=0.7, cross_language_cosine=0, **weights)
            grouper = Grouper(params, {}, 2)
            first = grouper.add(Features(a, shared[kind], 0.0))
            assert (grouper.add(Features(b, shared[kind], 0.1)) == first) is together, kind


def test_an_anchor_on_one_article_only_weighs_nothing() -> None:
    grouper = Grouper(GroupingParams(), {"#H20": 2, "@schumer": 1, "@lutnick": 1}, 50)
    assert grouper.idf("#H20") > 0 and grouper.idf("@schumer") == 0
    # The one-off names of one article do not dilute what it shares with another.
    assert grouper.overlap(frozenset({"#H20", "@schumer"}), frozenset({"#H20", "@lutnick"})) == 1.0


def test_names_are_the_same_name_across_languages() -> None:
    found = anchors("Nvidia-Chef Huang. Nvidia’s H200. L'Administration Trump")
    assert {"@nvidia", "@huang", "@administration", "@trump", "#H200"} <= found


def test_a_batch_groups_as_one_by_one() -> None:
    # Several reports around each of 30 directions, with a shared code per direction.
    rng = np.random.default_rng(3)
    centres = rng.standard_normal((30, 16))
    feats = []
    for k in range(200):
        event = int(rng.integers(30))
        vector = centres[event] + 0.6 * rng.standard_normal(16)
        vector /= np.linalg.norm(vector)
        feats.append(Features(vector.astype(np.float32), frozenset({f"#E{event}"}), k / 50))
    params = GroupingParams(threshold=0.5)
    one_by_one = Grouper(params, {}, 200)
    expected = [one_by_one.add(f) for f in feats]
    batched = Grouper(params, {}, 200)
    got = (
        batched.add_many(feats[:10])
        + batched.add_many(feats[10:120])
        + batched.add_many(feats[120:])
    )
    assert got == expected and len(set(expected)) > 20


def test_story_sums_in_blocks_group_as_one_matrix(monkeypatch: pytest.MonkeyPatch) -> None:
    from chipwatch.digest import grouping

    rng = np.random.default_rng(5)
    centres = rng.standard_normal((40, 16))
    feats = []
    for k in range(150):
        vector = centres[int(rng.integers(40))] + 0.5 * rng.standard_normal(16)
        vector /= np.linalg.norm(vector)
        feats.append(Features(vector.astype(np.float32), frozenset(), k / 40))
    for dense_limit in (4096, 10):  # the dense path, then blocking past 10 stories
        params = GroupingParams(threshold=0.5, dense_limit=dense_limit)
        whole = grouping.group(feats, params)
        monkeypatch.setattr(grouping, "SUM_BLOCK", 7)  # many blocks of 7 stories
        assert grouping.group(feats, params) == whole and len(set(whole)) > 14
        monkeypatch.undo()


def _mixed_window(seed: int, count: int = 240) -> list[Features]:
    """Reports around 40 developments in three languages over a week: each carries its
    development's code and amount, and names from small lists (so some anchors are
    common, some rare, some on one article only)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((40, 16))
    feats = []
    for k in range(count):
        event = int(rng.integers(40))
        vector = centres[event] + 0.7 * rng.standard_normal(16)
        vector /= np.linalg.norm(vector)
        found = {f"#E{event}", f"n{100 + event}", f"@name{int(rng.integers(6))}"}
        if rng.random() < 0.5:
            found.add(f"@other{int(rng.integers(200))}")
        if rng.random() < 0.3:
            found.add(f"%{int(rng.integers(4))}")
        language = str(rng.choice(["en", "fr", "de"]))
        day = k / count * 7 + float(rng.uniform(0, 0.5))
        feats.append(Features(vector.astype(np.float32), frozenset(found), day, language))
    return feats


@pytest.mark.parametrize("dense_limit", [4096, 12])
def test_the_prefilter_drops_only_stories_that_cannot_win(
    monkeypatch: pytest.MonkeyPatch, dense_limit: int
) -> None:
    from chipwatch.digest import grouping

    params = GroupingParams(threshold=0.55, dense_limit=dense_limit, max_anchor_df=8)
    for seed in (1, 2):
        feats = _mixed_window(seed)
        with_prefilter = grouping.group(feats, params)
        # Every candidate scored exactly: the reference the bound must not change.
        monkeypatch.setattr(
            grouping.Grouper, "_prefilter", lambda self, f, rows, means: (rows, means)
        )
        assert grouping.group(feats, params) == with_prefilter
        monkeypatch.undo()
        assert 10 < len(set(with_prefilter)) < len(feats) - 40


def test_the_prefilter_drops_stories_that_cannot_reach_the_threshold() -> None:
    params = GroupingParams(threshold=0.55, max_anchor_df=8)
    grouper = Grouper(params, {}, 0)
    feats = _mixed_window(3)
    grouper.add_many(feats[:-1])
    last = feats[-1]
    rows, means = grouper._candidates(last)
    kept, _ = grouper._prefilter(last, rows, means)
    assert 0 < len(kept) < len(rows)


def test_plain_text_skips_the_cleaner_only_where_it_would_change_nothing() -> None:
    import html
    import random

    import nh3

    from chipwatch.digest.select import plain_text

    rng = random.Random(11)
    alphabet = [chr(c) for c in range(1, 0x250) if chr(c) not in "<&\r"] + ["\u2028", "é"]
    for _ in range(3000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
        cleaned = html.unescape(nh3.clean(text, tags=set(), attributes={}))
        assert plain_text(text) == " ".join(cleaned.split())
    # Markup, entities, NUL and CR still go through the cleaner.
    assert plain_text("<b>H20</b> &amp; MI308\x00") == "H20 & MI308"
    assert plain_text("one\r\ntwo", keep_lines=True) == "one\ntwo"
    assert plain_text("&lt;script&gt;alert(1)&lt;/script&gt;ok") == "ok"
