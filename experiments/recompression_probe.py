"""Probe: do swapped faces change less than genuine ones when their clip is compressed again? (ships nothing)

Error-level analysis holds that content a generator has already smoothed changes less under another round of
compression than camera footage does. The re-encoded copies that ``detector eval`` makes of every dev clip give
that test for free: for each clip, the change of its main track's features from the original to its copy (the
same footage, so whatever differs between footages cancels). Printed per recipe: the AUC of how far the
standardised ``face_cnn`` vector moves, overall/DeepFaceLive, and every hand-made feature whose change scores an
AUC at least ``--show`` away from 0.5 (so the reader can count how many of the tries reach it).

    python experiments/recompression_probe.py --cache runs/eval-aug/features.jsonl
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from detector.evaluation import ClipFeatures, ManifestRow  # noqa: E402
from detector.fusion.augment import RECIPES  # noqa: E402
from detector.fusion.logistic import roc_auc  # noqa: E402


def main_tracks(cache: Path) -> dict[str, tuple[dict, dict]]:
    """rel_path -> (manifest row, main track's features) for every clip and copy in an eval cache."""
    out = {}
    for line in cache.read_text().splitlines():
        d = json.loads(line)
        track = ClipFeatures(ManifestRow(**d["row"]), d["tracks"]).main_track()
        if track is not None:
            out[d["row"]["rel_path"]] = (d["row"], track["features"])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cache", type=Path, required=True, help="features.jsonl of a detector eval run with copies")
    ap.add_argument("--show", type=float, default=0.12)
    a = ap.parse_args()
    tracks = main_tracks(a.cache)
    origs = sorted(k for k in tracks if k.split("/", 1)[0] not in RECIPES)  # a copy's rel_path is recipe/original
    names = list(tracks[origs[0]][1])
    cnn = [n for n in names if n.startswith("face_cnn.v")]
    hand = [n for n in names if not n.startswith("face_cnn.v") and not n.startswith("track.")]
    y = np.array([tracks[k][0]["label"] == "fake" for k in origs])
    dfl = np.array([tracks[k][0]["source"] == "DeepFaceLive" for k in origs])

    def matrix(keys: list[str], cols: list[str]) -> np.ndarray:
        return np.array([[tracks[k][1].get(c, np.nan) if k in tracks else np.nan for c in cols] for k in keys],
                        dtype=float)

    x_cnn, x_hand = matrix(origs, cnn), matrix(origs, hand)
    spread = np.nanstd(x_cnn, axis=0) + 1e-9
    print(f"{len(origs)} originals; {len(hand)} hand-made features")
    for recipe in RECIPES:
        keys = [f"{recipe}/{k}" for k in origs]
        ok = np.array([k in tracks for k in keys])
        if ok.sum() < len(origs) // 2:
            print(f"{recipe}: {ok.sum()} copies in the cache, skipped")
            continue
        moved = np.linalg.norm((matrix(keys, cnn) - x_cnn) / spread, axis=1)
        line = [f"face_cnn move {roc_auc(y[ok], moved[ok]):.3f}/{roc_auc(y[ok & dfl], moved[ok & dfl]):.3f}"]
        change = matrix(keys, hand) - x_hand
        for j, n in enumerate(hand):
            m = ok & np.isfinite(change[:, j])
            auc = roc_auc(y[m], change[m, j])
            if abs(auc - 0.5) >= a.show:
                line.append(f"{n} {auc:.3f}/{roc_auc(y[m & dfl], change[m & dfl, j]):.3f}")
        print(f"{recipe} ({ok.sum()} copies): " + "; ".join(line))


if __name__ == "__main__":
    main()
