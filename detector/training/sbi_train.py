"""Train the self-blend face model on genuine photos and export it to ONNX.

``python -m detector.training.sbi_train --faces ../shared/data/faces/utkface_adults --out models/sbi_face.onnx``

Steps (all reproducible from ``--seed``):

1. Landmark every photo once with MediaPipe Face Mesh (still-image mode) and
   align it to the pipeline's 112x112 crop (:mod:`detector.training.faces_cache`,
   cached under ``/tmp``; the photos are third-party and never enter the repo).
2. Hold out ~10% of the photos (a hash of the file name) for validation.
3. Train a compact CNN from scratch, real vs self-blended: every batch holds
   ``B/2`` faces twice, once as the genuine crop and once freshly self-blended
   (:mod:`detector.training.self_blend`), both then globally augmented
   (colour, flip, down/up-scaling, JPEG q30-90) so compression is no cue.
4. Export to ONNX (opset 17, input ``input`` float32 N,3,112,112 normalised as
   :func:`detector.checks.learned.preprocess`, output ``logit`` N,1, dynamic
   batch) and check onnxruntime agrees with torch.
5. Print the held-out AUC, clean vs freshly blended held-out faces.

Torch is imported only here (``train`` extra); inference needs onnxruntime only.
"""
from __future__ import annotations

import argparse
import logging
import math
import queue
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from detector.checks.learned import MEAN, STD, preprocess
from detector.training.faces_cache import TRAIN_VIDEO_GROUPS, load_face_crops, split_names, video_face_crops
from detector.training.sbi_eval import roc_auc
from detector.training.self_blend import global_augment, make_pair, self_blend

log = logging.getLogger(__name__)


# --------------------------------------------------------------------- model
class ConvBN(nn.Sequential):
    def __init__(self, cin: int, cout: int, k: int = 3, stride: int = 1, groups: int = 1, act: bool = True):
        super().__init__(nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout))
        if act:
            self.add_module("act", nn.ReLU(inplace=True))


