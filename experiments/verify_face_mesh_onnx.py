"""Check ``models/face_mesh_features.onnx`` against the TFLite network it was converted from.

Runs MediaPipe's ``face_landmark.tflite`` with the TFLite interpreter
(``ai-edge-litert``, not a project dependency, so this runs in a venv of its
own) and the ONNX model with onnxruntime on the same inputs: a few random
images plus the bundled astronaut portrait cropped around its face. For every
PReLU activation and for the final outputs it prints the max abs difference,
also relative to the tensor's own scale (max abs value). The ONNX graph keeps
the TFLite tensor names, so a copy of the model with those tensors added as
outputs exposes them. The pooled ``features`` output is checked against the
same pooling done in numpy on the TFLite activations.

    python3.11 -m venv /tmp/lvenv && /tmp/lvenv/bin/pip install ai-edge-litert tflite -e .
    /tmp/lvenv/bin/python experiments/verify_face_mesh_onnx.py [--model models/face_mesh_features.onnx]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from detector.training.face_mesh_onnx import FEATURE_LAYERS, default_tflite_path  # noqa: E402


def portrait_crop() -> np.ndarray:
    """The bundled portrait cut to a square 1.5x the Face Mesh landmark box, resized to 192 (RGB uint8)."""
    import cv2

    from detector.synth import load_portrait, portrait_landmarks

    img = load_portrait()
    pts = portrait_landmarks(img)[:468]
    (x0, y0), (x1, y1) = pts.min(0), pts.max(0)
    cx, cy, half = (x0 + x1) / 2, (y0 + y1) / 2, 0.75 * max(x1 - x0, y1 - y0)
    s = 192 / (2 * half)
    m = np.float32([[s, 0, 96 - cx * s], [0, s, 96 - cy * s]])
    return cv2.warpAffine(img, m, (192, 192), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def main(argv: list[str] | None = None) -> int:
    import onnx
    import onnxruntime as ort
    from ai_edge_litert.interpreter import Interpreter

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", type=Path, default=REPO / "models" / "face_mesh_features.onnx")
    ap.add_argument("--tflite", type=Path, default=None)
    args = ap.parse_args(argv)

    it = Interpreter(str(args.tflite or default_tflite_path()), experimental_preserve_all_tensors=True, num_threads=2)
    it.allocate_tensors()
    details = {d["name"]: d["index"] for d in it.get_tensor_details()}
    prelus = sorted((n for n in details if n.startswith("p_re_lu_") and "/" not in n),
                    key=lambda n: int(n.split("_")[-1]))
    out_idx = {d["name"]: d["index"] for d in it.get_output_details()}
    lm_name = next(n for n in out_idx if np.prod(it.get_tensor(out_idx[n]).shape) == 1404)
    flag_name = next(n for n in out_idx if n != lm_name)

    model = onnx.load(str(args.model))
    for n in prelus:  # expose the intermediate activations (NCHW in ONNX)
        model.graph.output.append(onnx.helper.make_empty_tensor_value_info(n))
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]

    rng = np.random.default_rng(0)
    images = {f"random{i}": rng.random((192, 192, 3), dtype=np.float32) for i in range(3)}
    images["portrait"] = portrait_crop().astype(np.float32) / 255.0

    worst: dict[str, tuple[float, float]] = {}  # tensor -> (max abs diff, max abs value)

    def record(key: str, ref: np.ndarray, got: np.ndarray) -> None:
        d, s = float(np.abs(ref - got).max()), float(np.abs(ref).max())
        pd, ps = worst.get(key, (0.0, 0.0))
        worst[key] = (max(d, pd), max(s, ps))

    for label, x in images.items():
        it.set_tensor(it.get_input_details()[0]["index"], x[None])
        it.invoke()
        res = dict(zip(names, sess.run(None, {"input": x.transpose(2, 0, 1)[None]})))
        ref_feats = []
        for n in prelus:
            ref = it.get_tensor(details[n])[0]  # HWC
            record(n, ref, res[n][0].transpose(1, 2, 0))
        for n, with_std in FEATURE_LAYERS:
            a = it.get_tensor(details[n])[0].astype(np.float64)
            ref_feats.append(a.mean((0, 1)))
            if with_std:
                ref_feats.append(a.std((0, 1)))
        record("features", np.concatenate(ref_feats), res["features"][0])
        lm = it.get_tensor(out_idx[lm_name]).reshape(-1)
        record("landmarks", lm, res["landmarks"][0])
        flag = it.get_tensor(out_idx[flag_name]).reshape(-1)
        record("face_flag", flag, res["face_flag"][0])
        print(f"{label:9s} face_flag tflite {flag[0]:+.4f} onnx {res['face_flag'][0, 0]:+.4f}")

    print(f"\n{'tensor':12s} {'max|diff|':>10s} {'max|ref|':>10s} {'relative':>10s}")
    bad = 0
    for k, (d, s) in worst.items():
        rel = d / max(s, 1e-12)
        bad += rel >= 1e-3
        print(f"{k:12s} {d:10.2e} {s:10.3g} {rel:10.2e}")
    print(f"\n{len(worst)} tensors over {len(images)} images; worst relative diff "
          f"{max(d / max(s, 1e-12) for d, s in worst.values()):.2e} ({'FAIL' if bad else 'OK'}: target < 1e-3)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
