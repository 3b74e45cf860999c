"""Augmentation functions, ChunkDataset / OnTheFlyDataset items, and build_datasets on a tiny ESC-50."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from test_chunking import LABELS, make_esc50, tiny_config

from sed_utils import augment, scenes
from sed_utils.chunking import build_esc50_chunks
from sed_utils.config import AugmentConfig
from sed_utils.dataset import ChunkDataset, OnTheFlyDataset, background_features, build_datasets
from sed_utils.features import normalization_stats


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
def test_chunk_dataset_shapes_and_normalisation():
    feats = np.stack([_spec(i) for i in range(6)]).astype(np.float16)
    labels = np.eye(6, 5, dtype=np.float32)
    ds = ChunkDataset(feats, labels, mean=-30.0, std=10.0)
    x, y = ds[2]
    assert x.shape == (1, 64, 101) and x.dtype == torch.float32 and y.shape == (5,)
    np.testing.assert_allclose(x[0].numpy(), (feats[2].astype(np.float32) + 30.0) / 10.0, rtol=1e-6)
    np.testing.assert_array_equal(y.numpy(), labels[2])
    with pytest.raises(ValueError):
        ChunkDataset(feats, labels[:3], 0.0, 1.0)


def test_chunk_dataset_augmentation_seeded_and_changes_items():
    feats = np.stack([_spec(i) for i in range(6)]).astype(np.float16)
    labels = np.eye(6, 5, dtype=np.float32)
    aug = AugmentConfig(mix_prob=1.0, noise_prob=0.0)
    first = ChunkDataset(feats, labels, -30.0, 10.0, augment=aug, seed=4)
    a = [first[i] for i in range(2)]
    ds = ChunkDataset(feats, labels, -30.0, 10.0, augment=aug, seed=4)
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
    # validation scenes (train.select_on: scenes): 3 scenes x 10 segments, normalised like training
    x_scenes, y_scenes = bundle.valid_scenes
    assert x_scenes.shape == (30, 1, cfg.mel.n_mels, 101) and y_scenes.shape == (30, 5)
    assert abs(float(x_scenes.mean())) < 3.0 and y_scenes.sum() > 0
    assert bundle.labels == LABELS and bundle.valid.augment is None and bundle.train.augment is not None
    assert len(bundle.train) == len(bundle.train_table) and len(bundle.valid) == len(bundle.valid_table)
    x, y = bundle.valid[0]
    assert x.shape == (1, cfg.mel.n_mels, 101)
    np.testing.assert_array_equal(y.numpy(), bundle.valid_table[LABELS].to_numpy(np.float32)[0])
    mean, std = normalization_stats(bundle.train.features)
    assert (bundle.mean, bundle.std) == pytest.approx((mean, std))  # from the train rows only
    valid_mean, _ = normalization_stats(bundle.valid.features)
    assert valid_mean != pytest.approx(mean)

    fly = OnTheFlyDataset(cfg, bundle.valid_table, bundle.mean, bundle.std)
    xf, yf = fly[0]
    torch.testing.assert_close(xf, x, atol=0.06 / bundle.std, rtol=0)  # cache is float16
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
    train_scenes_dir = Path(scenes.training_scenes(with_scenes, progress=False).audio_dir).parent
    sources = scenes.load_scene_sources(train_scenes_dir)
    assert set(sources["fold"]) <= {1, 2}
    np.testing.assert_array_equal(mixed.train.labels[-20:], scene_rows[LABELS].to_numpy(np.float32))
