"""Log-mel features: the extractor, a memory-mapped feature cache, and normalisation statistics.

Why a cache: the original project read each audio file and computed its spectrogram inside
``__getitem__``, i.e. once per chunk per epoch. The features never change between epochs
(augmentation is applied on top of them), so we compute every chunk's log-mel once, store all of
them in one ``.npy`` file and memory-map it: an epoch then reads arrays instead of decoding audio.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch
import torchaudio

from sed_utils.chunking import params_key

if TYPE_CHECKING:
    from sed_utils.config import Config

__all__ = [
    "LogMel",
    "mel_extractor",
    "feature_key",
    "feature_cache",
    "normalization_stats",
    "n_frames",
    "cut_samples",
    "chunk_waveforms",
]

# float16 halves disk and memory; log-mel values lie in about [-100, 40] dB, where float16's
# 11-bit mantissa keeps ~0.03 dB resolution, far below anything the model can use.
FEATURE_DTYPE = np.float16


class LogMel(torch.nn.Module):
    """Waveform ``[..., samples]`` -> log-mel power in dB ``[..., n_mels, frames]``.

    ``AmplitudeToDB(top_db)`` clamps values to (max - top_db), where max is taken over everything
    it sees in one "channel group". Given ``[batch, n_mels, frames]`` it would take the max over
    the whole batch, so a chunk's features would depend on which other chunks share its batch.
    This wrapper reshapes to ``[items, 1, n_mels, frames]`` so the clamp is always per chunk:
    cached, on-the-fly and evaluation features are then identical.
    """

    def __init__(self, mel: torchaudio.transforms.MelSpectrogram, to_db: torchaudio.transforms.AmplitudeToDB):
        super().__init__()
        self.mel = mel
        self.to_db = to_db

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        lead = waveform.shape[:-1]
        spec = self.mel(waveform.reshape(-1, 1, waveform.shape[-1]))  # [items, 1, n_mels, frames]
        spec = self.to_db(spec)
        return spec.reshape(*lead, spec.shape[-2], spec.shape[-1])


def mel_extractor(cfg: Config) -> LogMel:
    """The log-mel extractor of the whole series (``cfg.mel``, ``cfg.audio.sample_rate``, power 2).

    With the defaults, 1 s at 16 kHz (16000 samples), hop 160 and ``center=True`` gives
    16000 // 160 + 1 = 101 frames of 64 mel bands.
    """
    m = cfg.mel
    mel = torchaudio.transforms.MelSpectrogram(
        sample_rate=cfg.audio.sample_rate,
        n_fft=m.n_fft,
        win_length=m.win_length,
        hop_length=m.hop_length,
        f_min=m.f_min,
        f_max=m.f_max,
        n_mels=m.n_mels,
        power=2.0,
        center=True,
    )
    to_db = torchaudio.transforms.AmplitudeToDB(stype="power", top_db=m.top_db)
    return LogMel(mel, to_db).eval()


def n_frames(cfg: Config, seconds: float) -> int:
    """Frames the extractor gives for ``seconds`` of audio (center=True: samples // hop + 1)."""
    return int(round(seconds * cfg.audio.sample_rate)) // cfg.mel.hop_length + 1


def _rel(path: str, root: Path) -> str:
    """Path relative to the data root when inside it, so a moved data folder keeps its cache key."""
    try:
        return str(Path(path).resolve().relative_to(Path(root).resolve()))
    except ValueError:
        return str(path)


def feature_key(cfg: Config, table: pd.DataFrame) -> str:
    """Cache key: mel parameters + sample rate + the rows (path, start, end) in order."""
    rows = pd.DataFrame(
        {
            "path": [_rel(p, cfg.data_root) for p in table["path"]],
            "start": table["start"].astype(float).round(6).to_numpy(),
            "end": table["end"].astype(float).round(6).to_numpy(),
        }
    )
    rows_hash = pd.util.hash_pandas_object(rows, index=False).values.tobytes()
    return params_key(
        {
            "features": "logmel-v1",
            "mel": dataclasses.asdict(cfg.mel),
            "sample_rate": cfg.audio.sample_rate,
            "dtype": np.dtype(FEATURE_DTYPE).str,
            "rows": hashlib.sha256(rows_hash).hexdigest(),
        }
    )


def _load_audio(path: str, cfg: Config, cache_audio: bool) -> np.ndarray:
    from sed_utils.audio import cached_resampled, read_audio

    if cache_audio:
        return cached_resampled(Path(path), cfg.audio.sample_rate, cfg.cache_dir / "resampled")
    return read_audio(Path(path), cfg.audio.sample_rate)


def cut_samples(audio: np.ndarray, sample_rate: int, start: float, n_samples: int) -> np.ndarray:
    """``n_samples`` from ``start`` s; zero-padded when the file is shorter (e.g. a 9.98 s DESED clip)."""
    a = int(round(start * sample_rate))
    piece = audio[a : a + n_samples]
    if len(piece) < n_samples:
        piece = np.pad(piece, (0, n_samples - len(piece)))
    return piece


def chunk_waveforms(audio: np.ndarray, sample_rate: int, rows: pd.DataFrame) -> np.ndarray:
    """Stack the (start, end) windows of one file into ``[len(rows), samples]`` float32."""
    lengths = {int(round((e - s) * sample_rate)) for s, e in zip(rows["start"], rows["end"], strict=True)}
    if len(lengths) != 1:
        raise ValueError(
            f"rows of one feature table must all have the same length, got {sorted(lengths)} samples"
        )
    n = lengths.pop()
    return np.stack([cut_samples(audio, sample_rate, float(s), n) for s in rows["start"]]).astype(np.float32)


def feature_cache(
    cfg: Config, table: pd.DataFrame, name: str, *, progress: bool = True, cache_audio: bool = True
) -> np.ndarray:
    """Log-mel of every row (path, start, end) of ``table``, computed once, memory-mapped afterwards.

    Returns ``np.ndarray[len(table), n_mels, frames]`` (float16, read-only memmap), row ``i`` =
    ``table.iloc[i]``. Stored as ``cfg.cache_dir / "features" / f"{name}-{key}.npy"`` with
    :func:`feature_key`: the same parameters and rows read the file back (no audio is touched);
    a changed mel parameter or a different row list gives a new key and a new file.

    On a miss rows are grouped by file, each file is read once (``cache_audio``: through the
    resampling cache, as for ESC-50; False reads and resamples directly, for DESED which is read
    only once anyway) and all its chunks go through the extractor as one batch. Extraction runs
    with ONE torch thread. Measured on the 2-core machine (benchmarks/results, "features"): on a
    quiet machine 2 threads are ~1.5x faster and a pool of 2 single-thread workers ~1.6x, but with
    the other core busy 2 threads were several times slower (~10 vs ~1.5 ms/chunk); the whole real
    ESC-50 cache takes ~6 s with one thread, so we take the choice that never degrades and keep
    the code simple (no pool).
    """
    if len(table) == 0:
        raise ValueError(f"feature_cache({name!r}): the table has no rows")
    key = feature_key(cfg, table)
    target = cfg.cache_dir / "features" / f"{name}-{key}.npy"
    if target.is_file():
        try:
            cached = np.load(target, mmap_mode="r")
            if cached.shape[0] == len(table):
                return cached
        except (OSError, ValueError):
            pass  # damaged file: rebuild below
        target.unlink(missing_ok=True)

    frames = n_frames(cfg, float(table["end"].iloc[0] - table["start"].iloc[0]))
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + f".{os.getpid()}.tmp")
    out = np.lib.format.open_memmap(
        tmp, mode="w+", dtype=FEATURE_DTYPE, shape=(len(table), cfg.mel.n_mels, frames)
    )
    try:
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            _extract_into(out, table, cfg, cache_audio, f"log-mel {name}", progress)
        finally:
            torch.set_num_threads(threads)
        out.flush()
        del out
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()
    return np.load(target, mmap_mode="r")


