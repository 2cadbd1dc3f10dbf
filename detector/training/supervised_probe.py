"""How far a *supervised* face-crop CNN gets on the dev clips: a ceiling probe, ships nothing.

``python -m detector.training.supervised_probe --manifest ../shared/data/dev/manifest.csv --input diff``

The self-blend model (issue 5) must never see a fake. This diagnostic asks
the opposite question, to tell a weak training recipe apart from footage
that carries little per-crop evidence: train a small CNN on the dev set's
own real *and fake* aligned face crops, with grouped cross-validation, and
measure the video-level AUC of its out-of-fold clip scores. If even that is
low, no genuine-only recipe of the same capacity can be expected to beat it.

Honesty rules, the same as everywhere else in the project:

* folds never split a manifest ``group``; groups whose fakes share a swap
  identity (a ``note`` starting with ``--link-note-prefix``, e.g. one
  DeepFaceLive celebrity model used on several source speakers) are merged,
  otherwise the network could learn "this celebrity's face means fake";
* every clip is scored by a network that never trained on its (merged) group;
* nothing is written to ``models/``; nothing from the clips is stored in the
  repository (crops are cached under ``/tmp`` like the SBI evaluation's).

Inputs: ``frame`` (one aligned crop) or ``diff`` (the difference of two
consecutive aligned crops, i.e. what changed on the face beyond rigid motion,
which carries temporal flicker and little identity). Needs the ``train``
extra (PyTorch CPU).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import cv2
import numpy as np

from detector.evaluation import linked_roots
from detector.training.faces_cache import cached_largest_face_crops
from detector.training.sbi_eval import read_manifest, roc_auc

log = logging.getLogger(__name__)

INPUTS = ("frame", "diff")


@dataclass
class ProbeOptions:
    input: str = "diff"  # one of INPUTS
    size: int = 64  # crops are resized to size x size before the CNN
    epochs: float = 4.0  # passes over the training fold's samples
    folds: int = 5
    batch: int = 64
    lr: float = 2e-3
    seed: int = 0


def merged_groups(rows: list[dict[str, str]], link_note_prefix: str) -> list[str]:
    """Each row's CV group after merging groups whose fakes share a note with the prefix (union-find)."""
    return linked_roots([r["group"] for r in rows], [(r.get("note") or "").strip() for r in rows], link_note_prefix)


def probe_samples(times: np.ndarray, crops: np.ndarray, kind: str, size: int, max_gap: float) -> np.ndarray:
    """(N, size, size, 3) float32 network inputs of one clip, in [0, 1] (``frame``) or [-1, 1] (``diff``)."""
    if kind not in INPUTS:
        raise ValueError(f"input must be one of {INPUTS}, got {kind!r}")
    small = np.stack([cv2.resize(c, (size, size), interpolation=cv2.INTER_AREA) for c in crops]).astype(np.float32)
    small /= 255.0
    if kind == "frame" or len(small) < 2:
        return small if kind == "frame" else np.zeros((0, size, size, 3), np.float32)
    # only truly consecutive samples: across a detection gap the face moved
    ok = np.where(np.diff(times) <= max_gap)[0]
    return small[ok + 1] - small[ok]


def _network(torch):
    nn = torch.nn

    def block(cin: int, cout: int):
        return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(),
                             nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(),
                             nn.MaxPool2d(2))

    return nn.Sequential(block(3, 16), block(16, 32), block(32, 64), block(64, 128), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Dropout(0.3), nn.Linear(128, 1))


def _standardise(x):
    # per-sample: absolute brightness / flicker level says more about the
    # camera than about a swap
    return (x - x.mean((1, 2, 3), keepdim=True)) / (x.std((1, 2, 3), keepdim=True) + 1e-3)


