"""Evaluating a model as an event detector: post-processing chosen on validation, then events,
segments, PSDS and false alarms on the test set (notebook 08).

Both models are read the same way, as *score curves* (one score per class per time slice): the
frame model's 80 ms frames (:func:`sed_utils.inference.frame_scores`), or the chunk model's
sliding windows, each standing for the slice around its centre
(:func:`sed_utils.postprocess.window_bounds`), both through :func:`sed_utils.detection.score_curve`,
the function ``detect`` uses on a user's recording. So the comparison in notebook 08 is between
models, not between two evaluation codes, and what is measured here is what ``detect`` does.
The steps of :func:`evaluate_event_model`:

1. curves of the VALIDATION scenes (ESC-50 validation fold) -> per class, the median filter and
   the threshold with the best event-based F1 (:func:`sed_utils.postprocess.choose_event_postprocessing`),
   then, with those, the minimum event duration (:func:`sed_utils.postprocess.choose_min_durations`),
   and per class the segment threshold with the best 1 s segment F1. With
   ``eval.tune_with_negatives`` the validation fold's clips of the other 45 classes join the
   scenes in that choice: they hold no reference event, so every event on them is a false alarm
   the choice weighs against recall;
2. curves of the test set -> events -> sed_eval event- and segment-based metrics (segment scores
   from frames: the max over the segment), PSDS1 / PSDS2 and intersection-based F1
   (:mod:`sed_utils.metrics.psds`) on the median-filtered curves the events come from;
3. false alarms on real negatives: the share of ESC-50 clips of the other 45 classes, from the
   test set's folds, on which the detector reports any event (``held_out`` is false where those
   folds also took part in the tuning: the full profile, whose negatives are the validation fold's).

Nothing is chosen on the test set. Results go to ``cfg.run_dir / "events_<model>.json"``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from sed_utils.checkpoint import TrainedModel, load_trained, store_post_processing
from sed_utils.config import Config
from sed_utils.core import atomic
from sed_utils.core.keys import digest, file_identity, json_clean
from sed_utils.core.progress import tqdm
from sed_utils.data.desed import StrongLabelSet
from sed_utils.data.esc50 import ESC50_CLIP_SECONDS, esc50_root, load_esc50_meta, negative_clips
from sed_utils.data.scenes import scene_set
from sed_utils.data.test_sets import describe_test_set, load_test_set
from sed_utils.detection import score_curve
from sed_utils.frame_training import frame_checkpoint_path
from sed_utils.io.audio import read_audio
from sed_utils.labels.chunks import build_segments
from sed_utils.metrics.f1 import choose_thresholds, event_metrics, segment_metrics
from sed_utils.metrics.psds import ScoreCurves, intersection_f1, psds
from sed_utils.postprocess import (
    choose_event_postprocessing,
    choose_min_durations,
    curve_segment_scores,
    events_of_curves,
    segments_to_events,
    smooth_curves,
)

__all__ = ["model_checkpoint", "model_curves", "tune_on_validation", "evaluate_curves",
           "negative_clip_paths", "negative_false_alarms", "evaluate_event_model", "events_results_path"]



def model_checkpoint(cfg: Config, model: str) -> Path:
    """The checkpoint of ``model`` (``"chunk"``: notebook 05's, ``"frame"``: notebook 08's)."""
    if model == "frame":
        return frame_checkpoint_path(cfg)
    if model == "chunk":
        return cfg.run_dir / "model" / "best.pt"
    raise ValueError(f"model must be 'chunk' or 'frame', got {model!r}")


def events_results_path(cfg: Config, model: str, tag: str = "") -> Path:
    """Where :func:`evaluate_event_model` writes its results (notebook 08)."""
    return cfg.run_dir / f"events_{model}{tag}.json"


def model_curves(cfg: Config, trained: TrainedModel, paths: dict[str, Path], clip_seconds: float, *,
                 progress: bool = True, desc: str = "score curves") -> ScoreCurves:
    """Score curves of the files ``paths`` (name -> audio file), cached under a key of the model's
    weights, the files and their sizes and mtimes (notebook 08)."""
    names = list(paths)
    key = digest("curves-v2", trained.weights_key, names, [str(paths[n]) for n in names],
                 file_identity(paths[n] for n in names), cfg.eval.event_hop_seconds, clip_seconds)
    cache = cfg.run_dir / "eval_cache" / f"curves_{trained.kind}_{key}.npz"
    if cache.is_file():
        with np.load(cache) as z:
            return {n: (z[f"b{i}"], z[f"s{i}"]) for i, n in enumerate(names)}
    sr = trained.detector.sample_rate
    curves = {n: score_curve(trained, read_audio(paths[n], sr), sr, hop_seconds=cfg.eval.event_hop_seconds,
                             clip_seconds=clip_seconds)
              for n in tqdm(names, desc=desc, disable=not progress)}
    arrays = {f"{p}{i}": curves[n][j] for i, n in enumerate(names) for j, p in enumerate("bs")}
    atomic.save_npz(cache, **arrays)
    return curves


def _set_curves(cfg: Config, trained: TrainedModel, ds: StrongLabelSet, progress: bool,
                desc: str) -> ScoreCurves:
    return model_curves(cfg, trained, {f: ds.path(f) for f in ds.files}, ds.clip_seconds,
                        progress=progress, desc=desc)


def tune_on_validation(cfg: Config, trained: TrainedModel, *, progress: bool = True) -> dict[str, Any]:
    """Post-processing of ``trained`` chosen on the VALIDATION scenes only (notebook 08): per class
    an event threshold and a median filter (best event-based F1), and a segment threshold (best
    segment F1 of the frame-max segment scores)."""
    labels = cfg.desed_labels
    valid = scene_set(cfg, "valid", progress=progress)
    curves = _set_curves(cfg, trained, valid, progress, "validation curves")
    chosen_on = (f"{len(valid.files)} validation scenes (ESC-50 fold(s) "
                 f"{', '.join(map(str, cfg.valid_folds))})")
    tuning = dict(curves)
    if cfg.eval.tune_with_negatives:  # files without reference events: every event there is a false alarm
        paths = negative_clip_paths(cfg, tuple(cfg.valid_folds))
        tuning.update(model_curves(cfg, trained, paths, ESC50_CLIP_SECONDS, progress=progress,
                                   desc="validation negatives"))
        chosen_on += f" + {len(paths)} clips of the other classes of the same fold(s)"
    collars = {"t_collar": cfg.eval.onset_collar, "percentage_of_length": cfg.eval.offset_collar_ratio}
    ref = valid.events
    thr, filters, grid = choose_event_postprocessing(tuning, ref, labels, cfg.frame.median_filters, **collars)
    shortest, durations = choose_min_durations(tuning, ref, labels, thr, filters, cfg.frame.min_durations,
                                               **collars)
    table = build_segments(cfg, valid)
    seg_thr = choose_thresholds(table[labels].to_numpy().astype(int), curve_segment_scores(curves, table))
    return {"event_thresholds": thr, "median_filters": filters, "min_durations": shortest,
            "segment_thresholds": seg_thr, "grid": grid, "min_duration_grid": durations,
            "chosen_on": chosen_on}


def evaluate_curves(cfg: Config, ds: StrongLabelSet, curves: ScoreCurves,
                    post: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    """Every metric of notebook 08 for one set's curves under the post-processing ``post``, and the
    predicted events."""
    labels = cfg.desed_labels
    smooth = smooth_curves(curves, post["median_filters"])
    events = events_of_curves(smooth, post["event_thresholds"], labels,
                              min_durations=post.get("min_durations", 0.0))
    table = build_segments(cfg, ds)
    seg_binary = (curve_segment_scores(curves, table) >= post["segment_thresholds"][None, :]).astype(int)
    seg_events = segments_to_events(table["filename"], table["start"], table["end"], seg_binary, labels)
    seg_kw = {"segment_seconds": cfg.chunking.segment_seconds, "clip_seconds": ds.clip_seconds}
    durations = {name: float(b[-1]) for name, (b, _) in curves.items()}
    return {
        "event_based": event_metrics(ds.events, events, ds.files, labels, t_collar=cfg.eval.onset_collar,
                                     percentage_of_length=cfg.eval.offset_collar_ratio),
        "segment_based": segment_metrics(ds.events, seg_events, ds.files, labels, **seg_kw),
        "segment_based_from_events": segment_metrics(ds.events, events, ds.files, labels, **seg_kw),
        "psds1": psds(smooth, ds.events, durations, labels, "psds1"),
        "psds2": psds(smooth, ds.events, durations, labels, "psds2"),
        "intersection_f1": intersection_f1(smooth, ds.events, labels, post["event_thresholds"]),
        "n_predicted_events": len(events),
    }, events


def _negative_clips(cfg: Config, folds: tuple[int, ...]) -> Any:
    return negative_clips(load_esc50_meta(esc50_root(cfg)), cfg.esc50_categories, folds)


def _paths_of(clips: Any) -> dict[str, Path]:
    return {str(r.filename): Path(r.path) for r in clips.itertuples()}


def negative_clip_paths(cfg: Config, folds: tuple[int, ...]) -> dict[str, Path]:
    """The ESC-50 clips of the NON-target classes in ``folds``, name -> audio file (notebook 08)."""
    return _paths_of(_negative_clips(cfg, folds))


def negative_false_alarms(cfg: Config, trained: TrainedModel, post: dict[str, Any], folds: tuple[int, ...],
                          *, progress: bool = True) -> dict[str, Any]:
    """Share of real ESC-50 clips of the NON-target classes in ``folds`` on which the detector reports
    any event (notebook 08). A clip of rain or a door knock holds none of the five classes, so any
    event there is a false alarm a user would see. ``post`` needs ``median_filters`` and
    ``event_thresholds`` (one per class, or one for all)."""
    neg = _negative_clips(cfg, folds)
    held_out = not (cfg.eval.tune_with_negatives and set(folds) & set(cfg.valid_folds))
    if neg.empty:
        return {"clips": 0, "with_false_alarm": 0, "share": float("nan"), "folds": list(folds),
                "held_out": held_out}
    curves = model_curves(cfg, trained, _paths_of(neg), ESC50_CLIP_SECONDS, progress=progress,
                          desc="negative clips")
    events = events_of_curves(smooth_curves(curves, post["median_filters"]), post["event_thresholds"],
                              cfg.desed_labels, min_durations=post.get("min_durations", 0.0))
    hit = set(events["filename"])
    per_category = neg.assign(hit=neg["filename"].isin(hit)).groupby("category")["hit"].mean()
    return {"clips": len(neg), "with_false_alarm": len(hit), "share": len(hit) / len(neg),
            "folds": list(folds), "held_out": held_out,
            "worst_categories": per_category[per_category > 0].sort_values(ascending=False).head(5)
                                .round(3).to_dict(),
            "events_per_label": events["event_label"].value_counts().to_dict()}


def _negative_folds(cfg: Config) -> tuple[int, ...]:
    """The folds whose negatives are held out: the scenes' test fold, or (DESED as test) validation."""
    return tuple(cfg.folds.scenes_test) if cfg.test_set == "scenes" else tuple(cfg.valid_folds)


