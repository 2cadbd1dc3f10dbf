"""Probe: do two landmark networks disagree differently on a swapped face? (ships nothing)

The pipeline's landmarks come from MediaPipe's attention Face Mesh (478 points, run on the frame); the
``face_cnn`` model is MediaPipe's other, plain Face Mesh network (468 points, run on the aligned crop). Both
were trained on filmed faces, so on a rendered face they might disagree more. On aligned crops of the largest face
at 10 fps (the cache under /tmp/detector_cache) this scores per clip, in inter-ocular units, the median
disagreement over all 468 shared points (``all``), over the inner face and over the face oval once the mean
offset is removed (``inner``, ``oval``), their ratio, and how much the disagreement field changes between
consecutive frames (``flicker``); it prints each one's AUC and how often the DeepFaceLive fake is below its own
original, and writes /tmp/landmark_disagreement.json for ``experiments/stack_probe.py``::

    python experiments/landmark_disagreement_probe.py
"""
import csv
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from detector.checks.embedding import FaceMeshFeatures, FaceMeshFeaturesOptions  # noqa: E402
from detector.faces.regions import FACE_OVAL  # noqa: E402
from detector.fusion.logistic import roc_auc  # noqa: E402
from detector.training.faces_cache import cached_largest_face_crops  # noqa: E402

MAN = Path(__file__).resolve().parents[2] / 'shared/data/dev/manifest.csv'
rows = list(csv.DictReader(open(MAN)))
feats = {}
m = FaceMeshFeatures(FaceMeshFeaturesOptions())
oval = np.array(FACE_OVAL)
inner = np.setdiff1d(np.arange(468), oval)
for r in rows:
    t, c, p = cached_largest_face_crops(str(MAN.parent / r['path']), 10.0, Path('/tmp/detector_cache'))
    if len(t) < 10: continue
    x = m.preprocess(c)  # 112 px aligned crops resized to the network's 192
    out = m._session.run(["landmarks"], {"input": x})[0].reshape(-1, 468, 3)[:, :, :2] * (112 / 192)
    mp = p[:, :468, :2]
    iod = np.linalg.norm(mp[:, 33] - mp[:, 263], axis=1)[:, None]
    d = np.linalg.norm(out - mp, axis=2) / iod  # (T, 468)
    # remove the per-frame mean offset between the two point sets (translation only)
    off = (out - mp).mean(1, keepdims=True)
    d2 = np.linalg.norm(out - mp - off, axis=2) / iod
    # temporal: change of the disagreement field between consecutive frames
    e = out - mp - off
    dd = np.linalg.norm(np.diff(e, axis=0), axis=2).mean(1) / iod[1:, 0]
    feats[r['path']] = {'all': float(np.log(np.median(d.mean(1)))), 'inner': float(np.log(np.median(d2[:, inner].mean(1)))),
                        'oval': float(np.log(np.median(d2[:, oval].mean(1)))),
                        'oval_over_inner': float(np.log(np.median(d2[:, oval].mean(1) / d2[:, inner].mean(1)))),
                        'flicker': float(np.log(np.median(dd)))}
json.dump(feats, open('/tmp/landmark_disagreement.json', 'w'))
kept = [r for r in rows if r['path'] in feats]
y = np.array([r['label'] == 'fake' for r in kept]); dfl = np.array([r['source'] == 'DeepFaceLive' for r in kept]); groups = [r['group'] for r in kept]
for n in ['all', 'inner', 'oval', 'oval_over_inner', 'flicker']:
    v = np.array([feats[r['path']][n] for r in kept])
    below = pairs = 0
    for g in set(groups):
        idx = [j for j, gg in enumerate(groups) if gg == g and dfl[j]]
        f = [v[j] for j in idx if y[j]]; o = [v[j] for j in idx if not y[j]]
        if f and o: pairs += 1; below += np.mean(f) < np.mean(o)
    print(f'{n:16s} AUC {roc_auc(y, v):.3f} DFL {roc_auc(y[dfl], v[dfl]):.3f} fake<orig {below}/{pairs}')
