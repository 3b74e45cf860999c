"""Reading and writing audio, and the resampling cache.

Why soundfile and not ``torchaudio.load``: torchaudio 2.11 needs torchcodec for I/O (see
ENVIRONMENT.md); soundfile reads WAV/FLAC/OGG everywhere. Everything downstream expects float32
mono at ``cfg.audio.sample_rate``, so that conversion happens here, once.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import soundfile as sf

from sed_utils import atomic
from sed_utils.errors import AudioError

__all__ = ["AudioError", "read_audio", "write_wav", "cached_resampled", "resample"]


def resample(audio: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """Resample mono float audio (soxr_hq: fast and accurate); a no-op when the rates match
    (notebooks 02-07, through read_audio)."""
    if orig_sr == target_sr:
        return audio.astype(np.float32, copy=False)
    import librosa  # imported lazily: librosa's import costs ~1 s and most reads do not need it

    out = librosa.resample(audio.astype(np.float32), orig_sr=orig_sr, target_sr=target_sr, res_type="soxr_hq")
    return out.astype(np.float32, copy=False)


def _read_native(path: Path) -> tuple[np.ndarray, int]:
    """Read a file as float32 mono at its own rate; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: audio file not found")
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as e:  # soundfile raises LibsndfileError/RuntimeError for bad files
        raise AudioError(f"{path}: cannot read audio ({e})") from e
    if data.shape[0] == 0:
        raise AudioError(f"{path}: audio file is empty (0 samples)")
    mono = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    return np.ascontiguousarray(mono, dtype=np.float32), int(sr)


def read_audio(path: Path, sample_rate: int) -> np.ndarray:
    """Read ``path`` as float32 mono at ``sample_rate`` (channels averaged, resampled if needed).
    Used in notebook 02, and in notebooks 03-07 through cached_resampled."""
    audio, sr = _read_native(path)
    return resample(audio, sr, sample_rate)


def write_wav(path: Path, audio: np.ndarray, sample_rate: int) -> None:
    """Write mono (or [n, channels]) float audio in [-1, 1] as 16-bit PCM WAV, atomically
    (notebooks 04-07: the scenes, through build_scenes).

    Values outside [-1, 1] are clipped rather than wrapped around.
    """
    data = np.clip(np.asarray(audio, dtype=np.float32), -1.0, 1.0)
    atomic.write_with(Path(path),
                      lambda fh: sf.write(fh, data, int(sample_rate), subtype="PCM_16", format="WAV"))


def _cache_name(path: Path, sample_rate: int) -> str:
    """Cache key: file name + target rate + source size/mtime, so an edited source is re-resampled."""
    st = path.stat()
    key = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}|{sample_rate}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    return f"{path.stem}.{sample_rate}.{digest}.npy"


def cached_resampled(path: Path, sample_rate: int, cache_dir: Path) -> np.ndarray:
    """Read ``path`` at ``sample_rate``, resampling once and caching the result in ``cache_dir``.

    Why: real ESC-50 is 44.1 kHz; resampling 2000 clips on every notebook run costs time for
    nothing. A file already at ``sample_rate`` is read directly (no cache copy). The cache is a
    float32 ``.npy`` (exactly what a fresh resample returns, no requantisation).
    """
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: audio file not found")
    if _native_rate(path) == sample_rate:
        return read_audio(path, sample_rate)
    cache_dir = Path(cache_dir)
    target = cache_dir / _cache_name(path, sample_rate)
    if target.is_file():
        try:
            return np.load(target)
        except (OSError, ValueError):
            target.unlink(missing_ok=True)  # a damaged cache entry is rebuilt, not trusted
    audio = read_audio(path, sample_rate)
    atomic.save_npy(target, audio)
    return audio


def _native_rate(path: Path) -> int:
    """The file's own sample rate from its header (cheap: no samples decoded)."""
    try:
        return int(sf.info(str(path)).samplerate)
    except Exception as e:
        raise AudioError(f"{path}: cannot read audio ({e})") from e
