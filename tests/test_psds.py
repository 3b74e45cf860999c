"""PSDS and intersection-based F1 through sed_scores_eval, on cases whose value is derived by hand.

How the hand values follow: a class's PSD-ROC is its true-positive rate against false alarms per
hour; PSDS is its area up to 100 false alarms per hour, divided by 100. With no false alarm at all,
the curve is flat at the share of reference events found, so PSDS1 = that share. With two
classes and ``alpha_st = 1``, the curve is mean - standard deviation of the classes' TPRs.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sed_utils.metrics.psds import PSDS_SETTINGS, intersection_f1, psds

BOUNDS = np.arange(11, dtype=float)  # ten 1 s frames
DUR = {"a": 10.0, "b": 10.0}


def _ref(*rows):
    return pd.DataFrame(rows, columns=["filename", "onset", "offset", "event_label"])


def _curve(spans: list[tuple[int, int, int, float]], n_labels: int) -> tuple[np.ndarray, np.ndarray]:
    s = np.zeros((10, n_labels))
    for a, b, c, v in spans:
        s[a:b, c] = v
    return BOUNDS, s


def test_perfect_scores_give_psds_1():
    curves = {"a": _curve([(2, 4, 0, 0.9)], 1), "b": _curve([(5, 8, 0, 0.8)], 1)}
    ref = _ref(("a", 2.0, 4.0, "Dog"), ("b", 5.0, 8.0, "Dog"))
    assert psds(curves, ref, DUR, ["Dog"], "psds1")["value"] == pytest.approx(1.0)
    assert intersection_f1(curves, ref, ["Dog"], 0.5)["macro"] == pytest.approx(1.0)


def test_half_of_the_events_found_without_false_alarm_gives_half():
    curves = {"a": _curve([(2, 4, 0, 0.9)], 1), "b": _curve([], 1)}
    ref = _ref(("a", 2.0, 4.0, "Dog"), ("b", 5.0, 8.0, "Dog"))
    out = psds(curves, ref, DUR, ["Dog"], "psds1")
    assert out["value"] == pytest.approx(0.5)
    assert out["roc"]["tpr"][-1] == pytest.approx(0.5)
    # F1 at 0.5: 1 TP, 0 FP, 1 FN -> 2 / 3
    assert intersection_f1(curves, ref, ["Dog"], 0.5)["macro"] == pytest.approx(2 / 3)


def test_alpha_st_subtracts_the_spread_across_classes():
    # Dog: 1 of 2 found (TPR 0.5), Cat: 1 of 1 (TPR 1): mean 0.75 - std 0.25 = 0.5
    curves = {"a": _curve([(2, 4, 0, 0.9), (6, 8, 1, 0.7)], 2), "b": _curve([], 2)}
    ref = _ref(("a", 2.0, 4.0, "Dog"), ("a", 6.0, 8.0, "Cat"), ("b", 1.0, 2.0, "Dog"))
    out = psds(curves, ref, DUR, ["Dog", "Cat"], "psds1")
    assert out["value"] == pytest.approx(0.5)
    assert out["per_class"] == pytest.approx({"Dog": 0.5, "Cat": 1.0})


def test_a_loose_detection_counts_for_psds2_but_not_psds1():
    # Dog's detection covers 4 s of which 2 s are the event (50 % on the reference); Cat's is exact.
    # PSDS1 (dtc 0.7): Dog TPR 0, Cat 1 -> 0.5 - 0.5 = 0. PSDS2 (dtc 0.1): both 1, and the Dog
    # detection does not touch the Cat event, so no cross-trigger -> 1.
    curves = {"a": _curve([(1, 5, 0, 0.9), (6, 8, 1, 0.8)], 2), "b": _curve([], 2)}
    ref = _ref(("a", 2.0, 4.0, "Dog"), ("a", 6.0, 8.0, "Cat"))
    assert psds(curves, ref, DUR, ["Dog", "Cat"], "psds1")["value"] == pytest.approx(0.0)
    assert psds(curves, ref, DUR, ["Dog", "Cat"], "psds2")["value"] == pytest.approx(1.0)


def test_classes_without_reference_are_left_out_and_listed():
    curves = {"a": _curve([(2, 4, 0, 0.9)], 2), "b": _curve([], 2)}
    ref = _ref(("a", 2.0, 4.0, "Dog"))
    out = psds(curves, ref, DUR, ["Dog", "Cat"], "psds1")
    assert out["classes_without_reference"] == ["Cat"] and list(out["per_class"]) == ["Dog"]
    with pytest.raises(ValueError, match="undefined"):
        psds(curves, ref.iloc[:0], DUR, ["Dog", "Cat"])
    with pytest.raises(ValueError, match="setting"):
        psds(curves, ref, DUR, ["Dog", "Cat"], "psds3")
    with pytest.raises(ValueError, match="do not fit"):
        psds({"a": (BOUNDS[:5], np.zeros((10, 2)))}, ref, DUR, ["Dog", "Cat"])


def test_settings_are_the_dcase_ones():
    assert PSDS_SETTINGS["psds1"]["dtc_threshold"] == 0.7 and PSDS_SETTINGS["psds1"]["alpha_ct"] == 0
    assert PSDS_SETTINGS["psds2"]["cttc_threshold"] == 0.3 and PSDS_SETTINGS["psds2"]["alpha_ct"] == 0.5


def test_nan_scores_are_refused_by_name():
    """A model trained into NaN gave sed_scores_eval an IndexError deep in its ROC; now the file is named."""
    import numpy as np
    import pytest

    from sed_utils.metrics.psds import score_tables

    with pytest.raises(ValueError, match="clip.wav: the model's scores hold NaN"):
        score_tables({"clip.wav": (np.array([0.0, 1.0, 2.0]), np.array([[0.1], [np.nan]]))}, ["Dog"])
