"""The time grid of a score curve (sed_utils.labels.grid), on hand cases: events -> frame targets
(:meth:`TimeGrid.encode`), scores -> events (:meth:`TimeGrid.decode`), scores -> 1 s segment scores
(:meth:`TimeGrid.segment_scores`), the grids of frames and of sliding windows, and
:class:`PostProcessing`. 80 ms frames unless said otherwise; no model, no data on disk.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from sed_utils.labels.grid import (
    PostProcessing,
    TimeGrid,
    classwise_median_filter,
    clip_targets,
    curve_segment_scores,
    event_frame,
    events_of_curves,
    segments_to_events,
    smooth_curves,
)

LABELS = ("Dog", "Cat")
FS = 0.08  # the frame model's frames


def ev(*rows: tuple[str, float, float, str]) -> pd.DataFrame:
    return pd.DataFrame(list(rows), columns=["filename", "onset", "offset", "event_label"])


def rows(events: pd.DataFrame) -> list[tuple]:
    return [(r.filename, round(r.onset, 6), round(r.offset, 6), r.event_label) for r in events.itertuples()]


def frames_of(grid: TimeGrid, events: pd.DataFrame, label: str = "Dog") -> list[int]:
    return np.flatnonzero(grid.encode(events)[:, LABELS.index(label)]).tolist()


def window_grid(n: int = 37, hop: float = 0.25, window: float = 1.0, end: float = 10.0) -> TimeGrid:
    """The chunk model's grid on a 10 s clip: 1 s windows every 0.25 s (centres 0.5, 0.75, ..., 9.5)."""
    return TimeGrid.of_windows(LABELS, window / 2 + hop * np.arange(n), hop, end)


# ----------------------------------------------------------------------------- the grids
def test_regular_grid_frames_and_end():
    grid = TimeGrid.regular(LABELS, FS, 5)
    np.testing.assert_allclose(grid.bounds, [0.0, 0.08, 0.16, 0.24, 0.32, 0.40])
    assert grid.n_frames == 5 and grid.labels == LABELS
    # a recording that stops inside its last frame: the last frame ends with it
    short = TimeGrid.regular(list(LABELS), FS, 5, end=0.35)
    np.testing.assert_allclose(short.bounds, [0.0, 0.08, 0.16, 0.24, 0.32, 0.35])
    assert short.labels == LABELS  # a list of labels is kept as a tuple
    # an end before the last frame's start never makes the bounds go backwards
    np.testing.assert_allclose(TimeGrid.regular(LABELS, FS, 5, end=0.1).bounds[-2:], [0.32, 0.32])
    with pytest.raises(ValueError, match="frame_seconds"):
        TimeGrid.regular(LABELS, 0.0, 5)


def test_frames_for_counts_a_partial_last_frame():
    assert TimeGrid.frames_for(10.0, FS) == 125  # 10 / 0.08 = 125.000...01 in floating point: still 125
    assert TimeGrid.frames_for(10.01, FS) == 126
    assert TimeGrid.frames_for(0.0, FS) == 1


def test_window_grid_first_slice_from_zero_inner_at_centre_plus_half_hop_last_to_end():
    grid = window_grid()
    assert grid.n_frames == 37
    assert grid.bounds[0] == 0.0 and grid.bounds[-1] == 10.0
    # window i (centre 0.5 + 0.25 i) stands for centre +- hop/2 ...
    np.testing.assert_allclose(grid.bounds[1:-1], 0.625 + 0.25 * np.arange(36))
    np.testing.assert_allclose(grid.bounds[8:10], [2.375, 2.625])  # window 8 (centre 2.5)
    # ... except the first from 0 and the last to the end
    grid = TimeGrid.of_windows(LABELS, np.array([0.5, 0.75, 1.0]), 0.25, 1.5)
    np.testing.assert_allclose(grid.bounds, [0.0, 0.625, 0.875, 1.5])
    # an end before the last inner bound: the last slice ends there (never backwards)
    grid = TimeGrid.of_windows(LABELS, np.array([0.5, 0.75, 1.0]), 0.25, 0.0)
    np.testing.assert_allclose(grid.bounds, [0.0, 0.625, 0.875, 0.875])
    # a single window covers 0..end; no window gives an empty grid
    np.testing.assert_allclose(TimeGrid.of_windows(LABELS, np.array([0.5]), 0.25, 1.0).bounds, [0.0, 1.0])
    assert TimeGrid.of_windows(LABELS, np.array([]), 0.25, 1.0).n_frames == 0


