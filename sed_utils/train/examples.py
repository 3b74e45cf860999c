"""Training examples and the one torch ``Dataset`` that serves them, augmented on the fly
(notebooks 04, 05, 08).

Every model trains on :class:`Examples`: log-mels in dB (row ``i`` = item ``i``, read from the feature
cache) with clip targets ``[N, C]`` and, for models that keep time, frame targets ``[N, T', C]``.
:class:`ExampleDataset` serves them as ``(x [n_mels, frames], {"clip": [C], "frames": [T', C]})``
and applies :func:`sed_utils.features.augment.augment_example` on the fly, so every epoch sees a
different variant of each example. Items are NOT normalised: the model's
:class:`~sed_utils.features.Normaliser` does that inside its forward pass, so training, validation
and evaluation feed it the same kind of input.

``OnTheFlyDataset`` is the original project's way (read the audio file and compute the spectrogram
inside ``__getitem__``); it is kept to measure what the cache saves (notebook 04, the benchmark).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset, get_worker_info

from sed_utils.features.augment import MelBands, augment_example
from sed_utils.features.logmel import cut_samples, mel_extractor
from sed_utils.io.audio import read_audio

if TYPE_CHECKING:
    from sed_utils.config.settings import AugmentConfig, Config

__all__ = ["Examples", "ExampleDataset", "OnTheFlyDataset", "label_matrix", "time_items", "seed_worker"]


def label_matrix(table: pd.DataFrame, labels: list[str]) -> np.ndarray:
    """The table's 0/1 label columns as ``float32[n, n_labels]`` in ``labels`` order (notebooks 04, 05).

    Raises:
        KeyError: a label has no column.
    """
    missing = [label for label in labels if label not in table.columns]
    if missing:
        raise KeyError(f"table has no label column(s) {missing}; columns: {list(table.columns)}")
    return table[labels].to_numpy(dtype=np.float32)


@dataclass
class Examples:
    """Model inputs and their targets, row ``i`` = item ``i`` (notebooks 04, 05, 08).

    Args:
        features: log-mels in dB ``[N, n_mels, frames]`` (often a read-only memmap of the cache).
        clip: 0/1 clip targets ``[N, C]``.
        frames: 0/1 frame targets ``[N, T', C]`` on the model's frame grid, or None (clip targets only).
        table: one row per item (file, start, end, fold or scene, ``source``, label columns).
    """

    features: np.ndarray
    clip: np.ndarray
    frames: np.ndarray | None = None
    table: pd.DataFrame | None = None

    def __post_init__(self) -> None:
        frames_differ = self.frames is not None and len(self.frames) != len(self.clip)
        if len(self.features) != len(self.clip) or frames_differ:
            raise ValueError(f"examples: {len(self.features)} inputs but {len(self.clip)} clip targets"
                             + ("" if self.frames is None else f" and {len(self.frames)} frame targets"))

    def __len__(self) -> int:
        return len(self.features)

    def targets(self, index: int) -> dict[str, np.ndarray]:
        """Item ``index``'s targets: ``{"clip": [C]}`` and ``"frames"`` when there are frame targets."""
        out = {"clip": np.asarray(self.clip[index], dtype=np.float32)}
        if self.frames is not None:
            out["frames"] = np.asarray(self.frames[index], dtype=np.float32)
        return out


class ExampleDataset(Dataset):
    """:class:`Examples` as ``(x FloatTensor[n_mels, frames] in dB, {"clip": ..., "frames": ...})``.

    With ``augment`` set, each access draws a new augmentation
    (:func:`~sed_utils.features.augment.augment_example`: a mix with another random example, a
    background from ``backgrounds`` for chunk examples, gain, noise, shifts and masks filled with
    ``fill_db``, the training mean, which the model's normaliser maps to 0). ``negative_items`` more
    items follow the examples: two random clips of ``negatives`` (log-mels of clips of the other
    classes) back to back at the examples' length, every target zero; or, with
    ``negative_columns`` (clip ``i``'s category is target column ``negative_columns[i]``) and
    ``negative_activity`` (``[M, mel frames]`` booleans: where clip ``i`` sounds), that column set on
    the output frames holding a sounding mel frame (a column of -1: none): clean target clips
    (``clip_pool: all``) and, with ``targets: all``, every category. ``negative_weights`` (one
    probability per clip) draws the clips unevenly (``clip_pool: balanced``); None: uniformly.
    ``bands`` (the log-mel's bands: :class:`~sed_utils.features.augment.MelBands`) lets the band-limit
    augmentation run
    (``augment.band_limit_prob``).

    The random stream is seeded with ``seed``; in DataLoader worker processes it is re-seeded from
    the worker's seed (which torch changes every epoch), so workers do not repeat each other's draws.
    Built by :func:`sed_utils.train.training_data` (notebooks 04, 05, 08).
    """

    def __init__(self, examples: Examples, *, augment: AugmentConfig | None = None, seed: int = 0,
                 fill_db: float | np.ndarray = 0.0, backgrounds: np.ndarray | None = None,
                 negatives: np.ndarray | None = None, negative_items: int = 0,
                 negative_columns: np.ndarray | None = None, negative_activity: np.ndarray | None = None,
                 negative_weights: np.ndarray | None = None, bands: MelBands | None = None):
        if negative_items > 0 and (negatives is None or len(negatives) == 0):
            raise ValueError("ExampleDataset: negative_items > 0 needs negative clips")
        if (negative_columns is None) != (negative_activity is None) or (
                negative_columns is not None and not len(negative_columns) == len(negative_activity)
                == len(negatives)):
            raise ValueError("ExampleDataset: negative_columns and negative_activity go together, one row "
                             "per negative clip")
        if negative_weights is not None and (len(negative_weights) != len(negatives)
                                             or not np.isclose(np.sum(negative_weights), 1.0)):
            raise ValueError("ExampleDataset: negative_weights needs one probability per negative clip, "
                             "summing to 1")
        self.examples = examples
        self.augment = augment
        self.fill_db = fill_db
        # ambient chunks (dB, like the features) for the background augmentation; None or empty = off
        self.backgrounds = backgrounds if backgrounds is not None and len(backgrounds) else None
        self.negatives = negatives
        self.negative_items = int(negative_items)
        self.negative_columns = negative_columns
        self.negative_activity = negative_activity
        self.negative_weights = negative_weights
        self.bands = bands
        self.seed = int(seed)
        self._rng: np.random.Generator | None = None
        self._rng_owner: int | None = None

    def __len__(self) -> int:
        return len(self.examples) + self.negative_items

    def reseed(self) -> None:
        """Start the augmentation's random stream afresh (training does, so a re-run repeats)."""
        self._rng = None

    def rng_state(self) -> dict[str, Any] | None:
        """The main process's random stream state (a resumed training run restores it), or None."""
        return None if self._rng is None else self._rng.bit_generator.state

    def set_rng_state(self, state: dict[str, Any] | None) -> None:
        """Restore a state from :meth:`rng_state` (None: start afresh)."""
        self._rng = None
        if state is not None:
            self._generator().bit_generator.state = state

    def _generator(self) -> np.random.Generator:
        info = get_worker_info()
        owner = None if info is None else int(info.seed)
        if self._rng is None or owner != self._rng_owner:
            self._rng = np.random.default_rng([self.seed] if owner is None else [self.seed, owner])
            self._rng_owner = owner
        return self._rng

    def _example(self, index: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        return np.asarray(self.examples.features[index], dtype=np.float32), self.examples.targets(index)

    def _negative_pair(self, rng: np.random.Generator) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Two random negative clips back to back, at the examples' length, and their targets: all
        zero, or each clip's category column where it sounds (see the class docstring)."""
        pair = [int(k) for k in (rng.integers(len(self.negatives), size=2) if self.negative_weights is None
                                 else rng.choice(len(self.negatives), size=2, p=self.negative_weights))]
        x = np.concatenate([np.asarray(self.negatives[k], dtype=np.float32) for k in pair], axis=1)
        frames = self.examples.features.shape[2]
        if x.shape[1] < frames:
            x = np.pad(x, ((0, 0), (0, frames - x.shape[1])), constant_values=float(x.min()))
        targets = {name: np.zeros_like(value) for name, value in self.examples.targets(0).items()}
        if self.negative_columns is not None and "frames" in targets:
            n_out = targets["frames"].shape[0]
            stride = math.ceil(frames / n_out)
            for k, offset in zip(pair, (0, self.negatives.shape[2]), strict=True):
                if int(self.negative_columns[k]) < 0:  # a category without an output: zero targets
                    continue
                sounding = np.zeros(n_out * stride, dtype=np.float32)
                active = np.asarray(self.negative_activity[k], dtype=np.float32)[:max(0, frames - offset)]
                sounding[offset:offset + len(active)] = active
                blocks = sounding.reshape(n_out, stride).max(axis=1) > 0  # a 30 ms tick marks its frame
                targets["frames"][blocks, int(self.negative_columns[k])] = 1.0
            targets["clip"] = targets["frames"].max(axis=0)
        return x[:, :frames], targets

    def _augmented(self, x: np.ndarray, targets: dict[str, np.ndarray],
                   rng: np.random.Generator) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        n = len(self.examples)  # a partner is drawn from the examples, never from the negatives

        def partner() -> tuple[np.ndarray, dict[str, np.ndarray]]:
            return self._example(int(rng.integers(n)))

        background = None
        if self.backgrounds is not None:
            bgs = self.backgrounds

            def background() -> np.ndarray:
                return np.asarray(bgs[int(rng.integers(len(bgs)))], dtype=np.float32)

        return augment_example(x, targets, self.augment, rng, draw_partner=partner,
                               draw_background=background, fill=self.fill_db, bands=self.bands)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        index = int(index)
        rng = self._generator() if (self.augment is not None or index >= len(self.examples)) else None
        x, targets = self._example(index) if index < len(self.examples) else self._negative_pair(rng)
        if self.augment is not None:
            x, targets = self._augmented(x, targets, rng)
        return (torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)),
                {name: torch.from_numpy(np.array(value, dtype=np.float32)) for name,
                 value in targets.items()})


