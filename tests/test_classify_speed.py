"""What was changed for speed gives the same results: the word-cached tokenizer, the
per-character accent folding, one BLAS thread for the embedder (also once restored from
its start-up cache).

Texts are the corpus (`config/corpus`) and our own sentences.
"""

from __future__ import annotations

import unicodedata
from pathlib import Path

import numpy as np
import pytest

from chipwatch.classify.embed import UseEmbedder, WordCachedTokenizer
from chipwatch.classify.text import _QUOTES, fold, split_units

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "config" / "corpus"

OWN_TEXTS = [
    "",
    "   ",
    "Nvidia may sell its H20 chips to China again.",
    "Les autorités chinoises restreignent l'exportation de gallium et de germanium.",
    "Die Regierung prüft Ausfuhrgenehmigungen für KI-Beschleuniger.",
    "美国限制向中国出口先进芯片。",
    "Россия   и\tполупроводники",
    "double  spaces,\u00a0no-break space and ﬁ ligature",
    "x" * 400,
]


def _corpus_units() -> list[str]:
    return [u for path in sorted(CORPUS.glob("*.txt")) for u in split_units(path.read_text())]


@pytest.fixture(scope="module")
def embedder() -> UseEmbedder:
    embedder = UseEmbedder()
    embedder.embed(["warm-up"])
    return embedder


def test_the_word_cached_tokenizer_gives_the_package_s_ids(embedder: UseEmbedder) -> None:
    tokenizer = embedder._load()._backend.sp
    assert isinstance(tokenizer, WordCachedTokenizer)
    texts = _corpus_units() + OWN_TEXTS
    expected = [tokenizer.inner.encode(t, out_type=int, add_bos=True, add_eos=True) for t in texts]
    # twice: the second pass is served from the remembered words
    for _ in range(2):
        got = [tokenizer.encode(t, out_type=int, add_bos=True, add_eos=True) for t in texts]
        assert got == expected
    assert tokenizer._words  # words were remembered


def test_the_remembered_words_are_bounded(
    embedder: UseEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    tokenizer = WordCachedTokenizer(embedder._load()._backend.sp.inner)
    monkeypatch.setattr(WordCachedTokenizer, "MAX_WORDS", 5)
    text = "one two three four five six seven eight nine ten"
    expected = tokenizer.inner.encode(text, out_type=int, add_bos=True, add_eos=True)
    assert tokenizer.encode(text) == expected
    assert len(tokenizer._words) <= 5


class _PiecesAcrossWords:
    """A tokenizer whose vocabulary has a piece spanning two words ("\u2581a\u2581b"): the
    per-word shortcut would not be exact for it."""

    _pieces = ["<unk>", "\u2581a\u2581b"]

    class _normalizer:  # noqa: N801 - mirrors the package's attribute name
        @staticmethod
        def normalize(text: str) -> str:
            return text

    def _viterbi(self, text: str) -> list[int]:
        return [0]


def test_a_vocabulary_with_pieces_across_words_is_left_as_it_is() -> None:
    plain = _PiecesAcrossWords()
    assert WordCachedTokenizer.wrap(plain) is plain


def test_one_blas_thread_also_for_a_backend_restored_from_the_cache(
    embedder: UseEmbedder,
) -> None:
    # `embedder` built or restored the backend in the session's cache: these restore it.
    text = ["US export controls on AI chips"]
    one, two = UseEmbedder(), UseEmbedder(threads=2)
    assert np.allclose(one.embed(text), two.embed(text), atol=1e-5)
    assert one._load()._backend.threads == 1
    assert two._load()._backend.threads == 2


def _fold_whole_text(text: str) -> str:
    """Accent folding as it was: the whole text decomposed at once."""
    text = text.translate(_QUOTES)
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def test_folding_per_character_equals_decomposing_the_whole_text() -> None:
    texts = _corpus_units() + OWN_TEXTS + ["e\u0301\u0327 x\u0308 Ångström ½ 한국어 Ελληνικά"]
    for text in texts:
        assert fold(text) == _fold_whole_text(text)
    assert fold("Pékin interdit l’exportation") == "Pekin interdit l'exportation"
