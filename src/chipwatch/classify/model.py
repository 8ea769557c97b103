"""The classifier: a cheap lexical gate, lexical relevance and topic scores, evidence.

Pipeline for each article:
1. gate: no chip / critical-mineral term in any language -> rejected at once;
2. units (headline, paragraphs) are matched against the scope and topic vocabularies;
3. relevance = logistic score over a handful of unit-level signals (params);
4. topic scores = one shared logistic model over per-topic unit signals + a bias per
   topic; topics above the threshold apply; relevant with none applying = novel;
5. user labels override near-copies of the article they judged;
6. evidence: matched terms, nearest corpus passages (embeddings), one summary sentence.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from chipwatch.classify.embed import Embedder, get_embedder
from chipwatch.classify.features import (
    RELEVANCE_FEATURES,
    TOPIC_FEATURES,
    ArticleMatches,
    Matcher,
    UnitMatches,
    relevance_features,
    topic_features,
)
from chipwatch.classify.text import detect_language, fold, split_units, tokenize
from chipwatch.classify.topics import ScopeTerms
from chipwatch.errors import ClassifierError
from chipwatch.types import (
    Classification,
    ClassifyInput,
    CorpusDocument,
    Evidence,
    Label,
    Passage,
    Topic,
)

_WORD = re.compile(r"\w+", re.UNICODE)


@dataclass(frozen=True)
class ClassifierParams:
    """Weights and thresholds. Defaults: tuned on the dev set (see docs/classifier.md)."""

    # One weight per features.RELEVANCE_FEATURES, then the bias (logistic regression).
    relevance_weights: tuple[float, ...] = (0.7193, 0.5766, 1.5549, 0.6072, 1.0852, 1.9649, 1.2812)
    relevance_bias: float = -6.0284
    # Probability above which an article is relevant.
    relevance_threshold: float = 0.5
    # One weight per features.TOPIC_FEATURES, shared by all topics.
    topic_weights: tuple[float, ...] = (1.0385, 0.7097, 1.0333, 0.171)
    # Per-topic bias; a topic missing here (added by the user) gets `default_topic_bias`.
    topic_bias: tuple[tuple[str, float], ...] = (
        ("ai-chip-licensing", -3.0005),
        ("rare-earths-leverage", -2.1602),
        ("security-debate", -2.7093),
        ("chipmaker-stakes", -3.2886),
        ("china-response", -2.7615),
    )
    default_topic_bias: float = -2.784
    # Probability above which a topic applies to a relevant article.
    topic_threshold: float = 0.5
    # Token 3-shingle Jaccard above which an article counts as the same story as a user
    # label or a corpus document (a syndicated or lightly edited copy) and inherits its
    # relevance and topics.
    label_duplicate_jaccard: float = 0.5
    # Corpus passages shown as evidence.
    evidence_passages: int = 2
    # Article units embedded to find evidence passages (headline + best units): embedding
    # dominates the cost of a relevant article, so few and short (evidence_chars).
    evidence_units: int = 2
    evidence_chars: int = 300
    # Embedder for evidence passages: "use" (cross-lingual) or "hashing" (no model).
    embedder: str = "use"

    def bias_for(self, topic_id: str) -> float:
        return dict(self.topic_bias).get(topic_id, self.default_topic_bias)


@dataclass(frozen=True)
class CorpusPassage:
    doc_id: str
    text: str
    topics: frozenset[str]  # corpus topics whose terms occur in this passage


@dataclass(frozen=True)
class LabelExemplar:
    """A judged story: a user label, or a corpus document with its annotated topics."""

    shingles: frozenset[tuple[str, ...]]
    relevant: bool
    topics: tuple[str, ...]
    # "" for a user label, else the id of the corpus document.
    corpus_doc: str = ""
    # Whether the exemplar's own text passes the cheap gate (names a goods term).
    gated: bool = True


class ExemplarIndex:
    """Near-copy lookup: token 3-shingle Jaccard of an article against every exemplar.

    An inverted index (shingle -> exemplars) counts the shared shingles in one pass over
    the article's shingles, so the cost does not grow with the number of exemplars that
    share nothing with the article (nearly all of them).
    """

    def __init__(self, exemplars: Sequence[LabelExemplar]) -> None:
        self.exemplars = tuple(exemplars)
        self._postings: dict[tuple[str, ...], list[int]] = {}
        for index, exemplar in enumerate(self.exemplars):
            for shingle in exemplar.shingles:
                self._postings.setdefault(shingle, []).append(index)

    def __bool__(self) -> bool:
        return bool(self.exemplars)

    def best(self, mine: frozenset[tuple[str, ...]], threshold: float) -> LabelExemplar | None:
        """The exemplar over `threshold` with the highest Jaccard; user labels before
        corpus documents (the user's judgement is the latest word on a story)."""
        if not mine:
            return None
        shared: dict[int, int] = {}
        for shingle in mine:
            for index in self._postings.get(shingle, ()):
                shared[index] = shared.get(index, 0) + 1
        found: list[tuple[bool, float, int]] = []
        for index, count in shared.items():
            other = self.exemplars[index].shingles
            jaccard = count / (len(mine) + len(other) - count)
            if jaccard >= threshold:
                found.append((self.exemplars[index].corpus_doc == "", jaccard, -index))
        if not found:
            return None
        return self.exemplars[-max(found)[2]]


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(min(x, 40.0), -40.0)))


