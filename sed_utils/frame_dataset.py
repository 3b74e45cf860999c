"""Whole clips with frame targets, for the frame-level model (notebook 08).

The chunk model learns from 1 s pieces; the frame model hears a whole 10 s scene at once (the
context tells a vacuum cleaner's steady hum from a short burst of noise) and is told, for every
80 ms output frame, which classes sound (:mod:`sed_utils.frame_labels`). :func:`clip_frame_data`
turns a set of clips with strong labels into log-mels (through the same feature cache as every
other feature of the series) and frame targets; :class:`FrameDataset` serves them to training.

Negative-only examples (``frame.negative_clips``): a scene's distractors are mixed under a
background at a random SNR, but a user's recording, or a held-out ESC-50 clip of a hen, is often
one loud sound alone. :func:`negative_clip_features` holds the training folds' clips of the other
45 classes, and :class:`FrameDataset` adds that many 10 s examples per epoch, each two random
clips back to back with all-zero targets (a fresh pair every time, so 1080 clips give many
examples; two 5 s clips fill one 10 s input, so a negative costs what a scene costs).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from sed_utils.config import AugmentConfig, Config
from sed_utils.data.desed import StrongLabelSet
from sed_utils.data.esc50 import ESC50_CLIP_SECONDS, esc50_root, load_esc50_meta, negative_clips
from sed_utils.features.logmel import feature_cache
from sed_utils.frame_labels import TIME_STRIDE, clip_targets, frame_targets_of_files, output_frames

__all__ = ["FrameData", "clip_frame_data", "negative_clip_features", "FrameDataset", "frame_seconds_of"]


def frame_seconds_of(cfg: Config) -> float:
    """Length of one output frame of the frame model under ``cfg`` (80 ms at the defaults; notebook 08)."""
    return TIME_STRIDE * cfg.mel.hop_length / cfg.audio.sample_rate


@dataclass
class FrameData:
    """Clips ready for the frame model (notebook 08): names, log-mels in dB ``[N, n_mels, T]``
    (read-only memmap), frame targets ``[N, T', C]`` and the clip length."""

    files: list[str]
    features: np.ndarray
    targets: np.ndarray
    clip_seconds: float
    events: pd.DataFrame


def clip_frame_data(cfg: Config, ds: StrongLabelSet, name: str, *, progress: bool = True) -> FrameData:
    """Log-mels of whole clips (cached as ``name``) and their frame targets (notebook 08).

    Every clip is read as ``ds.clip_seconds`` long (shorter ones padded with silence by the
    window cutter), so the clips stack into one array.
    """
    files = list(ds.files)
    table = pd.DataFrame({"filename": files, "path": [str(ds.path(f)) for f in files],
                          "start": 0.0, "end": float(ds.clip_seconds)})
    feats = feature_cache(cfg, table, name, progress=progress, cache_audio=False)
    n_out = output_frames(feats.shape[-1])
    targets = frame_targets_of_files(ds.events, files, cfg.desed_labels, n_out, frame_seconds_of(cfg))
    return FrameData(files, feats, targets, float(ds.clip_seconds), ds.events)


def negative_clip_features(cfg: Config, *, progress: bool = True) -> np.ndarray:
    """Log-mels ``[M, n_mels, T5]`` of the TRAINING folds' ESC-50 clips of the other 45 classes
    (cached as ``frame-negatives``; notebook 08 through train_frame_model). Never a validation or
    test fold: the held-out fold's negatives are where false alarms are counted."""
    clips = negative_clips(load_esc50_meta(esc50_root(cfg)), cfg.esc50_categories, tuple(cfg.train_folds))
    if clips.empty:
        raise ValueError(f"frame.negative_clips={cfg.frame.negative_clips}, but ESC-50 folds "
                         f"{list(cfg.train_folds)} hold no clip outside the target classes")
    table = pd.DataFrame({"filename": clips["filename"].astype(str).to_numpy(),
                          "path": clips["path"].astype(str).to_numpy(),
                          "start": 0.0, "end": ESC50_CLIP_SECONDS})
    return feature_cache(cfg, table, "frame-negatives", progress=progress)


class FrameDataset(Dataset):
    """``(x [n_mels, T] in dB, frame targets [T', C], clip targets [C])`` per clip (notebook 08).

    With ``negatives`` (log-mels ``[M, n_mels, T5]``, :func:`negative_clip_features`) and
    ``negative_items`` > 0, that many more items follow the scenes: two random negative clips back
    to back (cut to the scenes' length, or padded with the pair's floor, its silence), every target zero.

    With ``augment``: a random gain (a shift in dB), one frequency mask filled with ``fill_db``
    (the training mean), and with probability ``mix_prob`` a second clip mixed in (powers added,
    targets OR-ed): polyphony the scenes did not happen to hold. No time mask: hiding frames
    whose targets say "dog" would teach the model to call silence a dog.
    """

    def __init__(self, data: FrameData, *, augment: AugmentConfig | None = None, seed: int = 0,
                 fill_db: float = 0.0, negatives: np.ndarray | None = None, negative_items: int = 0):
        if negative_items > 0 and (negatives is None or len(negatives) == 0):
            raise ValueError("FrameDataset: negative_items > 0 needs negative clips")
        self.data = data
        self.negatives = negatives
        self.negative_items = int(negative_items) if negatives is not None else 0
        self.augment = augment
        self.fill_db = float(fill_db)
        self.seed = int(seed)
        self._rng = np.random.default_rng(self.seed)

    def __len__(self) -> int:
        return len(self.data.files) + self.negative_items

    def _negative_pair(self) -> tuple[np.ndarray, np.ndarray]:
        """Two random negative clips back to back, at the scenes' length, and all-zero targets."""
        i, j = self._rng.integers(len(self.negatives), size=2)
        x = np.concatenate([np.asarray(self.negatives[int(i)], dtype=np.float32),
                            np.asarray(self.negatives[int(j)], dtype=np.float32)], axis=1)
        frames = self.data.features.shape[2]
        if x.shape[1] < frames:
            x = np.pad(x, ((0, 0), (0, frames - x.shape[1])), constant_values=float(x.min()))
        return x[:, :frames], np.zeros(self.data.targets.shape[1:], dtype=np.float32)

    def reseed(self) -> None:
        """Start the augmentation's random stream afresh (training does, so a re-run repeats)."""
        self._rng = np.random.default_rng(self.seed)

    def _augmented(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        a, rng = self.augment, self._rng
        if rng.random() < a.mix_prob:
            j = int(rng.integers(len(self.data.files)))  # a scene partner (the negatives come after them)
            other = np.asarray(self.data.features[j], dtype=np.float32)
            shift = rng.uniform(-6.0, 0.0)  # the partner a little quieter or as loud
            x = 10.0 * np.log10(10.0 ** (x / 10.0) + 10.0 ** ((other + shift) / 10.0))
            y = np.maximum(y, self.data.targets[j])
        x = x + rng.uniform(-a.gain_db, a.gain_db)
        if a.specaugment and a.freq_mask > 0:
            width = int(rng.integers(0, a.freq_mask + 1))
            start = int(rng.integers(0, max(1, x.shape[0] - width)))
            x[start:start + width] = self.fill_db
        return x, y

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if int(index) >= len(self.data.files):
            x, y = self._negative_pair()
        else:
            x = np.array(self.data.features[int(index)], dtype=np.float32)
            y = np.array(self.data.targets[int(index)], dtype=np.float32)
        if self.augment is not None:
            x, y = self._augmented(x, y)
        return (torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)), torch.from_numpy(y),
                torch.from_numpy(clip_targets(y)))
