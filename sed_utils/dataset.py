"""torch Datasets over cached log-mel chunks, and the calls that gather every set the model meets.

``ChunkDataset`` reads from the feature cache (fast: an array lookup per item) and applies the
augmentations of :mod:`sed_utils.features.augment` on the fly, so every epoch sees a different variant of
each chunk. ``OnTheFlyDataset`` is the original project's way (read the audio file and compute the
spectrogram inside ``__getitem__``); it is kept to measure what the cache saves.

Items are log-mels in dB, NOT normalised: the model's :class:`~sed_utils.features.logmel.Normaliser`
does that inside its forward pass, so training, validation and evaluation feed it the same kind
of input. :func:`segments_with_features` is the one "strongly labelled clips -> 1 s segments ->
cached log-mels" step; :func:`scene_segments` and :func:`segments_of_test_set` apply it to the scenes of
a role and to the test set, :func:`build_datasets` gathers what training needs (notebooks 04-05).
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset, get_worker_info

from sed_utils.data.desed import StrongLabelSet
from sed_utils.data.esc50 import ambient_categories
from sed_utils.data.scenes import scene_set
from sed_utils.data.test_sets import load_test_set
from sed_utils.features.augment import augment_db, spec_augment
from sed_utils.features.logmel import cut_samples, feature_cache, mel_extractor, normalization_stats
from sed_utils.io.audio import read_audio
from sed_utils.labels.chunks import build_esc50_chunks, build_segments

if TYPE_CHECKING:
    from sed_utils.config import AugmentConfig, Config

__all__ = [
    "time_items",
    "ChunkDataset",
    "OnTheFlyDataset",
    "DataBundle",
    "build_datasets",
    "background_features",
    "segments_with_features",
    "scene_segments",
    "segments_of_test_set",
    "label_matrix",
]


def label_matrix(table: pd.DataFrame, labels: list[str]) -> np.ndarray:
    """The table's 0/1 label columns as ``float32[n, n_labels]`` in ``labels`` order
    (notebooks 04, 05, through build_datasets)."""
    missing = [label for label in labels if label not in table.columns]
    if missing:
        raise KeyError(f"table has no label column(s) {missing}; columns: {list(table.columns)}")
    return table[labels].to_numpy(dtype=np.float32)


class ChunkDataset(Dataset):
    """Cached log-mel chunks -> ``(x FloatTensor[1, n_mels, frames] in dB, y FloatTensor[n_labels])``.

    With ``augment`` set, each access draws a new augmentation (mix with a random other chunk,
    gain, noise, time shift in dB; then SpecAugment masks filled with ``fill_db``, the training
    mean, which the model's normaliser maps to 0). With ``backgrounds`` (ambient chunks in dB,
    e.g. from :func:`background_features`) the augmentation may also lay one of them under the
    example. The random stream is seeded with ``seed``; in DataLoader worker processes it is
    re-seeded from the worker's seed (which torch changes every epoch), so workers do not repeat
    each other's draws. Built by :func:`build_datasets` (notebooks 04, 05).
    """

    def __init__(
        self,
        features: np.ndarray,
        labels: np.ndarray,
        *,
        augment: AugmentConfig | None = None,
        seed: int = 0,
        backgrounds: np.ndarray | None = None,
        fill_db: float | np.ndarray = 0.0,
    ):
        if len(features) != len(labels):
            raise ValueError(f"features ({len(features)}) and labels ({len(labels)}) differ in length")
        self.features = features
        self.labels = np.asarray(labels, dtype=np.float32)
        self.augment = augment
        # ambient chunks (dB, like features) for the background augmentation; None or empty = off
        self.backgrounds = backgrounds if backgrounds is not None and len(backgrounds) else None
        self.fill_db = fill_db
        self.seed = int(seed)
        self._rng: np.random.Generator | None = None
        self._rng_owner: int | None = None

    def __len__(self) -> int:
        return len(self.features)

    def reseed(self) -> None:
        """Start the augmentation's random stream afresh (training does, so a re-run repeats)."""
        self._rng = None

    def _generator(self) -> np.random.Generator:
        info = get_worker_info()
        owner = None if info is None else int(info.seed)
        if self._rng is None or owner != self._rng_owner:
            self._rng = np.random.default_rng([self.seed] if owner is None else [self.seed, owner])
            self._rng_owner = owner
        return self._rng

    def _raw(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        return np.asarray(self.features[index], dtype=np.float32), self.labels[index]

    def _augmented(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        rng = self._generator()

        def partner() -> tuple[np.ndarray, np.ndarray]:
            return self._raw(int(rng.integers(len(self))))

        background = None
        if self.backgrounds is not None:
            bgs = self.backgrounds

            def background() -> np.ndarray:
                return np.asarray(bgs[int(rng.integers(len(bgs)))], dtype=np.float32)

        x, y = augment_db(x, y, self.augment, rng, partner, background)
        return spec_augment(x, self.augment, rng, fill=self.fill_db), y

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = self._raw(int(index))
        if self.augment is not None:
            x, y = self._augmented(x, y)
        return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))[None], torch.from_numpy(
            np.asarray(y, dtype=np.float32).copy()
        )


