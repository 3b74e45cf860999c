"""The one evaluation of every model kind (sed_utils.evaluate) and the figures of notebook 06.

- Choosing the post-processing on hand-made curves whose right answer is known.
- :func:`evaluate`, :func:`model_curves` and :func:`negative_false_alarms` on a tiny fake ESC-50
  (folds 3-5: tones as targets, noise and clicks as the other classes) with a stub network of each
  kind (no training: scores are band energies), so the checks run in seconds.
- The same checks once on really trained tiny models of both kinds (``slow``).
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch
from test_scenes import SR, write_fake_esc50
from torch import nn

from sed_utils.config import load_config
from sed_utils.data.scenes import scene_set
from sed_utils.data.test_sets import load_test_set
from sed_utils.evaluate import (
    choose_event_postprocessing,
    choose_min_durations,
    choose_post_processing,
    evaluate,
    heldout_scenes_config,
    model_curves,
    negative_false_alarms,
    set_curves,
)
from sed_utils.evaluate import curves as curves_module
from sed_utils.evaluate import evaluation as evaluation_module
from sed_utils.features.logmel import Normaliser, build_logmel
from sed_utils.labels.chunks import build_segments
from sed_utils.labels.grid import PostProcessing, TimeGrid
from sed_utils.metrics.confusion import class_confusion, multilabel_confusion
from sed_utils.metrics.f1 import (
    event_metrics,
    f1_vs_threshold,
    reference_chunk_f1,
    segment_metrics,
)
from sed_utils.models.checkpoint import TrainedModel, checkpoint_info, read_checkpoint, save_checkpoint
from sed_utils.models.detector import Detector

LABELS = ["Dog", "Cat"]
FS = 0.08


def ev(*rows: tuple[str, float, float, str]) -> pd.DataFrame:
    return pd.DataFrame(list(rows), columns=["filename", "onset", "offset", "event_label"])


# ============================================================================= choosing on validation curves
def test_choose_event_postprocessing_picks_the_filter_that_removes_a_gap():
    # Dog: one 1.6 s event whose score dips for one frame in the middle; Cat: a clean event.
    bounds = np.arange(51) * FS
    s = np.zeros((50, 2))
    s[10:30, 0] = 0.8
    s[20, 0] = 0.0
    s[35:40, 1] = 0.7
    ref = ev(("x", 0.8, 2.4, "Dog"), ("x", 2.8, 3.2, "Cat"))
    thr, filters, table = choose_event_postprocessing({"x": (bounds, s)}, ref, LABELS, [1, 3, 5],
                                                       [0.1, 0.3, 0.5, 0.7, 0.9])
    assert filters.tolist() == [3, 1]  # Dog needs the filter to bridge the gap; Cat takes the shortest
    assert thr.tolist() == [0.5, 0.5]  # every threshold under the event's score ties: the one nearest 0.5
    assert set(table.columns) == {"filter", "threshold", "label", "f1"} and len(table) == 3 * 5 * 2
    assert table.query("label == 'Dog' and filter == 1")["f1"].max() < 1.0  # the gap splits the event
    assert table.query("label == 'Dog' and filter == 3 and threshold == 0.5")["f1"].item() == 1.0
    assert table.query("label == 'Cat' and threshold == 0.9")["f1"].max() == 0.0  # above the score


@pytest.mark.filterwarnings("ignore:Mean of empty slice")  # sed_eval, on the clip without events
def test_choose_event_postprocessing_ties_go_to_the_shortest_filter_then_the_threshold_nearest_0_5():
    bounds = np.arange(51) * FS
    s = np.zeros((50, 2))
    s[10:30, 0] = 0.8  # clean events: every filter and any threshold up to the score are perfect
    s[35:40, 1] = 0.65
    ref = ev(("x", 0.8, 2.4, "Dog"), ("x", 2.8, 3.2, "Cat"))
    # candidates out of order: the answer is not "the first" nor "the lowest"
    thr, filters, table = choose_event_postprocessing({"x": (bounds, s)}, ref, LABELS, [5, 1, 3],
                                                       [0.9, 0.2, 0.3, 0.6])
    assert filters.tolist() == [1, 1]
    assert thr.tolist() == [0.6, 0.6]  # 0.2, 0.3 and 0.6 tie; 0.6 is nearest to 0.5
    assert (table.query("threshold != 0.9")["f1"] == 1.0).all()
    # a class with no reference events and no detections: F1 is 0 everywhere, still a choice (0.5 if offered)
    thr, filters, _ = choose_event_postprocessing({"x": (bounds, np.zeros((50, 2)))}, ref.iloc[:0], LABELS,
                                                  [3, 1], [0.3, 0.5, 0.7])
    assert thr.tolist() == [0.5, 0.5] and filters.tolist() == [1, 1]


def test_choose_min_durations_drops_blips_only_where_they_are_false_alarms():
    # Dog: one true 0.8 s event plus three 0.16 s blips (false alarms); Cat: one true 0.16 s event.
    bounds = np.arange(101) * FS
    s = np.zeros((100, 2))
    s[10:20, 0] = 0.9
    for start in (40, 60, 80):
        s[start:start + 2, 0] = 0.9
    s[30:32, 1] = 0.9
    ref = ev(("x", 0.8, 1.6, "Dog"), ("x", 2.4, 2.56, "Cat"))
    shortest, table = choose_min_durations({"x": (bounds, s)}, ref, LABELS, np.array([0.5, 0.5]),
                                           np.array([1, 1]), [0.96, 0.0, 0.64, 0.32])
    assert shortest.tolist() == [0.32, 0.0]  # Dog: the shortest that drops the blips; Cat keeps its event
    assert set(table.columns) == {"min_duration", "label", "f1"} and len(table) == 4 * 2
    assert table["min_duration"].is_monotonic_increasing  # candidates tried in order, once each
    assert table.query("label == 'Dog' and min_duration == 0.96")["f1"].item() == 0.0  # the true event too
    assert table.query("label == 'Dog' and min_duration == 0.0")["f1"].item() == pytest.approx(0.4)


def test_choose_min_durations_ties_go_to_the_shortest_and_use_the_given_filters():
    bounds = np.arange(51) * FS
    s = np.zeros((50, 2))
    s[10:30, 0] = 0.8
    s[20, 0] = 0.0  # one-frame dip: only the median filter of 3 makes it one event
    s[35:40, 1] = 0.7
    ref = ev(("x", 0.8, 2.4, "Dog"), ("x", 2.8, 3.2, "Cat"))
    args = ({"x": (bounds, s)}, ref, LABELS, np.array([0.5, 0.5]))
    shortest, table = choose_min_durations(*args, np.array([3, 1]), [0.32, 0.16, 0.0])
    assert shortest.tolist() == [0.0, 0.0]  # all three keep the true events: the shortest
    assert (table["f1"] == 1.0).all()
    _, unfiltered = choose_min_durations(*args, np.array([1, 1]), [0.0])
    assert unfiltered.query("label == 'Dog'")["f1"].item() < 1.0  # the filters given are applied


def _hand_case(labels: list[str]) -> tuple[dict, pd.DataFrame, pd.DataFrame, dict]:
    """8 s of 80 ms frames: Dog 0.8-2.4 s with a one-frame dip and two 0.16 s blips, Cat 2.8-3.2 s;
    the segment curves (1 s grid) put Dog at [0.9, 0.7, 0.5, 0.3, 0.1, ...] over segments 0-2 (its
    positives) and Cat at 0.65 / 0.7 over its positives 5-6 and 0.5 on a negative."""
    bounds = np.arange(101) * FS
    s = np.zeros((100, len(labels)))
    s[10:30, 0] = 0.8
    s[20, 0] = 0.0
    s[60:62, 0] = s[80:82, 0] = 0.9
    s[35:40, 1] = 0.7
    ref = ev(("x", 0.8, 2.4, "Dog"), ("x", 2.8, 3.2, "Cat"))
    seg = np.zeros((8, len(labels)))
    seg[:5, 0] = [0.9, 0.7, 0.5, 0.3, 0.1]
    seg[:, 1] = 0.1
    seg[4, 1], seg[5, 1], seg[6, 1] = 0.5, 0.65, 0.7
    table = pd.DataFrame({"filename": "x", "start": np.arange(8.0), "end": np.arange(1.0, 9.0)})
    for lab in labels:
        table[lab] = 0
    table.loc[[0, 1, 2], labels[0]] = 1
    table.loc[[5, 6], labels[1]] = 1
    return {"x": (bounds, s)}, ref, table, {"x": (np.arange(9.0), seg)}


def test_choose_post_processing_per_class_and_segment_thresholds_on_the_segment_curves():
    cfg = load_config("demo", ["postprocess.median_filters=[1, 3]", "postprocess.min_durations=[0.0, 0.32]",
                               "postprocess.segment_thresholds=[0.2, 0.45, 0.6, 0.8]",
                               "postprocess.window_hop_seconds=0.5"])
    labels = cfg.desed_labels
    assert labels[:2] == LABELS
    curves, ref, segments, seg_curves = _hand_case(labels)
    post, grids = choose_post_processing(cfg, curves, ref, segments, "by hand", segment_curves=seg_curves)
    assert isinstance(post, PostProcessing) and post.labels == tuple(labels)
    for field in ("thresholds", "median_filters", "min_durations", "segment_thresholds"):
        values = getattr(post, field)
        assert isinstance(values, tuple) and len(values) == 5, field
    assert all(type(v) is int for v in post.median_filters) and all(type(v) is float for v in post.thresholds)
    assert post.median_filters == (3, 1, 1, 1, 1)  # Dog: the filter that bridges its dip
    assert post.thresholds == (0.5,) * 5
    assert post.min_durations == (0.32, 0.0, 0.0, 0.0, 0.0)  # Dog: drops the blips the filter keeps
    # segment F1 on the given segments: Dog 0.45 (all three positives, no negative), Cat 0.6 (0.5 is a
    # negative), the others (no positives: F1 0 everywhere) the candidate nearest 0.5
    assert post.segment_thresholds == (0.45, 0.6, 0.45, 0.45, 0.45)
    assert post.window_hop_seconds == 0.5 and post.chosen_on == "by hand"
    assert set(grids) == {"events", "min_durations"}
    assert len(grids["events"]) == 2 * 9 * 5 and len(grids["min_durations"]) == 2 * 5
    # the same from the three steps by hand
    thr, filters, _ = choose_event_postprocessing(curves, ref, labels, [1, 3], cfg.postprocess.thresholds)
    shortest, _ = choose_min_durations(curves, ref, labels, thr, filters, [0.0, 0.32])
    assert post.thresholds == tuple(thr) and post.median_filters == tuple(filters)
    assert post.min_durations == tuple(shortest)
    # without segment_curves, the segment scores come from the event curves (Cat's curve is 0.7 in
    # segments 2-3, which hold no Cat positives: F1 0 for every threshold)
    alone, _ = choose_post_processing(cfg, curves, ref, segments, "by hand")
    assert alone.segment_thresholds[1] == 0.45
    assert alone.thresholds == post.thresholds and alone.min_durations == post.min_durations


# ============================================================================= config helpers
def test_results_live_in_the_kinds_folder_and_curves_in_the_data_cache(tmp_path):
    cfg = load_config("demo", [f"runs_root={tmp_path}"])
    assert cfg.paths.checkpoint("frame") == tmp_path / "demo" / "frame" / "best.pt"
    assert cfg.paths.results("chunk") == tmp_path / "demo" / "chunk" / "results.json"
    assert cfg.paths.results("chunk", "_negatives") == tmp_path / "demo" / "chunk" / "results_negatives.json"
    assert cfg.paths.events("frame", "_x") == tmp_path / "demo" / "frame" / "events_x.tsv"
    # score curves are derived data, shared by every run folder on the same data (07 reuses 06's)
    assert cfg.curve_cache == cfg.data_root / "cache" / "curves"
    assert heldout_scenes_config(cfg).curve_cache == cfg.curve_cache


def test_the_heldout_scenes_model_never_sees_the_scenes_fold():
    desed = load_config("full")
    held = heldout_scenes_config(desed)
    assert held.test_set == "scenes" and held.run_dir != desed.run_dir
    assert held.run_dir.is_relative_to(desed.run_dir)  # beside notebook 05's model, not over it
    assert held.paths.checkpoint("chunk") != desed.paths.checkpoint("chunk")
    seen = set(held.train_folds) | set(held.valid_folds)
    assert not seen & set(held.folds.scenes_test)
    assert set(desed.valid_folds) & set(held.folds.scenes_test)  # why the desed model would not do
    assert held.postprocess == desed.postprocess and held.models == desed.models  # otherwise the same
    scenes = load_config("scenes")
    assert heldout_scenes_config(scenes) is scenes
    from sed_utils.train import training_key  # the demo's DESED folds leave fold 5 out: one model for both

    demo = load_config("demo")
    assert training_key(heldout_scenes_config(demo), "chunk") == training_key(demo, "chunk")


def test_evaluate_without_a_model_names_the_notebook_that_trains_it(tmp_path):
    cfg = load_config("demo", [f"runs_root={tmp_path}"])
    with pytest.raises(FileNotFoundError, match="notebook 08"):
        evaluate(cfg, "frame", progress=False)
    with pytest.raises(FileNotFoundError, match="notebook 05"):
        evaluate(cfg, "chunk", progress=False)


# ============================================================================= PSDS on a small test set
def test_psds2_with_one_class_of_reference_events():
    """PSDS2's cross-trigger term needs another class: with one class of reference events it is empty
    (sed_scores_eval itself fails on it, so evaluate() did on a small test set holding one class)."""
    from sed_utils.metrics.psds import psds

    bounds = np.arange(126) * FS
    rng = np.random.default_rng(0)
    curves = {"a": (bounds, rng.random((125, 2))), "b": (bounds, rng.random((125, 2)))}
    ref = ev(("a", 1.0, 2.0, "Dog"), ("b", 3.0, 4.0, "Dog"))
    assert psds(curves, ref, {"a": 10.0, "b": 10.0}, LABELS, "psds1")["classes_without_reference"] == ["Cat"]
    out = psds(curves, ref, {"a": 10.0, "b": 10.0}, LABELS, "psds2")
    assert 0.0 <= out["value"] <= 1.0 and out["classes_without_reference"] == ["Cat"]
    assert out["cttc_threshold"] is None and out["alpha_ct"] == 0.0  # the settings actually used
    no_ct = psds(curves, ref, {"a": 10.0, "b": 10.0}, LABELS, "psds1")
    assert out["value"] != no_ct["value"]  # still PSDS2's own intersection criteria (0.1 / 0.1)


# ============================================================================= figures of notebook 06
def test_figures_build_from_metric_outputs():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sed_utils.metrics.f1 import REFERENCE_NUMBERS
    from sed_utils.plots import evaluation as eval_plots

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
    bounds = TimeGrid.of_windows(LABELS, np.arange(37) * 0.25 + 0.5, 0.25, 10.0).bounds
    curves = {"a.wav": (bounds, np.tile([0.8, 0.1], (37, 1))),
              "b.wav": (bounds, np.tile([0.1, 0.2], (37, 1)))}
    post = PostProcessing(tuple(LABELS), (0.5, 0.15), (1, 3), (0.0, 0.0), (0.5, 0.5))
    figs.append(eval_plots.plot_timelines(["a.wav", "b.wav"], ref, curves, post, clip_seconds=10.0))
    assert [len(f.axes) for f in figs[1:2]] == [2]
    assert len(figs[-1].axes) == 4  # events and scores for each of the two clips
    # the "none" row/column is there and annotated with counts
    texts = [t.get_text() for t in figs[2].axes[0].texts]
    assert any("(1)" in t for t in texts)
    # the scores panel draws each class's curve and its threshold (dashed)
    lines = [ln.get_ydata()[0] for ln in figs[-1].axes[1].lines]
    assert sorted(lines) == [0.15, 0.5]
    box = eval_plots.threshold_slider(["a.wav", "b.wav"], ref, curves, post, clip_seconds=10.0)
    assert [s.value for s in box.children[2].children] == [0.5, 0.15]  # per class: the chosen thresholds
    box.children[1].value = "global"  # switching mode swaps the sliders shown
    assert box.children[2].description == "all"
    for f in figs:
        plt.close(f)


def test_plot_ablation_draws_measured_rows_and_names_skipped_ones():
    from sed_utils.plots import evaluation as eval_plots

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


def test_segment_score_figure_draws_the_curve_and_the_segment_scores_taken_from_it():
    import matplotlib

    matplotlib.use("Agg")
    from sed_utils.plots import evaluation as eval_plots

    grid = TimeGrid.of_windows(LABELS, np.arange(37) * 0.25 + 0.5, 0.25, 10.0)
    scores = np.zeros((37, 2))
    scores[8, 0] = 0.9  # the window centred at 2.5 s
    starts = np.arange(10.0)
    segments = pd.DataFrame({"filename": ["a.wav"] * 10 + ["b.wav"] * 10, "start": np.tile(starts, 2),
                             "end": np.tile(starts + 1.0, 2)})
    seg_scores = np.vstack([grid.segment_scores(scores, starts, starts + 1.0), np.ones((10, 2))])
    fig = eval_plots.plot_segment_scores("a.wav", ev(("a.wav", 2.6, 3.4, "Dog")), grid.bounds, scores,
                                         segments, seg_scores, "Dog", LABELS, threshold=0.5)
    ax = fig.axes[0]
    names = ("score curve", "segment score (max inside)")
    steps = {p.get_label(): p for p in ax.patches if p.get_label() in names}
    assert set(steps) == {"score curve", "segment score (max inside)"}
    np.testing.assert_array_equal(steps["segment score (max inside)"].get_data().values, seg_scores[:10, 0])
    np.testing.assert_array_equal(steps["segment score (max inside)"].get_data().edges, np.arange(11.0))
    np.testing.assert_array_equal(steps["score curve"].get_data().values, scores[:, 0])
    assert seg_scores[2, 0] == 0.9 and seg_scores[:10, 0].sum() == 0.9  # segment [2, 3) hears it, no other
    assert any(ln.get_label() == "segment threshold 0.50" for ln in ax.lines)


# ============================================================================= a fake ESC-50 and stub models
@pytest.fixture(scope="module")
def esc50(tmp_path_factory) -> Path:
    """A data root with a fake ESC-50: 2 clips per category in folds 3, 4 and 5 (shared by the module,
    so the scenes mixed from it are built once)."""
    return write_fake_esc50(tmp_path_factory.mktemp("fake_esc50"), (3, 4, 5), seed=7)


def scenes_config(data_root: Path, runs_root: Path, *extra: str):
    """The ``scenes`` profile on the fake ESC-50: train on fold 3, choose on 4 scenes of fold 4, test on 4
    scenes of fold 5; small candidate grids (the choice runs sed_eval once per candidate)."""
    return load_config("scenes", [
        f"data_root={data_root}", f"runs_root={runs_root}", "folds.scenes_train=[3]",
        "folds.scenes_valid=[4]", "folds.scenes_test=[5]", "scenes.valid=4", "scenes.test=4",
        "postprocess.median_filters=[1, 3]",
        "postprocess.thresholds=[0.2, 0.35, 0.5, 0.65, 0.8]", "postprocess.min_durations=[0.0, 0.32, 0.64]",
        "train.num_threads=2", "features.reference=absolute", *extra])  # BandNet reads absolute dB


@pytest.fixture
def cfg(esc50, tmp_path, monkeypatch):
    monkeypatch.delenv("SED_DATA_ROOT", raising=False)
    return scenes_config(esc50, tmp_path / "runs")


class BandNet(nn.Module):
    """Class c's logit is the mean log-mel energy of the c-th fifth of the mel bands, shifted and scaled:
    informative (the tones and noises sit in different bands), not perfect. With ``time_stride`` it
    keeps time as the frame model does (8 mel frames per output frame)."""

    def __init__(self, n_classes: int, time_stride: int | None = None):
        super().__init__()
        self.n_classes = n_classes
        self.scale = nn.Parameter(torch.tensor(0.5))
        self.shift = nn.Parameter(torch.tensor(-10.0))
        if time_stride:
            self.time_stride = time_stride

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        parts = x[:, 0].chunk(self.n_classes, dim=1)  # [B, mels / C, T] each
        bands = torch.stack([b.mean(dim=1) for b in parts], dim=-1)  # [B, T, C]
        logits = self.scale * (bands + self.shift)
        stride = getattr(self, "time_stride", None)
        if not stride:
            return {"clip_logits": logits.mean(dim=1)}
        t = logits.transpose(1, 2)
        t = nn.functional.pad(t, (0, -t.shape[-1] % stride), mode="replicate")
        frames = t.unfold(2, stride, stride).mean(-1).transpose(1, 2)
        return {"frame_logits": frames, "clip_logits": frames.max(dim=1).values}


def stub_model(cfg, kind: str) -> TrainedModel:
    """A :class:`BandNet` detector of ``kind`` saved as the run's checkpoint (as training would leave it)."""
    stride, window = (8, 10.0) if kind == "frame" else (None, 1.0)
    detector = Detector(build_logmel(cfg.features, SR), Normaliser(0.0, 1.0), BandNet(5, stride), kind=kind,
                        labels=cfg.desed_labels, sample_rate=SR, mel=cfg.features,
                        window_seconds=window).eval()
    path = cfg.paths.checkpoint(kind)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(path, detector, config=cfg.to_dict(), epoch=1, best_score=0.5, complete=True)
    return TrainedModel(detector, checkpoint_info(read_checkpoint(path), path))


