"""Active-speaker recordings: one participant at a time, the picture switching between them (ships nothing).

Most meeting recorders film the active speaker: the whole frame shows one participant's camera, then cuts to
another's. The faces before and after a cut sit in about the same place, so a tracker that follows faces by
position joins two people into one track. This probe composes such calls from the dev clips (a 1280x720 canvas,
each clip letterboxed into it, the two clips taking turns of ``--shot`` seconds, each clip's own clock running only
while it is on screen, as a recorder that films whoever speaks; 30 fps H.264 CRF 23) and scans them:

- ``make``: 19 calls of two genuine clips (the 38 genuine dev clips paired at random, no clip twice), and one
  call per fake clip with a genuine clip of another linked group as the other participant;
- ``changes``: the frame-to-frame content change (:mod:`detector.faces.shots`) between analysed frames at every
  composed cut, and the largest change inside every dev clip (which holds no composed cut);
- ``warn``: scans every call and every dev clip as a default scan does (tracks not ended at cuts) and counts those
  whose report warns that a track was carried across a cut, against the calls where a participant mixes both clips;
- ``fades``: how many composed switches the scan's cut detector finds (hard and gradual), how many cuts it finds
  away from them, and with ``--dev`` the cuts it finds in the dev clips (session 17; calls made with ``--fade``);
- ``score``: scans every call with and without shot cuts and track linking, maps each reported participant to
  the clips it holds (by the composed schedule), scores it with the grouped-CV fold models of ``detector eval``
  that never saw its clips' groups (assignments 0-2, calibrated, fitted on the copies as shipped), and prints how
  many participants were found, how often a genuine call is flagged at the eval's threshold, and how a fake's
  probability in the call compares with its probability alone.

    python experiments/speaker_view_probe.py make
    python experiments/speaker_view_probe.py changes
    python experiments/speaker_view_probe.py warn
    python experiments/speaker_view_probe.py --root /tmp/speaker-fade make --fade 0.5
    python experiments/speaker_view_probe.py --root /tmp/speaker-fade fades --fade 0.5
    python experiments/speaker_view_probe.py score --orig-cache runs/eval-pen/features.jsonl \
        --copies-dir runs/eval-aug/copies
"""
from __future__ import annotations

import argparse
import json
import sys
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # gallery_fpr_probe's fold models
from detector.evaluation import DEFAULT_LINK_NOTE, link_groups, read_manifest, split_seen  # noqa: E402
from gallery_fpr_probe import CANVAS, FPS, _duration, _frames, _letterbox, write_h264  # noqa: E402

MANIFEST = Path(__file__).resolve().parents[2] / "shared/data/dev/manifest.csv"
ROOT = Path("/tmp/speaker")


def schedule(length: float, shot: float) -> list[tuple[float, float, int, float]]:
    """(call start, call end, which clip, the clip's own time at the start) of every shot, turns alternating."""
    out, t, k = [], 0.0, 0
    own = [0.0, 0.0]
    while own[0] < length or own[1] < length:
        if own[k] < length:
            d = min(shot, length - own[k])
            out.append((t, t + d, k, own[k]))
            own[k] += d
            t += d
        k = 1 - k
    return out


def compose(paths: list[str], dst: Path, shot: float, fade: float = 0.0) -> list[tuple[float, float, int, float]]:
    """A speaker-view call of two clips taking turns (sample-and-hold to 30 fps), each as long as the shorter.

    ``fade`` > 0: each switch to the other clip is a cross-fade of that many seconds from the last picture of
    the shot before (held) to the new shot, which runs from the fade's start (a recorder that dissolves between
    cameras); the schedule's switch time is the fade's start.
    """
    length = min(_duration(p) for p in paths)
    shots = schedule(length, shot)
    sources = [_frames(p) for p in paths]
    current = [next(s) for s in sources]
    upcoming = [next(s, None) for s in sources]
    def canvases():
        i, last = 0, None
        for start, end, k, own in shots:
            outgoing = last if last is not None and last[0] != k else None
            while i / FPS < end - 1e-9:
                local = own + i / FPS - start
                while upcoming[k] is not None and upcoming[k][0] <= local:
                    current[k], upcoming[k] = upcoming[k], next(sources[k], None)
                canvas = _letterbox(current[k][1], CANVAS)
                a = (i / FPS - start) / fade if fade > 0 else 1.0
                if outgoing is not None and a < 1.0:
                    canvas = cv2.addWeighted(outgoing[1], 1.0 - a, canvas, a, 0.0)
                last = (k, canvas)
                yield canvas
                i += 1

    write_h264(dst, canvases())
    return shots