class OnTheFlyDataset(Dataset):
    """The original project's loading: read the clip and compute its log-mel inside ``__getitem__``.

    Same output as :class:`ChunkDataset` without augmentation (up to float16 rounding of the cache).
    Kept for the cached-vs-on-the-fly timing in notebook 04 and the benchmark, not for training.
    """

    def __init__(self, cfg: Config, table: pd.DataFrame):
        self.cfg = cfg
        self.table = table.reset_index(drop=True)
        self.labels = label_matrix(self.table, cfg.desed_labels)
        self.extractor = mel_extractor(cfg)

    def __len__(self) -> int:
        return len(self.table)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        row = self.table.iloc[int(index)]
        sr = self.cfg.audio.sample_rate
        audio = read_audio(Path(row["path"]), sr)
        wave = cut_samples(audio, sr, float(row["start"]), int(round((row["end"] - row["start"]) * sr)))
        with torch.inference_mode():
            x = self.extractor(torch.from_numpy(wave))
        return x[None].clone(), torch.from_numpy(self.labels[int(index)].copy())


@dataclass
class DataBundle:
    """What training needs (notebook 05): the two datasets, their tables (row i = item i), the
    training statistics the model's normaliser takes, the label order, and the validation scenes."""

    train: ChunkDataset
    valid: ChunkDataset
    train_table: pd.DataFrame
    valid_table: pd.DataFrame
    mean: float
    std: float
    labels: list[str]
    backgrounds: np.ndarray | None = None  # ambient chunks of the training folds (background augmentation)
    # 1 s segments of the validation scenes (cfg.train.select_on == "scenes"): log-mels in dB
    # [N, n_mels, frames] and 0/1 labels [N, n_labels]
    valid_scenes: tuple[np.ndarray, np.ndarray] | None = None


def segments_with_features(
    cfg: Config, ds: StrongLabelSet, cache_name: str, *, progress: bool = True
) -> tuple[pd.DataFrame, np.ndarray]:
    """A strongly labelled set's 1 s segment table and their cached log-mels (row i of one = row i of
    the other): the one "clips -> segments -> features" step of the series (notebooks 05, 06).

    ``cache_name`` keeps the feature caches of different sets apart (their rows differ anyway,
    the name makes the files readable). The audio is read once, not kept resampled: each segment
    set is extracted once.
    """
    table = build_segments(cfg, ds)
    return table, feature_cache(cfg, table, cache_name, progress=progress, cache_audio=False)


def scene_segments(cfg: Config, role: str, *, progress: bool = True) -> tuple[pd.DataFrame, np.ndarray]:
    """:func:`segments_with_features` of the ``role`` scenes of :func:`sed_utils.data.scenes.scene_set`
    (``"train"``: extra training data, ``"valid"``: what picks the epoch and thresholds; notebook 05)."""
    return segments_with_features(cfg, scene_set(cfg, role, progress=progress), f"{role}-scenes",
                                  progress=progress)


def segments_of_test_set(
    cfg: Config, *, progress: bool = True
) -> tuple[StrongLabelSet, pd.DataFrame, np.ndarray]:
    """The test set (``cfg.test_set``), its 1 s segments and their log-mels (notebook 06)."""
    ds = load_test_set(cfg, progress=progress)
    table, feats = segments_with_features(cfg, ds, cfg.test_set, progress=progress)
    return ds, table, feats


