"""Probe: would another pooling of the face_cnn network's layers carry more evidence? (ships nothing)

``models/face_mesh_features.onnx`` pools four PReLU layers of MediaPipe's Face Mesh network into 448 values per
crop: spatial means, plus spatial std for the two early layers. Blending seams sit at the face's edge and
rendering flaws can be local, so this compares, with the same linear probe, the shipped pooling against
``region`` (means over the inner half of each map and over the ring around it), ``max`` (spatial max) and
``std_all`` (spatial std of all four layers), alone and added to the shipped vector. Crops: the aligned largest
face at 2 per second (every 5th of the 10 fps cache under /tmp/detector_cache), averaged per clip; probe: a
logistic read-out under grouped CV with groups merged by shared DeepFaceLive celebrity model (27 groups, 5 folds,
3 fold assignments), as ``experiments/backbone_probe.py`` does. Prints overall/DeepFaceLive AUC per penalty::

    python experiments/pooling_probe.py
"""
import csv
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from detector.checks.embedding import FaceMeshFeatures  # noqa: E402
from detector.evaluation import group_folds  # noqa: E402
from detector.fusion.logistic import fit_logistic, roc_auc  # noqa: E402
from detector.paths import models_dir  # noqa: E402
from detector.training.faces_cache import cached_largest_face_crops  # noqa: E402
from detector.training.supervised_probe import merged_groups  # noqa: E402

MAN = Path(__file__).resolve().parents[2] / 'shared/data/dev/manifest.csv'
rows = list(csv.DictReader(open(MAN)))
for r in rows: r['abspath'] = str(MAN.parent / r['path'])
m = onnx.load(str(models_dir() / 'face_mesh_features.onnx'))
layers = ['p_re_lu_6', 'p_re_lu_9', 'p_re_lu_12', 'p_re_lu_14']
for l in layers:
    m.graph.output.append(onnx.helper.make_tensor_value_info(l, onnx.TensorProto.FLOAT, None))
so = ort.SessionOptions(); so.intra_op_num_threads = 2
sess = ort.InferenceSession(m.SerializeToString(), so)
def pools(maps):
    out = {}
    for name, fm in zip(layers, maps):
        n, c, h, w = fm.shape
        yy, xx = np.mgrid[:h, :w]
        inner = (np.abs(yy - (h - 1) / 2) < h / 4) & (np.abs(xx - (w - 1) / 2) < w / 4)
        out.setdefault('region', []).append(np.concatenate([fm[:, :, inner].mean(2), fm[:, :, ~inner].mean(2)], 1))
        out.setdefault('max', []).append(fm.reshape(n, c, -1).max(2))
        out.setdefault('std_all', []).append(fm.reshape(n, c, -1).std(2))
    return {k: np.concatenate(v, 1) for k, v in out.items()}
X = {}
for r in rows:
    t, c, p = cached_largest_face_crops(r['abspath'], 10.0, Path('/tmp/detector_cache'))
    c = c[::5]
    if len(c) == 0:
        continue
    res = sess.run(None, {'input': FaceMeshFeatures.preprocess(c)})
    feats, maps = res[0], res[3:]
    d = pools(maps); d['shipped'] = feats
    for k, v in d.items():
        X.setdefault(k, {})[r['path']] = v.mean(0)
kept = [r for r in rows if r['path'] in X['shipped']]
y = np.array([r['label'] == 'fake' for r in kept]); dfl = np.array([r['source'] == 'DeepFaceLive' for r in kept])
groups = merged_groups(kept, 'celeb model')
print(len(kept), 'clips', len(set(groups)), 'merged groups')
def probe(x):
    res = []
    for l2 in (1.0, 10.0, 100.0):
        s = np.zeros(len(kept))
        for seed in range(3):
            for test in group_folds(groups, 5, seed):
                s[test] += fit_logistic(x[~test], y[~test].astype(float), l2=l2).decision(x[test])
        res.append(f'l2={l2:g}: {roc_auc(y, s):.3f}/{roc_auc(y[dfl], s[dfl]):.3f}')
    return '  '.join(res)
for k in ['shipped', 'region', 'max', 'std_all']:
    x = np.stack([X[k][r['path']] for r in kept]); print(f'{k:10s} dims {x.shape[1]:4d}', probe(x))
x = np.hstack([np.stack([X[k][r['path']] for r in kept]) for k in ['shipped', 'region']]); print('shipped+region', probe(x))
x = np.hstack([np.stack([X[k][r['path']] for r in kept]) for k in ['shipped', 'max']]); print('shipped+max', probe(x))
