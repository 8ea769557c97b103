"""Classify articles against the corpus topics: relevance, topics, novelty, evidence."""

from chipwatch.classify.cache import load_or_fit
from chipwatch.classify.cli_support import run_classify, run_eval
from chipwatch.classify.corpus import add_document, load_corpus
from chipwatch.classify.embed import (
    CachedEmbedder,
    Embedder,
    HashingEmbedder,
    UseEmbedder,
    get_embedder,
)
from chipwatch.classify.evaluate import Report, baseline_keywords, evaluate, render_report
from chipwatch.classify.model import ClassifierParams, FittedClassifier, fit
from chipwatch.classify.suggest import TopicSuggestion, suggest_topics
from chipwatch.classify.topics import ScopeTerms, load_scope, load_topics

__all__ = [
    "CachedEmbedder",
    "ClassifierParams",
    "Embedder",
    "FittedClassifier",
    "HashingEmbedder",
    "Report",
    "ScopeTerms",
    "TopicSuggestion",
    "UseEmbedder",
    "add_document",
    "baseline_keywords",
    "evaluate",
    "fit",
    "get_embedder",
    "load_corpus",
    "load_or_fit",
    "load_scope",
    "load_topics",
    "render_report",
    "run_classify",
    "run_eval",
    "suggest_topics",
]
