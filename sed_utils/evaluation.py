"""The whole evaluation of a trained run: thresholds from validation, scores on the test set, metrics.

:func:`evaluate_run` is what notebook 06 and the runner call. It wires the pieces below it
together: the checkpoint (:mod:`sed_utils.checkpoint`), the one forward loop and the sliding
windows (:mod:`sed_utils.inference`), scores -> events (:mod:`sed_utils.postprocess`) and the
three views of the metrics (:mod:`sed_utils.metrics.f1`). Model scores are cached per checkpoint
(``cfg.run_dir / "eval_cache"``), so re-running notebook 06 with another collar or threshold costs
seconds.

Thresholds are chosen on validation data only (:func:`thresholds_from_validation`: the validation
fold's scenes by default), never on the test set: choosing them on the test set would make the
test score optimistic, which is exactly the flaw of the original 0.497 (its checkpoint was chosen
on test data).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sed_utils.checkpoint import TrainedModel, load_trained, store_post_processing
from sed_utils.config import Config
from sed_utils.core import atomic
from sed_utils.core.keys import digest, file_identity, json_clean
from sed_utils.core.progress import tqdm
from sed_utils.data.desed import StrongLabelSet
from sed_utils.data.scenes import scene_set
from sed_utils.data.test_sets import describe_test_set
from sed_utils.dataset import scene_segments, segments_of_test_set
from sed_utils.inference import predict_proba, sliding_window_scores
from sed_utils.io.audio import read_audio
from sed_utils.labels.chunks import build_segments
from sed_utils.metrics.f1 import (
    REFERENCE_NUMBERS,
    choose_thresholds,
    class_confusion,
    event_metrics,
    multilabel_confusion,
    reference_chunk_f1,
    segment_metrics,
)
from sed_utils.metrics.psds import psds
from sed_utils.postprocess import (
    event_frame,
    scores_to_events,
    segment_scores_from_windows,
    segments_to_events,
    smooth_curves,
    window_bounds,
)

__all__ = [
    "heldout_scenes_config",
    "checkpoint_path",
    "valid_predictions_path",
    "results_path",
    "predictions_path",
    "write_json_atomic",
    "thresholds_from_validation",
    "validation_scene_predictions",
    "load_predictions",
    "evaluate_run",
]

Windows = dict[str, tuple[np.ndarray, np.ndarray]]  # file -> (window centres [n], scores [n, C])


def heldout_scenes_config(cfg: Config) -> Config:
    """The config of a model that never heard the held-out scenes' fold (notebook 07).

    With ``test_set: scenes`` that is ``cfg`` itself: notebook 05 trained on ``folds.scenes_train``
    and chose on ``folds.scenes_valid``. With ``test_set: desed`` notebook 05's model trained on folds
    1-4 and chose its epoch and thresholds on fold 5, the fold the scenes are mixed from, so scoring
    it there would flatter it. Then the same settings with ``test_set: scenes`` are returned, with a
    run folder of their own (``<run_dir>/heldout_scenes/<profile>``) so neither model overwrites the
    other."""
    if cfg.test_set == "scenes":
        return cfg
    return dataclasses.replace(cfg, test_set="scenes", runs_root=cfg.run_dir / "heldout_scenes")


def checkpoint_path(cfg: Config) -> Path:
    """The run's kept checkpoint, ``runs/<profile>/model/best.pt`` (notebooks 05, 06)."""
    return cfg.run_dir / "model" / "best.pt"


def valid_predictions_path(cfg: Config) -> Path:
    """The kept epoch's validation-chunk probabilities, saved by training (notebook 06)."""
    return cfg.run_dir / "model" / "valid_predictions.npz"


def results_path(cfg: Config) -> Path:
    """``runs/<profile>/results.json``: every number of the evaluation (notebook 06, the runner)."""
    return cfg.run_dir / "results.json"


