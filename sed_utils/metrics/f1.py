"""Metrics: pure functions over arrays and event tables (numpy, pandas, scikit-learn, sed_eval; no torch).

Why a module without torch: a metric must be checkable by hand on a table of a few events, and
reusable on any system's output (as DESED_task's ``evaluation_measures.py``). Three views of a
model give very different numbers, because they answer different questions:

1. :func:`reference_chunk_f1` - what the original project reported (0.497): sklearn macro F1 over
   the 1 s chunks that contain at least one reference event, fixed 0.6 threshold. Kept only so the
   old number can be compared; it is NOT the DCASE metric.
2. :func:`segment_metrics` - sed_eval's segment-based metrics (the DCASE 2019 task 4 secondary
   metric): every 1 s segment of every clip, empty ones included, micro and macro F1, error rate.
3. :func:`event_metrics` - sed_eval's event-based metrics (the DCASE 2019 task 4 primary metric):
   each predicted event must match a reference event's onset within 200 ms and its offset within
   max(200 ms, 20 % of the event's length).

Thresholds (:func:`choose_thresholds`) and confusion counts are here too; choosing thresholds on
validation data only is :mod:`sed_utils.evaluate`'s job.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

# sed_eval and scikit-learn are imported where they are used: the metrics extra (pip install
# sed-utils[metrics]) holds them, and a core install that only detects never imports them

__all__ = ["EVENT_COLUMNS", "REFERENCE_NUMBERS", "reference_chunk_f1", "segment_metrics", "event_metrics",
           "per_class_table", "f1_vs_threshold", "choose_thresholds", "macro_f1_at_chosen_thresholds",
           "macro_f1"]

EVENT_COLUMNS = ["filename", "onset", "offset", "event_label"]
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
    """Macro F1 over 1 s chunks, computed the way the original project computed its 0.497
    (notebook 06, through evaluate_run).

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
    from sklearn.metrics import f1_score

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
    """sed_eval segment-based metrics over EVERY segment of EVERY file (notebook 06, through evaluate_run).

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

    Args:
        reference, estimated: event tables (``filename, onset, offset, event_label``, seconds) whose
            labels are all in ``labels`` and files all in ``files``.
        files: every file evaluated, with or without events, each once.
        segment_seconds, clip_seconds: the segments' length, and the length every file is evaluated over.

    Returns:
        A dict: ``overall`` (micro f1/precision/recall/error_rate and its parts, tp/fp/fn/tn),
        ``macro`` (f1/precision/recall/error_rate), ``class_wise`` (sed_eval's name) {label: f1,
        precision, recall, error_rate, n_ref, n_sys}, ``n_files``, ``segment_seconds``,
        ``evaluated_seconds``, ``classes_without_reference``.

    Raises:
        ValueError: ``files`` repeats a file; a table lacks a column, has a label outside ``labels``, a
            file outside ``files`` or an event with offset < onset.
    """
    import sed_eval

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
    """sed_eval event-based metrics (DCASE 2019 task 4 settings), same return shape as segment_metrics
    (notebook 06, through evaluate_run).

    A predicted event is a true positive when it has the reference event's label, its onset is within
    ``t_collar`` (200 ms) of the reference onset and its offset within max(``t_collar``,
    ``percentage_of_length`` x reference length) of the reference offset; each reference event
    matches at most one prediction (sed_eval's optimal matching). Everything else is a false
    positive (unmatched prediction) or false negative (missed reference). Files without events are
    evaluated too, so their false alarms count. Same NaN handling as :func:`segment_metrics`.

    Args:
        reference, estimated, files, labels: as in :func:`segment_metrics`.
        t_collar: the onset collar (and the smallest offset collar), in seconds.
        percentage_of_length: the offset collar as a share of the reference event's length.

    Returns:
        The dict of :func:`segment_metrics`, with ``t_collar`` and ``percentage_of_length`` in place of
        ``segment_seconds`` and ``evaluated_seconds``, and no ``tn``.

    Raises:
        ValueError: as :func:`segment_metrics`.
    """
    import sed_eval

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
    """The ``class_wise`` part of a segment/event metrics dict as a table (one row per class).
    Used in notebook 06."""
    return pd.DataFrame(metrics["class_wise"]).T.rename_axis("label")


