#!/bin/bash
# alternating bench runs: new_face_search_s None (MediaPipe's every-frame search) vs the candidate default 1.0
cd /work/main && source .venv/bin/activate
FILE=${1:-../shared/data/dev/clips/ffpp_c40/original_183.mp4}
for i in 1 2 3; do
  for arm in None 1.0; do
    echo "== arm new_face_search_s=$arm run $i"
    python -c "
import functools, sys
import detector.bench as b
from detector.options import ScanOptions
b.ScanOptions = functools.partial(ScanOptions, new_face_search_s=$arm)
sys.argv = ['detector', 'bench', '$FILE']
from detector.cli import app; app()" 2>&1 | grep "real-time\|scan /\|CPU\|peak\|stage"
  done
done
