"""Reading and writing audio, and the resampling cache.

Why soundfile and not ``torchaudio.load``: torchaudio 2.11 needs torchcodec for I/O (README,
"Environment"); soundfile reads WAV/FLAC/OGG everywhere. Everything downstream expects float32
mono at ``cfg.audio.sample_rate``, so that conversion happens here, once.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from sed_utils.core import atomic
from sed_utils.core.errors import AudioError

__all__ = ["AUDIO_SUFFIXES", "AudioError", "read_audio", "write_wav", "cached_resampled", "resample",
           "Recording", "read_recording", "open_recording", "Tap", "check_samples", "check_sample_rate",
           "MIN_SAMPLE_RATE", "MAX_SAMPLE_RATE", "MAX_AMPLITUDE"]

#: The suffixes of the audio files a folder is searched for (what libsndfile decodes).
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".oga", ".mp3", ".aif", ".aiff", ".au", ".w64", ".caf")
#: Sample rates a recording may declare, in Hz. Outside them a header is damaged (a 1 MB WAV that says
#: 1 Hz would be resampled into ~30 GiB); 768 kHz is the highest rate audio interfaces record.
MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 1_000, 768_000
#: The largest sample magnitude accepted (full scale is 1.0): +80 dB over full scale. A float file may
#: clip a little over 1.0; 1e19 is a damaged file, whose finite samples would still give NaN scores.
MAX_AMPLITUDE = 1e4


def resample(audio: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """Resample mono float audio (soxr_hq: fast and accurate); a no-op when the rates match
    (notebooks 02-07, through read_audio).

    Args:
        audio: mono samples ``[N]``.
        orig_sr, target_sr: their rate and the wanted rate, in Hz.

    Returns:
        float32 samples at ``target_sr`` (``audio`` itself, without a copy, when it is float32 and the
        rates match).
    """
    if orig_sr == target_sr:
        return audio.astype(np.float32, copy=False)
    import soxr  # what librosa.resample(res_type="soxr_hq") calls, without librosa's ~1 s import

    out = soxr.resample(np.asarray(audio, dtype=np.float32), int(orig_sr), int(target_sr), quality="HQ")
    return out.astype(np.float32, copy=False)


def read_audio(path: Path, sample_rate: int) -> np.ndarray:
    """Read ``path`` as float32 mono at ``sample_rate`` (channels averaged, resampled if needed).
    Used in notebook 02, and in notebooks 03-07 through cached_resampled.

    The one way a file is read: :func:`read_recording`, so training data and a user's recordings are
    refused for the same reasons, with the same messages (see there). NaN is refused rather than
    repaired: a float WAV holding NaN would become NaN features, NaN scores and a silent "no event"
    (and the NaN features would be cached); a file with NaN in it is damaged, and the user should hear
    about it rather than get results from a patched copy.
    """
    return read_recording(path, sample_rate).audio


def write_wav(path: Path, audio: np.ndarray, sample_rate: int) -> None:
    """Write mono (or [n, channels]) float audio in [-1, 1] as 16-bit PCM WAV, atomically
    (notebooks 04-07: the scenes, through build_scenes).

    Values outside [-1, 1] are clipped rather than wrapped around.

    Args:
        path: the file to write (replaced if it exists).
        audio: samples ``[n]`` or ``[n, channels]``.
        sample_rate: their rate in Hz.
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

    Args:
        path: the audio file.
        sample_rate: the wanted rate in Hz.
        cache_dir: where the resampled copies go (one per file and rate, named by a key of the file's
            path, size and mtime, so an edited file is resampled again).

    Returns:
        float32 mono samples ``[N]`` at ``sample_rate``.

    Raises:
        AudioError: the file is missing or cannot be read, or it is refused as :func:`read_audio`
            refuses it.
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
        return int(sf.info(os.fsencode(path)).samplerate)
    except Exception as e:
        raise AudioError(f"{path}: not an audio file libsndfile can read ({e})") from e


# --------------------------------------------------------------------------------------------
# Reading a user's recording: any format libsndfile reads, checked, in blocks
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Recording:
    """A user's recording as the detector needs it: float32 mono at ``sample_rate``, and what it
    was on disk (notebook 09, ``python -m sed_utils detect``)."""

    path: Path
    audio: np.ndarray
    sample_rate: int
    native_rate: int
    channels: int
    format: str  # libsndfile's format and subtype, e.g. "WAV PCM_24", "MP3 MPEG_LAYER_III"
    declared_frames: int = 0  # the header's length, in the file's own frames (0: unknown)

    @property
    def seconds(self) -> float:
        return len(self.audio) / float(self.sample_rate)


