"""The time axis of a score curve: events in as frame targets, scores out as events (notebooks 06, 08, 09).

Every model of the series is read the same way, as a **score curve**: one score per class for each
slice of time. :class:`TimeGrid` owns those slices (frame ``j`` spans ``bounds[j]`` to
``bounds[j + 1]`` seconds) and both directions across them, as DESED_task's ``ManyHotEncoder`` does:

- :meth:`TimeGrid.encode`: strong labels -> 0/1 frame targets (training the frame model). The rule:
  a frame is active for a class when an event of that class covers at least half of it, and an
  event shorter than half a frame still marks the frame holding its midpoint (a 40 ms click must not
  vanish). With 80 ms frames an event from 0.23 s to 0.71 s marks frames 3-8 (0.24-0.72 s).
- :meth:`TimeGrid.decode`: scores -> events. Per class a median filter (it removes blips and fills
  dips shorter than half its length), a threshold, each run of active frames one event from its
  first frame's start to its last frame's end, and events shorter than the class's minimum
  duration dropped.
- :meth:`TimeGrid.segment_scores`: scores -> the score of each fixed segment (the segment-based
  metric's 1 s segments): the highest score of the frames whose centre lies in the segment.

A frame model's grid is regular (:meth:`TimeGrid.regular`, 80 ms frames); a model with one score per
window (the chunk model) gives a grid of windows (:meth:`TimeGrid.of_windows`: each window stands
for the hop around its centre). :class:`PostProcessing` is the per-class choice :meth:`decode`
applies; it is chosen on validation data (:mod:`sed_utils.evaluate`) and travels in the checkpoint.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.ndimage import median_filter

from sed_utils.metrics.f1 import EVENT_COLUMNS

__all__ = ["TimeGrid", "PostProcessing", "ScoreCurves", "classwise_median_filter", "smooth_curves",
           "events_of_curves", "curve_segment_scores", "event_frame", "segments_to_events", "clip_targets"]

#: file name -> (frame boundaries [T + 1] in seconds, scores [T, C])
ScoreCurves = dict[str, tuple[np.ndarray, np.ndarray]]


def _per_class(values: float | Sequence[float] | np.ndarray, n: int, dtype: type = float) -> np.ndarray:
    return np.broadcast_to(np.asarray(values, dtype=dtype), (n,))


@dataclass(frozen=True, eq=False)
class TimeGrid:
    """Frames on a time axis, and the rules between events and frames (notebooks 06, 08, 09).

    Args:
        labels: the class of each score column / target column, in model output order.
        bounds: frame boundaries in seconds, increasing, ``[n_frames + 1]``: frame ``j`` spans
            ``bounds[j]`` to ``bounds[j + 1]``.
    """

    labels: tuple[str, ...]
    bounds: np.ndarray

    @classmethod
    def regular(cls, labels: Sequence[str], frame_seconds: float, n_frames: int,
                end: float | None = None) -> TimeGrid:
        """``n_frames`` frames of ``frame_seconds`` from 0; the last one ends at ``end`` when given
        (a recording that stops inside its last frame)."""
        if frame_seconds <= 0:
            raise ValueError(f"frame_seconds must be positive, got {frame_seconds}")
        bounds = np.arange(int(n_frames) + 1) * float(frame_seconds)
        if end is not None and n_frames > 0:
            bounds[-1] = max(float(end), bounds[-2])
        return cls(tuple(labels), bounds)

    @classmethod
    def of_windows(cls, labels: Sequence[str], centres: np.ndarray, hop: float, end: float) -> TimeGrid:
        """The grid of sliding windows centred at ``centres`` every ``hop`` seconds: each window's
        score stands for ``centre +- hop/2``, the first from 0 and the last to ``end``."""
        centres = np.asarray(centres, dtype=float)
        if len(centres) == 0:
            return cls(tuple(labels), np.zeros(1))
        inner = centres[:-1] + hop / 2.0
        last = max(float(end), float(inner[-1]) if len(inner) else 0.0)
        return cls(tuple(labels), np.concatenate([[0.0], inner, [last]]))

    @staticmethod
    def frames_for(seconds: float, frame_seconds: float) -> int:
        """How many frames of ``frame_seconds`` cover ``seconds`` (a partial last frame counts)."""
        return max(1, math.ceil(round(seconds / frame_seconds, 9)))

    @property
    def n_frames(self) -> int:
        return len(self.bounds) - 1

    def encode(self, events: pd.DataFrame) -> np.ndarray:
        """0/1 targets ``[n_frames, n_labels]`` of ONE clip's events (columns ``onset``, ``offset``,
        ``event_label``; labels not in :attr:`labels` are ignored, events past the last frame cut)."""
        starts, ends = self.bounds[:-1], self.bounds[1:]
        out = np.zeros((self.n_frames, len(self.labels)), dtype=np.float32)
        index = {lab: c for c, lab in enumerate(self.labels)}
        for row in events.itertuples(index=False):
            c = index.get(row.event_label)
            if c is None or not row.offset > row.onset:
                continue
            covered = np.minimum(ends, row.offset) - np.maximum(starts, row.onset)
            active = covered >= 0.5 * (ends - starts) - 1e-9
            mid = (row.onset + row.offset) / 2
            holding = np.flatnonzero((starts <= mid) & (mid < ends))
            if not active.any() and len(holding):
                active[holding[0]] = True
            out[active, c] = 1.0
        return out

    def decode(self, scores: np.ndarray, thresholds: float | Sequence[float], *,
               median_filters: int | Sequence[int] = 1, min_durations: float | Sequence[float] = 0.0,
               filename: str = "") -> pd.DataFrame:
        """Events of one clip from its scores ``[n_frames, n_labels]``: class-wise median filter,
        per-class threshold, runs of active frames, minimum duration (see the module docstring).

        Args:
            scores: the curve's scores on this grid.
            thresholds, median_filters, min_durations: one value for every class, or one per class
                (filters in frames, odd, 1 = none; durations in seconds, 0 = keep every event).
            filename: written into the event table.

        Returns:
            ``filename, onset, offset, event_label``, sorted (:func:`event_frame`).
        """
        return _typed_events(self._event_rows(scores, thresholds, median_filters, min_durations, filename))

    def _event_rows(self, scores: np.ndarray, thresholds: float | Sequence[float],
                    median_filters: int | Sequence[int], min_durations: float | Sequence[float],
                    filename: str) -> list[tuple[str, float, float, str]]:
        """:meth:`decode`'s events as row tuples in :func:`event_frame`'s order (one clip: by onset,
        then label), without the table: :func:`events_of_curves` builds one table for all clips, as a
        table per clip costs milliseconds and the choice of post-processing decodes thousands."""
        scores = np.asarray(scores, dtype=float)
        n = len(self.labels)
        if scores.ndim != 2 or scores.shape != (self.n_frames, n):
            raise ValueError(f"decode({filename!r}): scores {scores.shape} do not fit {self.n_frames} frames "
                             f"x {n} labels")
        active = classwise_median_filter(scores, median_filters) >= _per_class(thresholds, n)[None, :]
        shortest = _per_class(min_durations, n)
        rows: list[tuple[str, float, float, str]] = []
        for c, label in enumerate(self.labels):
            edges = np.diff(np.concatenate([[0], active[:, c].astype(np.int8), [0]]))
            for a, b in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=True):
                if self.bounds[b] - self.bounds[a] >= shortest[c] - 1e-9:
                    rows.append((filename, float(self.bounds[a]), float(self.bounds[b]), label))
        return sorted(rows, key=lambda row: (row[1], row[3]))

    def segment_scores(self, scores: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
        """Per segment ``[starts[k], ends[k])`` and class, the highest score of the frames whose
        centre lies in it (a segment narrower than every frame takes the nearest frame): the one
        segment rule of the series, for every model (notebooks 06, 08)."""
        scores = np.asarray(scores, dtype=float)
        centres = (self.bounds[:-1] + self.bounds[1:]) / 2.0
        out = np.zeros((len(starts), scores.shape[1]))
        for k, (a, b) in enumerate(zip(starts, ends, strict=True)):
            inside = (centres >= a) & (centres < b)
            if not inside.any():
                inside = np.arange(len(centres)) == np.abs(centres - (a + b) / 2).argmin()
            out[k] = scores[inside].max(axis=0)
        return out


@dataclass(frozen=True)
class PostProcessing:
    """Per-class post-processing of a score curve, chosen on validation data (notebooks 06, 08, 09).

    Args:
        labels: the classes, in model output order.
        thresholds: event threshold per class.
        median_filters: median filter length per class, in the curve's frames (odd; 1 = none).
        min_durations: minimum event duration per class, seconds (0 keeps every event).
        segment_thresholds: threshold per class for the segment scores (:meth:`TimeGrid.segment_scores`).
        window_hop_seconds: the hop a model with one score per window was read at when the choice was
            made (unused by frame-level models).
        chosen_on: what the values were chosen on, in words.
    """

    labels: tuple[str, ...]
    thresholds: tuple[float, ...]
    median_filters: tuple[int, ...]
    min_durations: tuple[float, ...]
    segment_thresholds: tuple[float, ...]
    window_hop_seconds: float = 0.25
    chosen_on: str = ""

    def decode(self, grid: TimeGrid, scores: np.ndarray, filename: str = "") -> pd.DataFrame:
        """:meth:`TimeGrid.decode` of one curve with these per-class values."""
        return grid.decode(scores, self.thresholds, median_filters=self.median_filters,
                           min_durations=self.min_durations, filename=filename)

    def events(self, curves: ScoreCurves) -> pd.DataFrame:
        """The events of every curve of ``curves``, one table."""
        return events_of_curves(curves, self.labels, self.thresholds, median_filters=self.median_filters,
                                min_durations=self.min_durations)

    def to_dict(self) -> dict[str, Any]:
        """Plain lists and numbers (what a checkpoint and results.json store)."""
        return {"labels": list(self.labels), "thresholds": [float(v) for v in self.thresholds],
                "median_filters": [int(v) for v in self.median_filters],
                "min_durations": [float(v) for v in self.min_durations],
                "segment_thresholds": [float(v) for v in self.segment_thresholds],
                "window_hop_seconds": float(self.window_hop_seconds), "chosen_on": str(self.chosen_on)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PostProcessing:
        """The inverse of :meth:`to_dict`."""
        return cls(tuple(d["labels"]), tuple(map(float, d["thresholds"])), tuple(map(int,
                                                                                     d["median_filters"])),
                   tuple(map(float, d["min_durations"])), tuple(map(float, d["segment_thresholds"])),
                   float(d.get("window_hop_seconds", 0.25)), str(d.get("chosen_on", "")))


def classwise_median_filter(scores: np.ndarray, sizes: int | Sequence[int]) -> np.ndarray:
    """Median-filter each class's scores ``[frames, C]`` over time with its own odd length (1 =
    unchanged), as DESED_task's ``ClassWiseMedianFilter``: barks are short and must not be smoothed
    away, a vacuum cleaner runs for seconds and should not be split by one dip (notebooks 08, 09)."""
    scores = np.asarray(scores, dtype=float)
    sizes = _per_class(sizes, scores.shape[1], int)
    out = scores.copy()
    for c, size in enumerate(sizes):
        if size > 1:
            out[:, c] = median_filter(scores[:, c], size=int(size), mode="nearest")
    return out


def smooth_curves(curves: ScoreCurves, median_filters: int | Sequence[int]) -> ScoreCurves:
    """Every curve through :func:`classwise_median_filter` (PSDS is computed on the smoothed curves the
    events come from; notebooks 06, 08)."""
    return {k: (b, classwise_median_filter(s, median_filters)) for k, (b, s) in curves.items()}


def events_of_curves(curves: ScoreCurves, labels: Sequence[str], thresholds: float | Sequence[float], *,
                     median_filters: int | Sequence[int] = 1,
                     min_durations: float | Sequence[float] = 0.0) -> pd.DataFrame:
    """:meth:`TimeGrid.decode` of every curve (name -> (bounds, scores)), one table (notebooks 06, 08).

    Args:
        curves: the score curves.
        labels: the classes, in score-column order.
        thresholds, median_filters, min_durations: one value for every class, or one per class
            (filters in frames, odd, 1 = none; durations in seconds, 0 = keep every event).

    Returns:
        ``filename, onset, offset, event_label``: the files in the order of ``curves``, each file's
        events sorted as :func:`event_frame` sorts them.
    """
    rows = [row for name, (b, s) in curves.items()
            for row in TimeGrid(tuple(labels), np.asarray(b, dtype=float))._event_rows(
                s, thresholds, median_filters, min_durations, name)]
    return _typed_events(rows)


def curve_segment_scores(curves: ScoreCurves, labels: Sequence[str], table: pd.DataFrame) -> np.ndarray:
    """:meth:`TimeGrid.segment_scores` for every row (``filename``, ``start``, ``end``) of a segment
    table, ``[rows, C]`` (notebooks 06, 08).

    Args:
        curves: the score curves, one per file of ``table``.
        labels: the classes, in score-column order.
        table: the segments: ``filename``, ``start`` and ``end`` in seconds.

    Returns:
        float64 scores ``[len(table), C]``, in the order of ``table``'s rows.

    Raises:
        KeyError: a file of ``table`` has no curve.
    """
    out = np.zeros((len(table), len(labels)))
    for name, idx in table.groupby("filename", sort=False).indices.items():
        if name not in curves:
            raise KeyError(f"no score curve for {name}")
        bounds, scores = curves[name]
        rows = table.iloc[idx]
        out[idx] = TimeGrid(tuple(labels), np.asarray(bounds, dtype=float)).segment_scores(
            scores, rows["start"].to_numpy(float), rows["end"].to_numpy(float))
    return out


def event_frame(rows: list[tuple[str, float, float, str]]) -> pd.DataFrame:
    """Rows ``(filename, onset, offset, event_label)`` as a sorted event table (notebooks 06, 08)."""
    out = _typed_events(rows)
    return out.sort_values(["filename", "onset", "event_label"], kind="stable").reset_index(drop=True)


def _typed_events(rows: list[tuple[str, float, float, str]]) -> pd.DataFrame:
    """Rows as an event table with :data:`EVENT_COLUMNS` and their types, in the rows' order."""
    return pd.DataFrame(rows, columns=EVENT_COLUMNS).astype(
        {"filename": str, "onset": float, "offset": float, "event_label": str})


