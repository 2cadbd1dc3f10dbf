"""Probe: does a detector that learns autoencoder-rendered skin find the dev set's live swaps? (ships nothing)

DeepFaceLive, DeepFaceLab and the classic FaceSwap all render the swapped face with an autoencoder's decoder, then
colour-match it and blend it into the frame through a feathered mask. Self-blended images (SBI) simulate only the
blend: the pasted face is the person's own, re-coloured and warped. This probe also simulates the *rendering*:

1. ``pack`` (here): aligned 112 px crops and landmarks of genuine photos (``../shared/data/faces``) into one
   lossless-WebP ``.npz`` small enough to carry to the lent GPU machine;
2. ``train`` (GPU machine): a DeepFaceLab-style autoencoder (strided convolutions to 7x7, a 512-value dense
   bottleneck, pixel-shuffle decoder) is trained on the even-numbered photos, then renders every odd-numbered
   photo, which it never saw, the way a swap model renders a face it reconstructs imperfectly; the renders come
   back as a second pack;
3. ``score`` (here): for each odd photo a genuine and a fake version: the fake takes the render inside the face
   oval (eroded, feathered, colour-matched per channel in Lab, as DeepFaceLive's ``rct`` does); both then get the
   same random degradation (downscaled to a 40-112 px face and back, JPEG quality 25-75). A logistic head on the
   shipped ``face_cnn`` features (``models/face_mesh_features.onnx``) learns genuine vs rendered on 80% of the
   photos, reports AUC on the other 20%, and then scores every dev clip (aligned crops at 2 per second, mean
   logit per clip), none of which it saw. It prints AUC overall and on DeepFaceLive, how often the fake is above its
   own original, and writes ``{path: {"ae_logit": ...}}`` for ``experiments/stack_probe.py``.

    python experiments/ae_render_probe.py pack --faces ../shared/data/faces/utkface_adults --out .aedata/photos.npz
    python experiments/ae_render_probe.py train --photos .aedata/photos.npz --out $OUT/renders   # on the GPU
    python experiments/ae_render_probe.py score --photos .aedata/photos.npz --renders RENDERS_DIR \\
        --json /tmp/ae_render.json

The photos are third-party data: packs, renders and weights stay outside the repository (``.aedata/`` is ignored).
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MANIFEST = ROOT.parent / "shared/data/dev/manifest.csv"


def _encode(crops: np.ndarray) -> dict[str, np.ndarray]:
    import cv2

    blobs = [cv2.imencode(".webp", np.ascontiguousarray(c), [cv2.IMWRITE_WEBP_QUALITY, 101])[1].tobytes() for c in crops]
    return {"webp": np.frombuffer(b"".join(blobs), np.uint8), "ends": np.cumsum([len(b) for b in blobs])}


def _decode(z) -> np.ndarray:
    import cv2

    ends = z["ends"]
    starts = np.concatenate([[0], ends[:-1]])
    return np.stack([cv2.imdecode(z["webp"][s:e], cv2.IMREAD_UNCHANGED) for s, e in zip(starts, ends)])


def pack(faces: Path, out: Path, limit: int) -> None:
    sys.path.insert(0, str(ROOT))
    from detector.training.faces_cache import load_face_crops

    names, crops, points = load_face_crops(faces)
    sel = np.random.default_rng(0).permutation(len(names))[:limit]
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(out, **_encode(crops[sel]), points=points[sel, :, :2].astype(np.float16))


def train(photos: Path, out: Path, steps: int, batch: int) -> None:
    import torch
    from torch import nn

    z = np.load(photos)
    crops = _decode(z)
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    x_all = torch.tensor(crops).permute(0, 3, 1, 2).float().div(255.0)
    train_x = x_all[0::2].to(dev)

    def down(i, o):
        return nn.Sequential(nn.Conv2d(i, o, 5, 2, 2), nn.LeakyReLU(0.1))

    def up(i, o):
        return nn.Sequential(nn.Conv2d(i, o * 4, 3, 1, 1), nn.LeakyReLU(0.1), nn.PixelShuffle(2))

    class AE(nn.Module):
        def __init__(self, ch: int = 64, latent: int = 512):
            super().__init__()
            self.enc = nn.Sequential(down(3, ch), down(ch, 2 * ch), down(2 * ch, 4 * ch), down(4 * ch, 8 * ch),
                                     nn.Flatten(), nn.Linear(8 * ch * 49, latent))
            self.fc = nn.Linear(latent, 8 * ch * 49)
            self.dec = nn.Sequential(up(8 * ch, 4 * ch), up(4 * ch, 2 * ch), up(2 * ch, ch), up(ch, ch),
                                     nn.Conv2d(ch, 3, 5, 1, 2), nn.Sigmoid())
            self.ch = ch

        def forward(self, x):
            return self.dec(self.fc(self.enc(x)).view(-1, 8 * self.ch, 7, 7))

    torch.manual_seed(0)
    model = AE().to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=5e-4)
    t0 = time.time()
    for step in range(steps):
        idx = torch.randint(0, len(train_x), (batch,), device=dev)
        xb = train_x[idx]
        flip = torch.rand(batch, device=dev) < 0.5
        xb = torch.where(flip[:, None, None, None], xb.flip(3), xb)
        rec = model(xb)
        loss = (rec - xb).abs().mean() + 10 * ((rec - xb) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 500 == 0 or step == steps - 1:
            print(f"step {step} loss {loss.item():.4f} ({time.time() - t0:.0f} s)", flush=True)
    model.eval()

    def render(x: torch.Tensor) -> np.ndarray:
        with torch.no_grad():
            out = [model(x[i:i + 256].to(dev)).clamp(0, 1).mul(255).round().byte().permute(0, 2, 3, 1).cpu()
                   for i in range(0, len(x), 256)]
        return torch.cat(out).numpy()

    def error(x: torch.Tensor, r: np.ndarray) -> float:
        return float(np.abs(r.astype(float) - x.permute(0, 2, 3, 1).mul(255).numpy()).mean())

    seen = x_all[0::2][:500]
    renders = render(x_all[1::2])  # only the photos the autoencoder never saw are used
    print(f"mean abs error (0-255), photos it trained on / never saw: {error(seen, render(seen)):.2f} / "
          f"{error(x_all[1::2], renders):.2f}")
    # shards: a device transfer brings back files of at most 16 MiB
    out.mkdir(parents=True, exist_ok=True)
    for k, start in enumerate(range(0, len(renders), 500)):
        np.savez(out / f"renders_{k}.npz", **_encode(renders[start:start + 500]))


def _degrade(img: np.ndarray, face_px: float, quality: int) -> np.ndarray:
    import cv2

    s = max(face_px / img.shape[0], 0.1)
    small = cv2.resize(img, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
    back = cv2.resize(small, (img.shape[1], img.shape[0]), interpolation=cv2.INTER_LINEAR)
    ok, buf = cv2.imencode(".jpg", back, [cv2.IMWRITE_JPEG_QUALITY, quality])
    return cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)


def _rendered(orig: np.ndarray, render: np.ndarray, pts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The render pasted into the photo's face oval: eroded, feathered and colour-matched in Lab."""
    import cv2

    sys.path.insert(0, str(ROOT))
    from detector.faces.regions import FACE_OVAL

    mask = np.zeros(orig.shape[:2], np.uint8)
    cv2.fillConvexPoly(mask, cv2.convexHull(np.round(pts[FACE_OVAL]).astype(np.int32)), 255)
    k = int(rng.integers(3, 9))
    mask = cv2.erode(mask, np.ones((k, k), np.uint8))
    m = cv2.GaussianBlur(mask.astype(np.float32) / 255, (0, 0), float(rng.uniform(2, 5)))[..., None]
    lab_o = cv2.cvtColor(orig, cv2.COLOR_RGB2LAB).astype(np.float32)
    lab_r = cv2.cvtColor(render, cv2.COLOR_RGB2LAB).astype(np.float32)
    inside = mask > 127
    if inside.sum() > 20:
        mo, so = lab_o[inside].mean(0), lab_o[inside].std(0) + 1e-3
        mr, sr = lab_r[inside].mean(0), lab_r[inside].std(0) + 1e-3
        lab_r = (lab_r - mr) / sr * so + mo
    matched = cv2.cvtColor(np.clip(lab_r, 0, 255).astype(np.uint8), cv2.COLOR_LAB2RGB).astype(np.float32)
    return np.clip(m * matched + (1 - m) * orig.astype(np.float32), 0, 255).astype(np.uint8)


