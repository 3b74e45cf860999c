"""The evaluation module's own pieces (strict results.json, run paths) and the figures of notebook 06
(:mod:`sed_utils.plots.evaluation`), built from metric outputs.

No model, no data on disk: every case is a few events or a small array built here.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from sed_utils.config import load_config
from sed_utils.evaluation import (
    checkpoint_path,
    predictions_path,
    results_path,
    valid_predictions_path,
    write_json_atomic,
)
from sed_utils.metrics.f1 import (
    class_confusion,
    event_metrics,
    f1_vs_threshold,
    multilabel_confusion,
    reference_chunk_f1,
    segment_metrics,
)
from sed_utils.postprocess import pool_windows_to_segments

LABELS = ["Dog", "Cat"]


def ev(*rows: tuple[str, float, float, str]) -> pd.DataFrame:
    return pd.DataFrame(list(rows), columns=["filename", "onset", "offset", "event_label"])


def test_results_json_is_strict(tmp_path):
    path = tmp_path / "r.json"
    write_json_atomic(path, {"a": float("nan"), "b": np.float32(0.5), "c": [np.int64(3)]})
    assert json.loads(path.read_text()) == {"a": None, "b": 0.5, "c": [3]}
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind
    with pytest.raises(TypeError):  # not json-able: an error, and the old file stays untouched
        write_json_atomic(path, {"a": object()})
    assert json.loads(path.read_text()) == {"a": None, "b": 0.5, "c": [3]}
    assert list(tmp_path.iterdir()) == [path]


def test_run_paths_live_in_the_profiles_run_folder(tmp_path):
    cfg = load_config("demo", [f"runs_root={tmp_path}"])
    assert checkpoint_path(cfg) == tmp_path / "demo" / "model" / "best.pt"
    assert valid_predictions_path(cfg) == tmp_path / "demo" / "model" / "valid_predictions.npz"
    assert results_path(cfg) == tmp_path / "demo" / "results.json"
    assert predictions_path(cfg).parent == tmp_path / "demo"


# ----------------------------------------------------------------------------- figures (smoke + content)
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


def test_segment_score_figure_draws_both_step_curves():
    import matplotlib

    matplotlib.use("Agg")
    from sed_utils.plots import evaluation as eval_plots

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


def test_the_heldout_scenes_model_never_sees_the_scenes_fold():
    from sed_utils.config import load_config
    from sed_utils.evaluation import heldout_scenes_config

    desed = load_config("demo")
    held = heldout_scenes_config(desed)
    assert held.test_set == "scenes" and held.run_dir != desed.run_dir
    assert held.run_dir.is_relative_to(desed.run_dir)  # beside notebook 05's model, not over it
    seen = set(held.train_folds) | set(held.valid_folds)
    assert not seen & set(held.folds.scenes_test)
    assert set(desed.valid_folds) & set(held.folds.scenes_test)  # why the desed model would not do
    scenes = load_config("scenes")
    assert heldout_scenes_config(scenes) is scenes