def segments_to_events(filenames: Sequence[str], starts: Sequence[float], ends: Sequence[float],
                       binary: np.ndarray, labels: Sequence[str]) -> pd.DataFrame:
    """Per-segment 0/1 decisions ``[segments, C]`` as events: consecutive active segments of a class
    merge (notebook 06).

    Two segments are consecutive when the next starts where the previous ended (within 1 us), so a
    missing segment splits the event. For the segment-based metric merging changes nothing; it
    gives the event list a reader expects.

    Args:
        filenames, starts, ends: each segment's file and its start and end in seconds, ``[S]``.
        binary: the decisions ``[S, C]`` (above 0: active).
        labels: the classes, in column order.

    Returns:
        ``filename, onset, offset, event_label``, sorted (:func:`event_frame`).

    Raises:
        ValueError: ``binary`` is not ``[S, len(labels)]``.
    """
    frame = pd.DataFrame({"filename": list(filenames), "start": np.asarray(starts, float),
                          "end": np.asarray(ends, float)})
    binary = np.asarray(binary)
    if binary.shape != (len(frame), len(labels)):
        raise ValueError(f"segments_to_events: binary has shape {binary.shape}, expected "
                         f"({len(frame)}, {len(labels)}) = (segments, labels)")
    order = np.lexsort((frame["start"].to_numpy(), frame["filename"].to_numpy()))
    names, st, en = (frame[k].to_numpy()[order] for k in ("filename", "start", "end"))
    active = binary[order] > 0
    rows: list[tuple[str, float, float, str]] = []
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


def clip_targets(frames: np.ndarray) -> np.ndarray:
    """Weak labels ``[..., C]`` from frame targets ``[..., T, C]``: a class is in the clip when any
    frame has it (notebook 08)."""
    return np.asarray(frames).max(axis=-2)
