"""Does fine-tuning the Face Mesh CNN end to end beat a linear read-out of it? (experiment, ships nothing)

The shipped ``face_cnn`` check reads MediaPipe's Face Mesh network
(``models/face_mesh_features.onnx``) frozen: four pooled layers, 448 values a
crop, weighted by the fusion's logistic model. The probe table in experiments/README.md shows
a frozen read-out of this backbone is the only learned signal that moved
grouped-CV AUC (0.715). The open question is whether letting the backbone's
weights move (supervised by the dev set's own real and fake clips) finds more,
or only memorises 72 clips.

This script answers it under the strictest split the probes use: grouped
cross-validation with groups merged when their fakes share a DeepFaceLive
celebrity model (no network is scored on a swap identity it trained on),
comparing on identical folds

* ``frozen``: backbone fixed, the same pooled 448 features, a linear head;
* ``finetune``: the same start and head, backbone trained with a smaller
  learning rate.

The backbone is executed from the committed ONNX graph by a small torch
interpreter (:class:`OnnxBackbone`; Conv, PRelu, MaxPool, channel Pad, Add),
so it starts from exactly the weights inference runs, checked against
onnxruntime at start-up. Crops come from a ``.npz`` made by ``--pack`` from the
crop cache (``detector.training.faces_cache``, outside the repository; dev
clips are third-party data and are never committed)::

    python experiments/face_mesh_finetune.py --pack /tmp/ft/crops.npz --manifest ../shared/data/dev/manifest.csv --fps 5
    python experiments/face_mesh_finetune.py --data /tmp/ft/crops.npz --mode frozen finetune --seeds 0 1 2
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

MODEL = Path(__file__).resolve().parents[1] / "models" / "face_mesh_features.onnx"
POOLED = (("p_re_lu_6", True), ("p_re_lu_9", True), ("p_re_lu_12", False), ("p_re_lu_14", False))


def pack(manifest: Path, fps: float, out: Path, cache_dir: Path) -> None:
    """Collect each clip's cached aligned crops into one compressed file (outside the repo)."""
    from detector.training.faces_cache import cached_largest_face_crops
    from detector.training.sbi_eval import read_manifest
    from detector.training.supervised_probe import merged_groups

    rows = read_manifest(manifest)
    crops, clip, n = [], [], []
    for i, r in enumerate(rows):
        _, c, _ = cached_largest_face_crops(r["abspath"], fps, cache_dir)
        crops.append(c)
        clip.append(np.full(len(c), i, np.int32))
        n.append(len(c))
    # lossless WebP: half the size of zlib on these crops, so the pack fits a device transfer
    import cv2

    blobs = [cv2.imencode(".webp", c, [cv2.IMWRITE_WEBP_QUALITY, 101])[1].tobytes() for c in np.concatenate(crops)]
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(out, webp=np.frombuffer(b"".join(blobs), np.uint8), ends=np.cumsum([len(b) for b in blobs]),
             clip=np.concatenate(clip), label=np.array([r["label"] == "fake" for r in rows]),
             source=np.array([r["source"] for r in rows]), group=np.array(merged_groups(rows, "celeb model")),
             path=np.array([r["path"] for r in rows]))


def unpack_crops(webp: np.ndarray, ends: np.ndarray) -> np.ndarray:
    import cv2

    starts = np.concatenate([[0], ends[:-1]])
    return np.stack([cv2.imdecode(webp[s:e], cv2.IMREAD_COLOR) for s, e in zip(starts, ends)])


def build_backbone(torch, model_path: Path = MODEL):
    import onnx
    from onnx import numpy_helper

    nn, F = torch.nn, torch.nn.functional
    g = onnx.load(str(model_path)).graph
    init = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    by_out = {n.output[0]: n for n in g.node}
    need: list = []
    seen: set[str] = set()

    def visit(name: str) -> None:
        if name in seen or name not in by_out:
            return
        seen.add(name)
        for i in by_out[name].input:
            visit(i)
        need.append(by_out[name])

    for name, _ in POOLED:
        visit(name)

    class OnnxBackbone(nn.Module):
        """The Face Mesh graph up to the pooled layers, weights as trainable parameters."""

        def __init__(self):
            super().__init__()
            self.params = nn.ParameterDict()
            self.consts: dict[str, np.ndarray] = {}
            for n in need:
                for i in n.input[1:]:
                    if i in init and n.op_type in ("Conv", "PRelu"):
                        a = init[i].astype(np.float32)
                        if n.op_type == "PRelu":
                            a = a.reshape(1, -1, 1, 1)
                        self.params[i.replace("/", "__")] = nn.Parameter(torch.from_numpy(a.copy()))
                    elif i in init:
                        self.consts[i] = init[i]

        def p(self, name):
            return self.params[name.replace("/", "__")]

        def forward(self, x):
            env = {"input": x}
            for n in need:
                a = [env.get(i) for i in n.input]
                att = {t.name: onnx.helper.get_attribute_value(t) for t in n.attribute}
                op = n.op_type
                if op == "Identity":
                    y = a[0]
                elif op == "Conv":
                    t, l, b, r = att["pads"]  # onnx: begin_h, begin_w, end_h, end_w
                    xin = F.pad(a[0], (l, r, t, b)) if (t, l) != (b, r) else a[0]
                    pad = 0 if (t, l) != (b, r) else (t, l)
                    y = F.conv2d(xin, self.p(n.input[1]), self.p(n.input[2]), att["strides"], pad,
                                 1, att.get("group", 1))
                elif op == "PRelu":
                    y = torch.where(a[0] >= 0, a[0], a[0] * self.p(n.input[1]))
                elif op == "MaxPool":
                    y = F.max_pool2d(a[0], att["kernel_shape"], att["strides"])
                elif op == "Pad":
                    pads = self.consts[n.input[1]]
                    extra = int(pads[5])  # channel padding after: [0,0,0,0, 0,C,0,0]
                    y = F.pad(a[0], (0, 0, 0, 0, 0, extra))
                elif op == "Add":
                    y = a[0] + a[1]
                else:
                    raise NotImplementedError(op)
                env[n.output[0]] = y
            return [env[name] for name, _ in POOLED]

    return OnnxBackbone()


