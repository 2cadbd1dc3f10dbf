"""Synthetic interview recordings made by the project itself.

Used for the bundled samples and by the tests, so neither depends on
third-party footage. The only photo involved is scikit-image's bundled
``astronaut`` image (NASA portrait of Eileen Collins, public domain), cropped
to a head-and-shoulders "webcam" view and stored in
``samples/source/astronaut_portrait.png``.

The generator animates the portrait like a person on a video call (smooth
head motion, sensor noise, exposure drift) and, with ``swap=True``, applies a
FaceSwap-style live swap: every frame a colour-shifted, re-shaped face rendered
at low resolution is upscaled and blended into the face region through a
feathered landmark mask whose placement is temporally smoothed, as real-time
swappers do. That gives the artifacts the checks look for: a blending seam, a
resolution mismatch, colour flicker and a face that lags the head.
"""
from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from detector.faces import regions

PORTRAIT = Path(__file__).resolve().parents[1] / "samples" / "source" / "astronaut_portrait.png"


def load_portrait() -> np.ndarray:
    img = cv2.imread(str(PORTRAIT), cv2.IMREAD_COLOR)
    if img is None:
        raise FileNotFoundError(f"portrait missing: {PORTRAIT}")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def portrait_landmarks(img: np.ndarray) -> np.ndarray:
    """Face Mesh landmarks of the still portrait (static mode)."""
    from mediapipe.python.solutions import face_mesh

    with face_mesh.FaceMesh(static_image_mode=True, refine_landmarks=True, max_num_faces=1) as fm:
        res = fm.process(img)
    if not res.multi_face_landmarks:
        raise RuntimeError("no face found in the portrait")
    h, w = img.shape[:2]
    return np.array([(p.x * w, p.y * h) for p in res.multi_face_landmarks[0].landmark], dtype=np.float32)


def _background(w: int, h: int, rng: np.random.Generator) -> np.ndarray:
    """A plain 'home office' wall: vertical gradient and a few shelves."""
    y = np.linspace(0, 1, h)[:, None, None]
    top, bottom = rng.uniform(150, 220, 3), rng.uniform(90, 160, 3)
    bg = (top * (1 - y) + bottom * y) * np.ones((1, w, 1))
    for _ in range(4):
        x0, y0 = int(rng.uniform(0, w * 0.8)), int(rng.uniform(0, h * 0.8))
        cv2.rectangle(bg, (x0, y0), (x0 + int(rng.uniform(40, 160)), y0 + int(rng.uniform(8, 30))),
                      tuple(float(c) for c in rng.uniform(40, 200, 3)), -1)
    return bg.astype(np.float32)


def _motion(t: float, phase: np.ndarray) -> tuple[float, float, float, float]:
    """Head/camera motion at time t: dx, dy (fraction of frame), angle (deg), scale."""
    dx = 0.04 * math.sin(0.9 * t + phase[0]) + 0.015 * math.sin(2.3 * t + phase[1])
    dy = 0.02 * math.sin(0.7 * t + phase[2])
    ang = 4.0 * math.sin(0.5 * t + phase[3])
    sc = 1.0 + 0.05 * math.sin(0.3 * t + phase[4])
    return dx, dy, ang, sc


