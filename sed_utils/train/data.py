"""What a model trains and is validated on, built from the config for its kind (notebooks 04, 05, 08).

Two recipes, named by each model kind's ``examples`` (:mod:`sed_utils.models.kinds`):

- ``"chunks"`` (the chunk model, notebook 05): the kept 1 s ESC-50 chunks of the training folds
  (targets and negatives, :func:`sed_utils.labels.build_esc50_chunks`) plus the 1 s segments of
  ``train_scenes`` scenes mixed from the training folds, clip targets; ambient chunks of the training
  folds as backgrounds. Validated on the clean chunks of the validation folds (``"chunks"``) and on the
  1 s segments of the validation scenes (``"scenes"``).
- ``"scenes"`` (the frame model, notebook 08): ``train_scenes`` whole 10 s training scenes with frame
  targets on the network's frame grid (their events are known exactly: they were placed there), and
  ``negative_clips`` negative-only examples per epoch made of the training folds' clips of the other
  45 classes. Validated on the whole validation scenes (``"scenes"``). With ``targets: all`` the
  training targets get one more column per other ESC-50 category (:func:`other_categories`): the
  scenes' distractors and backgrounds and the negative clips are labelled with what they are, so the
  network learns a place for a hen or a siren other than "Dog"; validation stays on the classes.

Every feature comes from the one feature cache; normalisation statistics come from the training
examples only. No recipe touches a test fold.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from sed_utils.config.settings import Config, ModelConfig
from sed_utils.data.desed import StrongLabelSet
from sed_utils.data.esc50 import (
    ESC50_CLIP_SECONDS,
    ambient_categories,
    esc50_root,
    load_esc50_meta,
    negative_clips,
)
from sed_utils.data.scenes import scene_category_events, scene_set
from sed_utils.features.augment import MelBands
from sed_utils.features.logmel import active_frames, feature_cache, normalization_stats
from sed_utils.labels.chunks import build_esc50_chunks, build_segments
from sed_utils.labels.grid import TimeGrid
from sed_utils.models.kinds import ModelKind, get_kind, settings_of
from sed_utils.train.examples import ExampleDataset, Examples, label_matrix

__all__ = ["TrainingData", "training_data", "chunk_data", "scene_data", "segments_with_features",
           "background_features", "negative_clip_features", "clip_examples", "window_examples",
           "other_categories"]


@dataclass
class TrainingData:
    """What :func:`sed_utils.train.train` needs for one model kind (notebooks 04, 05, 08).

    Args:
        kind: the model kind's name.
        train: the training dataset (augmented on the fly).
        valid: validation sets by name (``"chunks"``, ``"scenes"``): never augmented.
        mean, std: the training features' statistics (the model's normaliser takes them).
        window_seconds: the length of one input (1 s chunks, 10 s scenes).
        backgrounds: ambient chunks of the training folds (chunk examples' background augmentation).
        other_labels: the categories trained as outputs after the classes (``targets: all``), or none.
    """

    kind: str
    train: ExampleDataset
    valid: dict[str, Examples]
    mean: float
    std: float
    window_seconds: float
    backgrounds: np.ndarray | None = None
    other_labels: tuple[str, ...] = ()


def segments_with_features(cfg: Config, ds: StrongLabelSet, cache_name: str, *,
                           progress: bool = True) -> tuple[pd.DataFrame, np.ndarray]:
    """A strongly labelled set's 1 s segment table and their cached log-mels, row ``i`` = row ``i``:
    the one "clips -> segments -> features" step (notebooks 04, 05).

    Args:
        cfg: the config; ds: the clips and their events; cache_name: names the feature cache file.
        progress: show progress bars.
    """
    table = build_segments(cfg, ds)
    return table, feature_cache(cfg, table, cache_name, progress=progress, cache_audio=False)


def background_features(cfg: Config, table: pd.DataFrame, *, progress: bool = True) -> np.ndarray | None:
    """Log-mels of the non-silent ambient chunks (rain, wind, engines, ...) of the TRAINING folds, for
    the background augmentation (notebook 04); None when it is off or there is none.

    ``table`` is the full chunk table of :func:`sed_utils.labels.build_esc50_chunks` (kept or not: a
    rain chunk need not be a training negative to serve as a background). Only ``cfg.train_folds``
    are used, so validation and test clips never leak into training through the backgrounds.

    Args:
        cfg: the config (``augment.background_prob``, the training folds, the classes, the feature cache).
        table: the full chunk table, as above.
        progress: show a progress bar while features are computed.

    Returns:
        Log-mels in dB ``[M, n_mels, frames]`` (float16), or None (a warning says so when the
        augmentation is on but the training folds hold no ambient chunk).
    """
    if cfg.augment.background_prob <= 0:
        return None
    rows = table[table["category"].isin(ambient_categories(cfg.esc50_categories))
                 & table["fold"].isin(cfg.train_folds) & ~table["silent"]].reset_index(drop=True)
    if rows.empty:
        warnings.warn(f"augment.background_prob = {cfg.augment.background_prob} but the training folds "
                      f"{list(cfg.train_folds)} hold no ambient chunk: training without background "
                      "augmentation",
                      stacklevel=2)
        return None
    return np.asarray(feature_cache(cfg, rows, "esc50-background", progress=progress))


def _split_folds(cfg: Config, kept: pd.DataFrame, limit: int) -> tuple[np.ndarray, np.ndarray]:
    """Row indices of the training and validation folds, the training ones subsampled to ``limit``."""
    folds = kept["fold"].to_numpy()
    train_idx = np.flatnonzero(np.isin(folds, cfg.train_folds))
    valid_idx = np.flatnonzero(np.isin(folds, cfg.valid_folds))
    if len(train_idx) == 0 or len(valid_idx) == 0:
        raise ValueError(f"no kept chunks in train folds {cfg.train_folds} or valid folds {cfg.valid_folds}")
    if 0 < limit < len(train_idx):
        train_idx = np.sort(np.random.default_rng(cfg.seed).choice(train_idx, size=limit, replace=False))
    return train_idx, valid_idx


def chunk_data(cfg: Config, settings: ModelConfig, *, kind: str = "chunk",
               progress: bool = True) -> TrainingData:
    """The ``"chunks"`` recipe (see the module docstring; notebooks 04, 05).

    Args:
        cfg: the config (chunking, folds, scenes, augmentation, seed).
        settings: the kind's ``models.<kind>``: ``train_scenes`` (0: chunks only) and
            ``max_train_chunks`` (> 0: a seeded subset of the training chunks).
        kind: the model kind it is built for.
    """
    table = build_esc50_chunks(cfg, progress=progress)
    kept = table[table["kept"]].reset_index(drop=True)
    feats = feature_cache(cfg, kept, "esc50", progress=progress)
    train_idx, valid_idx = _split_folds(cfg, kept, settings.max_train_chunks)
    labels = cfg.desed_labels
    train_table = kept.iloc[train_idx].reset_index(drop=True).assign(source="chunk")
    valid_table = kept.iloc[valid_idx].reset_index(drop=True)
    train_feats = np.asarray(feats[train_idx])  # training reads every row every epoch: in memory
    if settings.train_scenes > 0:
        scene_table, scene_feats = segments_with_features(
            cfg, scene_set(cfg, "train", n_scenes=settings.train_scenes, progress=progress), "train-scenes",
            progress=progress)
        train_table = pd.concat([train_table, scene_table.assign(source="scene")], ignore_index=True)
        train_feats = np.concatenate([train_feats, np.asarray(scene_feats)])
    mean, std = normalization_stats(train_feats)
    backgrounds = background_features(cfg, table, progress=progress)
    train = ExampleDataset(Examples(train_feats, label_matrix(train_table, labels), table=train_table),
                           augment=cfg.augment, seed=cfg.seed, backgrounds=backgrounds, fill_db=mean,
                           bands=MelBands.of(cfg.features, cfg.audio.sample_rate))
    valid_scenes, valid_feats = segments_with_features(cfg, scene_set(cfg, "valid", progress=progress),
                                                       "valid-scenes", progress=progress)
    valid = {"chunks": Examples(feats[valid_idx], label_matrix(valid_table, labels), table=valid_table),
             "scenes": Examples(np.asarray(valid_feats, dtype=np.float32), label_matrix(valid_scenes, labels),
                                table=valid_scenes)}
    return TrainingData(kind, train, valid, mean, std, cfg.chunking.chunk_seconds, backgrounds)


def other_categories(cfg: Config) -> tuple[str, ...]:
    """The ESC-50 categories that are not one of the classes, sorted: the extra outputs of a model
    trained with ``targets: all`` (notebook 08)."""
    known = set(load_esc50_meta(esc50_root(cfg))["category"].astype(str))
    return tuple(sorted(known - set(cfg.esc50_categories)))


def clip_examples(cfg: Config, ds: StrongLabelSet, name: str, frame_seconds: float, time_stride: int, *,
                  others: tuple[str, ...] = (), progress: bool = True) -> Examples:
    """Whole clips of ``ds`` as examples: log-mels (cached as ``name``; every clip read as
    ``ds.clip_seconds`` long, shorter ones padded) and frame targets on a grid of ``frame_seconds``
    (``ceil(mel frames / time_stride)`` frames), clip targets their union (notebook 08).

    Args:
        cfg: the config (the feature settings and cache, the classes).
        ds: the clips and their events, one example per file of ``ds.files``.
        name: the feature cache's name.
        frame_seconds: one output frame's length in seconds.
        time_stride: mel frames per output frame of the kind's network.
        others: ESC-50 categories to target after the classes, located by
            :func:`sed_utils.data.scenes.scene_category_events` (scene sets only).
        progress: show a progress bar while features are computed.

    Returns:
        :class:`Examples` with features ``[N, n_mels, frames]``, clip targets ``[N, C + K]``, frame
        targets ``[N, T', C + K]`` (``K = len(others)``) and a table ``filename, path, start, end``.
    """
    files = list(ds.files)
    table = pd.DataFrame({"filename": files, "path": [str(ds.path(f)) for f in files],
                          "start": 0.0, "end": float(ds.clip_seconds)})
    events = ds.events[["filename", "onset", "offset", "event_label"]]
    if others:
        events = pd.concat([events, scene_category_events(ds, others)], ignore_index=True)
    return window_examples(cfg, table, events, name, frame_seconds, time_stride,
                           labels=tuple(cfg.desed_labels) + tuple(others), progress=progress)


def window_examples(cfg: Config, windows: pd.DataFrame, events: pd.DataFrame, name: str, frame_seconds: float,
                    time_stride: int, *, labels: tuple[str, ...] | None = None,
                    progress: bool = True) -> Examples:
    """Windows of recordings as examples (notebook 08, through :func:`clip_examples`; your own sounds,
    cut into windows): each window's log-mel (cached as ``name``; a window past its file's end is padded)
    and the frame targets of the events inside it.

    Args:
        cfg: the config (the feature settings and cache).
        windows: ``filename, path, start, end`` (seconds in the file; all windows of one length).
        events: ``filename, onset, offset, event_label`` in the files' own time.
        name: the feature cache's name.
        frame_seconds: one output frame's length in seconds; time_stride: mel frames per output frame.
        labels: the target columns (default: the classes).
        progress: show a progress bar while features are computed.

    Returns:
        :class:`Examples`: features ``[N, n_mels, frames]``, clip targets ``[N, C]``, frame targets
        ``[N, T', C]``, the table ``windows``.
    """
    labels = tuple(labels if labels is not None else cfg.desed_labels)
    feats = feature_cache(cfg, windows, name, progress=progress, cache_audio=False)
    grid = TimeGrid.regular(labels, frame_seconds, math.ceil(feats.shape[-1] / time_stride))
    groups = {f: part for f, part in events.groupby("filename", sort=False)}
    empty = events.iloc[:0]
    frames = []
    for row in windows.itertuples():
        mine = groups.get(row.filename, empty)
        inside = mine[(mine["offset"] > row.start) & (mine["onset"] < row.end)]
        length = row.end - row.start
        frames.append(grid.encode(inside.assign(onset=(inside["onset"] - row.start).clip(lower=0.0),
                                                offset=(inside["offset"] - row.start).clip(upper=length))))
    frames = np.stack(frames) if frames else np.zeros((0, grid.n_frames, len(labels)), np.float32)
    return Examples(feats, frames.max(axis=1) if len(frames) else frames[:, 0], frames, windows)


def negative_clip_features(cfg: Config, *, pool: str = "others",
                           progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Log-mels ``[M, n_mels, T5]`` of the TRAINING folds' ESC-50 clips of the other 45 classes (``pool``
    ``"others"``, cached as ``frame-negatives``) or of all 50 (``"all"`` and ``"balanced"``, cached as
    ``frame-clips``), and
    their categories ``[M]`` (notebook 08). Never a validation or test fold: the held-out fold's
    negatives are where false alarms are counted.

    Args:
        cfg: the config (its training folds and classes); pool: ``"others"``, ``"all"`` or ``"balanced"``
            (``models.<kind>.clip_pool``); progress: a bar while the cache is built.

    Returns:
        ``(features, categories)``.

    Raises:
        ValueError: the training folds hold no such clip.
    """
    meta = load_esc50_meta(esc50_root(cfg))
    folds = tuple(cfg.train_folds)
    clips = (meta[meta["fold"].isin(folds)] if pool in ("all", "balanced")
             else negative_clips(meta, cfg.esc50_categories, folds))
    if clips.empty:
        raise ValueError(f"negative_clips > 0, but ESC-50 folds {list(folds)} hold no clip "
                         + ("" if pool != "others" else "outside the target classes"))
    table = pd.DataFrame({"filename": clips["filename"].astype(str).to_numpy(),
                          "path": clips["path"].astype(str).to_numpy(), "start": 0.0,
                          "end": ESC50_CLIP_SECONDS})
    name = "frame-negatives" if pool == "others" else "frame-clips"
    return feature_cache(cfg, table, name, progress=progress), clips["category"].astype(str).to_numpy()


def scene_data(cfg: Config, settings: ModelConfig, time_stride: int, *, kind: str = "frame",
               progress: bool = True) -> TrainingData:
    """The ``"scenes"`` recipe (see the module docstring; notebook 08).

    Args:
        cfg: the config; settings: the kind's ``models.<kind>`` (``train_scenes``, ``negative_clips``,
            ``targets``).
        time_stride: mel frames per output frame of the kind's network (the frame targets' grid).
        kind: the model kind it is built for.
    """
    frame_seconds = time_stride * cfg.features.hop_length / cfg.audio.sample_rate
    others = other_categories(cfg) if settings.targets == "all" else ()
    train_scenes = scene_set(cfg, "train", n_scenes=settings.train_scenes, progress=progress)
    train = clip_examples(cfg, train_scenes, "frame-train", frame_seconds, time_stride, others=others,
                          progress=progress)
    valid = clip_examples(cfg, scene_set(cfg, "valid", progress=progress), "frame-valid", frame_seconds,
                          time_stride, progress=progress)
    mean, std = normalization_stats(train.features)
    negatives = columns = activity = weights = None
    if settings.negative_clips > 0:
        negatives, categories = negative_clip_features(cfg, pool=settings.clip_pool, progress=progress)
        # each clip's output column (-1: none): a target category's class, or its own with targets: all
        column = {c: i for i, c in enumerate(cfg.esc50_categories)}
        column.update({c: len(cfg.desed_labels) + i for i, c in enumerate(others)})
        columns = np.array([column.get(c, -1) for c in categories])
        if (columns >= 0).any():
            activity = active_frames(np.asarray(negatives), cfg.chunking.silence_db)
        else:
            columns = None  # all-zero targets
        if settings.clip_pool == "balanced":  # half the clean clips of the classes, half of the others
            is_class = np.isin(categories, list(cfg.esc50_categories))
            weights = np.where(is_class, 0.5 / max(is_class.sum(), 1), 0.5 / max((~is_class).sum(), 1))
            weights = weights / weights.sum()
    dataset = ExampleDataset(train, augment=cfg.augment, seed=cfg.seed, fill_db=mean, negatives=negatives,
                             negative_items=settings.negative_clips, negative_columns=columns,
                             negative_activity=activity, negative_weights=weights,
                             bands=MelBands.of(cfg.features, cfg.audio.sample_rate))
    return TrainingData(kind, dataset, {"scenes": valid}, mean, std, float(train_scenes.clip_seconds),
                        other_labels=others)


def training_data(cfg: Config, kind: str | ModelKind, *, progress: bool = True) -> TrainingData:
    """The training and validation data of ``kind``, built by the recipe its ``examples`` names
    (notebooks 04, 05, 08; :func:`sed_utils.train.train` builds it when not given).

    Args:
        cfg: the config (data, folds, scenes, augmentation, seed, the kind's ``models.<kind>``).
        kind: a registered kind or its name.
        progress: show progress bars.

    Returns:
        The training dataset, the validation sets, the training statistics and the input length.

    Raises:
        ValueError: a ``"scenes"`` kind whose network has no frames (no ``time_stride``).
    """
    k = get_kind(kind)
    settings = settings_of(cfg, k)
    if k.examples == "chunks":
        return chunk_data(cfg, settings, kind=k.name, progress=progress)
    stride = k.time_stride
    if not stride:
        raise ValueError(f"model kind {k.name!r} trains on scenes with frame targets, but its network has no "
                         "time_stride (mel frames per output frame)")
    return scene_data(cfg, settings, int(stride), kind=k.name, progress=progress)