class Block(nn.Module):
    """ResNet basic block (two 3x3 convs); a 1x1 strided projection when the shape changes."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.c1 = ConvBN(cin, cout, 3, stride)
        self.c2 = ConvBN(cout, cout, 3, 1, act=False)
        self.proj = None if (cin == cout and stride == 1) else ConvBN(cin, cout, 1, stride, act=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.c2(self.c1(x))
        return F.relu(y + (x if self.proj is None else self.proj(x)), inplace=True)


class SBINet(nn.Module):
    """Compact ResNet for 112x112 crops (about 0.1 GFLOPs).

    A strided 3x3 stem, then four basic blocks, each halving the resolution
    down to 7x7, global average pooling and one linear logit. Most of what
    separates a blend in *compressed, upscaled* footage (colour and
    sharpness mismatch along a soft seam several pixels wide) survives the
    first downsampling, and skipping full-resolution layers makes training
    on two CPU cores about four times faster. Plain convolutions rather than
    depthwise ones: at this size they train faster in torch on CPU and run
    as fast in onnxruntime.
    """

    def __init__(self, widths: tuple[int, ...] = (24, 32, 64, 128, 160)):
        super().__init__()
        w = widths
        self.stem = ConvBN(3, w[0], 3, 2)  # 56
        self.stages = nn.Sequential(
            Block(w[0], w[1], 2),  # 28
            Block(w[1], w[2], 2),  # 14
            Block(w[2], w[3], 2),  # 7
            Block(w[3], w[4], 1),  # 7
        )
        self.head = nn.Linear(w[4], 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stages(self.stem(x))
        return self.head(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def count_flops(model: nn.Module, size: int = 112) -> float:
    """Multiply-accumulates x2 of convs and linears for one input (hooks)."""
    total = [0.0]

    def hook(mod, inp, out):
        if isinstance(mod, nn.Conv2d):
            k = mod.kernel_size[0] * mod.kernel_size[1] * mod.in_channels // mod.groups
            total[0] += 2.0 * k * out.numel()
        elif isinstance(mod, nn.Linear):
            total[0] += 2.0 * mod.in_features * mod.out_features

    hs = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    with torch.no_grad():
        model.eval()(torch.zeros(1, 3, size, size))
    for h in hs:
        h.remove()
    return total[0]


# ---------------------------------------------------------------------- data
def batch_producer(crops: np.ndarray, points: np.ndarray, idx: np.ndarray, batch_pairs: int, steps: int,
                   seed: int, out: queue.Queue) -> None:
    """Background thread: ``steps`` batches of freshly self-blended pairs.

    OpenCV releases the GIL, so this overlaps with the torch step. The order
    of faces is a seeded reshuffle per pass, so a run is reproducible.
    """
    rng = np.random.default_rng(seed)
    order = rng.permutation(idx)
    pos = 0
    for _ in range(steps):
        if pos + batch_pairs > len(order):
            order, pos = rng.permutation(idx), 0
        sel = order[pos:pos + batch_pairs]
        pos += batch_pairs
        xs, ys = [], []
        for i in sel:
            r, f = make_pair(crops[i], points[i], rng)
            xs += [r, f]
            ys += [0.0, 1.0]
        out.put((preprocess(np.stack(xs)), np.asarray(ys, dtype=np.float32)))
    out.put(None)


def heldout_set(crops: np.ndarray, points: np.ndarray, idx: np.ndarray, seed: int,
                strong: bool) -> tuple[np.ndarray, np.ndarray]:
    """Fixed validation set: each held-out face once genuine, once blended (own seed, never trained on)."""
    rng = np.random.default_rng(10_000 + seed)
    xs, ys = [], []
    for i in idx:
        fake, _ = self_blend(crops[i], points[i], rng)
        xs += [global_augment(crops[i], rng, strong), global_augment(fake, rng, strong)]
        ys += [0, 1]
    return np.stack(xs), np.asarray(ys)


@torch.no_grad()
def predict_torch(model: nn.Module, crops: np.ndarray, bs: int = 128) -> np.ndarray:
    model.eval()
    out = [model(torch.from_numpy(preprocess(crops[i:i + bs]))).numpy().reshape(-1) for i in range(0, len(crops), bs)]
    return np.concatenate(out)


def load_video_frames(manifest: Path, groups: list[str], fps: float, cache_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """Crops + landmarks of the *real* clips of the listed manifest groups (fakes are never read)."""
    from detector.training.sbi_eval import read_manifest

    groups_set = {g.strip() for g in groups if g.strip()}
    rows = [r for r in read_manifest(manifest) if r["group"] in groups_set and r["label"] == "real"]
    missing = groups_set - {r["group"] for r in rows}
    if missing:
        raise SystemExit(f"no real clips for groups {sorted(missing)} in {manifest}")
    cs, ps = [], []
    for r in rows:
        c, p = video_face_crops(r["abspath"], fps, cache_dir)
        cs.append(c)
        ps.append(p)
    return np.concatenate(cs), np.concatenate(ps)


# -------------------------------------------------------------------- export
def export_onnx(model: nn.Module, path: Path) -> None:
    import onnx
    import onnxruntime as ort

    model.eval()
    path.parent.mkdir(parents=True, exist_ok=True)
    dummy = torch.from_numpy(preprocess(np.random.default_rng(0).integers(0, 256, (4, 112, 112, 3), dtype=np.uint8)))
    torch.onnx.export(model, (dummy,), str(path), input_names=["input"], output_names=["logit"], opset_version=17,
                      dynamic_axes={"input": {0: "batch"}, "logit": {0: "batch"}}, dynamo=False)
    m = onnx.load(str(path))
    onnx.checker.check_model(m)
    m.doc_string = (f"Self-blend face model (detector.training.sbi_train). Input: aligned 112x112 RGB crop, "
                    f"x = (rgb/255 - {MEAN.tolist()}) / {STD.tolist()}, NCHW float32. Output: fake logit.")
    onnx.save(m, str(path))
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        ref = model(dummy).numpy()
    got = sess.run(["logit"], {"input": dummy.numpy()})[0]
    if got.shape != (4, 1) or not np.allclose(ref, got, atol=1e-3, rtol=1e-3):
        raise RuntimeError(f"onnxruntime disagrees with torch: max |diff| {np.abs(ref - got).max()}")
    log.info("exported %s (%.2f MB), ORT max |diff| vs torch %.2e", path, path.stat().st_size / 1e6,
             float(np.abs(ref - got).max()))


# --------------------------------------------------------------------- train
def train(args: argparse.Namespace) -> dict[str, float]:
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(1)
    names, crops, points = load_face_crops(args.faces, args.cache_dir)
    held = split_names(names, args.val_fraction)
    tr_idx, va_idx = np.flatnonzero(~held), np.flatnonzero(held)
    if args.limit:
        tr_idx, va_idx = tr_idx[:args.limit], va_idx[:max(50, args.limit // 10)]
    log.info("%d faces: %d train, %d held out", len(names), len(tr_idx), len(va_idx))
    if args.video_groups:
        vc, vp = load_video_frames(args.video_manifest, args.video_groups.split(","), args.video_fps, args.cache_dir)
        # video frames are repeated so they make up about half of every epoch:
        # they carry the target domain (video codec, upscaled small faces)
        tr_idx = np.concatenate([tr_idx] + [len(crops) + np.arange(len(vc))] * args.video_repeat)
        crops, points = np.concatenate([crops, vc]), np.concatenate([points, vp])
        log.info("+ %d genuine video frames from groups %s: %d training crops", len(vc), args.video_groups,
                 len(tr_idx))

    model = SBINet()
    n_params = sum(p.numel() for p in model.parameters())
    flops = count_flops(model)
    log.info("SBINet: %.2fM params, %.3f GFLOPs per crop", n_params / 1e6, flops / 1e9)
    # channels-last convolutions are ~1.5x faster on CPU for this net
    model = model.to(memory_format=torch.channels_last).train()

    pairs = args.batch_size // 2
    steps_per_epoch = max(1, len(tr_idx) // pairs)
    total = steps_per_epoch * args.epochs
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=total, pct_start=0.1)
    q: queue.Queue = queue.Queue(maxsize=6)
    th = threading.Thread(target=batch_producer, daemon=True,
                          args=(crops, points, tr_idx, pairs, total, args.seed, q))
    th.start()

    val_x, val_y = heldout_set(crops, points, va_idx, args.seed, strong=True)
    t0 = time.time()
    step, run_loss = 0, 0.0
    deadline = t0 + args.max_minutes * 60 if args.max_minutes else math.inf
    stopped_early = False
    while True:
        item = q.get()
        if item is None:
            break
        x, y = item
        logit = model(torch.from_numpy(x).contiguous(memory_format=torch.channels_last)).reshape(-1)
        loss = F.binary_cross_entropy_with_logits(logit, torch.from_numpy(y))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        step += 1
        lv = float(loss.detach())
        run_loss = 0.98 * run_loss + 0.02 * lv if step > 1 else lv
        if step % steps_per_epoch == 0 or step == total:
            auc = roc_auc(*_split(predict_torch(model, val_x), val_y))
            model.train()
            log.info("epoch %d/%d step %d loss %.4f held-out AUC %.4f (%.1f min)", step // steps_per_epoch,
                     args.epochs, step, run_loss, auc, (time.time() - t0) / 60)
        elif step % 20 == 0:
            log.info("step %d/%d loss %.4f (%.1f s/step)", step, total, run_loss, (time.time() - t0) / step)
        if time.time() > deadline:
            log.warning("--max-minutes reached at step %d/%d; stopping early", step, total)
            stopped_early = True
            break
    train_s = time.time() - t0
    if stopped_early:  # let the producer thread finish its queue put and exit
        while th.is_alive():
            try:
                q.get(timeout=0.5)
            except queue.Empty:
                pass

    strong_auc = roc_auc(*_split(predict_torch(model, val_x), val_y))
    mild_x, mild_y = heldout_set(crops, points, va_idx, args.seed, strong=False)
    mild_auc = roc_auc(*_split(predict_torch(model, mild_x), mild_y))
    export_onnx(model.to(memory_format=torch.contiguous_format), args.out)
    res = {"train_minutes": train_s / 60, "steps": step, "params": n_params, "gflops": flops / 1e9,
           "heldout_auc_compressed": strong_auc, "heldout_auc_clean": mild_auc,
           "n_train": len(tr_idx), "n_heldout": len(va_idx)}
    write_metadata(args, res)
    return res


def write_metadata(args: argparse.Namespace, res: dict[str, float]) -> Path:
    """``<out>.json`` beside the model: provenance, and the dev groups whose genuine clips it saw.

    :func:`detector.evaluation.seen_groups` reads ``training_groups`` so that
    evaluation and fusion fitting leave that footage out.
    """
    import json

    groups = [g for g in args.video_groups.split(",") if g]
    meta = {
        "model": args.out.name,
        "task": "genuine (0) vs self-blended (1) aligned 112x112 face crop; output 'logit'",
        "input": {"name": "input", "layout": "NCHW", "dtype": "float32", "size": 112,
                  "normalisation": f"(rgb / 255 - {MEAN.tolist()}) / {STD.tolist()}"},
        "training_groups": groups,
        "training_manifest": str(args.video_manifest) if groups else None,
        "seed": args.seed, "epochs": args.epochs,
        **{k: (float(v) if isinstance(v, (float, np.floating)) else v) for k, v in res.items()},
    }
    path = args.out.with_suffix(".json")
    path.write_text(json.dumps(meta, indent=2) + "\n")
    return path


def _split(scores: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return scores[y == 1], scores[y == 0]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m detector.training.sbi_train", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--faces", type=Path, required=True, help="folder of genuine face photos (*.jpg)")
    ap.add_argument("--out", type=Path, default=Path("models/sbi_face.onnx"))
    ap.add_argument("--epochs", type=int, default=9)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch-size", type=int, default=64, help="crops per batch (half genuine, half blended)")
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--weight-decay", type=float, default=5e-4)
    ap.add_argument("--val-fraction", type=float, default=0.1)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch intra-op threads (the batch-making thread uses one more core)")
    ap.add_argument("--max-minutes", type=float, default=0.0, help="stop training after this long (0: no limit)")
    ap.add_argument("--limit", type=int, default=0, help="train on this many photos only (smoke tests)")
    ap.add_argument("--video-manifest", type=Path, default=Path("../shared/data/dev/manifest.csv"))
    ap.add_argument("--video-groups", default=",".join(TRAIN_VIDEO_GROUPS),
                    help="comma-separated manifest groups whose REAL clips are added as genuine training faces "
                         "(these groups must then be excluded from every reported dev number)")
    ap.add_argument("--video-fps", type=float, default=8.0)
    ap.add_argument("--video-repeat", type=int, default=2, help="times each video frame appears per epoch")
    ap.add_argument("--cache-dir", type=Path, default=Path("/tmp/detector_cache"))
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    res = train(args)
    print(f"trained {res['steps']} steps in {res['train_minutes']:.1f} min on {res['n_train']} crops per epoch; "
          f"{res['params'] / 1e6:.2f}M params, {res['gflops']:.3f} GFLOPs/crop")
    print(f"held-out AUC ({res['n_heldout']} photos, genuine vs freshly self-blended): "
          f"compressed {res['heldout_auc_compressed']:.4f}, clean {res['heldout_auc_clean']:.4f}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
