"""Classify articles against the corpus topics: relevance, topics, novelty, evidence.

The names below are imported on first use (PEP 562): `topics list` and `corpus list`
need the TOML readers, not scikit-learn and numpy, which take seconds to import.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

_WHERE = {
    "CachedEmbedder": "chipwatch.classify.embed",
    "ClassifierParams": "chipwatch.classify.model",
    "Embedder": "chipwatch.classify.embed",
    "FittedClassifier": "chipwatch.classify.model",
    "HashingEmbedder": "chipwatch.classify.embed",
    "Report": "chipwatch.classify.evaluate",
    "ScopeTerms": "chipwatch.classify.topics",
    "TopicSuggestion": "chipwatch.classify.suggest",
    "UseEmbedder": "chipwatch.classify.embed",
    "add_document": "chipwatch.classify.corpus",
    "baseline_keywords": "chipwatch.classify.evaluate",
    "evaluate": "chipwatch.classify.evaluate",
    "fit": "chipwatch.classify.model",
    "get_embedder": "chipwatch.classify.embed",
    "load_corpus": "chipwatch.classify.corpus",
    "load_or_fit": "chipwatch.classify.cache",
    "load_scope": "chipwatch.classify.topics",
    "load_topics": "chipwatch.classify.topics",
    "render_report": "chipwatch.classify.evaluate",
    "run_classify": "chipwatch.classify.cli_support",
    "run_eval": "chipwatch.classify.cli_support",
    "suggest_topics": "chipwatch.classify.suggest",
}

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


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_WHERE[name]), name)
    globals()[name] = value  # later lookups skip this function
    return value