def pooled(torch, maps):
    f = []
    for (_, std), m in zip(POOLED, maps):
        f.append(m.mean((2, 3)))
        if std:
            f.append(m.std((2, 3), correction=0))
    return torch.cat(f, 1)


def check_against_onnxruntime(torch, backbone, device) -> float:
    import onnxruntime as ort

    rng = np.random.default_rng(0)
    x = rng.random((2, 3, 192, 192), dtype=np.float32)
    sess = ort.InferenceSession(str(MODEL), providers=["CPUExecutionProvider"])
    ref = sess.run(["features"], {"input": x})[0]
    with torch.no_grad():
        got = pooled(torch, backbone(torch.from_numpy(x).to(device))).cpu().numpy()
    return float(np.abs(got - ref).max() / np.abs(ref).max())


def roc_auc(pos: np.ndarray, neg: np.ndarray) -> float:
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    allv = np.concatenate([pos, neg])
    order = allv.argsort(kind="mergesort")
    ranks = np.empty(len(allv))
    ranks[order] = np.arange(1, len(allv) + 1)
    for v in np.unique(allv):  # mid-ranks for ties
        m = allv == v
        ranks[m] = ranks[m].mean()
    return float((ranks[:len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def group_folds(groups: np.ndarray, k: int, seed: int) -> list[np.ndarray]:
    uniq = np.array(sorted(set(groups.tolist())))
    rng = np.random.default_rng(seed)
    rng.shuffle(uniq)
    return [np.isin(groups, uniq[i::k]) for i in range(k)]


def run_fold(torch, data, train_clips, test_clips, mode: str, a, device, seed: int) -> dict[int, float]:
    nn, F = torch.nn, torch.nn.functional
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    backbone = build_backbone(torch).to(device)
    head = nn.Sequential(nn.Dropout(a.dropout), nn.Linear(448, 1)).to(device)
    crops, clip, label = data["crops_t"], data["clip"], data["label"]
    idx = np.where(np.isin(clip, train_clips))[0]
    # feature standardisation from the frozen backbone on the training crops
    with torch.no_grad():
        feats = []
        for i in range(0, len(idx), 512):
            feats.append(pooled(torch, backbone(prep(torch, crops[idx[i:i + 512]], device, None))))
        feats = torch.cat(feats)
        mu, sd = feats.mean(0), feats.std(0) + 1e-4
    w = 1.0 / np.bincount(clip[idx], minlength=len(label))[clip[idx]]
    w = w / w.sum()
    params = [{"params": head.parameters(), "lr": a.lr_head}]
    if mode == "finetune":
        params.append({"params": backbone.parameters(), "lr": a.lr_backbone})
    else:
        for p in backbone.parameters():
            p.requires_grad_(False)
    opt = torch.optim.AdamW(params, weight_decay=a.weight_decay)
    steps = max(1, int(a.epochs * len(idx) / a.batch))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, [g["lr"] for g in params], total_steps=steps)
    y_all = torch.from_numpy(label.astype(np.float32)).to(device)
    for _ in range(steps):
        b = rng.choice(idx, a.batch, p=w)
        x = prep(torch, crops[b], device, rng)
        backbone.train(mode == "finetune")
        head.train()
        logit = head((pooled(torch, backbone(x)) - mu) / sd).squeeze(1)
        loss = F.binary_cross_entropy_with_logits(logit, y_all[torch.from_numpy(clip[b]).long().to(device)])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    backbone.eval()
    head.eval()
    out = {}
    with torch.no_grad():
        for c in test_clips:
            ci = np.where(clip == c)[0]
            if len(ci) == 0:
                continue
            lg = torch.cat([head((pooled(torch, backbone(prep(torch, crops[ci[i:i + 512]], device, None))) - mu) / sd)
                            for i in range(0, len(ci), 512)]).squeeze(1)
            out[int(c)] = float(lg.mean())
    return out


def prep(torch, u8, device, rng):
    """uint8 (N,112,112,3) tensor -> float (N,3,192,192) in [0,1]; flips and shifts when training."""
    x = u8.to(device, non_blocking=True).permute(0, 3, 1, 2).float() / 255.0
    if rng is not None:
        if rng.random() < 0.5:
            x = x.flip(3)
        dy, dx = (int(v) for v in rng.integers(-4, 5, 2))
        x = torch.roll(x, (dy, dx), (2, 3))
    return torch.nn.functional.interpolate(x, size=(192, 192), mode="bilinear", align_corners=False)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pack", type=Path, help="write crops from the cache to this .npz and stop")
    ap.add_argument("--manifest", type=Path)
    ap.add_argument("--fps", type=float, default=5.0)
    ap.add_argument("--cache-dir", type=Path, default=Path("/tmp/detector_cache"))
    ap.add_argument("--data", type=Path)
    ap.add_argument("--mode", nargs="+", default=["frozen", "finetune"])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--epochs", type=float, default=4.0)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr-head", type=float, default=3e-3)
    ap.add_argument("--lr-backbone", type=float, default=1e-4)
    ap.add_argument("--weight-decay", type=float, default=1e-2)
    ap.add_argument("--dropout", type=float, default=0.2)
    ap.add_argument("--max-clips", type=int, default=0, help="only this many clips (a speed check)")
    ap.add_argument("--json", type=Path)
    a = ap.parse_args(argv)
    if a.pack:
        pack(a.manifest, a.fps, a.pack, a.cache_dir)
        return 0
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    z = np.load(a.data)
    data = {k: z[k] for k in z.files if k not in ("webp", "ends")}
    data["crops"] = unpack_crops(z["webp"], z["ends"])
    if a.max_clips:
        keep = data["clip"] < a.max_clips
        data["crops"], data["clip"] = data["crops"][keep], data["clip"][keep]
        for k in ("label", "source", "group", "path"):
            data[k] = data[k][:a.max_clips]
    data["crops_t"] = torch.from_numpy(data["crops"])
    if device == "cuda":
        data["crops_t"] = data["crops_t"].to(device)
    err = check_against_onnxruntime(torch, build_backbone(torch).to(device), device)
    print(f"device {device}; torch backbone vs onnxruntime features: max relative difference {err:.2e}; "
          f"{len(data['crops'])} crops of {len(data['label'])} clips, {len(set(data['group'].tolist()))} merged groups",
          flush=True)
    if err > 1e-3:
        raise SystemExit("backbone does not reproduce the ONNX model")
    label, groups, source = data["label"], data["group"], data["source"]
    results = {}
    for mode in a.mode:
        per_seed = []
        for seed in a.seeds:
            t0 = time.time()
            scores = np.full(len(label), np.nan)
            for fold, test in enumerate(group_folds(groups, a.folds, seed)):
                tr, te = np.where(~test)[0], np.where(test)[0]
                for c, s in run_fold(torch, data, tr, te, mode, a, device, seed * 100 + fold).items():
                    scores[c] = s
            ok = np.isfinite(scores)
            res = {"overall": roc_auc(scores[ok & label], scores[ok & ~label])}
            for name, sel in (("DeepFaceLive", source == "DeepFaceLive"),
                              ("FF++", np.char.startswith(source.astype(str), "FaceForensics++"))):
                res[name] = roc_auc(scores[ok & sel & label], scores[ok & sel & ~label])
            res["seconds"] = round(time.time() - t0, 1)
            res["scores"] = [None if not np.isfinite(s) else round(float(s), 4) for s in scores]
            per_seed.append(res)
            print(f"{mode:8s} seed {seed}: AUC {res['overall']:.3f}  DFL {res['DeepFaceLive']:.3f}  "
                  f"FF++ {res['FF++']:.3f}  ({res['seconds']} s)", flush=True)
        mean_scores = np.nanmean(np.array([[np.nan if s is None else s for s in r["scores"]] for r in per_seed]), 0)
        ok = np.isfinite(mean_scores)
        summary = {k: float(np.mean([r[k] for r in per_seed])) for k in ("overall", "DeepFaceLive", "FF++")}
        summary["seed_averaged_scores_auc"] = roc_auc(mean_scores[ok & label], mean_scores[ok & ~label])
        results[mode] = {"per_seed": per_seed, "summary": summary}
        print(f"{mode:8s} mean over seeds: " + ", ".join(f"{k} {v:.3f}" for k, v in summary.items()), flush=True)
    if a.json:
        a.json.write_text(json.dumps({"options": {k: str(v) for k, v in vars(a).items()}, "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
