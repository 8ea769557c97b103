"""Files a command writes where the user says (`export --output`, `digest --preview`).

A bad path is refused before any work, and the file is replaced only once its new content
is complete: an export that fails halfway (a bad config, a damaged database, a full disk)
leaves the user's old file as it was.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TextIO, TypeVar

from chipwatch.errors import UsageError

T = TypeVar("T")


def output_path(raw: str, option: str) -> Path:
    """The file named by `option`, or a UsageError (exit 2) where it cannot be one: an
    empty path, one ending in a separator or naming a folder, one in a missing folder.
    Takes the text as typed: `Path` would drop the trailing separator that marks a folder."""
    if not raw:
        raise UsageError(f"{option}: an empty path; give a file name")
    separators = tuple(s for s in (os.sep, os.altsep) if s)
    if raw.endswith(separators):
        raise UsageError(f"{option} {raw}: ends in {os.sep}, so it names a folder; give a file")
    path = Path(raw)
    if path.is_dir():
        raise UsageError(f"{option} {raw}: is a folder; give a file name")
    if not path.parent.is_dir():
        raise UsageError(f"{option} {raw}: no such folder: {path.parent}")
    return path


def write_replacing(path: Path, label: str, write: Callable[[TextIO], T]) -> T:
    """Run `write` on a temporary file beside `path`, then rename it over `path`; on any
    failure the temporary file goes and `path` is untouched. A device or a pipe
    (/dev/stdout, a FIFO) cannot be renamed over: it is written in place. An OSError
    (disk full, no permission) becomes a UsageError naming `label` and the path."""
    target = Path(os.path.realpath(path))  # a link's file is replaced, the link kept
    try:
        if target.exists() and not target.is_file():
            with target.open("w", encoding="utf-8", newline="") as handle:
                return write(handle)
        mode = target.stat().st_mode & 0o7777 if target.exists() else _new_file_mode()
        descriptor, temporary = tempfile.mkstemp(
            dir=target.parent, prefix=f".{target.name}.", suffix=".partial"
        )
        try:
            with os.fdopen(descriptor, "w", encoding="utf-8", newline="") as handle:
                result = write(handle)
                handle.flush()
                os.fsync(handle.fileno())  # the rename must not outrun the content
            os.chmod(temporary, mode)  # mkstemp's 0600, not what the user's file had
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return result
    except OSError as exc:
        raise UsageError(f"{label} {path}: {exc.strerror or exc}") from None


def _new_file_mode() -> int:
    umask = os.umask(0)  # read by setting it: there is no getter
    os.umask(umask)
    return 0o666 & ~umask
