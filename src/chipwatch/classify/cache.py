"""Fit once, reuse: the fitted classifier is pickled under a key of everything it is
fitted from (topics.toml, corpus.toml and its texts, labels, params, code version)."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path

from chipwatch.classify.corpus import CORPUS_FILE, load_corpus
from chipwatch.classify.embed import Embedder, get_embedder
from chipwatch.classify.model import ClassifierParams, FittedClassifier, fit
from chipwatch.classify.topics import load_scope, load_topics, read_file
from chipwatch.types import Label

# Bump when the fitted structure or the features change, so old caches are ignored.
MODEL_VERSION = "8"


def fit_key(
    corpus_dir: Path,
    topics_path: Path,
    labels: Sequence[Label],
    params: ClassifierParams,
    user_topics: Path | None = None,
) -> str:
    digest = hashlib.sha256(MODEL_VERSION.encode())
    digest.update(read_file(topics_path))
    if user_topics is not None and user_topics.exists():
        digest.update(b"user-topics")
        digest.update(read_file(user_topics))
    digest.update(read_file(corpus_dir / CORPUS_FILE))
    for path in sorted(corpus_dir.glob("*.txt")):
        digest.update(path.name.encode())
        digest.update(read_file(path))
    for label in sorted(labels, key=lambda lb: lb.article_id):
        digest.update(json.dumps(asdict(label), sort_keys=True, default=list).encode())
    digest.update(json.dumps(asdict(params), sort_keys=True, default=list).encode())
    return digest.hexdigest()


def load_or_fit(
    corpus_dir: Path,
    topics_path: Path,
    labels: Sequence[Label],
    cache_dir: Path,
    params: ClassifierParams | None = None,
    embedder: Embedder | None = None,
    *,
    warm: bool = True,
    user_topics: Path | None = None,
    relevance_threshold: float | None = None,
) -> FittedClassifier:
    """The cached classifier when its key matches, else a fresh fit (then cached).

    `user_topics` is the user's topics file (Settings.user_topics_path), read after
    topics.toml. `relevance_threshold` ([classify].relevance_threshold) is applied to
    the verdict without a refit. `warm` loads the language identifier and embedder
    weights before returning, so the first batch is not slowed down.
    """
    model = _load_or_fit(corpus_dir, topics_path, labels, cache_dir, params, embedder, user_topics)
    if relevance_threshold is not None:
        model = model.with_params(replace(model.params, relevance_threshold=relevance_threshold))
    if warm:
        model.warm_up()
    return model


def _load_or_fit(
    corpus_dir: Path,
    topics_path: Path,
    labels: Sequence[Label],
    cache_dir: Path,
    params: ClassifierParams | None,
    embedder: Embedder | None,
    user_topics: Path | None,
) -> FittedClassifier:
    params = params or ClassifierParams()
    key = fit_key(corpus_dir, topics_path, labels, params, user_topics)
    path = cache_dir / f"classifier-{key[:24]}.pkl"
    if path.exists():
        try:
            with path.open("rb") as handle:
                model = pickle.load(handle)
            if isinstance(model, FittedClassifier):
                if embedder is not None:
                    model._embedder = embedder
                return model
        except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError):
            pass  # a stale or damaged cache is refitted, never fatal
    topics = load_topics(topics_path, user_topics)
    model = fit(
        load_corpus(corpus_dir, [t.id for t in topics]),
        topics,
        load_scope(topics_path),
        labels,
        params,
        embedder or get_embedder(params.embedder),
    )
    _save(model, cache_dir, path)
    return model


def _save(model: FittedClassifier, cache_dir: Path, path: Path) -> None:
    cache_dir.mkdir(parents=True, exist_ok=True)
    for old in cache_dir.glob("classifier-*.pkl"):
        old.unlink(missing_ok=True)  # one fitted model at a time is enough
    # Write then rename, so a concurrent reader never sees half a pickle.
    fd, tmp = tempfile.mkstemp(dir=cache_dir, suffix=".tmp")
    with os.fdopen(fd, "wb") as handle:
        pickle.dump(model, handle, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(tmp, path)
