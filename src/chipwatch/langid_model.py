"""py3langid's model, restricted to some languages, cached uncompressed on disk.

py3langid ships its model LZMA-compressed; decompressing it and restricting it costs
~0.5 CPU-s, paid by every parser worker of every pool. The restricted arrays are written
once as plain `.npy` files (no pickle) and later memory-mapped: a load then costs a few
milliseconds, and the pages live in the page cache, shared by all workers. The identifier
is built with py3langid's own constructor from the same arrays, so results are identical.

Where: `$CHIPWATCH_CACHE_DIR`, else `$XDG_CACHE_HOME/chipwatch`, else `~/.cache/chipwatch`
(not the data directory: parser workers do not know it, and the model does not depend on
it). The file names carry a key of py3langid's version, its model file's size and the
language list, so an upgrade or another list never reads stale arrays; a write removes the
files of older py3langid versions. Any failure to read (missing, truncated, inconsistent)
falls back to the normal load and rewrites the cache; any failure to write is ignored.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

LOGGER = logging.getLogger(__name__)

CACHE_ENV = "CHIPWATCH_CACHE_DIR"
# Bump when the files written here change meaning, so old caches are ignored.
FORMAT_VERSION = "1"
PREFIX = "langid-"
# The DFA tables are indexed once per input byte from Python: they are handed to
# py3langid as memoryviews over the mapped files (as fast as its array.array).
_MAPPED = ("nextmove", "row", "output")
_NAMES = ("ptc", "pc", "classes", *_MAPPED)


def cache_dir(environ: Mapping[str, str] | None = None) -> Path | None:
    """The per-user cache directory, or None when no home directory is known."""
    env = os.environ if environ is None else environ
    if env.get(CACHE_ENV):
        return Path(env[CACHE_ENV]).expanduser()
    if env.get("XDG_CACHE_HOME"):
        return Path(env["XDG_CACHE_HOME"]) / "chipwatch"
    try:
        return Path.home() / ".cache" / "chipwatch"
    except (RuntimeError, KeyError):  # no HOME and no passwd entry
        return None


def load_identifier(
    langs: Sequence[str], *, norm_probs: bool = True, directory: Path | None = None
) -> Any:
    """A py3langid LanguageIdentifier restricted to `langs`, from the cache when possible."""
    directory = directory if directory is not None else cache_dir()
    key = cache_key(langs)
    if directory is not None:
        try:
            return _read(directory, key, langs, norm_probs)
        except FileNotFoundError:
            pass  # first load with this key
        except OSError as exc:  # unreachable directory: the write below will fail too
            LOGGER.debug("language model cache %s unreadable: %s", directory, exc)
        except Exception as exc:  # any damage means "rebuild", never a failed detection
            LOGGER.info("language model cache in %s damaged (%s); rebuilding", directory, exc)
    identifier = _fresh(langs, norm_probs)
    if directory is not None:
        _write(identifier, directory, key)
    return identifier


def cache_key(langs: Sequence[str]) -> str:
    """Changes with anything the cached arrays are derived from: "<generation>-<hash>"."""
    from py3langid.langid import MODEL_DIR, MODEL_FILE

    size = (Path(MODEL_DIR) / MODEL_FILE).stat().st_size
    text = "|".join([str(size), ",".join(langs)])
    return f"{_generation()}-{hashlib.sha256(text.encode()).hexdigest()[:16]}"


def _generation() -> str:
    # Files of another generation can only be stale; another language list may be live
    # (the classifier restricts its own identifier to other languages).
    from py3langid import __version__

    return f"v{FORMAT_VERSION}-{re.sub(r'[^0-9A-Za-z.]', '_', str(__version__))}"


def cache_paths(directory: Path, key: str) -> dict[str, Path]:
    return {name: directory / f"{PREFIX}{key}-{name}.npy" for name in _NAMES}


def _fresh(langs: Sequence[str], norm_probs: bool) -> Any:
    from py3langid.langid import _load_identifier

    identifier = _load_identifier(norm_probs=norm_probs, langs=list(langs))
    # set_languages keeps the 97-language matrix for a later reset we never do: dropping
    # it frees 27 MB per process (py3langid==0.4.0 is pinned; results are unchanged).
    identifier._full_model = (identifier.nb_ptc, identifier.nb_pc, identifier.nb_classes)
    return identifier


def _read(directory: Path, key: str, langs: Sequence[str], norm_probs: bool) -> Any:
    from py3langid.langid import LanguageIdentifier

    paths = cache_paths(directory, key)
    arrays = {
        name: np.load(path, mmap_mode="r" if name != "classes" else None, allow_pickle=False)
        for name, path in paths.items()
    }
    _check(arrays, langs)
    tables = {name: _memoryview(arrays[name]) for name in _MAPPED}
    return LanguageIdentifier(
        arrays["ptc"],  # same dtype and (Fortran) layout as after set_languages
        np.array(arrays["pc"]),
        arrays["classes"].tolist(),
        tables["nextmove"],
        tables["output"],
        norm_probs=norm_probs,
        tk_row=tables["row"],
    )


def _memoryview(array: npt.NDArray[Any]) -> memoryview:
    # Indexing a memoryview gives Python ints, like array.array; a numpy array would
    # give numpy scalars, several times slower in py3langid's per-byte loop.
    integers: str = array.dtype.char  # H, I, i...: the struct codes of array.array
    return array.data.cast("B").cast(integers)  # type: ignore[call-overload]


def _check(arrays: dict[str, npt.NDArray[Any]], langs: Sequence[str]) -> None:
    """Cheap consistency checks, so damaged files fail here rather than in classify."""
    ptc, pc, classes = arrays["ptc"], arrays["pc"], arrays["classes"]
    nextmove, row, output = (arrays[name] for name in _MAPPED)
    if sorted(classes.tolist()) != sorted(langs):
        raise ValueError("cached languages differ")
    if ptc.ndim != 2 or ptc.shape[1] != len(classes) or pc.shape != (len(classes),):
        raise ValueError("cached class arrays do not match")
    if nextmove.ndim != 1 or nextmove.size % 256 or row.shape != output.shape:
        raise ValueError("cached DFA arrays do not match")
    if row.size and (int(row.max()) >= nextmove.size // 256 or int(output.max()) >= len(ptc)):
        raise ValueError("cached DFA indexes out of range")


def _write(identifier: Any, directory: Path, key: str) -> None:
    arrays = {
        "ptc": identifier.nb_ptc,
        "pc": identifier.nb_pc,
        "classes": np.array(identifier.nb_classes),
        "nextmove": np.frombuffer(identifier.tk_nextmove, dtype=identifier.tk_nextmove.typecode),
        "row": np.frombuffer(identifier.tk_row, dtype=identifier.tk_row.typecode),
        "output": np.array(identifier.tk_output, dtype=np.int32),
    }
    try:
        directory.mkdir(parents=True, exist_ok=True)
        for name, path in cache_paths(directory, key).items():
            _save(arrays[name], path)
        _remove_stale(directory)
    except OSError as exc:
        LOGGER.info("language model not cached in %s: %s", directory, exc)


def _save(array: npt.NDArray[Any], path: Path) -> None:
    # Write then rename, so a concurrent reader (the other worker) never maps half a file.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=PREFIX, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            np.save(handle, array, allow_pickle=False)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _remove_stale(directory: Path) -> None:
    """Arrays of an older py3langid or cache format are dead weight (45 MB a set)."""
    for path in directory.glob(f"{PREFIX}*.npy"):
        if not path.name.startswith(f"{PREFIX}{_generation()}-"):
            path.unlink(missing_ok=True)