RESULT_KEYS = {"reference_chunk_f1", "chunk_f1_all_segments_reference_threshold", "segment_based",
               "segment_based_from_events", "event_based", "psds1", "psds2", "intersection_f1",
               "multilabel_confusion", "class_confusion", "negatives", "post_processing",
               "post_processing_grids", "weights_digest", "evaluation_key"}


def _strict_json(path: Path) -> dict:
    def refuse(name: str):
        raise AssertionError(f"{path} holds {name}")

    return json.loads(path.read_text(), parse_constant=refuse)


def _same_curves(a: dict, b: dict) -> bool:
    return list(a) == list(b) and all(np.array_equal(a[k][0], b[k][0]) and np.array_equal(a[k][1], b[k][1])
                                      for k in a)


class Spy:
    """Wraps a function, recording the arguments and the result of each call (or refusing every call)."""

    def __init__(self, fn, refuse: bool = False):
        self.fn, self.refuse, self.calls, self.results = fn, refuse, [], []

    def __call__(self, *args, **kwargs):
        if self.refuse:
            raise AssertionError(f"{self.fn.__name__} called again")
        self.calls.append((args, kwargs))
        self.results.append(self.fn(*args, **kwargs))
        return self.results[-1]


# ====================================================================== curves and negatives (stub models)
@pytest.mark.parametrize("kind", ["chunk", "frame"])
def test_model_curves_are_the_kinds_curves_and_cached_by_weights_and_files(cfg, kind, monkeypatch, tmp_path):
    trained = stub_model(cfg, kind)
    test = load_test_set(cfg, progress=False)
    spy = Spy(curves_module.score_curve)
    monkeypatch.setattr(curves_module, "score_curve", spy)
    curves = set_curves(cfg, trained, test, progress=False)
    assert list(curves) == list(test.files) and len(spy.calls) == len(test.files)
    bounds, scores = curves[test.files[0]]
    assert bounds[0] == 0.0 and bounds[-1] == pytest.approx(10.0) and scores.shape == (len(bounds) - 1, 5)
    if kind == "frame":  # the network's 80 ms frames
        assert len(bounds) - 1 == 125 and np.allclose(np.diff(bounds), FS)
    else:  # windows slid by postprocess.window_hop_seconds
        assert len(bounds) - 1 == 37 and bounds[1] == pytest.approx(0.625)
    assert 0 < scores.min() < scores.max() < 1 and len(np.unique(scores.round(3))) > 10
    cached = list(cfg.curve_cache.glob(f"curves_{kind}_*.npz"))
    assert len(cached) == 1
    # again: from the cache, the same arrays, no scoring
    again = set_curves(cfg, trained, test, progress=False)
    assert len(spy.calls) == len(test.files) and _same_curves(again, curves)
    # another file set, or a changed file, is scored anew
    one = {test.files[0]: test.path(test.files[0])}
    model_curves(cfg, trained, one, test.clip_seconds, progress=False)
    assert len(spy.calls) == len(test.files) + 1
    copy = tmp_path / "copy.wav"
    audio, sr = sf.read(test.path(test.files[0]), dtype="float32")
    sf.write(copy, audio, sr)
    model_curves(cfg, trained, {test.files[0]: copy}, test.clip_seconds, progress=False)
    sf.write(copy, 0.5 * audio, sr)
    quieter = model_curves(cfg, trained, {test.files[0]: copy}, test.clip_seconds, progress=False)
    assert len(spy.calls) == len(test.files) + 3
    assert not np.array_equal(quieter[test.files[0]][1], curves[test.files[0]][1])
    # other weights: other curves
    with torch.no_grad():
        trained.detector.network.scale.mul_(2.0)
    other = TrainedModel(trained.detector, dataclasses.replace(trained.info, weights_digest=""))
    model_curves(cfg, other, one, test.clip_seconds, progress=False)
    assert len(spy.calls) == len(test.files) + 4
    # the same weights scored in bfloat16: other curves
    other.detector.precision = "bfloat16"
    model_curves(cfg, other, one, test.clip_seconds, progress=False)
    assert len(spy.calls) == len(test.files) + 5


