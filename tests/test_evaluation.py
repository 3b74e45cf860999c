"""Metric code checked against hand-computed cases and against sed_eval/numpy computed independently.

No model, no data on disk: every case is a few events or a small array built here.
"""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import sed_eval
import torch

from sed_utils.evaluation import (
    choose_thresholds,
    class_confusion,
    event_metrics,
    f1_vs_threshold,
    multilabel_confusion,
    pool_windows_to_segments,
    reference_chunk_f1,
    scores_to_events,
    segment_metrics,
    segment_scores_from_windows,
    segments_to_events,
    sliding_window_scores,
    window_starts,
    write_json_atomic,
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


# ----------------------------------------------------------------------------- predictions -> events
def test_segments_to_events_merges_consecutive_and_splits_gaps():
    names = ["a.wav"] * 5 + ["b.wav"] * 2
    starts = [0, 1, 2, 3, 4, 0, 1]
    binary = np.array([[1, 0], [1, 0], [0, 0], [1, 1], [1, 0], [1, 0], [1, 1]])
    # Shuffled input order must not matter.
    order = [6, 2, 0, 5, 3, 1, 4]
    out = segments_to_events([names[i] for i in order], [starts[i] for i in order],
                             [starts[i] + 1 for i in order], binary[order], LABELS)
    got = sorted(map(tuple, out[["filename", "onset", "offset", "event_label"]].values.tolist()))
    assert got == [("a.wav", 0.0, 2.0, "Dog"), ("a.wav", 3.0, 4.0, "Cat"), ("a.wav", 3.0, 5.0, "Dog"),
                   ("b.wav", 0.0, 2.0, "Dog"), ("b.wav", 1.0, 2.0, "Cat")]


def test_segments_to_events_does_not_merge_across_files():
    out = segments_to_events(["a.wav", "b.wav"], [9.0, 0.0], [10.0, 1.0], np.array([[1, 0], [1, 0]]), LABELS)
    assert len(out) == 2


def test_window_starts():
    np.testing.assert_allclose(window_starts(160000, 16000, 1.0, 0.25), np.arange(37) * 0.25)
    assert window_starts(8000, 16000, 1.0, 0.25).tolist() == [0.0]  # shorter than one window
    # 9.98 s: the last window (9-10 s) runs 20 ms past the end and is kept; 9.85 s: 150 ms, dropped
    assert window_starts(int(9.98 * 16000), 16000, 1.0, 0.25)[-1] == 9.0
    assert window_starts(int(9.85 * 16000), 16000, 1.0, 0.25)[-1] == 8.75


def test_scores_to_events_thresholds_boundaries_and_median_filter():
    hop, window = 0.25, 1.0
    times = np.arange(37) * hop + window / 2  # 10 s clip
    scores = np.zeros((37, 2))
    scores[8:13, 0] = 0.9  # windows 8..12 active for Dog
    scores[20, 0] = 0.9  # a one-window blip
    scores[28:35, 0] = 0.9
    scores[31, 0] = 0.1  # a one-window gap inside a longer run
    scores[:, 1] = 0.55  # Cat above its 0.5 threshold everywhere
    raw = scores_to_events(times, scores, [0.5, 0.5], hop, window, LABELS, 1, filename="a.wav",
                           clip_seconds=10.0)
    dog = raw[raw.event_label == "Dog"][["onset", "offset"]].to_numpy()
    # window i centre = 0.5 + 0.25 i; event = first centre - hop/2 .. last centre + hop/2
    np.testing.assert_allclose(dog, [[2.375, 3.625], [5.375, 5.625], [7.375, 8.125], [8.375, 9.125]])
    cat = raw[raw.event_label == "Cat"][["onset", "offset"]].values.tolist()
    assert cat == [[0.0, 10.0]]  # first/last window cover the clip start/end
    smooth = scores_to_events(times, scores, [0.5, 0.5], hop, window, LABELS, 3, filename="a.wav",
                              clip_seconds=10.0)
    dog = smooth[smooth.event_label == "Dog"][["onset", "offset"]].to_numpy()
    # median over 3 windows: the blip is removed, the gap is filled, run edges stay put
    np.testing.assert_allclose(dog, [[2.375, 3.625], [7.375, 9.125]])
    assert set(smooth.filename) == {"a.wav"}
    # A higher per-class threshold for Cat removes it.
    none = scores_to_events(times, scores, [0.5, 0.6], hop, window, LABELS, 1)
    assert "Cat" not in set(none.event_label)


def test_scores_to_events_rejects_bad_shapes():
    with pytest.raises(ValueError, match="clip.wav"):
        scores_to_events(np.arange(3.0), np.zeros((3, 3)), 0.5, 0.25, 1.0, LABELS, 1, filename="clip.wav")


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


def test_results_json_is_strict(tmp_path):
    path = tmp_path / "r.json"
    write_json_atomic(path, {"a": float("nan"), "b": np.float32(0.5), "c": [np.int64(3)]})
    assert json.loads(path.read_text()) == {"a": None, "b": 0.5, "c": [3]}
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind


# ----------------------------------------------------------------------------- sliding windows
class _MeanModel(torch.nn.Module):
    """Logit of every class = mean of the (normalised) input: easy to recompute by hand."""

    def __init__(self, n_classes: int):
        super().__init__()
        self.n = n_classes
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(1, 2, 3))[:, None].repeat(1, self.n) + self.dummy


