"""The CLI is thin: exit codes and outputs for scan, eval and bench."""
import csv
import json

import pytest

from typer.testing import CliRunner

from detector.cli import app

runner = CliRunner()


def test_scan_prints_summary_and_writes_json_and_html(genuine_clip, tmp_path):
    out_json, out_html = tmp_path / "r.json", tmp_path / "r.html"
    res = runner.invoke(app, ["scan", str(genuine_clip), "--json", str(out_json), "--html", str(out_html)])
    assert res.exit_code == 0, res.output
    assert "P(face swap)" in res.output and "participant 1" in res.output
    data = json.loads(out_json.read_text())
    assert data["verdict"] in ("likely_genuine", "inconclusive", "likely_face_swapped")
    assert out_html.read_text().lstrip().lower().startswith("<!doctype html")


def test_a_report_path_that_cannot_be_written_is_refused_before_the_scan(genuine_clip, tmp_path, monkeypatch):
    from detector import api

    def no_scan(self, *a, **k):
        raise AssertionError("scanned although the report could not be written")

    monkeypatch.setattr(api.Analyzer, "scan", no_scan)
    (tmp_path / "adir").mkdir()
    for option in ("--json", "--html"):
        res = runner.invoke(app, ["scan", str(genuine_clip), option, str(tmp_path / "adir")])
        assert res.exit_code == 2 and "is a folder" in res.output, res.output
    blocked = tmp_path / "file"
    blocked.write_text("")
    res = runner.invoke(app, ["scan", str(genuine_clip), "--json", str(blocked / "r.json")])
    assert res.exit_code == 2 and "cannot be made" in res.output, res.output


def test_a_missing_report_folder_is_made_and_a_failed_write_is_one_clear_error(genuine_clip, tmp_path, monkeypatch):
    out = tmp_path / "new" / "deeper" / "r.json"
    res = runner.invoke(app, ["scan", str(genuine_clip), "--json", str(out), "-q"])
    assert res.exit_code == 0 and json.loads(out.read_text())["verdict"]
    import pathlib

    def full_disk(self, *a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pathlib.Path, "write_text", full_disk)
    res = runner.invoke(app, ["scan", str(genuine_clip), "--html", str(tmp_path / "r.html")])
    assert res.exit_code == 2 and "could not write --html" in res.output and "No space left" in res.output
    assert "P(face swap)" in res.output  # the summary was printed before


def test_scan_bad_input_exit_code_and_message(tmp_path):
    bad = tmp_path / "x.mp4"
    bad.write_text("hello")
    res = runner.invoke(app, ["scan", str(bad)])
    assert res.exit_code == 3
    assert "cannot read" in res.output


def test_a_report_path_naming_a_recording_or_the_other_report_is_refused(genuine_clip, tmp_path, monkeypatch):
    from detector import api

    monkeypatch.setattr(api.Analyzer, "scan", lambda *a, **k: pytest.fail("scanned although refused"))
    victim = tmp_path / "call.mp4"
    victim.write_bytes(b"recording bytes")
    link = tmp_path / "alias.mp4"
    link.symlink_to(victim)
    for args in (["--json", str(victim)], ["--html", str(link)], ["--json", str(tmp_path / "." / "call.mp4")]):
        res = runner.invoke(app, ["scan", str(genuine_clip), str(victim), *args] if "--json" in args
                            else ["scan", str(victim), *args])
        assert res.exit_code == 2 and "is one of the recordings to scan" in res.output, res.output
        assert victim.read_bytes() == b"recording bytes"
    same = tmp_path / "report.out"
    res = runner.invoke(app, ["scan", str(genuine_clip), "--json", str(same), "--html", str(same)])
    assert res.exit_code == 2 and "is also given to --json" in res.output, res.output


def test_a_failed_scan_removes_an_earlier_report_at_its_output_paths(tmp_path):
    bad = tmp_path / "x.mp4"
    bad.write_text("hello")
    old_json, old_html = tmp_path / "r.json", tmp_path / "r.html"
    old_json.write_text('{"verdict": "likely_genuine"}')
    old_html.write_text("<!doctype html>earlier candidate")
    res = runner.invoke(app, ["scan", str(bad), "--json", str(old_json), "--html", str(old_html)])
    assert res.exit_code == 3 and "cannot read" in res.output
    assert not old_json.exists() and not old_html.exists()
    assert "removed --json" in res.output and "removed --html" in res.output


def test_scan_several_files_keeps_going_past_a_bad_one(genuine_clip, tmp_path):
    bad = tmp_path / "x.mp4"
    bad.write_text("hello")
    out = tmp_path / "all.json"
    res = runner.invoke(app, ["scan", str(bad), str(genuine_clip), "--json", str(out), "-q"])
    assert res.exit_code == 3
    assert len(json.loads(out.read_text())) == 1