# ------------------------------------------------------------------------ encode: events -> frame targets
def test_an_event_from_0_23_to_0_71_s_marks_exactly_frames_3_to_8():
    y = TimeGrid.regular(LABELS, FS, 20).encode(ev(("a.wav", 0.23, 0.71, "Dog")))
    assert y.shape == (20, 2) and y.dtype == np.float32
    assert np.flatnonzero(y[:, 0]).tolist() == [3, 4, 5, 6, 7, 8]
    assert not y[:, 1].any()


def test_half_a_frame_is_the_boundary():
    # frame 2 is 0.16-0.24 s: 40 ms of it (exactly half) counts, 39 ms does not
    grid = TimeGrid.regular(LABELS, FS, 5)
    assert frames_of(grid, ev(("a", 0.20, 0.30, "Dog"))) == [2, 3]
    assert frames_of(grid, ev(("a", 0.201, 0.30, "Dog"))) == [3]
    # the same at the offset: frame 3 is 0.24-0.32 s
    assert frames_of(grid, ev(("a", 0.10, 0.28, "Dog"))) == [1, 2, 3]
    assert frames_of(grid, ev(("a", 0.10, 0.279, "Dog"))) == [1, 2]


def test_a_click_shorter_than_half_a_frame_keeps_the_frame_of_its_midpoint():
    grid = TimeGrid.regular(LABELS, FS, 10)
    assert frames_of(grid, ev(("a", 0.50, 0.53, "Cat")), "Cat") == [6]  # midpoint 0.515 s lies in 0.48-0.56 s
    # across a frame border, 30 ms on each side: still one frame, the one holding the midpoint (0.49 s)
    assert frames_of(grid, ev(("a", 0.46, 0.52, "Cat")), "Cat") == [6]


def test_other_labels_are_ignored_and_events_past_the_end_cut():
    grid = TimeGrid.regular(LABELS, FS, 10)
    y = grid.encode(ev(("a", 0.0, 0.16, "Speech"), ("a", 0.7, 5.0, "Dog"), ("a", 0.1, 0.1, "Cat"),
                       ("a", 3.0, 4.0, "Cat")))
    assert np.flatnonzero(y[:, 0]).tolist() == [9]  # 0.72-0.80 s, the last frame
    assert not y[:, 1].any()  # a zero-length event marks nothing, and one after the end neither
    assert not grid.encode(ev()).any()  # no events: all zero


def test_encode_on_an_irregular_grid_uses_each_frames_own_length():
    # frames: 0-0.2, 0.2-1.0 (long), 1.0-1.1 (short), 1.1-2.0
    grid = TimeGrid(LABELS, np.array([0.0, 0.2, 1.0, 1.1, 2.0]))
    assert frames_of(grid, ev(("a", 0.3, 0.75, "Dog"))) == [1]  # 0.45 s of the 0.8 s frame: half or more
    assert frames_of(grid, ev(("a", 0.5, 1.1, "Dog"))) == [1, 2]
    # 0.3 s of the long frame is less than half; the short frame is covered: only it, although the
    # event's midpoint (0.9 s) lies in the long frame (the midpoint rule is for events marking nothing)
    assert frames_of(grid, ev(("a", 0.7, 1.1, "Dog"))) == [2]
    assert frames_of(grid, ev(("a", 1.05, 1.15, "Dog"))) == [2]  # 0.05 of 0.1 (half) yes, 0.05 of 0.9 no
    assert frames_of(grid, ev(("a", 1.2, 1.5, "Dog"))) == [3]  # no frame half covered: the midpoint's frame
    assert frames_of(grid, ev(("a", 0.25, 0.6, "Dog"))) == [1]  # the same in the long frame (0.35 < 0.4)


