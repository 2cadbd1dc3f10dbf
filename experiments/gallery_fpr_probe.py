"""How often is a genuine *multi-participant* call called swapped? (ships nothing)

Every dev clip holds one face, and a call takes its most suspicious participant, so the false-positive rate the
eval reports is per participant. This probe composes gallery-view calls from the genuine dev clips (a 1280x720
canvas of 640x360 tiles: two side by side, or 2x2; each clip letterboxed into its tile, the call as long as its
shortest clip, 30 fps H.264), scans them with the gallery options (``gallery_grid=2``), maps each track to its tile
by where its face was, and scores each tile's track with the grouped-CV models of ``detector eval`` that never saw
that clip's group (6 folds of the linked groups, assignments 0-2, each calibrated by its own inner CV). The verdict
threshold is the one chosen on the originals' out-of-fold scores.

It prints, per layout: calls, participants found, the per-call FPR at the threshold, the same rate for the same
tracked participants scored in their own recordings instead, and how a clip's probability moves between its own
recording and its tile.

    python experiments/gallery_fpr_probe.py make       # /tmp/gallery/*.mp4 and calls.json
    python experiments/gallery_fpr_probe.py score --orig-cache runs/eval-linked/features.jsonl
    python experiments/gallery_fpr_probe.py score --orig-cache runs/eval-aug/features.jsonl \
        --copies-dir runs/eval-aug/copies   # fold models fitted on the copies too (the shipped fusion, session 11+)
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from detector.evaluation import (DEFAULT_LINK_NOTE, calibrated_fold_model, extract_features,  # noqa: E402
                                 feature_matrix, group_folds, link_groups, read_manifest, split_seen,
                                 threshold_for_fpr, window_matrix)
from detector.fusion.augment import TRAINING_COPIES  # noqa: E402
from detector.fusion.train import L2, block_masks, fusion_feature_names, fusion_penalty, training_clips  # noqa: E402
from detector.options import ScanOptions  # noqa: E402

MANIFEST = Path(__file__).resolve().parents[2] / "shared/data/dev/manifest.csv"
ROOT = Path("/tmp/gallery")
CANVAS = (1280, 720)
TILE = (640, 360)
LAYOUTS = {2: [(0, 180), (640, 180)], 4: [(0, 0), (640, 0), (0, 360), (640, 360)]}
FPS = 30


def _frames(path: str):
    """(seconds, RGB frame) of every decoded frame."""
    with av.open(path) as f:
        s = f.streams.video[0]
        for fr in f.decode(s):
            if fr.pts is not None:
                yield float(fr.pts * s.time_base), fr.to_ndarray(format="rgb24")


def _duration(path: str) -> float:
    with av.open(path) as f:
        return f.duration / 1e6


def _letterbox(img: np.ndarray, box: tuple[int, int] = TILE) -> np.ndarray:
    tw, th = box
    h, w = img.shape[:2]
    s = min(tw / w, th / h)
    nw, nh = int(round(w * s)), int(round(h * s))
    out = np.zeros((th, tw, 3), np.uint8)
    x0, y0 = (tw - nw) // 2, (th - nh) // 2
    out[y0:y0 + nh, x0:x0 + nw] = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
    return out


def write_h264(dst: Path, canvases) -> None:
    """Encode RGB canvases of CANVAS size as a FPS H.264 call (CRF 23), frame i at i / FPS."""
    with av.open(str(dst), "w") as out:
        st = out.add_stream("libx264", rate=FPS, options={"crf": "23", "preset": "veryfast"})
        st.width, st.height, st.pix_fmt = CANVAS[0], CANVAS[1], "yuv420p"
        for i, canvas in enumerate(canvases):
            frame = av.VideoFrame.from_ndarray(canvas, format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, FPS)
            for pkt in st.encode(frame):
                out.mux(pkt)
        for pkt in st.encode():
            out.mux(pkt)


def compose(paths: list[str], dst: Path) -> None:
    """A gallery call of ``paths`` (sample-and-hold to 30 fps), as long as the shortest."""
    origins = LAYOUTS[len(paths)]
    length = min(_duration(p) for p in paths)
    sources = [_frames(p) for p in paths]
    current = [next(s) for s in sources]
    upcoming = [next(s, None) for s in sources]

    def canvases():
        for i in range(int(math.floor(length * FPS))):
            t = i / FPS
            canvas = np.zeros((CANVAS[1], CANVAS[0], 3), np.uint8)
            for k, (x0, y0) in enumerate(origins):
                while upcoming[k] is not None and upcoming[k][0] <= t:
                    current[k], upcoming[k] = upcoming[k], next(sources[k], None)
                canvas[y0:y0 + TILE[1], x0:x0 + TILE[0]] = _letterbox(current[k][1])
            yield canvas

    write_h264(dst, canvases())


def genuine_rows():
    rows, _ = split_seen(read_manifest(MANIFEST))
    return [r for r in rows if r.label == "real"]


def cmd_make(a: argparse.Namespace) -> None:
    ROOT.mkdir(parents=True, exist_ok=True)
    rows = genuine_rows()
    calls = []
    for k in (2, 4):
        order = np.random.default_rng(k).permutation(len(rows))
        for c in range(len(rows) // k):
            members = [rows[j] for j in order[c * k:(c + 1) * k]]
            dst = ROOT / f"gallery{k}_{c:02d}.mp4"
            if not dst.is_file():
                compose([m.path for m in members], dst)
            calls.append({"path": str(dst), "layout": k, "tiles": [m.rel_path for m in members]})
            print(dst, flush=True)
    (ROOT / "calls.json").write_text(json.dumps(calls, indent=1))


def _tile_of(track, layout: int) -> int | None:
    """The tile holding the median centre of the track's thumbnail boxes."""
    boxes = np.array([t.bbox for t in track.thumbnails.items])
    if not len(boxes):
        return None
    cx, cy = np.median((boxes[:, 0] + boxes[:, 2]) / 2), np.median((boxes[:, 1] + boxes[:, 3]) / 2)
    for i, (x0, y0) in enumerate(LAYOUTS[layout]):
        if x0 <= cx < x0 + TILE[0] and y0 <= cy < y0 + TILE[1]:
            return i
    return None


