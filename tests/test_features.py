"""Log-mel extractor shapes, the feature cache (miss, hit without recomputation, invalidation), stats."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch
from test_chunking import SR, tiny_config

from sed_utils import features
from sed_utils.features import feature_cache, mel_extractor, normalization_stats


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
    assert both.shape == (2, cfg.mel.n_mels, 101)  # 1 s, hop 160, center=True -> 101 frames
    torch.testing.assert_close(both[1], alone)  # each chunk clamped on its own maximum
    assert float(alone.max() - alone.min()) <= cfg.mel.top_db + 1e-3


def test_feature_cache_miss_hit_and_invalidation(clips, monkeypatch):
    cfg, table = clips
    feats = feature_cache(cfg, table, "t", progress=False)
    assert feats.shape == (4, cfg.mel.n_mels, 101) and feats.dtype == np.float16
    # row 2 computed from clip1 [1, 2) s must equal the extractor run on that audio directly
    audio, _ = sf.read(table.path[2], dtype="float32")
    with torch.inference_mode():
        ref = mel_extractor(cfg)(torch.from_numpy(audio[SR : 2 * SR])).numpy()
    np.testing.assert_allclose(feats[2].astype(np.float32), ref, atol=0.06)
    np.testing.assert_array_equal(feats[3], feature_cache(cfg, table.iloc[[3]], "t", progress=False)[0])
    files = list((cfg.cache_dir / "features").glob("t-*.npy"))
    assert len(files) == 2 and not list((cfg.cache_dir / "features").glob("*.tmp"))

    calls = []
    real = features.mel_extractor
    monkeypatch.setattr(features, "mel_extractor", lambda c: calls.append(1) or real(c))
    again = feature_cache(cfg, table, "t", progress=False)  # hit: nothing recomputed
    assert calls == [] and isinstance(again, np.memmap)
    np.testing.assert_array_equal(again, feats)

    smaller = tiny_config(cfg.data_root, "mel.n_mels=32")  # changed parameter -> new key, new file
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
