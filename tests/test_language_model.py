"""The on-disk cache of the restricted language model: same results, robust to damage."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from chipwatch import extract, langid_model
from chipwatch.extract import LANGUAGES

SAMPLES = [
    "The government announced new restrictions on chip exports to several countries.",
    "Le gouvernement a annoncé de nouvelles restrictions sur les exportations de puces.",
    "Die Regierung kündigte neue Beschränkungen für den Export von Halbleitern an.",
    "El gobierno anunció nuevas restricciones a la exportación de chips.",
    "Правительство объявило о новых ограничениях на экспорт микросхем.",
    "Η κυβέρνηση ανακοίνωσε νέους περιορισμούς στις εξαγωγές τσιπ.",
    "政府宣布对芯片出口实施新的限制。",
    "政府は半導体の輸出に関する新たな規制を発表した。",
    "정부는 반도체 수출에 대한 새로운 규제를 발표했다.",
    "أعلنت الحكومة عن قيود جديدة على صادرات الرقائق.",
    "הממשלה הודיעה על הגבלות חדשות על ייצוא שבבים.",
    "सरकार ने चिप निर्यात पर नए प्रतिबंधों की घोषणा की।",
    "NVIDIA H20 EXPORT LICENCE",  # upper case: py3langid lower-cases it first
    "Puces",
    "12345 -- !!",  # no features at all
    "",
]


def _outputs(identifier: Any) -> list[Any]:
    return [(identifier.classify(t), identifier.rank(t)) for t in SAMPLES]


@pytest.fixture(scope="module")
def reference() -> list[Any]:
    """What py3langid itself gives, loaded the usual way (LZMA model, set_languages)."""
    from py3langid.langid import _load_identifier

    return _outputs(_load_identifier(norm_probs=True, langs=list(LANGUAGES)))


@pytest.fixture
def fresh_loads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the loads that went to py3langid's compressed model (cache misses)."""
    calls: list[int] = []
    real: Callable[..., Any] = langid_model._fresh

    def counting(*args: Any) -> Any:
        calls.append(1)
        return real(*args)

    monkeypatch.setattr(langid_model, "_fresh", counting)
    return calls


def _load(directory: Path | None, langs: tuple[str, ...] = LANGUAGES) -> Any:
    return langid_model.load_identifier(langs, directory=directory)


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("langid-cache")
    _load(directory)
    return directory


@pytest.fixture
def cached(tmp_path: Path, written: Path) -> Path:
    """A private copy of a cache written once for the module (a write costs a full load)."""
    for path in written.iterdir():
        shutil.copyfile(path, tmp_path / path.name)
    return tmp_path


def test_cached_model_gives_the_same_results(
    tmp_path: Path, reference: list[Any], fresh_loads: list[int]
) -> None:
    first = _load(tmp_path)
    assert len(fresh_loads) == 1
    assert _outputs(first) == reference
    paths = langid_model.cache_paths(tmp_path, langid_model.cache_key(LANGUAGES))
    for path in paths.values():
        np.load(path, allow_pickle=False)  # plain arrays, no pickled objects

    second = _load(tmp_path)
    assert len(fresh_loads) == 1  # from the cache this time
    assert _outputs(second) == reference  # same languages and the very same confidences
    assert second.nb_ptc.dtype == first.nb_ptc.dtype
    assert second.nb_ptc.strides == first.nb_ptc.strides  # same layout, same float sums


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:1000])


def _garble_header(path: Path) -> None:
    path.write_bytes(b"not an npy file" + path.read_bytes()[15:])


def _wrong_shape(path: Path) -> None:
    np.save(path, np.zeros(10, dtype=np.uint16), allow_pickle=False)


def _out_of_range(path: Path) -> None:
    # Row numbers past the DFA table: caught on load, not as an IndexError in classify.
    # (Damage that stays in range is not detected: checking the 45 MB would cost a read
    # of all of it per load; the files are only ever replaced whole, by a rename.)
    np.save(path, np.full(np.load(path).shape, 2**16 - 1, dtype=np.uint16), allow_pickle=False)


@pytest.mark.parametrize(
    ("name", "damage"),
    [
        ("nextmove", _truncate),
        ("ptc", _garble_header),
        ("row", _wrong_shape),
        ("row", _out_of_range),
        ("classes", lambda p: np.save(p, np.array(["en", "fr"]), allow_pickle=False)),
        ("output", lambda p: p.unlink()),
    ],
)
def test_damaged_cache_falls_back_and_is_rewritten(
    cached: Path,
    reference: list[Any],
    fresh_loads: list[int],
    name: str,
    damage: Callable[[Path], None],
) -> None:
    damage(langid_model.cache_paths(cached, langid_model.cache_key(LANGUAGES))[name])

    assert _outputs(_load(cached)) == reference
    assert len(fresh_loads) == 1  # the damage was noticed: a normal load...
    assert _outputs(_load(cached)) == reference
    assert len(fresh_loads) == 1  # ...which rewrote the cache


def test_unwritable_cache_dir_still_detects(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reference: list[Any], fresh_loads: list[int]
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    assert _outputs(_load(blocker / "cache")) == reference
    monkeypatch.setattr(langid_model, "cache_dir", lambda: None)  # no home directory
    assert _outputs(_load(None)) == reference
    assert len(fresh_loads) == 2
    assert list(tmp_path.iterdir()) == [blocker]  # and no temporary file left behind


def test_key_follows_languages_and_version(
    cached: Path, monkeypatch: pytest.MonkeyPatch, fresh_loads: list[int]
) -> None:
    two = ("en", "fr")
    key = langid_model.cache_key(LANGUAGES)
    assert langid_model.cache_key(two) != key
    # A cache of another language list is never read for this one; both are kept.
    assert sorted(_load(cached, two).nb_classes) == sorted(two)
    assert len(fresh_loads) == 1
    assert sorted(_load(cached).nb_classes) == sorted(LANGUAGES)
    assert len(fresh_loads) == 1
    assert len(list(cached.iterdir())) == 12

    import py3langid

    monkeypatch.setattr(py3langid, "__version__", "99.0")
    assert langid_model.cache_key(LANGUAGES) != key
    _load(cached)  # another py3langid: its own arrays, and the old ones removed
    assert len(fresh_loads) == 2
    new_key = langid_model.cache_key(LANGUAGES)
    assert sorted(p.name for p in cached.iterdir()) == sorted(
        p.name for p in langid_model.cache_paths(cached, new_key).values()
    )


def test_cache_dir_follows_the_environment(tmp_path: Path) -> None:
    assert langid_model.cache_dir({"CHIPWATCH_CACHE_DIR": str(tmp_path)}) == tmp_path
    xdg = {"XDG_CACHE_HOME": str(tmp_path)}
    assert langid_model.cache_dir(xdg) == tmp_path / "chipwatch"
    assert langid_model.cache_dir({**xdg, "CHIPWATCH_CACHE_DIR": "/elsewhere"}) == Path(
        "/elsewhere"
    )
    assert langid_model.cache_dir({}) == Path.home() / ".cache" / "chipwatch"


@pytest.fixture
def fresh_identifier() -> Iterator[None]:
    extract._identifier.cache_clear()
    yield
    extract._identifier.cache_clear()  # later tests load it again from the shared cache


def test_detection_reads_the_cache_dir_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_identifier: None
) -> None:
    monkeypatch.setenv("CHIPWATCH_CACHE_DIR", str(tmp_path))
    assert extract.detect_language(SAMPLES[1]) == "fr"
    key = langid_model.cache_key(LANGUAGES)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        p.name for p in langid_model.cache_paths(tmp_path, key).values()
    )
