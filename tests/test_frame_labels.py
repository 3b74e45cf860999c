"""Frame targets from strong labels, on hand cases (80 ms frames unless said otherwise)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sed_utils.frame_labels import clip_targets, frame_targets, frame_targets_of_files

LABELS = ["Dog", "Cat"]


def _events(*rows: tuple[str, float, float, str]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["filename", "onset", "offset", "event_label"])


def test_an_event_from_0_23_to_0_71_s_marks_exactly_frames_3_to_8():
    y = frame_targets(_events(("a.wav", 0.23, 0.71, "Dog")), LABELS, 20, 0.08)
    assert np.flatnonzero(y[:, 0]).tolist() == [3, 4, 5, 6, 7, 8]
    assert not y[:, 1].any()


def test_half_a_frame_is_the_boundary():
    # frame 2 is 0.16-0.24 s: 40 ms of it (exactly half) counts, 39 ms does not
    half = frame_targets(_events(("a", 0.20, 0.30, "Dog")), LABELS, 5, 0.08)
    less = frame_targets(_events(("a", 0.201, 0.30, "Dog")), LABELS, 5, 0.08)
    assert half[:, 0].tolist() == [0, 0, 1, 1, 0] and less[:, 0].tolist() == [0, 0, 0, 1, 0]


def test_a_click_shorter_than_half_a_frame_keeps_the_frame_of_its_midpoint():
    y = frame_targets(_events(("a", 0.50, 0.53, "Cat")), LABELS, 10, 0.08)
    assert np.flatnonzero(y[:, 1]).tolist() == [6]  # midpoint 0.515 s lies in 0.48-0.56 s


def test_other_labels_are_ignored_and_events_past_the_end_cut():
    ev = _events(("a", 0.0, 0.16, "Speech"), ("a", 0.7, 5.0, "Dog"), ("a", 0.1, 0.1, "Cat"))
    y = frame_targets(ev, LABELS, 10, 0.08)
    assert np.flatnonzero(y[:, 0]).tolist() == [9]  # 0.72-0.80 s, the last frame
    assert not y[:, 1].any()  # a zero-length event marks nothing
    with pytest.raises(ValueError, match="frame_seconds"):
        frame_targets(ev, LABELS, 10, 0.0)


def test_clip_targets_and_files():
    ev = _events(("a", 0.1, 0.4, "Dog"), ("b", 0.2, 0.5, "Cat"))
    y = frame_targets_of_files(ev, ["a", "b", "empty"], LABELS, 8, 0.1)
    assert y.shape == (3, 8, 2)
    assert clip_targets(y).tolist() == [[1, 0], [0, 1], [0, 0]]