def test_decode_after_encode_gives_back_the_events_to_the_frame_resolution():
    grid = TimeGrid.regular(LABELS, FS, 125)
    on_bounds = ev(("a", 0.24, 0.72, "Dog"), ("a", 1.04, 2.0, "Cat"), ("a", 4.0, 9.92, "Dog"))
    back = grid.decode(grid.encode(on_bounds), 0.5, filename="a")
    assert rows(back) == rows(event_frame(list(on_bounds.itertuples(index=False, name=None))))
    # events off the frame bounds come back within half a frame, same labels and count
    loose = ev(("a", 0.23, 0.71, "Dog"), ("a", 1.01, 2.03, "Cat"), ("a", 3.3, 3.33, "Cat"),
               ("a", 5.55, 7.77, "Dog"))
    back = grid.decode(grid.encode(loose), 0.5, filename="a")
    want = event_frame(list(loose.itertuples(index=False, name=None)))
    assert back["event_label"].tolist() == want["event_label"].tolist()
    np.testing.assert_allclose(back[["onset", "offset"]], want[["onset", "offset"]], atol=FS / 2 + 1e-9)
    # ... on an irregular grid too
    irregular = TimeGrid(LABELS, np.array([0.0, 0.3, 0.5, 1.2, 1.3, 2.0, 3.0]))
    events = ev(("b", 0.3, 1.2, "Dog"), ("b", 2.0, 3.0, "Cat"))
    assert rows(irregular.decode(irregular.encode(events), 0.5, filename="b")) == rows(
        event_frame(list(events.itertuples(index=False, name=None))))


def test_clip_targets_are_the_union_of_the_frames():
    grid = TimeGrid.regular(LABELS, 0.1, 8)
    events = ev(("a", 0.1, 0.4, "Dog"), ("b", 0.2, 0.5, "Cat"))
    y = np.stack([grid.encode(events[events["filename"] == f]) for f in ("a", "b", "empty")])
    assert y.shape == (3, 8, 2)
    assert clip_targets(y).tolist() == [[1, 0], [0, 1], [0, 0]]
    assert clip_targets(y[0]).tolist() == [1, 0]  # one clip [T, C] -> [C]


# ----------------------------------------------------------------------------- decode: scores -> events
def test_decode_uses_the_frame_boundaries():
    grid = TimeGrid(LABELS, np.array([0.0, 0.08, 0.16, 0.24, 0.32, 0.40]))
    s = np.array([[0, 0], [0.9, 0], [0.8, 0.7], [0, 0.7], [0.6, 0]])
    out = grid.decode(s, [0.5, 0.5], filename="x")
    assert list(out.columns) == ["filename", "onset", "offset", "event_label"]
    assert rows(out) == [("x", 0.08, 0.24, "Dog"), ("x", 0.16, 0.32, "Cat"), ("x", 0.32, 0.40, "Dog")]
    assert rows(grid.decode(s, 0.5, filename="x")) == rows(out)  # one threshold for every class
    assert grid.decode(np.zeros((5, 2)), 0.5).empty  # nothing above: no events, still the columns
    assert list(grid.decode(np.zeros((5, 2)), 0.5).columns) == list(out.columns)
    # a score exactly at the threshold is active
    assert rows(grid.decode(s, [0.6, 0.7], filename="x")) == [
        ("x", 0.08, 0.24, "Dog"), ("x", 0.16, 0.32, "Cat"), ("x", 0.32, 0.40, "Dog")]


