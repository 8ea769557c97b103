"""`chipwatch topics suggest`: group novel articles into candidate new topics."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from chipwatch.classify.embed import Embedder, get_embedder
from chipwatch.classify.text import fold
from chipwatch.types import ClassifyInput

# Terms that are everywhere in this watch, so they never distinguish a candidate topic.
_WATCH_WORDS = frozenset(
    (
        "china",
        "chinese",
        "chine",
        "chinois",
        "us",
        "u.s.",
        "united",
        "states",
        "export",
        "exports",
        "exportation",
        "chip",
        "chips",
        "puces",
        "semiconductor",
        "semiconductors",
        "nvidia",
        "said",
        "says",
        "year",
        "new",
    )
)
# Cosine distance under which two novel articles join the same group (average linkage).
DISTANCE_THRESHOLD = 0.55


@dataclass(frozen=True)
class TopicSuggestion:
    label_terms: tuple[str, ...]  # distinctive tf-idf terms of the group
    member_ids: tuple[str, ...]  # the group's articles, the most central first
    size: int

    @property
    def topic_id(self) -> str:
        words = [w for t in self.label_terms[:2] for w in _ID_WORD.findall(fold(t).lower())]
        return "-".join(dict.fromkeys(words))[:40].strip("-") or "new-topic"

    @property
    def name(self) -> str:
        return ", ".join(self.label_terms[:3]).capitalize() or "New topic"

    def description(self, central_title: str) -> str:
        """A first description the user may edit: the group's terms and its most central
        headline (an example the embedder will measure new articles against)."""
        terms = ", ".join(self.label_terms)
        # Cut so that `topics accept` stays within a topic description's bound.
        example = " ".join(central_title.split())[:300]
        return f"Export-control news about {terms}; for example: {example}"


_ID_WORD = re.compile(r"[a-z0-9]+")


def _cluster(vectors: np.ndarray, k: int | None) -> np.ndarray:
    from sklearn.cluster import AgglomerativeClustering

    if len(vectors) == 1:
        return np.zeros(1, dtype=int)
    if k is not None:
        model = AgglomerativeClustering(
            n_clusters=min(k, len(vectors)), metric="cosine", linkage="average"
        )
    else:
        model = AgglomerativeClustering(
            n_clusters=None,
            distance_threshold=DISTANCE_THRESHOLD,
            metric="cosine",
            linkage="average",
        )
    return model.fit_predict(vectors)


# Function words of French (the watch's second language; scikit-learn has English's):
# without them a label read "asml / for / more". Folded, like the texts.
_FRENCH_FUNCTION_WORDS = (
    "les des une pour par dans sur avec est qui que aux ses son sont pas plus ont ete cette ces "
    "elle ils nous vous leur leurs mais comme entre sans sous selon apres avant aussi tres etre "
    "avoir fait faire tout tous toute toutes dont donc alors ainsi encore deja lors depuis vers "
    "chez contre afin car cela celui celle ceux quand meme autre autres notre votre peut doit "
    "sera seront etait avait"
)
FRENCH_STOP_WORDS = frozenset(_FRENCH_FUNCTION_WORDS.split())


def _label_terms(texts: Sequence[str], labels: np.ndarray, n_terms: int) -> dict[int, list[str]]:
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS, TfidfVectorizer

    vectorizer = TfidfVectorizer(
        stop_words=sorted(ENGLISH_STOP_WORDS | FRENCH_STOP_WORDS),
        preprocessor=lambda t: fold(t).lower(),
        ngram_range=(1, 2),
        min_df=1,
        token_pattern=r"(?u)\b[^\W\d_][\w\-]{2,}\b",
        sublinear_tf=True,
    )
    matrix = vectorizer.fit_transform(texts)
    vocab = np.asarray(vectorizer.get_feature_names_out())
    overall = np.asarray(matrix.mean(axis=0)).ravel()
    out: dict[int, list[str]] = {}
    for cluster in sorted(set(labels.tolist())):
        inside = np.asarray(matrix[labels == cluster].mean(axis=0)).ravel()
        # Distinctive = frequent inside the group, rarer across all novel articles.
        score = inside - 0.5 * overall
        terms = [t for t in vocab[np.argsort(-score)] if not set(t.split()) & _WATCH_WORDS]
        out[cluster] = terms[:n_terms]
    return out


def suggest_topics(
    novel_articles: Sequence[ClassifyInput],
    k: int | None = None,
    *,
    embedder: Embedder | None = None,
    n_terms: int = 5,
) -> list[TopicSuggestion]:
    """Group novel articles into at most `k` candidate topics (None: by distance).

    Largest groups first; each carries its distinctive terms and member ids.
    """
    if not novel_articles:
        return []
    texts = [f"{a.title}\n{a.text[:1000]}" for a in novel_articles]
    vectors = (embedder or get_embedder("use")).embed(texts)
    labels = _cluster(vectors, k)
    terms = _label_terms(texts, labels, n_terms)
    suggestions = []
    for c in sorted(set(labels.tolist())):
        members = [i for i, lab in enumerate(labels) if lab == c]
        centroid = vectors[members].mean(axis=0)
        members.sort(key=lambda i: -float(vectors[i] @ centroid))  # most central first
        suggestions.append(
            TopicSuggestion(
                label_terms=tuple(terms[c]),
                member_ids=tuple(novel_articles[i].id for i in members),
                size=len(members),
            )
        )
    return sorted(suggestions, key=lambda s: -s.size)