def test_eval_writes_scores_and_metrics(genuine_clip, swap_clip, no_face_clip, tmp_path):
    man = tmp_path / "m.csv"
    with open(man, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "label", "source", "method", "group", "note"])
        w.writerow([str(genuine_clip), "real", "synth", "original", "a", "celeb model X"])
        w.writerow([str(swap_clip), "fake", "synth", "synth-swap", "c", "celeb model X"])
        w.writerow([str(no_face_clip), "real", "synth", "original", "b", ""])
    res = runner.invoke(app, ["eval", str(man), "--out", str(tmp_path / "ev"), "--workers", "1", "--no-cv"])
    assert res.exit_code == 0, res.output
    assert "ROC AUC" in res.output
    rows = list(csv.DictReader(open(tmp_path / "ev" / "scores.csv")))
    assert [r["label"] for r in rows] == ["real", "fake", "real"]
    assert rows[0]["score"] and rows[1]["score"] and rows[2]["score"] == ""  # no face: not scored
    text = (tmp_path / "ev" / "metrics.json").read_text()
    m = json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} is not JSON"))  # NaN is written as null
    assert m["clips"] == 3 and m["scored"] == 2 and m["auc_uncalibrated"] is None
    # the unscored clip is listed with why, in the metrics and in the printed summary
    assert m["errors"] == {str(no_face_clip): "no_face: no face was found"}
    assert "unscored: 1" in res.output
    assert not (tmp_path / "ev" / "copies").exists() and m["copies"] == {}  # nothing fitted, so nothing copied
    # a and c share a face named in the notes: linked into one CV group
    assert m["cv_groups"] == 2 and m["footage_groups"] == 3 and m["link_note"] == "celeb model"
    assert "2 CV groups (from 3 footage groups" in res.output
    res = runner.invoke(app, ["eval", str(man), "--out", str(tmp_path / "ev"), "--workers", "1", "--no-cv",
                              "--link-note", ""])  # features come from the first run's cache
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "ev" / "metrics.json").read_text())["cv_groups"] == 3
    # the shipped model cannot score plain-warp features: a clear error before any clip is read
    res = runner.invoke(app, ["eval", str(man), "--out", str(tmp_path / "plain"), "--no-cv", "--no-crop-antialias"])
    assert res.exit_code != 0 and "crop_antialias=True" in res.output
    assert not (tmp_path / "plain" / "features.jsonl").exists()
    # nor features sampled at another rate
    res = runner.invoke(app, ["eval", str(man), "--out", str(tmp_path / "slow"), "--no-cv", "--fps", "5"])
    assert res.exit_code != 0 and "analysis_fps 5 (the model's: 10)" in res.output
    assert not (tmp_path / "slow" / "features.jsonl").exists()


def test_eval_rejects_bad_manifest(tmp_path):
    man = tmp_path / "m.csv"
    man.write_text("file,label\nx.mp4,real\n")
    res = runner.invoke(app, ["eval", str(man), "--out", str(tmp_path / "o")])
    assert res.exit_code == 5


def test_eval_and_train_fusion_refuse_what_they_cannot_do_before_any_work(genuine_clip, tmp_path, monkeypatch):
    import detector.evaluation as ev

    monkeypatch.setattr(ev, "_extract_one", lambda row: pytest.fail("extracted although refused"))
    man = tmp_path / "m.csv"
    man.write_text("path,label,group\n" + "".join(f"{genuine_clip},{lab},g{i}\n" if i == 0 else
                                                 f"c{i}.mp4,{lab},g{i}\n" for i, lab in enumerate(["real", "fake", "real"])))
    afile = tmp_path / "afile"
    afile.write_text("")
    for args in (["eval", str(man), "--out", str(afile)], ["train-fusion", str(man), "--out", str(tmp_path)]):
        res = runner.invoke(app, args)
        assert res.exit_code == 2 and "error: --out" in res.output, res.output
    # options checked once in the parent, not by worker processes a pool would restart forever
    for bad in (["--checks", "bogus"], ["--checks", ","], ["--fps", "0"]):
        res = runner.invoke(app, ["eval", str(man), "--out", str(tmp_path / "o"), "--workers", "2", "--no-copies", *bad])
        assert res.exit_code == 5 and "error:" in res.output, (bad, res.output)
    fakes = tmp_path / "fakes.csv"
    fakes.write_text("path,label,group\na.mp4,fake,a\nb.mp4,fake,b\nc.mp4,fake,c\n")
    for command in (["eval", str(fakes), "--out", str(tmp_path / "o")],
                    ["train-fusion", str(fakes), "--out", str(tmp_path / "m" / "fusion.onnx")]):
        res = runner.invoke(app, command)
        assert res.exit_code == 5 and "both real and fake" in res.output, res.output
    assert not (tmp_path / "m" / "fusion.onnx").exists()