def test_scores_of_the_wrong_shape_are_refused_naming_the_file():
    grid = TimeGrid(LABELS, np.arange(4.0))
    for bad in (np.zeros((3, 3)), np.zeros((4, 2)), np.zeros(3)):
        with pytest.raises(ValueError, match="clip.wav"):
            grid.decode(bad, 0.5, filename="clip.wav")
    with pytest.raises(ValueError, match="do not fit"):
        TimeGrid(LABELS, np.arange(3.0)).decode(np.zeros((3, 2)), 0.5)


def test_decode_windows_thresholds_per_class_and_median_filter():
    grid = window_grid()
    scores = np.zeros((37, 2))
    scores[8:13, 0] = 0.9  # windows 8..12 active for Dog
    scores[20, 0] = 0.9  # a one-window blip
    scores[28:35, 0] = 0.9
    scores[31, 0] = 0.1  # a one-window gap inside a longer run
    scores[:, 1] = 0.55  # Cat above its 0.5 threshold everywhere
    raw = grid.decode(scores, [0.5, 0.5], filename="a.wav")
    dog = raw[raw.event_label == "Dog"][["onset", "offset"]].to_numpy()
    # window i centre = 0.5 + 0.25 i; event = first centre - hop/2 .. last centre + hop/2
    np.testing.assert_allclose(dog, [[2.375, 3.625], [5.375, 5.625], [7.375, 8.125], [8.375, 9.125]])
    assert raw[raw.event_label == "Cat"][["onset", "offset"]].values.tolist() == [[0.0, 10.0]]
    smooth = grid.decode(scores, [0.5, 0.5], median_filters=3, filename="a.wav")
    dog = smooth[smooth.event_label == "Dog"][["onset", "offset"]].to_numpy()
    # median over 3 windows: the blip is removed, the gap is filled, run edges stay put
    np.testing.assert_allclose(dog, [[2.375, 3.625], [7.375, 9.125]])
    assert set(smooth.filename) == {"a.wav"}
    # a higher threshold for Cat alone removes Cat and leaves Dog as it was
    none = grid.decode(scores, [0.5, 0.6], median_filters=3)
    assert set(none.event_label) == {"Dog"} and len(none) == 2


def test_decode_median_filter_per_class():
    grid = TimeGrid.regular(LABELS, FS, 12)
    s = np.zeros((12, 2))
    s[5, :] = 0.9  # a one-frame blip in both classes
    out = grid.decode(s, 0.5, median_filters=[3, 1], filename="x")
    assert rows(out) == [("x", 0.4, 0.48, "Cat")]  # Dog's filter removes its blip, Cat's (1) keeps it
    out = grid.decode(s, 0.5, median_filters=[1, 3], filename="x")
    assert rows(out) == [("x", 0.4, 0.48, "Dog")]


def test_decode_drops_events_shorter_than_their_class_minimum():
    grid = TimeGrid.regular(LABELS, FS, 20)
    s = np.zeros((20, 2))
    s[2:4, 0] = 0.9  # Dog: 0.16 s
    s[8:16, 0] = 0.9  # Dog: 0.64 s
    s[5:7, 1] = 0.9  # Cat: 0.16 s
    out = grid.decode(s, 0.5, filename="x", min_durations=[0.3, 0.16])
    kept = [(r.event_label, round(r.offset - r.onset, 2)) for r in out.itertuples()]
    assert kept == [("Cat", 0.16), ("Dog", 0.64)]  # the Cat event is exactly its minimum: kept
    assert len(grid.decode(s, 0.5)) == 3  # no minimum: every event
    assert len(grid.decode(s, 0.5, min_durations=0.17)) == 1  # one minimum for every class
    # the minimum applies after the median filter: a filter that merges two short runs keeps the result
    s2 = np.zeros((20, 2))
    s2[2:4, 0] = s2[5:7, 0] = 0.9  # two 0.16 s Dog runs one frame apart
    merged = grid.decode(s2, 0.5, median_filters=3, min_durations=0.3, filename="x")
    assert rows(merged) == [("x", 0.16, 0.56, "Dog")]


