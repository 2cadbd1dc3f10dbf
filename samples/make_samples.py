"""Regenerate the bundled sample recordings (made by the project itself).

    python samples/make_samples.py

Both clips are rendered by :mod:`detector.synth` from
``samples/source/astronaut_portrait.png`` (scikit-image's bundled NASA
portrait, public domain). ``interview_faceswap.mp4`` has the generator's
FaceSwap-style live swap applied; ``interview_genuine.mp4`` does not.
No third-party footage is involved.
"""
from pathlib import Path

from detector.synth import render_call

HERE = Path(__file__).resolve().parent

if __name__ == "__main__":
    render_call(HERE / "interview_genuine.mp4", seconds=10, fps=30, size=(640, 480), swap=False, seed=7)
    render_call(HERE / "interview_faceswap.mp4", seconds=10, fps=30, size=(640, 480), swap=True, seed=7)