def test_a_train_fusion_that_fails_writes_no_part_of_a_model(tmp_path):
    import onnx

    import detector.fusion.train as train

    out = tmp_path / "fusion.onnx"
    out.write_bytes(b"old model")

    graph = onnx.helper.make_model(onnx.helper.make_graph([], "g", [], []))
    with pytest.raises(OSError):  # the card cannot be written (its name is taken by a folder): nothing moves
        (tmp_path / ".fusion.md.tmp").mkdir()
        train._write_model_files(out, graph, "{}", "card")
    assert out.read_bytes() == b"old model" and not out.with_suffix(".json").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".fusion.md.tmp", "fusion.onnx"]
    (tmp_path / ".fusion.md.tmp").rmdir()
    train._write_model_files(out, graph, '{"a": 1}', "card")
    assert out.read_bytes() != b"old model" and out.with_suffix(".md").read_text() == "card"


def test_bench_reports_ratios(genuine_clip):
    res = runner.invoke(app, ["bench", str(genuine_clip)])
    assert res.exit_code == 0, res.output
    for key in ("decode only", "start-up", "real-time factor", "with start-up", "scan / decode-only", "cores busy",
                "peak RSS", "left undecoded"):
        assert key in res.output
    assert "over " not in res.output  # one scan: no spread to give


def test_bench_gives_the_spread_over_several_scans(genuine_clip, monkeypatch):
    from detector import api

    scans = []
    real_scan = api.Analyzer.scan
    monkeypatch.setattr(api.Analyzer, "scan", lambda self, path, *a, **k: scans.append(path) or real_scan(self, path))
    res = runner.invoke(app, ["bench", str(genuine_clip), "--rounds", "3"])
    assert res.exit_code == 0, res.output
    assert len(scans) == 3
    (line,) = [x for x in res.output.splitlines() if x.startswith("over 3 scans:")]
    lo, hi = (float(v) for v in line.split("(")[1].split(")")[0].split("-"))
    median = float(line.split("factor median ")[1].split(" x")[0])
    assert 0 < lo <= median <= hi
    res = runner.invoke(app, ["bench", str(genuine_clip), "--rounds", "0"])
    assert res.exit_code != 0 and "rounds must be at least 1" in res.output


def test_an_internal_error_is_reported_and_other_files_still_scanned(genuine_clip, tmp_path, monkeypatch):
    from detector import api

    real_scan = api.Analyzer.scan

    def flaky(self, path, *a, **k):
        if str(path).endswith("boom.mp4"):
            raise RuntimeError("simulated bug")
        return real_scan(self, path, *a, **k)

    monkeypatch.setattr(api.Analyzer, "scan", flaky)
    boom = tmp_path / "boom.mp4"
    boom.write_bytes(genuine_clip.read_bytes())
    out = tmp_path / "all.json"
    res = runner.invoke(app, ["scan", str(boom), str(genuine_clip), "--json", str(out), "-q"])
    assert res.exit_code == 1
    assert "internal error" in res.output and "simulated bug" in res.output
    assert len(json.loads(out.read_text())) == 1


def test_a_reader_that_goes_away_stops_the_printing_not_the_scan(tmp_path):
    # `detector scan a.mp4 b.mp4 --json all.json | head -1`: stdout closes after the first line; the reports still
    # reach --json and the exit code still says how the scans went (it was 1, with no JSON, when EPIPE escaped)
    import subprocess
    import sys
    from pathlib import Path

    web_fakes = Path(__file__).resolve().parent / "web" / "web_fakes.py"
    script = tmp_path / "scan_with_stand_in.py"
    script.write_text(f"""
import importlib.util, sys
spec = importlib.util.spec_from_file_location("web_fakes", {str(web_fakes)!r})
fakes = importlib.util.module_from_spec(spec)
spec.loader.exec_module(fakes)
import detector.api

class StandIn:
    def __init__(self, options=None): pass
    def scan(self, path, progress=None, should_stop=None): return fakes.fake_report(str(path))
    def __enter__(self): return self
    def __exit__(self, *exc): pass

detector.api.Analyzer = StandIn
from detector.cli import app
sys.argv = ["detector"] + sys.argv[1:]
app()
""")
    import importlib.util

    spec = importlib.util.spec_from_file_location("web_fakes_for_cli", web_fakes)
    fakes = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fakes)
    clips = [fakes.write_tiny_video(tmp_path / f"call{i}.mp4") for i in range(2)]
    out = tmp_path / "all.json"
    proc = subprocess.Popen([sys.executable, str(script), "scan", *map(str, clips), "--json", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # the reader is gone before the first line is printed
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err.decode()
    assert b"Traceback" not in err and b"BrokenPipe" not in err
    assert [r["video"]["file_name"] for r in json.loads(out.read_text())] == ["call0.mp4", "call1.mp4"]
