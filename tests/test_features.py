"""Log-mel extractor shapes, the window cutter, the feature cache (miss, hit without recomputation,
invalidation), stats, and the normaliser."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch
from test_chunking import SR, tiny_config

from sed_utils.config import MelConfig
from sed_utils.features import logmel as logmel_module  # feature_cache looks mel_extractor up here
from sed_utils.features.logmel import (
    Normaliser,
    build_logmel,
    cut_samples,
    cut_windows,
    feature_cache,
    logmel_db,
    mel_extractor,
    normalization_stats,
    window_starts,
)


@pytest.fixture
def clips(tmp_path, monkeypatch):
    """Two 2 s wav files and a table of 1 s rows over them (ESC-50-like)."""
    monkeypatch.delenv("SED_DATA_ROOT", raising=False)
    rng = np.random.default_rng(0)
    paths = []
    for i, amp in enumerate((0.5, 0.01)):
        p = tmp_path / "audio" / f"clip{i}.wav"
        p.parent.mkdir(parents=True, exist_ok=True)
        sf.write(p, (amp * rng.standard_normal(2 * SR)).astype(np.float32), SR, subtype="PCM_16")
        paths.append(str(p))
    table = pd.DataFrame(
        {
            "path": [paths[0], paths[0], paths[1], paths[0]],
            "start": [0.0, 0.5, 1.0, 1.0],
            "end": [1.0, 1.5, 2.0, 2.0],
        }
    )
    return tiny_config(tmp_path), table


def test_mel_extractor_shape_and_per_chunk_top_db():
    cfg = tiny_config("/tmp/unused")
    ext = mel_extractor(cfg)
    rng = np.random.default_rng(1)
    loud = torch.from_numpy((0.5 * rng.standard_normal(SR)).astype(np.float32))
    quiet = loud * 1e-4  # 80 dB lower: with a batch-wide top_db it would be clamped flat
    with torch.inference_mode():
        both = ext(torch.stack([loud, quiet]))
        alone = ext(quiet)
    assert both.shape == (2, cfg.features.n_mels, 101)  # 1 s, hop 160, center=True -> 101 frames
    torch.testing.assert_close(both[1], alone)  # each chunk clamped on its own maximum
    assert float(alone.max() - alone.min()) <= cfg.features.top_db + 1e-3


def test_feature_cache_miss_hit_and_invalidation(clips, monkeypatch):
    cfg, table = clips
    feats = feature_cache(cfg, table, "t", progress=False)
    assert feats.shape == (4, cfg.features.n_mels, 101) and feats.dtype == np.float16
    # row 2 computed from clip1 [1, 2) s must equal the extractor run on that audio directly
    audio, _ = sf.read(table.path[2], dtype="float32")
    with torch.inference_mode():
        ref = mel_extractor(cfg)(torch.from_numpy(audio[SR : 2 * SR])).numpy()
    np.testing.assert_allclose(feats[2].astype(np.float32), ref, atol=0.06)
    np.testing.assert_array_equal(feats[3], feature_cache(cfg, table.iloc[[3]], "t", progress=False)[0])
    files = list((cfg.cache_dir / "features").glob("t-*.npy"))
    assert len(files) == 2 and not list((cfg.cache_dir / "features").glob("*.tmp"))

    calls = []
    real = logmel_module.mel_extractor
    monkeypatch.setattr(logmel_module, "mel_extractor", lambda c: calls.append(1) or real(c))
    again = feature_cache(cfg, table, "t", progress=False)  # hit: nothing recomputed
    assert calls == [] and isinstance(again, np.memmap)
    np.testing.assert_array_equal(again, feats)

    smaller = tiny_config(cfg.data_root, "features.n_mels=32")  # changed parameter -> new key, new file
    assert feature_cache(smaller, table, "t", progress=False).shape == (4, 32, 101)
    assert calls == [1] and len(list((cfg.cache_dir / "features").glob("t-*.npy"))) == 3
    feature_cache(cfg, table.iloc[::-1], "t", progress=False)  # different row order -> new key too
    assert calls == [1, 1]


def test_normalization_stats_uses_only_given_rows():
    x = np.zeros((3, 2, 2), dtype=np.float16)
    x[0] = 1.0
    x[1] = 3.0
    x[2] = 100.0  # a "validation" row: must not influence the statistics
    mean, std = normalization_stats(x, np.array([0, 1]))
    assert mean == pytest.approx(2.0) and std == pytest.approx(1.0)
    mean_all, _ = normalization_stats(x)
    assert mean_all == pytest.approx(104 / 3)
    with pytest.raises(ValueError):
        normalization_stats(x, np.array([], dtype=int))


def test_normaliser_with_scalar_statistics():
    norm = Normaliser(-40.0, 20.0)
    x = torch.tensor([[[-40.0, -20.0], [0.0, -60.0]]])  # [B, n_mels, frames]
    torch.testing.assert_close(norm(x), torch.tensor([[[0.0, 1.0], [2.0, -1.0]]]))
    assert {name for name, _ in norm.named_buffers()} == {"mean", "std"}  # saved in the state dict
    assert norm.mean.dtype == torch.float32 and norm.mean.dim() == 0
    again = Normaliser(0.0, 1.0)
    again.load_state_dict(norm.state_dict())
    torch.testing.assert_close(again(x), norm(x))


def test_normaliser_with_per_mel_statistics_broadcasts_over_frames():
    mean = np.array([-10.0, -20.0, -30.0], dtype=np.float32)
    std = np.array([1.0, 2.0, 5.0], dtype=np.float32)
    norm = Normaliser(mean, std)
    assert tuple(norm.mean.shape) == (3, 1)
    x = torch.from_numpy(np.random.default_rng(0).uniform(-60, 0, size=(4, 1, 3, 7)).astype(np.float32))
    want = (x.numpy() - mean[:, None]) / std[:, None]
    np.testing.assert_allclose(norm(x).numpy(), want, rtol=1e-6)
    np.testing.assert_allclose(norm(x[:, 0]).numpy(), want[:, 0], rtol=1e-6)  # [B, n_mels, frames] too


def _old_cut(audio: np.ndarray, sample_rate: int, start: float, n_samples: int) -> np.ndarray:
    """The series' per-window cut before cut_windows existed (kept here as the reference)."""
    a = int(round(start * sample_rate))
    piece = audio[a : a + n_samples]
    if len(piece) < n_samples:
        piece = np.pad(piece, (0, n_samples - len(piece)))
    return piece


