"""Session 13's probe: ``face_cnn`` reads an aligned crop of another size, cut from the frame (ships nothing).

The shipped check reads the pipeline's 112 px aligned crop, enlarged to the network's 192 px input. This runs
``detector eval`` (grouped CV, fitted also on the re-encoded copies, as shipped) with the check reading its own
aligned crop of ``--size`` px instead, cut from the frame and anti-aliased the same way; every other check keeps
the 112 px crop. Then the 12-assignment figure comes from the same cache::

    python experiments/face_cnn_crop_probe.py --size 192 --out runs/eval-c192 --copies-dir runs/eval-aug/copies
    python experiments/fold_assignment_spread.py --cache runs/eval-c192/features.jsonl --copies-dir runs/eval-aug/copies

(``--size 80``, ``--out runs/eval-c80``: the second arm). Results and the rule they were judged by are in
``experiments/README.md``. The feature cache's key does not know the crop size, so each size needs an ``--out``
of its own; never point it at a shipped run's folder. The patched ``update`` cuts the larger crop for every
analysed frame, not only for the two a second the check samples (the same features, about five times the crop
work), so the probe is no measure of speed.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from detector.checks.base import FaceObservation, SampledCropCheck  # noqa: E402
from detector.checks.embedding import FaceAppearanceCheck  # noqa: E402
from detector.eval_cli import run_eval  # noqa: E402
from detector.faces.regions import align_face  # noqa: E402

#: carries the size to the eval's worker processes: ``spawn`` re-runs this module's top level in each of them
SIZE_ENV = "FACE_CNN_CROP_PROBE_SIZE"


def install(size: int) -> None:
    """Make :class:`FaceAppearanceCheck` read a ``size`` px aligned crop cut from the frame."""

    def update(self: FaceAppearanceCheck, obs: FaceObservation) -> None:
        if obs.crop is not None and obs.face is not None:
            # every observation is cut, sampled or not: simpler than the sampling hook, and the same features
            obs = dataclasses.replace(obs, crop=align_face(obs.image, obs.face.points, size, antialias=True)[0])
        SampledCropCheck.update(self, obs)

    FaceAppearanceCheck.update = update  # type: ignore[method-assign]


if os.environ.get(SIZE_ENV):
    install(int(os.environ[SIZE_ENV]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, required=True, help="side of the crop face_cnn reads, in pixels")
    ap.add_argument("--manifest", type=Path, default=Path("../shared/data/dev/manifest.csv"))
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--copies-dir", type=Path, default=None)
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args()
    if a.size < 32:
        ap.error("--size must be at least 32")
    os.environ[SIZE_ENV] = str(a.size)
    install(a.size)
    print(run_eval(a.manifest, a.out, workers=a.workers, copies_dir=a.copies_dir))


if __name__ == "__main__":
    main()
