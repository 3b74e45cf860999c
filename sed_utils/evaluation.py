"""Evaluation done right: the original chunk F1, DCASE (sed_eval) segment and event metrics, thresholds.

Three views of the same model, because they answer different questions and give very different
numbers:

1. :func:`reference_chunk_f1` - what the original project reported (0.497): sklearn macro F1 over
   the 1 s chunks that contain at least one reference event, fixed 0.6 threshold. Kept only so the
   old number can be compared; it is NOT the DCASE metric.
2. :func:`segment_metrics` - sed_eval's segment-based metrics (the DCASE 2019 task 4 secondary
   metric): every 1 s segment of every clip, empty ones included, micro and macro F1, error rate.
3. :func:`event_metrics` - sed_eval's event-based metrics (the DCASE 2019 task 4 primary metric):
   each predicted event must match a reference event's onset within 200 ms and its offset within
   max(200 ms, 20 % of the event's length).

Everything that computes a number is a pure function over arrays/tables (testable without a model);
:func:`evaluate_run` wires them to the checkpoint, DESED and the caches for notebook 06 and the runner.

Thresholds are chosen on the ESC-50 validation fold (:func:`choose_thresholds` on the saved
``valid_predictions.npz``), never on DESED: choosing them on the test set would make the test score
optimistic, which is exactly the flaw of the original 0.497 (its checkpoint was chosen on test data).
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sed_eval
from scipy.ndimage import median_filter
from sklearn.metrics import f1_score, multilabel_confusion_matrix, precision_recall_fscore_support

from . import atomic
from .config import Config

EVENT_COLUMNS = ["filename", "onset", "offset", "event_label"]
NONE_LABEL = "none"
DEFAULT_GRID = np.round(np.linspace(0.05, 0.95, 19), 4)

# Published numbers, NOT measured here: shown next to ours for orientation only.
REFERENCE_NUMBERS: dict[str, dict[str, Any]] = {
    "original_chunk_macro_f1": {
        "value": 0.497,
        "what": "original project: sklearn macro F1 over 1 s DESED chunks with at least one target event, "
        "threshold 0.6, 5 classes",
        "caveat": "checkpoint chosen on the test data; empty chunks ignored; not a DCASE metric",
    },
    "dcase2019_baseline_segment_f1": {
        "value": 0.5854,
        "what": "DCASE 2019 task 4 baseline, segment-based macro F1 (1 s) on DESED public eval, published",
        "caveat": "10 classes, trained on DESED training data (weak + synthetic + unlabelled): "
        "different training data and task, orientation only",
    },
    "dcase2019_baseline_event_f1": {
        "value": 0.290,
        "what": "DCASE 2019 task 4 baseline, event-based macro F1 (200 ms / 20 % collars) on DESED public "
        "eval, published",
        "caveat": "10 classes, trained on DESED training data: different training data and task, "
        "orientation only",
    },
}


# --------------------------------------------------------------------------------------------
# 1. The original project's number
# --------------------------------------------------------------------------------------------
def reference_chunk_f1(
    y_true: np.ndarray,
    probs: np.ndarray,
    threshold: float = 0.6,
    *,
    event_segments_only: bool = True,
    labels: list[str] | None = None,
) -> dict[str, Any]:
    """Macro F1 over 1 s chunks, computed the way the original project computed its 0.497.

    The original: sklearn ``f1_score(average="macro")`` over the DESED 1 s chunks that contain at
    least one reference event of the five classes (empty chunks dropped), predictions
    ``prob >= 0.6``, and the checkpoint picked by this same number on the same data.

    Why it is not the DCASE metric and reads higher than it should:

    * empty chunks are dropped, so false alarms in silence/other sounds (most of DESED) cost nothing;
    * the checkpoint (and the threshold) were chosen on the test data, so the score is optimistic;
    * it is one number per chunk table, with no notion of events, onsets or offsets.

    Here the checkpoint is chosen on the ESC-50 validation fold, so the value is comparable in
    definition but not in how the model was selected.

    Args:
        y_true: [N, C] 0/1 reference per chunk.
        probs: [N, C] predicted probabilities.
        threshold: fixed decision threshold (0.6 in the original).
        event_segments_only: drop chunks without any reference event (the original did).
        labels: class names for ``per_class_f1`` (default ``"0"``, ``"1"``...).
    """
    y_true, probs = _check_pair(y_true, probs, "reference_chunk_f1")
    mask = y_true.sum(axis=1) > 0 if event_segments_only else np.ones(len(y_true), bool)
    yt = y_true[mask]
    yp = (probs[mask] >= threshold).astype(int)
    names = _names(labels, y_true.shape[1])
    if len(yt) == 0:
        per = [float("nan")] * len(names)
        macro = float("nan")
    else:
        per = f1_score(yt, yp, average=None, zero_division=0).tolist()
        macro = float(f1_score(yt, yp, average="macro", zero_division=0))
    return {
        "macro_f1": macro,
        "per_class_f1": dict(zip(names, map(float, per), strict=True)),
        "threshold": float(threshold),
        "event_segments_only": bool(event_segments_only),
        "n_segments": int(mask.sum()),
        "n_segments_total": int(len(y_true)),
    }


# --------------------------------------------------------------------------------------------
# 2./3. sed_eval segment- and event-based metrics
# --------------------------------------------------------------------------------------------
def segment_metrics(
    reference: pd.DataFrame,
    estimated: pd.DataFrame,
    files: list[str],
    labels: list[str],
    *,
    segment_seconds: float = 1.0,
    clip_seconds: float = 10.0,
) -> dict[str, Any]:
    """sed_eval segment-based metrics over EVERY segment of EVERY file.

    A class is "active" in a 1 s segment if any event of it overlaps the segment (an event crossing
    a segment border activates both; two events of a class in one segment still count once).
    Counts are summed over all segments of all files; micro F1 = 2TP / (2TP + FP + FN) over
    (segment, class) pairs, macro F1 = mean of the per-class F1.

    Why every file is passed to sed_eval, even with no events: sed_eval only sees the files it is
    given. A file with no reference event and no detection only adds true negatives (F1 unchanged),
    but a false alarm in such a file must count - skipping the file would hide it. Why
    ``evaluated_length_seconds=clip_seconds``: without it sed_eval evaluates each file only up to its
    last event offset, silently dropping the empty segments at the end (and all of an empty file).

    sed_eval quirks handled explicitly:

    * ``empty_system_output_handling="zero_score"``: a class with reference events but no detection
      scores F1 = 0, not NaN (a NaN would be skipped by the macro average and inflate it);
    * a class with no reference segment has undefined recall: its F1 is NaN (left out of the macro
      average, listed in ``classes_without_reference``), and its error rate - which sed_eval divides
      by ~1e-16 and reports as ~1e15 - is reported as NaN and left out of the macro error rate.

    Returns a dict: ``overall`` (micro f1/precision/recall/error_rate and its parts, tp/fp/fn/tn),
    ``macro`` (f1/precision/recall/error_rate), ``class_wise`` (sed_eval's name) {label: f1,
    precision, recall, error_rate, n_ref, n_sys}, ``n_files``, ``evaluated_seconds``,
    ``classes_without_reference``.
    """
    ref_by_file, est_by_file = _events_by_file(reference, estimated, files, labels, "segment_metrics")
    metric = sed_eval.sound_event.SegmentBasedMetrics(list(labels), time_resolution=float(segment_seconds))
    metric.empty_system_output_handling = "zero_score"
    for name in files:
        metric.evaluate(ref_by_file.get(name, []), est_by_file.get(name, []),
                        evaluated_length_seconds=float(clip_seconds))
    out = _collect(metric, labels)
    out["segment_seconds"] = float(segment_seconds)
    out["evaluated_seconds"] = float(metric.evaluated_length_seconds)
    o = metric.overall
    out["overall"].update(tp=int(o["Ntp"]), fp=int(o["Nfp"]), fn=int(o["Nfn"]), tn=int(o["Ntn"]))
    return out


def event_metrics(
    reference: pd.DataFrame,
    estimated: pd.DataFrame,
    files: list[str],
    labels: list[str],
    *,
    t_collar: float = 0.2,
    percentage_of_length: float = 0.2,
) -> dict[str, Any]:
    """sed_eval event-based metrics (DCASE 2019 task 4 settings), same return shape as segment_metrics.

    A predicted event is a true positive when it has the reference event's label, its onset is within
    ``t_collar`` (200 ms) of the reference onset and its offset within max(``t_collar``,
    ``percentage_of_length`` x reference length) of the reference offset; each reference event
    matches at most one prediction (sed_eval's optimal matching). Everything else is a false
    positive (unmatched prediction) or false negative (missed reference). Files without events are
    evaluated too, so their false alarms count. Same NaN handling as :func:`segment_metrics`.
    """
    ref_by_file, est_by_file = _events_by_file(reference, estimated, files, labels, "event_metrics")
    metric = sed_eval.sound_event.EventBasedMetrics(
        list(labels),
        evaluate_onset=True,
        evaluate_offset=True,
        t_collar=float(t_collar),
        percentage_of_length=float(percentage_of_length),
        empty_system_output_handling="zero_score",
    )
    for name in files:
        metric.evaluate(ref_by_file.get(name, []), est_by_file.get(name, []))
    out = _collect(metric, labels)
    out["t_collar"] = float(t_collar)
    out["percentage_of_length"] = float(percentage_of_length)
    o = metric.overall
    out["overall"].update(tp=int(o["Ntp"]), fp=int(o["Nfp"]), fn=int(o["Nfn"]))
    return out


def _events_by_file(
    reference: pd.DataFrame, estimated: pd.DataFrame, files: list[str], labels: list[str], where: str
) -> tuple[dict[str, list[dict]], dict[str, list[dict]]]:
    """Validate both event tables and split them into sed_eval's per-file lists of dicts."""
    known = set(files)
    if len(known) != len(files):
        raise ValueError(f"{where}: 'files' contains duplicates")
    out = []
    for name, table in (("reference", reference), ("estimated", estimated)):
        missing = [c for c in EVENT_COLUMNS if c not in table.columns]
        if missing:
            raise ValueError(f"{where}: {name} events lack columns {missing} (need {EVENT_COLUMNS})")
        bad_labels = sorted(set(table["event_label"]) - set(labels))
        if bad_labels:
            raise ValueError(f"{where}: {name} events have labels {bad_labels} not in {list(labels)}")
        stray = sorted(set(table["filename"]) - known)
        if stray:
            raise ValueError(f"{where}: {name} events of files not in 'files': {stray[:5]}")
        if len(table) and (table["offset"] < table["onset"]).any():
            row = table[table["offset"] < table["onset"]].iloc[0]
            raise ValueError(f"{where}: {name} event with offset < onset in {row['filename']}: {dict(row)}")
        by_file: dict[str, list[dict]] = {}
        for row in table[EVENT_COLUMNS].itertuples(index=False):
            by_file.setdefault(row.filename, []).append(
                {"filename": row.filename, "event_label": row.event_label,
                 "onset": float(row.onset), "offset": float(row.offset)}
            )
        out.append(by_file)
    return out[0], out[1]


def _nan(x: Any) -> float:
    return float("nan") if x is None else float(x)


def _collect(metric: Any, labels: list[str]) -> dict[str, Any]:
    """sed_eval results -> our plain dict, with the undefined per-class values made NaN explicitly."""
    res = metric.results()
    ov_f, ov_er = res["overall"]["f_measure"], res["overall"]["error_rate"]
    per_class: dict[str, dict[str, float]] = {}
    without_ref: list[str] = []
    for label in labels:
        cw = res["class_wise"][label]
        n_ref, n_sys = int(cw["count"]["Nref"]), int(cw["count"]["Nsys"])
        # sed_eval's class ER divides by (Nref + eps): ~1e15 when Nref == 0. Undefined -> NaN.
        er = _nan(cw["error_rate"]["error_rate"]) if n_ref > 0 else float("nan")
        if n_ref == 0:
            without_ref.append(label)
        per_class[label] = {
            "f1": _nan(cw["f_measure"]["f_measure"]),
            "precision": _nan(cw["f_measure"]["precision"]),
            "recall": _nan(cw["f_measure"]["recall"]),
            "error_rate": er,
            "n_ref": n_ref,
            "n_sys": n_sys,
        }
    macro = {
        key: _nanmean([per_class[lab][key] for lab in labels])
        for key in ("f1", "precision", "recall", "error_rate")
    }
    return {
        "overall": {
            "f1": _nan(ov_f["f_measure"]),
            "precision": _nan(ov_f["precision"]),
            "recall": _nan(ov_f["recall"]),
            "error_rate": _nan(ov_er["error_rate"]),
            "substitution_rate": _nan(ov_er.get("substitution_rate")),
            "deletion_rate": _nan(ov_er["deletion_rate"]),
            "insertion_rate": _nan(ov_er["insertion_rate"]),
        },
        "macro": macro,
        "class_wise": per_class,
        "n_files": int(metric.evaluated_files),
        "classes_without_reference": without_ref,
    }


def _nanmean(values: Iterable[float]) -> float:
    arr = np.asarray(list(values), dtype=float)
    return float(np.nanmean(arr)) if np.isfinite(arr).any() else float("nan")


def per_class_table(metrics: dict[str, Any]) -> pd.DataFrame:
    """The ``class_wise`` part of a segment/event metrics dict as a table (one row per class)."""
    return pd.DataFrame(metrics["class_wise"]).T.rename_axis("label")


# --------------------------------------------------------------------------------------------
# 4. Predictions -> events
# --------------------------------------------------------------------------------------------
def segments_to_events(
    filenames: Iterable[str],
    starts: Iterable[float],
    ends: Iterable[float],
    binary: np.ndarray,
    labels: list[str],
) -> pd.DataFrame:
    """Turn per-segment 0/1 decisions into events: consecutive active segments of a class merge.

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
    return _event_frame(rows)


def _event_frame(rows: list[tuple[str, float, float, str]]) -> pd.DataFrame:
    out = pd.DataFrame(rows, columns=EVENT_COLUMNS).astype(
        {"filename": str, "onset": float, "offset": float, "event_label": str})
    return out.sort_values(["filename", "onset", "event_label"], kind="stable").reset_index(drop=True)


def window_starts(n_samples: int, sample_rate: int, window_seconds: float, hop_seconds: float) -> np.ndarray:
    """Start times (s) of the sliding windows over a clip, every ``hop_seconds`` from 0.

    The last window may run past the clip end by less than half a hop (zero-padded when the
    features are made), so a clip a few ms short of 10 s (DESED has some) still gets a window that
    ends at ~10 s instead of losing its last hop. A clip shorter than one window gets one window.
    """
    length = n_samples / float(sample_rate)
    n = int(math.floor((length - window_seconds) / hop_seconds + 0.5 - 1e-9)) + 1
    return np.arange(max(n, 1)) * float(hop_seconds)


def _window_batch(
    audio: np.ndarray, sample_rate: int, starts: np.ndarray, window_seconds: float
) -> np.ndarray:
    """[n_windows, window_samples] float32, zero-padded where a window runs past the clip."""
    win = int(round(window_seconds * sample_rate))
    audio = np.asarray(audio, dtype=np.float32).reshape(-1)
    out = np.zeros((len(starts), win), dtype=np.float32)
    for i, s in enumerate(starts):
        a = int(round(s * sample_rate))
        piece = audio[a:a + win]
        out[i, :len(piece)] = piece
    return out


def _normalise(features: np.ndarray, mean: Any, std: Any) -> np.ndarray:
    """(x - mean) / std with mean/std scalars or per-mel vectors; adds the channel axis -> [N, 1, M, T]."""
    mean = np.asarray(_to_numpy(mean), dtype=np.float32)
    std = np.asarray(_to_numpy(std), dtype=np.float32)
    n_mels = features.shape[-2]
    if mean.ndim == 1 and mean.shape[0] == n_mels:
        mean = mean.reshape(-1, 1)
    if std.ndim == 1 and std.shape[0] == n_mels:
        std = std.reshape(-1, 1)
    x = (np.asarray(features, dtype=np.float32) - mean) / std
    return x.reshape(x.shape[0], 1, *x.shape[-2:]).astype(np.float32, copy=False)


def _to_numpy(x: Any) -> Any:
    return x.detach().cpu().numpy() if hasattr(x, "detach") else x


def sliding_window_scores(
    model_and_norm: Any, audio: np.ndarray, sample_rate: int, cfg: Config, *, extractor: Any = None
) -> tuple[np.ndarray, np.ndarray]:
    """Class probabilities of chunk-long windows slid over a clip every ``cfg.eval.event_hop_seconds``.

    Why: the model was trained on 1 s chunks, so 1 s is the window it understands; sliding it by
    250 ms instead of 1 s gives onsets/offsets 4x finer than the segment grid, which the event-based
    metric (200 ms collars) needs. Windows are cut exactly like training chunks (same length, same
    log-mel, same normalisation) so the model sees no new kind of input.

    Args:
        model_and_norm: a ``TrainedModel`` (``model``, ``mean``, ``std``).
        audio: mono waveform at ``sample_rate``.
        extractor: a ``mel_extractor(cfg)`` module to reuse (built once per call otherwise).

    Returns:
        (times, scores): window CENTRES in seconds [n_windows], probabilities [n_windows, C].
    """
    from .audio import resample
    from .training import predict_proba

    if int(sample_rate) != cfg.audio.sample_rate:  # the mel front end is built for cfg's rate
        audio = resample(np.asarray(audio, dtype=np.float32), int(sample_rate), cfg.audio.sample_rate)
        sample_rate = cfg.audio.sample_rate
    starts = window_starts(len(audio), sample_rate, cfg.chunking.chunk_seconds, cfg.eval.event_hop_seconds)
    feats = _window_features(audio, sample_rate, starts, cfg, extractor)
    x = _normalise(feats, model_and_norm.mean, model_and_norm.std)
    scores = np.asarray(predict_proba(model_and_norm.model, x, batch_size=cfg.train.batch_size))
    return starts + cfg.chunking.chunk_seconds / 2.0, scores


def _window_features(audio: np.ndarray, sample_rate: int, starts: np.ndarray, cfg: Config,
                     extractor: Any = None) -> np.ndarray:
    import torch

    from .features import mel_extractor

    extractor = extractor if extractor is not None else mel_extractor(cfg)
    batch = _window_batch(audio, sample_rate, starts, cfg.chunking.chunk_seconds)
    with torch.no_grad():
        return extractor(torch.from_numpy(batch)).cpu().numpy()


def scores_to_events(
    times: np.ndarray,
    scores: np.ndarray,
    thresholds: float | np.ndarray,
    hop: float,
    window: float,
    labels: list[str],
    median_filter_frames: int = 1,
    *,
    filename: str = "",
    clip_seconds: float | None = None,
) -> pd.DataFrame:
    """Sliding-window scores of one clip -> events (median filter, threshold per class, merge).

    The choice, in plain words: each window's score is attributed to the ``hop``-wide slice around
    the window's centre (centre +- hop/2), the finest time resolution the sliding windows have; the
    first window also covers the clip start and the last the clip end (from its start / to its end),
    since no other window is centred there. A run of active windows i..j becomes one event from
    ``times[i] - hop/2`` to ``times[j] + hop/2``, clipped to [0, clip_seconds].
    A median filter of ``median_filter_frames`` windows (odd; 1 = off) first removes one-window
    blips and one-window gaps, which otherwise split or invent events and cost event-based F1.

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
    if median_filter_frames < 1:
        raise ValueError(f"scores_to_events({filename!r}): median_filter_frames must be >= 1, "
                         f"got {median_filter_frames}")
    if len(times) == 0:
        return _event_frame([])
    smooth = scores
    if median_filter_frames > 1:
        smooth = median_filter(scores, size=(int(median_filter_frames), 1), mode="nearest")
    active = smooth >= thr[None, :]
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
    return _event_frame(rows)


def pool_windows_to_segments(
    times: np.ndarray, scores: np.ndarray, starts: np.ndarray, ends: np.ndarray, window: float
) -> np.ndarray:
    """Segment scores from sliding-window scores: per class, the max over the windows that lie
    mostly (at least 75 %) inside the segment.

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
    """:func:`pool_windows_to_segments` for every row (filename, start, end) of a segment table."""
    out = np.zeros((len(table), next(iter(windows.values()))[1].shape[1]) if windows else (len(table), 0))
    for name, idx in table.groupby("filename", sort=False).indices.items():
        if name not in windows:
            raise KeyError(f"no sliding-window scores for {name}")
        rows = table.iloc[idx]
        t, sc = windows[name]
        out[idx] = pool_windows_to_segments(t, sc, rows["start"].to_numpy(float), rows["end"].to_numpy(float),
                                            window)
    return out


# --------------------------------------------------------------------------------------------
# 5. Thresholds
# --------------------------------------------------------------------------------------------
def f1_vs_threshold(
    y_true: np.ndarray, probs: np.ndarray, grid: np.ndarray = DEFAULT_GRID, labels: list[str] | None = None
) -> pd.DataFrame:
    """Per-class F1, precision and recall at every threshold of ``grid`` (long table).

    Columns: label, threshold, f1, precision, recall, n_pos. Used to choose thresholds on the
    validation fold, and to SHOW how DESED scores would move with the threshold (analysis only).
    """
    y_true, probs = _check_pair(y_true, probs, "f1_vs_threshold")
    names = _names(labels, y_true.shape[1])
    rows = []
    for t in np.asarray(grid, dtype=float):
        pred = (probs >= t).astype(int)
        p, r, f, _ = precision_recall_fscore_support(y_true, pred, average=None, zero_division=0,
                                                     labels=list(range(y_true.shape[1])))
        for c, name in enumerate(names):
            rows.append((name, float(t), float(f[c]), float(p[c]), float(r[c]), int(y_true[:, c].sum())))
    return pd.DataFrame(rows, columns=["label", "threshold", "f1", "precision", "recall", "n_pos"])


def choose_thresholds(
    y_true_valid: np.ndarray, probs_valid: np.ndarray, grid: np.ndarray = DEFAULT_GRID
) -> np.ndarray:
    """Per-class threshold maximising F1 on the validation fold; ties go to the value closest to 0.5.

    Why per class: the classes are not equally easy and their scores are not calibrated alike, so
    one global threshold is too strict for some and too loose for others. Why ties -> 0.5: a flat
    F1 curve (e.g. a class with no validation positives, F1 = 0 everywhere) should not push the
    threshold to an extreme.
    """
    curves = f1_vs_threshold(y_true_valid, probs_valid, grid)
    grid = np.asarray(grid, dtype=float)
    out = np.empty(np.asarray(y_true_valid).shape[1], dtype=float)
    for c, (_, part) in enumerate(curves.groupby("label", sort=False)):
        f = part["f1"].to_numpy()
        best = np.flatnonzero(np.isclose(f, f.max(), rtol=0, atol=1e-12))
        out[c] = grid[best[np.argmin(np.abs(grid[best] - 0.5))]]
    return out


def macro_f1_at_chosen_thresholds(
    y_true: np.ndarray, probs: np.ndarray, grid: np.ndarray = DEFAULT_GRID
) -> tuple[float, np.ndarray]:
    """Macro F1 with each class at its :func:`choose_thresholds` threshold, and those thresholds.

    What training's ``select_on: scenes`` scores each epoch with: it rates a model by what it
    will be used at (its own best thresholds), not at one fixed threshold that suits some epochs
    more than others.
    """
    thresholds = choose_thresholds(y_true, probs, grid)
    pred = (np.asarray(probs) >= thresholds[None, :]).astype(int)
    f = precision_recall_fscore_support(np.asarray(y_true).astype(int), pred, average=None, zero_division=0,
                                        labels=list(range(pred.shape[1])))[2]
    return float(np.mean(f)), thresholds


# --------------------------------------------------------------------------------------------
# 6. Confusion
# --------------------------------------------------------------------------------------------
def multilabel_confusion(y_true: np.ndarray, y_pred: np.ndarray, labels: list[str]) -> pd.DataFrame:
    """TP/FP/FN/TN per class (each class judged on its own: present or not), one row per class."""
    y_true, y_pred = _check_pair(y_true, y_pred, "multilabel_confusion")
    mcm = multilabel_confusion_matrix(y_true.astype(int), (y_pred > 0).astype(int))
    return pd.DataFrame(
        {"TP": mcm[:, 1, 1], "FP": mcm[:, 0, 1], "FN": mcm[:, 1, 0], "TN": mcm[:, 0, 0]},
        index=pd.Index(labels, name="label"),
    )


def class_confusion(
    y_true: np.ndarray, y_pred: np.ndarray, labels: list[str], *, normalize: bool = False
) -> pd.DataFrame:
    """Which class is predicted for segments of each reference class ("none" = no target event).

    Only segments with exactly one reference class or none are used (a segment with two reference
    classes has no single row). Rows = reference class or "none"; columns = predicted class or
    "none". A segment predicting several classes counts once in each predicted column; predicting
    nothing counts in the "none" column. With ``normalize`` each row is divided by its number of
    SEGMENTS (not by the row sum), so a cell reads "share of this row's segments where that class
    was predicted" (a row can sum to more than 1 when segments get several predictions).
    """
    y_true, y_pred = _check_pair(y_true, y_pred, "class_confusion")
    if y_true.shape[1] != len(labels):
        raise ValueError(f"class_confusion: {y_true.shape[1]} columns but {len(labels)} labels")
    names = list(labels) + [NONE_LABEL]
    counts = pd.DataFrame(0, index=pd.Index(names, name="reference"),
                          columns=pd.Index(names, name="predicted"), dtype=np.int64)
    n_rows = pd.Series(0, index=names, dtype=np.int64)
    n_ref = y_true.sum(axis=1)
    pred = y_pred > 0
    for i in np.flatnonzero(n_ref <= 1):
        row = names[int(np.argmax(y_true[i]))] if n_ref[i] == 1 else NONE_LABEL
        n_rows[row] += 1
        cols = [names[c] for c in np.flatnonzero(pred[i])] or [NONE_LABEL]
        for col in cols:
            counts.loc[row, col] += 1
    if not normalize:
        return counts
    denom = n_rows.replace(0, np.nan).astype(float)
    return counts.astype(float).div(denom, axis=0)


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------
def _check_pair(a: np.ndarray, b: np.ndarray, where: str) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a), np.asarray(b)
    if a.ndim != 2 or a.shape != b.shape:
        raise ValueError(f"{where}: expected two [N, C] arrays of one shape, got {a.shape} and {b.shape}")
    return a, b


def _names(labels: list[str] | None, n: int) -> list[str]:
    if labels is None:
        return [str(i) for i in range(n)]
    if len(labels) != n:
        raise ValueError(f"{len(labels)} labels for {n} columns")
    return list(labels)


def _json_clean(x: Any) -> Any:
    """NaN/inf -> None and numpy scalars -> Python, so results.json is strict JSON."""
    if isinstance(x, dict):
        return {str(k): _json_clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_clean(v) for v in x]
    if isinstance(x, np.ndarray):
        return _json_clean(x.tolist())
    if isinstance(x, (np.floating, float)):
        return float(x) if math.isfinite(float(x)) else None
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.bool_):
        return bool(x)
    if isinstance(x, Path):
        return str(x)
    return x


def describe_test_set(cfg: Config) -> str:
    """How figures and tables name what was evaluated (honest about synthetic data and scenes)."""
    if cfg.synthetic:
        return "SYNTHETIC demo data"
    if cfg.test_set == "scenes":
        return f"held-out ESC-50 scenes (fold {', '.join(map(str, cfg.folds.scenes_test))})"
    return "DESED public eval"


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Write strict JSON (NaN -> null) to ``path`` via a temporary file and os.replace."""
    atomic.write_json(Path(path), _json_clean(data), allow_nan=False)


def _digest(*parts: Any) -> str:
    h = hashlib.sha256()
    for p in parts:
        if isinstance(p, np.ndarray):
            h.update(str((p.shape, p.dtype.str)).encode())
            h.update(memoryview(np.ascontiguousarray(p)).cast("B"))
        elif isinstance(p, Path):
            with open(p, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 22), b""):
                    h.update(block)
        else:
            h.update(json.dumps(_json_clean(p), sort_keys=True).encode())
        h.update(b"|")
    return h.hexdigest()[:16]