def test_sliding_window_scores_cut_windows_like_training_chunks():
    from sed_utils.config import load_config
    from sed_utils.features import mel_extractor

    cfg = load_config("demo")
    sr = cfg.audio.sample_rate
    rng = np.random.default_rng(0)
    audio = (rng.standard_normal(int(2.5 * sr)) * np.linspace(0.01, 0.5, int(2.5 * sr))).astype(np.float32)
    trained = SimpleNamespace(model=_MeanModel(len(cfg.desed_labels)), mean=np.float32(-40.0),
                              std=np.float32(20.0))
    times, scores = sliding_window_scores(trained, audio, sr, cfg)
    hop, win = cfg.eval.event_hop_seconds, cfg.chunking.chunk_seconds
    n = int((2.5 - win) / hop) + 1
    np.testing.assert_allclose(times, np.arange(n) * hop + win / 2)
    assert scores.shape == (n, len(cfg.desed_labels))
    ext = mel_extractor(cfg)
    for i in (0, n - 1):
        a = int(round(i * hop * sr))
        x = ext(torch.from_numpy(audio[a:a + int(win * sr)])).numpy()
        want = 1 / (1 + np.exp(-((x - -40.0) / 20.0).mean()))
        assert scores[i, 0] == pytest.approx(want, rel=1e-4)
    assert scores[-1, 0] > scores[0, 0]  # the louder end of the clip scores higher


# ----------------------------------------------------------------------------- figures (smoke + content)
def test_figures_build_from_metric_outputs():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sed_utils import eval_plots
    from sed_utils.evaluation import REFERENCE_NUMBERS

    ref = ev(("a.wav", 1.0, 3.0, "Dog"), ("b.wav", 0.0, 1.0, "Cat"))
    est = ev(("a.wav", 1.0, 2.0, "Dog"), ("b.wav", 4.0, 5.0, "Dog"))
    seg = segment_metrics(ref, est, ["a.wav", "b.wav"], LABELS)
    evm = event_metrics(ref, est, ["a.wav", "b.wav"], LABELS)
    y = np.array([[1, 0], [0, 1], [0, 0]])
    p = np.array([[0.9, 0.2], [0.1, 0.4], [0.7, 0.1]])
    results = {"synthetic_data": True, "published_reference_numbers": REFERENCE_NUMBERS,
               "reference_chunk_f1": reference_chunk_f1(y, p), "segment_based": seg, "event_based": evm}
    figs = [
        eval_plots.plot_views(results),
        eval_plots.plot_multilabel_confusion(multilabel_confusion(y, p > 0.5, LABELS)),
        eval_plots.plot_class_confusion(class_confusion(y, p > 0.5, LABELS, normalize=True),
                                        class_confusion(y, p > 0.5, LABELS)),
        eval_plots.plot_precision_recall(seg, evm, LABELS),
        eval_plots.plot_f1_vs_threshold({"valid": f1_vs_threshold(y, p, labels=LABELS)}, [0.5, 0.3], LABELS),
    ]
    times = np.arange(37) * 0.25 + 0.5
    windows = {"a.wav": (times, np.tile([0.8, 0.1], (37, 1))), "b.wav": (times, np.tile([0.1, 0.2], (37, 1)))}
    figs.append(eval_plots.plot_timelines(["a.wav", "b.wav"], ref, windows, [0.5, 0.5], LABELS))
    assert [len(f.axes) for f in figs[1:2]] == [2]
    assert len(figs[-1].axes) == 4
    # the "none" row/column is there and annotated with counts
    texts = [t.get_text() for t in figs[2].axes[0].texts]
    assert any("(1)" in t for t in texts)
    box = eval_plots.threshold_slider(["a.wav", "b.wav"], ref, windows, [0.5, 0.5], LABELS, hop=0.25,
                                      window=1.0, median_filter_frames=3)
    box.children[1].value = "global"  # switching mode swaps the sliders shown
    assert box.children[2].description == "all"
    for f in figs:
        plt.close(f)