def test_negative_false_alarms_count_the_clips_with_any_event(cfg):
    trained = stub_model(cfg, "chunk")
    labels = tuple(cfg.desed_labels)

    def post(threshold: float, filters: int = 1) -> PostProcessing:
        return PostProcessing(labels, (threshold,) * 5, (filters,) * 5, (0.0,) * 5, (0.5,) * 5)

    everywhere = negative_false_alarms(cfg, trained, post(0.0), progress=False)
    # the scenes' test fold (5): rain, wind, engine and door knock, 2 clips each; held out from every choice
    assert everywhere["clips"] == 8 and everywhere["folds"] == [5] and everywhere["held_out"]
    assert everywhere["with_false_alarm"] == 8 and everywhere["share"] == 1.0
    assert set(everywhere["worst_categories"]) == {"rain", "wind", "engine", "door_wood_knock"}
    assert everywhere["per_category"] == {"door_wood_knock": 1.0, "engine": 1.0, "rain": 1.0, "wind": 1.0}
    assert everywhere["events_per_label"] == dict.fromkeys(labels, 8)  # one whole-clip event per class
    never = negative_false_alarms(cfg, trained, post(1.01), progress=False)
    assert never["with_false_alarm"] == 0 and never["share"] == 0.0 and never["worst_categories"] == {}
    assert never["per_category"] == dict.fromkeys(["door_wood_knock", "engine", "rain", "wind"], 0.0)
    # just under one rain clip's highest score: that clip fires, not every clip does
    rain = cfg.data_root / "ESC-50-master" / "audio" / "5-10A-A-10.wav"
    scores = model_curves(cfg, trained, {"x": rain}, 5.0, progress=False)["x"][1]
    some = negative_false_alarms(cfg, trained, post(float(scores.max()) - 1e-6), progress=False)
    assert 0 < some["with_false_alarm"] < 8
    # the validation fold's clips are not held out (they may take part in the choice)
    valid = negative_false_alarms(cfg, trained, post(0.0), folds=(4,), progress=False)
    assert valid["folds"] == [4] and not valid["held_out"] and valid["clips"] == 8


