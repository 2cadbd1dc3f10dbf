"""How many clips' features differ between two feature caches (``detector eval``'s ``features.jsonl``).

    python experiments/compare_feature_caches.py runs/eval-pen/features.jsonl runs/eval-gate/features.jsonl

Each cache may hold several keys (settings); the latest line per clip path and key is read, and the two caches'
only or most common keys are compared. Prints, per clip that differs, how many tracks each run found and the
largest difference of any track feature; features equal to the last bit count as equal.
"""
from __future__ import annotations

import argparse
import collections
import json
import math


def load(path: str) -> dict[str, dict]:
    rows: dict[str, dict[str, dict]] = collections.defaultdict(dict)
    for line in open(path):
        try:
            d = json.loads(line)
        except ValueError:
            continue
        rows[d["key"]][d["row"]["path"]] = d
    key = max(rows, key=lambda k: len(rows[k]))
    return rows[key]


def largest_difference(a: list[dict], b: list[dict]) -> float:
    worst = 0.0
    for ta, tb in zip(a, b):
        for name in set(ta["features"]) | set(tb["features"]):
            x, y = ta["features"].get(name), tb["features"].get(name)
            if x is None and y is None:
                continue
            if x is None or y is None or not (math.isfinite(x) and math.isfinite(y)):
                return math.inf
            worst = max(worst, abs(x - y))
    return worst


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("before")
    ap.add_argument("after")
    args = ap.parse_args()
    before, after = load(args.before), load(args.after)
    common = sorted(set(before) & set(after))
    differ = 0
    for path in common:
        a, b = before[path]["tracks"], after[path]["tracks"]
        same_tracks = len(a) == len(b) and all(x["frames"] == y["frames"] for x, y in zip(a, b))
        diff = largest_difference(a, b) if len(a) == len(b) else math.inf
        if not same_tracks or diff > 0:
            differ += 1
            print(f"{path}: tracks {len(a)} -> {len(b)}, frames {[t['frames'] for t in a]} -> "
                  f"{[t['frames'] for t in b]}, largest feature difference {diff:.3g}")
    print(f"{len(common)} clips in both caches; {differ} differ, {len(common) - differ} identical")


if __name__ == "__main__":
    main()