def out_of_fold_scores(samples: list[np.ndarray], labels: np.ndarray, groups: list[str],
                       opts: ProbeOptions) -> np.ndarray:
    """Mean logit per clip, each from a CNN trained only on the other folds' groups.

    Every clip weighs the same in training (clips differ a lot in length).
    Clips without samples get NaN.
    """
    import torch

    from detector.evaluation import group_folds

    torch.manual_seed(opts.seed)
    rng = np.random.default_rng(opts.seed)
    clip_of = np.concatenate([np.full(len(s), i) for i, s in enumerate(samples)]).astype(np.int64)
    x_all = torch.from_numpy(np.concatenate(samples)).permute(0, 3, 1, 2).contiguous()
    y_clip = np.asarray(labels, dtype=np.float32)
    scores = np.full(len(samples), np.nan)
    has = np.array([len(s) > 0 for s in samples])
    for test in group_folds(groups, opts.folds, opts.seed):
        train_clips = np.where(~test & has)[0]
        if len(set(y_clip[train_clips])) < 2:
            continue
        idx = np.where(np.isin(clip_of, train_clips))[0]
        weight = 1.0 / np.bincount(clip_of[idx], minlength=len(samples))[clip_of[idx]]
        weight = torch.from_numpy(weight / weight.sum())
        model = _network(torch)
        opt = torch.optim.AdamW(model.parameters(), opts.lr, weight_decay=1e-3)
        steps = max(1, int(opts.epochs * len(idx) / opts.batch))
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, opts.lr, total_steps=steps)
        model.train()
        for _ in range(steps):
            b = idx[torch.multinomial(weight, opts.batch, replacement=True).numpy()]
            x = x_all[b]
            if rng.random() < 0.5:
                x = x.flip(3)
            dy, dx = (int(v) for v in rng.integers(-3, 4, 2))
            x = torch.roll(x, (dy, dx), (2, 3))
            y = torch.from_numpy(y_clip[clip_of[b]])
            loss = torch.nn.functional.binary_cross_entropy_with_logits(model(_standardise(x)).squeeze(1), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        model.eval()
        with torch.no_grad():
            for c in np.where(test & has)[0]:
                logits = torch.cat([model(_standardise(x_all[clip_of == c][i:i + 256])).squeeze(1)
                                    for i in range(0, int((clip_of == c).sum()), 256)])
                scores[c] = float(logits.mean())
        log.info("fold done: %d training clips, %d steps, last loss %.3f", len(train_clips), steps, float(loss.detach()))
    return scores


def _crops_job(args: tuple[str, float, str]) -> tuple[np.ndarray, np.ndarray]:
    path, fps, cache = args
    os.environ.setdefault("GLOG_minloglevel", "2")
    t, c, _ = cached_largest_face_crops(path, fps, Path(cache) if cache else None)
    return t, c


def run(manifest: Path, opts: ProbeOptions, fps: float, cache_dir: Path | None, link_note_prefix: str,
        processes: int = 2) -> dict:
    rows = read_manifest(manifest)
    jobs = [(r["abspath"], fps, str(cache_dir) if cache_dir else "") for r in rows]
    with get_context("spawn").Pool(processes) as pool:  # landmarking is the slow part of a first run
        clips = pool.map(_crops_job, jobs)
    samples = [probe_samples(t, c, opts.input, opts.size, 1.5 / fps) if len(c) else
               np.zeros((0, opts.size, opts.size, 3), np.float32) for t, c in clips]
    labels = np.array([r["label"] == "fake" for r in rows])
    groups = merged_groups(rows, link_note_prefix)
    scores = out_of_fold_scores(samples, labels, groups, opts)
    subsets = {"overall": np.ones(len(rows), bool),
               "DeepFaceLive": np.array([r["source"] == "DeepFaceLive" for r in rows]),
               "FF++": np.array([r["source"].startswith("FaceForensics++") for r in rows])}
    ok = np.isfinite(scores)
    auc = {name: roc_auc(scores[sel & ok & labels], scores[sel & ok & ~labels]) for name, sel in subsets.items()}
    return {"options": opts.__dict__, "fps": fps, "n_clips": int(ok.sum()), "n_groups": len(set(groups)),
            "auc": auc, "per_clip": {r["path"]: (None if not np.isfinite(s) else float(s))
                                     for r, s in zip(rows, scores)}}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m detector.training.supervised_probe", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--manifest", type=Path, required=True)
    ap.add_argument("--input", choices=INPUTS, default="diff")
    ap.add_argument("--fps", type=float, default=15.0, help="frames per second to landmark (default 15)")
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--epochs", type=float, default=4.0)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--link-note-prefix", default="celeb model",
                    help="merge groups whose fakes share a manifest note starting with this ('' to disable)")
    ap.add_argument("--cache-dir", type=Path, default=Path("/tmp/detector_cache"))
    ap.add_argument("--json", type=Path, help="write options, AUCs and per-clip scores here")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    import torch

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    opts = ProbeOptions(input=a.input, size=a.size, epochs=a.epochs, folds=a.folds, seed=a.seed)
    t0 = time.time()
    res = run(a.manifest, opts, a.fps, a.cache_dir if str(a.cache_dir) else None, a.link_note_prefix)
    print(f"supervised probe, input={a.input} size={a.size} epochs={a.epochs} fps={a.fps}: "
          f"{res['n_clips']} clips in {res['n_groups']} merged groups, {time.time() - t0:.0f}s")
    for name, v in res["auc"].items():
        print(f"  out-of-fold video AUC {name:13s} {v:.3f}")
    if a.json:
        a.json.write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
