"""Metric code checked against hand-computed cases and against sed_eval/numpy computed independently.

No model, no data on disk: every case is a few events or a small array built here.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import sed_eval

from sed_utils.metrics.confusion import class_confusion, multilabel_confusion
from sed_utils.metrics.f1 import (
    choose_thresholds,
    event_metrics,
    f1_vs_threshold,
    macro_f1,
    macro_f1_at_chosen_thresholds,
    reference_chunk_f1,
    segment_metrics,
)

LABELS = ["Dog", "Cat"]


def ev(*rows: tuple[str, float, float, str]) -> pd.DataFrame:
    return pd.DataFrame(list(rows), columns=["filename", "onset", "offset", "event_label"])


EMPTY = ev()


# ----------------------------------------------------------------------------- segment metrics
def test_two_overlapping_events_of_a_class_count_once_per_segment():
    # Two Dog events inside segment 0 -> one reference (segment, class) pair, not two.
    ref = ev(("a.wav", 0.1, 0.4, "Dog"), ("a.wav", 0.3, 0.8, "Dog"))
    est = ev(("a.wav", 0.0, 1.0, "Dog"))
    m = segment_metrics(ref, est, ["a.wav"], LABELS)
    assert m["class_wise"]["Dog"]["n_ref"] == 1
    assert m["overall"]["tp"] == 1 and m["overall"]["fp"] == 0 and m["overall"]["fn"] == 0
    assert m["overall"]["f1"] == pytest.approx(1.0)


def test_event_crossing_a_border_activates_both_segments():
    ref = ev(("a.wav", 1.5, 2.5, "Cat"))  # touches segments 1 and 2
    est = ev(("a.wav", 1.0, 2.0, "Cat"))  # segment 1 only
    m = segment_metrics(ref, est, ["a.wav"], LABELS)
    assert m["class_wise"]["Cat"]["n_ref"] == 2
    assert (m["overall"]["tp"], m["overall"]["fn"], m["overall"]["fp"]) == (1, 1, 0)
    assert m["class_wise"]["Cat"]["recall"] == pytest.approx(0.5)
    assert m["overall"]["f1"] == pytest.approx(2 / 3)


def test_empty_file_adds_true_negatives_only_but_its_false_alarm_counts():
    ref = ev(("a.wav", 0.0, 2.0, "Dog"))
    est = ev(("a.wav", 0.0, 2.0, "Dog"))
    alone = segment_metrics(ref, est, ["a.wav"], LABELS)
    with_empty = segment_metrics(ref, est, ["a.wav", "b.wav"], LABELS)
    # b.wav (no events, no predictions): 10 segments x 2 classes of TN, F1 unchanged.
    assert with_empty["overall"]["tn"] == alone["overall"]["tn"] + 20
    assert with_empty["overall"]["f1"] == alone["overall"]["f1"] == pytest.approx(1.0)
    assert with_empty["n_files"] == 2 and with_empty["evaluated_seconds"] == pytest.approx(20.0)
    # A false alarm in the empty file: one FP, precision 2/3, F1 = 2*2/(2*2+1) = 0.8.
    est_fa = pd.concat([est, ev(("b.wav", 5.0, 6.0, "Cat"))], ignore_index=True)
    m = segment_metrics(ref, est_fa, ["a.wav", "b.wav"], LABELS)
    assert m["overall"]["fp"] == 1
    assert m["overall"]["f1"] == pytest.approx(0.8)


def test_trailing_empty_segments_count_up_to_clip_length():
    # Reference ends at 1 s; a false alarm at 8-9 s must still be inside the evaluated length.
    ref = ev(("a.wav", 0.0, 1.0, "Dog"))
    est = ev(("a.wav", 0.0, 1.0, "Dog"), ("a.wav", 8.0, 9.0, "Dog"))
    m = segment_metrics(ref, est, ["a.wav"], LABELS, clip_seconds=10.0)
    assert m["overall"]["tp"] == 1 and m["overall"]["fp"] == 1
    assert m["overall"]["tp"] + m["overall"]["fp"] + m["overall"]["fn"] + m["overall"]["tn"] == 20


def test_class_without_reference_has_nan_error_rate_not_1e15():
    ref = ev(("a.wav", 0.0, 1.0, "Dog"))
    est = ev(("a.wav", 0.0, 1.0, "Dog"), ("a.wav", 3.0, 4.0, "Cat"))
    m = segment_metrics(ref, est, ["a.wav"], LABELS)
    assert m["classes_without_reference"] == ["Cat"]
    assert math.isnan(m["class_wise"]["Cat"]["error_rate"])
    assert math.isnan(m["class_wise"]["Cat"]["f1"])
    assert m["macro"]["error_rate"] == pytest.approx(0.0)  # Dog only
    assert m["macro"]["f1"] == pytest.approx(1.0)


def test_class_with_reference_but_no_detection_scores_zero_not_nan():
    ref = ev(("a.wav", 0.0, 1.0, "Dog"), ("a.wav", 2.0, 3.0, "Cat"))
    est = ev(("a.wav", 0.0, 1.0, "Dog"))
    m = segment_metrics(ref, est, ["a.wav"], LABELS)
    assert m["class_wise"]["Cat"]["f1"] == 0.0
    assert m["macro"]["f1"] == pytest.approx(0.5)  # not 1.0, as a NaN skipped by nanmean would give


def test_bad_input_is_reported():
    with pytest.raises(ValueError, match="Bird"):
        segment_metrics(ev(("a.wav", 0, 1, "Bird")), EMPTY, ["a.wav"], LABELS)
    with pytest.raises(ValueError, match="x.wav"):
        segment_metrics(ev(("x.wav", 0, 1, "Dog")), EMPTY, ["a.wav"], LABELS)
    with pytest.raises(ValueError, match="offset < onset"):
        segment_metrics(EMPTY, ev(("a.wav", 2, 1, "Dog")), ["a.wav"], LABELS)


def _random_events(rng: np.random.Generator, files: list[str], labels: list[str], n: int) -> pd.DataFrame:
    rows = []
    for _ in range(n):
        onset = float(rng.uniform(0, 9.5))
        rows.append((str(rng.choice(files)), onset, float(min(10.0, onset + rng.uniform(0.05, 4))),
                     str(rng.choice(labels))))
    return ev(*rows)


def _numpy_roll(events: pd.DataFrame, name: str, labels: list[str], n_seg: int) -> np.ndarray:
    """Independent segment roll: class active in segment k iff an event overlaps [k, k+1)."""
    roll = np.zeros((n_seg, len(labels)), bool)
    for r in events[events["filename"] == name].itertuples():
        for k in range(n_seg):
            if r.onset < k + 1 and r.offset > k:
                roll[k, labels.index(r.event_label)] = True
    return roll


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_agrees_with_sed_eval_direct_and_with_numpy(seed):
    rng = np.random.default_rng(seed)
    labels = ["Dog", "Cat", "Alarm"]
    files = [f"f{i}.wav" for i in range(6)]  # some files will get no event at all
    ref = _random_events(rng, files[:4], labels, 12)
    est = _random_events(rng, files[1:], labels, 15)
    ours = segment_metrics(ref, est, files, labels)

    direct = sed_eval.sound_event.SegmentBasedMetrics(labels, time_resolution=1.0)
    direct.empty_system_output_handling = "zero_score"
    for f in files:
        direct.evaluate(ref[ref.filename == f].to_dict("records"), est[est.filename == f].to_dict("records"),
                        evaluated_length_seconds=10.0)
    res = direct.results()
    assert ours["overall"]["f1"] == pytest.approx(res["overall"]["f_measure"]["f_measure"])
    assert ours["overall"]["error_rate"] == pytest.approx(res["overall"]["error_rate"]["error_rate"])
    for lab in labels:
        want = res["class_wise"][lab]["f_measure"]["f_measure"]
        assert ours["class_wise"][lab]["f1"] == pytest.approx(want, nan_ok=True)

    r = np.concatenate([_numpy_roll(ref, f, labels, 10) for f in files])
    e = np.concatenate([_numpy_roll(est, f, labels, 10) for f in files])
    tp, fp, fn = (r & e).sum(), (~r & e).sum(), (r & ~e).sum()
    assert ours["overall"]["tp"] == tp and ours["overall"]["fp"] == fp and ours["overall"]["fn"] == fn
    assert ours["overall"]["f1"] == pytest.approx(2 * tp / (2 * tp + fp + fn))
    per = [2 * (r[:, c] & e[:, c]).sum() / (r[:, c].sum() + e[:, c].sum()) for c in range(len(labels))]
    assert ours["macro"]["f1"] == pytest.approx(np.mean(per))


# ----------------------------------------------------------------------------- event metrics
def test_event_metrics_collars():
    ref = ev(("a.wav", 1.0, 3.0, "Dog"), ("a.wav", 5.0, 6.0, "Cat"))
    est = ev(
        ("a.wav", 1.15, 3.35, "Dog"),  # onset +150 ms ok; offset +350 ms ok: 20% of 2 s = 400 ms
        ("a.wav", 5.3, 6.0, "Cat"),  # onset +300 ms: outside the 200 ms collar -> FP and FN
    )
    m = event_metrics(ref, est, ["a.wav", "b.wav"], LABELS)
    assert m["class_wise"]["Dog"]["f1"] == pytest.approx(1.0)
    assert m["class_wise"]["Cat"]["f1"] == 0.0
    assert (m["overall"]["tp"], m["overall"]["fp"], m["overall"]["fn"]) == (1, 1, 1)
    # Offset tolerance for the 1 s Cat event is max(200 ms, 20% of 1 s) = 200 ms: 250 ms too late fails.
    late = event_metrics(ref, ev(("a.wav", 5.0, 6.25, "Cat")), ["a.wav"], LABELS)
    assert late["class_wise"]["Cat"]["f1"] == 0.0
    ok = event_metrics(ref, ev(("a.wav", 5.0, 6.15, "Cat")), ["a.wav"], LABELS)
    assert ok["class_wise"]["Cat"]["f1"] == pytest.approx(1.0)


def test_event_metrics_count_false_alarms_in_empty_files():
    ref = ev(("a.wav", 1.0, 2.0, "Dog"))
    est = ev(("a.wav", 1.0, 2.0, "Dog"), ("b.wav", 4.0, 5.0, "Dog"))
    m = event_metrics(ref, est, ["a.wav", "b.wav"], LABELS)
    assert m["class_wise"]["Dog"]["precision"] == pytest.approx(0.5)
    assert m["n_files"] == 2


# ----------------------------------------------------------------------------- reference chunk F1
def test_reference_chunk_f1_ignores_empty_segments():
    y = np.array([[1, 0], [0, 1], [0, 0], [0, 0]])
    p = np.array([[0.7, 0.1], [0.2, 0.65], [0.9, 0.9], [0.99, 0.0]])  # false alarms only in empty rows
    r = reference_chunk_f1(y, p, 0.6, labels=LABELS)
    assert r["macro_f1"] == pytest.approx(1.0)
    assert r["n_segments"] == 2 and r["n_segments_total"] == 4
    everything = reference_chunk_f1(y, p, 0.6, event_segments_only=False, labels=LABELS)
    # Dog: TP 1, FP 2 -> F1 0.5; Cat: TP 1, FP 1 -> F1 2/3
    assert everything["per_class_f1"] == pytest.approx({"Dog": 0.5, "Cat": 2 / 3})
    # threshold matters: at 0.68 the Cat chunk (0.65) is missed
    assert reference_chunk_f1(y, p, 0.68)["per_class_f1"]["1"] == 0.0


# ----------------------------------------------------------------------------- thresholds
def test_choose_thresholds_maximises_f1_and_breaks_ties_towards_half():
    y = np.array([[1, 0], [1, 0], [0, 0], [0, 0], [1, 0]])
    # class 0: positives 0.35, 0.4, 0.32; negatives 0.3, 0.2 -> any t in (0.30, 0.32] is perfect
    p0 = np.array([0.35, 0.4, 0.3, 0.2, 0.32])
    p1 = np.array([0.1, 0.9, 0.5, 0.3, 0.2])  # no positives: F1 = 0 everywhere -> tie -> 0.5
    thr = choose_thresholds(y, np.stack([p0, p1], axis=1), grid=np.array([0.1, 0.2, 0.3, 0.31, 0.35, 0.5]))
    assert thr.tolist() == [0.31, 0.5]
    curve = f1_vs_threshold(y, np.stack([p0, p1], axis=1), np.array([0.31, 0.35]), labels=LABELS)
    dog = curve[curve.label == "Dog"].set_index("threshold")
    assert dog.loc[0.31, "f1"] == pytest.approx(1.0)
    assert dog.loc[0.35, "f1"] == pytest.approx(0.8)  # two of three positives found
    assert dog.loc[0.35, "recall"] == pytest.approx(2 / 3)


def test_choose_thresholds_default_grid_picks_from_grid():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, size=(200, 3))
    p = np.clip(y * 0.5 + rng.uniform(0, 0.6, size=y.shape), 0, 1)
    thr = choose_thresholds(y, p)
    grid = np.linspace(0.05, 0.95, 19)
    assert all(np.isclose(grid, t).any() for t in thr)
    curves = f1_vs_threshold(y, p, grid)
    for c, t in enumerate(thr):
        part = curves[curves.label == str(c)]
        assert part.loc[np.isclose(part.threshold, t), "f1"].item() == pytest.approx(part.f1.max())


# ----------------------------------------------------------------------------- confusion
def test_multilabel_confusion_counts():
    y = np.array([[1, 0], [1, 1], [0, 0], [0, 1]])
    p = np.array([[1, 1], [0, 1], [1, 0], [0, 1]])
    m = multilabel_confusion(y, p, LABELS)
    assert m.loc["Dog"].tolist() == [1, 1, 1, 1]  # TP FP FN TN
    assert m.loc["Cat"].tolist() == [2, 1, 0, 1]


def test_class_confusion_counts_and_normalisation():
    y = np.array([
        [1, 0],  # Dog -> predicted Dog and Cat: counts in both columns
        [1, 0],  # Dog -> nothing: "none" column
        [0, 1],  # Cat -> Cat
        [0, 0],  # none -> Dog (false alarm)
        [0, 0],  # none -> nothing
        [1, 1],  # two reference classes: not used
    ])
    p = np.array([[1, 1], [0, 0], [0, 1], [1, 0], [0, 0], [1, 1]])
    c = class_confusion(y, p, LABELS)
    assert c.index.tolist() == ["Dog", "Cat", "none"] and c.columns.tolist() == ["Dog", "Cat", "none"]
    assert c.loc["Dog"].tolist() == [1, 1, 1]
    assert c.loc["Cat"].tolist() == [0, 1, 0]
    assert c.loc["none"].tolist() == [1, 0, 1]
    assert int(c.values.sum()) == 6  # 5 used segments, one of them counted twice
    n = class_confusion(y, p, LABELS, normalize=True)
    assert n.loc["Dog"].tolist() == pytest.approx([0.5, 0.5, 0.5])  # share of the 2 Dog segments
    assert n.loc["none"].tolist() == pytest.approx([0.5, 0.0, 0.5])


def test_class_confusion_empty_row_is_nan():
    n = class_confusion(np.array([[1, 0]]), np.array([[1, 0]]), LABELS, normalize=True)
    assert n.loc["Cat"].isna().all()



# ------------------------------------------------------------------------ macro F1 (training's validation)
def test_macro_f1_hand_computed():
    targets = np.array([[1, 0], [1, 0], [0, 1], [0, 0]])
    probs = np.array([[0.9, 0.2], [0.4, 0.7], [0.1, 0.5], [0.6, 0.1]])
    # class 0: predicted rows 0, 3 -> tp 1, fp 1, fn 1 -> F1 0.5
    # class 1 at >= 0.5: predicted rows 1, 2 -> tp 1, fp 1, fn 0 -> F1 2/3
    macro, per = macro_f1(targets, probs, 0.5)
    np.testing.assert_allclose(per, [0.5, 2 / 3])
    assert macro == pytest.approx((0.5 + 2 / 3) / 2)
    # a class without positives and without predictions scores 0, not "skipped"
    macro0, per0 = macro_f1(np.zeros((3, 2)), np.zeros((3, 2)), 0.5)
    assert macro0 == 0.0 and list(per0) == [0.0, 0.0]


def test_macro_f1_at_chosen_thresholds_uses_each_class_best_threshold():
    y = np.array([[1, 0], [1, 0], [0, 1], [0, 0], [0, 1]])
    p = np.array([[0.35, 0.9], [0.4, 0.1], [0.3, 0.8], [0.2, 0.2], [0.1, 0.7]])
    grid = np.array([0.25, 0.32, 0.5, 0.75])
    f1, per_class, thresholds = macro_f1_at_chosen_thresholds(y, p, grid)
    np.testing.assert_array_equal(thresholds, choose_thresholds(y, p, grid))
    # class 0 is perfect at 0.32 only; class 1 scores 0.8 at 0.25, 0.32 and 0.5 (rows 0, 2, 4 predicted:
    # tp 2, fp 1) and 0.5 at 0.75: the tie goes to 0.5
    assert thresholds.tolist() == [0.32, 0.5]
    assert per_class.tolist() == pytest.approx([1.0, 0.8])
    assert f1 == pytest.approx((1.0 + 0.8) / 2)
    assert f1 == pytest.approx(macro_f1(y, (p >= thresholds).astype(float), 0.5)[0])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_threshold_curves_are_sklearns_numbers_exactly(seed):
    """f1_vs_threshold counts in numpy: every precision, recall and F1 must be sklearn's, bit for bit,
    with an empty class (zero_division) and tied scores."""
    from sklearn.metrics import precision_recall_fscore_support

    rng = np.random.default_rng(seed)
    y = (rng.random((300, 4)) < [0.3, 0.0, 0.05, 0.6]).astype(int)
    p = np.round(rng.random((300, 4)), 1).astype(np.float32)
    grid = np.round(np.linspace(0.05, 0.95, 19), 4)
    curves = f1_vs_threshold(y, p, grid)
    for t in grid:
        want = precision_recall_fscore_support(y, (p >= t).astype(int), average=None, zero_division=0,
                                               labels=list(range(4)))[:3]
        got = curves[curves["threshold"] == float(t)]
        for name, values in zip(["precision", "recall", "f1"], want, strict=True):
            np.testing.assert_array_equal(got[name].to_numpy(), values)
    macro, per_class, thresholds = macro_f1_at_chosen_thresholds(y, p, grid)
    want_f1 = precision_recall_fscore_support(y, (p >= thresholds).astype(int), average=None, zero_division=0,
                                              labels=list(range(4)))[2]
    np.testing.assert_array_equal(per_class, want_f1)
    assert macro == float(np.mean(want_f1))