class OnTheFlyDataset(Dataset):
    """The original project's loading: read the clip and compute its log-mel inside ``__getitem__``.

    Same output as :class:`ExampleDataset` without augmentation (up to float16 rounding of the cache).
    Kept for the cached-vs-on-the-fly timing in notebook 04 and the benchmark, not for training.

    Args:
        cfg: the config (sample rate, mel settings, labels).
        table: rows with ``path``, ``start``, ``end`` and the label columns.
    """

    def __init__(self, cfg: Config, table: pd.DataFrame):
        self.cfg = cfg
        self.table = table.reset_index(drop=True)
        self.labels = label_matrix(self.table, cfg.desed_labels)
        self.extractor = mel_extractor(cfg)

    def __len__(self) -> int:
        return len(self.table)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        row = self.table.iloc[int(index)]
        sr = self.cfg.audio.sample_rate
        audio = read_audio(Path(row["path"]), sr)
        wave = cut_samples(audio, sr, float(row["start"]), int(round((row["end"] - row["start"]) * sr)))
        with torch.inference_mode():
            x = self.extractor(torch.from_numpy(wave))
        return x.clone(), {"clip": torch.from_numpy(self.labels[int(index)].copy())}


def time_items(datasets: dict[str, Dataset], n_items: int, seed: int = 0) -> dict[str, float]:
    """Milliseconds per item to fetch the same ``n_items`` random indices from each dataset (notebook 04).

    Args:
        datasets: name -> dataset to time.
        n_items: how many items to fetch from each (at most its length), after one untimed warm-up fetch.
        seed: seeds the indices (the same indices for datasets of the same length).

    Returns:
        ``{name: milliseconds per item}``.
    """
    out = {}
    for name, ds in datasets.items():
        idx = np.random.default_rng(seed).choice(len(ds), size=min(n_items, len(ds)), replace=False)
        ds[int(idx[0])]  # warm-up (first call imports and builds things)
        t0 = time.perf_counter()
        for i in idx:
            ds[int(i)]
        out[name] = (time.perf_counter() - t0) / len(idx) * 1000.0
    return out


def seed_worker(worker_id: int) -> None:
    """Seed numpy in DataLoader workers (torch seeds python and torch there, not numpy); the training loop's
    ``worker_init_fn`` (notebooks 05, 08)."""
    np.random.seed(torch.initial_seed() % 2**32)