# --------------------------------------------------------------------------------------------
# 7. The whole evaluation (notebook 06 and the runner)
# --------------------------------------------------------------------------------------------
def checkpoint_path(cfg: Config) -> Path:
    return cfg.run_dir / "model" / "best.pt"


def valid_predictions_path(cfg: Config) -> Path:
    return cfg.run_dir / "model" / "valid_predictions.npz"


def results_path(cfg: Config) -> Path:
    return cfg.run_dir / "results.json"


def predictions_path(cfg: Config) -> Path:
    """Per-segment and sliding-window predictions of the last evaluation (for the notebook's plots)."""
    return cfg.run_dir / "desed_predictions.npz"


def thresholds_from_validation(
    cfg: Config, labels: list[str], trained: Any = None, *, progress: bool = False
) -> tuple[np.ndarray, str]:
    """Thresholds used on the test set, chosen on validation data only (never on the test set).

    ``cfg.eval.per_class_thresholds`` off: ``cfg.eval.threshold`` for every class. On, with
    ``cfg.eval.valid_scenes > 0``: per class, F1-maximising over the 1 s segments of scenes mixed
    from the validation fold (:func:`validation_scene_predictions`; needs ``trained``). On, with
    ``valid_scenes: 0``: F1-maximising over the clean validation chunks saved by training.

    Why scenes by default: on clean chunks a dog's score is near 1, so the best threshold there is
    high; over rain or an engine the same dog scores lower, and that threshold misses it. Scenes
    from the validation fold show the threshold search the kind of input it will face.
    """
    thresholds, source, _, _ = _thresholds_and_data(cfg, labels, trained, progress)
    return thresholds, source


