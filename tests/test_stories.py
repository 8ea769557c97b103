"""Story grouping: near-duplicates, same event across languages, and what stays apart."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import numpy as np

from chipwatch.digest.select import DigestItem
from chipwatch.digest.stories import anchors, cluster

T0 = datetime(2025, 8, 12, 8, 0)


def item(
    i: int,
    title: str,
    text: str,
    *,
    source: str = "",
    lang: str = "en",
    hours: float = 0,
    relevance: float = 0.8,
    topics: tuple[str, ...] = ("t",),
) -> DigestItem:
    return DigestItem(
        article_id=i,
        title=title,
        source_name=source or f"Outlet {i}",
        url=None,
        published=T0 + timedelta(hours=hours),
        language=lang,
        excerpt=text[:100],
        relevance=relevance,
        topics=topics,
        topic_scores={t: 0.8 for t in topics},
        novel=not topics,
        text=text,
    )


EN = item(
    1,
    "Nvidia may sell H20 chips to China again, for a 15% share",
    "Howard Lutnick said Nvidia and AMD agreed to pay 15% of China sales of the H20 "
    "and MI308 to Washington.",
    relevance=0.95,
)
FR = item(
    2,
    "Nvidia pourra vendre la puce H20 en Chine contre 15 %",
    "D'après Howard Lutnick, Nvidia et AMD reverseront 15 % des ventes chinoises de H20 "
    "et de MI308 à Washington.",
    lang="fr",
    hours=3,
    relevance=0.9,
)
DE = item(
    3,
    "Nvidia darf H20 wieder nach China liefern – gegen 15 Prozent",
    "Laut Howard Lutnick zahlen Nvidia und AMD 15 Prozent der China-Umsätze mit H20 "
    "und MI308 an Washington.",
    lang="de",
    hours=5,
)
COPY = item(4, EN.title, EN.text, source="Syndicate", hours=1)
MAGNETS = item(
    5,
    "China holds up magnet licences before the talks",
    "Customs in Beijing slowed permits for rare earth magnets this week.",
    hours=2,
)
LATER = item(
    6,
    "Nvidia pays 15% on H20 sales to China, Lutnick says of the MI308 deal",
    "Howard Lutnick repeated that Nvidia and AMD pay 15% on H20 and MI308 sales.",
    hours=24 * 20,
)


def test_same_event_across_languages_and_copies_is_one_story() -> None:
    stories = cluster([MAGNETS, DE, COPY, FR, EN])
    assert len(stories) == 2
    h20 = next(s for s in stories if 1 in s.article_ids)
    assert sorted(h20.article_ids) == [1, 2, 3, 4]
    assert h20.lead.article_id == 1  # the most relevant report leads
    assert {o.language for o in h20.others} == {"fr", "de", "en"}
    assert stories[0] is h20  # more outlets rank it first
    assert h20.source_count == 4


def test_time_window_keeps_a_later_event_apart() -> None:
    stories = cluster([EN, LATER])
    assert len(stories) == 2


def test_anchors_survive_translation() -> None:
    shared = anchors(EN.title + " " + EN.text) & anchors(FR.title + " " + FR.text)
    assert {"#H20", "#MI308", "%15", "@nvidia", "@lutnick"} <= shared


def test_embedding_joins_pairs_with_weaker_anchor_overlap() -> None:
    a = item(10, "Washington weighs limits on Nvidia sales", "Officials and Nvidia met on Monday.")
    b = item(
        11,
        "Washington envisage de limiter Nvidia",
        "Des responsables ont vu Nvidia lundi.",
        lang="fr",
        hours=1,
    )
    assert len(cluster([a, b])) == 2

    def embed(texts: Sequence[str]) -> np.ndarray:
        return np.ones((len(texts), 4))  # every text means the same thing here

    assert len(cluster([a, b], embed=embed)) == 2  # too few shared anchors even so
    c = item(
        12,
        "Washington weighs limits on Nvidia Blackwell B30A sales",
        "Officials and Nvidia discussed the B30A and Blackwell on Monday.",
    )
    d = item(
        13,
        "Washington envisage de limiter les ventes de B30A",
        "Officials, Nvidia : la B30A Blackwell et la H20 discutées.",
        lang="fr",
        hours=1,
    )
    assert len(cluster([c, d])) in (1, 2)
    assert len(cluster([c, d], embed=embed)) == 1


def test_empty_and_single() -> None:
    assert cluster([]) == []
    (story,) = cluster([MAGNETS])
    assert story.lead == MAGNETS and story.others == ()