def predictions_path(cfg: Config) -> Path:
    """Per-segment and sliding-window predictions of the last evaluation (notebook 06's plots)."""
    return cfg.run_dir / "desed_predictions.npz"


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Write strict JSON (NaN -> null) to ``path`` atomically (results.json, the benchmarks; notebook 06,
    through evaluate_run)."""
    atomic.write_json(Path(path), json_clean(data), allow_nan=False)


def thresholds_from_validation(
    cfg: Config, labels: list[str], trained: TrainedModel | None = None, *, progress: bool = False
) -> tuple[np.ndarray, str]:
    """Thresholds used on the test set, chosen on validation data only (notebook 06).

    ``cfg.eval.per_class_thresholds`` off: ``cfg.eval.threshold`` for every class. On, with
    ``cfg.eval.valid_scenes > 0``: per class, F1-maximising over the 1 s segments of scenes mixed
    from the validation fold (:func:`validation_scene_predictions`; needs ``trained``). On, with
    ``valid_scenes: 0``: F1-maximising over the clean validation chunks saved by training.

    Why scenes by default: on clean chunks a dog's score is near 1, so the best threshold there is
    high; over rain or an engine the same dog scores lower, and that threshold misses it. Scenes
    from the validation fold show the threshold search the kind of input it will face.
    """
    thresholds, source, _, _ = _thresholds_and_data(cfg, labels, trained, progress)
    return thresholds, source


def _thresholds_and_data(
    cfg: Config, labels: list[str], trained: TrainedModel | None, progress: bool
) -> tuple[np.ndarray, str, np.ndarray, np.ndarray]:
    """:func:`thresholds_from_validation` plus the labels and probabilities they were chosen on
    (empty arrays for a global threshold), which :func:`evaluate_run` saves for notebook 06."""
    none = np.zeros((0, len(labels)))
    if not cfg.eval.per_class_thresholds:
        return np.full(len(labels), float(cfg.eval.threshold)), "global (cfg.eval.threshold)", none, none
    if cfg.eval.valid_scenes > 0:
        if trained is None:
            raise ValueError("thresholds_from_validation: eval.valid_scenes > 0 needs the trained model")
        y, probs = validation_scene_predictions(cfg, trained, progress=progress)
        folds = ", ".join(map(str, cfg.valid_folds))
        return choose_thresholds(y, probs), (
            f"per class, F1-maximising on {cfg.eval.valid_scenes} scenes mixed from ESC-50 validation "
            f"fold {folds} (1 s segments)"), y, probs
    path = valid_predictions_path(cfg)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: validation predictions not found; run notebook 05 first")
    with np.load(path) as z:
        if "probs" not in z or "labels" not in z:
            raise ValueError(f"{path}: expected arrays 'probs' and 'labels', found {list(z.keys())}")
        probs, y = z["probs"], z["labels"]
    if probs.shape != y.shape or probs.ndim != 2 or probs.shape[1] != len(labels):
        raise ValueError(f"{path}: probs {probs.shape} / labels {y.shape} do not match {len(labels)} classes")
    source = "per class, F1-maximising on the ESC-50 validation fold's chunks"
    return choose_thresholds(y, probs), source, y, probs


def _checkpoint_key(trained: TrainedModel) -> str:
    """What names the score caches of a model: the digest of its weights (not of the file, which
    also holds the post-processing that evaluation stores in it)."""
    return trained.weights_key


def validation_scene_predictions(
    cfg: Config, trained: TrainedModel, *, progress: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """0/1 labels and probabilities ``[segments, classes]`` of the validation scenes' 1 s segments
    (notebook 06).

    The scenes are the ``valid`` role of :func:`sed_utils.data.scenes.scene_set` (validation fold
    only). With ``cfg.eval.segment_scores: windows`` the probabilities are the segments' pooled
    sliding-window scores (:func:`sed_utils.postprocess.pool_windows_to_segments`), as the test
    segments then get; with ``grid`` the model scores each segment's own features.
    """
    if cfg.eval.segment_scores == "windows":  # the segments' own features are not needed then
        ds = scene_set(cfg, "valid", progress=progress)
        table = build_segments(cfg, ds)
        windows = _window_scores(cfg, trained, ds, _checkpoint_key(trained), progress,
                                 desc="sliding windows, validation scenes")
        y = table[cfg.desed_labels].to_numpy().astype(int)
        return y, segment_scores_from_windows(table, windows, cfg.chunking.chunk_seconds)
    table, feats = scene_segments(cfg, "valid", progress=progress)
    probs = predict_proba(trained.detector, np.asarray(feats, dtype=np.float32),
                          batch_size=cfg.train.batch_size)
    return table[cfg.desed_labels].to_numpy().astype(int), probs


def load_predictions(cfg: Config) -> dict[str, Any]:
    """What :func:`evaluate_run` saved for plotting (notebook 06): segments, y_true, probs, window scores.

    Returns a dict with ``segments`` (filename/start/end), ``y_true`` and ``probs`` [N, C],
    ``thresholds`` [C], ``labels``, ``windows``: {filename: (times, scores)}, and
    ``threshold_y`` / ``threshold_probs``: the validation data the thresholds were chosen on
    (validation-scene segments or validation chunks; empty for a global threshold), and
    ``grid_probs``: the segment-grid scores (``probs`` are the scores used, grid or windows).
    """
    path = predictions_path(cfg)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no saved predictions; run evaluate_run(cfg) first")
    with np.load(path, allow_pickle=False) as z:
        seg = pd.DataFrame({"filename": z["seg_filename"].astype(str), "start": z["seg_start"],
                            "end": z["seg_end"]})
        windows = _unpack_windows(z["win_filename"].astype(str), z["win_offsets"], z["win_times"],
                                  z["win_scores"])
        return {"segments": seg, "y_true": z["y_true"], "probs": z["probs"],
                "thresholds": z["thresholds"], "labels": [str(x) for x in z["labels"]], "windows": windows,
                "threshold_y": z["threshold_y"], "threshold_probs": z["threshold_probs"],
                "grid_probs": z["grid_probs"]}


def _pack_windows(windows: Windows, n_labels: int) -> dict[str, np.ndarray]:
    """Window scores of many files as flat arrays + offsets (an npz holds no dict of arrays)."""
    files = list(windows)
    return {
        "files": np.asarray(files, dtype=str),
        "offsets": np.concatenate([[0], np.cumsum([len(windows[f][0]) for f in files])]).astype(np.int64),
        "times": np.concatenate([windows[f][0] for f in files]) if files else np.zeros(0),
        "scores": (np.concatenate([windows[f][1] for f in files]) if files
                   else np.zeros((0, n_labels), np.float32)),
    }


def _unpack_windows(files: Any, offsets: np.ndarray, times: np.ndarray, scores: np.ndarray) -> Windows:
    return {str(f): (times[offsets[i]:offsets[i + 1]], scores[offsets[i]:offsets[i + 1]])
            for i, f in enumerate(files)}


def _segment_probs(cfg: Config, trained: TrainedModel, table: pd.DataFrame, feats: np.ndarray, ckpt_key: str,
                   progress: bool) -> np.ndarray:
    """Segment probabilities, cached under a key of checkpoint + features + segment table."""
    key = digest(ckpt_key, feats, table[["filename", "start", "end"]].to_numpy().astype(str))
    cache = cfg.run_dir / "eval_cache" / f"segment_probs_{key}.npy"
    if ckpt_key and cache.is_file():
        return np.load(cache)
    step = 1024  # blocks keep memory bounded: a float16 memmap becomes float32 one block at a time
    out = [predict_proba(trained.detector, np.asarray(feats[a:a + step], dtype=np.float32),
                         batch_size=cfg.train.batch_size)
           for a in tqdm(range(0, len(feats), step), desc="test set segments", disable=not progress)]
    probs = np.concatenate(out) if out else np.zeros((0, len(cfg.desed_labels)), np.float32)
    if ckpt_key:
        atomic.save_npy(cache, probs.astype(np.float32))
    return probs


def _window_scores(cfg: Config, trained: TrainedModel, ds: StrongLabelSet, ckpt_key: str,
                   progress: bool, desc: str) -> Windows:
    """Sliding-window scores of every clip of ``ds``, cached under checkpoint + audio + parameters;
    ``desc`` names the set on the progress bar (validation scenes or the test set: a reader must
    see which one is being scored)."""
    files = list(ds.files)
    # the folder is part of the key: the test and the validation scenes share file names and sizes
    sources = file_identity(ds.path(f) for f in files)  # size + mtime of each file
    key = digest("windows-v4", ckpt_key, str(ds.audio_dir), files, sources, cfg.audio.sample_rate,
                 cfg.to_dict()["mel"], cfg.chunking.chunk_seconds, cfg.eval.event_hop_seconds)
    cache = cfg.run_dir / "eval_cache" / f"window_scores_{key}.npz"
    if ckpt_key and cache.is_file():
        with np.load(cache) as z:
            return _unpack_windows(files, z["offsets"], z["times"], z["scores"])
    detector, sr = trained.detector, trained.detector.sample_rate
    result: Windows = {}
    for name in tqdm(files, desc=desc, disable=not progress):
        times, scores = sliding_window_scores(detector, read_audio(ds.path(name), sr), sr,
                                              cfg.eval.event_hop_seconds, batch_size=cfg.train.batch_size)
        result[name] = (times, scores.astype(np.float32))
    if ckpt_key:  # no key (a model without a checkpoint file): nothing to name a cache after
        packed = _pack_windows(result, len(cfg.desed_labels))
        atomic.save_npz(cache, offsets=packed["offsets"], times=packed["times"], scores=packed["scores"])
    return result


def _window_events(cfg: Config, ds: StrongLabelSet, windows: Windows, thresholds: np.ndarray) -> pd.DataFrame:
    """Events of every clip from its sliding-window scores (median filter, thresholds, merging)."""
    est = [
        scores_to_events(t, s, thresholds, cfg.eval.event_hop_seconds, cfg.chunking.chunk_seconds,
                         cfg.desed_labels, cfg.eval.median_filter_frames, filename=f,
                         clip_seconds=ds.clip_seconds)
        for f, (t, s) in windows.items()
    ]
    return pd.concat(est, ignore_index=True) if est else event_frame([])


def _window_psds(cfg: Config, ds: StrongLabelSet, windows: Windows) -> dict[str, Any]:
    """PSDS1 and PSDS2 of the sliding-window scores, each window standing for the slice around its
    centre (the same reading as the events); ``{}`` when the test set has no target event."""
    hop = cfg.eval.event_hop_seconds
    curves = {f: (window_bounds(t, hop, ds.clip_seconds), s) for f, (t, s) in windows.items()}
    curves = smooth_curves(curves, cfg.eval.median_filter_frames)
    durations = {f: float(b[-1]) for f, (b, _) in curves.items()}
    if ds.events.empty:
        return {}
    out = {}
    for name in ("psds1", "psds2"):
        value = psds(curves, ds.events, durations, cfg.desed_labels, name)
        value["roc"] = {k: v[:: max(1, len(v) // 400)] for k, v in value["roc"].items()}
        out[name] = value
    return out


def _metric_views(cfg: Config, ds: StrongLabelSet, table: pd.DataFrame, probs: np.ndarray,
                  grid_probs: np.ndarray, windows: Windows, thresholds: np.ndarray) -> dict[str, Any]:
    """The three views (original chunk F1, sed_eval segment-based, sed_eval event-based) and extras."""
    labels = cfg.desed_labels
    y_true = table[labels].to_numpy().astype(int)
    binary = (probs >= thresholds[None, :]).astype(int)
    seg_kw = {"segment_seconds": cfg.chunking.segment_seconds, "clip_seconds": ds.clip_seconds}
    seg_events = segments_to_events(table["filename"], table["start"], table["end"], binary, labels)
    win_events = _window_events(cfg, ds, windows, thresholds)
    ref = cfg.eval.reference_threshold
    return {
        "n_predicted_events": {"segments": len(seg_events), "sliding_windows": len(win_events)},
        # view 1, on the segment grid as the original cut its chunks
        "reference_chunk_f1": reference_chunk_f1(y_true, grid_probs, ref, labels=labels),
        # view 2: every segment of every file; view 3: events from the sliding windows
        "segment_based": segment_metrics(ds.events, seg_events, ds.files, labels, **seg_kw),
        "event_based": event_metrics(ds.events, win_events, ds.files, labels, t_collar=cfg.eval.onset_collar,
                                     percentage_of_length=cfg.eval.offset_collar_ratio),
        "chunk_f1_all_segments_reference_threshold": reference_chunk_f1(
            y_true, grid_probs, ref, labels=labels, event_segments_only=False),
        "segment_based_from_sliding_windows": segment_metrics(ds.events, win_events, ds.files, labels,
                                                              **seg_kw),
        # threshold-free: PSDS of the (median-filtered) sliding-window scores read as curves
        **_window_psds(cfg, ds, windows),
        "multilabel_confusion": multilabel_confusion(y_true, binary, labels).to_dict(orient="index"),
        "class_confusion": class_confusion(y_true, binary, labels).to_dict(orient="index"),
    }


def _save_predictions(cfg: Config, table: pd.DataFrame, probs: np.ndarray, grid_probs: np.ndarray,
                      thresholds: np.ndarray, y_valid: np.ndarray, probs_valid: np.ndarray,
                      windows: Windows) -> None:
    labels = cfg.desed_labels
    packed = _pack_windows(windows, len(labels))
    atomic.save_npz(
        predictions_path(cfg),
        seg_filename=table["filename"].to_numpy().astype(str), seg_start=table["start"].to_numpy(float),
        seg_end=table["end"].to_numpy(float), y_true=table[labels].to_numpy().astype(int),
        probs=probs.astype(np.float32), grid_probs=np.asarray(grid_probs, dtype=np.float32),
        thresholds=thresholds, labels=np.asarray(labels),
        threshold_y=np.asarray(y_valid, dtype=np.float32),
        threshold_probs=np.asarray(probs_valid, dtype=np.float32),
        win_filename=packed["files"], win_offsets=packed["offsets"], win_times=packed["times"],
        win_scores=packed["scores"],
    )


def _load_checked(cfg: Config) -> TrainedModel:
    ckpt = checkpoint_path(cfg)
    if not ckpt.is_file():
        raise FileNotFoundError(f"{ckpt}: no checkpoint; run notebook 05 (training) first")
    trained = load_trained(ckpt)
    if list(trained.labels) != list(cfg.desed_labels):
        raise ValueError(f"{ckpt}: checkpoint labels {list(trained.labels)} differ from the config's "
                         f"{cfg.desed_labels}")
    return trained


def evaluate_run(cfg: Config, *, progress: bool = True) -> dict[str, Any]:
    """Evaluate the best checkpoint of ``cfg.run_dir`` on the test set ``cfg.test_set`` (notebook 06, runner).

    Steps: load the checkpoint; thresholds from validation data only (:func:`thresholds_from_validation`);
    the test set's segment probabilities and sliding-window scores (cached); then the three views
    - original chunk F1 at ``cfg.eval.reference_threshold``, sed_eval segment-based over every
    segment, sed_eval event-based from the sliding windows - plus confusion counts. Writes
    ``results.json`` and the predictions for plotting (:func:`load_predictions`), and returns the
    results dict.
    """
    t0 = time.perf_counter()
    labels = cfg.desed_labels
    trained = _load_checked(cfg)
    ckpt_key = _checkpoint_key(trained)
    thresholds, threshold_source, y_valid, probs_valid = _thresholds_and_data(cfg, labels, trained, progress)
    ds, table, feats = segments_of_test_set(cfg, progress=progress)
    if len(table) != len(feats):
        raise ValueError(f"test set: {len(table)} segments but {len(feats)} feature rows")
    grid_probs = _segment_probs(cfg, trained, table, feats, ckpt_key, progress)
    windows = _window_scores(cfg, trained, ds, ckpt_key, progress,
                             desc=f"sliding windows, test set ({describe_test_set(cfg)})")
    if cfg.eval.segment_scores == "windows":
        probs = segment_scores_from_windows(table, windows, cfg.chunking.chunk_seconds).astype(np.float32)
    else:
        probs = grid_probs
    info = trained.info
    results: dict[str, Any] = {
        "profile": cfg.profile, "synthetic_data": bool(cfg.synthetic), "test_set": cfg.test_set,
        "test_set_name": describe_test_set(cfg), "config": cfg.to_dict(), "checkpoint": str(info.path),
        "valid": {"macro_f1": info.valid_macro_f1, "epoch": info.epoch, "selected_on": info.selected_on,
                  "selection_score": info.best_score,
                  "what": "macro_f1: the kept epoch's F1 on the clean ESC-50 validation chunks (threshold "
                          "eval.threshold); selection_score: the score that kept it, on the validation "
                          "chunks or on the validation scenes (selected_on)"},
        "thresholds": dict(zip(labels, map(float, thresholds), strict=True)),
        "threshold_source": threshold_source, "segment_scores": cfg.eval.segment_scores,
        "n_files": len(ds.files), "n_segments": len(table), "n_reference_events": len(ds.events),
        **_metric_views(cfg, ds, table, probs, grid_probs, windows, thresholds),
        "published_reference_numbers": REFERENCE_NUMBERS,
        "seconds": round(time.perf_counter() - t0, 2),
    }
    _save_predictions(cfg, table, probs, grid_probs, thresholds, y_valid, probs_valid, windows)
    store_post_processing(info.path, "segments", {  # what detect() falls back on (notebook 09)
        "event_thresholds": [float(t) for t in thresholds],
        "median_filters": [int(m) for m in np.broadcast_to(cfg.eval.median_filter_frames, (len(labels),))],
        "hop_seconds": float(cfg.eval.event_hop_seconds), "chosen_on": threshold_source,
        "by": "notebook 06 (evaluate_run): per-class thresholds for 1 s segments"})
    results["paths"] = {"results": str(results_path(cfg)), "predictions": str(predictions_path(cfg))}
    write_json_atomic(results_path(cfg), results)
    return json_clean(results)