class FoldModels:
    """The eval's grouped-CV fold models, calibrated; each remembers which groups it never saw.

    Fitted on the originals (and, with ``copies_dir``, their re-encoded copies) as ``detector eval`` fits them
    (6 folds of the linked groups, assignments 0-2). ``alone`` holds every dev clip's own out-of-fold
    probability and ``high`` the threshold chosen on the genuine ones (FPR <= 10%), as the eval chooses it.
    """

    def __init__(self, orig_cache: Path, copies_dir: Path | None = None, flat_penalty: bool = False,
                 options: ScanOptions | None = None):
        rows = link_groups(split_seen(read_manifest(MANIFEST))[0], DEFAULT_LINK_NOTE)
        self.rows = rows
        self.by_path = {r.rel_path: r for r in rows}
        self.options = options = options or ScanOptions(use_fusion=False)
        l2 = L2
        if copies_dir is not None:  # fold models fitted on the originals and their copies, as detector eval's
            clips = training_clips(rows, options, workers=2, cache=orig_cache, copies=TRAINING_COPIES,
                                   copies_dir=copies_dir).clips
            l2 = L2 if flat_penalty else fusion_penalty(1 + len(TRAINING_COPIES))
        else:
            clips = extract_features(rows, options, workers=1, cache=orig_cache)
        self.names = names = fusion_feature_names(clips)
        x, y, usable = feature_matrix(clips, names)
        windows, blocks = window_matrix(clips, names), block_masks(names)
        groups = np.array([c.row.group for c in clips])
        self.models = []
        for seed in range(3):
            for test in group_folds(list(groups), 6, seed):
                m = calibrated_fold_model(x, y, groups, ~test & usable, 6, l2, windows, blocks)
                self.models.append((set(groups[test]), m))
        # the originals only: the first len(rows) clips (copies follow, recipe by recipe)
        self.alone = {c.row.rel_path: self.oof(x[i], [c.row.group])
                      for i, c in enumerate(clips[:len(rows)]) if usable[i]}
        self.high = threshold_for_fpr(np.array([self.alone[r.rel_path] for r in rows
                                                if r.label == "real" and r.rel_path in self.alone]), 0.10)

    def oof(self, features: np.ndarray, groups: list[str]) -> float:
        """Mean probability of the fold models that saw none of ``groups``."""
        ps = [m.predict_proba(features[None])[0] for held, m in self.models if set(groups) <= held]
        if not ps:
            raise ValueError(f"no fold model held out all of {groups}")
        return float(np.mean(ps))

    def track_vector(self, features: dict[str, float]) -> np.ndarray:
        return np.array([features.get(n, np.nan) for n in self.names], dtype=float)