# ============================================================================= evaluate (stub models)
@pytest.mark.parametrize("kind", ["chunk", "frame"])
def test_evaluate_chooses_on_validation_only_and_stores_the_choice(cfg, esc50, kind, monkeypatch, tmp_path):
    trained = stub_model(cfg, kind)
    assert checkpoint_info(read_checkpoint(trained.info.path), trained.info.path).post_processing is None
    spy = Spy(evaluation_module.choose_post_processing)
    monkeypatch.setattr(evaluation_module, "choose_post_processing", spy)
    res = evaluate(cfg, kind, progress=False, trained=trained)
    # the results: every metric, strict JSON, in the kind's folder
    saved = _strict_json(cfg.paths.results(kind))
    assert RESULT_KEYS <= set(saved) and saved == res.results
    assert saved["model"] == kind and saved["test_set"] == "scenes" and saved["n_files"] == 4
    assert saved["weights_digest"] == trained.weights_key
    assert saved["negatives"]["clips"] == 8 and saved["negatives"]["held_out"]
    events = pd.read_csv(cfg.paths.events(kind), sep="\t")
    assert list(events.columns) == ["filename", "onset", "offset", "event_label"]
    assert len(events) == len(res.events)
    # the choice was made once, on the validation scenes' curves and segments only
    valid = scene_set(cfg, "valid", progress=False)
    valid_curves = set_curves(cfg, trained, valid, progress=False)
    valid_segments = build_segments(cfg, valid)
    assert len(spy.calls) == 1
    args, kwargs = spy.calls[0]
    assert _same_curves(args[1], valid_curves) and args[2].equals(valid.events)
    assert args[3].equals(valid_segments) and _same_curves(kwargs["segment_curves"], valid_curves)
    assert not _same_curves(args[1], res.curves)  # not the test clips
    assert args[0] is cfg and args[4] == res.post.chosen_on and "4 validation scenes" in args[4]
    chosen, grids = spy.results[0]  # what that call chose is what is used and saved
    assert res.post == chosen and PostProcessing.from_dict(saved["post_processing"]) == chosen
    assert saved["post_processing_grids"]["events"] == grids["events"].to_dict(orient="records")
    # ... and stored in the checkpoint for detect
    stored = checkpoint_info(read_checkpoint(trained.info.path), trained.info.path).post_processing
    assert stored == res.post
    # the events and segment scores are the chosen post-processing applied to the test curves
    pd.testing.assert_frame_equal(res.events, res.post.events(res.curves))
    assert res.segment_scores.shape == (len(res.segments), 5) and len(res.segments) == 4 * 10
    assert res.valid_segment_scores.shape == (len(valid_segments), 5)
    # other test clips (5 scenes instead of 4): other numbers, the same choice
    other_cfg = scenes_config(esc50, tmp_path / "runs", "scenes.test=5")
    other = evaluate(other_cfg, kind, progress=False, trained=trained, tag="_five")
    assert other.results["n_files"] == 5 and other.results["evaluation_key"] != saved["evaluation_key"]
    assert other.results["n_reference_events"] != saved["n_reference_events"]
    assert other.post == res.post
    assert other.results["post_processing_grids"] == saved["post_processing_grids"]


