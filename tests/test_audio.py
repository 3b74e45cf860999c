"""read_audio / write_wav / cached_resampled: mono mixing, resampling, errors, the resample cache."""

from __future__ import annotations

import os

import numpy as np
import pytest
import soundfile as sf

from sed_utils.io.audio import AudioError, cached_resampled, read_audio, write_wav


def _sine(freq: float, sr: int, seconds: float) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def test_write_then_read_roundtrip_16bit(tmp_path):
    audio = _sine(440, 16000, 0.5)
    path = tmp_path / "a.wav"
    write_wav(path, audio, 16000)
    info = sf.info(str(path))
    assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
    back = read_audio(path, 16000)
    assert back.dtype == np.float32 and back.shape == audio.shape
    assert np.max(np.abs(back - audio)) < 1e-4  # 16-bit quantisation step is 3e-5
    assert not list(tmp_path.glob("*.tmp"))


def test_write_clips_instead_of_wrapping(tmp_path):
    path = tmp_path / "loud.wav"
    write_wav(path, np.array([2.0, -3.0, 0.25], np.float32), 8000)
    back = read_audio(path, 8000)
    assert back[0] == pytest.approx(1.0, abs=1e-4) and back[1] == pytest.approx(-1.0, abs=1e-4)
    assert back[2] == pytest.approx(0.25, abs=1e-4)


def test_stereo_is_mixed_to_mono(tmp_path):
    left, right = np.full(100, 0.5, np.float32), np.full(100, -0.1, np.float32)
    path = tmp_path / "st.wav"
    sf.write(str(path), np.stack([left, right], axis=1), 8000, subtype="FLOAT")
    out = read_audio(path, 8000)
    assert out.shape == (100,)
    np.testing.assert_allclose(out, 0.2, atol=1e-6)


def test_resampling_changes_length_and_keeps_the_tone(tmp_path):
    path = tmp_path / "hi.wav"
    write_wav(path, _sine(1000, 44100, 1.0), 44100)
    out = read_audio(path, 16000)
    assert out.dtype == np.float32 and len(out) == 16000
    spectrum = np.abs(np.fft.rfft(out))
    assert np.argmax(spectrum) == 1000  # 1 Hz bins over 1 s: the peak stays at 1 kHz


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: None, "not found"),
        (lambda p: p.write_bytes(b"this is not audio"), "not an audio file"),
        (lambda p: sf.write(str(p), np.zeros((0,), np.float32), 16000), "empty"),
        # issue 12: both refused by read_recording already, accepted by read_audio before
        (lambda p: sf.write(str(p), np.array([0.0, np.nan, 0.1], np.float32), 16000, subtype="FLOAT"),
         r"sample 1 \(0\.00 s\) is NaN or infinite"),
        (lambda p: sf.write(str(p), np.array([0.0, 0.1, -np.inf], np.float32), 16000, subtype="FLOAT"),
         "NaN or infinite"),
        (lambda p: (sf.write(str(p), np.zeros(16000, np.float32), 16000, subtype="PCM_16"),
                    p.write_bytes(p.read_bytes()[:20000])), "truncated WAV"),
    ],
)
def test_errors_name_the_file(tmp_path, make, message):
    path = tmp_path / "bad_clip.wav"
    make(path)
    with pytest.raises(AudioError, match=message) as err:
        read_audio(path, 16000)
    assert "bad_clip.wav" in str(err.value)


def test_cached_resampled_same_rate_reads_directly(tmp_path):
    path = tmp_path / "a.wav"
    write_wav(path, _sine(300, 16000, 0.2), 16000)
    cache = tmp_path / "cache"
    out = cached_resampled(path, 16000, cache)
    np.testing.assert_array_equal(out, read_audio(path, 16000))
    assert not cache.exists()  # nothing to cache


def test_cached_resampled_miss_then_hit_then_invalidated(tmp_path):
    path = tmp_path / "a.wav"
    write_wav(path, _sine(300, 44100, 0.5), 44100)
    cache = tmp_path / "cache"
    first = cached_resampled(path, 16000, cache)
    entries = list(cache.iterdir())
    assert len(first) == 8000 and len(entries) == 1 and entries[0].name.startswith("a.16000.")
    # a hit reads the cached array: prove it by planting a marker in the cache entry
    np.save(entries[0], np.full(3, 7.0, np.float32))
    np.testing.assert_array_equal(cached_resampled(path, 16000, cache), np.full(3, 7.0, np.float32))
    # editing the source (new size and mtime) gives a new key, so the stale entry is not read
    write_wav(path, _sine(300, 44100, 0.25), 44100)
    os.utime(path, ns=(1, 1))
    again = cached_resampled(path, 16000, cache)
    assert len(again) == 4000 and len(list(cache.iterdir())) == 2


def test_cached_resampled_damaged_entry_is_rebuilt(tmp_path):
    path = tmp_path / "a.wav"
    write_wav(path, _sine(300, 32000, 0.5), 32000)
    cache = tmp_path / "cache"
    good = cached_resampled(path, 16000, cache)
    (entry,) = cache.iterdir()
    entry.write_bytes(b"garbage")
    np.testing.assert_array_equal(cached_resampled(path, 16000, cache), good)


def test_cached_resampled_missing_file(tmp_path):
    with pytest.raises(AudioError, match="nope.wav"):
        cached_resampled(tmp_path / "nope.wav", 16000, tmp_path / "cache")


def _interrupt_rename(monkeypatch):
    """Make the final rename of every atomic write fail, as if the process died just before it."""
    from sed_utils.core import atomic

    def interrupted(src, dst):
        raise OSError("interrupted before the rename")

    monkeypatch.setattr(atomic.os, "replace", interrupted)


def test_write_wav_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "a.wav"
    _interrupt_rename(monkeypatch)
    with pytest.raises(OSError, match="interrupted"):
        write_wav(path, _sine(440, 16000, 0.1), 16000)
    assert list(tmp_path.iterdir()) == []  # neither the target nor a temporary file


def test_cached_resampled_writes_its_cache_entry_atomically(tmp_path, monkeypatch):
    path = tmp_path / "a.wav"
    write_wav(path, _sine(300, 44100, 0.2), 44100)
    cache = tmp_path / "cache"
    _interrupt_rename(monkeypatch)
    with pytest.raises(OSError, match="interrupted"):
        cached_resampled(path, 16000, cache)
    assert list(cache.iterdir()) == []  # no half-written entry that a later call would trust
    monkeypatch.undo()
    assert len(cached_resampled(path, 16000, cache)) == 3200 and len(list(cache.iterdir())) == 1
