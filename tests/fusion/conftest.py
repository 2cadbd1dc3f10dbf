"""Helpers shared by the fusion tests."""
from __future__ import annotations

import pytest


def _count_out_of_fold_scorings(events: list[tuple[str, set]], calibrated: bool = True) -> int:
    """How many times models scored clips, given ("fit", clips fitted) and ("score", clips scored) events in order.

    Each fold fits its model (and its inner calibration models), then scores:
    every fit since the last scoring must be disjoint from the clips scored.
    A "score" right after another is the same model scoring more rows. With
    ``calibrated``, every scoring must follow inner calibration fits too.
    """
    since: list[set] = []
    scorings = 0
    for kind, clips in events:
        if kind == "fit":
            since.append(clips)
        elif since:
            assert not calibrated or len(since) > 1, "a fold scored without an inner calibration fit"
            assert all(not (f & clips) for f in since), "a model was fitted on a clip it scored"
            since, scorings = [], scorings + 1
    return scorings


@pytest.fixture
def count_out_of_fold_scorings():
    return _count_out_of_fold_scorings