# --------------------------------------------------------------------------------------------
# 4. Thresholds
# --------------------------------------------------------------------------------------------
def f1_vs_threshold(
    y_true: np.ndarray, probs: np.ndarray, grid: np.ndarray = DEFAULT_GRID, labels: list[str] | None = None
) -> pd.DataFrame:
    """Per-class F1, precision and recall at every threshold of ``grid`` (long table; notebook 06, and
    notebooks 05, 06 through choose_thresholds).

    Columns: label, threshold, f1, precision, recall, n_pos. Used to choose thresholds on the
    validation fold, and to SHOW how DESED scores would move with the threshold (analysis only).

    Args:
        y_true, probs: 0/1 targets and scores ``[N, C]``; an item is predicted at scores >= the threshold.
        grid: the thresholds; labels: the ``label`` column's names (default ``"0"``, ``"1"``...).

    Raises:
        ValueError: the arrays are not 2-D of one shape, or ``labels`` does not fit their columns.
    """
    y_true, probs = _check_pair(y_true, probs, "f1_vs_threshold")
    names = _names(labels, y_true.shape[1])
    grid = np.asarray(grid, dtype=float)
    p, r, f = _scores_at(y_true, probs, grid[:, None])
    rows = [(name, float(t), float(f[k, c]), float(p[k, c]), float(r[k, c]), int(y_true[:, c].sum()))
            for k, t in enumerate(grid) for c, name in enumerate(names)]
    return pd.DataFrame(rows, columns=["label", "threshold", "f1", "precision", "recall", "n_pos"])


def choose_thresholds(
    y_true_valid: np.ndarray, probs_valid: np.ndarray, grid: np.ndarray = DEFAULT_GRID
) -> np.ndarray:
    """Per-class threshold maximising F1 on the validation fold; ties go to the value closest to 0.5
    (notebooks 05, 06: model selection, the test thresholds).

    Why per class: the classes are not equally easy and their scores are not calibrated alike, so
    one global threshold is too strict for some and too loose for others. Why ties -> 0.5: a flat
    F1 curve (e.g. a class with no validation positives, F1 = 0 everywhere) should not push the
    threshold to an extreme.

    Args:
        y_true_valid, probs_valid: the validation items' 0/1 targets and scores ``[N, C]``.
        grid: the candidate thresholds.

    Returns:
        One threshold per class, ``[C]``.
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
) -> tuple[float, np.ndarray, np.ndarray]:
    """Macro F1 with each class at its :func:`choose_thresholds` threshold (notebooks 05, 08, through
    training's validation).

    What training scores each epoch with: it rates a model by what it will be used at (its own best
    thresholds), not at one fixed threshold that suits some epochs more than others.

    Args:
        y_true, probs: 0/1 targets and scores ``[items, C]`` (segments or frames).
        grid: the thresholds tried.

    Returns:
        (macro F1, per-class F1 ``[C]``, the thresholds ``[C]``).
    """
    thresholds = choose_thresholds(y_true, probs, grid)
    f = _scores_at(*_check_pair(y_true, probs, "macro_f1_at_chosen_thresholds"), thresholds[None, :])[2][0]
    return float(np.mean(f)), f, thresholds


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------
def _scores_at(y_true: np.ndarray, probs: np.ndarray, thresholds: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision, recall and F1 ``[K, C]`` of 0/1 targets and scores ``[N, C]``, an item predicted at
    scores >= the threshold, for K rows of thresholds ``[K, C]`` (or ``[K, 1]``: one per row for every
    class). Counted in numpy, as sklearn's ``precision_recall_fscore_support(average=None,
    zero_division=0)`` computes them (F1 = 2 tp / (positives + predicted), 0 where a denominator is 0):
    the same numbers without its checks, which cost milliseconds per call and training validates
    every epoch."""
    truth = np.asarray(y_true) > 0
    pred = np.asarray(probs)[None, :, :] >= np.asarray(thresholds, dtype=float)[:, None, :]
    tp = (pred & truth[None]).sum(axis=1).astype(float)
    predicted, positives = pred.sum(axis=1).astype(float), truth.sum(axis=0).astype(float)[None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        recall = np.where(positives > 0, tp / positives, 0.0)
        f1 = np.where(positives + predicted > 0, 2.0 * tp / (positives + predicted), 0.0)
    return precision, recall, f1


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


def macro_f1(targets: np.ndarray, probs: np.ndarray, threshold: float) -> tuple[float, np.ndarray]:
    """Macro F1 and per-class F1 of ``probs >= threshold`` against 0/1 ``targets`` (notebook 05).

    A class with no positives and no predictions scores 0 (``zero_division=0``), so an empty
    class pulls the macro average down instead of being silently skipped.

    Args:
        targets, probs, threshold: 0/1 targets and scores ``[N, C]``, and one threshold for every class.

    Returns:
        (macro F1, per-class F1 ``[C]``).
    """
    from sklearn.metrics import f1_score

    pred = (probs >= threshold).astype(int)
    t = targets.astype(int)
    per_class = f1_score(t, pred, average=None, zero_division=0, labels=list(range(t.shape[1])))
    return float(np.mean(per_class)), np.asarray(per_class, dtype=float)
