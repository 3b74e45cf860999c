"""torch Datasets over cached log-mel chunks, and the one call that builds train/valid for notebook 05.

``ChunkDataset`` reads from the feature cache (fast: an array lookup per item) and applies the
augmentations of :mod:`sed_utils.augment` on the fly, so every epoch sees a different variant of
each chunk. ``OnTheFlyDataset`` is the original project's way (read the audio file and compute the
spectrogram inside ``__getitem__``); it is kept to measure what the cache saves.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset, get_worker_info

from sed_utils.augment import augment_db, spec_augment
from sed_utils.features import cut_samples, feature_cache, mel_extractor, normalization_stats

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from sed_utils.config import AugmentConfig, Config

__all__ = [
    "plot_batch",
    "time_items",
    "plot_timing",
    "ChunkDataset",
    "OnTheFlyDataset",
    "DataBundle",
    "build_datasets",
    "background_features",
    "validation_scene_segments",
    "training_scene_segments",
    "build_desed_features",
    "label_matrix",
]


def label_matrix(table: pd.DataFrame, labels: list[str]) -> np.ndarray:
    """The table's 0/1 label columns as ``float32[n, n_labels]`` in ``labels`` order."""
    missing = [label for label in labels if label not in table.columns]
    if missing:
        raise KeyError(f"table has no label column(s) {missing}; columns: {list(table.columns)}")
    return table[labels].to_numpy(dtype=np.float32)


def _as_stat(value: float | np.ndarray) -> np.ndarray:
    """A scalar stays a scalar; a per-mel vector [n_mels] becomes [n_mels, 1] to broadcast over frames."""
    arr = np.asarray(value, dtype=np.float32)
    return arr.reshape(-1, 1) if arr.ndim == 1 else arr


class ChunkDataset(Dataset):
    """Cached log-mel chunks -> ``(x FloatTensor[1, n_mels, frames], y FloatTensor[n_labels])``.

    ``x`` is normalised with the TRAINING mean/std. With ``augment`` set, each access draws a new
    augmentation (mix with a random other chunk, gain, noise, time shift in dB; then SpecAugment
    masks on the normalised values). With ``backgrounds`` (ambient chunks in dB, e.g. from
    :func:`background_features`) the augmentation may also lay one of them under the example.
    The random stream is seeded with ``seed``; in DataLoader
    worker processes it is re-seeded from the worker's seed (which torch changes every epoch), so
    workers do not repeat each other's draws.
    """

    def __init__(
        self,
        features: np.ndarray,
        labels: np.ndarray,
        mean: float | np.ndarray,
        std: float | np.ndarray,
        augment: AugmentConfig | None = None,
        seed: int = 0,
        backgrounds: np.ndarray | None = None,
    ):
        if len(features) != len(labels):
            raise ValueError(f"features ({len(features)}) and labels ({len(labels)}) differ in length")
        self.features = features
        self.labels = np.asarray(labels, dtype=np.float32)
        # scalars, or per-mel vectors [n_mels] broadcast over frames
        self.mean = _as_stat(mean)
        self.std = _as_stat(std)
        self.augment = augment
        # ambient chunks (dB, like features) for the background augmentation; None or empty = off
        self.backgrounds = backgrounds if backgrounds is not None and len(backgrounds) else None
        self.seed = int(seed)
        self._rng: np.random.Generator | None = None
        self._rng_owner: int | None = None

    def __len__(self) -> int:
        return len(self.features)

    def _generator(self) -> np.random.Generator:
        info = get_worker_info()
        owner = None if info is None else int(info.seed)
        if self._rng is None or owner != self._rng_owner:
            self._rng = np.random.default_rng([self.seed] if owner is None else [self.seed, owner])
            self._rng_owner = owner
        return self._rng

    def _raw(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        return np.asarray(self.features[index], dtype=np.float32), self.labels[index]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = self._raw(int(index))
        if self.augment is not None:
            rng = self._generator()

            def partner() -> tuple[np.ndarray, np.ndarray]:
                return self._raw(int(rng.integers(len(self))))

            background = None
            if self.backgrounds is not None:
                bgs = self.backgrounds

                def background() -> np.ndarray:
                    return np.asarray(bgs[int(rng.integers(len(bgs)))], dtype=np.float32)

            x, y = augment_db(x, y, self.augment, rng, partner, background)
        x = (x - self.mean) / self.std
        if self.augment is not None:
            x = spec_augment(x, self.augment, self._generator())
        return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))[None], torch.from_numpy(
            np.asarray(y, dtype=np.float32).copy()
        )


