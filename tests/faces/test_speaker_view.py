"""Active-speaker recordings: the picture cuts between participants who sit in the same place."""
import pytest

from detector import Analyzer, ScanOptions
from detector.synth import render_speaker_view


@pytest.fixture(scope="module")
def speaker_clip(tmp_path_factory):
    # two participants in their own rooms, taking turns of 1.5 s: on screen 0-1.5, 3-4.5 and 1.5-3, 4.5-6
    return render_speaker_view(tmp_path_factory.mktemp("spk") / "spk.mp4", speakers=2, turn_s=1.5, seconds=6.0,
                               swap_speakers=(1,), seed=4)


def _participants(analysis):
    return [t for t in analysis.tracks if t.frames >= 3]


def test_each_participant_is_one_track_across_their_turns(speaker_clip):
    with Analyzer(ScanOptions(use_fusion=False, shot_cuts=True)) as a:
        analysis = a.analyse(speaker_clip)
    assert [round(c, 1) for c in analysis.shot_cuts] == [1.5, 3.0, 4.5]
    first, second = _participants(analysis)
    assert [first.track_id, second.track_id] == [0, 1]  # numbered in order of appearance, no gaps
    assert first.first_seen < 0.2 and 4.3 < first.last_seen < 4.5  # turns 1 and 3, joined
    assert 1.4 < second.first_seen < 1.7 and second.last_seen > 5.8  # turns 2 and 4
    # neither participant's windows span the other's turn: each turn was cut on its own
    for td, turns in ((first, [(0.0, 1.5), (3.0, 4.5)]), (second, [(1.5, 3.0), (4.5, 6.0)])):
        for w in td.windows:
            assert any(a - 1e-6 <= w.start and w.end <= b + 0.11 for a, b in turns), (w.start, w.end)
    assert first.frames + second.frames == pytest.approx(analysis.analysed_frames, abs=4)
    # face time is the turns' own, not the span that includes the other person's turn
    assert first.duration == pytest.approx(2.8, abs=0.25) and first.duration < first.last_seen - first.first_seen


def test_without_the_option_two_people_become_one_track_and_the_report_warns(speaker_clip):
    # the default: the faces sit in one place, so the tracker makes them one "participant"; the cuts are found
    # and, since the track was carried across each of them, the report says two people may be merged
    with Analyzer(ScanOptions()) as a:
        report = a.scan(speaker_clip)
    assert len([t for t in report.tracks if t.probability is not None]) == 1
    assert [round(c, 1) for c in report.video.shot_cuts_s] == [1.5, 3.0, 4.5]
    assert [round(c, 1) for c in report.video.cuts_crossed_s] == [1.5, 3.0, 4.5]
    assert any("carried across such a change 3 times" in c and "--speaker-view" in c for c in report.caveats)
    assert "cuts between cameras" not in report.summary  # that sentence is about joining turns, which it did not


def test_a_recording_without_cuts_gets_no_merge_warning(tmp_path):
    from detector.synth import render_call

    with Analyzer(ScanOptions()) as a:
        report = a.scan(render_call(tmp_path / "one.mp4", seconds=3.0, seed=2))
    assert report.video.shot_cuts_s == [] and report.video.cuts_crossed_s == []
    assert not any("--speaker-view" in c for c in report.caveats)


def test_report_counts_both_participants(speaker_clip):
    with Analyzer(ScanOptions(shot_cuts=True)) as a:
        report = a.scan(speaker_clip)
    judged = [t for t in report.tracks if t.probability is not None]
    assert len(judged) == 2
    assert report.probability == max(t.probability for t in judged)
    assert [round(c, 1) for c in report.video.shot_cuts_s] == [1.5, 3.0, 4.5]
    assert "cuts between cameras 3 times" in report.summary
    assert report.video.cuts_crossed_s == [] and not any("--speaker-view" in c for c in report.caveats)


def test_scan_cli_speaker_view_flag(speaker_clip, tmp_path):
    import json

    from typer.testing import CliRunner

    from detector.cli import app

    out = tmp_path / "r.json"
    res = CliRunner().invoke(app, ["scan", str(speaker_clip), "--speaker-view", "--json", str(out), "-q"])
    assert res.exit_code == 0, res.output
    report = json.loads(out.read_text())  # one recording: one report
    assert report["settings"]["shot_cuts"] is True and len(report["video"]["shot_cuts_s"]) == 3
    assert len([t for t in report["tracks"] if t["probability"] is not None]) == 2


