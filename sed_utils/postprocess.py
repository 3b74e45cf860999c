"""Post-processing: model scores -> events and segment decisions (numpy, pandas, scipy; no torch).

Why apart from the model and the metrics: how scores become events (a median filter, per-class
thresholds, merging runs of active windows) is a choice of its own, made on validation data and
shown in notebook 06; DESED_task keeps it in ``utils/postprocess.py`` for the same reason.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy.ndimage import median_filter

from sed_utils.metrics.f1 import EVENT_COLUMNS, event_metrics

__all__ = [
    "EVENT_THRESHOLDS",
    "choose_event_postprocessing",
    "choose_min_durations",
    "curve_events",
    "curve_segment_scores",
    "events_of_curves",
    "smooth_curves",
    "window_bounds",
    "classwise_median_filter",
    "frames_to_events",
    "event_frame",
    "segments_to_events",
    "scores_to_events",
    "pool_windows_to_segments",
    "segment_scores_from_windows",
]

# 4. Predictions -> events
# --------------------------------------------------------------------------------------------
def segments_to_events(
    filenames: Iterable[str],
    starts: Iterable[float],
    ends: Iterable[float],
    binary: np.ndarray,
    labels: list[str],
) -> pd.DataFrame:
    """Turn per-segment 0/1 decisions into events: consecutive active segments of a class merge
    (notebook 06, through evaluate_run).

    Two segments are consecutive when the next starts where the previous ended (within 1 us), so
    a gap (a missing segment) splits the event. For the segment-based metric merging changes
    nothing (an event covering segments 2-4 activates the same segments as three 1 s events), but
    it gives the event list a reader would expect and that the event-based metric needs.
    """
    frame = pd.DataFrame({"filename": list(filenames), "start": np.asarray(starts, float),
                          "end": np.asarray(ends, float)})
    binary = np.asarray(binary)
    if binary.shape != (len(frame), len(labels)):
        raise ValueError(f"segments_to_events: binary has shape {binary.shape}, expected "
                         f"({len(frame)}, {len(labels)}) = (segments, labels)")
    rows: list[tuple[str, float, float, str]] = []
    order = np.lexsort((frame["start"].to_numpy(), frame["filename"].to_numpy()))
    names = frame["filename"].to_numpy()[order]
    st = frame["start"].to_numpy()[order]
    en = frame["end"].to_numpy()[order]
    active = binary[order] > 0
    for c, label in enumerate(labels):
        current: list[Any] | None = None  # [filename, onset, offset]
        for i in np.flatnonzero(active[:, c]):
            if current is not None and current[0] == names[i] and abs(st[i] - current[2]) < 1e-6:
                current[2] = max(current[2], en[i])
                continue
            if current is not None:
                rows.append((current[0], current[1], current[2], label))
            current = [names[i], st[i], en[i]]
        if current is not None:
            rows.append((current[0], current[1], current[2], label))
    return event_frame(rows)


def event_frame(rows: list[tuple[str, float, float, str]]) -> pd.DataFrame:
    """Rows ``(filename, onset, offset, event_label)`` as a sorted event table (notebook 06)."""
    out = pd.DataFrame(rows, columns=EVENT_COLUMNS).astype(
        {"filename": str, "onset": float, "offset": float, "event_label": str})
    return out.sort_values(["filename", "onset", "event_label"], kind="stable").reset_index(drop=True)


def scores_to_events(
    times: np.ndarray,
    scores: np.ndarray,
    thresholds: float | np.ndarray,
    hop: float,
    window: float,
    labels: list[str],
    median_filter_frames: int | Sequence[int] = 1,
    *,
    filename: str = "",
    clip_seconds: float | None = None,
) -> pd.DataFrame:
    """Sliding-window scores of one clip -> events (median filter, threshold per class, merge).
    Used in notebook 06.

    The choice, in plain words: each window's score is attributed to the ``hop``-wide slice around
    the window's centre (centre +- hop/2), the finest time resolution the sliding windows have; the
    first window also covers the clip start and the last the clip end (from its start / to its end),
    since no other window is centred there. A run of active windows i..j becomes one event from
    ``times[i] - hop/2`` to ``times[j] + hop/2``, clipped to [0, clip_seconds].
    A median filter of ``median_filter_frames`` windows (odd; 1 = off; one value, or one per class
    as DESED_task's ``ClassWiseMedianFilter``) first removes blips and gaps shorter than half the
    filter, which otherwise split or invent events and cost event-based F1. The frame model's
    frames go through the same function (:func:`frames_to_events`).

    Args:
        times: window centres (s) [n_windows], evenly spaced by ``hop``.
        scores: probabilities [n_windows, C].
        thresholds: one value or one per class.
        hop, window: sliding hop and window length (s).
        filename: written into the event table.
        clip_seconds: clip length for clipping (default: end of the last window).
    """
    times = np.asarray(times, dtype=float)
    scores = np.asarray(scores, dtype=float)
    if scores.ndim != 2 or scores.shape != (len(times), len(labels)):
        raise ValueError(f"scores_to_events({filename!r}): scores shape {scores.shape}, expected "
                         f"({len(times)}, {len(labels)}) = (windows, labels)")
    thr = np.broadcast_to(np.asarray(thresholds, dtype=float), (len(labels),))
    sizes = np.broadcast_to(np.asarray(median_filter_frames, dtype=int), (len(labels),))
    if (sizes < 1).any():
        raise ValueError(f"scores_to_events({filename!r}): median_filter_frames must be >= 1, "
                         f"got {median_filter_frames}")
    if len(times) == 0:
        return event_frame([])
    active = classwise_median_filter(scores, sizes) >= thr[None, :]
    lo = times - hop / 2.0
    hi = times + hop / 2.0
    lo[0] = min(lo[0], times[0] - window / 2.0)
    hi[-1] = max(hi[-1], times[-1] + window / 2.0)
    end = float(clip_seconds) if clip_seconds is not None else float(times[-1] + window / 2.0)
    rows: list[tuple[str, float, float, str]] = []
    for c, label in enumerate(labels):
        col = active[:, c].astype(np.int8)
        edges = np.diff(np.concatenate([[0], col, [0]]))
        for a, b in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1, strict=True):
            onset, offset = max(0.0, float(lo[a])), min(end, float(hi[b]))
            if offset > onset:
                rows.append((filename, onset, offset, label))
    return event_frame(rows)


def pool_windows_to_segments(
    times: np.ndarray, scores: np.ndarray, starts: np.ndarray, ends: np.ndarray, window: float
) -> np.ndarray:
    """Segment scores from sliding-window scores: per class, the max over the windows that lie
    mostly (at least 75 %) inside the segment (notebook 06, through segment_scores_from_windows).

    Why: the segment grid hands the model each 1 s segment once, exactly aligned; an event that
    only touches a segment's edge is then heard for a fraction of a second. Windows slid every
    250 ms also hear it centred, and the max keeps the best view. With 1 s windows and segments
    the rule keeps the windows centred within 0.25 s of the segment's centre (symmetric, so no
    side is favoured). Thresholds for these scores must be chosen on the same kind of scores.

    Args:
        times: window centres (s) of one clip; scores: [n_windows, C].
        starts, ends: the clip's segment boundaries (s).
        window: window length (s).
    """
    times = np.asarray(times, dtype=float)
    scores = np.asarray(scores, dtype=float)
    out = np.zeros((len(starts), scores.shape[1]))
    lo, hi = times - window / 2.0, times + window / 2.0
    for k, (a, b) in enumerate(zip(starts, ends, strict=True)):
        overlap = np.minimum(hi, b) - np.maximum(lo, a)
        inside = overlap >= 0.75 * min(window, b - a) - 1e-9
        if not inside.any():  # a segment shorter than any window fit: take the nearest window
            inside = np.abs(times - (a + b) / 2.0) == np.abs(times - (a + b) / 2.0).min()
        out[k] = scores[inside].max(axis=0)
    return out


def segment_scores_from_windows(
    table: pd.DataFrame, windows: dict[str, tuple[np.ndarray, np.ndarray]], window: float
) -> np.ndarray:
    """:func:`pool_windows_to_segments` for every row (filename, start, end) of a segment table
    (notebook 06)."""
    out = np.zeros((len(table), next(iter(windows.values()))[1].shape[1]) if windows else (len(table), 0))
    for name, idx in table.groupby("filename", sort=False).indices.items():
        if name not in windows:
            raise KeyError(f"no sliding-window scores for {name}")
        rows = table.iloc[idx]
        t, sc = windows[name]
        out[idx] = pool_windows_to_segments(t, sc, rows["start"].to_numpy(float), rows["end"].to_numpy(float),
                                            window)
    return out


def classwise_median_filter(scores: np.ndarray, sizes: int | Sequence[int]) -> np.ndarray:
    """Median-filter each class's score curve over time with its own length (notebooks 06, 08).

    ``scores`` is ``[frames, C]``; ``sizes`` one odd length or one per class (1 = unchanged). Why
    per class, as DESED_task's ``ClassWiseMedianFilter``: a dog's barks last a few hundred ms and
    must not be smoothed away, a vacuum cleaner runs for seconds and should not be split by a dip.
    """
    scores = np.asarray(scores, dtype=float)
    sizes = np.broadcast_to(np.asarray(sizes, dtype=int), (scores.shape[1],))
    out = scores.copy()
    for c, size in enumerate(sizes):
        if size > 1:
            out[:, c] = median_filter(scores[:, c], size=int(size), mode="nearest")
    return out


def frames_to_events(
    probs: np.ndarray,
    frame_seconds: float,
    thresholds: float | np.ndarray,
    labels: list[str],
    median_filter_frames: int | Sequence[int] = 1,
    *,
    filename: str = "",
    clip_seconds: float | None = None,
) -> pd.DataFrame:
    """Frame probabilities ``[frames, C]`` of one clip -> events (notebook 08).

    Frame ``j`` covers ``[j, j + 1) * frame_seconds``, so the frames are "windows" one frame long
    and one frame apart: :func:`scores_to_events` does the filtering, thresholding and merging.
    """
    n = np.asarray(probs).shape[0]
    times = (np.arange(n) + 0.5) * frame_seconds
    end = clip_seconds if clip_seconds is not None else n * frame_seconds
    return scores_to_events(times, probs, thresholds, frame_seconds, frame_seconds, labels,
                            median_filter_frames, filename=filename, clip_seconds=end)


# --------------------------------------------------------------------------------------------
# Score curves (frame model, or sliding windows as curves) -> events; choosing the post-processing
# --------------------------------------------------------------------------------------------
#: Thresholds tried for events (per class) on the validation scenes.
EVENT_THRESHOLDS = np.round(np.arange(0.1, 0.91, 0.1), 2)


def window_bounds(times: np.ndarray, hop: float, clip_seconds: float) -> np.ndarray:
    """Sliding-window centres -> the slices each window's score stands for, as boundaries ``[n + 1]``
    (notebooks 06, 08): centre +- hop/2, the first from 0 and the last to the clip's end, as
    :func:`scores_to_events` attributes them. Lets the chunk model's scores be read as a curve."""
    times = np.asarray(times, dtype=float)
    if len(times) == 0:
        return np.zeros(1)
    inner = times[:-1] + hop / 2.0
    return np.concatenate([[0.0], inner, [max(float(clip_seconds), float(inner[-1]) if len(inner) else 0.0)]])