def _swap_source(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Another 'identity': the face re-shaped by a smooth warp, re-coloured,
    rendered at 128 px and upscaled, as a swapper's decoder output would be."""
    h, w = img.shape[:2]
    # smooth random displacement field: changes the face's proportions, not its place
    field = rng.normal(0, 1, (2, 6, 6)).astype(np.float32)
    fx = cv2.resize(field[0], (w, h), interpolation=cv2.INTER_CUBIC) * 0.02 * w
    fy = cv2.resize(field[1], (w, h), interpolation=cv2.INTER_CUBIC) * 0.02 * h
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    src = cv2.remap(img, gx + fx, gy + fy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT).astype(np.float32)
    src = src * rng.uniform(0.88, 1.12, 3) + rng.uniform(-10, 10, 3)
    small = cv2.resize(src, (128, int(128 * h / w)), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


class _CallAnimator:
    """Renders one participant's webcam view at any time t (the frame generator behind the clips)."""

    def __init__(self, size: tuple[int, int], swap: bool, rng: np.random.Generator,
                 portrait: tuple[np.ndarray, np.ndarray] | None = None):
        self.img, self.lm = portrait if portrait is not None else (lambda i: (i, portrait_landmarks(i)))(load_portrait())
        self.w, self.h = size
        self.rng = rng
        self.bg = _background(self.w, self.h, rng)
        self.phase = rng.uniform(0, 2 * math.pi, 5)
        self.base_scale = 0.85 * self.h / self.img.shape[0]
        self.swap = swap
        self.lagged = None
        if swap:
            self.src_aligned = _swap_source(self.img, rng)
            mask = np.zeros(self.img.shape[:2], np.float32)
            cv2.fillConvexPoly(mask, cv2.convexHull(self.lm[regions.FACE_OVAL].astype(np.int32)), 1.0)
            mask = cv2.erode(mask, np.ones((5, 5), np.uint8), iterations=2)
            self.mask = cv2.GaussianBlur(mask, (0, 0), 4)[..., None]

    def frame(self, t: float) -> np.ndarray:
        img, w, h = self.img, self.w, self.h
        dx, dy, ang, sc = _motion(t, self.phase)
        m = cv2.getRotationMatrix2D((img.shape[1] / 2, img.shape[0] / 2), ang, self.base_scale * sc)
        m[0, 2] += w / 2 - img.shape[1] / 2 + dx * w
        m[1, 2] += h / 2 - img.shape[0] / 2 + dy * h + 0.08 * h
        frame_src = img.astype(np.float32)
        if self.swap:
            # the pasted face follows a smoothed (lagging) estimate of the head pose
            self.lagged = m.copy() if self.lagged is None else 0.6 * self.lagged + 0.4 * m
            shift = cv2.invertAffineTransform(m) @ np.vstack([self.lagged, [0, 0, 1]])
            face_now = cv2.warpAffine(self.src_aligned, shift, (img.shape[1], img.shape[0]),
                                      borderMode=cv2.BORDER_REFLECT)
            mask_now = cv2.warpAffine(self.mask, shift, (img.shape[1], img.shape[0]))[..., None]
            flicker = 1.0 + self.rng.normal(0, 0.02, 3)  # per-frame colour correction error
            frame_src = mask_now * face_now * flicker + (1 - mask_now) * frame_src
        person = cv2.warpAffine(frame_src, m, (w, h), flags=cv2.INTER_LINEAR, borderValue=(0, 0, 0))
        cover = cv2.warpAffine(np.ones(img.shape[:2], np.float32), m, (w, h))[..., None]
        frame = cover * person + (1 - cover) * self.bg
        frame *= 1.0 + 0.03 * math.sin(0.4 * t)  # auto-exposure drift
        frame += self.rng.normal(0, 3.0, frame.shape)  # sensor noise
        return np.clip(frame, 0, 255).astype(np.uint8)


def _encode(path: Path, frames, fps: int, size: tuple[int, int], vfr: bool, rotation: int, codec: str, crf: int,
            rng: np.random.Generator, seconds: float) -> Path:
    """Encode ``frames(t)`` from t=0 to ``seconds`` with exact (optionally irregular) timestamps."""
    w, h = size
    path.parent.mkdir(parents=True, exist_ok=True)
    out_w, out_h = (h, w) if rotation in (90, 270) else (w, h)
    tb = Fraction(1, 1000) if vfr else Fraction(1, fps)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height = out_w, out_h
        stream.pix_fmt = "yuv420p"
        stream.time_base = tb
        stream.codec_context.time_base = tb
        if codec == "libx264":
            stream.options = {"crf": str(crf), "preset": "veryfast"}
        if rotation:
            # counter-clockwise degrees a player turns the stored frames for display
            stream.set_display_rotation(rotation)
        t = 0.0
        while t < seconds:
            frame = frames(t)
            if rotation:
                # store rotated clockwise by `rotation`; the metadata undoes it on display
                frame = np.ascontiguousarray(np.rot90(frame, {90: -1, 180: 2, 270: 1}[rotation]))
            vf = av.VideoFrame.from_ndarray(frame, format="rgb24")
            vf.pts = int(round(t / tb))
            vf.time_base = tb
            for packet in stream.encode(vf):
                container.mux(packet)
            step = 1.0 / fps
            if vfr:
                # browser capture: irregular intervals between 0.5x and 2x the nominal period
                step *= float(rng.choice([0.5, 1.0, 1.0, 1.0, 2.0]))
            t += step
        for packet in stream.encode():
            container.mux(packet)
    return path


def render_call(path: str | Path, *, seconds: float = 6.0, fps: int = 30, size: tuple[int, int] = (640, 480),
                swap: bool = False, seed: int = 0, vfr: bool = False, rotation: int = 0,
                codec: str = "libx264", crf: int = 23) -> Path:
    """Write a synthetic call recording and return its path.

    ``vfr`` jitters frame intervals (as browser capture does); ``rotation``
    stores the frames rotated and sets the display-rotation metadata so a
    correct reader shows them upright.
    """
    rng = np.random.default_rng(seed)
    anim = _CallAnimator(size, swap, rng)
    return _encode(Path(path), anim.frame, fps, size, vfr, rotation, codec, crf, rng, seconds)


def render_gallery(path: str | Path, *, grid: tuple[int, int] = (2, 2), tile: tuple[int, int] = (320, 240),
                   seconds: float = 3.0, fps: int = 15, swap_tiles: tuple[int, ...] = (), seed: int = 0,
                   hidden: tuple[int, float, float] | None = None) -> Path:
    """A gallery-view recording: ``grid`` (cols, rows) tiles, one animated participant each.

    ``swap_tiles`` lists tiles whose participant is face-swapped; ``hidden``
    = (tile, start_s, end_s) blanks one tile for a while (camera off, a hand
    over the lens), to test that tracks survive a loss.
    """
    rng = np.random.default_rng(seed)
    img = load_portrait()
    portrait = (img, portrait_landmarks(img))
    cols, rows = grid
    anims = [_CallAnimator(tile, i in swap_tiles, np.random.default_rng(seed + 1 + i), portrait)
             for i in range(cols * rows)]
    tw, th = tile

    def frame(t: float) -> np.ndarray:
        out = np.zeros((th * rows, tw * cols, 3), np.uint8)
        for i, a in enumerate(anims):
            r, c = divmod(i, cols)
            view = a.frame(t)
            if hidden is not None and hidden[0] == i and hidden[1] <= t < hidden[2]:
                view = np.full_like(view, 40)
            out[r * th:(r + 1) * th, c * tw:(c + 1) * tw] = view
        return out

    return _encode(Path(path), frame, fps, (tw * cols, th * rows), False, 0, "libx264", 23, rng, seconds)


#: RGB gains that make "other people" of the one portrait: far apart in colour, so that joining turns by
#: appearance (detector.faces.linking) can tell them apart whatever the seed
_SPEAKER_TINTS = ((1.0, 1.0, 1.0), (0.5, 0.75, 1.0), (1.0, 0.7, 0.45), (0.65, 1.0, 0.65))


def render_speaker_view(path: str | Path, *, speakers: int = 2, turn_s: float = 1.5, seconds: float = 6.0,
                        fps: int = 15, size: tuple[int, int] = (480, 360), swap_speakers: tuple[int, ...] = (),
                        seed: int = 0) -> Path:
    """An active-speaker recording: the whole picture shows one participant's camera at a time.

    Participants take turns of ``turn_s`` seconds in order, each in their own room (background); the picture
    cuts hard from one to the next, as meeting recorders do. ``swap_speakers`` lists face-swapped participants.
    There is one portrait, so every participant after the first is the same person re-coloured (skin, hair and
    clothes tinted), which is what tells two people apart in one recording's colours.
    """
    rng = np.random.default_rng(seed)
    img = load_portrait()
    landmarks = portrait_landmarks(img)
    anims = []
    for i in range(speakers):
        tint = np.array(_SPEAKER_TINTS[i % len(_SPEAKER_TINTS)])
        tinted = np.clip(img.astype(np.float32) * tint, 0, 255).astype(np.uint8)
        anims.append(_CallAnimator(size, i in swap_speakers, np.random.default_rng(seed + 1 + i), (tinted, landmarks)))

    def frame(t: float) -> np.ndarray:
        return anims[int(t // turn_s) % speakers].frame(t)

    return _encode(Path(path), frame, fps, size, False, 0, "libx264", 23, rng, seconds)