def score(photos: Path, renders: Path, json_out: Path | None) -> None:
    sys.path.insert(0, str(ROOT))
    from detector.checks.embedding import FaceMeshFeatures, FaceMeshFeaturesOptions
    from detector.fusion.logistic import fit_logistic, roc_auc
    from detector.training.faces_cache import cached_largest_face_crops

    z = np.load(photos)
    crops, pts = _decode(z), z["points"].astype(np.float32)
    shards = sorted(renders.glob("renders_*.npz"), key=lambda q: int(q.stem.split("_")[1]))
    odd = np.arange(1, len(crops), 2)
    rend = np.zeros_like(crops)
    rend[odd] = np.concatenate([_decode(np.load(q)) for q in shards])
    rng = np.random.default_rng(1)
    real, fake = [], []
    for i in odd:
        face_px, q = float(rng.uniform(40, 112)), int(rng.integers(25, 76))
        real.append(_degrade(crops[i], face_px, q))
        fake.append(_degrade(_rendered(crops[i], rend[i], pts[i], rng), face_px, q))
    with FaceMeshFeatures(FaceMeshFeaturesOptions(intra_op_threads=2)) as model:
        fr, ff = model.predict(np.stack(real))[0], model.predict(np.stack(fake))[0]
        split = np.random.default_rng(2).random(len(odd)) < 0.8
        x = np.concatenate([fr[split], ff[split]])
        y = np.r_[np.zeros(split.sum()), np.ones(split.sum())]
        head = fit_logistic(x, y, l2=1.0)
        ho = np.concatenate([fr[~split], ff[~split]])
        print(f"{len(odd)} photos: held-out genuine vs rendered AUC "
              f"{roc_auc(np.r_[np.zeros((~split).sum()), np.ones((~split).sum())], head.decision(ho)):.3f}")
        rows = list(csv.DictReader(open(MANIFEST)))
        feats = {}
        for r in rows:
            _, c, _ = cached_largest_face_crops(str(MANIFEST.parent / r["path"]), 10.0, Path("/tmp/detector_cache"))
            if len(c):
                feats[r["path"]] = {"ae_logit": float(head.decision(model.predict(c[::5])[0]).mean())}
    kept = [r for r in rows if r["path"] in feats]
    yv = np.array([r["label"] == "fake" for r in kept])
    dfl = np.array([r["source"] == "DeepFaceLive" for r in kept])
    v = np.array([feats[r["path"]]["ae_logit"] for r in kept])
    groups = [r["group"] for r in kept]
    above = pairs = 0
    for g in set(groups):
        idx = [j for j, gg in enumerate(groups) if gg == g and dfl[j]]
        f, o = [v[j] for j in idx if yv[j]], [v[j] for j in idx if not yv[j]]
        if f and o:
            pairs += 1
            above += np.mean(f) > np.mean(o)
    print(f"dev clips ({len(kept)}, all unseen): AUC {roc_auc(yv, v):.3f}  DFL {roc_auc(yv[dfl], v[dfl]):.3f}  "
          f"fake above its original in {above}/{pairs} DFL pairs")
    if json_out:
        json_out.write_text(json.dumps(feats))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pack", help="genuine photo crops and landmarks into one .npz")
    p.add_argument("--faces", type=Path, required=True, help="folder of genuine face photos (.jpg)")
    p.add_argument("--out", type=Path, required=True, help="the .npz to write (keep it in an ignored folder)")
    p.add_argument("--limit", type=int, default=3000, help="photos to pack (3,000 is ~53 MB)")
    p = sub.add_parser("train", help="train the autoencoder and render the photos it never saw (GPU)")
    p.add_argument("--photos", type=Path, required=True, help="the pack written by 'pack'")
    p.add_argument("--out", type=Path, required=True, help="folder for the render shards")
    p.add_argument("--steps", type=int, default=6000)
    p.add_argument("--batch", type=int, default=128)
    p = sub.add_parser("score", help="fit the head on photos, score the dev clips")
    p.add_argument("--photos", type=Path, required=True, help="the pack written by 'pack'")
    p.add_argument("--renders", type=Path, required=True, help="folder of renders_*.npz shards")
    p.add_argument("--json", type=Path, default=None)
    a = ap.parse_args(argv)
    if a.cmd == "pack":
        pack(a.faces, a.out, a.limit)
    elif a.cmd == "train":
        train(a.photos, a.out, a.steps, a.batch)
    else:
        score(a.photos, a.renders, a.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