def background_features(cfg: Config, table: pd.DataFrame, *, progress: bool = True) -> np.ndarray | None:
    """Log-mels of the non-silent ambient chunks (:func:`sed_utils.data.esc50.ambient_categories`) of the
    TRAINING folds, for the background augmentation (notebook 04); None when it is off or none exists.

    ``table`` is the full chunk table of :func:`sed_utils.labels.chunks.build_esc50_chunks` (kept or
    not: a rain chunk need not be a training negative to serve as a background). Only
    ``cfg.train_folds`` are used, so validation and test clips never leak into training through
    the backgrounds either. Loaded into memory (a few thousand chunks, ~50 MB with the defaults).
    """
    if cfg.augment.background_prob <= 0:
        return None
    rows = table[
        table["category"].isin(ambient_categories(cfg.esc50_categories))
        & table["fold"].isin(cfg.train_folds)
        & ~table["silent"]
    ].reset_index(drop=True)
    if rows.empty:
        warnings.warn(
            f"augment.background_prob = {cfg.augment.background_prob} but the training folds "
            f"{list(cfg.train_folds)} hold no ambient chunk: training without background augmentation",
            stacklevel=2,
        )
        return None
    return np.asarray(feature_cache(cfg, rows, "esc50-background", progress=progress))


def _split_folds(cfg: Config, kept: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Row indices of the training and validation folds, the training ones subsampled if asked."""
    folds = kept["fold"].to_numpy()
    train_idx = np.flatnonzero(np.isin(folds, cfg.train_folds))
    valid_idx = np.flatnonzero(np.isin(folds, cfg.valid_folds))
    if len(train_idx) == 0 or len(valid_idx) == 0:
        raise ValueError(f"no kept chunks in train folds {cfg.train_folds} or valid folds {cfg.valid_folds}")
    limit = cfg.train.max_train_chunks
    if 0 < limit < len(train_idx):
        rng = np.random.default_rng(cfg.seed)
        train_idx = np.sort(rng.choice(train_idx, size=limit, replace=False))
    return train_idx, valid_idx


def build_datasets(cfg: Config, *, progress: bool = True) -> DataBundle:
    """ESC-50 kept chunks -> train (``cfg.train_folds``, augmented) and valid (``cfg.valid_folds``, plain)
    (notebooks 04, 05).

    The folds depend on ``cfg.test_set``: 1-4 / 5 for DESED, 1-3 / 4 for the held-out scenes (whose
    fold 5 must stay out of both).

    Features come from the cache (built on first use). ``cfg.train.max_train_chunks > 0`` keeps a
    seeded random subset of the training chunks (quick experiments); validation is never
    subsampled. With ``cfg.train.train_scenes > 0`` the 1 s segments of scenes mixed from the
    training folds join the training set (``train_table["source"]`` says "chunk" or "scene").
    Normalisation statistics come from the training rows that are used.
    """
    table = build_esc50_chunks(cfg, progress=progress)
    kept = table[table["kept"]].reset_index(drop=True)
    feats = feature_cache(cfg, kept, "esc50", progress=progress)
    train_idx, valid_idx = _split_folds(cfg, kept)
    labels = cfg.desed_labels
    backgrounds = background_features(cfg, table, progress=progress)
    train_table = kept.iloc[train_idx].reset_index(drop=True).assign(source="chunk")
    valid_table = kept.iloc[valid_idx].reset_index(drop=True)
    # Fancy indexing copies the rows into memory: training reads every row every epoch anyway.
    train_feats = np.asarray(feats[train_idx])
    if cfg.train.train_scenes > 0:
        scene_table, scene_feats = scene_segments(cfg, "train", progress=progress)
        train_table = pd.concat([train_table, scene_table.assign(source="scene")], ignore_index=True)
        train_feats = np.concatenate([train_feats, np.asarray(scene_feats)])
    mean, std = normalization_stats(train_feats)
    train = ChunkDataset(train_feats, label_matrix(train_table, labels), augment=cfg.augment, seed=cfg.seed,
                         backgrounds=backgrounds, fill_db=mean)
    valid = ChunkDataset(feats[valid_idx], label_matrix(valid_table, labels))
    scenes = None
    if cfg.train.select_on == "scenes":
        scene_table, scene_feats = scene_segments(cfg, "valid", progress=progress)
        scenes = (np.asarray(scene_feats, dtype=np.float32), label_matrix(scene_table, labels))
    return DataBundle(train, valid, train_table, valid_table, mean, std, labels, backgrounds, scenes)


def time_items(datasets: dict[str, Dataset], n_items: int, seed: int = 0) -> dict[str, float]:
    """Milliseconds per item to fetch the same ``n_items`` random indices from each dataset (notebook 04)."""
    out = {}
    for name, ds in datasets.items():
        idx = np.random.default_rng(seed).choice(len(ds), size=min(n_items, len(ds)), replace=False)
        ds[int(idx[0])]  # warm-up (first call imports and builds things)
        t0 = time.perf_counter()
        for i in idx:
            ds[int(i)]
        out[name] = (time.perf_counter() - t0) / len(idx) * 1000.0
    return out
