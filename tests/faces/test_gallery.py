"""Gallery views: one stable track per tile, through a tile going dark."""
import pytest

from detector import Analyzer, ScanOptions
from detector.synth import render_gallery


@pytest.fixture(scope="module")
def gallery_clip(tmp_path_factory):
    return render_gallery(tmp_path_factory.mktemp("gal") / "gal.mp4", grid=(2, 2), seconds=3.0,
                          hidden=(2, 1.0, 2.0), swap_tiles=(1,))


def test_gallery_grid_finds_every_tile_and_keeps_one_track_each(gallery_clip):
    with Analyzer(ScanOptions(max_faces=4, gallery_grid=2)) as a:
        analysis = a.analyse(gallery_clip)
    tracks = [t for t in analysis.tracks if t.frames >= 3]
    assert len(tracks) == 4
    # the tile hidden for a second is one participant, not two
    by_frames = sorted(t.frames for t in tracks)
    assert by_frames[0] < by_frames[-1] - 5
    assert all(t.first_seen <= 0.2 and t.last_seen >= 2.7 for t in tracks)


def test_whole_frame_detector_alone_misses_small_tiles(gallery_clip):
    # documents why gallery_grid exists: at this tile size the plain detector finds fewer faces
    with Analyzer(ScanOptions(max_faces=4)) as a:
        analysis = a.analyse(gallery_clip)
    assert len([t for t in analysis.tracks if t.frames >= 10]) < 4