def curve_events(bounds: np.ndarray, scores: np.ndarray, thresholds: float | np.ndarray, labels: list[str],
                 median_filter_frames: int | Sequence[int] = 1, *, filename: str = "",
                 min_durations: float | Sequence[float] = 0.0) -> pd.DataFrame:
    """Events of one clip from a score curve (notebook 08): class-wise median filter, per-class
    threshold, each run of active frames ``a..b`` one event from ``bounds[a]`` to ``bounds[b + 1]``;
    an event shorter than its class's ``min_durations`` (seconds; one value or one per class) is
    dropped: a blip of a few frames is more often a false alarm than a sound."""
    scores = np.asarray(scores, dtype=float)
    bounds = np.asarray(bounds, dtype=float)
    if scores.ndim != 2 or scores.shape != (len(bounds) - 1, len(labels)):
        raise ValueError(f"curve_events({filename!r}): scores {scores.shape} and boundaries {bounds.shape} "
                         f"do not fit {len(labels)} labels")
    thr = np.broadcast_to(np.asarray(thresholds, dtype=float), (len(labels),))
    shortest = np.broadcast_to(np.asarray(min_durations, dtype=float), (len(labels),))
    active = classwise_median_filter(scores, median_filter_frames) >= thr[None, :]
    rows: list[tuple[str, float, float, str]] = []
    for c, label in enumerate(labels):
        edges = np.diff(np.concatenate([[0], active[:, c].astype(np.int8), [0]]))
        for a, b in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=True):
            if bounds[b] - bounds[a] >= shortest[c] - 1e-9:
                rows.append((filename, float(bounds[a]), float(bounds[b]), label))
    return event_frame(rows)


