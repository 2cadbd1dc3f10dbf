"""Cut Matroska/WebM files are told by their own element sizes (hand-built EBML, and files PyAV writes)."""
from __future__ import annotations

import pytest

from detector.video.matroska import ends_inside_an_element

_UNKNOWN_SIZE = b"\x01\xff\xff\xff\xff\xff\xff\xff"


def _element(element_id: int, body: bytes, unknown_size: bool = False) -> bytes:
    head = element_id.to_bytes((element_id.bit_length() + 7) // 8, "big")
    if unknown_size:
        return head + _UNKNOWN_SIZE + body
    return head + (0x10000000 | len(body)).to_bytes(4, "big") + body  # a 4-byte size, as muxers often write


def _browser_style(clusters: int = 3, blocks: int = 5) -> tuple[bytes, list[int]]:
    """A WebM laid out as a browser's MediaRecorder writes it: Segment and Clusters of unknown size. Returns the
    bytes and the offsets at which each block ends."""
    header = _element(0x1A45DFA3, _element(0x4282, b"webm"))
    body = _element(0x1549A966, _element(0x2AD7B1, b"\x0f\x42\x40")) + _element(0x1654AE6B, b"\xae\x80")
    start = len(header) + 4 + len(_UNKNOWN_SIZE)
    ends = []
    for c in range(clusters):
        cluster = _element(0xE7, bytes([c]))
        for b in range(blocks):
            cluster += _element(0xA3, bytes(50 + b))
            ends.append(start + len(body) + 4 + len(_UNKNOWN_SIZE) + len(cluster))
        body += _element(0x1F43B675, cluster, unknown_size=True)
    return header + _element(0x18538067, body, unknown_size=True), ends


def _write(tmp_path, data: bytes, name: str = "f.webm"):
    p = tmp_path / name
    p.write_bytes(data)
    return p


def test_a_browser_style_file_is_judged_by_walking_its_blocks(tmp_path):
    data, ends = _browser_style()
    assert not ends_inside_an_element(_write(tmp_path, data))
    assert ends[-1] == len(data)
    assert ends_inside_an_element(_write(tmp_path, data[: ends[7] - 10]))  # inside a block
    assert ends_inside_an_element(_write(tmp_path, data[: ends[7] + 3]))  # inside the next block's header
    # a cut that falls exactly between two blocks leaves a well-formed file: nothing says it was cut
    assert not ends_inside_an_element(_write(tmp_path, data[: ends[7]]))


def test_a_known_segment_size_tells_at_once(tmp_path):
    header = _element(0x1A45DFA3, _element(0x4282, b"webm"))
    whole = header + _element(0x18538067, _element(0x1F43B675, _element(0xA3, bytes(400))))
    assert not ends_inside_an_element(_write(tmp_path, whole))
    assert ends_inside_an_element(_write(tmp_path, whole[:-1]))
    assert not ends_inside_an_element(_write(tmp_path, whole + b"\x00" * 10))  # bytes after the Segment: not a cut


@pytest.mark.parametrize("data", [b"", b"\x00\x00\x00\x20ftypisom" + bytes(100), b"\x81\x85ab",
                                  b"\x1a\x45\xdf\xa3", _element(0x1A45DFA3, b"") + b"\x00" * 20])
def test_what_does_not_parse_as_matroska_is_not_judged(tmp_path, data):
    # an empty file, an MP4, bytes that parse as an element but not as the EBML header, a bare EBML id with no
    # size (cut inside the very first header), zero padding where an element should start; only the bare id
    # counts as a cut
    expected = data == b"\x1a\x45\xdf\xa3"
    assert ends_inside_an_element(_write(tmp_path, data)) == expected


def test_files_ffmpeg_writes_are_judged_whole_and_cut(tmp_path, live_mkv):
    from test_pyav_source import _write_clip  # the sibling module's clip writer

    for suffix, codec in (("webm", "libvpx-vp9"), ("mkv", "libx264")):
        p = _write_clip(tmp_path / f"whole.{suffix}", seconds=3, codec=codec)
        data = p.read_bytes()
        assert not ends_inside_an_element(p)
        assert ends_inside_an_element(_write(tmp_path, data[: len(data) * 97 // 100], f"cut.{suffix}"))
    data = live_mkv.read_bytes()  # written to a pipe: the Segment's size is unknown, so its elements are walked
    assert not ends_inside_an_element(live_mkv)
    assert ends_inside_an_element(_write(tmp_path, data[: len(data) // 2], "live_cut.mkv"))


def test_a_void_before_the_segment_is_stepped_over(tmp_path):
    header = _element(0x1A45DFA3, _element(0x4282, b"webm")) + _element(0xEC, bytes(8))  # EBML header, Void
    whole = header + _element(0x18538067, _element(0x1F43B675, _element(0xA3, bytes(400))))
    assert not ends_inside_an_element(_write(tmp_path, whole))
    assert ends_inside_an_element(_write(tmp_path, whole[:-100]))


def test_an_unknown_size_only_a_cluster_may_have_is_not_judged(tmp_path):
    data, ends = _browser_style(clusters=1)
    tags = _element(0x1254C367, b"", unknown_size=True)  # Tags of unknown size: not a layout to reason about
    assert not ends_inside_an_element(_write(tmp_path, data + tags + _element(0xA3, bytes(60))[:-5]))
    assert ends_inside_an_element(_write(tmp_path, data + _element(0xA3, bytes(60))[:-5]))


@pytest.mark.parametrize("tail", [b"\r\n", b"OK\n", b'{"done":true}', b"\x00" * 64])
def test_bytes_left_after_a_complete_browser_recording_are_not_a_cut(tmp_path, tail):
    # an upload handler's CRLF, a status line, a trailer: not elements a Segment holds, so not judged
    data, _ = _browser_style()
    assert not ends_inside_an_element(_write(tmp_path, data + tail))


def test_a_cut_inside_an_element_id_and_the_one_byte_unknown_size(tmp_path):
    data, _ = _browser_style()
    assert ends_inside_an_element(_write(tmp_path, data + b"\x1f\x43"))  # the next Cluster's id, cut after 2 bytes
    one_byte = data.replace(_UNKNOWN_SIZE, b"\xff", 1)  # the Segment's unknown size written in its 1-byte form
    assert not ends_inside_an_element(_write(tmp_path, one_byte))
    assert ends_inside_an_element(_write(tmp_path, one_byte[:-10]))


def test_the_walk_gives_up_on_more_elements_than_a_recording_has(tmp_path, monkeypatch):
    import detector.video.matroska as matroska

    data, ends = _browser_style(clusters=3, blocks=5)
    cut = _write(tmp_path, data[: ends[-1] - 10])
    assert ends_inside_an_element(cut)
    monkeypatch.setattr(matroska, "_MAX_ELEMENTS", 10)  # fewer than the file holds: not judged
    assert not ends_inside_an_element(cut)
