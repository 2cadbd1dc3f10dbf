#!/bin/bash
# `detector bench` on one file with Face Mesh's search for new faces on every frame (new_face_search_s None) and
# once a second (1.0), each bench in a fresh process, 3 rounds in ABBA order (None 1.0, 1.0 None, None 1.0), so
# that a machine getting faster or slower over the runs favours neither arm. Session 18, experiments/README.md.
#   bash experiments/face_search_bench.sh [FILE]
cd "$(dirname "$0")/.." || exit 1
FILE=${1:-../shared/data/dev/clips/ffpp_c40/original_183.mp4}
for order in "None 1.0" "1.0 None" "None 1.0"; do
  for arm in $order; do
    echo "== arm new_face_search_s=$arm"
    .venv/bin/python -c "
import functools, sys
import detector.bench as b
from detector.options import ScanOptions
b.ScanOptions = functools.partial(ScanOptions, new_face_search_s=$arm)
sys.argv = ['detector', 'bench', '$FILE']
from detector.cli import app; app()" 2>&1 | grep "real-time\|scan /\|CPU\|peak\|stage"
  done
done