def test_cut_windows_equals_the_old_per_window_cut_and_zero_pads():
    sr = 1000
    audio = np.arange(1, 2501, dtype=np.float32)  # 2.5 s, no zero anywhere
    starts = np.array([0.0, 0.25, 0.0004, 0.0006, 1.5, 2.0, 2.6])
    out = cut_windows(audio, sr, starts, 1000)
    assert out.shape == (7, 1000) and out.dtype == np.float32
    for i, start in enumerate(starts):
        np.testing.assert_array_equal(out[i], _old_cut(audio, sr, float(start), 1000))
        np.testing.assert_array_equal(cut_samples(audio, sr, float(start), 1000), out[i])
    assert out[1, 0] == 251 and out[3, 0] == 2  # start rounded to the nearest sample
    np.testing.assert_array_equal(out[4], audio[1500:])  # exactly to the end: no padding
    np.testing.assert_array_equal(out[5, :500], audio[2000:])
    assert (out[5, 500:] == 0).all()  # past the end: zeros
    assert (out[6] == 0).all()  # starting past the end: all zeros
    assert cut_windows(audio, sr, np.array([]), 1000).shape == (0, 1000)


def test_window_starts():
    np.testing.assert_allclose(window_starts(160000, 16000, 1.0, 0.25), np.arange(37) * 0.25)
    assert window_starts(8000, 16000, 1.0, 0.25).tolist() == [0.0]  # shorter than one window
    # 9.98 s: the last window (9-10 s) runs 20 ms past the end and is kept; 9.85 s: 150 ms, dropped
    assert window_starts(int(9.98 * 16000), 16000, 1.0, 0.25)[-1] == 9.0
    assert window_starts(int(9.85 * 16000), 16000, 1.0, 0.25)[-1] == 8.75