def check_samples(name: str | Path, block: np.ndarray, native_rate: int, offset: int = 0) -> None:
    """Raise :class:`AudioError` naming ``name`` at the first NaN, infinite or absurd sample of ``block``
    (``[n]`` or ``[n, channels]``; absurd: beyond :data:`MAX_AMPLITUDE`) (notebook 09, through
    :func:`read_recording` and ``detect`` on arrays).

    Args:
        name: the file (or array) named in the message.
        block: the samples, as floats scaled to full scale 1.0.
        native_rate: their rate, for the time in the message; offset: the block's first sample's index.
    """
    if not block.size:
        return
    frames = block.reshape(len(block), -1)
    bad = ~np.isfinite(frames).all(axis=1)
    if bad.any():
        at = offset + int(np.flatnonzero(bad)[0])
        raise AudioError(f"{name}: sample {at} ({at / native_rate:.2f} s) is NaN or infinite; "
                         "a recording holds finite values (the file is damaged)")
    loud = (np.abs(frames) > MAX_AMPLITUDE).any(axis=1)
    if loud.any():
        at = offset + int(np.flatnonzero(loud)[0])
        value = float(np.abs(frames[at - offset]).max())
        raise AudioError(f"{name}: sample {at} ({at / native_rate:.2f} s) is {value:.3g} times full scale "
                         f"(more than {MAX_AMPLITUDE:.0e}); the file is damaged or not scaled to [-1, 1]")


def check_sample_rate(name: str | Path, rate: float) -> int:
    """``rate`` as an int, or :class:`AudioError` naming ``name`` when it lies outside
    [:data:`MIN_SAMPLE_RATE`, :data:`MAX_SAMPLE_RATE`] Hz: checked before anything is allocated
    (notebook 09, through :func:`read_recording` and ``detect`` on arrays)."""
    if not (MIN_SAMPLE_RATE <= float(rate) <= MAX_SAMPLE_RATE):
        raise AudioError(f"{name}: sample rate {rate:g} Hz lies outside "
                         f"{MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE} Hz (a damaged header?)")
    return int(rate)


def _truncated_message(path: Path, short: tuple[int, int]) -> str:
    return (f"{path}: truncated WAV: its header declares {short[0]} bytes of samples, "
            f"the file holds {short[1]} (an interrupted copy or download?)")


def _wav_data_shortfall(path: Path) -> tuple[int, int] | None:
    """(declared, present) bytes of a WAV's data chunk when the file holds fewer than its header
    says, else None. libsndfile reads a cut-off WAV without complaint (it just returns fewer
    frames), so a truncated download would pass as a shorter recording without this check."""
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return None  # RF64, W64 and others: libsndfile's own checks apply
        pos = 12
        while pos + 8 <= size:
            fh.seek(pos)
            chunk_id, chunk_size = struct.unpack("<4sI", fh.read(8))
            if chunk_id == b"data":
                present = size - (pos + 8)
                ok = chunk_size in (0, 0xFFFFFFFF) or present >= chunk_size  # 0 / -1: streamed, unknown
                return None if ok else (chunk_size, present)
            pos += 8 + chunk_size + (chunk_size & 1)
    return None


def open_recording(path: Path, sample_rate: int, *,
                   block_frames: int = 1 << 19) -> tuple[Recording, Iterator[np.ndarray]]:
    """Open any recording libsndfile decodes for reading in blocks: what it is, and its float32 mono
    samples at ``sample_rate``, one block at a time (notebook 09, through ``detect``, which scores each
    block as it arrives: an hour never sits in memory).

    The checks that need no decoding run here (a missing, empty or unknown file, a sample rate outside
    :func:`check_sample_rate`'s range, a WAV shorter than its header says); the rest run while the
    blocks are read, and raise from the iterator: a decoding error part-way, NaN, infinite or absurd
    samples (:func:`check_samples`), and, after the last block, a compressed file decoding well short of
    the length its header declares.

    Args:
        path: the recording.
        sample_rate: the rate of the blocks, in Hz.
        block_frames: how many of the file's frames are decoded at a time.

    Returns:
        ``(recording, blocks)``: a :class:`Recording` whose ``audio`` is empty (the blocks are the
        samples), and the iterator of blocks (read it once).

    Raises:
        AudioError: naming the file, as above.
    """
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: audio file not found")
    if path.stat().st_size == 0:
        raise AudioError(f"{path}: the file is empty (0 bytes)")
    try:
        fh = sf.SoundFile(os.fsencode(path))  # bytes: a name that is not UTF-8 opens too
    except Exception as e:  # LibsndfileError: "Format not recognised" and kin
        raise AudioError(f"{path}: not an audio file libsndfile can read ({e})") from e
    try:
        native, channels, fmt = int(fh.samplerate), int(fh.channels), f"{fh.format} {fh.subtype}"
        check_sample_rate(path, native)  # before anything is sized from it
        if fh.format == "WAV" and (short := _wav_data_shortfall(path)) is not None:
            raise AudioError(_truncated_message(path, short))
    except AudioError:
        fh.close()
        raise
    info = Recording(path, np.zeros(0, np.float32), int(sample_rate), native, channels, fmt,
                     declared_frames=max(int(fh.frames), 0))
    return info, _blocks(fh, info, block_frames)


