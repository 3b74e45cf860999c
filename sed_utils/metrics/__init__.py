"""Metrics: pure functions over arrays and event tables (no torch), checkable by hand.

``f1``: the original project's chunk F1, sed_eval's segment- and event-based metrics, thresholds that
maximise F1; ``confusion``: confusion counts. ``psds``: PSDS1/PSDS2 and intersection-based F1 of score curves
(sed_scores_eval). Used in notebooks 05, 06 and 08.
"""

from sed_utils.metrics.confusion import class_confusion, multilabel_confusion
from sed_utils.metrics.f1 import (
    EVENT_COLUMNS,
    REFERENCE_NUMBERS,
    choose_thresholds,
    event_metrics,
    f1_vs_threshold,
    macro_f1,
    macro_f1_at_chosen_thresholds,
    per_class_table,
    reference_chunk_f1,
    segment_metrics,
)
from sed_utils.metrics.psds import PSDS_SETTINGS, ScoreCurves, intersection_f1, psds, score_tables

__all__ = ["EVENT_COLUMNS", "REFERENCE_NUMBERS", "reference_chunk_f1", "segment_metrics", "event_metrics",
           "per_class_table", "f1_vs_threshold", "choose_thresholds", "macro_f1_at_chosen_thresholds",
           "multilabel_confusion", "class_confusion", "macro_f1", "PSDS_SETTINGS", "ScoreCurves", "psds",
           "intersection_f1", "score_tables"]