def _extract_into(
    out: np.ndarray, table: pd.DataFrame, cfg: Config, cache_audio: bool, desc: str, progress: bool
) -> None:
    """Fill ``out[i]`` with the log-mel of ``table.iloc[i]``, reading each file once."""
    from tqdm.auto import tqdm

    sr = cfg.audio.sample_rate
    extractor = mel_extractor(cfg)
    paths = table["path"].astype(str).to_numpy()
    groups = pd.Series(np.arange(len(table))).groupby(paths, sort=False)
    with torch.inference_mode():
        for path, idx in tqdm(groups, total=groups.ngroups, desc=desc, disable=not progress):
            rows = table.iloc[idx.to_numpy()]
            audio = _load_audio(str(path), cfg, cache_audio)
            feats = extractor(torch.from_numpy(chunk_waveforms(audio, sr, rows))).numpy()
            if feats.shape[1:] != out.shape[1:]:
                raise ValueError(f"{path}: features of shape {feats.shape[1:]}, expected {out.shape[1:]}")
            out[idx.to_numpy()] = feats.astype(FEATURE_DTYPE)


def normalization_stats(features: np.ndarray, rows: np.ndarray | None = None) -> tuple[float, float]:
    """Global mean and standard deviation (dB) of ``features[rows]`` (all rows when None).

    Pass the TRAINING rows only: statistics computed on validation or test data would leak
    information about them into training (the model's input scale would depend on the data
    we claim it has never seen). Computed in float64 over blocks, so a large memmap is never
    loaded at once and float16 sums do not overflow.
    """
    idx = np.arange(len(features)) if rows is None else np.asarray(rows)
    if idx.dtype == bool:
        idx = np.flatnonzero(idx)
    if len(idx) == 0:
        raise ValueError("normalization_stats: no rows selected")
    total = 0.0
    total_sq = 0.0
    count = 0
    for b in range(0, len(idx), 1024):
        block = np.asarray(features[np.sort(idx[b : b + 1024])], dtype=np.float64)
        total += float(block.sum())
        total_sq += float((block * block).sum())
        count += block.size
    mean = total / count
    var = max(total_sq / count - mean * mean, 0.0)
    return mean, float(max(np.sqrt(var), 1e-6))