def _thresholds_and_data(
    cfg: Config, labels: list[str], trained: Any, progress: bool
) -> tuple[np.ndarray, str, np.ndarray, np.ndarray]:
    """:func:`thresholds_from_validation` plus the labels and probabilities they were chosen on
    (empty arrays for a global threshold), which :func:`evaluate_run` saves for notebook 06."""
    none = np.zeros((0, len(labels)))
    if not cfg.eval.per_class_thresholds:
        return np.full(len(labels), float(cfg.eval.threshold)), "global (cfg.eval.threshold)", none, none
    if cfg.eval.valid_scenes > 0:
        if trained is None:
            raise ValueError("thresholds_from_validation: eval.valid_scenes > 0 needs the trained model")
        y, probs = validation_scene_predictions(cfg, trained, progress=progress)
        folds = ", ".join(map(str, cfg.valid_folds))
        return choose_thresholds(y, probs), (
            f"per class, F1-maximising on {cfg.eval.valid_scenes} scenes mixed from ESC-50 validation "
            f"fold {folds} (1 s segments)"), y, probs
    path = valid_predictions_path(cfg)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: validation predictions not found; run notebook 05 first")
    with np.load(path) as z:
        if "probs" not in z or "labels" not in z:
            raise ValueError(f"{path}: expected arrays 'probs' and 'labels', found {list(z.keys())}")
        probs, y = z["probs"], z["labels"]
    if probs.shape != y.shape or probs.ndim != 2 or probs.shape[1] != len(labels):
        raise ValueError(f"{path}: probs {probs.shape} / labels {y.shape} do not match {len(labels)} classes")
    source = "per class, F1-maximising on the ESC-50 validation fold's chunks"
    return choose_thresholds(y, probs), source, y, probs


