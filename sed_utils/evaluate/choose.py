"""Choosing the post-processing on validation data: thresholds, median filters, minimum durations.

Why on validation data only: every choice made by looking at a test set (a threshold, a filter, an
epoch) makes its score optimistic, which is exactly the flaw of the original 0.497 (its checkpoint was
chosen on the test data). The choice is made per class, on the score curves of the validation scenes
(ESC-50 validation fold), for every model kind alike (notebooks 06, 08):

1. the (median filter,
        event threshold) pair with the best event-based F1 (:func:`choose_event_postprocessing`);
2. with those fixed, the minimum event duration with the best event-based F1 (:func:`choose_min_durations`);
3. the segment threshold with the best segment F1 of the curve's segment scores (one rule for every
   model: a segment's score is the highest score of the curve inside it).

:func:`choose_post_processing` does the three and returns a :class:`~sed_utils.labels.grid.PostProcessing`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from sed_utils.config.settings import Config
from sed_utils.labels.grid import (
    PostProcessing,
    ScoreCurves,
    curve_segment_scores,
    events_of_curves,
    smooth_curves,
)
from sed_utils.metrics.f1 import choose_thresholds, event_metrics

__all__ = ["choose_event_postprocessing", "choose_min_durations", "choose_post_processing"]


def _class_f1(reference: pd.DataFrame, estimated: pd.DataFrame, files: list[str], labels: list[str],
              collars: dict[str, float]) -> list[float]:
    m = event_metrics(reference, estimated, files, labels, **collars)
    return [float(np.nan_to_num(m["class_wise"][lab]["f1"])) for lab in labels]


def choose_event_postprocessing(curves: ScoreCurves, reference: pd.DataFrame, labels: list[str],
                                filters: Sequence[int], thresholds: Sequence[float], *, t_collar: float = 0.2,
                                percentage_of_length: float = 0.2) -> tuple[np.ndarray, np.ndarray,
                                                                            pd.DataFrame]:
    """Per class, the (median filter, threshold) pair with the best event-based F1 on VALIDATION curves
    (notebooks 06, 08).

    Every pair of the grid is scored once with sed_eval (all classes at once: a class's event F1
    depends on its own events only, so the best pair can be picked per class from one run). Ties go to
    the shortest filter, then to the threshold closest to 0.5.

    Args:
        curves: the validation files' score curves; reference: their events.
        labels: the classes; filters, thresholds: the candidates.
        t_collar, percentage_of_length: the event metric's collars.

    Returns:
        (thresholds ``[C]``, filters ``[C]``, the long table ``filter, threshold, label, f1``).
    """
    files, collars = list(curves), {"t_collar": t_collar, "percentage_of_length": percentage_of_length}
    rows = []
    for size in filters:
        smooth = smooth_curves(curves, int(size))
        for thr in thresholds:
            f1 = _class_f1(reference, events_of_curves(smooth, labels, float(thr)), files, labels, collars)
            rows += [(int(size), float(thr), lab, f) for lab, f in zip(labels, f1, strict=True)]
    table = pd.DataFrame(rows, columns=["filter", "threshold", "label", "f1"])
    best_thr, best_filter = np.zeros(len(labels)), np.ones(len(labels), dtype=int)
    for c, lab in enumerate(labels):
        part = table[table["label"] == lab].assign(dist=lambda d: (d["threshold"] - 0.5).abs())
        top = part.sort_values(["f1", "filter", "dist"], ascending=[False, True, True]).iloc[0]
        best_thr[c], best_filter[c] = float(top["threshold"]), int(top["filter"])
    return best_thr, best_filter, table


def choose_min_durations(curves: ScoreCurves, reference: pd.DataFrame, labels: list[str],
                         thresholds: np.ndarray,
                         filters: np.ndarray, candidates: Sequence[float], *, t_collar: float = 0.2,
                         percentage_of_length: float = 0.2) -> tuple[np.ndarray, pd.DataFrame]:
    """Per class, the minimum event duration (seconds) with the best event-based F1 on VALIDATION curves,
    the thresholds and median filters already chosen (notebooks 06, 08).

    Why a step of its own after the filter: the median filter removes blips shorter than half of it,
    but a longer filter also shifts onsets and merges close barks; dropping whole events that stay
    short keeps the filter short. Chosen after the (filter, threshold) pair, not jointly: the joint
    grid would be ten times larger. Ties go to the shortest.

    Args:
        curves: the validation files' score curves; reference: their events.
        labels: the classes.
        thresholds, filters: the chosen threshold and median filter (in curve frames) per class, ``[C]``.
        candidates: the minimum durations to try, in seconds (each value once).
        t_collar, percentage_of_length: the event metric's collars.

    Returns:
        (minimum durations ``[C]``, the long table ``min_duration, label, f1``).
    """
    files, collars = list(curves), {"t_collar": t_collar, "percentage_of_length": percentage_of_length}
    smooth = smooth_curves(curves, filters)
    rows = []
    for shortest in sorted(set(float(d) for d in candidates)):
        f1 = _class_f1(reference, events_of_curves(smooth, labels, thresholds, min_durations=shortest), files,
                       labels, collars)
        rows += [(shortest, lab, f) for lab, f in zip(labels, f1, strict=True)]
    table = pd.DataFrame(rows, columns=["min_duration", "label", "f1"])
    best = np.zeros(len(labels))
    for c, lab in enumerate(labels):
        part = table[table["label"] == lab].sort_values(["f1", "min_duration"], ascending=[False, True])
        best[c] = float(part["min_duration"].iloc[0])
    return best, table


def choose_post_processing(cfg: Config, curves: ScoreCurves, reference: pd.DataFrame, segments: pd.DataFrame,
                           chosen_on: str, *, segment_curves: ScoreCurves | None = None
                           ) -> tuple[PostProcessing, dict[str, pd.DataFrame]]:
    """The whole choice on validation data (see the module docstring; notebooks 06, 08).

    Args:
        cfg: the candidates (``postprocess``) and the collars (``eval``).
        curves: the score curves the event choice is made on (the validation scenes, and with
            ``postprocess.tune_with_negatives`` the validation fold's negative clips too).
        reference: the reference events of those curves (the negatives have none).
        segments: the validation scenes' 1 s segment table (label columns) for the segment thresholds.
        chosen_on: what the choice was made on, in words (stored with it).
        segment_curves: the curves of the segments' files (default: ``curves``).

    Returns:
        (the :class:`PostProcessing`, the grids it was chosen from: ``"events"`` and ``"min_durations"``).
    """
    labels, pp = cfg.desed_labels, cfg.postprocess
    collars = {"t_collar": cfg.eval.onset_collar, "percentage_of_length": cfg.eval.offset_collar_ratio}
    thr, filters, grid = choose_event_postprocessing(curves, reference, labels, pp.median_filters,
                                                     pp.thresholds,
                                                     **collars)
    shortest, durations = choose_min_durations(curves, reference, labels, thr, filters, pp.min_durations,
                                               **collars)
    scores = curve_segment_scores(segment_curves if segment_curves is not None else curves, labels, segments)
    seg_thr = choose_thresholds(segments[labels].to_numpy().astype(int), scores,
                                np.asarray(pp.segment_thresholds))
    post = PostProcessing(tuple(labels), tuple(map(float, thr)), tuple(map(int, filters)),
                          tuple(map(float, shortest)), tuple(map(float, seg_thr)), pp.window_hop_seconds,
                          chosen_on)
    return post, {"events": grid, "min_durations": durations}
