"""Log-mel features: the one log-mel of the series, the one window cutter, the feature cache, the normaliser.

Everything that turns audio into model input lives here, once: :class:`LogMel` (the front end the
model, the cache, the sliding windows and every figure use, so all show one dB scale: power in
dB re 1.0, floored ``top_db`` below each item's maximum), :func:`cut_windows` (fixed-length
windows, zero-padded past the end), :func:`feature_cache` and :class:`Normaliser`
(``(x - mean) / std`` with the training statistics, as an ``nn.Module`` so it travels inside the
model's checkpoint, like DESED_task's ``TorchScaler``).

Why a cache: the original project read each audio file and computed its spectrogram inside
``__getitem__``, i.e. once per chunk per epoch. The features never change between epochs
(augmentation is applied on top of them), so we compute every chunk's log-mel once, store all of
them in one ``.npy`` file and memory-map it: an epoch then reads arrays instead of decoding audio.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch
import torchaudio

from sed_utils.config import MelConfig, key_view
from sed_utils.core import atomic
from sed_utils.core.keys import file_identity, params_key
from sed_utils.core.progress import tqdm
from sed_utils.io.audio import cached_resampled, read_audio

if TYPE_CHECKING:
    from sed_utils.config import Config

__all__ = [
    "active_frames",
    "mel_band_hz",
    "LogMel",
    "Normaliser",
    "build_logmel",
    "logmel_db",
    "mel_extractor",
    "cut_windows",
    "window_starts",
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
#: torchaudio's AmplitudeToDB clamps power at 1e-10 before the log: bins at this value hold no signal.
POWER_FLOOR_DB = -100.0


class LogMel(torch.nn.Module):
    """Waveform ``[..., samples]`` -> log-mel power in dB ``[..., n_mels, frames]``
    (notebooks 02, 04-07, through build_logmel).

    ``AmplitudeToDB(top_db)`` clamps values to (max - top_db), where max is taken over everything
    it sees in one "channel group". Given ``[batch, n_mels, frames]`` it would take the max over
    the whole batch, so a chunk's features would depend on which other chunks share its batch.
    This wrapper reshapes to ``[items, 1, n_mels, frames]`` so the clamp is always per chunk:
    cached, on-the-fly and evaluation features are then identical.

    With ``reference="max"`` each item's dB are then taken relative to its own loudest bin (values in
    ``[-top_db, 0]``): scaling the waveform by any gain leaves the features unchanged (until the
    quietest parts reach the ``1e-10`` power floor, -100 dB re 1.0: white noise at -90 dBFS still has
    bins 50 dB above it), so a model cannot depend on the recording level. Bins at that floor hold no
    signal and stay at ``-top_db``: digital silence reads as the quietest input, not as a flat
    spectrum at the loudest level. ``"absolute"`` keeps dB re 1.0.
    """

    def __init__(self, mel: torchaudio.transforms.MelSpectrogram, to_db: torchaudio.transforms.AmplitudeToDB,
                 reference: str = "absolute"):
        super().__init__()
        if reference not in ("absolute", "max"):
            raise ValueError(f"LogMel: reference must be 'absolute' or 'max', got {reference!r}")
        self.mel = mel
        self.to_db = to_db
        self.reference = reference

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        lead = waveform.shape[:-1]
        spec = self.mel(waveform.reshape(-1, 1, waveform.shape[-1]))  # [items, 1, n_mels, frames]
        spec = self.to_db(spec)
        if self.reference == "max":
            silent = spec <= POWER_FLOOR_DB
            spec = (spec - spec.amax(dim=(-2, -1), keepdim=True)).masked_fill(silent, -self.to_db.top_db)
        return spec.reshape(*lead, spec.shape[-2], spec.shape[-1])


def mel_band_hz(mel: MelConfig) -> np.ndarray:
    """Centre frequency (Hz) of each mel band of the series' front end (notebooks 02, 04; the band-limit
    augmentation).

    torchaudio's ``MelSpectrogram`` (the model's front end) uses the HTK mel scale,
    ``mel = 2595 log10(1 + f / 700)``, with ``n_mels + 2`` points evenly spaced in mel between
    ``f_min`` and ``f_max``: band ``k`` is the triangle peaking at point ``k + 1``."""
    lo, hi = (2595.0 * np.log10(1.0 + f / 700.0) for f in (mel.f_min, mel.f_max))
    points = np.linspace(lo, hi, mel.n_mels + 2)
    return 700.0 * (10.0 ** (points[1:-1] / 2595.0) - 1.0)


def build_logmel(mel: MelConfig, sample_rate: int) -> LogMel:
    """The log-mel front end for mel settings ``mel`` at ``sample_rate`` (power 2, center=True).
    Used in notebooks 02, 04-07: features, the model's front end, figures.

    With the defaults, 1 s at 16 kHz (16000 samples), hop 160 and ``center=True`` gives
    16000 // 160 + 1 = 101 frames of 64 mel bands. The model's :class:`~sed_utils.models.Detector`
    rebuilds its front end with this function from the settings saved in its checkpoint.
    """
    m = mel
    spec = torchaudio.transforms.MelSpectrogram(
        sample_rate=int(sample_rate),
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
    return LogMel(spec, to_db, m.reference).eval()


def mel_extractor(cfg: Config) -> LogMel:
    """The log-mel extractor of the whole series: :func:`build_logmel` with ``cfg.features`` (notebook 04)."""
    return build_logmel(cfg.features, cfg.audio.sample_rate)


def logmel_db(audio: np.ndarray, sample_rate: int, mel: MelConfig | None = None) -> np.ndarray:
    """Log-mel in dB ``[n_mels, frames]`` of a whole clip, for figures (notebooks 02, 04, 07).

    The same front end as the model's input, so a figure's colours mean the dB the model hears;
    the ``top_db`` floor is taken below the clip's loudest bin (a 1 s model input floors below
    its own).

    Args:
        audio: mono samples ``[N]``, at ``sample_rate`` (audio at another rate must be resampled first).
        sample_rate: the rate in Hz the front end is built for.
        mel: the mel settings (default: :class:`MelConfig`'s defaults, not the config's ``features``).

    Returns:
        float32 log-mel in dB, ``[n_mels, frames]``.
    """
    extractor = build_logmel(mel or MelConfig(), sample_rate)
    with torch.inference_mode():
        return extractor(torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))).numpy()


class Normaliser(torch.nn.Module):
    """``(x - mean) / std`` with the TRAINING features' statistics, kept as buffers.

    Why a module: the statistics belong to the trained model (its inputs were scaled with them),
    so they are saved in its checkpoint and applied inside its ``forward``; a dataset, the
    validation and the evaluation then all feed the model plain dB features and cannot forget
    or repeat the step. ``mean``/``std`` are scalars or per-mel vectors ``[n_mels]``
    (broadcast over frames). Used by :func:`sed_utils.models.build_detector` (notebook 05).
    """

    def __init__(self, mean: float | np.ndarray, std: float | np.ndarray):
        super().__init__()
        self.register_buffer("mean", self._as_stat(mean))
        self.register_buffer("std", self._as_stat(std))

    @staticmethod
    def _as_stat(value: float | np.ndarray | torch.Tensor) -> torch.Tensor:
        t = torch.as_tensor(np.asarray(value, dtype=np.float32))
        return t.reshape(-1, 1) if t.dim() == 1 else t  # per-mel [n_mels] -> [n_mels, 1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def active_frames(features_db: np.ndarray, silence_db: float) -> np.ndarray:
    """Which frames of log-mels sound: their power summed over the mel bands is within ``silence_db``
    dB (negative) of the loudest frame of the same input, the series' one notion of silence applied
    to features (notebook 08: where an ESC-50 clip's category is a frame target).

    Args:
        features_db: log-mels in dB ``[n_mels, frames]`` or ``[N, n_mels, frames]``.
        silence_db: e.g. -35 (``cfg.chunking.silence_db``).

    Returns:
        Booleans ``[frames]`` or ``[N, frames]``.
    """
    x = np.asarray(features_db, dtype=np.float64)
    power_db = 10.0 * np.log10(np.sum(10.0 ** (x / 10.0), axis=-2) + 1e-30)
    return power_db >= power_db.max(axis=-1, keepdims=True) + float(silence_db)


def n_frames(cfg: Config, seconds: float) -> int:
    """Frames the extractor gives for ``seconds`` of audio (center=True: samples // hop + 1).
    Used in notebook 04, and in notebooks 05, 06 through feature_cache."""
    return int(round(seconds * cfg.audio.sample_rate)) // cfg.features.hop_length + 1


def _rel(path: str, root: Path) -> str:
    """Path relative to the data root when inside it, so a moved data folder keeps its cache key."""
    try:
        return str(Path(path).resolve().relative_to(Path(root).resolve()))
    except ValueError:
        return str(path)


def feature_key(cfg: Config, table: pd.DataFrame) -> str:
    """Cache key: mel parameters + sample rate + the rows (path, start, end) in order + each audio
    file's size and mtime (:func:`~sed_utils.core.keys.file_identity`: a replaced file gets new
    features) (notebook 04; notebooks 05, 06 through feature_cache)."""
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
            "mel": key_view("features", cfg.features),
            "sample_rate": cfg.audio.sample_rate,
            "dtype": np.dtype(FEATURE_DTYPE).str,
            "rows": hashlib.sha256(rows_hash).hexdigest(),
            "sources": file_identity(dict.fromkeys(map(str, table["path"]))),
        }
    )


def _load_audio(path: str, cfg: Config, cache_audio: bool) -> np.ndarray:
    if cache_audio:
        return cached_resampled(Path(path), cfg.audio.sample_rate, cfg.cache_dir / "resampled")
    return read_audio(Path(path), cfg.audio.sample_rate)


def cut_windows(audio: np.ndarray, sample_rate: int, starts: np.ndarray, n_samples: int) -> np.ndarray:
    """``[len(starts), n_samples]`` float32 windows starting at ``starts`` (s), zero-padded past the end.

    The one window cutter of the series: training chunks, test segments and sliding windows
    (notebooks 04, 06) are all cut here, so a window at the same place is the same input
    everywhere. Padding covers a file a few ms short (some DESED clips are 9.98 s).

    Args:
        audio: mono samples ``[N]`` (any other shape is flattened).
        sample_rate: their rate in Hz.
        starts: the windows' start times in seconds, each rounded to the nearest sample.
        n_samples: the length of every window.
    """
    audio = np.asarray(audio, dtype=np.float32).reshape(-1)
    out = np.zeros((len(starts), int(n_samples)), dtype=np.float32)
    for i, start in enumerate(np.asarray(starts, dtype=float)):
        a = int(round(start * sample_rate))
        piece = audio[a : a + int(n_samples)]
        out[i, : len(piece)] = piece
    return out


def cut_samples(audio: np.ndarray, sample_rate: int, start: float, n_samples: int) -> np.ndarray:
    """One window of :func:`cut_windows`: ``n_samples`` from ``start`` s, zero-padded (notebook 04).

    Args:
        audio: mono samples ``[N]``; sample_rate: their rate in Hz.
        start: the window's start in seconds (rounded to the nearest sample).
        n_samples: the window's length.

    Returns:
        float32 samples ``[n_samples]``.
    """
    return cut_windows(audio, sample_rate, np.array([start]), n_samples)[0]


def window_starts(n_samples: int, sample_rate: int, window_seconds: float, hop_seconds: float) -> np.ndarray:
    """Start times (s) of the sliding windows over a clip, every ``hop_seconds`` from 0 (notebook 06).

    The last window may run past the clip end by less than half a hop (zero-padded by
    :func:`cut_windows`), so a clip a few ms short of 10 s (DESED has some) still gets a window
    that ends at ~10 s instead of losing its last hop. A clip shorter than one window gets one.

    Args:
        n_samples: the clip's length in samples; sample_rate: their rate in Hz.
        window_seconds, hop_seconds: the window's length and the hop between starts, in seconds.

    Returns:
        The start times in seconds, ``[W]``, ``W >= 1``.
    """
    length = n_samples / float(sample_rate)
    n = int(math.floor((length - window_seconds) / hop_seconds + 0.5 - 1e-9)) + 1
    return np.arange(max(n, 1)) * float(hop_seconds)


def chunk_waveforms(audio: np.ndarray, sample_rate: int, rows: pd.DataFrame) -> np.ndarray:
    """Stack the (start, end) windows of one file into ``[len(rows), samples]`` float32
    (notebooks 04-06, through feature_cache).

    Args:
        audio: the file's mono samples.
        sample_rate: their rate in Hz.
        rows: the file's windows, ``start`` and ``end`` in seconds, all of one length.

    Raises:
        ValueError: the rows' lengths (rounded to samples) differ, or there is no row.
    """
    lengths = {int(round((e - s) * sample_rate)) for s, e in zip(rows["start"], rows["end"], strict=True)}
    if len(lengths) != 1:
        raise ValueError(
            f"rows of one feature table must all have the same length, got {sorted(lengths)} samples"
        )
    return cut_windows(audio, sample_rate, rows["start"].to_numpy(float), lengths.pop())


def feature_cache(
    cfg: Config, table: pd.DataFrame, name: str, *, progress: bool = True, cache_audio: bool = True
) -> np.ndarray:
    """Log-mel of every row (path, start, end) of ``table``, computed once, memory-mapped afterwards
    (notebook 04; notebooks 05, 06 through build_datasets and segments_with_features).

    Stored as ``cfg.cache_dir / "features" / f"{name}-{key}.npy"`` with
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

    Args:
        cfg: the mel settings, sample rate, data root and cache folder.
        table: the windows, ``path``, ``start`` and ``end`` (seconds), all of one length.
        name: the cache file's name prefix (which set this is).
        progress: show a progress bar over the files on a miss.
        cache_audio: read through the resampling cache (see above).

    Returns:
        ``np.ndarray[len(table), n_mels, frames]`` (float16, read-only memmap), row ``i`` =
        ``table.iloc[i]``.

    Raises:
        ValueError: ``table`` has no rows, its windows differ in length, or a file's features have an
            unexpected shape.
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
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with atomic.atomic_path(target) as tmp:  # complete or absent: an interrupted run leaves no file
            out = np.lib.format.open_memmap(
                tmp, mode="w+", dtype=FEATURE_DTYPE, shape=(len(table), cfg.features.n_mels, frames)
            )
            _extract_into(out, table, cfg, cache_audio, f"log-mel {name}", progress)
            out.flush()
            del out
    finally:
        torch.set_num_threads(threads)
    return np.load(target, mmap_mode="r")


def _extract_into(
    out: np.ndarray, table: pd.DataFrame, cfg: Config, cache_audio: bool, desc: str, progress: bool
) -> None:
    """Fill ``out[i]`` with the log-mel of ``table.iloc[i]``, reading each file once."""
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
    Used in notebooks 04, 05, directly and through build_datasets.

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