@pytest.mark.parametrize("kind", ["chunk", "frame"])
def test_evaluate_reuses_results_and_curves_on_a_rerun(cfg, kind, monkeypatch):
    trained = stub_model(cfg, kind)
    t0 = time.perf_counter()
    first = evaluate(cfg, kind, progress=False, trained=trained)
    first_seconds = time.perf_counter() - t0
    for module, name in ((curves_module, "score_curve"), (evaluation_module, "choose_post_processing"),
                         (evaluation_module, "negative_false_alarms")):
        monkeypatch.setattr(module, name, Spy(getattr(module, name), refuse=True))
    t0 = time.perf_counter()
    again = evaluate(cfg, kind, progress=False, trained=trained)
    assert time.perf_counter() - t0 < first_seconds / 2
    assert again.results == first.results and again.post == first.post
    pd.testing.assert_frame_equal(again.events, first.events)
    assert _same_curves(again.curves, first.curves)
    np.testing.assert_array_equal(again.segment_scores, first.segment_scores)
    # another collar: the metrics again (the choice depends on the collars), the curves still reused
    monkeypatch.setattr(evaluation_module, "choose_post_processing", choose_post_processing)
    monkeypatch.setattr(evaluation_module, "negative_false_alarms", negative_false_alarms)
    wider = dataclasses.replace(cfg, eval=dataclasses.replace(cfg.eval, onset_collar=0.5))
    res = evaluate(wider, kind, progress=False, trained=trained)
    assert res.results["event_based"]["t_collar"] == 0.5
    assert res.results["evaluation_key"] != first.results["evaluation_key"]