def test_classwise_median_filter_uses_each_class_length():
    s = np.zeros((9, 2))
    s[4, :] = 1.0  # a one-frame blip in both classes
    s[2:7, 1] = 1.0
    s[4, 1] = 0.0  # a one-frame gap in a long Cat event
    out = classwise_median_filter(s, [1, 3])
    assert out[:, 0].tolist() == s[:, 0].tolist()  # length 1: unchanged
    assert out[:, 1].tolist() == [0, 0, 1, 1, 1, 1, 1, 0, 0]  # the gap is filled
    assert classwise_median_filter(s, 3)[:, 0].tolist() == [0] * 9  # one length for all: the blip goes
    assert s[4, 1] == 0.0  # the input is not changed


def test_smooth_curves_filters_scores_and_keeps_bounds():
    bounds = np.arange(10) * FS
    s = np.zeros((9, 2))
    s[4, 0] = 1.0
    out = smooth_curves({"a": (bounds, s), "b": (bounds, 2 * s)}, [3, 1])
    assert list(out) == ["a", "b"]
    assert out["a"][0] is bounds
    np.testing.assert_array_equal(out["b"][1], classwise_median_filter(2 * s, [3, 1]))
    assert not out["a"][1][:, 0].any()


def test_events_of_curves_decodes_every_file():
    rng = np.random.default_rng(0)
    frames = TimeGrid.regular(LABELS, FS, 12)
    windows = window_grid()
    # "w" first: the table keeps the curves' file order, it does not sort the files by name
    curves = {"w": (windows.bounds, rng.random((37, 2))), "f": (frames.bounds, rng.random((12, 2)))}
    kw = {"median_filters": [3, 1], "min_durations": [0.0, 0.3]}
    out = events_of_curves(curves, list(LABELS), [0.5, 0.7], **kw)
    want = pd.concat([TimeGrid(LABELS, b).decode(s, [0.5, 0.7], filename=n, **kw)
                      for n, (b, s) in curves.items()], ignore_index=True)
    pd.testing.assert_frame_equal(out, want)
    assert list(dict.fromkeys(out["filename"])) == ["w", "f"]
    empty = events_of_curves({}, LABELS, 0.5)
    assert empty.empty and list(empty.columns) == ["filename", "onset", "offset", "event_label"]


def test_event_frame_sorts_and_types():
    out = event_frame([("b", 1, 2, "Dog"), ("a", 3.0, 4.0, "Cat"), ("a", 1.0, 2.0, "Dog"),
                       ("a", 1.0, 1.5, "Cat")])
    assert rows(out) == [("a", 1.0, 1.5, "Cat"), ("a", 1.0, 2.0, "Dog"), ("a", 3.0, 4.0, "Cat"),
                         ("b", 1.0, 2.0, "Dog")]
    assert out["onset"].dtype == float and out.index.tolist() == [0, 1, 2, 3]