def _blocks(fh: sf.SoundFile, info: Recording, block_frames: int) -> Iterator[np.ndarray]:
    """The decoded blocks of an open file as float32 mono at ``info.sample_rate``; closes the file."""
    path, native, declared = info.path, info.native_rate, info.declared_frames
    with fh:
        stream = None
        if native != info.sample_rate:
            import soxr  # librosa's resampler (soxr_hq), as in resample()

            stream = soxr.ResampleStream(native, info.sample_rate, 1, dtype="float32", quality="HQ")
        done = 0
        while True:
            try:
                block = fh.read(block_frames, dtype="float32", always_2d=True)
            except Exception as e:  # a damaged FLAC/MP3 fails part-way ("decoder lost sync")
                raise AudioError(f"{path}: decoding failed after {done / native:.2f} s ({e})") from e
            check_samples(path, block, native, done)
            last = len(block) < block_frames
            mono = block.mean(axis=1, dtype=np.float32) if info.channels > 1 else block[:, 0].copy()
            done += len(block)
            if last and done == 0:
                raise AudioError(f"{path}: the audio file is empty: it holds no samples ({info.format})")
            if last and declared > 0 and declared - done > max(0.05 * declared, 0.5 * native):  # VBR: slack
                kind = info.format.split()[0]
                raise AudioError(f"{path}: truncated {kind}: its header declares {declared / native:.2f} s, "
                                 f"the file decodes to {done / native:.2f} s (an interrupted copy or "
                                 "download?)")
            piece = stream.resample_chunk(mono, last=last) if stream is not None else mono
            if len(piece):
                yield piece
            if last:
                return


def read_recording(path: Path, sample_rate: int, *, block_frames: int = 1 << 19) -> Recording:
    """Read any recording libsndfile decodes (WAV, FLAC, OGG/Vorbis, MP3; 8/16/24/32-bit PCM or
    float; any rate; any channel count) as float32 mono at ``sample_rate`` (notebook 09).

    Why in blocks: a one-hour 48 kHz stereo file is 1.3 GB as float64; decoding ``block_frames``
    at a time (:func:`open_recording`), averaging the channels and resampling each block through one
    soxr stream keeps only the 16 kHz mono result (64 kB per second of audio, 230 MB for an hour) in
    memory.

    Args:
        path: the recording.
        sample_rate: the rate to return, in Hz.
        block_frames: how many frames are decoded at a time.

    Returns:
        A :class:`Recording`: the float32 mono samples at ``sample_rate``, and the file's own rate,
        channel count and format.

    Raises:
        AudioError: naming the file, for a missing or empty file, a file libsndfile does not
            recognise, no samples, a WAV cut off before the end its header declares (any other format:
            decoding more than 5 % and 0.5 s short of the length its header declares), a decoding error
            part-way (a damaged FLAC/MP3), a sample rate outside :func:`check_sample_rate`'s range, and
            NaN, infinite or absurdly large samples (float files can hold them; the model would turn them
            into NaN scores silently: :func:`check_samples`).
    """
    info, blocks = open_recording(path, sample_rate, block_frames=block_frames)
    tap = Tap(blocks, expected=int(np.ceil(info.declared_frames * sample_rate / info.native_rate)))
    for _ in tap:
        pass
    return dataclasses.replace(info, audio=tap.audio)


class Tap:
    """Passes a recording's blocks through, noting on the way their length, their peak and, up to ``keep``
    samples from the start, the samples themselves (notebook 09: :func:`read_recording` keeps all,
    ``detect`` keeps what its figure draws while the model scores every block).

    Why one preallocated buffer (sized from ``expected``, the header's length at the blocks' rate): a list
    of blocks joined at the end would hold an hour twice at the moment of joining.

    Args:
        blocks: float32 mono blocks (iterated once).
        keep: how many samples from the start to keep (default: all).
        expected: how many samples the blocks will hold, when known (0: unknown; the buffer grows).
    """

    def __init__(self, blocks: Iterable[np.ndarray], keep: float = np.inf, expected: int = 0):
        self.blocks, self.keep = blocks, keep
        self.n, self.peak = 0, 0.0
        self._buffer = np.empty(int(min(keep, expected + 256)) if expected > 0 else 0, np.float32)

    def __iter__(self) -> Iterator[np.ndarray]:
        for block in self.blocks:
            start, self.n = self.n, self.n + len(block)
            if len(block):
                self.peak = max(self.peak, float(np.max(np.abs(block))))
            if start < self.keep:
                self._store(start, block[:int(min(len(block), self.keep - start))])
            yield block

    def _store(self, start: int, piece: np.ndarray) -> None:
        if start + len(piece) > len(self._buffer):  # unknown or under-counted length (some MP3s): grow
            grown = np.empty(start + max(len(piece), len(self._buffer) // 2), np.float32)
            grown[:start] = self._buffer[:start]
            self._buffer = grown
        self._buffer[start:start + len(piece)] = piece

    @property
    def audio(self) -> np.ndarray:
        """The kept samples (a view of the buffer)."""
        return self._buffer[:int(min(self.n, self.keep))]
