"""Self-blended images on the *pretrained* Face Mesh backbone, fine-tuned (experiment, ships nothing)

The README's probes left one combination unmeasured: the SBI recipe (train only
on genuine faces and their self-blends, Shiohara and Yamasaki 2022; never a
fake) with the backbone's weights free to move. Trained from scratch, SBI
scored the dev videos at chance (0.50); a linear head on the *frozen* Face Mesh
features at 0.527. This script fine-tunes the Face Mesh network
(:mod:`face_mesh_finetune`'s torch copy of the committed ONNX graph) on genuine
photos and their self-blends (``detector.training.self_blend``, the same
generator the shipped SBI model used), then scores every dev clip: no dev clip
is trained on, so all 72 count.

Three steps; the middle one wants a GPU (12 data workers make the pairs)::

    python experiments/face_mesh_sbi.py pack --faces ../shared/data/faces/utkface_adults --out /tmp/sbi/photos.npz --limit 2500
    python experiments/face_mesh_sbi.py train --data /tmp/sbi/photos.npz --out /tmp/sbi --mode frozen finetune --steps 3000
    python experiments/face_mesh_sbi.py score --weights /tmp/sbi/sbi_finetune.pt --crops /tmp/ft/crops.npz --json /tmp/sbi/scores.json
    python experiments/stack_probe.py --manifest ../shared/data/dev/manifest.csv \
        --scores runs/eval-stream/scores.csv --features /tmp/sbi/scores.json --names sbi_finetune.pt

``--crops`` is the pack of dev-clip crops that ``experiments/face_mesh_finetune.py --pack`` writes.

The photos are third-party data: packs and weights stay outside the repository.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import types
from pathlib import Path

import numpy as np
import torch  # the train extra: this experiment trains

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
import face_mesh_finetune as fmf  # noqa: E402


def _import_self_blend():
    """detector.training.self_blend without running detector/__init__ (needs PyAV and MediaPipe, absent on a GPU box)."""
    for name, sub in (("detector", "detector"), ("detector.faces", "detector/faces"),
                      ("detector.training", "detector/training")):
        if name not in sys.modules:
            m = types.ModuleType(name)
            m.__path__ = [str(ROOT / sub)]
            sys.modules[name] = m
    from detector.training import self_blend

    return self_blend


def pack(faces: Path, out: Path, limit: int) -> None:
    import cv2

    from detector.training.faces_cache import load_face_crops, split_names

    names, crops, points = load_face_crops(faces)
    held = split_names(names)
    rng = np.random.default_rng(0)
    train = rng.permutation(np.flatnonzero(~held))[:limit]
    sel = np.concatenate([train, np.flatnonzero(held)[: max(200, limit // 10)]])
    blobs = [cv2.imencode(".webp", np.ascontiguousarray(crops[i]).astype(np.uint8), [cv2.IMWRITE_WEBP_QUALITY, 101])[1]
             .tobytes() for i in sel]
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(out, webp=np.frombuffer(b"".join(blobs), np.uint8), ends=np.cumsum([len(b) for b in blobs]),
             points=points[sel].astype(np.float16), heldout=np.isin(sel, np.flatnonzero(held)))


class Pairs(torch.utils.data.IterableDataset):
    """An endless stream of (images uint8 (2B,112,112,3), labels) batches of genuine/self-blended pairs."""

    def __init__(self, crops, points, batch_pairs, seed):
        super().__init__()
        self.crops, self.points, self.batch_pairs, self.seed = crops, points, batch_pairs, seed

    def __iter__(self):
        sb = _import_self_blend()
        info = torch.utils.data.get_worker_info()
        rng = np.random.default_rng(self.seed + (info.id if info else 0) * 7919)
        while True:
            xs, ys = [], []
            for i in rng.integers(0, len(self.crops), self.batch_pairs):
                r, f = sb.make_pair(self.crops[i], self.points[i].astype(np.float32), rng)
                xs += [r, f]
                ys += [0.0, 1.0]
            yield torch.from_numpy(np.stack(xs)), torch.tensor(ys)


def heldout_pairs(crops, points, seed=10_000):
    sb = _import_self_blend()
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for c, p in zip(crops, points):
        r, f = sb.make_pair(c, p.astype(np.float32), rng)
        xs += [r, f]
        ys += [0, 1]
    return np.stack(xs), np.array(ys, bool)


def make_model(torch, mu, sd):
    nn = torch.nn
    backbone = fmf.build_backbone(torch)
    head = nn.Linear(448, 1)

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.backbone, self.head = backbone, head
            self.register_buffer("mu", mu)
            self.register_buffer("sd", sd)

        def forward(self, u8):
            x = fmf.prep(torch, u8, self.mu.device, None)
            return self.head((fmf.pooled(torch, self.backbone(x)) - self.mu) / self.sd).squeeze(1)

    return Model()


def logits(torch, model, u8: np.ndarray, bs: int = 256) -> np.ndarray:
    model.eval()
    with torch.no_grad():
        return np.concatenate([model(torch.from_numpy(u8[i:i + bs])).float().cpu().numpy()
                               for i in range(0, len(u8), bs)])


def train(a) -> None:
    device = "cuda" if torch.cuda.is_available() else "cpu"
    z = np.load(a.data)
    crops = fmf.unpack_crops(z["webp"], z["ends"])
    points, held = z["points"], z["heldout"]
    tr_c, tr_p = crops[~held], points[~held]
    hx, hy = heldout_pairs(crops[held], points[held])
    results = {}
    for mode in a.mode:
        torch.manual_seed(a.seed)
        model = make_model(torch, torch.zeros(448), torch.ones(448)).to(device)
        with torch.no_grad():  # standardise the pooled features as the frozen backbone sees genuine faces
            f = torch.cat([fmf.pooled(torch, model.backbone(fmf.prep(torch, torch.from_numpy(tr_c[i:i + 512]),
                                                                      device, None)))
                           for i in range(0, min(len(tr_c), 2048), 512)])
            model.mu.copy_(f.mean(0))
            model.sd.copy_(f.std(0) + 1e-4)
        groups = [{"params": model.head.parameters(), "lr": a.lr_head}]
        if mode == "finetune":
            groups.append({"params": model.backbone.parameters(), "lr": a.lr_backbone})
        else:
            for p in model.backbone.parameters():
                p.requires_grad_(False)
        opt = torch.optim.AdamW(groups, weight_decay=1e-2)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, [g["lr"] for g in groups], total_steps=a.steps)
        loader = torch.utils.data.DataLoader(Pairs(tr_c, tr_p, a.batch_pairs, a.seed), batch_size=None,
                                             num_workers=a.workers,
                                             prefetch_factor=4 if a.workers else None)
        t0 = time.time()
        for step, (xb, yb) in enumerate(loader):
            if step == a.steps:
                break
            x = fmf.prep(torch, xb, device, None)
            if torch.rand(()) < 0.5:
                x = x.flip(3)
            model.train(mode == "finetune")
            lg = model.head((fmf.pooled(torch, model.backbone(x)) - model.mu) / model.sd).squeeze(1)
            loss = torch.nn.functional.binary_cross_entropy_with_logits(lg, yb.to(device))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            if step % 200 == 0:
                print(f"{mode} step {step} loss {float(loss):.3f} ({time.time() - t0:.0f} s)", flush=True)
        held_auc = fmf.roc_auc(*(lambda s: (s[hy], s[~hy]))(logits(torch, model, hx)))
        print(f"{mode}: held-out photos genuine vs self-blend AUC {held_auc:.3f} ({time.time() - t0:.0f} s)", flush=True)
        torch.save({k: v.cpu() for k, v in model.state_dict().items()}, Path(a.out) / f"sbi_{mode}.pt")
        results[mode] = {"heldout_auc": held_auc, "seconds": round(time.time() - t0)}
    (Path(a.out) / "sbi_train.json").write_text(json.dumps({"args": {k: str(v) for k, v in vars(a).items()},
                                                             "results": results}, indent=1))


def score(a) -> None:
    torch.set_num_threads(2)
    z = np.load(a.crops)
    crops = fmf.unpack_crops(z["webp"], z["ends"])
    clip, label, source = z["clip"], z["label"], z["source"]
    per_clip = {}
    for w in a.weights:
        model = make_model(torch, torch.zeros(448), torch.ones(448))
        model.load_state_dict(torch.load(w, map_location="cpu"))
        lg = logits(torch, model, crops)
        s = np.array([lg[clip == c].mean() if (clip == c).any() else np.nan for c in range(len(label))])
        ok = np.isfinite(s)
        dfl = source == "DeepFaceLive"
        print(f"{Path(w).name}: dev AUC {fmf.roc_auc(s[ok & label], s[ok & ~label]):.3f}  "
              f"DFL {fmf.roc_auc(s[ok & label & dfl], s[ok & ~label & dfl]):.3f}  ({int(ok.sum())} clips)")
        for path, v in zip(z["path"].tolist(), s):
            per_clip.setdefault(path, {})[Path(w).name] = None if not np.isfinite(v) else float(v)
    if a.json:  # {clip path: {weights file: mean logit}}, the format experiments/stack_probe.py reads
        a.json.write_text(json.dumps(per_clip, indent=1))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pack")
    p.add_argument("--faces", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--limit", type=int, default=3000)
    t = sub.add_parser("train")
    t.add_argument("--data", type=Path, required=True)
    t.add_argument("--out", type=Path, required=True)
    t.add_argument("--mode", nargs="+", default=["frozen", "finetune"])
    t.add_argument("--steps", type=int, default=1500)
    t.add_argument("--batch-pairs", type=int, default=64)
    t.add_argument("--lr-head", type=float, default=3e-3)
    t.add_argument("--lr-backbone", type=float, default=3e-4)
    t.add_argument("--workers", type=int, default=12)
    t.add_argument("--seed", type=int, default=0)
    s = sub.add_parser("score")
    s.add_argument("--weights", type=Path, nargs="+", required=True)
    s.add_argument("--crops", type=Path, required=True)
    s.add_argument("--json", type=Path, help="write each clip's mean logit per weights file here")
    a = ap.parse_args(argv)
    {"pack": lambda: pack(a.faces, a.out, a.limit), "train": lambda: train(a), "score": lambda: score(a)}[a.cmd]()
    return 0


if __name__ == "__main__":
    sys.exit(main())
