"""Post-processing: segment decisions and sliding-window scores -> events and pooled segment scores."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sed_utils.postprocess import (
    pool_windows_to_segments,
    scores_to_events,
    segment_scores_from_windows,
    segments_to_events,
)

LABELS = ["Dog", "Cat"]


# ----------------------------------------------------------------------------- predictions -> events
def test_segments_to_events_merges_consecutive_and_splits_gaps():
    names = ["a.wav"] * 5 + ["b.wav"] * 2
    starts = [0, 1, 2, 3, 4, 0, 1]
    binary = np.array([[1, 0], [1, 0], [0, 0], [1, 1], [1, 0], [1, 0], [1, 1]])
    # Shuffled input order must not matter.
    order = [6, 2, 0, 5, 3, 1, 4]
    out = segments_to_events([names[i] for i in order], [starts[i] for i in order],
                             [starts[i] + 1 for i in order], binary[order], LABELS)
    got = sorted(map(tuple, out[["filename", "onset", "offset", "event_label"]].values.tolist()))
    assert got == [("a.wav", 0.0, 2.0, "Dog"), ("a.wav", 3.0, 4.0, "Cat"), ("a.wav", 3.0, 5.0, "Dog"),
                   ("b.wav", 0.0, 2.0, "Dog"), ("b.wav", 1.0, 2.0, "Cat")]


def test_segments_to_events_does_not_merge_across_files():
    out = segments_to_events(["a.wav", "b.wav"], [9.0, 0.0], [10.0, 1.0], np.array([[1, 0], [1, 0]]), LABELS)
    assert len(out) == 2


def test_scores_to_events_thresholds_boundaries_and_median_filter():
    hop, window = 0.25, 1.0
    times = np.arange(37) * hop + window / 2  # 10 s clip
    scores = np.zeros((37, 2))
    scores[8:13, 0] = 0.9  # windows 8..12 active for Dog
    scores[20, 0] = 0.9  # a one-window blip
    scores[28:35, 0] = 0.9
    scores[31, 0] = 0.1  # a one-window gap inside a longer run
    scores[:, 1] = 0.55  # Cat above its 0.5 threshold everywhere
    raw = scores_to_events(times, scores, [0.5, 0.5], hop, window, LABELS, 1, filename="a.wav",
                           clip_seconds=10.0)
    dog = raw[raw.event_label == "Dog"][["onset", "offset"]].to_numpy()
    # window i centre = 0.5 + 0.25 i; event = first centre - hop/2 .. last centre + hop/2
    np.testing.assert_allclose(dog, [[2.375, 3.625], [5.375, 5.625], [7.375, 8.125], [8.375, 9.125]])
    cat = raw[raw.event_label == "Cat"][["onset", "offset"]].values.tolist()
    assert cat == [[0.0, 10.0]]  # first/last window cover the clip start/end
    smooth = scores_to_events(times, scores, [0.5, 0.5], hop, window, LABELS, 3, filename="a.wav",
                              clip_seconds=10.0)
    dog = smooth[smooth.event_label == "Dog"][["onset", "offset"]].to_numpy()
    # median over 3 windows: the blip is removed, the gap is filled, run edges stay put
    np.testing.assert_allclose(dog, [[2.375, 3.625], [7.375, 9.125]])
    assert set(smooth.filename) == {"a.wav"}
    # A higher per-class threshold for Cat removes it.
    none = scores_to_events(times, scores, [0.5, 0.6], hop, window, LABELS, 1)
    assert "Cat" not in set(none.event_label)


def test_scores_to_events_rejects_bad_shapes():
    with pytest.raises(ValueError, match="clip.wav"):
        scores_to_events(np.arange(3.0), np.zeros((3, 3)), 0.5, 0.25, 1.0, LABELS, 1, filename="clip.wav")


def test_pool_windows_to_segments_takes_the_max_of_windows_mostly_inside():
    starts = np.arange(0.0, 9.01, 0.25)  # 1 s windows every 0.25 s over a 10 s clip
    times = starts + 0.5
    scores = np.zeros((len(times), 2))
    scores[np.isclose(times, 2.75), 0] = 0.9  # hears [2.25, 3.25]: 75 % inside segment [2, 3)
    scores[np.isclose(times, 3.0), 1] = 0.8  # centred on a border: half in each segment, counts for none
    scores[np.isclose(times, 0.5), 1] = 0.3  # the first segment's own window
    seg_starts = np.arange(10.0)
    pooled = pool_windows_to_segments(times, scores, seg_starts, seg_starts + 1.0, window=1.0)
    expected = np.zeros((10, 2))
    expected[2, 0] = 0.9
    expected[0, 1] = 0.3
    np.testing.assert_array_equal(pooled, expected)
    table = pd.DataFrame({"filename": ["a.wav"] * 10 + ["b.wav"] * 10,
                          "start": np.tile(seg_starts, 2), "end": np.tile(seg_starts + 1.0, 2)})
    windows = {"a.wav": (times, scores), "b.wav": (times, 2 * scores)}
    both = segment_scores_from_windows(table, windows, 1.0)
    np.testing.assert_array_equal(both, np.vstack([expected, 2 * expected]))
    with pytest.raises(KeyError, match="b.wav"):
        segment_scores_from_windows(table, {"a.wav": (times, scores)}, 1.0)