def _thin(values: list[float], n: int = 400) -> list[float]:
    return values if len(values) <= n else [values[int(i)] for i in np.linspace(0, len(values) - 1, n)]


def evaluate_event_model(cfg: Config, model: str = "frame", *, progress: bool = True,
                         tag: str = "") -> dict[str, Any]:
    """Tune on validation, evaluate on ``cfg.test_set``, count false alarms on negatives; write
    :func:`events_results_path` and return the results (notebook 08). ``model``: ``"frame"`` or
    ``"chunk"`` (the chunk model read as a score curve); ``tag`` names a variant's files (the
    benchmarks compare post-processing candidates on one model)."""
    t0 = time.perf_counter()
    labels = cfg.desed_labels
    path = model_checkpoint(cfg, model)
    if not path.is_file():
        where = "notebook 08, train_frame_model" if model == "frame" else "notebook 05"
        raise FileNotFoundError(f"{path}: no {model} model; train it first ({where})")
    trained = load_trained(path)
    post = tune_on_validation(cfg, trained, progress=progress)
    test = load_test_set(cfg, progress=progress)
    curves = _set_curves(cfg, trained, test, progress, "test curves")
    metrics, events = evaluate_curves(cfg, test, curves, post)
    for name in ("psds1", "psds2"):
        roc = metrics[name]["roc"]
        metrics[name]["roc"] = {"efpr": _thin(roc["efpr"]), "tpr": _thin(roc["tpr"])}
    results = {
        "model": model, "checkpoint": str(path), "profile": cfg.profile, "test_set": cfg.test_set,
        "test_set_name": describe_test_set(cfg), "synthetic_data": bool(cfg.synthetic),
        "post_processing": {
            "event_thresholds": dict(zip(labels, map(float, post["event_thresholds"]), strict=True)),
            "median_filters": dict(zip(labels, map(int, post["median_filters"]), strict=True)),
            "min_durations": dict(zip(labels, map(float, post["min_durations"]), strict=True)),
            "segment_thresholds": dict(zip(labels, map(float, post["segment_thresholds"]), strict=True)),
            "chosen_on": post["chosen_on"],
            "grid": post["grid"].to_dict(orient="records"),
            "min_duration_grid": post["min_duration_grid"].to_dict(orient="records"),
        },
        **metrics,
        "negatives": negative_false_alarms(cfg, trained, post, _negative_folds(cfg), progress=progress),
        "n_files": len(test.files), "n_reference_events": len(test.events),
        "seconds": round(time.perf_counter() - t0, 2),
    }
    out = events_results_path(cfg, model, tag)
    events_path = out.with_suffix(".tsv")
    results["paths"] = {"results": str(out), "events": str(events_path)}
    atomic.write_text(events_path, events.to_csv(sep="\t", index=False, float_format="%.3f"))
    atomic.write_json(out, json_clean(results), allow_nan=False)
    if not tag:  # the default choice travels with the model; a benchmark variant does not replace it
        pp = results["post_processing"]
        store_post_processing(path, "events", {
            "event_thresholds": [pp["event_thresholds"][lab] for lab in labels],
            "median_filters": [pp["median_filters"][lab] for lab in labels],
            "min_durations": [pp["min_durations"][lab] for lab in labels],
            "hop_seconds": float(cfg.eval.event_hop_seconds), "chosen_on": pp["chosen_on"],
            "by": "notebook 08 (evaluate_event_model): per-class thresholds, median filters and minimum "
                  "durations for events"})
    return json_clean(results)