# ----------------------------------------------------------------------------- segment scores
def test_segment_scores_are_the_max_of_the_frames_whose_centre_is_inside():
    bounds = np.arange(21) * 0.1  # 2 s of 100 ms frames
    s = np.zeros((20, 2))
    s[3, 0], s[14, 1], s[15, 0] = 0.9, 0.4, 0.2
    s[10, 1] = 0.7  # frame 1.0-1.1 s: its centre is in the second segment, not the first
    table = pd.DataFrame({"filename": ["x", "x"], "start": [0.0, 1.0], "end": [1.0, 2.0]})
    assert curve_segment_scores({"x": (bounds, s)}, LABELS, table).tolist() == [[0.9, 0.0], [0.2, 0.7]]
    grid = TimeGrid(LABELS, bounds)
    by_grid = grid.segment_scores(s, np.array([0.0, 1.0]), np.array([1.0, 2.0]))
    assert by_grid.tolist() == [[0.9, 0.0], [0.2, 0.7]]
    # a frame centred exactly on a segment border belongs to the segment it starts ([start, end))
    quarter = TimeGrid(LABELS, np.arange(9) * 0.25)  # frame 1: 0.25-0.5 s, centre 0.375
    q = np.zeros((8, 2))
    q[1, 0] = 0.9
    on_border = quarter.segment_scores(q, np.array([0.125, 0.375]), np.array([0.375, 0.625]))
    np.testing.assert_array_equal(on_border, [[0.0, 0.0], [0.9, 0.0]])


def test_a_segment_narrower_than_a_frame_takes_the_nearest_frame():
    grid = TimeGrid(LABELS, np.arange(21) * 0.1)
    s = np.zeros((20, 2))
    s[2, 0], s[3, 0] = 0.3, 0.9
    # [0.31, 0.34) holds no frame centre (0.25, 0.35): its midpoint 0.325 is nearest to frame 3's centre
    assert grid.segment_scores(s, np.array([0.31]), np.array([0.34])).tolist() == [[0.9, 0.0]]
    assert grid.segment_scores(s, np.array([0.26]), np.array([0.28])).tolist() == [[0.3, 0.0]]


def test_segment_scores_of_the_chunk_models_windows():
    """Windows every 0.25 s of 1 s windows over a 10 s clip (centres 0.5 + 0.25 i): the segment [k, k+1)
    takes the windows whose slice centre lies in it. Slices are centred on the window centres, except
    the first (0-0.625 s, centre 0.3125) and the last (9.375-10 s, centre 9.6875). So [0, 1) takes
    windows 0-1, [1, 2) windows 2-5 (centres 1.0-1.75; the window centred on the border 1.0 counts for
    the segment it starts), [2, 3) windows 6-9, ..., [9, 10) windows 34-36."""
    grid = window_grid()
    seg = np.arange(10.0)
    for k, want in [(0, [0, 1]), (1, [2, 3, 4, 5]), (2, [6, 7, 8, 9]), (5, [18, 19, 20, 21]),
                    (9, [34, 35, 36])]:
        for i in range(37):
            s = np.zeros((37, 2))
            s[i, 0] = 1.0
            took = grid.segment_scores(s, seg, seg + 1.0)[k, 0] == 1.0
            assert took == (i in want), (k, i)
    hits = grid.segment_scores(np.arange(37.0)[:, None].repeat(2, axis=1), seg, seg + 1)[:, 0]
    assert hits.tolist() == [1, 5, 9, 13, 17, 21, 25, 29, 33, 36]  # the last window of each segment


def test_curve_segment_scores_of_several_files_and_a_missing_curve():
    grid = window_grid()
    scores = np.zeros((37, 2))
    scores[11, 0] = 0.9  # centre 3.25: segment [3, 4)
    scores[0, 1] = 0.3  # the first segment's own window
    seg = np.arange(10.0)
    expected = np.zeros((10, 2))
    expected[3, 0], expected[0, 1] = 0.9, 0.3
    table = pd.DataFrame({"filename": ["b.wav"] * 10 + ["a.wav"] * 10, "start": np.tile(seg, 2),
                          "end": np.tile(seg + 1.0, 2)})
    curves = {"a.wav": (grid.bounds, scores), "b.wav": (grid.bounds, 2 * scores)}
    both = curve_segment_scores(curves, LABELS, table)
    np.testing.assert_array_equal(both, np.vstack([2 * expected, expected]))  # in the table's row order
    with pytest.raises(KeyError, match="b.wav"):
        curve_segment_scores({"a.wav": curves["a.wav"]}, LABELS, table)


