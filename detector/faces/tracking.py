"""Per-participant face tracks.

Faces are associated frame to frame by where they are, measured in units of
the face's own size, so one participant keeps one track in a gallery view
where tiles never move. A short loss (a hand over the face, a look away, a
dropped frame) keeps the track open for ``max_gap_s``; after that a face
reappearing in the same place is still re-attached, because in interview
recordings a participant almost never changes place, while a new track in
the same spot would split one person into many.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from detector.faces.landmarks import FaceLandmarks


@dataclass
class TrackerOptions:
    max_gap_s: float = 2.0  # keep a lost track "live" this long
    match_distance: float = 0.9  # centre distance / face width to match a live track
    reattach_distance: float = 0.45  # stricter distance to re-attach a track lost for longer
    min_face_px: float = 24.0  # smaller faces are too small for any check


@dataclass
class _TrackState:
    track_id: int
    center: np.ndarray
    size: float
    last_seen: float
    count: int = 0
    sizes: list[float] = field(default_factory=list)


class FaceTracker:
    """Greedy nearest-centre association with gap tolerance."""

    def __init__(self, options: TrackerOptions | None = None):
        self.options = options or TrackerOptions()
        self._tracks: list[_TrackState] = []
        self._next_id = 0

    @staticmethod
    def _geometry(face: FaceLandmarks) -> tuple[np.ndarray, float]:
        x0, y0, x1, y1 = face.bbox
        return np.array([(x0 + x1) / 2, (y0 + y1) / 2]), max(x1 - x0, y1 - y0, 1.0)

    def update(self, seconds: float, faces: list[FaceLandmarks]) -> list[tuple[int, FaceLandmarks]]:
        """Assign a track id to every face large enough to analyse."""
        opts = self.options
        geo = [(f, *self._geometry(f)) for f in faces if f.height >= opts.min_face_px]
        # all candidate (cost, track, face) pairs, cheapest first
        pairs = []
        for ti, tr in enumerate(self._tracks):
            gap = seconds - tr.last_seen
            limit = opts.match_distance if gap <= opts.max_gap_s else opts.reattach_distance
            for fi, (_, c, s) in enumerate(geo):
                d = float(np.linalg.norm(c - tr.center)) / max(s, tr.size)
                size_ratio = max(s, tr.size) / max(min(s, tr.size), 1.0)
                if d <= limit and size_ratio < 1.8:
                    pairs.append((d, ti, fi))
        pairs.sort()
        used_t, used_f, out = set(), set(), []
        for _, ti, fi in pairs:
            if ti in used_t or fi in used_f:
                continue
            used_t.add(ti)
            used_f.add(fi)
            tr = self._tracks[ti]
            face, c, s = geo[fi]
            # smooth the reference position a little so landmark noise cannot walk the track away
            tr.center = 0.5 * tr.center + 0.5 * c
            tr.size = 0.5 * tr.size + 0.5 * s
            tr.last_seen = seconds
            tr.count += 1
            out.append((tr.track_id, face))
        for fi, (face, c, s) in enumerate(geo):
            if fi in used_f:
                continue
            tr = _TrackState(self._next_id, c, s, seconds, 1)
            self._next_id += 1
            self._tracks.append(tr)
            out.append((tr.track_id, face))
        return out

    def cut(self) -> list[int]:
        """The picture cut to another shot: no face after it continues a track from before it.

        Tracks are matched by place, and after a cut another person's face may sit where the last one sat
        (an active-speaker recording); :mod:`detector.faces.linking` joins the tracks of one person again.
        Returns the ids of the tracks this ended, so their owner can finish them now rather than at the call's end.
        """
        ended = [t.track_id for t in self._tracks]
        self._tracks = []
        return ended

    def live_ids(self, seconds: float) -> list[int]:
        """Tracks a face at ``seconds`` could still continue without the stricter re-attach distance."""
        return [t.track_id for t in self._tracks if seconds - t.last_seen <= self.options.max_gap_s]

    @property
    def track_count(self) -> int:
        """Tracks started so far (also those ended by a cut)."""
        return self._next_id
