"""Semantic signals: how close an article's units are to the scope and to each topic.

Fitted at `fit` time from what defines the topics: their descriptions, the corpus
passages annotated with them, the user's labels, and the scope's own description and
counter-examples. Any language the embedder knows is covered (multilingual USE is
cross-lingual: a Chinese headline meets French corpus passages).

Per topic, a few-shot model: its prototypes (description + example passages) and the
distribution of their similarity over a background of every other reference text, so
that a similarity becomes a z-score comparable across topics. That is what lets one
set of shared weights (tuned on dev) serve a topic added tomorrow with two examples.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from chipwatch.classify.embed import Embedder
from chipwatch.classify.text import substantive

# Characters of each unit that are embedded: cost grows with length, and a unit's
# opening says what it is about.
EMBED_CHARS = 300
# A topic without terms is judged by the mean of its K closest examples, not the closest
# one: with two multi-topic example documents, the single closest passage is often a
# passage about something else that happens to sit near the article (new-topic CV on
# dev: pooled F1 0.52 with the max, 0.56 with K=3, 0.57 with 5, 0.52 with 10).
TERMLESS_NEIGHBOURS = 5


def closeness(sims: np.ndarray, k: int) -> np.ndarray:
    """Per row: the mean of its k largest similarities (k=1: the maximum)."""
    if k <= 1 or sims.shape[1] <= 1:
        return sims.max(axis=1)
    k = min(k, sims.shape[1])
    return np.partition(sims, -k, axis=1)[:, -k:].mean(axis=1)


@dataclass(frozen=True)
class Reference:
    """A reference text: a corpus passage, a label, a description or a counter-example."""

    text: str
    topics: frozenset[str]
    relevant: bool


@dataclass(frozen=True)
class TopicPrototype:
    topic_id: str
    description: np.ndarray  # (d,)
    examples: np.ndarray  # (k, d): description + example passages
    # background mean and spread of the description and example similarities
    desc_mean: float
    desc_std: float
    example_mean: float
    example_std: float
    # the same for the mean of the TERMLESS_NEIGHBOURS closest examples
    neighbours_mean: float
    neighbours_std: float


@dataclass(frozen=True)
class SemanticModel:
    positive: np.ndarray  # (p, d) on-subject references
    negative: np.ndarray  # (n, d) off-subject references
    topics: tuple[TopicPrototype, ...]
    # On-subject news that no topic covers yet (`[scope] novel_examples`, and labels or
    # corpus documents marked relevant with no topic): a rival every topic must lead.
    novel: TopicPrototype | None = None

    def relevance_signals(self, units: np.ndarray) -> list[float]:
        """[best unit's max similarity to on-subject references, the headline's; best
        unit's margin over the off-subject references, the headline's]."""
        pos = (units @ self.positive.T).max(axis=1)
        neg = (units @ self.negative.T).max(axis=1) if len(self.negative) else 0.0 * pos
        margin = pos - neg
        return [float(pos.max()), float(pos[0]), float(margin.max()), float(margin[0])]

    def topic_signals(
        self, units: np.ndarray, k: int = 1, novel_rival: bool = True
    ) -> dict[str, list[float]]:
        """Per topic: [best unit's z-score to the examples (the closest one, or the mean
        of the k closest), to the description; the headline's z-score to the examples;
        the best unit's lead of this topic's z-score over the best other topic's (topics
        compete for a unit; with `novel_rival`, the news no topic covers competes too)]."""
        novel = (self.novel,) if novel_rival and self.novel is not None else ()
        rivals = self.topics + novel
        examples = np.stack([self._example_z(p, units, k) for p in rivals], axis=1)
        desc = np.stack(
            [(units @ p.description - p.desc_mean) / p.desc_std for p in rivals], axis=1
        )
        out: dict[str, list[float]] = {}
        for j, proto in enumerate(self.topics):
            score = examples[:, j] + desc[:, j]
            others = np.delete(examples + desc, j, axis=1)
            lead = score - others.max(axis=1) if others.shape[1] else score
            out[proto.topic_id] = [
                float(examples[:, j].max()),
                float(desc[:, j].max()),
                float(examples[0, j]),
                float(lead.max()),
            ]
        return out

    @staticmethod
    def _example_z(proto: TopicPrototype, units: np.ndarray, k: int) -> np.ndarray:
        sims = units @ proto.examples.T
        if k <= 1:
            return (sims.max(axis=1) - proto.example_mean) / proto.example_std
        return (closeness(sims, k) - proto.neighbours_mean) / proto.neighbours_std


SEMANTIC_RELEVANCE_FEATURES = ("sem_best", "sem_headline", "sem_margin_best", "sem_margin_head")
SEMANTIC_TOPIC_FEATURES = (
    "sem_examples_z",
    "sem_description_z",
    "sem_headline_examples_z",
    "sem_lead_over_other_topics",
)


def _tag_passages(
    vectors: np.ndarray, refs: Sequence[Reference], descriptions: dict[str, np.ndarray]
) -> list[frozenset[str]]:
    """Which of its document's topics a passage is about: those whose description it is
    at least averagely close to (a document carries several topics, a paragraph fewer)."""
    tags = []
    for vector, ref in zip(vectors, refs, strict=True):
        known = [t for t in ref.topics if t in descriptions]
        if len(known) <= 1:
            tags.append(frozenset(known))
            continue
        sims = {t: float(vector @ descriptions[t]) for t in known}
        mean = float(np.mean(list(sims.values())))
        tags.append(frozenset(t for t, s in sims.items() if s >= mean))
    return tags


def fit_semantic(
    embedder: Embedder,
    references: Sequence[Reference],
    topic_descriptions: Sequence[tuple[str, str]],
    scope_description: str,
    counter_examples: Sequence[str],
    reference_vectors: np.ndarray | None = None,
    novel_examples: Sequence[str] = (),
) -> SemanticModel:
    """Prototypes and background statistics from the references (embedded here unless
    `reference_vectors` are given, row for row)."""
    if reference_vectors is None:
        reference_vectors = embedder.embed([r.text[:EMBED_CHARS] for r in references])
    desc_vectors = embedder.embed([scope_description] + [d for _, d in topic_descriptions])
    counter = embedder.embed(list(counter_examples)) if counter_examples else desc_vectors[:0]
    descriptions = {tid: desc_vectors[i + 1] for i, (tid, _) in enumerate(topic_descriptions)}
    tags = _tag_passages(reference_vectors, references, descriptions)
    relevant = [i for i, r in enumerate(references) if r.relevant]
    off = [i for i, r in enumerate(references) if not r.relevant]
    if not len(reference_vectors):
        reference_vectors = np.zeros((0, desc_vectors.shape[1]), dtype=np.float32)
    # What the subject reads like: corpus furniture ("L'info en 3 points") is not, and as
    # a reference it made any short text with a "3" look on-subject. (The topics keep
    # every passage: dropping them from the examples cost the new-topic protocol.)
    on_subject = [i for i in relevant if substantive(references[i].text)]
    positive = np.vstack([reference_vectors[on_subject], desc_vectors])
    negative = np.vstack([reference_vectors[off], counter])
    # On-subject texts: a z-score then says "more about this topic than the subject's
    # usual text", which is what separates topics (off-subject text is the gate's job).
    background = np.vstack([reference_vectors[relevant], desc_vectors])
    prototypes = []
    for tid, _ in topic_descriptions:
        mine = [i for i, tag in enumerate(tags) if tid in tag]
        examples = np.vstack([descriptions[tid][None, :], reference_vectors[mine]])
        prototypes.append(_prototype(tid, descriptions[tid], examples, background))
    untopical = [i for i, r in enumerate(references) if r.relevant and not r.topics]
    novel_vectors = np.vstack(
        [embedder.embed(list(novel_examples)) if novel_examples else desc_vectors[:0]]
        + [reference_vectors[untopical]]
    )
    novel = None
    if len(novel_vectors):
        centre = novel_vectors.mean(axis=0)
        centre = centre / (np.linalg.norm(centre) or 1.0)
        novel = _prototype(NOVEL, centre, novel_vectors, background)
    return SemanticModel(positive, negative, tuple(prototypes), novel)


NOVEL = "(novel)"


def _prototype(
    tid: str, description: np.ndarray, examples: np.ndarray, background: np.ndarray
) -> TopicPrototype:
    desc_sims = background @ description
    example_sims = (background @ examples.T).max(axis=1)
    neighbour_sims = closeness(background @ examples.T, TERMLESS_NEIGHBOURS)
    return TopicPrototype(
        topic_id=tid,
        description=description,
        examples=examples,
        desc_mean=float(desc_sims.mean()),
        desc_std=float(desc_sims.std()) + 1e-3,
        example_mean=float(example_sims.mean()),
        example_std=float(example_sims.std()) + 1e-3,
        neighbours_mean=float(neighbour_sims.mean()),
        neighbours_std=float(neighbour_sims.std()) + 1e-3,
    )