def test_a_tagged_variant_keeps_the_checkpoints_post_processing(cfg, esc50, tmp_path):
    trained = stub_model(cfg, "frame")
    path = trained.info.path
    default = evaluate(cfg, "frame", progress=False, trained=trained)
    stored = checkpoint_info(read_checkpoint(path), path).post_processing
    assert stored == default.post
    results = cfg.paths.results("frame").read_text()
    fixed = scenes_config(esc50, tmp_path / "runs", "postprocess.thresholds=[0.35]",
                          "postprocess.median_filters=[5]", "postprocess.min_durations=[0.0]")
    variant = evaluate(fixed, "frame", progress=False, trained=trained, tag="_fixed")
    assert variant.post.thresholds == (0.35,) * 5 and variant.post.median_filters == (5,) * 5
    assert variant.post != default.post
    assert _strict_json(fixed.paths.results("frame", "_fixed"))["post_processing"] == variant.post.to_dict()
    assert fixed.paths.events("frame", "_fixed").is_file()
    assert checkpoint_info(read_checkpoint(path), path).post_processing == default.post  # untouched
    assert cfg.paths.results("frame").read_text() == results
    # the same settings without a tag: this one is the model's post-processing now
    evaluate(fixed, "frame", progress=False, trained=trained)
    assert checkpoint_info(read_checkpoint(path), path).post_processing == variant.post


