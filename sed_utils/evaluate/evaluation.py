"""The one evaluation of a trained model, whatever its kind (notebooks 06, 07, 08; the benchmarks).

A model is read as score curves (:func:`sed_utils.models.score_curve`, the function ``detect`` uses
too), so every number below is about what ``detect`` does, and the chunk and frame models are
measured by the same code. :func:`evaluate`:

1. curves of the VALIDATION scenes (ESC-50 validation fold) -> the post-processing, per class
   (:func:`sed_utils.evaluate.choose.choose_post_processing`): event threshold, median filter and
   minimum duration for event F1, and a segment threshold for segment F1;
2. curves of the test set (``cfg.test_set``) -> events and segment decisions -> the original
   project's chunk F1 (its definition: event segments only, threshold 0.6), sed_eval's segment- and
   event-based metrics, PSDS1/PSDS2 and intersection-based F1 of the smoothed curves, confusion
   counts;
3. false alarms on real negatives: the share of ESC-50 clips of the other 45 classes on which the
   detector reports any event (:mod:`sed_utils.evaluate.negatives`).

**One segment rule** for every model: a 1 s segment's score is the highest score of the model's curve
inside it (the frames or windows whose centre lies in the segment). It asks the question the segment
metric asks ("is the class active anywhere in this second?") of the same curve the events come from,
for any model that gives a curve; a chunk model's windows every 250 ms hear a sound at the edge of a
segment centred, which a single window on the segment would hear cut in half.

Nothing is chosen on the test set. Curves are cached by the weights and the audio (``cfg.curve_cache``),
and results by the weights and the evaluation settings, so re-running a notebook costs seconds.
Results go to ``cfg.paths.results(kind)``, the test events to ``cfg.paths.events(kind)``, and the
chosen post-processing into the model's checkpoint.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sed_utils.config.settings import Config
from sed_utils.core import atomic
from sed_utils.core.keys import digest, json_clean
from sed_utils.data.desed import StrongLabelSet
from sed_utils.data.scenes import scene_set
from sed_utils.data.test_sets import describe_test_set, load_test_set
from sed_utils.evaluate.choose import choose_post_processing
from sed_utils.evaluate.curves import model_curves, set_curves
from sed_utils.evaluate.negatives import negative_clip_paths, negative_false_alarms
from sed_utils.labels.chunks import build_segments
from sed_utils.labels.grid import (
    PostProcessing,
    ScoreCurves,
    curve_segment_scores,
    segments_to_events,
    smooth_curves,
)
from sed_utils.metrics.confusion import class_confusion, multilabel_confusion
from sed_utils.metrics.f1 import REFERENCE_NUMBERS, event_metrics, reference_chunk_f1, segment_metrics
from sed_utils.metrics.psds import intersection_f1, psds
from sed_utils.models.checkpoint import TrainedModel, load_trained, store_post_processing

__all__ = ["Evaluation", "heldout_scenes_config", "evaluate"]


@dataclass
class Evaluation:
    """One model's evaluation (notebooks 06-08): every number, and what the figures are drawn from.

    Args:
        kind: the model kind.
        results: every metric and setting (what ``results.json`` holds).
        post: the post-processing chosen on validation.
        test: the test set (clips and reference events).
        curves: the test clips' score curves.
        segments: the test set's 1 s segment table (label columns: the reference).
        segment_scores: the segments' scores ``[segments, C]`` (the one segment rule).
        valid_segments, valid_segment_scores: the same for the validation scenes (what chose the
            segment thresholds).
        events: the predicted test events.
    """

    kind: str
    results: dict[str, Any]
    post: PostProcessing
    test: StrongLabelSet
    curves: ScoreCurves
    segments: pd.DataFrame
    segment_scores: np.ndarray
    valid_segments: pd.DataFrame
    valid_segment_scores: np.ndarray
    events: pd.DataFrame


def heldout_scenes_config(cfg: Config) -> Config:
    """The config of a model that never heard the held-out scenes' fold (notebook 07).

    With ``test_set: scenes`` that is ``cfg`` itself: its models train on ``folds.scenes_train`` and
    choose on ``folds.scenes_valid``. With ``test_set: desed`` they trained on folds 1-4 and chose on
    fold 5, the fold the scenes are mixed from, so scoring them there would flatter them. Then the same
    settings with ``test_set: scenes`` are returned, with a run folder of their own
    (``<run_dir>/heldout_scenes/<profile>``) so neither model overwrites the other.
    """
    if cfg.test_set == "scenes":
        return cfg
    return dataclasses.replace(cfg, test_set="scenes", runs_root=cfg.run_dir / "heldout_scenes")


def _evaluation_key(cfg: Config, trained: TrainedModel) -> str:
    """What decides an evaluation's numbers besides the weights: the test set, the validation scenes,
    the candidates, the collars, the segments. The version names what the results hold (v2: the
    negatives' false alarms per category), so results saved before are recomputed, from cached curves."""
    d = cfg.to_dict()
    view = {k: d[k] for k in ("test_set", "scene_recipe", "classes", "folds", "scenes", "postprocess", "eval",
                              "data_root", "audio")}
    view["segment_seconds"] = cfg.chunking.segment_seconds
    view["scored_in"] = trained.detector.precision  # a model passed in may not follow eval.precision
    return digest("evaluation-v2", trained.weights_key, json.dumps(view, sort_keys=True, default=str))


def _tune(cfg: Config, trained: TrainedModel, progress: bool) -> tuple[PostProcessing, dict[str, Any]]:
    """The post-processing of ``trained``, chosen on the validation scenes (and negatives) only."""
    valid = scene_set(cfg, "valid", progress=progress)
    curves = set_curves(cfg, trained, valid, progress=progress, desc="validation curves")
    folds = ", ".join(map(str, cfg.valid_folds))
    chosen_on = f"{len(valid.files)} validation scenes (ESC-50 fold(s) {folds})"
    tuning = dict(curves)
    if cfg.postprocess.tune_with_negatives:  # no reference events there: every event is a false alarm
        negatives = negative_clip_paths(cfg, tuple(cfg.valid_folds))
        tuning.update(model_curves(cfg, trained, negatives, 5.0, progress=progress,
                                   desc="validation negatives"))
        chosen_on += f" + {len(negatives)} clips of the other classes of the same fold(s)"
    post, grids = choose_post_processing(cfg, tuning, valid.events, build_segments(cfg, valid), chosen_on,
                                         segment_curves=curves)
    return post, {name: table.to_dict(orient="records") for name, table in grids.items()}


def _thin(values: list[float], n: int = 400) -> list[float]:
    return values if len(values) <= n else [values[int(i)] for i in np.linspace(0, len(values) - 1, n)]


def _metrics(cfg: Config, test: StrongLabelSet, curves: ScoreCurves, post: PostProcessing,
             segments: pd.DataFrame, scores: np.ndarray, events: pd.DataFrame) -> dict[str, Any]:
    """Every test metric of one model under ``post``."""
    labels = cfg.desed_labels
    y_true = segments[labels].to_numpy().astype(int)
    binary = (scores >= np.asarray(post.segment_thresholds)[None, :]).astype(int)
    seg_events = segments_to_events(segments["filename"], segments["start"], segments["end"], binary, labels)
    seg_kw = {"segment_seconds": cfg.chunking.segment_seconds, "clip_seconds": test.clip_seconds}
    ref = cfg.eval.reference_threshold
    out: dict[str, Any] = {
        "reference_chunk_f1": reference_chunk_f1(y_true, scores, ref, labels=labels),
        "chunk_f1_all_segments_reference_threshold": reference_chunk_f1(y_true, scores, ref, labels=labels,
                                                                        event_segments_only=False),
        "segment_based": segment_metrics(test.events, seg_events, test.files, labels, **seg_kw),
        "segment_based_from_events": segment_metrics(test.events, events, test.files, labels, **seg_kw),
        "event_based": event_metrics(test.events, events, test.files, labels, t_collar=cfg.eval.onset_collar,
                                     percentage_of_length=cfg.eval.offset_collar_ratio),
        "multilabel_confusion": multilabel_confusion(y_true, binary, labels).to_dict(orient="index"),
        "class_confusion": class_confusion(y_true, binary, labels).to_dict(orient="index"),
        "n_predicted_events": len(events), "n_predicted_segment_events": len(seg_events),
    }
    if not test.events.empty:  # PSDS needs reference events
        smooth = smooth_curves(curves, post.median_filters)
        durations = {name: float(b[-1]) for name, (b, _) in curves.items()}
        for name in ("psds1", "psds2"):
            value = psds(smooth, test.events, durations, labels, name)
            value["roc"] = {k: _thin(list(v)) for k, v in value["roc"].items()}
            out[name] = value
        out["intersection_f1"] = intersection_f1(smooth, test.events, labels, post.thresholds)
    return out


def _cached_results(path: Path, key: str) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        results = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return results if results.get("evaluation_key") == key else None


def evaluate(cfg: Config, kind: str, *, tag: str = "", progress: bool = True,
             trained: TrainedModel | None = None) -> Evaluation:
    """Evaluate the trained model of ``kind`` on ``cfg.test_set`` (notebooks 06, 07, 08; the benchmarks;
    the steps are in the module docstring).

    Args:
        cfg: the config (test set, validation scenes, candidates, collars, run folder).
        kind: the model kind (``"chunk"``, ``"frame"``); its checkpoint is ``cfg.paths.checkpoint(kind)``.
        tag: names a variant's result files (the benchmarks compare choices on one model); a tagged
            variant does not replace the post-processing stored in the checkpoint.
        progress: progress bars.
        trained: the loaded model (default: loaded from its checkpoint, scored in ``eval.precision``).

    Returns:
        An :class:`Evaluation`; its ``results`` are also written to ``cfg.paths.results(kind, tag)``.

    Raises:
        FileNotFoundError: no trained model of that kind (the message names the notebook that trains it).
    """
    t0 = time.perf_counter()
    path = cfg.paths.checkpoint(kind)
    if trained is None:
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no {kind} model; train it first (sed_utils.train.train(cfg, "
                                    f"{kind!r}), notebook {'08' if kind == 'frame' else '05'})")
        trained = load_trained(path, precision=cfg.eval.precision)
    labels, out = cfg.desed_labels, cfg.paths.results(kind, tag)
    key = _evaluation_key(cfg, trained)
    cached = _cached_results(out, key)
    if cached is not None:
        post, grids = PostProcessing.from_dict(cached["post_processing"]), None
    else:
        post, grids = _tune(cfg, trained, progress)
    test = load_test_set(cfg, progress=progress)
    curves = set_curves(cfg, trained, test, progress=progress, desc=f"test curves ({describe_test_set(cfg)})")
    segments = build_segments(cfg, test)
    scores = curve_segment_scores(curves, labels, segments)
    valid = scene_set(cfg, "valid", progress=progress)
    valid_segments = build_segments(cfg, valid)
    valid_scores = curve_segment_scores(set_curves(cfg, trained, valid, progress=progress), labels,
                                        valid_segments)
    events = post.events(curves)
    if cached is None:
        info = trained.info
        results = {
            "model": kind, "checkpoint": str(info.path), "profile": cfg.profile, "test_set": cfg.test_set,
            "test_set_name": describe_test_set(cfg), "synthetic_data": bool(cfg.synthetic),
            "training": {"epoch": info.epoch, "selected_on": info.selected_on, "best_score": info.best_score,
                         "seconds": info.seconds, "precision": info.precision},
            "scored_in": trained.detector.precision,
            "post_processing": post.to_dict(), "post_processing_grids": grids,
            **_metrics(cfg, test, curves, post, segments, scores, events),
            "negatives": negative_false_alarms(cfg, trained, post, progress=progress),
            "n_files": len(test.files), "n_segments": len(segments), "n_reference_events": len(test.events),
            "published_reference_numbers": REFERENCE_NUMBERS, "weights_digest": trained.weights_key,
            "evaluation_key": key, "seconds": round(time.perf_counter() - t0, 2),
            "paths": {"results": str(out), "events": str(cfg.paths.events(kind, tag))},
        }
        atomic.write_text(cfg.paths.events(kind, tag), events.to_csv(sep="\t", index=False,
                                                                     float_format="%.3f"))
        atomic.write_json(out, json_clean(results), allow_nan=False)
        cached = json.loads(out.read_text())
        if not tag and trained.info.path.is_file():
            store_post_processing(trained.info.path, post)
    # where the files are now (a run folder copied or moved keeps its results valid, not their old paths)
    cached["paths"] = {"results": str(out), "events": str(cfg.paths.events(kind, tag))}
    cached["checkpoint"] = str(trained.info.path)
    return Evaluation(kind, cached, post, test, curves, segments, scores, valid_segments, valid_scores,
                      events)