def test_logmel_db_is_the_model_front_end_in_db():
    cfg = tiny_config("/tmp/unused")
    rng = np.random.default_rng(2)
    audio = (0.3 * rng.standard_normal(int(2.5 * SR))).astype(np.float32)
    db = logmel_db(audio, SR, cfg.features)
    with torch.inference_mode():
        want = mel_extractor(cfg)(torch.from_numpy(audio)).numpy()
    assert db.shape == (cfg.features.n_mels, int(2.5 * SR) // cfg.features.hop_length + 1)
    np.testing.assert_array_equal(db, want)
    assert float(db.max() - db.min()) <= cfg.features.top_db + 1e-3  # floored below the clip's loudest bin
    # dB re 1.0: a full-scale sine's bins are near 0 dB..+40 dB, far above a -60 dBFS one's
    t = np.arange(SR) / SR
    loud = logmel_db(np.sin(2 * np.pi * 1000 * t).astype(np.float32), SR)
    quiet = logmel_db((1e-3 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32), SR)
    assert float(loud.max() - quiet.max()) == pytest.approx(60.0, abs=0.1)
    assert logmel_db(audio[:SR], SR).shape == (MelConfig().n_mels, 101)  # default mel settings


def test_build_logmel_follows_the_mel_settings():
    small = MelConfig(n_mels=32, hop_length=320)
    ext = build_logmel(small, 16000)
    assert not ext.training
    with torch.inference_mode():
        out = ext(torch.zeros(2, 16000) + 0.01)
    assert out.shape == (2, 32, 16000 // 320 + 1)


def test_an_interrupted_feature_cache_write_leaves_no_file(clips, monkeypatch):
    from sed_utils.core import atomic

    cfg, table = clips

    def interrupted(src, dst):
        raise OSError("interrupted before the rename")

    monkeypatch.setattr(atomic.os, "replace", interrupted)
    with pytest.raises(OSError, match="interrupted"):
        feature_cache(cfg, table, "t", progress=False)
    assert list((cfg.cache_dir / "features").iterdir()) == []  # no file a later run would trust
    monkeypatch.undo()
    assert feature_cache(cfg, table, "t", progress=False).shape == (4, cfg.features.n_mels, 101)


def test_a_replaced_audio_file_gets_new_features(clips):
    """Issue 12: the key held path, start and end only, so a file replaced under the same name kept
    returning the old features. Now its size and mtime are in the key."""
    import os

    cfg, table = clips
    first = np.array(feature_cache(cfg, table, "replaced", progress=False))
    path = table["path"].iloc[0]
    louder = (0.9 * np.random.default_rng(5).standard_normal(2 * SR)).astype(np.float32).clip(-1, 1)
    sf.write(path, louder, SR, subtype="PCM_16")  # same name, same size, new content
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))  # coarse clocks: a clear tick
    second = np.array(feature_cache(cfg, table, "replaced", progress=False))
    assert not np.array_equal(first[0], second[0])
    assert np.array_equal(first[2], second[2])  # rows of the untouched file are the same values
    assert len(list((cfg.cache_dir / "features").glob("replaced-*.npy"))) == 2


def test_nan_audio_is_refused_naming_the_file_and_nothing_is_cached(clips):
    """Issue 12: NaN samples went through as all-NaN features (cached) and a silent 'no event'."""
    from sed_utils.core.errors import AudioError

    cfg, table = clips
    bad = np.zeros(2 * SR, dtype=np.float32)
    bad[SR + 7] = np.nan
    path = table["path"].iloc[2]
    sf.write(path, bad, SR, subtype="FLOAT", format="WAV")
    with pytest.raises(AudioError, match=r"clip1\.wav: sample 16007 \(1\.00 s\) is NaN or infinite"):
        feature_cache(cfg, table, "nan", progress=False)
    assert list((cfg.cache_dir / "features").glob("nan-*")) == []