def cmd_score(a: argparse.Namespace) -> None:
    from detector.api import Analyzer

    fm = FoldModels(a.orig_cache, a.copies_dir, a.flat_penalty)
    rows, by_path, options, alone, high = fm.rows, fm.by_path, fm.options, fm.alone, fm.high
    calls = json.loads((ROOT / "calls.json").read_text())
    results = {2: [], 4: []}
    for call in calls:
        k = call["layout"]
        analyzer = Analyzer(ScanOptions(use_fusion=False, gallery_grid=2, max_faces=k))
        try:
            analysis = analyzer.analyse(call["path"])
        finally:
            analyzer.close()
        tile_p: dict[int, float] = {}
        for t in analysis.tracks:
            if t.duration < options.min_track_seconds or t.frames < options.min_track_frames:
                continue
            tile = _tile_of(t, k)
            if tile is None:
                continue
            p = fm.oof(fm.track_vector(analysis.track_features(t)), [by_path[call["tiles"][tile]].group])
            tile_p[tile] = max(p, tile_p.get(tile, 0.0))  # a split track: its worst part
        results[k].append((call, tile_p))
        print(f"{Path(call['path']).name}: {len(tile_p)}/{k} participants, "
              + ", ".join(f"{call['tiles'][i].split('/')[-1]} {alone.get(call['tiles'][i], np.nan):.2f}->{p:.2f}"
                          for i, p in sorted(tile_p.items())), flush=True)
    print(f"\nthreshold (originals' out-of-fold, FPR <= 10%): {high:.3f}; single genuine clips flagged: "
          f"{np.mean([alone[r.rel_path] >= high for r in rows if r.label == 'real' and r.rel_path in alone]):.3f}")
    for k, res in results.items():
        found = sum(len(tp) for _, tp in res)
        # both over the same calls and participants: those tracked in the gallery
        flagged = [max(tp.values()) >= high for _, tp in res if tp]
        predicted = [1 - np.prod([1 - (alone[call["tiles"][i]] >= high) for i in tp if call["tiles"][i] in alone])
                     for call, tp in res if tp]
        shifts = [p - alone[call["tiles"][i]] for call, tp in res for i, p in tp.items() if call["tiles"][i] in alone]
        print(f"{k} tiles: {len(res)} calls, {found}/{k * len(res)} participants tracked; calls flagged "
              f"{np.mean(flagged):.3f} (tiles scored alone would flag {np.mean(predicted):.3f}); "
              f"P in tile minus P alone: mean {np.mean(shifts):+.3f}, median {np.median(shifts):+.3f}, "
              f"lower in {sum(d < 0 for d in shifts)} of {len(shifts)}")
    by_source: dict[str, list[float]] = {}
    for res in results.values():
        for call, tp in res:
            for i, p in tp.items():
                if call["tiles"][i] in alone:
                    by_source.setdefault(by_path[call["tiles"][i]].source, []).append(p - alone[call["tiles"][i]])
    for src, d in sorted(by_source.items()):
        print(f"  {src}: {len(d)} tiles, in tile minus alone {min(d):+.3f} to {max(d):+.3f}, mean {np.mean(d):+.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("make")
    s = sub.add_parser("score")
    s.add_argument("--orig-cache", type=Path, required=True, help="features.jsonl of a default detector eval run")
    s.add_argument("--copies-dir", type=Path, default=None,
                   help="that run's OUT/copies: fit the fold models on the re-encoded copies too, as eval does")
    s.add_argument("--flat-penalty", action="store_true",
                   help="with copies, keep the penalty at L2 as session 11 did (since session 12 it grows with them)")
    a = ap.parse_args()
    {"make": cmd_make, "score": cmd_score}[a.cmd](a)


if __name__ == "__main__":
    main()