def events_of_curves(curves: dict[str, tuple[np.ndarray, np.ndarray]], thresholds: float | np.ndarray,
                     labels: list[str], median_filter_frames: int | Sequence[int] = 1, *,
                     min_durations: float | Sequence[float] = 0.0) -> pd.DataFrame:
    """:func:`curve_events` of every clip, one table (notebooks 06, 08)."""
    parts = [curve_events(b, s, thresholds, labels, median_filter_frames, filename=name,
                          min_durations=min_durations)
             for name, (b, s) in curves.items()]
    return pd.concat(parts, ignore_index=True) if parts else event_frame([])


def smooth_curves(curves: dict[str, tuple[np.ndarray, np.ndarray]], median_filter_frames: int | Sequence[int]
                  ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Every curve through :func:`classwise_median_filter` (PSDS is computed on the smoothed curves the
    events come from; notebook 08)."""
    return {k: (b, classwise_median_filter(s, median_filter_frames)) for k, (b, s) in curves.items()}


def curve_segment_scores(curves: dict[str, tuple[np.ndarray, np.ndarray]], table: pd.DataFrame) -> np.ndarray:
    """Segment scores from frame curves: per class, the max over the frames whose centre lies in the
    segment (notebook 08; "segment scores from frames: max over the segment")."""
    n_labels = next(iter(curves.values()))[1].shape[1] if curves else 0
    out = np.zeros((len(table), n_labels))
    for name, idx in table.groupby("filename", sort=False).indices.items():
        bounds, scores = curves[name]
        centres = (np.asarray(bounds)[:-1] + np.asarray(bounds)[1:]) / 2.0
        for i in idx:
            start, end = table["start"].iat[i], table["end"].iat[i]
            inside = (centres >= start) & (centres < end)
            if not inside.any():  # a segment narrower than a frame: the nearest frame
                inside = np.arange(len(centres)) == np.abs(centres - (start + end) / 2).argmin()
            out[i] = np.asarray(scores)[inside].max(axis=0)
    return out


def choose_event_postprocessing(
    curves: dict[str, tuple[np.ndarray, np.ndarray]],
    reference: pd.DataFrame,
    labels: list[str],
    filters: Sequence[int],
    thresholds: Sequence[float] = tuple(EVENT_THRESHOLDS),
    *,
    t_collar: float = 0.2,
    percentage_of_length: float = 0.2,
) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """Per class, the (median filter, threshold) pair with the best event-based F1 on VALIDATION
    curves (notebook 08).

    Every pair of the grid is scored once with sed_eval (all classes at once: a class's event F1
    depends on its own events only, so the best pair can be picked per class from one run). Ties
    go to the shortest filter, then to the threshold closest to 0.5. Returns (thresholds [C],
    filters [C], the long table ``filter, threshold, label, f1`` the choice was made on).
    """
    files = list(curves)
    rows = []
    for size in filters:
        smooth = smooth_curves(curves, int(size))
        for thr in thresholds:
            est = events_of_curves(smooth, float(thr), labels)
            m = event_metrics(reference, est, files, labels, t_collar=t_collar,
                              percentage_of_length=percentage_of_length)
            rows += [(int(size), float(thr), lab, float(np.nan_to_num(m["class_wise"][lab]["f1"])))
                     for lab in labels]
    table = pd.DataFrame(rows, columns=["filter", "threshold", "label", "f1"])
    best_thr, best_filter = np.zeros(len(labels)), np.ones(len(labels), dtype=int)
    for c, lab in enumerate(labels):
        part = table[table["label"] == lab].assign(dist=lambda d: (d["threshold"] - 0.5).abs())
        top = part.sort_values(["f1", "filter", "dist"], ascending=[False, True, True]).iloc[0]
        best_thr[c], best_filter[c] = float(top["threshold"]), int(top["filter"])
    return best_thr, best_filter, table


def choose_min_durations(
    curves: dict[str, tuple[np.ndarray, np.ndarray]],
    reference: pd.DataFrame,
    labels: list[str],
    thresholds: np.ndarray,
    filters: np.ndarray,
    candidates: Sequence[float],
    *,
    t_collar: float = 0.2,
    percentage_of_length: float = 0.2,
) -> tuple[np.ndarray, pd.DataFrame]:
    """Per class, the minimum event duration (seconds) with the best event-based F1 on VALIDATION
    curves, the thresholds and median filters already chosen (notebook 08).

    Why a step of its own after the filter: the median filter removes blips shorter than half of
    it, but a longer filter also shifts onsets and merges close barks; dropping whole events that
    stay short keeps the filter short. Chosen after the (filter, threshold) pair, not jointly: the
    joint grid would be ten times larger for 200 validation scenes. Ties go to the shortest.
    Returns (minimum durations [C], the long table ``min_duration, label, f1``).
    """
    files = list(curves)
    smooth = smooth_curves(curves, filters)
    rows = []
    for shortest in sorted(set(float(d) for d in candidates)):
        est = events_of_curves(smooth, thresholds, labels, min_durations=shortest)
        m = event_metrics(reference, est, files, labels, t_collar=t_collar,
                          percentage_of_length=percentage_of_length)
        rows += [(shortest, lab, float(np.nan_to_num(m["class_wise"][lab]["f1"]))) for lab in labels]
    table = pd.DataFrame(rows, columns=["min_duration", "label", "f1"])
    best = np.zeros(len(labels))
    for c, lab in enumerate(labels):
        part = table[table["label"] == lab].sort_values(["f1", "min_duration"], ascending=[False, True])
        best[c] = float(part["min_duration"].iloc[0])
    return best, table