def shingles(title: str, text: str, size: int = 3) -> frozenset[tuple[str, ...]]:
    words = [w.lower() for w in tokenize(f"{title} {text}")]
    return frozenset(tuple(words[i : i + size]) for i in range(max(len(words) - size + 1, 1)))


@dataclass
class FittedClassifier:
    """A classifier fitted from a corpus, topics, scope terms and labels. Picklable."""

    topics: tuple[Topic, ...]
    scope: ScopeTerms
    params: ClassifierParams
    passages: tuple[CorpusPassage, ...]
    passage_vectors: np.ndarray | None
    # User labels and corpus documents, matched as near-copies (ExemplarIndex).
    labels: tuple[LabelExemplar, ...] = ()
    embedder_name: str = "use"
    matcher: Matcher = field(init=False, repr=False)
    exemplars: ExemplarIndex = field(init=False, repr=False)
    # Exemplars the gate would reject: the only ones a gate-rejected article is checked
    # against, so the cheap gate stays first and costs no shingling (usually empty).
    ungated: ExemplarIndex = field(init=False, repr=False)
    _embedder: Embedder | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self._index_exemplars()

    def _index_exemplars(self) -> None:
        self.matcher = Matcher(self.scope, self.topics)
        self.exemplars = ExemplarIndex(self.labels)
        self.ungated = ExemplarIndex([ex for ex in self.labels if not ex.gated])

    def __getstate__(self) -> dict[str, object]:
        state = dict(self.__dict__)
        state["_embedder"] = None  # reloaded lazily; model weights never go in the cache
        state.pop("matcher", None)  # term indexes rebuild in milliseconds
        state.pop("exemplars", None)
        state.pop("ungated", None)
        return state

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__dict__.update(state)
        self._index_exemplars()

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = get_embedder(self.embedder_name)
        return self._embedder

    def warm_up(self) -> None:
        """Load the language identifier and the embedder now rather than on first use."""
        detect_language("warm-up", "Nvidia may sell chips to China again.")
        if self.passage_vectors is not None:
            self.embedder.embed(["Nvidia may sell chips to China again."])

    # ---------- scoring ----------
    def relevance(self, m: ArticleMatches) -> float:
        x = relevance_features(m)
        z = self.params.relevance_bias + sum(
            w * v for w, v in zip(self.params.relevance_weights, x, strict=True)
        )
        return _sigmoid(z)

    def topic_scores(self, m: ArticleMatches) -> dict[str, float]:
        scores = {}
        for topic in self.topics:
            x = topic_features(m, topic.id)
            z = self.params.bias_for(topic.id) + sum(
                w * v for w, v in zip(self.params.topic_weights, x, strict=True)
            )
            scores[topic.id] = _sigmoid(z)
        return scores

    def _label_match(self, item: ClassifyInput, index: ExemplarIndex) -> LabelExemplar | None:
        """The user label or corpus document this article is a near-copy of, if any."""
        if not index:
            return None
        mine = shingles(item.title, item.text)
        return index.best(mine, self.params.label_duplicate_jaccard)

    # ---------- public API ----------
    def classify(self, items: Sequence[ClassifyInput]) -> list[Classification]:
        """Classify a batch; evidence passages are embedded in one batch at the end."""
        drafts = [self._classify_one(item) for item in items]
        self._attach_passages(drafts)
        return [d.build() for d in drafts]

    def _classify_one(self, item: ClassifyInput) -> _Draft:
        language = detect_language(item.title, item.text, item.language)
        # The user's judgement (a label, or a corpus document's annotation) wins, also over
        # the cheap gate (a labelled article may name nothing the scope terms know). The
        # gate runs first: a rejected article is only checked against the exemplars that
        # the gate itself would reject.
        passes = self.matcher.passes_gate(item.title, item.text)
        label = self._label_match(item, self.exemplars if passes else self.ungated)
        if label is None and not passes:
            return _Draft.rejected(
                item, language, _sigmoid(self.params.relevance_bias), [t.id for t in self.topics]
            )
        m = self.matcher.article(item.title, item.text, language)
        relevance = self.relevance(m)
        scores = self.topic_scores(m)
        relevant = relevance >= self.params.relevance_threshold
        chosen = [t for t, s in scores.items() if s >= self.params.topic_threshold]
        if label is not None:
            relevant = label.relevant
            relevance = 0.99 if label.relevant else 0.01
            chosen = list(label.topics)
        topics = tuple(chosen) if relevant else ()
        return _Draft(
            item=item,
            language=language,
            relevance=relevance,
            relevant=relevant,
            topics=topics,
            scores=scores,
            matches=m,
            names=self._names(),
            labelled=label is not None,
            copy_of=label.corpus_doc if label is not None else "",
        )

    def _names(self) -> dict[str, str]:
        return {t.id: t.name for t in self.topics}

    def _attach_passages(self, drafts: Sequence[_Draft]) -> None:
        """Nearest corpus passages for relevant articles (embedding their best units)."""
        wanted = [d for d in drafts if d.relevant and d.matches is not None]
        if not wanted or self.passage_vectors is None or not len(self.passages):
            return
        texts: list[str] = []
        owners: list[int] = []
        for index, draft in enumerate(wanted):
            units = draft.evidence_units(self.params.evidence_units, self.params.evidence_chars)
            texts.extend(units)
            owners.extend([index] * len(units))
        vectors = self.embedder.embed(texts)
        sims = vectors @ self.passage_vectors.T
        owner_arr = np.asarray(owners)
        for index, draft in enumerate(wanted):
            rows = sims[owner_arr == index]
            if not len(rows):
                continue
            best = rows.max(axis=0)
            order = np.argsort(-best)[: self.params.evidence_passages]
            draft.passages = tuple(
                Passage(self.passages[i].doc_id, self.passages[i].text, float(best[i]))
                for i in order
            )


