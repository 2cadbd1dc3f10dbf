"""Joining the tracks of one participant again after the picture cut away from them and back.

In an active-speaker recording every switch is a hard cut (:mod:`detector.faces.shots`), and the tracker starts
new tracks after each one. Each participant then owns many short tracks, one per turn; judged apart they would
count one person many times, and a call that takes its most suspicious participant would get many chances to
be wrong. So after the analysis the tracks are joined by appearance.

No face-*recognition* network can be installed here, and none is needed for this: the parts to join come from one
recording, where one participant's camera, light and room stay the same from turn to turn while two
participants' differ. :class:`AppearanceSignature` is the mean, over a track's frames, of two tiny colour
thumbnails in CIE Lab: the aligned face, and the picture around it (hair, shoulders, the room). Two tracks match
when *both* differ by less than :attr:`LinkOptions.max_distance` (mean absolute Lab difference): the room alone
would join two people filmed in one room, the face alone two similar faces in different rooms. Tracks seen at the
same time are never joined: they are two faces on screen together. ``experiments/README.md`` (session 14)
gives the distances measured on composed speaker-view calls of the dev clips.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

#: side of the two thumbnails, in pixels: enough for skin, hair and room colours, too few for pose or expression
THUMB = 8


@dataclass
class LinkOptions:
    #: two tracks are one participant when both the face's and the surroundings' mean absolute Lab difference are
    #: below this (OpenCV's 8-bit Lab, 0-255 per channel)
    max_distance: float = 12.0


def _lab_thumb(image_rgb: np.ndarray) -> np.ndarray:
    small = cv2.resize(image_rgb, (THUMB, THUMB), interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(small, cv2.COLOR_RGB2LAB).astype(np.float64).ravel()


def surroundings(image_rgb: np.ndarray, bbox: tuple[float, float, float, float]) -> np.ndarray | None:
    """The picture around a face: a face width either side, half a height above, a height below (clipped)."""
    x0, y0, x1, y1 = bbox
    w, h = x1 - x0, y1 - y0
    H, W = image_rgb.shape[:2]
    a, b = int(max(0, x0 - w)), int(min(W, x1 + w))
    c, d = int(max(0, y0 - 0.5 * h)), int(min(H, y1 + h))
    if b - a < 2 or d - c < 2:
        return None
    return image_rgb[c:d, a:b]


class AppearanceSignature:
    """Running mean of a track's face and surroundings thumbnails (see the module docstring)."""

    def __init__(self) -> None:
        self._face = np.zeros(THUMB * THUMB * 3)
        self._around = np.zeros(THUMB * THUMB * 3)
        self.frames = 0
        self._around_frames = 0

    def add(self, crop_rgb: np.ndarray, image_rgb: np.ndarray, bbox: tuple[float, float, float, float]) -> None:
        self._face += _lab_thumb(crop_rgb)
        self.frames += 1
        region = surroundings(image_rgb, bbox)
        if region is not None:
            self._around += _lab_thumb(region)
            self._around_frames += 1

    def merge(self, other: "AppearanceSignature") -> None:
        self._face += other._face
        self._around += other._around
        self.frames += other.frames
        self._around_frames += other._around_frames

    @property
    def face(self) -> np.ndarray | None:
        return self._face / self.frames if self.frames else None

    @property
    def around(self) -> np.ndarray | None:
        return self._around / self._around_frames if self._around_frames else None


def signature_distance(a: AppearanceSignature, b: AppearanceSignature) -> float:
    """The larger of the face's and the surroundings' mean absolute Lab difference (inf if either is unknown)."""
    parts = []
    for x, y in ((a.face, b.face), (a.around, b.around)):
        if x is None or y is None:
            return float("inf")
        parts.append(float(np.mean(np.abs(x - y))))
    return max(parts)


def link_tracks(spans: list[tuple[float, float]], signatures: list[AppearanceSignature],
                options: LinkOptions | None = None) -> list[list[int]]:
    """Group tracks (given by index) into participants, closest pair first.

    ``spans`` are the tracks' (first seen, last seen) times. Two groups are joined when their frame-weighted
    mean signatures match (:func:`signature_distance` below ``max_distance``) and no track of one overlaps a
    track of the other in time. Returns the groups, each sorted, ordered by their first track.

    Vectorised over groups (a 2-hour speaker-view call has hundreds of turns): each join updates one row of
    the distance matrix at once rather than one pair at a time.
    """
    opts = options or LinkOptions()
    n = len(spans)
    if len(signatures) != n:
        raise ValueError("one signature per span")
    groups: list[list[int] | None] = [[i] for i in range(n)]
    if n < 2:
        return [g for g in groups if g is not None]
    # per group: summed thumbnails and how many frames they sum (a group's signature is their ratio)
    face_sum = np.stack([s._face for s in signatures]).astype(np.float64)
    around_sum = np.stack([s._around for s in signatures]).astype(np.float64)
    face_n = np.array([s.frames for s in signatures], dtype=np.float64)
    around_n = np.array([s._around_frames for s in signatures], dtype=np.float64)
    known = (face_n > 0) & (around_n > 0)  # a signature without one of its parts matches nothing

    face = face_sum / np.maximum(face_n, 1)[:, None]
    around = around_sum / np.maximum(around_n, 1)[:, None]

    def row(i: int) -> np.ndarray:
        d = np.maximum(np.abs(face - face[i]).mean(axis=1), np.abs(around - around[i]).mean(axis=1))
        d[~known | overlap[i] | ~alive] = np.inf
        d[i] = np.inf
        return d if known[i] else np.full(n, np.inf)

    start = np.array([a for a, _ in spans], dtype=float)
    end = np.array([b for _, b in spans], dtype=float)
    overlap = (start[:, None] <= end[None, :]) & (start[None, :] <= end[:, None])
    alive = np.ones(n, dtype=bool)
    dist = np.stack([row(i) for i in range(n)])
    while True:  # each pass joins the closest matching pair, until none is left
        flat = int(np.argmin(dist))
        i, j = divmod(flat, n)
        if not dist[i, j] < opts.max_distance:
            break
        i, j = min(i, j), max(i, j)
        groups[i] = sorted(groups[i] + groups[j])
        groups[j] = None
        alive[j] = False
        face_sum[i] += face_sum[j]
        around_sum[i] += around_sum[j]
        face_n[i] += face_n[j]
        around_n[i] += around_n[j]
        overlap[i] |= overlap[j]
        overlap[:, i] = overlap[i]
        dist[j, :] = dist[:, j] = np.inf
        face[i] = face_sum[i] / max(face_n[i], 1)  # only the joined group's signature changed
        around[i] = around_sum[i] / max(around_n[i], 1)
        dist[i] = row(i)
        dist[:, i] = dist[i]
    return sorted((g for g in groups if g is not None), key=lambda g: g[0])
