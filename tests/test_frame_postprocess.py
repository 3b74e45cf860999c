"""Score curves -> events, class-wise median filters, and choosing them on validation (hand cases)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sed_utils.postprocess import (
    choose_event_postprocessing,
    choose_min_durations,
    classwise_median_filter,
    curve_events,
    curve_segment_scores,
    frames_to_events,
    scores_to_events,
    window_bounds,
)

LABELS = ["Dog", "Cat"]


def test_classwise_median_filter_uses_each_class_length():
    s = np.zeros((9, 2))
    s[4, :] = 1.0  # a one-frame blip in both classes
    s[2:7, 1] = 1.0
    s[4, 1] = 0.0  # a one-frame gap in a long Cat event
    out = classwise_median_filter(s, [1, 3])
    assert out[:, 0].tolist() == s[:, 0].tolist()  # length 1: unchanged
    assert out[:, 1].tolist() == [0, 0, 1, 1, 1, 1, 1, 0, 0]  # the gap is filled


def test_curve_events_use_the_frame_boundaries():
    bounds = np.array([0.0, 0.08, 0.16, 0.24, 0.32, 0.40])
    s = np.array([[0, 0], [0.9, 0], [0.8, 0.7], [0, 0.7], [0.6, 0]])
    ev = curve_events(bounds, s, [0.5, 0.5], LABELS, filename="x")
    assert list(ev.itertuples(index=False, name=None)) == [
        ("x", 0.08, 0.24, "Dog"), ("x", 0.16, 0.32, "Cat"), ("x", 0.32, 0.40, "Dog")]
    with pytest.raises(ValueError, match="do not fit"):
        curve_events(bounds[:3], s, 0.5, LABELS)


def test_frames_and_windows_agree_with_scores_to_events():
    rng = np.random.default_rng(0)
    s = rng.random((12, 2))
    fs = 0.08
    a = frames_to_events(s, fs, 0.5, LABELS, 3, filename="f")
    b = curve_events(np.arange(13) * fs, s, 0.5, LABELS, 3, filename="f")
    pd.testing.assert_frame_equal(a, b)
    # sliding windows (centres every 0.25 s, 1 s windows) read as a curve give the same events
    times = 0.5 + 0.25 * np.arange(37)
    w = rng.random((37, 2))
    c = scores_to_events(times, w, 0.5, 0.25, 1.0, LABELS, 1, filename="w", clip_seconds=10.0)
    d = curve_events(window_bounds(times, 0.25, 10.0), w, 0.5, LABELS, 1, filename="w")
    pd.testing.assert_frame_equal(c, d)


def test_segment_scores_are_the_max_of_the_frames_inside():
    bounds = np.arange(21) * 0.1  # 2 s of 100 ms frames
    s = np.zeros((20, 2))
    s[3, 0], s[14, 1], s[15, 0] = 0.9, 0.4, 0.2
    table = pd.DataFrame({"filename": ["x", "x"], "start": [0.0, 1.0], "end": [1.0, 2.0]})
    out = curve_segment_scores({"x": (bounds, s)}, table)
    assert out.tolist() == [[0.9, 0.0], [0.2, 0.4]]


def test_choose_event_postprocessing_picks_the_filter_that_removes_a_gap():
    # Dog: one 1.6 s event whose score dips for one frame in the middle; Cat: a clean event.
    bounds = np.arange(51) * 0.08
    s = np.zeros((50, 2))
    s[10:30, 0] = 0.8
    s[20, 0] = 0.0
    s[35:40, 1] = 0.7
    ref = pd.DataFrame([("x", 0.8, 2.4, "Dog"), ("x", 2.8, 3.2, "Cat")],
                       columns=["filename", "onset", "offset", "event_label"])
    thr, filters, table = choose_event_postprocessing({"x": (bounds, s)}, ref, LABELS, [1, 3, 5])
    assert filters.tolist() == [3, 1]  # Dog needs the filter to bridge the gap; Cat takes the shortest
    assert 0.1 <= thr[0] <= 0.7 and 0.1 <= thr[1] <= 0.6
    assert set(table.columns) == {"filter", "threshold", "label", "f1"} and table["f1"].max() == 1.0


def test_curve_events_drop_events_shorter_than_their_class_minimum():
    bounds = np.arange(21) * 0.08
    s = np.zeros((20, 2))
    s[2:4, 0] = 0.9  # Dog: 0.16 s
    s[8:16, 0] = 0.9  # Dog: 0.64 s
    s[5:7, 1] = 0.9  # Cat: 0.16 s
    ev = curve_events(bounds, s, 0.5, LABELS, filename="x", min_durations=[0.3, 0.16])
    kept = [(r.event_label, round(r.offset - r.onset, 2)) for r in ev.itertuples()]
    assert kept == [("Cat", 0.16), ("Dog", 0.64)]  # the Cat event is exactly its minimum: kept
    assert len(curve_events(bounds, s, 0.5, LABELS)) == 3  # no minimum: every event


def test_choose_min_durations_drops_blips_only_where_they_are_false_alarms():
    # Dog: one true 0.8 s event plus three 0.16 s blips (false alarms); Cat: one true 0.16 s event.
    bounds = np.arange(101) * 0.08
    s = np.zeros((100, 2))
    s[10:20, 0] = 0.9
    for start in (40, 60, 80):
        s[start:start + 2, 0] = 0.9
    s[30:32, 1] = 0.9
    ref = pd.DataFrame([("x", 0.8, 1.6, "Dog"), ("x", 2.4, 2.56, "Cat")],
                       columns=["filename", "onset", "offset", "event_label"])
    shortest, table = choose_min_durations({"x": (bounds, s)}, ref, LABELS, np.array([0.5, 0.5]),
                                           np.array([1, 1]), [0.0, 0.32, 0.64, 0.96])
    assert shortest.tolist() == [0.32, 0.0]  # Dog: the shortest that drops the blips; Cat keeps its event
    assert set(table.columns) == {"min_duration", "label", "f1"}
    assert table.query("label == 'Dog' and min_duration == 0.96")["f1"].item() == 0.0  # the true event too