# ============================================================================= the real thing, tiny (slow)
@pytest.mark.slow
def test_evaluate_trained_models_of_both_kinds(esc50, tmp_path, monkeypatch):
    """Both kinds trained for one epoch on a few scenes (the numbers are not the point), then evaluated
    by the one evaluation: the same results, chosen on validation, reused on a re-run, a tagged
    variant leaving the checkpoint alone."""
    from sed_utils.models.checkpoint import load_trained
    from sed_utils.train import train

    monkeypatch.delenv("SED_DATA_ROOT", raising=False)
    cfg = scenes_config(esc50, tmp_path / "runs", "models.chunk.epochs=1", "models.chunk.train_scenes=4",
                        "models.frame.epochs=1", "models.frame.train_scenes=8", "models.frame.batch_size=4")
    keys = {}
    for kind in ("chunk", "frame"):
        trained_run = train(cfg, kind, progress=False)
        assert not trained_run.skipped and cfg.paths.checkpoint(kind).is_file()
        trained = load_trained(cfg.paths.checkpoint(kind))
        assert trained.info.post_processing is None and trained.kind == kind
        t0 = time.perf_counter()
        res = evaluate(cfg, kind, progress=False)
        first_seconds = time.perf_counter() - t0
        saved = _strict_json(cfg.paths.results(kind))
        assert RESULT_KEYS <= set(saved) and saved["model"] == kind
        keys[kind] = set(saved)
        for name in ("psds1", "psds2"):
            assert 0.0 <= saved[name]["value"] <= 1.0
        assert saved["negatives"]["clips"] == 8 and saved["negatives"]["folds"] == [5]
        # chosen on the validation curves only
        valid = scene_set(cfg, "valid", progress=False)
        chosen, _ = choose_post_processing(cfg, set_curves(cfg, trained, valid, progress=False), valid.events,
                                           build_segments(cfg, valid), res.post.chosen_on)
        assert res.post == chosen
        assert set(res.post.median_filters) <= {1, 3}
        assert set(res.post.min_durations) <= set(cfg.postprocess.min_durations)
        # stored in the checkpoint (detect reads it from there)
        assert load_trained(cfg.paths.checkpoint(kind)).info.post_processing == res.post
        # a re-run: results and curves reused
        t0 = time.perf_counter()
        again = evaluate(cfg, kind, progress=False)
        assert time.perf_counter() - t0 < first_seconds / 3
        assert again.results == res.results and _same_curves(again.curves, res.curves)
        # a tagged variant (negatives-aware tuning) does not replace the stored choice
        aware = dataclasses.replace(cfg, postprocess=dataclasses.replace(cfg.postprocess,
                                                                         tune_with_negatives=True))
        variant = evaluate(aware, kind, progress=False, tag="_negatives")
        assert variant.post.chosen_on.endswith("+ 8 clips of the other classes of the same fold(s)")
        assert variant.results["negatives"]["held_out"] and variant.results["negatives"]["folds"] == [5]
        assert cfg.paths.results(kind, "_negatives").is_file()
        assert load_trained(cfg.paths.checkpoint(kind)).info.post_processing == res.post
    assert keys["chunk"] == keys["frame"]  # one evaluation for every kind
