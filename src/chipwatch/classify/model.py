"""The classifier: a cheap gate, lexical and semantic signals, learned decisions, evidence.

Pipeline for each article:
1. clean: markup and scripts stripped, length bounded; its text kind (headline,
   summary, full) given by the source or guessed from length;
2. gate: no chip / critical-mineral term in a language with term lists -> rejected at
   once (any other language goes on: the embedder judges it);
3. units (headline, paragraphs) are matched against the scope and topic vocabularies,
   and the headline + best units are embedded (one batch for all articles);
4. relevance and topic probabilities = small logistic models over lexical signals and
   semantic ones (similarity to the scope's references and to each topic's examples),
   one set of shared weights per text kind (weights.py);
5. user labels and corpus documents override their near-copies;
6. evidence: matched terms, nearest corpus passages, one summary sentence.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache

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
from chipwatch.classify.semantic import (
    EMBED_CHARS,
    TERMLESS_NEIGHBOURS,
    Reference,
    SemanticModel,
    fit_semantic,
)
from chipwatch.classify.text import (
    clean_text,
    detect_language,
    fold,
    judged_by_terms,
    split_units,
    tokenize,
)
from chipwatch.classify.topics import ScopeTerms
from chipwatch.classify.weights import KindWeights, shipped_weights, sigmoid
from chipwatch.errors import ClassifierError
from chipwatch.types import (
    Classification,
    ClassifyInput,
    CorpusDocument,
    Evidence,
    Label,
    Passage,
    TextKind,
    Topic,
)

log = logging.getLogger(__name__)
_WORD = re.compile(r"\w+", re.UNICODE)


@dataclass(frozen=True)
class ClassifierParams:
    """Weights and thresholds. The weights are tuned on the dev set (weights.json)."""

    # One set of shared weights per text kind (see weights.py).
    kinds: tuple[tuple[str, KindWeights], ...] = field(default_factory=shipped_weights)
    # Probability above which an article is relevant ([classify].relevance_threshold).
    relevance_threshold: float = 0.5
    # Probability above which a topic applies to a relevant article.
    topic_threshold: float = 0.5
    # Token 3-shingle Jaccard above which an article counts as the same story as a user
    # label or a corpus document (a syndicated or lightly edited copy) and inherits its
    # relevance and topics.
    label_duplicate_jaccard: float = 0.5
    # Corpus passages shown as evidence.
    evidence_passages: int = 2
    # Article units embedded (headline + the best lexical unit, or the opening): embedding
    # dominates the cost of an article that passes the gate, so few and short.
    embed_units: int = 2
    # Embedder: "use" (multilingual, cross-lingual) or "hashing" (no model).
    embedder: str = "use"
    # An article in a language without term lists goes on only when its headline's
    # similarity to the on-subject references reaches this (one embedding instead of
    # all units for the off-subject bulk). Chosen on dev: ~2nd percentile of relevant
    # dev headlines (0.26); the 99th percentile of such real feed entries is 0.28.
    semantic_gate: float = 0.25

    def for_kind(self, kind: TextKind) -> KindWeights:
        return dict(self.kinds)[kind.value]


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


def shingles(title: str, text: str, size: int = 3) -> frozenset[tuple[str, ...]]:
    words = [w.lower() for w in tokenize(f"{title} {text}")]
    return frozenset(tuple(words[i : i + size]) for i in range(max(len(words) - size + 1, 1)))


@dataclass(frozen=True)
class Signals:
    """Everything a decision needs about one article, computed once (evaluation and
    tuning reuse them across folds): lexical and semantic feature vectors."""

    kind: TextKind
    termed_language: bool  # the article's language has term lists
    relevance_lexical: tuple[float, ...]
    relevance_semantic: tuple[float, ...]
    topic_lexical: Mapping[str, tuple[float, ...]]
    topic_semantic: Mapping[str, tuple[float, ...]]
    # the semantic signals as a topic without terms is judged (semantic.TERMLESS_NEIGHBOURS);
    # empty when no topic is termless and the signals are not for tuning
    topic_termless: Mapping[str, tuple[float, ...]]

    def relevance_x(self) -> list[float]:
        if self.termed_language:
            return [*self.relevance_lexical, *self.relevance_semantic]
        # No term list for the language: the semantic signals alone.
        return list(self.relevance_semantic)

    def topic_x(self, topic_id: str, termless: bool) -> list[float]:
        if termless:
            return list(self.topic_termless[topic_id])
        return [*self.topic_lexical[topic_id], *self.topic_semantic[topic_id]]


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
    semantic: SemanticModel | None = None
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

    def with_params(self, params: ClassifierParams) -> FittedClassifier:
        """The same fitted corpus and labels with other weights or thresholds."""
        clone = replace(self, params=params)
        clone._embedder = self._embedder
        return clone

    def warm_up(self) -> None:
        """Load the language identifier and the embedder now rather than on first use."""
        detect_language("warm-up", "Nvidia may sell chips to China again.")
        if self.semantic is not None:
            self.embedder.embed(["Nvidia may sell chips to China again."])

    def termless(self, topic: Topic) -> bool:
        return not any(topic.terms.values())

    # ---------- public API ----------
    def classify(self, items: Sequence[ClassifyInput]) -> list[Classification]:
        """Classify a batch; the units of every article are embedded in one batch."""
        drafts = self.prepare(items)
        for draft in drafts:
            self.decide(draft, self.params)
        self._attach_passages(drafts)
        return [d.build() for d in drafts]

    def prepare(self, items: Sequence[ClassifyInput], *, gate: bool = True) -> list[_Draft]:
        """Gate, matches, exemplar lookup and signals of each article (no decision yet).

        `gate=False` computes the signals of every article (tuning needs those of the
        articles the gate rejects too: they are the easy negatives)."""
        drafts = [self._draft(item, gate) for item in items]
        if gate:
            self._semantic_gate(drafts)
        # Termless signals cost a second pass over the prototypes: computed when a topic
        # has no terms, or for tuning (gate=False), which fits the termless model.
        self._embed_units(drafts, termless=not gate or any(map(self.termless, self.topics)))
        return drafts

    def _semantic_gate(self, drafts: list[_Draft]) -> None:
        """Drafts that no term list could judge: rejected unless the headline is close in
        meaning to the subject."""
        pending = [i for i, d in enumerate(drafts) if d.unscreened]
        if not pending or self.semantic is None:
            return
        heads = [drafts[i].embed_texts(1)[0] for i in pending]
        closeness = (self.embedder.embed(heads) @ self.semantic.positive.T).max(axis=1)
        for i, value in zip(pending, closeness, strict=True):
            draft = drafts[i]
            if value < self.params.semantic_gate and draft.label is None:
                drafts[i] = _Draft.rejected(
                    draft.item, draft.language, draft.kind, [t.id for t in self.topics]
                )

    def _draft(self, raw: ClassifyInput, gate: bool = True) -> _Draft:
        title, text = clean_text(raw.title), clean_text(raw.text)
        item = replace(raw, title=title, text=text)
        kind = raw.text_kind or TextKind.guess(title, text)
        language = detect_language(title, text, item.language)
        # The user's judgement (a label, or a corpus document's annotation) wins, also over
        # the cheap gate. The gate runs first: a rejected article is only checked against
        # the exemplars that the gate itself would reject. An article in a language
        # without term lists always goes on: its relevance is the embedder's to judge.
        termed = judged_by_terms(language, title, text)
        by_terms = self.matcher.passes_gate(title, text)
        passes = not gate or not termed or by_terms
        label = self._label_match(item, self.exemplars if passes else self.ungated)
        if label is None and not passes:
            return _Draft.rejected(item, language, kind, [t.id for t in self.topics])
        m = self.matcher.article(title, text, language)
        return _Draft(
            item=item,
            language=language,
            kind=kind,
            termed=termed,
            matches=m,
            names=self._names(),
            label=label,
            unscreened=gate and not by_terms,
        )

    def _embed_units(self, drafts: Sequence[_Draft], termless: bool = True) -> None:
        wanted = [d for d in drafts if d.matches is not None]
        if not wanted:
            return
        texts: list[str] = []
        spans: list[tuple[int, int]] = []
        for draft in wanted:
            units = draft.embed_texts(self.params.embed_units)
            spans.append((len(texts), len(texts) + len(units)))
            texts.extend(units)
        vectors = self.embedder.embed(texts) if self.semantic is not None else None
        for draft, (start, end) in zip(wanted, spans, strict=True):
            assert draft.matches is not None
            unit_vectors = vectors[start:end] if vectors is not None else None
            draft.unit_vectors = unit_vectors
            # An article in a language without term lists is judged as a termless topic
            # would be: it can carry no lexical evidence for any topic.
            draft.signals = self._signals(
                draft, draft.matches, unit_vectors, termless or not draft.termed
            )

    def _signals(
        self, draft: _Draft, m: ArticleMatches, units: np.ndarray | None, termless: bool = True
    ) -> Signals:
        if self.semantic is not None and units is not None and len(units):
            rel_sem = self.semantic.relevance_signals(units)
            top_sem = self.semantic.topic_signals(units)
            top_termless = (
                # A topic without terms may be the user's answer to news that was novel:
                # the novel examples must not compete with it.
                self.semantic.topic_signals(units, TERMLESS_NEIGHBOURS, novel_rival=False)
                if termless
                else {}
            )
        else:
            rel_sem = [0.0] * 4
            top_sem = top_termless = {t.id: [0.0] * 4 for t in self.topics}
        return Signals(
            kind=draft.kind,
            termed_language=draft.termed,
            relevance_lexical=tuple(relevance_features(m)),
            relevance_semantic=tuple(rel_sem),
            topic_lexical={t.id: tuple(topic_features(m, t.id)) for t in self.topics},
            topic_semantic={t: tuple(v) for t, v in top_sem.items()},
            topic_termless={t: tuple(v) for t, v in top_termless.items()},
        )

    def decide(self, draft: _Draft, params: ClassifierParams) -> None:
        """Relevance, topic scores and topics of a prepared draft under `params`."""
        if draft.signals is None:
            draft.relevance = sigmoid(params.for_kind(draft.kind).relevance.bias)
            return
        sig = draft.signals
        weights = params.for_kind(draft.kind)
        model = weights.relevance if sig.termed_language else weights.relevance_semantic
        relevance = model.probability(sig.relevance_x())
        scores = {}
        for topic in self.topics:
            # No term list for the topic, or none for the article's language: the
            # lexical topic model would see only zeros (dev, every language treated so:
            # topic F1 0.02 that way, 0.60 with the semantic-only model).
            termless = self.termless(topic) or not sig.termed_language
            topic_model = weights.topic_termless if termless else weights.topic
            scores[topic.id] = topic_model.probability(topic.id, sig.topic_x(topic.id, termless))
        relevant = relevance >= params.relevance_threshold
        chosen = [t for t, p in scores.items() if p >= params.topic_threshold]
        label = draft.label
        if label is not None:
            relevant = label.relevant
            relevance = 0.99 if label.relevant else 0.01
            chosen = list(label.topics)
        draft.relevance = relevance
        draft.relevant = relevant
        draft.scores = scores
        draft.topics = tuple(chosen) if relevant else ()

    def _label_match(self, item: ClassifyInput, index: ExemplarIndex) -> LabelExemplar | None:
        """The user label or corpus document this article is a near-copy of, if any."""
        if not index:
            return None
        mine = shingles(item.title, item.text)
        return index.best(mine, self.params.label_duplicate_jaccard)

    def _names(self) -> dict[str, str]:
        return {t.id: t.name for t in self.topics}

    def _attach_passages(self, drafts: Sequence[_Draft]) -> None:
        """Nearest corpus passages for relevant articles (from their embedded units)."""
        if self.passage_vectors is None or not len(self.passages):
            return
        for draft in drafts:
            if not draft.relevant or draft.unit_vectors is None or not len(draft.unit_vectors):
                continue
            best = (draft.unit_vectors @ self.passage_vectors.T).max(axis=0)
            order = np.argsort(-best)[: self.params.evidence_passages]
            draft.passages = tuple(
                Passage(self.passages[i].doc_id, self.passages[i].text, float(best[i]))
                for i in order
            )


@dataclass
class _Draft:
    """A classification being assembled: prepared (signals), then decided."""

    item: ClassifyInput
    language: str
    kind: TextKind
    termed: bool
    matches: ArticleMatches | None
    names: dict[str, str]
    label: LabelExemplar | None = None
    # passed the gate only for its language (no term matched): the semantic gate decides
    unscreened: bool = False
    signals: Signals | None = None
    unit_vectors: np.ndarray | None = None
    relevance: float = 0.0
    relevant: bool = False
    topics: tuple[str, ...] = ()
    scores: dict[str, float] = field(default_factory=dict)
    passages: tuple[Passage, ...] = ()

    @classmethod
    def rejected(
        cls, item: ClassifyInput, language: str, kind: TextKind, topic_ids: Sequence[str]
    ) -> _Draft:
        return cls(
            item=item,
            language=language,
            kind=kind,
            termed=True,
            matches=None,
            names={},
            scores={t: 0.0 for t in topic_ids},
        )

    @property
    def labelled(self) -> bool:
        return self.label is not None

    @property
    def copy_of(self) -> str:
        return self.label.corpus_doc if self.label is not None else ""

    def embed_texts(self, limit: int) -> list[str]:
        """Headline, the opening unit (it usually says what the article is about: on dev
        it beat the unit with the most lexical evidence), then the most lexical ones."""
        assert self.matches is not None
        body = list(self.matches.body)
        chosen = body[:1]
        rest = sorted(
            body[1:],
            key=lambda u: -(len(u.goods) + len(u.controls) + sum(map(len, u.topics.values()))),
        )
        chosen += rest[: max(limit - 1 - len(chosen), 0)]
        units = [self.matches.title.text, *(u.text for u in chosen)]
        return [u[:EMBED_CHARS] for u in units if u.strip()] or [" "]

    @property
    def novel(self) -> bool:
        return self.relevant and not self.topics

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
        words = _WORD.findall(f"{self.item.title}\n{self.item.text}")
        folded = [_fold_word(word) for word in words]
        # Shown as the words the article uses ("licences", not the pattern "licen*").
        goods = ", ".join(_readable(m.terms("goods"), words, folded))
        controls = ", ".join(_readable(m.terms("controls"), words, folded))
        scoped = sum(1 for u in m.units if u.in_scope)
        prefix = ""
        if self.copy_of:
            prefix = f"Same story as corpus document {self.copy_of}; "
        elif self.labelled:
            prefix = "Labelled by you as the same story; "
        if not goods:
            # No term list matched (another language, or a topic without terms): the
            # semantic signals decided.
            passage = self.passages[0].doc_id if self.passages else ""
            near = f" (nearest corpus passage: {passage})" if passage else ""
            if not self.relevant:
                return f"{prefix}Off-subject: not close enough to the watch's subject{near}."
            where = f"close in meaning to the corpus and the topics{near}"
        elif not self.relevant:
            why = f"mentions {goods}" + (f" and {controls}" if controls else "")
            return f"{prefix}Off-subject: {why}, but not as a trade-control story."
        else:
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


@lru_cache(maxsize=65536)
def _fold_word(word: str) -> str:
    # Words repeat across an article and across articles: folded once each.
    return fold(word).casefold()


def _readable(terms: set[str], words: list[str], folded: list[str], limit: int = 3) -> list[str]:
    """The most specific matched terms, each as the article spells it (`words`, and the
    same words folded)."""
    patterns = sorted(terms, key=lambda t: (-len(t.rstrip("*")), t))
    shown: list[str] = []
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


def _references(
    corpus: Sequence[CorpusDocument], labels: Sequence[Label]
) -> tuple[list[Reference], int]:
    """Corpus passages (first, row for row with `corpus_passages`), then the headline and
    units of each labelled article; and how many come from the corpus."""
    refs = [
        Reference(unit, frozenset(doc.topics), doc.relevant)
        for doc in corpus
        for unit in split_units(doc.text)
    ]
    n_corpus = len(refs)
    for label in labels:
        units = [label.title, *split_units(clean_text(label.text))][:6]
        refs += [Reference(u, frozenset(label.topics), label.relevant) for u in units if u]
    return refs, n_corpus


def _known_topics_only(labels: Sequence[Label], known: set[str]) -> list[Label]:
    """The labels without topics that are no longer defined (a topic taken out of the
    user's file while articles carry it): a warning, not a refusal to fit, which stopped
    every poll with no command to undo it. The labels' relevance verdicts stay."""
    kept: list[Label] = []
    for label in labels:
        gone = sorted(set(label.topics) - known)
        if gone:
            log.warning(
                "label %s: topics %s are not defined any more; the label keeps its other "
                "topics (put the topic back, or relabel the article)",
                label.article_id,
                ", ".join(gone),
            )
            label = replace(label, topics=tuple(t for t in label.topics if t in known))
        kept.append(label)
    return kept


def fit(
    corpus: Sequence[CorpusDocument],
    topics: Sequence[Topic],
    scope_terms: ScopeTerms,
    labels: Sequence[Label] = (),
    params: ClassifierParams | None = None,
    embedder: Embedder | None = None,
) -> FittedClassifier:
    """Fit from the corpus and the labels: each topic's few-shot prototypes (its
    description, its documents' passages, its labelled articles), the scope's on- and
    off-subject references, passages for evidence, documents and labels as exemplars."""
    if not topics:
        raise ClassifierError("no topics to classify against")
    params = params or ClassifierParams()
    labels = _known_topics_only(labels, {t.id for t in topics})
    matcher = Matcher(scope_terms, topics)
    passages = corpus_passages(corpus, matcher)
    emb = embedder or get_embedder(params.embedder)
    refs, n_corpus = _references(corpus, labels)
    ref_vectors = emb.embed([r.text[:EMBED_CHARS] for r in refs])
    semantic = fit_semantic(
        emb,
        refs,
        [(t.id, t.description) for t in topics],
        scope_terms.description,
        scope_terms.counter_examples,
        reference_vectors=ref_vectors,
        novel_examples=scope_terms.novel_examples,
    )
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
        passage_vectors=ref_vectors[:n_corpus] if n_corpus else None,
        labels=exemplars,
        embedder_name=emb.name,
        semantic=semantic,
    )
    model._embedder = emb
    return model


def feature_names() -> Mapping[str, tuple[str, ...]]:
    return {"relevance": RELEVANCE_FEATURES, "topic": TOPIC_FEATURES}