# ----------------------------------------------------------------------------- segment decisions -> events
def test_segments_to_events_merges_consecutive_and_splits_gaps():
    names = ["a.wav"] * 5 + ["b.wav"] * 2
    starts = [0, 1, 2, 3, 4, 0, 1]
    binary = np.array([[1, 0], [1, 0], [0, 0], [1, 1], [1, 0], [1, 0], [1, 1]])
    order = [6, 2, 0, 5, 3, 1, 4]  # shuffled input order must not matter
    out = segments_to_events([names[i] for i in order], [starts[i] for i in order],
                             [starts[i] + 1 for i in order], binary[order], LABELS)
    want = [("a.wav", 0.0, 2.0, "Dog"), ("a.wav", 3.0, 4.0, "Cat"), ("a.wav", 3.0, 5.0, "Dog"),
            ("b.wav", 0.0, 2.0, "Dog"), ("b.wav", 1.0, 2.0, "Cat")]
    assert sorted(rows(out)) == want


def test_segments_to_events_does_not_merge_across_files_or_missing_segments():
    out = segments_to_events(["a.wav", "b.wav"], [9.0, 0.0], [10.0, 1.0], np.array([[1, 0], [1, 0]]), LABELS)
    assert len(out) == 2
    gap = segments_to_events(["a"] * 2, [0.0, 2.0], [1.0, 3.0], np.array([[1, 0], [1, 0]]), LABELS)
    assert rows(gap) == [("a", 0.0, 1.0, "Dog"), ("a", 2.0, 3.0, "Dog")]
    with pytest.raises(ValueError, match="segments, labels"):
        segments_to_events(["a"], [0.0], [1.0], np.array([[1, 0, 1]]), LABELS)


# ----------------------------------------------------------------------------- PostProcessing
POST = PostProcessing(LABELS, (0.5, 0.3), (3, 1), (0.0, 0.24), (0.4, 0.6), 0.25, "4 validation scenes")


def test_post_processing_round_trips_through_plain_json():
    d = json.loads(json.dumps(POST.to_dict()))
    assert d["labels"] == ["Dog", "Cat"] and d["median_filters"] == [3, 1]
    back = PostProcessing.from_dict(d)
    assert back == POST and isinstance(back.thresholds, tuple) and isinstance(back.median_filters[0], int)
    np_made = PostProcessing(LABELS, tuple(np.array([0.5, 0.3])), tuple(np.array([3, 1])), (0.0, 0.24),
                             (0.4, 0.6))
    assert json.loads(json.dumps(np_made.to_dict()))["median_filters"] == [3, 1]  # numpy numbers made plain
    old = {k: v for k, v in d.items() if k not in ("window_hop_seconds", "chosen_on")}
    assert PostProcessing.from_dict(old) == PostProcessing(*(getattr(POST, f) for f in (
        "labels", "thresholds", "median_filters", "min_durations", "segment_thresholds")))


def test_post_processing_decodes_like_the_grid():
    rng = np.random.default_rng(3)
    frames, windows = TimeGrid.regular(LABELS, FS, 40), window_grid()
    curves = {"f": (frames.bounds, rng.random((40, 2))), "w": (windows.bounds, rng.random((37, 2)))}
    kw = {"median_filters": POST.median_filters, "min_durations": POST.min_durations}
    for name, grid in (("f", frames), ("w", windows)):
        want = grid.decode(curves[name][1], POST.thresholds, filename=name, **kw)
        assert not want.empty
        pd.testing.assert_frame_equal(POST.decode(grid, curves[name][1], name), want)
    want = events_of_curves(curves, LABELS, POST.thresholds, **kw)
    pd.testing.assert_frame_equal(POST.events(curves), want)
    # the per-class values are used: another choice gives other events
    other = PostProcessing(LABELS, (0.3, 0.5), (1, 3), (0.24, 0.0), (0.4, 0.6))
    assert not POST.events(curves).equals(other.events(curves))
