"""Recognising recordings by content: walking, sniffing, probing, list files."""
from __future__ import annotations

import os

import pytest

from batch_fakes import cut_in_half
from detector.batch.discover import WalkStats, classify, read_path_list, sniff, walk
from detector.errors import ConfigError


def test_sniff_by_content(video_src):
    assert sniff((video_src / "base.mp4").read_bytes()[:2048]).kind == "video"
    assert sniff(b"\x1a\x45\xdf\xa3" + b"\x00" * 100).kind == "video"
    assert sniff(b"%PDF-1.7\n" + os.urandom(100)).kind == "other"
    assert sniff(b"\x89PNG\r\n\x1a\n" + os.urandom(100)).kind == "other"
    assert sniff("plain text, ünïcode too\n".encode() * 50).kind == "other"
    assert sniff(b"\x00\x00\x00\x20ftypM4A " + b"\x00" * 100).kind == "other"
    assert sniff(os.urandom(2048)).kind in ("unknown", "video")  # random: never trusted to be "other"


def test_walk_ignores_extensions(archive):
    stats = WalkStats()
    found = sorted(os.path.relpath(p, archive) for p in walk([archive], stats))
    # the lying .mp4 text file and the photo are dropped from their first bytes;
    # the .dat call is kept; random bytes and the broken upload go on to probing
    assert found == ["2024/call_p0.12.mp4", "2024/q1/call_p0.91.mp4", "2024/q1/truncated_upload.mp4",
                     "misc/random.bin", "misc/recording_p0.55.dat"]
    assert stats.skipped == {"text": 1, "smaller than 1 KB": 1, "image (jpeg)": 1}
    assert stats.files_seen == 8


def test_walk_dedupes_symlinks_and_rejects_missing(archive, tmp_path):
    os.symlink(archive / "2024" / "call_p0.12.mp4", archive / "link.mp4")
    os.symlink(archive / "gone.mp4", archive / "dangling.mp4")
    stats = WalkStats()
    found = list(walk([archive, archive / "2024" / "call_p0.12.mp4"], stats))
    assert len(found) == len(set(os.path.realpath(p) for p in found)) == 5
    assert stats.skipped["broken link"] == 1
    with pytest.raises(ConfigError):
        list(walk([tmp_path / "nope"]))


def test_classify(video_src, tmp_path):
    ok = classify(str(video_src / "base.mp4"))
    assert ok.kind == "recording" and ok.info.width == 96
    broken = classify(str(cut_in_half(video_src / "base.mp4", tmp_path / "half.mp4")))
    # a recording cut before its index cannot be opened: a damaged recording, not something that is no video
    assert broken.kind == "broken" and broken.code == "corrupt_video"
    junk = tmp_path / "junk.bin"
    junk.write_bytes(os.urandom(5000))
    assert classify(str(junk)).kind == "not_recording"
    missing = classify(str(tmp_path / "gone.mp4"))
    assert missing.kind == "broken" and missing.code == "bad_input"


def test_read_path_list(tmp_path):
    (tmp_path / "lists").mkdir()
    lst = tmp_path / "lists" / "calls.txt"
    lst.write_text(f"# exported from the share\n\nfile://{tmp_path}/a%20b.mp4\nrel/c.mp4\n/abs/d.mp4\n")
    assert read_path_list(lst) == [f"{tmp_path}/a b.mp4", f"{tmp_path}/lists/rel/c.mp4", "/abs/d.mp4"]
    lst.write_text("https://example.com/x.mp4\n")
    with pytest.raises(ConfigError):
        read_path_list(lst)
    lst.write_text("file://otherhost/x.mp4\n")
    with pytest.raises(ConfigError):
        read_path_list(lst)