class OnTheFlyDataset(Dataset):
    """The original project's loading: read the clip and compute its log-mel inside ``__getitem__``.

    Same output as :class:`ChunkDataset` without augmentation (up to float16 rounding of the cache).
    Kept for the cached-vs-on-the-fly timing in notebook 04 and the benchmark, not for training.
    """

    def __init__(self, cfg: Config, table: pd.DataFrame, mean: float, std: float):
        self.cfg = cfg
        self.table = table.reset_index(drop=True)
        self.labels = label_matrix(self.table, cfg.desed_labels)
        self.mean, self.std = float(mean), float(std)
        self.extractor = mel_extractor(cfg)

    def __len__(self) -> int:
        return len(self.table)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        from sed_utils.audio import read_audio

        row = self.table.iloc[int(index)]
        sr = self.cfg.audio.sample_rate
        audio = read_audio(Path(row["path"]), sr)
        wave = cut_samples(audio, sr, float(row["start"]), int(round((row["end"] - row["start"]) * sr)))
        with torch.inference_mode():
            x = self.extractor(torch.from_numpy(wave.astype(np.float32)))
        x = (x - self.mean) / self.std
        return x[None].clone(), torch.from_numpy(self.labels[int(index)].copy())


@dataclass
class DataBundle:
    """What training needs: the two datasets, their tables (row i = item i), stats and label order."""

    train: ChunkDataset
    valid: ChunkDataset
    train_table: pd.DataFrame
    valid_table: pd.DataFrame
    mean: float
    std: float
    labels: list[str]
    backgrounds: np.ndarray | None = None  # ambient chunks of the training folds (background augmentation)
    # 1 s segments of the validation scenes (cfg.train.select_on == "scenes"): x normalised like
    # the training inputs [N, 1, n_mels, frames], y 0/1 [N, n_labels]
    valid_scenes: tuple[np.ndarray, np.ndarray] | None = None


def training_scene_segments(cfg: Config, *, progress: bool = True) -> tuple[pd.DataFrame, np.ndarray]:
    """The training scenes' 1 s segments (:func:`sed_utils.scenes.training_scenes`) and their log-mels."""
    from sed_utils.chunking import build_desed_segments
    from sed_utils.scenes import training_scenes

    table = build_desed_segments(cfg, training_scenes(cfg, progress=progress))
    return table, feature_cache(cfg, table, "train-scenes", progress=progress, cache_audio=False)