@dataclass
class _Draft:
    """A classification being assembled (passages are filled in batch)."""

    item: ClassifyInput
    language: str
    relevance: float
    relevant: bool
    topics: tuple[str, ...]
    scores: dict[str, float]
    matches: ArticleMatches | None
    names: dict[str, str]
    labelled: bool = False
    copy_of: str = ""  # the corpus document this article is a near-copy of
    passages: tuple[Passage, ...] = ()

    @classmethod
    def rejected(
        cls, item: ClassifyInput, language: str, relevance: float, topic_ids: Sequence[str]
    ) -> _Draft:
        return cls(
            item=item,
            language=language,
            relevance=relevance,
            relevant=False,
            topics=(),
            scores={t: 0.0 for t in topic_ids},
            matches=None,
            names={},
        )

    @property
    def novel(self) -> bool:
        return self.relevant and not self.topics

    def evidence_units(self, limit: int, chars: int) -> list[str]:
        assert self.matches is not None
        body = sorted(
            self.matches.body,
            key=lambda u: -(len(u.goods) + len(u.controls) + sum(map(len, u.topics.values()))),
        )
        units = [self.matches.title.text] + [u.text for u in body[: max(limit - 1, 0)]]
        return [u[:chars] for u in units if u.strip()]

    def matched_terms(self) -> dict[str, tuple[str, ...]]:
        if self.matches is None:
            return {}
        m = self.matches
        out: dict[str, tuple[str, ...]] = {}
        scope = sorted(m.terms("goods") | m.terms("controls"))
        if scope:
            out["scope"] = tuple(scope)
        for topic_id in self.scores:
            terms = sorted(m.topic_terms(topic_id))
            if terms:
                out[topic_id] = tuple(terms)
        return out

    def summary(self) -> str:
        if self.matches is None:
            return "Off-subject: no chip, chipmaking or critical-mineral term."
        m = self.matches
        text = f"{self.item.title}\n{self.item.text}"
        # Shown as the words the article uses ("licences", not the pattern "licen*").
        goods = ", ".join(_readable(m.terms("goods"), text))
        controls = ", ".join(_readable(m.terms("controls"), text))
        scoped = sum(1 for u in m.units if u.in_scope)
        prefix = ""
        if self.copy_of:
            prefix = f"Same story as corpus document {self.copy_of}; "
        elif self.labelled:
            prefix = "Labelled by you as the same story; "
        if not self.relevant:
            named = " and ".join(part for part in (goods, controls) if part)
            if not named:  # the terms matched only as patterns: nothing readable to quote
                return f"{prefix}Off-subject: not a trade-control story."
            return f"{prefix}Off-subject: mentions {named}, but not as a trade-control story."
        paragraphs = "the headline names" if scoped <= 1 else f"{scoped} passages name"
        where = f"{paragraphs} {goods}" + (f" with {controls}" if controls else "")
        if self.novel:
            return f"{prefix}Novel: {where}, but no corpus topic fits (candidate for a new topic)."
        names = "; ".join(self.names.get(t, t) for t in self.topics)
        return f"{prefix}Relevant: {where}. Topics: {names}."

    def build(self) -> Classification:
        return Classification(
            id=self.item.id,
            relevant=self.relevant,
            relevance=self.relevance,
            topics=self.topics,
            topic_scores=self.scores,
            novel=self.novel,
            language=self.language,
            evidence=Evidence(
                matched_terms=self.matched_terms(),
                passages=self.passages,
                summary=self.summary(),
            ),
        )


