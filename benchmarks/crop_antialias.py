"""What the anti-aliased face crop costs against the plain bilinear warp, measured in one run.

    python benchmarks/crop_antialias.py [--face-px 165] [--repeat 2000]

Every analysed face is cut into a 112 px aligned crop (``detector.faces.regions.align_face``). Since session 10
a face larger than the crop is first blurred to the crop's scale (``ScanOptions.crop_antialias``), which costs a
Gaussian blur of the face's region on top of the warp. This times both on a 1280x720 frame with a face of the given
height (five alignment landmarks placed as on a frontal face), alternating them so that the machine's speed
drifts into both alike, and prints the time per crop, their ratio, and the added share of one core at the
default 10 analysed frames per second with one face.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from detector.faces.regions import align_face, alignment_matrix, antialias_sigma
from detector.options import ScanOptions


def frontal_points(face_px: float, cx: float = 640.0, cy: float = 360.0) -> np.ndarray:
    """478 Face Mesh points, of which the five alignment ones sit where a frontal face of that height has them."""
    pts = np.zeros((478, 3), np.float32)
    # eye centres 3u apart, 0.36 of the face's height (landmarks 10 to 152): a 165 px face is then ~73 px high in the
    # crop, as Face Mesh measured on dev frames
    u = 0.36 * face_px / 3.0
    pts[[33, 133], :2] = [[cx - 2.0 * u, cy - u], [cx - u, cy - u]]
    pts[[362, 263], :2] = [[cx + u, cy - u], [cx + 2.0 * u, cy - u]]
    pts[1, :2] = [cx, cy + 0.7 * u]
    pts[[61, 291], :2] = [[cx - 1.2 * u, cy + 2.0 * u], [cx + 1.2 * u, cy + 2.0 * u]]
    return pts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--face-px", type=float, default=165.0, help="face height in the frame (dev clips' median: 165)")
    ap.add_argument("--repeat", type=int, default=2000)
    a = ap.parse_args()
    frame = np.random.default_rng(0).integers(0, 255, (720, 1280, 3), dtype=np.uint8)
    pts = frontal_points(a.face_px)
    spent = {False: 0.0, True: 0.0}
    for _ in range(a.repeat):
        for antialias in (False, True):
            t = time.perf_counter()
            align_face(frame, pts, antialias=antialias)
            spent[antialias] += time.perf_counter() - t
    plain, smooth = (spent[k] / a.repeat * 1e3 for k in (False, True))
    fps = ScanOptions().analysis_fps
    m = alignment_matrix(pts)
    scale = float(np.sqrt(abs(np.linalg.det(m[:, :2]))))
    print(f"face {a.face_px:.0f} px in a 1280x720 frame (crop scale {scale:.2f}, blur sigma "
          f"{antialias_sigma(m):.2f} px), {a.repeat} crops each")
    print(f"plain warp:        {plain:.3f} ms per crop")
    print(f"anti-aliased:      {smooth:.3f} ms per crop ({smooth / plain:.1f}x the plain warp)")
    print(f"added at {fps:g} fps:  {(smooth - plain) * fps / 10:.2f}% of one core per face")


if __name__ == "__main__":
    main()