def validation_scene_segments(
    cfg: Config, mean: float | np.ndarray, std: float | np.ndarray, *, progress: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """The validation scenes' 1 s segments as model inputs (normalised with ``mean``/``std``) and labels.

    The scenes come from :func:`sed_utils.scenes.validation_scenes` (validation fold only); their
    features share the ``valid-scenes`` cache with the evaluation's threshold choice.
    """
    from sed_utils.chunking import build_desed_segments
    from sed_utils.scenes import validation_scenes

    table = build_desed_segments(cfg, validation_scenes(cfg, progress=progress))
    feats = feature_cache(cfg, table, "valid-scenes", progress=progress, cache_audio=False)
    x = (np.asarray(feats, dtype=np.float32) - _as_stat(mean)) / _as_stat(std)
    return x[:, None].astype(np.float32), label_matrix(table, cfg.desed_labels)


def background_features(cfg: Config, table: pd.DataFrame, *, progress: bool = True) -> np.ndarray | None:
    """Log-mels of the non-silent ambient chunks (:func:`sed_utils.esc50.ambient_categories`) of the
    TRAINING folds, for the background augmentation; None when it is off or no such chunk exists.

    ``table`` is the full chunk table of :func:`sed_utils.chunking.build_esc50_chunks` (kept or
    not: a rain chunk need not be a training negative to serve as a background). Only
    ``cfg.train_folds`` are used, so validation and test clips never leak into training through
    the backgrounds either. Loaded into memory (a few thousand chunks, ~50 MB with the defaults).
    """
    import warnings

    from sed_utils.esc50 import ambient_categories

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


def build_datasets(cfg: Config, *, progress: bool = True) -> DataBundle:
    """ESC-50 kept chunks -> train (``cfg.train_folds``, augmented) and valid (``cfg.valid_folds``, plain).

    The folds depend on ``cfg.test_set``: 1-4 / 5 for DESED, 1-3 / 4 for the held-out scenes (whose
    fold 5 must stay out of both).

    Features come from the cache (built on first use). ``cfg.train.max_train_chunks > 0`` keeps a
    seeded random subset of the training chunks (quick experiments); validation is never
    subsampled. With ``cfg.train.train_scenes > 0`` the 1 s segments of scenes mixed from the
    training folds join the training set (``train_table["source"]`` says "chunk" or "scene").
    Normalisation statistics come from the training rows that are used.
    """
    from sed_utils.chunking import build_esc50_chunks

    table = build_esc50_chunks(cfg, progress=progress)
    kept = table[table["kept"]].reset_index(drop=True)
    feats = feature_cache(cfg, kept, "esc50", progress=progress)
    folds = kept["fold"].to_numpy()
    train_idx = np.flatnonzero(np.isin(folds, cfg.train_folds))
    valid_idx = np.flatnonzero(np.isin(folds, cfg.valid_folds))
    if len(train_idx) == 0 or len(valid_idx) == 0:
        raise ValueError(f"no kept chunks in train folds {cfg.train_folds} or valid folds {cfg.valid_folds}")
    limit = cfg.train.max_train_chunks
    if 0 < limit < len(train_idx):
        rng = np.random.default_rng(cfg.seed)
        train_idx = np.sort(rng.choice(train_idx, size=limit, replace=False))
    labels = cfg.desed_labels
    backgrounds = background_features(cfg, table, progress=progress)
    train_table = kept.iloc[train_idx].reset_index(drop=True).assign(source="chunk")
    valid_table = kept.iloc[valid_idx].reset_index(drop=True)
    # Fancy indexing copies the rows into memory: training reads every row every epoch anyway.
    train_feats = np.asarray(feats[train_idx])
    if cfg.train.train_scenes > 0:
        scene_table, scene_feats = training_scene_segments(cfg, progress=progress)
        train_table = pd.concat([train_table, scene_table.assign(source="scene")], ignore_index=True)
        train_feats = np.concatenate([train_feats, np.asarray(scene_feats)])
    mean, std = normalization_stats(train_feats)
    train = ChunkDataset(
        train_feats, label_matrix(train_table, labels), mean, std, augment=cfg.augment, seed=cfg.seed,
        backgrounds=backgrounds,
    )
    valid = ChunkDataset(feats[valid_idx], label_matrix(valid_table, labels), mean, std, augment=None)
    scenes = (validation_scene_segments(cfg, mean, std, progress=progress)
              if cfg.train.select_on == "scenes" else None)
    return DataBundle(train, valid, train_table, valid_table, mean, std, labels, backgrounds, scenes)


def build_desed_features(cfg: Config, *, progress: bool = True) -> tuple[pd.DataFrame, np.ndarray]:
    """Test-set segments table and their cached log-mels (row i of one = row i of the other).

    The test set is DESED public eval or the held-out scenes (``cfg.test_set``); the name keeps
    the two caches apart.
    """
    from sed_utils.chunking import build_desed_segments

    segments = build_desed_segments(cfg)
    return segments, feature_cache(cfg, segments, cfg.test_set, progress=progress, cache_audio=False)


# ------------------------------------------------------------------------------------------------
# Notebook 04 helpers
# ------------------------------------------------------------------------------------------------
def plot_batch(
    x: torch.Tensor, y: torch.Tensor, labels: list[str], n: int = 8, hop_seconds: float = 0.01
) -> Figure:
    """Grid of the first ``n`` spectrograms of a batch ``x[B, 1, n_mels, frames]``, titled by label."""
    import matplotlib.pyplot as plt

    n = min(n, len(x))
    cols = 4
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 2.3 * rows), squeeze=False)
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k >= n:
            continue
        spec = x[k, 0].numpy()
        ax.imshow(
            spec,
            origin="lower",
            aspect="auto",
            cmap="magma",
            extent=(0, spec.shape[-1] * hop_seconds, 0, spec.shape[-2]),
        )
        names = [lab for lab, v in zip(labels, y[k].tolist(), strict=True) if v > 0.5]
        ax.set_title(" + ".join(names) or "negative (none)", fontsize=8)
    fig.tight_layout()
    return fig


def time_items(datasets: dict[str, Dataset], n_items: int, seed: int = 0) -> dict[str, float]:
    """Milliseconds per item to fetch the same ``n_items`` random indices from each dataset."""
    import time

    out = {}
    for name, ds in datasets.items():
        idx = np.random.default_rng(seed).choice(len(ds), size=min(n_items, len(ds)), replace=False)
        ds[int(idx[0])]  # warm-up (first call imports and builds things)
        t0 = time.perf_counter()
        for i in idx:
            ds[int(i)]
        out[name] = (time.perf_counter() - t0) / len(idx) * 1000.0
    return out


def plot_timing(ms_per_item: dict[str, float], batch_size: int) -> Figure:
    """Bar chart of loading time per item (and per batch of ``batch_size``, in the labels)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 2.8))
    names = list(ms_per_item)
    values = [ms_per_item[k] for k in names]
    ax.barh(names, values, color=["tab:green", "tab:blue", "tab:red"][: len(names)])
    for i, v in enumerate(values):
        ax.annotate(
            f"{v:.2f} ms/item, {v * batch_size:.0f} ms per batch of {batch_size}",
            (v, i),
            va="center",
            fontsize=8,
            xytext=(3, 0),
            textcoords="offset points",
        )
    ax.set_xlabel("milliseconds per item (lower is faster)")
    ax.set_xlim(0, max(values) * 1.6)
    fig.tight_layout()
    return fig
