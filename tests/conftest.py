"""Shared test set-up."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

# Every test that runs chipwatch in a fresh data directory would otherwise refit the
# classifier; one cache for the session keeps that to a single fit (the cache is keyed by
# the corpus, topics and labels, so sharing it cannot mix up different inputs).
_CACHE = str(Path(tempfile.gettempdir()) / f"chipwatch-test-cache-{os.getuid()}")
os.environ.setdefault("CHIPWATCH_CLASSIFY_CACHE_DIR", _CACHE)
# The language model's cache (keyed by py3langid's version and the language list): the
# same directory, so test runs neither write to ~/.cache nor reload the model each time.
os.environ.setdefault("CHIPWATCH_CACHE_DIR", _CACHE)

# The review site's tests share one filled data directory and one running server.
from review_site import site  # noqa: E402, F401