def validation_scene_predictions(
    cfg: Config, trained: Any, *, progress: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """0/1 labels and model probabilities ``[segments, classes]`` of the validation scenes' 1 s segments.

    The scenes come from :func:`sed_utils.scenes.validation_scenes` (validation fold only), cut
    and normalised by :func:`sed_utils.dataset.validation_scene_segments`, as in training. With
    ``cfg.eval.segment_scores: windows`` the probabilities are the segments' pooled sliding-window
    scores (:func:`pool_windows_to_segments`), as the test segments then get.
    """
    from .dataset import validation_scene_segments
    from .training import predict_proba

    if cfg.eval.segment_scores == "windows":  # the segments' own features are not needed then
        from .chunking import build_desed_segments
        from .scenes import validation_scenes

        ds = validation_scenes(cfg, progress=progress)
        table = build_desed_segments(cfg, ds)
        path = getattr(trained, "path", None)
        windows = _window_scores(cfg, trained, ds, _digest(path) if path else "", progress)
        y = table[cfg.desed_labels].to_numpy().astype(int)
        return y, segment_scores_from_windows(table, windows, cfg.chunking.chunk_seconds)
    x, y = validation_scene_segments(cfg, _to_numpy(trained.mean), _to_numpy(trained.std), progress=progress)
    probs = np.asarray(predict_proba(trained.model, x, batch_size=cfg.train.batch_size))
    return y.astype(int), probs


def load_predictions(cfg: Config) -> dict[str, Any]:
    """What :func:`evaluate_run` saved for plotting: segment table, y_true, probs, window scores.

    Returns a dict with ``segments`` (filename/start/end), ``y_true`` and ``probs`` [N, C],
    ``thresholds`` [C], ``labels``, ``windows``: {filename: (times, scores)}, and
    ``threshold_y`` / ``threshold_probs``: the validation data the thresholds were chosen on
    (validation-scene segments or validation chunks; empty for a global threshold), and
    ``grid_probs``: the segment-grid scores (``probs`` are the scores used, grid or windows).
    """
    path = predictions_path(cfg)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no saved predictions; run evaluate_run(cfg) first")
    with np.load(path, allow_pickle=False) as z:
        seg = pd.DataFrame({"filename": z["seg_filename"].astype(str), "start": z["seg_start"],
                            "end": z["seg_end"]})
        offsets = z["win_offsets"]
        names = z["win_filename"].astype(str)
        times, scores = z["win_times"], z["win_scores"]
        windows = {n: (times[offsets[i]:offsets[i + 1]], scores[offsets[i]:offsets[i + 1]])
                   for i, n in enumerate(names)}
        return {"segments": seg, "y_true": z["y_true"], "probs": z["probs"],
                "thresholds": z["thresholds"], "labels": [str(x) for x in z["labels"]], "windows": windows,
                "threshold_y": z["threshold_y"], "threshold_probs": z["threshold_probs"],
                "grid_probs": z["grid_probs"]}


def _segment_probs(cfg: Config, trained: Any, table: pd.DataFrame, feats: np.ndarray, ckpt_key: str,
                   progress: bool) -> np.ndarray:
    """Segment probabilities, cached under a key of checkpoint + features + segment table."""
    from tqdm.auto import tqdm

    from .training import predict_proba

    key = _digest(ckpt_key, feats, table[["filename", "start", "end"]].to_numpy().astype(str))
    cache = cfg.run_dir / "eval_cache" / f"segment_probs_{key}.npy"
    if cache.is_file():
        return np.load(cache)
    out = []
    step = 1024
    for a in tqdm(range(0, len(feats), step), desc="DESED segments", disable=not progress):
        x = _normalise(feats[a:a + step], trained.mean, trained.std)
        out.append(np.asarray(predict_proba(trained.model, x, batch_size=cfg.train.batch_size)))
    probs = np.concatenate(out) if out else np.zeros((0, len(cfg.desed_labels)), np.float32)
    atomic.save_npy(cache, probs.astype(np.float32))
    return probs


def _window_scores(cfg: Config, trained: Any, desed: Any, ckpt_key: str,
                   progress: bool) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Sliding-window scores of every DESED clip, cached under checkpoint + audio + parameters."""
    from tqdm.auto import tqdm

    from .audio import read_audio
    from .features import mel_extractor
    from .training import predict_proba

    files = list(desed.files)
    sizes = [desed.path(f).stat().st_size for f in files]
    # the folder is part of the key: the test and the validation scenes share file names and sizes
    key = _digest("windows-v3", ckpt_key, str(desed.audio_dir), files, sizes, cfg.audio.sample_rate,
                  cfg.to_dict()["mel"], cfg.chunking.chunk_seconds, cfg.eval.event_hop_seconds)
    cache = cfg.run_dir / "eval_cache" / f"window_scores_{key}.npz"
    if ckpt_key and cache.is_file():
        with np.load(cache) as z:
            off = z["offsets"]
            return {f: (z["times"][off[i]:off[i + 1]], z["scores"][off[i]:off[i + 1]])
                    for i, f in enumerate(files)}
    extractor = mel_extractor(cfg)
    sr = cfg.audio.sample_rate
    result: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    pending: list[tuple[str, np.ndarray, np.ndarray]] = []  # (file, times, features)

    def flush() -> None:
        if not pending:
            return
        x = _normalise(np.concatenate([p[2] for p in pending]), trained.mean, trained.std)
        scores = np.asarray(predict_proba(trained.model, x, batch_size=cfg.train.batch_size))
        a = 0
        for name, times, feats in pending:
            result[name] = (times, scores[a:a + len(feats)].astype(np.float32))
            a += len(feats)
        pending.clear()

    for name in tqdm(files, desc="DESED sliding windows", disable=not progress):
        audio = read_audio(desed.path(name), sr)
        starts = window_starts(len(audio), sr, cfg.chunking.chunk_seconds, cfg.eval.event_hop_seconds)
        pending.append((name, starts + cfg.chunking.chunk_seconds / 2.0,
                        _window_features(audio, sr, starts, cfg, extractor)))
        if sum(len(p[1]) for p in pending) >= 512:
            flush()
    flush()
    lengths = [len(result[f][0]) for f in files]
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    times = np.concatenate([result[f][0] for f in files]) if files else np.zeros(0)
    scores = (np.concatenate([result[f][1] for f in files]) if files
              else np.zeros((0, len(cfg.desed_labels)), np.float32))
    if ckpt_key:  # no key (a model without a checkpoint file): nothing to name a cache after
        atomic.save_npz(cache, offsets=offsets, times=times, scores=scores)
    return result


def evaluate_run(cfg: Config, *, progress: bool = True) -> dict[str, Any]:
    """Evaluate the best checkpoint of ``cfg.run_dir`` on DESED public eval (or the demo set).

    Steps: load the checkpoint; thresholds from validation data only (:func:`thresholds_from_validation`:
    per class on the validation-fold scenes by default, else on the validation chunks, or the global
    ``cfg.eval.threshold``); DESED segment probabilities
    (cached); sliding-window scores (cached); then the three views - original chunk F1 at
    ``cfg.eval.reference_threshold``, sed_eval segment-based over every segment, sed_eval
    event-based from the sliding windows - plus confusion counts. Writes ``results.json`` and the
    predictions for plotting (:func:`load_predictions`), and returns the results dict.
    """
    from .dataset import build_desed_features
    from .desed import load_test_set
    from .training import load_trained

    t0 = time.perf_counter()
    labels = cfg.desed_labels
    ckpt = checkpoint_path(cfg)
    if not ckpt.is_file():
        raise FileNotFoundError(f"{ckpt}: no checkpoint; run notebook 05 (training) first")
    trained = load_trained(ckpt)
    if list(trained.labels) != list(labels):
        raise ValueError(f"{ckpt}: checkpoint labels {list(trained.labels)} differ from config {labels}")
    ckpt_key = _digest(ckpt)
    thresholds, threshold_source, y_valid, probs_valid = _thresholds_and_data(cfg, labels, trained, progress)

    desed = load_test_set(cfg, progress=progress)
    table, feats = build_desed_features(cfg)
    missing = [c for c in ["filename", "start", "end", *labels] if c not in table.columns]
    if missing:
        raise ValueError(f"build_desed_features: segment table lacks columns {missing}")
    if len(table) != len(feats):
        raise ValueError(f"build_desed_features: {len(table)} segments but {len(feats)} feature rows")
    y_true = table[labels].to_numpy().astype(int)
    grid_probs = _segment_probs(cfg, trained, table, feats, ckpt_key, progress)
    windows = _window_scores(cfg, trained, desed, ckpt_key, progress)
    if cfg.eval.segment_scores == "windows":
        probs = segment_scores_from_windows(table, windows, cfg.chunking.chunk_seconds).astype(np.float32)
    else:
        probs = grid_probs
    binary = (probs >= thresholds[None, :]).astype(int)

    # View 1: the original's number (on the segment grid, as the original cut its chunks).
    chunk_ref = reference_chunk_f1(y_true, grid_probs, cfg.eval.reference_threshold, labels=labels)
    chunk_all = reference_chunk_f1(y_true, grid_probs, cfg.eval.reference_threshold, labels=labels,
                                   event_segments_only=False)

    # View 2: sed_eval segment-based over every segment.
    seg_events = segments_to_events(table["filename"], table["start"], table["end"], binary, labels)
    seg = segment_metrics(desed.events, seg_events, desed.files, labels,
                          segment_seconds=cfg.chunking.segment_seconds, clip_seconds=desed.clip_seconds)

    # View 3: sed_eval event-based from the sliding windows.
    est = [
        scores_to_events(t, s, thresholds, cfg.eval.event_hop_seconds, cfg.chunking.chunk_seconds, labels,
                         cfg.eval.median_filter_frames, filename=f, clip_seconds=desed.clip_seconds)
        for f, (t, s) in windows.items()
    ]
    win_events = pd.concat(est, ignore_index=True) if est else _event_frame([])
    ev = event_metrics(desed.events, win_events, desed.files, labels, t_collar=cfg.eval.onset_collar,
                       percentage_of_length=cfg.eval.offset_collar_ratio)
    seg_from_windows = segment_metrics(desed.events, win_events, desed.files, labels,
                                       segment_seconds=cfg.chunking.segment_seconds,
                                       clip_seconds=desed.clip_seconds)

    results: dict[str, Any] = {
        "profile": cfg.profile,
        "synthetic_data": bool(cfg.synthetic),
        "test_set": cfg.test_set,
        "test_set_name": describe_test_set(cfg),
        "config": cfg.to_dict(),
        "checkpoint": str(ckpt),
        "valid": {"macro_f1": getattr(trained, "valid_macro_f1", None),
                  "epoch": getattr(trained, "epoch", None),
                  "selected_on": getattr(trained, "selected_on", "chunks"),
                  "selection_score": getattr(trained, "best_score", None),
                  "what": "macro_f1: the kept epoch's F1 on the clean ESC-50 validation chunks (threshold "
                          "eval.threshold); selection_score: the score that kept it, on the validation "
                          "chunks or on the validation scenes (selected_on)"},
        "thresholds": dict(zip(labels, map(float, thresholds), strict=True)),
        "threshold_source": threshold_source,
        "segment_scores": cfg.eval.segment_scores,
        "n_files": len(desed.files),
        "n_segments": len(table),
        "n_reference_events": len(desed.events),
        "n_predicted_events": {"segments": len(seg_events), "sliding_windows": len(win_events)},
        # the three views
        "reference_chunk_f1": chunk_ref,
        "segment_based": seg,
        "event_based": ev,
        # extra views and confusion counts
        "chunk_f1_all_segments_reference_threshold": chunk_all,
        "segment_based_from_sliding_windows": seg_from_windows,
        "multilabel_confusion": multilabel_confusion(y_true, binary, labels).to_dict(orient="index"),
        "class_confusion": class_confusion(y_true, binary, labels).to_dict(orient="index"),
        "published_reference_numbers": REFERENCE_NUMBERS,
        "seconds": round(time.perf_counter() - t0, 2),
    }
    files = list(windows)
    offsets = np.concatenate([[0], np.cumsum([len(windows[f][0]) for f in files])]).astype(np.int64)
    atomic.save_npz(
        predictions_path(cfg),
        seg_filename=table["filename"].to_numpy().astype(str), seg_start=table["start"].to_numpy(float),
        seg_end=table["end"].to_numpy(float), y_true=y_true, probs=probs.astype(np.float32),
        grid_probs=np.asarray(grid_probs, dtype=np.float32),
        thresholds=thresholds, labels=np.asarray(labels),
        threshold_y=np.asarray(y_valid, dtype=np.float32),
        threshold_probs=np.asarray(probs_valid, dtype=np.float32),
        win_filename=np.asarray(files, dtype=str), win_offsets=offsets,
        win_times=np.concatenate([windows[f][0] for f in files]) if files else np.zeros(0),
        win_scores=(np.concatenate([windows[f][1] for f in files]) if files
                    else np.zeros((0, len(labels)), np.float32)),
    )
    results["paths"] = {"results": str(results_path(cfg)), "predictions": str(predictions_path(cfg))}
    write_json_atomic(results_path(cfg), results)
    return _json_clean(results)
