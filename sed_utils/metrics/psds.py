"""Threshold-free metrics of score curves: PSDS1, PSDS2 and intersection-based F1 (sed_scores_eval).

Why these, next to sed_eval's F1 (:mod:`sed_utils.metrics.f1`): an F1 is measured at ONE operating
point (thresholds and post-processing), so it mixes how good the scores are with how well the
thresholds were chosen. The Polyphonic Sound Detection Score (Bilen et al., ICASSP 2020; DCASE
task 4 since 2021) sweeps the threshold instead: for each threshold it counts the share of
reference events detected (true-positive rate, TPR) and the false alarms per hour (effective
false-positive rate, eFPR), draws that PSD-ROC curve and reports its normalised area up to
``max_efpr`` = 100 false alarms per hour. ``alpha_st`` = 1 subtracts the spread of the per-class
curves from their mean, so a detector that is good on only some classes scores lower.

Detections and references are matched by *intersection*, not by collars: a detection counts when
at least ``dtc`` of it lies on reference events of its class (detection tolerance criterion), and a
reference counts as found when at least ``gtc`` of it is covered by detections (ground-truth
intersection criterion). The two DCASE settings:

* **PSDS1** (dtc = gtc = 0.7, no cross-triggers): *when* exactly, timing must be good;
* **PSDS2** (dtc = gtc = 0.1, cttc = 0.3, alpha_ct = 0.5): *what*, timing loose, but a detection on
  another class's event (a cross-trigger) counts against the score.

sed_scores_eval (Ebbers et al., ICASSP 2022) computes them exactly from the score curves. It
refuses a class without reference events, so such classes are left out and listed. Used in
notebooks 06 and 08; no torch here.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

# sed_scores_eval is imported where it is used: the metrics extra (pip install sed-utils[metrics]) holds
# it, and a core install that only detects never imports it

__all__ = ["PSDS_SETTINGS", "ScoreCurves", "score_tables", "psds", "intersection_f1"]

#: The DCASE 2021-2024 task 4 parameter sets.
PSDS_SETTINGS: dict[str, dict[str, Any]] = {
    "psds1": {"dtc_threshold": 0.7, "gtc_threshold": 0.7, "cttc_threshold": None, "alpha_ct": 0.0,
              "alpha_st": 1.0, "max_efpr": 100.0},
    "psds2": {"dtc_threshold": 0.1, "gtc_threshold": 0.1, "cttc_threshold": 0.3, "alpha_ct": 0.5,
              "alpha_st": 1.0, "max_efpr": 100.0},
}

#: Score curves of a set of clips: filename -> (boundaries [T + 1] in seconds, scores [T, C]).
ScoreCurves = dict[str, tuple[np.ndarray, np.ndarray]]


def score_tables(curves: ScoreCurves, labels: list[str]) -> dict[str, pd.DataFrame]:
    """sed_scores_eval's per-clip score tables (``onset``, ``offset``, one column per label) from
    ``curves`` (notebooks 06, 08, through :func:`psds`).

    Frame ``j`` of a clip spans ``boundaries[j]`` to ``boundaries[j + 1]``: the frame model's 80 ms
    frames, or the chunk model's sliding-window slices.
    """
    from sed_scores_eval.base_modules.scores import create_score_dataframe

    out = {}
    for name, (bounds, scores) in curves.items():
        bounds, scores = np.asarray(bounds, float), np.asarray(scores, float)
        if scores.ndim != 2 or scores.shape[1] != len(labels) or len(bounds) != len(scores) + 1:
            raise ValueError(f"{name}: scores {scores.shape} and boundaries {bounds.shape} do not fit "
                             f"(need [T, {len(labels)}] and [T + 1])")
        if not np.isfinite(scores).all():  # sed_scores_eval would fail deep inside with an IndexError
            raise ValueError(f"{name}: the model's scores hold NaN or infinite values (a model trained into "
                             "NaN?); PSDS needs finite scores")
        out[name] = create_score_dataframe(scores, bounds, list(labels))
    return out


def _ground_truth(reference: pd.DataFrame, files: list[str], labels: list[str]) -> dict[str, list]:
    gt: dict[str, list] = {name: [] for name in files}
    for row in reference[reference["event_label"].isin(labels)].itertuples(index=False):
        if row.filename in gt:
            gt[row.filename].append((float(row.onset), float(row.offset), str(row.event_label)))
    return gt


def _usable(curves: ScoreCurves, reference: pd.DataFrame, labels: list[str]
            ) -> tuple[list[str], list[str], dict[str, pd.DataFrame], dict[str, list]]:
    """Labels with at least one reference event (sed_scores_eval needs one), their tables and truth."""
    present = set(reference.loc[reference["filename"].isin(list(curves)), "event_label"])
    kept = [lab for lab in labels if lab in present]
    missing = [lab for lab in labels if lab not in present]
    if not kept:
        raise ValueError("no reference event of any class in these clips: PSDS is undefined")
    cols = [labels.index(lab) for lab in kept]
    tables = score_tables({k: (b, np.asarray(s)[:, cols]) for k, (b, s) in curves.items()}, kept)
    return kept, missing, tables, _ground_truth(reference, list(curves), kept)


def psds(curves: ScoreCurves, reference: pd.DataFrame, durations: dict[str, float], labels: list[str],
         setting: str = "psds1") -> dict[str, Any]:
    """PSDS of score curves against reference events (notebooks 06, 08).

    Args:
        curves: filename -> (frame boundaries [T + 1], scores [T, C]); every evaluated clip, empty
            ones included (their false alarms count).
        reference: events ``filename, onset, offset, event_label``.
        durations: filename -> clip length in seconds (the eFPR is per hour of audio).
        setting: ``"psds1"`` or ``"psds2"`` (:data:`PSDS_SETTINGS`).

    Returns ``value``, ``per_class`` (each class's own PSDS), ``roc`` (``efpr`` per hour and the
    effective ``tpr``, the curve whose area is ``value``), ``classes_without_reference``.
    """
    from sed_scores_eval import intersection_based

    if setting not in PSDS_SETTINGS:
        raise ValueError(f"setting must be one of {sorted(PSDS_SETTINGS)}, got {setting!r}")
    kept, missing, tables, gt = _usable(curves, reference, labels)
    settings = dict(PSDS_SETTINGS[setting])
    if len(kept) == 1 and settings["cttc_threshold"] is not None:
        # one class with reference events: no other class to cross-trigger on, the term is empty
        # (sed_scores_eval fails on it instead of returning that)
        settings.update(cttc_threshold=None, alpha_ct=0.0)
    value, per_class, (tpr, efpr), _ = intersection_based.psds(
        scores=tables, ground_truth=gt, audio_durations={k: float(durations[k]) for k in tables},
        **settings)[:4]
    return {"value": float(value), "setting": setting, **settings,
            "per_class": {k: float(v) for k, v in per_class.items()},
            "roc": {"efpr": np.asarray(efpr, float).tolist(), "tpr": np.asarray(tpr, float).tolist()},
            "classes_without_reference": missing}


def intersection_f1(curves: ScoreCurves, reference: pd.DataFrame, labels: list[str],
                    thresholds: np.ndarray | float, *, dtc: float = 0.7, gtc: float = 0.7) -> dict[str, Any]:
    """Intersection-based F1 at given per-class thresholds (the matching of PSDS1 at one operating
    point; notebooks 06, 08).

    Args:
        curves: filename -> (frame boundaries [T + 1], scores [T, C]); every evaluated clip.
        reference: events ``filename, onset, offset, event_label``.
        labels: the classes, in score-column order.
        thresholds: one per class ``[C]``, or one for all, applied to the curves as they are.
        dtc, gtc: the detection and ground-truth intersection criteria.

    Returns:
        ``macro``, ``micro`` and ``per_class`` F1 (classes with reference events only), ``dtc``,
        ``gtc`` and ``classes_without_reference``.

    Raises:
        ValueError: no reference event of any class in these clips, or a curve whose scores and
            boundaries do not fit.
    """
    from sed_scores_eval import intersection_based

    kept, missing, tables, gt = _usable(curves, reference, labels)
    thr = np.broadcast_to(np.asarray(thresholds, float), (len(labels),))
    per_label = {lab: float(thr[labels.index(lab)]) for lab in kept}
    f, _, _, _ = intersection_based.fscore(tables, gt, per_label, dtc_threshold=dtc, gtc_threshold=gtc)
    return {"macro": float(f["macro_average"]), "micro": float(f["micro_average"]),
            "per_class": {lab: float(f[lab]) for lab in kept}, "dtc": dtc, "gtc": gtc,
            "classes_without_reference": missing}