def _rows():
    return link_groups(split_seen(read_manifest(MANIFEST))[0], DEFAULT_LINK_NOTE)


def cmd_make(a: argparse.Namespace) -> None:
    ROOT.mkdir(parents=True, exist_ok=True)
    rows = _rows()
    genuine = [r for r in rows if r.label == "real"]
    fakes = [r for r in rows if r.label == "fake"]
    rng = np.random.default_rng(a.seed)
    calls = []
    order = rng.permutation(len(genuine))
    pairs = [("genuine", [genuine[order[2 * c]], genuine[order[2 * c + 1]]]) for c in range(len(genuine) // 2)]
    for f in fakes:
        others = [g for g in genuine if g.group != f.group]
        g = others[int(rng.integers(len(others)))]
        # the fake speaks first in half the calls
        pairs.append(("fake", [f, g] if len(pairs) % 2 else [g, f]))
    for c, (kind, members) in enumerate(pairs):
        dst = ROOT / f"speaker_{kind}_{c:02d}.mp4"
        shots = compose([m.path for m in members], dst, a.shot, a.fade)
        calls.append({"path": str(dst), "kind": kind, "clips": [m.rel_path for m in members],
                      "shots": [list(s) for s in shots]})
        print(dst, flush=True)
    (ROOT / "calls.json").write_text(json.dumps(calls, indent=1))


def _analysed_frames(path: str):
    """The frames of ``path`` a default scan analyses."""
    from detector.options import ScanOptions
    from detector.video import PyAVSource

    options = ScanOptions()
    with PyAVSource(path, max_side=options.max_side) as source:
        yield from source.frames(rate=Fraction(options.analysis_fps).limit_denominator(1000))


def _changes(path: str) -> list[tuple[float, float]]:
    from detector.faces.shots import ShotCutDetector

    detector, out = ShotCutDetector(), []
    for frame in _analysed_frames(path):
        c = detector.change(detector.small(frame.image))
        if c is not None:
            out.append((frame.seconds, c))
    return out


def cmd_changes(a: argparse.Namespace) -> None:
    inside = []
    for r in _rows():
        c = _changes(r.path)
        inside.append((max(v for _, v in c), r.rel_path))
    inside.sort()
    at_cuts, between = [], []
    for call in json.loads((ROOT / "calls.json").read_text()):
        shots = call["shots"]
        cuts = [b[0] for a, b in zip(shots, shots[1:]) if a[2] != b[2]]  # a clip that ran out leaves the other on
        changes = _changes(call["path"])
        # the first analysed frame at or after a cut carries the change across it
        firsts = {next(i for i, (t, _) in enumerate(changes) if t >= c - 1e-6) for c in cuts}
        for i, (_, v) in enumerate(changes):
            (at_cuts if i in firsts else between).append(v)
    q = lambda v: ", ".join(f"{p}% {np.percentile(v, p):.1f}" for p in (0, 1, 5, 50))  # noqa: E731
    print(f"inside the {len(inside)} dev clips (no composed cut), each clip's largest change: median "
          f"{np.median([m for m, _ in inside]):.1f}, largest {inside[-1][0]:.1f}; the 5 largest:")
    for m, p in inside[-5:]:
        print(f"  {m:.1f} {p}")
    print(f"at the {len(at_cuts)} composed cuts: {q(at_cuts)}; "
          f"between cuts in the composed calls: largest {max(between):.1f} of {len(between)}")


def _cuts_found(path: str) -> tuple[list[float], list[float]]:
    """The cuts a scan's detector finds in ``path`` (all, and those found as gradual switches)."""
    from detector.faces.shots import ShotCutDetector

    detector = ShotCutDetector()
    for frame in _analysed_frames(path):
        detector.update(frame.seconds, frame.image)
    return detector.cuts, detector.gradual


def cmd_fades(a: argparse.Namespace) -> None:
    """How many composed switches the cut detector finds (within the fade or ``--late`` s after it), how many cuts it
    finds away from them, and (``--dev``) the cuts it finds in the dev clips, which hold none."""
    calls = json.loads((ROOT / "calls.json").read_text())
    found = switches = away = gradual_n = 0
    missed = []
    for call in calls[:a.limit or None]:
        shots = call["shots"]
        starts = [b[0] for x, b in zip(shots, shots[1:]) if x[2] != b[2]]
        cuts, gradual = _cuts_found(call["path"])
        gradual_n += len(gradual)
        windows = [(t, t + a.fade + a.late) for t in starts]
        hit = [any(lo - 1e-6 <= c <= hi for c in cuts) for lo, hi in windows]
        found += sum(hit)
        switches += len(starts)
        away += sum(not any(lo - 1e-6 <= c <= hi for lo, hi in windows) for c in cuts)
        missed += [(Path(call["path"]).name, round(t, 2)) for t, h in zip(starts, hit) if not h]
        print(f"{Path(call['path']).name}: switches {len(starts)}, found {sum(hit)}, cuts {len(cuts)} "
              f"(gradual {len(gradual)})", flush=True)
    print(f"switches found {found} of {switches} ({found / max(switches, 1):.3f}); cuts away from a switch {away}; "
          f"cuts found as gradual {gradual_n}; missed {missed[:20]}")
    if a.dev:
        rows = read_manifest(str(MANIFEST))
        with_cuts = []
        for r in rows[:a.limit or None]:
            cuts, gradual = _cuts_found(r.path)
            if cuts:
                with_cuts.append((r.rel_path, cuts, gradual))
        print(f"dev clips with a cut: {len(with_cuts)} of {len(rows[:a.limit or None])}; with a gradual cut: "
              f"{sum(bool(g) for _, _, g in with_cuts)}; {with_cuts}")


def _on_screen(call: dict, seconds: float) -> int:
    """Which of the call's two clips is on screen at ``seconds``."""
    for start, end, k, _ in call["shots"]:
        if start <= seconds < end:
            return k
    return call["shots"][-1][2]


def cmd_score(a: argparse.Namespace) -> None:
    import detector.analysis as analysis_module
    from detector.api import Analyzer
    from detector.faces.linking import AppearanceSignature, signature_distance
    from detector.options import ScanOptions

    from gallery_fpr_probe import FoldModels

    # the cached features' options: with cuts detected, no dev clip's features change (measured, session 14)
    fm = FoldModels(a.orig_cache, a.copies_dir, options=ScanOptions(use_fusion=False, shot_cuts=a.cache_cuts))
    calls = json.loads((ROOT / "calls.json").read_text())
    if a.limit:
        calls = calls[:a.limit]
    # the tracks before they are joined, to measure the appearance distances the joining decides on
    captured: list = []
    original_join = analysis_module.join_participants

    def capturing_join(tracks):
        # copies: joining absorbs tracks into each other in place
        captured[:] = []
        for t in tracks:
            sig = AppearanceSignature()
            sig.merge(t.appearance)
            captured.append((t.first_seen, t.last_seen, t.frames, sig))
        return original_join(tracks)

    analysis_module.join_participants = capturing_join
    distances = {"same": [], "different": []}
    results = {arm: [] for arm in ("without cuts", "with cuts")}
    crossed = []  # per call: did the scan without cuts carry a track across one (what --auto-speaker-view reads)
    for call in calls:
        groups = [fm.by_path[c].group for c in call["clips"]]
        for arm, cuts in (("without cuts", False), ("with cuts", True)):
            captured.clear()
            options = ScanOptions(use_fusion=False, shot_cuts=cuts)
            analyzer = Analyzer(options)
            try:
                analysis = analyzer.analyse(call["path"])
            finally:
                analyzer.close()
            if not cuts:
                crossed.append(bool(analysis.cuts_crossed))
            if cuts:
                parts = [t for t in captured if t[2] >= 3]
                for i in range(len(parts)):
                    for j in range(i + 1, len(parts)):
                        ki = _on_screen(call, (parts[i][0] + parts[i][1]) / 2)
                        kj = _on_screen(call, (parts[j][0] + parts[j][1]) / 2)
                        d = signature_distance(parts[i][3], parts[j][3])
                        distances["same" if ki == kj else "different"].append(
                            (d, Path(call["path"]).name, call["clips"][ki].split("/")[-1]))
            participants = []
            for t in analysis.tracks:
                if t.duration < options.min_track_seconds or t.frames < options.min_track_frames:
                    continue
                held = [_on_screen(call, th.seconds) for th in t.thumbnails.items]
                share = np.bincount(held, minlength=2) / max(len(held), 1)
                mixed = bool(share.min() > 0.2)
                which = [0, 1] if mixed else [int(np.argmax(share))]
                v = fm.track_vector(analysis.track_features(t))
                try:
                    p, seen = fm.oof(v, [groups[k] for k in which]), False
                except ValueError:  # no fold model held out both clips' groups: those that never saw the major one
                    p, seen = fm.oof(v, [groups[int(np.argmax(share))]]), True
                participants.append({"clips": which, "mixed": mixed, "p": p, "partly_seen": seen})
            results[arm].append((call, participants))
            print(f"{Path(call['path']).name} {arm}: " + ", ".join(
                f"{'+'.join(call['clips'][k].split('/')[-1] for k in q['clips'])} {q['p']:.2f}" for q in participants),
                flush=True)
    analysis_module.join_participants = original_join
    # --auto-speaker-view: the scan with cuts where the scan without them carried a track across one, else that scan
    results["auto (with cuts where a track was carried across one)"] = [
        (call, (results["with cuts"][i] if crossed[i] else results["without cuts"][i])[1])
        for i, call in enumerate(calls)]
    print(f"calls scanned again by the auto setting: {sum(crossed)} of {len(calls)}")

    print(f"\nthreshold (originals' out-of-fold, FPR <= 10%): {fm.high:.3f}")
    for kind in ("same", "different"):
        d = sorted(x[0] for x in distances[kind])
        if d:
            print(f"appearance distance between two turns of {kind} clips: {len(d)} pairs, min {d[0]:.1f}, "
                  f"5% {np.percentile(d, 5):.1f}, median {np.median(d):.1f}, 95% {np.percentile(d, 95):.1f}, "
                  f"max {d[-1]:.1f}")
    close = sorted(distances["different"])[:3]
    far = sorted(distances["same"])[-3:]
    print("closest different:", close, "\nfarthest same:", far)
    for arm, res in results.items():
        print(f"\n{arm}:")
        for kind in ("genuine", "fake"):
            sub = [(c, ps) for c, ps in res if c["kind"] == kind]
            if not sub:
                continue
            found = [len(ps) for _, ps in sub]
            mixed = sum(q["mixed"] for _, ps in sub for q in ps)
            seen = sum(q["partly_seen"] for _, ps in sub for q in ps)
            call_p = [max((q["p"] for q in ps), default=np.nan) for _, ps in sub]
            flagged = [p >= fm.high for p in call_p if np.isfinite(p)]
            line = (f"  {kind}: {len(sub)} calls; participants judged per call {np.bincount(found).tolist()} "
                    f"(count of calls with 0, 1, 2, ...); tracks mixing both clips {mixed} (scored by models that saw the "
                    f"minor clip: {seen}); calls flagged "
                    f"{np.mean(flagged):.3f} ({sum(flagged)} of {len(flagged)})")
            if kind == "genuine":
                alone = [max(fm.alone[c] for c in call["clips"]) for call, _ in sub]
                line += (f"; the same two clips alone would flag {np.mean([p >= fm.high for p in alone]):.3f}; "
                         f"call P minus the larger P alone: median {np.nanmedian(np.array(call_p) - alone):+.3f}")
            else:
                fake_alone, fake_in = [], []
                for call, ps in sub:
                    k = next(i for i, c in enumerate(call["clips"]) if fm.by_path[c].label == "fake")
                    fake_alone.append(fm.alone[call["clips"][k]])
                    own = [q["p"] for q in ps if k in q["clips"]]
                    fake_in.append(max(own) if own else np.nan)
                fake_alone, fake_in = np.array(fake_alone), np.array(fake_in)
                line += (f"; the fake alone would flag {np.mean(fake_alone >= fm.high):.3f}; the fake's "
                         f"participant minus the fake alone: median {np.nanmedian(fake_in - fake_alone):+.3f}, "
                         f"mean {np.nanmean(fake_in - fake_alone):+.3f}")
            print(line)


def cmd_warn(a: argparse.Namespace) -> None:
    """How often a default scan (no cuts ending tracks) warns that a track was carried across a cut."""
    from detector.api import Analyzer
    from detector.options import ScanOptions

    options = ScanOptions(use_fusion=False)  # the default scan; the warning needs no fusion
    calls = json.loads((ROOT / "calls.json").read_text())
    rows = []
    with Analyzer(options) as analyzer:
        for call in calls[:a.limit or None]:
            analysis = analyzer.analyse(call["path"])
            mixed = 0
            for t in analysis.tracks:
                if t.duration < options.min_track_seconds or t.frames < options.min_track_frames:
                    continue
                held = [_on_screen(call, th.seconds) for th in t.thumbnails.items]
                mixed += bool((np.bincount(held, minlength=2) / max(len(held), 1)).min() > 0.2)
            rows.append((call["kind"], len(analysis.shot_cuts), len(analysis.cuts_crossed), mixed))
            print(f"{Path(call['path']).name}: cuts {rows[-1][1]}, carried across {rows[-1][2]}, mixed {mixed}",
                  flush=True)
        dev = [c.path for c in read_manifest(str(MANIFEST))]
        warned_dev = []
        for path in dev[:a.limit or None]:
            analysis = analyzer.analyse(path)
            if analysis.cuts_crossed:
                warned_dev.append((Path(path).name, analysis.shot_cuts, analysis.cuts_crossed))
    for kind in ("genuine", "fake"):
        sub = [r for r in rows if r[0] == kind]
        print(f"{kind}: {len(sub)} calls; warned {sum(r[2] > 0 for r in sub)}; with a participant mixing both clips "
              f"{sum(r[3] > 0 for r in sub)}, of which warned {sum(r[3] > 0 and r[2] > 0 for r in sub)}; "
              f"cuts carried across per warned call: median "
              f"{np.median([r[2] for r in sub if r[2]] or [0]):.0f} of {np.median([r[1] for r in sub]):.0f} cuts")
    print(f"dev clips warned: {len(warned_dev)} of {len(dev[:a.limit or None])} {warned_dev}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", type=Path, default=None, help="where the calls and calls.json go (/tmp/speaker)")
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make")
    m.add_argument("--shot", type=float, default=3.0, help="seconds per turn")
    m.add_argument("--seed", type=int, default=14, help="pairs the clips")
    m.add_argument("--fade", type=float, default=0.0, help="seconds of cross-fade at each switch (0: hard cuts)")
    sub.add_parser("changes")
    s = sub.add_parser("score")
    s.add_argument("--orig-cache", type=Path, required=True, help="features.jsonl of a default detector eval run")
    s.add_argument("--copies-dir", type=Path, default=None, help="that run's OUT/copies (fit on them, as shipped)")
    s.add_argument("--cache-cuts", action="store_true", help="the cache was extracted with shot cuts on")
    s.add_argument("--limit", type=int, default=0, help="score only the first N calls (a quick look)")
    f = sub.add_parser("fades")
    f.add_argument("--fade", type=float, default=0.0, help="the calls' cross-fade (s); 0 for hard cuts")
    f.add_argument("--late", type=float, default=0.25, help="a switch counts as found this long after it ends")
    f.add_argument("--dev", action="store_true", help="also count the cuts found in the 72 dev clips")
    f.add_argument("--limit", type=int, default=0, help="only the first N calls and dev clips (a quick look)")
    w = sub.add_parser("warn")
    w.add_argument("--limit", type=int, default=0, help="only the first N calls and dev clips (a quick look)")
    a = ap.parse_args()
    global ROOT
    ROOT = a.root or ROOT
    {"make": cmd_make, "changes": cmd_changes, "score": cmd_score, "warn": cmd_warn, "fades": cmd_fades}[a.cmd](a)


if __name__ == "__main__":
    main()
