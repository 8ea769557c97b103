"""Tune the shared weights on the dev set and write src/chipwatch/classify/weights.json.

Usage: .venv/bin/python scripts/tune_classifier.py [--dev ../shared/eval/dev.jsonl]

Only the few shared weights of weights.py are learned; dev texts never enter the
project. Embeddings of the dev units are cached under .bench/ (gitignored).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from chipwatch.classify.cache import load_or_fit
from chipwatch.classify.embed import CachedEmbedder, get_embedder
from chipwatch.classify.evaluate import load_rows, tune_on_rows
from chipwatch.classify.weights import WEIGHTS_FILE, to_json

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dev", type=Path, default=ROOT.parent / "shared/eval/dev.jsonl")
    parser.add_argument("--embedder", default="use")
    args = parser.parse_args()
    inner = get_embedder(args.embedder)
    embedder = CachedEmbedder(inner, ROOT / ".bench" / f"embeddings-{inner.name}.npz")
    classifier = load_or_fit(
        ROOT / "config/corpus",
        ROOT / "config/topics.toml",
        [],
        Path(tempfile.mkdtemp(prefix="chipwatch-tune-")),
        embedder=embedder,
        warm=False,
    )
    params = tune_on_rows(load_rows(args.dev), classifier)
    WEIGHTS_FILE.write_text(json.dumps(to_json(dict(params.kinds)), indent=1) + "\n")
    print(f"wrote {WEIGHTS_FILE}")


if __name__ == "__main__":
    main()