def test_plot_ablation_draws_measured_rows_and_names_skipped_ones():
    from sed_utils import eval_plots

    row = {"segment_macro_f1": 0.4, "segment_macro_f1_sd": 0.02,
           "event_macro_f1": 0.1, "event_macro_f1_sd": 0.01}
    summary = {
        "meta": {"seeds": [0, 1]},
        "table": [{"title": "original recipe", **row}, {"title": "+ negatives", **row},
                  {"title": "+ ImageNet weights", "note": "offline"}],
    }
    fig = eval_plots.plot_ablation(summary)
    ax = fig.axes[0]
    ticks = {t.get_text(): t.get_position()[1] for t in ax.get_yticklabels()}
    assert ticks["original recipe"] > ticks["+ negatives"]  # the table's order, read top to bottom
    assert len(ax.patches) == 4  # two rows x (segment, event)
    assert "not run: + ImageNet weights" in ax.get_title()


def test_pool_windows_to_segments_takes_the_max_of_windows_mostly_inside():
    starts = np.arange(0.0, 9.01, 0.25)  # 1 s windows every 0.25 s over a 10 s clip
    times = starts + 0.5
    scores = np.zeros((len(times), 2))
    scores[np.isclose(times, 2.75), 0] = 0.9  # hears [2.25, 3.25]: 75 % inside segment [2, 3)
    scores[np.isclose(times, 3.0), 1] = 0.8  # centred on a border: half in each segment, counts for none
    scores[np.isclose(times, 0.5), 1] = 0.3  # the first segment's own window
    seg_starts = np.arange(10.0)
    pooled = pool_windows_to_segments(times, scores, seg_starts, seg_starts + 1.0, window=1.0)
    expected = np.zeros((10, 2))
    expected[2, 0] = 0.9
    expected[0, 1] = 0.3
    np.testing.assert_array_equal(pooled, expected)
    table = pd.DataFrame({"filename": ["a.wav"] * 10 + ["b.wav"] * 10,
                          "start": np.tile(seg_starts, 2), "end": np.tile(seg_starts + 1.0, 2)})
    windows = {"a.wav": (times, scores), "b.wav": (times, 2 * scores)}
    both = segment_scores_from_windows(table, windows, 1.0)
    np.testing.assert_array_equal(both, np.vstack([expected, 2 * expected]))
    with pytest.raises(KeyError, match="b.wav"):
        segment_scores_from_windows(table, {"a.wav": (times, scores)}, 1.0)


def test_segment_score_figure_draws_both_step_curves():
    import matplotlib

    matplotlib.use("Agg")
    from sed_utils import eval_plots

    times = np.arange(37) * 0.25 + 0.5
    scores = np.zeros((37, 2))
    scores[8, 0] = 0.9
    segments = pd.DataFrame({"filename": ["a.wav"] * 10, "start": np.arange(10.0),
                             "end": np.arange(1.0, 11.0)})
    grid = np.zeros((10, 2))
    pooled = pool_windows_to_segments(times, scores, segments["start"], segments["end"], 1.0)
    fig = eval_plots.plot_segment_scores("a.wav", ev(("a.wav", 2.6, 3.4, "Dog")), times, scores, segments,
                                         grid, pooled, "Dog", LABELS, threshold=0.5)
    ax = fig.axes[0]
    steps = {p.get_label(): p for p in ax.patches if p.get_label().startswith("segment score")}
    assert set(steps) == {"segment score: grid", "segment score: windows (max)"}
    np.testing.assert_array_equal(steps["segment score: windows (max)"].get_data().values, pooled[:, 0])
    assert pooled[2, 0] == 0.9  # the window centred at 2.5 s (index 8) hears the event inside segment 2