def _readable(terms: set[str], text: str, limit: int = 3) -> list[str]:
    """The most specific matched terms, each as the article spells it."""
    patterns = sorted(terms, key=lambda t: (-len(t.rstrip("*")), t))
    shown: list[str] = []
    words = _WORD.findall(text)
    folded = [fold(word).casefold() for word in words]
    for pattern in patterns:
        surface = _surface(pattern, words, folded)
        # "controls" adds nothing after "export controls"
        if not any(surface.casefold() in s.casefold() for s in shown):
            shown.append(surface)
        if len(shown) == limit:
            break
    return shown


def _surface(pattern: str, words: list[str], folded: list[str]) -> str:
    """The first run of words in the text that `pattern` matches ("export licen*" ->
    "export licences"); the pattern itself if none is found (a term split by punctuation)."""
    stem = pattern.endswith("*")
    tokens = _WORD.findall(fold(pattern.rstrip("*")).casefold())
    if not tokens:
        return pattern.rstrip("*")
    for start in range(len(folded) - len(tokens) + 1):
        window = folded[start : start + len(tokens)]
        if window[:-1] == tokens[:-1] and (
            window[-1] == tokens[-1] or (stem and window[-1].startswith(tokens[-1]))
        ):
            return " ".join(words[start : start + len(tokens)])
    return pattern.rstrip("*")


def corpus_passages(
    corpus: Sequence[CorpusDocument], matcher: Matcher
) -> tuple[CorpusPassage, ...]:
    """Corpus documents split into units; each unit tagged with its document's topics
    whose terms it contains (document-level topics are too coarse: all five seeds carry
    ai-chip-licensing)."""
    out: list[CorpusPassage] = []
    for doc in corpus:
        for unit_text in split_units(doc.text):
            unit: UnitMatches = matcher.unit(unit_text, doc.language)
            tagged = frozenset(t for t in doc.topics if unit.topics.get(t))
            out.append(CorpusPassage(doc.id, unit_text, tagged))
    return tuple(out)


def _corpus_exemplar(doc: CorpusDocument, matcher: Matcher) -> LabelExemplar:
    """A corpus document as a judged story: a near-copy inherits its annotation."""
    # A title taken from the file's first line is already in the text.
    title = "" if doc.text.startswith(doc.title) else doc.title
    return LabelExemplar(
        shingles(title, doc.text),
        doc.relevant,
        tuple(doc.topics) if doc.relevant else (),
        corpus_doc=doc.id,
        gated=matcher.passes_gate(title, doc.text),
    )


def fit(
    corpus: Sequence[CorpusDocument],
    topics: Sequence[Topic],
    scope_terms: ScopeTerms,
    labels: Sequence[Label] = (),
    params: ClassifierParams | None = None,
    embedder: Embedder | None = None,
) -> FittedClassifier:
    """Fit from the corpus (passages for evidence, documents as exemplars whose
    near-copies inherit their topics), topics, scope terms and user labels."""
    if not topics:
        raise ClassifierError("no topics to classify against")
    params = params or ClassifierParams()
    known = {t.id for t in topics}
    for label in labels:
        unknown = set(label.topics) - known
        if unknown:
            raise ClassifierError(f"label {label.article_id}: unknown topics {sorted(unknown)}")
    matcher = Matcher(scope_terms, topics)
    passages = corpus_passages(corpus, matcher)
    emb = embedder or get_embedder(params.embedder)
    vectors = emb.embed([p.text for p in passages]) if passages else None
    exemplars = tuple(
        LabelExemplar(
            shingles(lb.title, lb.text),
            lb.relevant,
            tuple(lb.topics),
            gated=matcher.passes_gate(lb.title, lb.text),
        )
        for lb in labels
    ) + tuple(_corpus_exemplar(doc, matcher) for doc in corpus)
    model = FittedClassifier(
        topics=tuple(topics),
        scope=scope_terms,
        params=replace(params, embedder=emb.name),
        passages=passages,
        passage_vectors=vectors,
        labels=exemplars,
        embedder_name=emb.name,
    )
    model._embedder = emb
    return model


def feature_names() -> Mapping[str, tuple[str, ...]]:
    return {"relevance": RELEVANCE_FEATURES, "topic": TOPIC_FEATURES}