def test_scan_overrides_the_analyzers_speaker_view_per_recording(speaker_clip):
    # the web app asks per upload: one analyzer scans either way
    with Analyzer(ScanOptions()) as a:
        report = a.scan(speaker_clip, shot_cuts=True)
        assert a.options.shot_cuts is False  # the analyzer's own setting is untouched
    assert report.settings["shot_cuts"] is True and report.video.cuts_crossed_s == []
    assert len([t for t in report.tracks if t.probability is not None]) == 2
    with Analyzer(ScanOptions(shot_cuts=True)) as a:
        report = a.scan(speaker_clip, shot_cuts=False)
    assert report.settings["shot_cuts"] is False and len(report.video.cuts_crossed_s) == 3


def test_auto_speaker_view_scans_again_when_a_track_is_carried_across_a_cut(speaker_clip):
    stages = []
    with Analyzer(ScanOptions(speaker_view_auto=True)) as a:
        report = a.scan(speaker_clip, progress=lambda frac, stage: stages.append(stage))
    # the second scan's report: cuts end tracks, both people are judged, and nothing warns of a merge
    assert report.video.speaker_view_auto is True
    assert report.settings["shot_cuts"] is True and report.settings["speaker_view_auto"] is True
    assert [round(c, 1) for c in report.video.cuts_crossed_s] == [1.5, 3.0, 4.5]  # what the first scan carried
    assert len([t for t in report.tracks if t.probability is not None]) == 2
    assert not any("--speaker-view on the command line" in c for c in report.caveats)  # no merge warning
    # said in every output, the batch table's caveats column included
    assert any("second scan as an active-speaker recording" in c and "3 times" in c for c in report.caveats)
    assert "analysed again as an active-speaker recording" in report.summary
    assert "first_pass" in report.timings_s
    # the second pass reports progress under its own label, from 0 again
    again = stages.index("analysing again as an active-speaker recording")
    assert "analysing" in stages[:again] and set(stages[again:-1]) == {stages[again]} and stages[-1] == "done"


def test_auto_speaker_view_scans_a_recording_without_cuts_once_as_by_default(tmp_path):
    from detector.synth import render_call

    clip = render_call(tmp_path / "one.mp4", seconds=3.0, seed=2)
    with Analyzer(ScanOptions()) as a:
        plain = a.scan(clip)
    with Analyzer(ScanOptions(speaker_view_auto=True)) as a:
        auto = a.scan(clip)
    assert auto.video.speaker_view_auto is False and "first_pass" not in auto.timings_s
    assert auto.settings["shot_cuts"] is False and auto.video.cuts_crossed_s == []
    assert [t.probability for t in auto.tracks] == [t.probability for t in plain.tracks]
    assert auto.verdict == plain.verdict


def test_auto_speaker_view_changes_the_result_key_only_where_it_changes_the_scan():
    # batch runs reuse a result only under its key: an archive scanned with the setting is re-scored; one scanned
    # without it keeps the key it had before the setting existed (tests/test_api.py pins that key); and with
    # shot_cuts on the setting does nothing, so a --speaker-view archive is not scanned again for it
    assert ScanOptions(speaker_view_auto=True).result_key() != ScanOptions().result_key()
    assert (ScanOptions(shot_cuts=True, speaker_view_auto=True).result_key()
            == ScanOptions(shot_cuts=True).result_key())


def test_scan_cli_auto_speaker_view_flag(speaker_clip, tmp_path):
    import json

    from typer.testing import CliRunner

    from detector.cli import app

    out = tmp_path / "r.json"
    res = CliRunner().invoke(app, ["scan", str(speaker_clip), "--auto-speaker-view", "--json", str(out), "-q"])
    assert res.exit_code == 0, res.output
    report = json.loads(out.read_text())
    assert report["video"]["speaker_view_auto"] is True and report["settings"]["shot_cuts"] is True
    assert len([t for t in report["tracks"] if t["probability"] is not None]) == 2
