"""Probe: is the skin's pulse (remote photoplethysmography) less coherent inside a face swap?

FakeCatcher (Ciftci, Demir and Yin, 2020) and DeepFakesON-Phys (Hernandez-Ortega et al., 2020) separate
genuine from synthetic faces by the blood-volume pulse a camera records as a tiny periodic change of skin
colour: in a genuine face it beats at one rate everywhere; a swapper re-renders the face every frame and
need not keep it. This probe measures, on every frame of each dev clip, the mean colour of five skin patches
of the largest face (forehead, both cheeks, nose, chin; MediaPipe Face Mesh polygons), turns each into a
pulse signal with the POS method (Wang et al., 2017), and scores per clip

- ``snr``: how much of the face pulse's 0.7-4 Hz power sits at its peak (and first harmonic);
- ``coherence``: the mean correlation of the band-passed patch pulses with each other;
- ``peak_spread``: how far apart the patches' peak frequencies are;
- ``cheek_corr``: the correlation of the two cheeks' pulses;
- ``green_jump``: the median change of the patches' relative green level from one sample to the next
  (one frame at the clip's own rate, 0.1 s with ``--fps 10``);
- ``pulse_amp``: the face pulse's amplitude.

    python experiments/ppg_probe.py extract            # region means per clip, cached under /tmp/ppg
    python experiments/ppg_probe.py score [--fps 10]   # features, AUC and footage-pair counts

Ships nothing; the dev clips stay outside the repository.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

OUT = Path("/tmp/ppg")
MANIFEST = Path(__file__).resolve().parents[2] / "shared/data/dev/manifest.csv"

# Face Mesh landmark sets whose convex hull is a patch of skin. The chin set starts on the lower lip's outer
# contour (17, 314, 405, 84, 181), so that patch takes in some of the lower lip as well as the chin below it.
PATCHES = {
    "forehead": [10, 109, 67, 338, 297, 108, 151, 337, 69, 299],
    "cheek_l": [117, 118, 101, 36, 205, 187, 123, 50],
    "cheek_r": [346, 347, 330, 266, 425, 411, 352, 280],
    "nose": [6, 197, 195, 5, 51, 281, 45, 275],
    "chin": [17, 314, 405, 84, 181, 200, 199, 175, 18],
}


def _patch_means(rgb: np.ndarray, pts: np.ndarray) -> np.ndarray:
    h, w = rgb.shape[:2]
    out = np.full((len(PATCHES), 3), np.nan)
    for i, idx in enumerate(PATCHES.values()):
        hull = cv2.convexHull(np.round(pts[idx]).astype(np.int32))
        x, y, bw, bh = cv2.boundingRect(hull)
        x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + bw, w), min(y + bh, h)
        if x1 - x0 < 2 or y1 - y0 < 2:
            continue
        mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
        cv2.fillConvexPoly(mask, hull - np.array([x0, y0]), 1)
        if mask.sum() < 4:
            continue
        out[i] = cv2.mean(rgb[y0:y1, x0:x1], mask=mask)[:3]
    return out


def extract_one(row: dict) -> str:
    from detector.faces.landmarks import LandmarkOptions, create_landmark_detector
    from detector.video import open_video

    path = str(MANIFEST.parent / row["path"])
    dest = OUT / (row["path"].replace("/", "__") + ".npz")
    if dest.exists():
        return dest.name
    times, means = [], []
    with create_landmark_detector(LandmarkOptions()) as det, open_video(path) as src:
        for frame in src.frames(rate=None):
            faces = det.detect(frame.image)
            if not faces:
                continue
            face = max(faces, key=lambda f: f.height)
            times.append(frame.seconds)
            means.append(_patch_means(frame.image, np.asarray(face.points)[:, :2]))
    np.savez(dest, times=np.asarray(times), means=np.asarray(means).reshape(-1, len(PATCHES), 3))
    return dest.name


def pos_pulse(rgb: np.ndarray, fs: float, window_s: float = 1.6) -> np.ndarray:
    """POS (plane orthogonal to skin) pulse of a (T, 3) colour series, overlap-added over short windows."""
    t = len(rgb)
    win = max(int(round(window_s * fs)), 4)
    h = np.zeros(t)
    proj = np.array([[0.0, 1.0, -1.0], [-2.0, 1.0, 1.0]])
    for s in range(0, t - win + 1):
        c = rgb[s:s + win]
        cn = c / np.maximum(c.mean(0), 1e-6)
        sig = cn @ proj.T
        p = sig[:, 0] + (sig[:, 0].std() / max(sig[:, 1].std(), 1e-9)) * sig[:, 1]
        h[s:s + win] += p - p.mean()
    return h


def bandpass(x: np.ndarray, fs: float, lo: float = 0.7, hi: float = 4.0) -> np.ndarray:
    f = np.fft.rfftfreq(len(x), 1 / fs)
    spec = np.fft.rfft(x - x.mean())
    spec[(f < lo) | (f > hi)] = 0
    return np.fft.irfft(spec, len(x))


def spectrum(x: np.ndarray, fs: float, pad: int = 8) -> tuple[np.ndarray, np.ndarray]:
    n = len(x) * pad
    f = np.fft.rfftfreq(n, 1 / fs)
    p = np.abs(np.fft.rfft((x - x.mean()) * np.hanning(len(x)), n)) ** 2
    band = (f >= 0.7) & (f <= 4.0)
    return f[band], p[band]


def clip_features(times: np.ndarray, means: np.ndarray, fps: float | None) -> dict[str, float] | None:
    ok = np.isfinite(means).all(axis=(1, 2))
    times, means = times[ok], means[ok]
    if len(times) < 20:
        return None
    # resample onto a regular clock (true timestamps, so variable frame rate is handled)
    fs = fps or float(np.round(1 / np.median(np.diff(times))))
    grid = np.arange(times[0], times[-1], 1 / fs)
    if len(grid) < 3 * fs:
        return None
    series = np.stack([np.stack([np.interp(grid, times, means[:, i, c]) for c in range(3)], 1)
                       for i in range(means.shape[1])])  # (P, T, 3)
    pulses = np.stack([bandpass(pos_pulse(s, fs), fs) for s in series])
    face = bandpass(pos_pulse(series.mean(0), fs), fs)
    f, p = spectrum(face, fs)
    k = int(np.argmax(p))
    near = np.abs(f - f[k]) <= 0.15
    harm = np.abs(f - 2 * f[k]) <= 0.15
    snr = float(np.log10(p[near | harm].sum() / max(p[~(near | harm)].sum(), 1e-12)))
    corr = np.corrcoef(pulses)
    iu = np.triu_indices(len(pulses), 1)
    peaks = [spectrum(q, fs)[0][int(np.argmax(spectrum(q, fs)[1]))] for q in pulses]
    # the colour noise of the skin patches, high-passed: how much each frame's colour jumps
    green = series[:, :, 1] / np.maximum(series[:, :, 1].mean(1, keepdims=True), 1e-6)
    return {"snr": snr, "coherence": float(np.nanmean(corr[iu])), "peak_spread": float(np.std(peaks)),
            "cheek_corr": float(corr[1, 2]), "green_jump": float(np.log(np.median(np.abs(np.diff(green, axis=1))) + 1e-9)),
            "pulse_amp": float(np.log(face.std() + 1e-12))}


def _auc(y: np.ndarray, s: np.ndarray) -> float:
    from detector.fusion.logistic import roc_auc
    return roc_auc(y, s)


def score(fps: float | None) -> None:
    rows = list(csv.DictReader(open(MANIFEST)))
    feats, ys, groups, srcs = [], [], [], []
    out = {}
    for r in rows:
        z = np.load(OUT / (r["path"].replace("/", "__") + ".npz"))
        f = clip_features(z["times"], z["means"], fps)
        if f is None:
            continue
        out[r["path"]] = f
        feats.append(f)
        ys.append(r["label"] == "fake")
        groups.append(r["group"])
        srcs.append(r["source"])
    y = np.array(ys)
    names = list(feats[0])
    dfl = np.array([s == "DeepFaceLive" for s in srcs])
    print(f"{len(y)} clips scored at {'native' if fps is None else fps} fps")
    for n in names:
        v = np.array([f[n] for f in feats])
        pairs = below = 0
        for g in set(groups):
            i = [k for k, gg in enumerate(groups) if gg == g]
            fk = [v[k] for k in i if y[k] and dfl[k]]
            rl = [v[k] for k in i if not y[k] and dfl[k]]
            if fk and rl:
                pairs += 1
                below += np.mean(fk) < np.mean(rl)
        print(f"{n:12s} AUC {_auc(y, v):.3f}  DFL {_auc(y[dfl], v[dfl]):.3f}  fake<original in {below}/{pairs} DFL pairs")
    dest = OUT / f"features_{fps or 'native'}.json"
    dest.write_text(json.dumps(out))
    print("features ->", dest)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["extract", "score"])
    ap.add_argument("--fps", type=float, default=None, help="resample rate for scoring (default: the clip's own)")
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args()
    OUT.mkdir(exist_ok=True)
    if a.what == "extract":
        rows = list(csv.DictReader(open(MANIFEST)))
        with ProcessPoolExecutor(a.workers) as ex:
            for name in ex.map(extract_one, rows):
                print(name, flush=True)
    else:
        score(a.fps)


if __name__ == "__main__":
    main()
