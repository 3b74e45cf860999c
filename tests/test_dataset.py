"""Augmentation functions, ChunkDataset / OnTheFlyDataset items, segments with features, and
build_datasets on a tiny ESC-50."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from test_chunking import LABELS, SR, make_desed, make_esc50, tiny_config

from sed_utils.config import AugmentConfig
from sed_utils.data import scenes
from sed_utils.data.test_sets import load_test_set
from sed_utils.dataset import (
    ChunkDataset,
    OnTheFlyDataset,
    background_features,
    build_datasets,
    scene_segments,
    segments_of_test_set,
    segments_with_features,
)
from sed_utils.features import augment
from sed_utils.features.logmel import feature_cache, mel_extractor, normalization_stats
from sed_utils.io.audio import read_audio
from sed_utils.labels.chunks import build_esc50_chunks, build_segments


def _spec(seed: int = 0, shape=(64, 101)) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-60, 0, size=shape).astype(np.float32)


# ------------------------------------------------------------------------------------------------
# augment
# ------------------------------------------------------------------------------------------------
def test_masks_zero_a_band():
    x = _spec() + 100.0  # no zeros anywhere before masking
    out = augment.freq_mask(x, 8, np.random.default_rng(0))
    rows = np.flatnonzero((out == 0).all(axis=1))
    assert 1 <= len(rows) <= 8 and np.all(np.diff(rows) == 1)  # one contiguous band of mel bins
    assert (out == 0).sum() == len(rows) * x.shape[1]  # nothing else touched
    assert (x != 0).all()  # input not modified in place
    out = augment.time_mask(x, 20, np.random.default_rng(0))
    cols = np.flatnonzero((out == 0).all(axis=0))
    assert 1 <= len(cols) <= 20 and (out == 0).sum() == len(cols) * x.shape[0]


def test_masks_fill_with_a_scalar_or_a_per_mel_array():
    x = _spec()
    out = augment.freq_mask(x, 8, np.random.default_rng(0), fill=-33.0)
    rows = np.flatnonzero((out == -33.0).all(axis=1))
    assert 1 <= len(rows) <= 8 and (out != x).sum() == len(rows) * x.shape[1]
    per_mel = np.linspace(-70, -10, x.shape[0], dtype=np.float32)[:, None]  # [n_mels, 1]
    out = augment.time_mask(x, 20, np.random.default_rng(0), fill=per_mel)
    cols = np.flatnonzero((out != x).any(axis=0))
    assert 1 <= len(cols) <= 20
    np.testing.assert_array_equal(out[:, cols], np.repeat(per_mel, len(cols), axis=1))  # each band its own
    out = augment.freq_mask(x, 8, np.random.default_rng(0), fill=per_mel)
    np.testing.assert_array_equal(out[rows], np.repeat(per_mel[rows], x.shape[1], axis=1))


def test_spec_augment_masks_with_fill_and_can_be_switched_off():
    x = _spec()
    on = AugmentConfig(specaugment=True, freq_mask=8, time_mask=20)
    out = augment.spec_augment(x, on, np.random.default_rng(1), fill=-41.25)
    filled = out == -41.25
    assert filled.all(axis=1).any() and filled.all(axis=0).any()  # one band and one stretch of frames
    np.testing.assert_array_equal(out[~filled], x[~filled])
    off = AugmentConfig(specaugment=False)
    np.testing.assert_array_equal(augment.spec_augment(x, off, np.random.default_rng(1), fill=-41.25), x)


def test_augment_examples_fill_masks_with_the_mean():
    x, partner = _spec(1), _spec(2)
    y, y2 = np.array([1, 0, 0, 0, 0]), np.array([0, 1, 0, 0, 0])
    pairs = augment.augment_examples(x, y, partner, y2, AugmentConfig(), mean=-27.0, seed=3,
                                     background_db=_spec(4))
    assert list(pairs)[:2] == ["frequency mask", "time mask"] and len(pairs) == 7
    for name in ("frequency mask", "time mask"):
        before, after = pairs[name]
        np.testing.assert_array_equal(before, x)
        assert set(np.unique(after[after != x])) == {np.float32(-27.0)}
    assert "mix, label [1, 0, 0, 0, 0] -> [1, 1, 0, 0, 0]" in pairs
    assert "background at 0 dB SNR" in pairs


def test_gain_shift_and_determinism():
    x = _spec()
    a = augment.gain(x, 6.0, np.random.default_rng(3))
    shift = np.unique(np.round(a - x, 4))
    assert len(shift) == 1 and abs(shift[0]) <= 6.0
    np.testing.assert_array_equal(a, augment.gain(x, 6.0, np.random.default_rng(3)))
    for fn in (
        lambda r: augment.time_shift(x, 0.2, r),
        lambda r: augment.add_noise(x, 10.0, r),
        lambda r: augment.freq_mask(x, 8, r),
    ):
        np.testing.assert_array_equal(fn(np.random.default_rng(5)), fn(np.random.default_rng(5)))


def test_time_shift_is_a_circular_roll():
    x = _spec()
    out = augment.time_shift(x, 0.2, np.random.default_rng(1))
    shifts = [k for k in range(-20, 21) if np.array_equal(np.roll(x, k, axis=-1), out)]
    assert len(shifts) == 1
    np.testing.assert_array_equal(augment.time_shift(x, 0.0, np.random.default_rng(1)), x)


def test_mix_power_sum_and_label_union():
    x = _spec()
    m, y = augment.mix(x, np.array([1, 0, 0, 0, 0]), x, np.array([0, 0, 1, 0, 0]))
    np.testing.assert_allclose(m, x + 10 * np.log10(2), atol=1e-4)  # two equal sounds: +3.01 dB
    np.testing.assert_array_equal(y, [1, 0, 1, 0, 0])
    quiet = x - 60.0  # a much quieter partner barely changes the loud one
    m, y = augment.mix(x, np.zeros(5), quiet, np.array([0, 1, 0, 0, 0]))
    np.testing.assert_allclose(m, x, atol=0.01)
    np.testing.assert_array_equal(y, [0, 1, 0, 0, 0])


def test_noise_adds_power_at_snr():
    x = np.full((64, 101), -20.0, dtype=np.float32)
    out = augment.add_noise(x, 0.0, np.random.default_rng(0))  # 0 dB SNR: power doubles on average
    ratio = np.mean(10 ** (out / 10)) / np.mean(10 ** (x / 10))
    assert ratio == pytest.approx(2.0, rel=0.02)
    assert (out >= x).all()
    w = np.sin(np.linspace(0, 200, 16000)).astype(np.float32)
    noisy = augment.noise_waveform(w, 10.0, np.random.default_rng(0))
    snr = 10 * np.log10(np.mean(w**2) / np.mean((noisy - w) ** 2))
    assert snr == pytest.approx(10.0, abs=0.2)


@pytest.mark.parametrize("snr", [0.0, 10.0, 20.0])
def test_background_is_laid_under_at_the_snr(snr):
    x = _spec(1).astype(np.float64)  # float64 so the subtraction below is exact enough
    bg = _spec(2) - 25.0  # level of the background must not matter: it is rescaled
    out = augment.add_background(x, bg, snr)
    p, b = 10 ** (x.astype(np.float64) / 10), 10 ** (bg.astype(np.float64) / 10)
    added = 10 ** (out.astype(np.float64) / 10) - p  # the background's power, after rescaling
    assert 10 * np.log10(p.mean() / added.mean()) == pytest.approx(snr, abs=0.01)
    np.testing.assert_allclose(added / added.mean(), b / b.mean(), rtol=1e-3)  # same shape, one gain
    assert (out >= x - 1e-4).all() and out.dtype == x.dtype
    with pytest.raises(ValueError, match="differ in shape"):
        augment.add_background(x, bg[:, :50], snr)


def test_background_augmentation_keeps_the_label_and_can_be_switched_off():
    x, y = _spec(1), np.array([0, 1, 0, 0, 0], dtype=np.float32)
    bg = _spec(2)
    calls = []

    def draw() -> np.ndarray:
        calls.append(1)
        return bg

    plain = dict(specaugment=False, gain_db=0.0, noise_prob=0.0, time_shift=0.0, mix_prob=0.0)
    on = AugmentConfig(**plain, background_prob=1.0, background_snr_db=5.0)
    out, label = augment.augment_db(x, y, on, np.random.default_rng(0), None, draw)
    np.testing.assert_array_equal(label, y)  # a background is never a target: the label stays
    p_x, p_added = np.mean(10 ** (x / 10)), np.mean(10 ** (out / 10) - 10 ** (x / 10))
    assert 5.0 - 0.01 <= 10 * np.log10(p_x / p_added) <= 25.0 + 0.01  # SNR in [snr, snr + 20]
    off = AugmentConfig(**plain, background_prob=0.0)
    out, _ = augment.augment_db(x, y, off, np.random.default_rng(0), None, draw)
    np.testing.assert_array_equal(out, x)
    assert len(calls) == 1


# ------------------------------------------------------------------------------------------------
# datasets
# ------------------------------------------------------------------------------------------------
def test_chunk_dataset_shapes_and_db_items():
    feats = np.stack([_spec(i) for i in range(6)]).astype(np.float16)
    labels = np.eye(6, 5, dtype=np.float32)
    ds = ChunkDataset(feats, labels)
    x, y = ds[2]
    assert x.shape == (1, 64, 101) and x.dtype == torch.float32 and y.shape == (5,)
    # items are the cached dB values, NOT normalised: the model's Normaliser does that
    np.testing.assert_array_equal(x[0].numpy(), feats[2].astype(np.float32))
    np.testing.assert_array_equal(y.numpy(), labels[2])
    with pytest.raises(ValueError):
        ChunkDataset(feats, labels[:3])


def test_chunk_dataset_fills_the_masks_with_fill_db():
    # float16 values in [-60, 0]: none equals -30.123
    feats = np.stack([_spec(i) for i in range(4)]).astype(np.float16)
    labels = np.eye(4, 5, dtype=np.float32)
    masks_only = AugmentConfig(specaugment=True, freq_mask=8, time_mask=20, gain_db=0.0, noise_prob=0.0,
                               time_shift=0.0, mix_prob=0.0, background_prob=0.0)
    ds = ChunkDataset(feats, labels, augment=masks_only, seed=0, fill_db=-30.123)
    x = ds[1][0][0].numpy()
    filled = x == np.float32(-30.123)
    rows, cols = np.flatnonzero(filled.all(axis=1)), np.flatnonzero(filled.all(axis=0))
    assert 1 <= len(rows) <= 8 and 1 <= len(cols) <= 20  # one band and one stretch of frames
    untouched = ~filled
    np.testing.assert_array_equal(x[untouched], feats[1].astype(np.float32)[untouched])
    assert filled.sum() == len(rows) * x.shape[1] + len(cols) * x.shape[0] - len(rows) * len(cols)
    # the default fill is 0 dB
    zero = ChunkDataset(feats, labels, augment=masks_only, seed=0)[1][0][0].numpy()
    np.testing.assert_array_equal(zero == 0.0, filled)


def test_chunk_dataset_augmentation_seeded_and_changes_items():
    feats = np.stack([_spec(i) for i in range(6)]).astype(np.float16)
    labels = np.eye(6, 5, dtype=np.float32)
    aug = AugmentConfig(mix_prob=1.0, noise_prob=0.0)
    first = ChunkDataset(feats, labels, augment=aug, seed=4, fill_db=-30.0)
    a = [first[i] for i in range(2)]
    ds = ChunkDataset(feats, labels, augment=aug, seed=4, fill_db=-30.0)
    b = [ds[i] for i in range(2)]
    c = ds[0]  # the next draw differs: each epoch sees a new variant
    for (xa, ya), (xb, yb) in zip(a, b, strict=True):
        torch.testing.assert_close(xa, xb)
        torch.testing.assert_close(ya, yb)
    assert not torch.equal(c[0], b[0][0])
    assert (c[1] >= torch.from_numpy(labels[0])).all()  # mixing only adds labels (union)
    assert b[0][1].sum() >= 1


def test_build_datasets_and_on_the_fly(tmp_path, monkeypatch):
    monkeypatch.delenv("SED_DATA_ROOT", raising=False)
    make_esc50(tmp_path, folds=(1, 2, 5))
    cfg = tiny_config(tmp_path, "folds.train=[1, 2]", "folds.valid=[5]", "train.train_scenes=0",
                      "eval.valid_scenes=3")
    bundle = build_datasets(cfg, progress=False)
    assert set(bundle.train_table.fold) == {1, 2} and set(bundle.valid_table.fold) == {5}
    assert set(bundle.train_table.source) == {"chunk"}
    # validation scenes (train.select_on: scenes): 3 scenes x 10 segments, log-mels in dB like training
    x_scenes, y_scenes = bundle.valid_scenes
    assert x_scenes.shape == (30, cfg.mel.n_mels, 101) and x_scenes.dtype == np.float32
    assert y_scenes.shape == (30, 5) and y_scenes.sum() > 0
    scene_table, scene_feats = scene_segments(cfg, "valid", progress=False)
    np.testing.assert_array_equal(x_scenes, np.asarray(scene_feats, dtype=np.float32))
    np.testing.assert_array_equal(y_scenes, scene_table[LABELS].to_numpy(np.float32))
    # on the training scale: the Detector's normaliser maps them near 0
    assert abs(float(((x_scenes - bundle.mean) / bundle.std).mean())) < 3.0
    assert bundle.labels == LABELS and bundle.valid.augment is None and bundle.train.augment is not None
    assert len(bundle.train) == len(bundle.train_table) and len(bundle.valid) == len(bundle.valid_table)
    x, y = bundle.valid[0]
    assert x.shape == (1, cfg.mel.n_mels, 101)
    np.testing.assert_array_equal(y.numpy(), bundle.valid_table[LABELS].to_numpy(np.float32)[0])
    mean, std = normalization_stats(bundle.train.features)
    assert (bundle.mean, bundle.std) == pytest.approx((mean, std))  # from the train rows only
    assert bundle.train.fill_db == bundle.mean  # SpecAugment masks look "average" after normalising
    np.testing.assert_array_equal(x[0].numpy(), np.asarray(bundle.valid.features[0], dtype=np.float32))
    valid_mean, _ = normalization_stats(bundle.valid.features)
    assert valid_mean != pytest.approx(mean)

    fly = OnTheFlyDataset(cfg, bundle.valid_table)
    xf, yf = fly[0]
    torch.testing.assert_close(xf, x, atol=0.06, rtol=0)  # both in dB; the cache is float16
    torch.testing.assert_close(yf, y)

    # backgrounds: the ambient categories of the fixture (rain, engine), training folds only
    table = build_esc50_chunks(cfg, progress=False)
    ambient = table[table.category.isin(["rain", "engine"]) & table.fold.isin([1, 2]) & ~table.silent]
    assert bundle.backgrounds is not None and len(bundle.backgrounds) == len(ambient) > 0
    assert bundle.train.backgrounds is bundle.backgrounds and bundle.valid.backgrounds is None
    assert background_features(tiny_config(tmp_path, "folds.train=[1, 2]", "augment.background_prob=0"),
                               table, progress=False) is None
    with pytest.warns(UserWarning, match="no ambient chunk"):
        no_rain = table[~table.category.isin(["rain", "engine"])]
        assert background_features(cfg, no_rain, progress=False) is None

    small = build_datasets(
        tiny_config(tmp_path, "folds.train=[1, 2]", "train.max_train_chunks=5", "train.train_scenes=0",
                    "train.select_on=chunks"), progress=False
    )
    assert len(small.train) == 5 and len(small.valid) == len(bundle.valid)
    assert set(small.train_table.filename) <= set(bundle.train_table.filename)
    assert small.valid_scenes is None  # only built when they pick the epoch

    # training scenes: mixed from the training folds only, cut into labelled 1 s segments
    with_scenes = tiny_config(tmp_path, "folds.train=[1, 2]", "train.train_scenes=2", "eval.valid_scenes=3")
    mixed = build_datasets(with_scenes, progress=False)
    scene_rows = mixed.train_table[mixed.train_table.source == "scene"]
    assert len(scene_rows) == 20 and len(mixed.train) == len(bundle.train) + 20
    train_scenes_dir = Path(scenes.scene_set(with_scenes, "train", progress=False).audio_dir).parent
    sources = scenes.load_scene_sources(train_scenes_dir)
    assert set(sources["fold"]) <= {1, 2}
    np.testing.assert_array_equal(mixed.train.labels[-20:], scene_rows[LABELS].to_numpy(np.float32))


def test_segments_with_features_rows_match_and_cache_by_name(tmp_path, monkeypatch):
    monkeypatch.delenv("SED_DATA_ROOT", raising=False)
    make_desed(tmp_path)
    cfg = tiny_config(tmp_path)
    ds = load_test_set(cfg)
    table, feats = segments_with_features(cfg, ds, "mine", progress=False)
    pd.testing.assert_frame_equal(table, build_segments(cfg, ds))
    assert feats.shape == (30, cfg.mel.n_mels, 101) and len(table) == len(feats)
    # row i of the features is the log-mel of row i of the table (dB, float16 cache)
    row = table.iloc[13]
    audio = read_audio(Path(row["path"]), SR)
    a = int(round(row["start"] * SR))
    with torch.inference_mode():
        want = mel_extractor(cfg)(torch.from_numpy(audio[a:a + SR])).numpy()
    np.testing.assert_allclose(np.asarray(feats[13], dtype=np.float32), want, atol=0.06)
    np.testing.assert_array_equal(feats, feature_cache(cfg, table, "mine", progress=False, cache_audio=False))
    features_dir = cfg.cache_dir / "features"
    assert [p.name.split("-")[0] for p in features_dir.glob("*.npy")] == ["mine"]
    assert not (cfg.cache_dir / "resampled").exists()  # read once, not kept resampled
    segments_with_features(cfg, ds, "other", progress=False)  # another name: a file of its own
    assert len(list(features_dir.glob("*.npy"))) == 2
    # the test set (DESED here) goes through the same step
    ds2, table2, feats2 = segments_of_test_set(cfg, progress=False)
    assert ds2.files == ds.files
    pd.testing.assert_frame_equal(table2, table)
    np.testing.assert_array_equal(feats2, feats)
    assert len(list(features_dir.glob(f"{cfg.test_set}-*.npy"))) == 1
