"""Augmentation functions and ``augment_example``, the one training dataset (``ExampleDataset``) for
chunk and scene examples, ``OnTheFlyDataset``, and the data recipes (``chunk_data``, ``scene_data``,
``training_data``) on the generated demo data."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from test_chunking import SR, make_desed, tiny_config

from sed_utils.config import AugmentConfig, load_config
from sed_utils.data import scenes
from sed_utils.data.esc50 import ambient_categories, esc50_root, load_esc50_meta, negative_clips
from sed_utils.data.registry import prepare_datasets
from sed_utils.data.test_sets import load_test_set
from sed_utils.features import augment
from sed_utils.features.logmel import active_frames, feature_cache, mel_extractor, normalization_stats
from sed_utils.io.audio import read_audio
from sed_utils.labels.chunks import build_esc50_chunks, build_segments
from sed_utils.labels.grid import TimeGrid
from sed_utils.models import kinds
from sed_utils.models.networks import ResNetTagger
from sed_utils.train import (
    ExampleDataset,
    Examples,
    OnTheFlyDataset,
    background_features,
    chunk_data,
    label_matrix,
    negative_clip_features,
    scene_data,
    segments_with_features,
    training_data,
)

LABELS = ["Dog", "Cat", "Alarm_bell_ringing", "Running_water", "Vacuum_cleaner"]


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
# augment_example
# ------------------------------------------------------------------------------------------------
# every augmentation that exists, at full strength, always drawn
EVERYTHING = AugmentConfig(specaugment=True, freq_mask=8, time_mask=20, gain_db=6.0, noise_prob=1.0,
                           noise_snr_db=0.0, time_shift=0.5, mix_prob=1.0, background_prob=1.0)
QUIET = dict(specaugment=False, gain_db=0.0, noise_prob=0.0, time_shift=0.0, background_prob=0.0)


def _frames(n_frames: int, *spans: tuple[int, int, int]) -> np.ndarray:
    """Frame targets ``[n_frames, 5]`` with class ``c`` on frames ``a:b`` for each ``(c, a, b)``."""
    out = np.zeros((n_frames, 5), dtype=np.float32)
    for c, a, b in spans:
        out[a:b, c] = 1.0
    return out


def test_chunk_examples_get_augment_db_then_spec_augment_with_the_same_draws():
    x, y = _spec(1), np.array([1, 0, 0, 0, 0], dtype=np.float32)
    partner, partner_y = _spec(2), np.array([0, 0, 1, 0, 0], dtype=np.float32)
    bg = _spec(3)
    out, targets = augment.augment_example(x, {"clip": y}, EVERYTHING, np.random.default_rng(9),
                                           draw_partner=lambda: (partner, {"clip": partner_y}),
                                           draw_background=lambda: bg, fill=-33.0)
    rng = np.random.default_rng(9)
    want, want_y = augment.augment_db(x, y, EVERYTHING, rng, lambda: (partner, partner_y), lambda: bg)
    want = augment.spec_augment(want, EVERYTHING, rng, fill=-33.0)
    np.testing.assert_array_equal(out, want)
    assert set(targets) == {"clip"}  # no frame targets appear
    np.testing.assert_array_equal(targets["clip"], want_y)
    np.testing.assert_array_equal(want_y, [1, 0, 1, 0, 0])
    # and it did augment: a mask of -33 dB is in there, the rest moved
    assert (out == np.float32(-33.0)).all(axis=1).any() and (out == np.float32(-33.0)).all(axis=0).any()


def test_scene_examples_keep_every_labelled_frame_where_it_is():
    """No time mask, no shift, no noise, no background for frame targets: only a gain (one value for the
    whole item) and a frequency mask of 1..freq_mask rows, whatever the config asks for."""
    x = _spec(4, shape=(64, 200))
    frames = _frames(25, (0, 3, 9), (3, 12, 25))
    fill = np.float32(-123.5)
    no_mix = dataclasses.replace(EVERYTHING, mix_prob=0.0)
    widths = []
    for seed in range(40):
        out, t = augment.augment_example(x, {"clip": frames.max(axis=0), "frames": frames}, no_mix,
                                         np.random.default_rng(seed),
                                         draw_background=lambda: _spec(5, shape=(64, 200)), fill=fill)
        masked = np.flatnonzero((out == fill).all(axis=1))
        assert 1 <= len(masked) <= 8 and np.all(np.diff(masked) == 1), seed  # one band, width >= 1
        widths.append(len(masked))
        kept = np.setdiff1d(np.arange(64), masked)
        shift = np.unique(np.round(out[kept] - x[kept], 3))
        assert len(shift) == 1 and abs(shift[0]) <= 6.0, seed  # the same gain everywhere else
        np.testing.assert_array_equal(t["frames"], frames)
        np.testing.assert_array_equal(t["clip"], [1, 0, 0, 1, 0])
    assert len(set(widths)) > 3  # the width is drawn


def test_the_frequency_mask_of_scene_examples_is_never_empty():
    x = _spec(6)
    one_row = AugmentConfig(**{**QUIET, "specaugment": True}, freq_mask=1, mix_prob=0.0)
    frames = _frames(13, (1, 0, 13))
    for seed in range(30):
        out, _ = augment.augment_example(x, {"clip": frames.max(axis=0), "frames": frames}, one_row,
                                         np.random.default_rng(seed), fill=99.0)
        assert (out == 99.0).all(axis=1).sum() == 1 and (out != x).sum() == x.shape[1]
    off = dataclasses.replace(one_row, specaugment=False)
    out, _ = augment.augment_example(x, {"clip": frames.max(axis=0), "frames": frames}, off,
                                     np.random.default_rng(0), fill=99.0)
    np.testing.assert_array_equal(out, x)


def test_mixing_scene_examples_ors_their_frames_and_the_clip_is_the_union():
    x1, x2 = np.full((64, 200), -30.0, np.float32), np.full((64, 200), -30.0, np.float32)
    f1, f2 = _frames(25, (0, 0, 5)), _frames(25, (2, 20, 25), (0, 10, 12))
    mixing = AugmentConfig(**QUIET, mix_prob=1.0)
    lifts = []
    for seed in range(30):
        out, t = augment.augment_example(x1, {"clip": f1.max(axis=0), "frames": f1}, mixing,
                                         np.random.default_rng(seed),
                                         draw_partner=lambda: (x2, {"clip": f2.max(axis=0), "frames": f2}))
        np.testing.assert_array_equal(t["frames"], np.maximum(f1, f2))
        np.testing.assert_array_equal(t["clip"], [1, 0, 1, 0, 0])  # from the OR-ed frames
        lift = np.unique(np.round(out - x1, 4))
        assert len(lift) == 1  # one level for the whole partner
        lifts.append(float(lift[0]))
    # the partner is 0..MIX_PARTNER_DB quieter: two equal sounds add 3.01 dB, one 6 dB quieter 0.97 dB
    low = 10 * np.log10(1 + 10 ** (-augment.MIX_PARTNER_DB / 10))
    assert augment.MIX_PARTNER_DB == 6.0
    high = 10 * np.log10(2)
    assert low - 1e-3 <= min(lifts) < low + 0.5 and high - 0.5 < max(lifts) <= high + 1e-3
    np.testing.assert_array_equal(x1, -30.0)  # inputs untouched


@pytest.mark.parametrize("level", [300.0, 4000.0])
def test_mixing_loud_examples_does_not_overflow(level):
    x = np.full((8, 16), level, dtype=np.float32)
    frames = _frames(2, (0, 0, 2))
    targets = {"clip": frames.max(axis=0), "frames": frames}
    with np.errstate(all="raise"):  # an overflow in 10 ** (x / 10) would raise here
        out, _ = augment.augment_example(x, targets, AugmentConfig(**QUIET, mix_prob=1.0),
                                         np.random.default_rng(0), draw_partner=lambda: (x, targets))
        mixed, _ = augment.mix(x, np.zeros(5), x, np.zeros(5))
    assert np.isfinite(out).all() and level + 0.9 < out.min() and out.max() < level + 3.1
    np.testing.assert_allclose(mixed, level + 10 * np.log10(2), rtol=0, atol=level * 1e-6)


# ------------------------------------------------------------------------------------------------
# ExampleDataset
# ------------------------------------------------------------------------------------------------
def _chunk_examples(n: int = 6) -> Examples:
    feats = np.stack([_spec(i) for i in range(n)]).astype(np.float16)  # like the float16 cache
    return Examples(feats, np.eye(n, 5, dtype=np.float32))


def _scene_examples(n: int = 4, frames: int = 200) -> Examples:
    feats = np.stack([_spec(10 + i, shape=(64, frames)) for i in range(n)])
    targets = np.stack([_frames(25, (i % 5, 2 * i, 2 * i + 6)) for i in range(n)])
    return Examples(feats, targets.max(axis=1), targets)


def test_chunk_example_items_are_db_features_and_a_clip_target():
    ex = _chunk_examples()
    ds = ExampleDataset(ex)
    assert len(ds) == 6 and ds.augment is None
    x, t = ds[2]
    assert x.shape == (64, 101) and x.dtype == torch.float32
    assert set(t) == {"clip"} and t["clip"].shape == (5,)
    # items are the cached dB values, NOT normalised: the model's Normaliser does that
    np.testing.assert_array_equal(x.numpy(), ex.features[2].astype(np.float32))
    np.testing.assert_array_equal(t["clip"].numpy(), ex.clip[2])
    with pytest.raises(ValueError, match="6 inputs but 3 clip targets"):
        Examples(ex.features, ex.clip[:3])


def test_scene_example_items_carry_frame_and_clip_targets():
    ex = _scene_examples()
    x, t = ExampleDataset(ex)[3]
    assert x.shape == (64, 200) and set(t) == {"clip", "frames"}
    assert t["frames"].shape == (25, 5) and t["clip"].shape == (5,) and t["frames"].dtype == torch.float32
    np.testing.assert_array_equal(t["frames"].numpy(), ex.frames[3])
    np.testing.assert_array_equal(t["clip"].numpy(), ex.clip[3])
    with pytest.raises(ValueError, match="2 frame targets"):
        Examples(ex.features, ex.clip, ex.frames[:2])


def test_masks_of_chunk_examples_are_filled_with_fill_db():
    ex = _chunk_examples(4)  # float16 values in [-60, 0]: none equals -30.123
    masks_only = AugmentConfig(specaugment=True, freq_mask=8, time_mask=20, gain_db=0.0, noise_prob=0.0,
                               time_shift=0.0, mix_prob=0.0, background_prob=0.0)
    x = ExampleDataset(ex, augment=masks_only, seed=0, fill_db=-30.123)[1][0].numpy()
    filled = x == np.float32(-30.123)
    rows, cols = np.flatnonzero(filled.all(axis=1)), np.flatnonzero(filled.all(axis=0))
    assert 1 <= len(rows) <= 8 and 1 <= len(cols) <= 20  # one band and one stretch of frames
    np.testing.assert_array_equal(x[~filled], ex.features[1].astype(np.float32)[~filled])
    assert filled.sum() == len(rows) * x.shape[1] + len(cols) * x.shape[0] - len(rows) * len(cols)
    zero = ExampleDataset(ex, augment=masks_only, seed=0)[1][0].numpy()  # the default fill is 0 dB
    np.testing.assert_array_equal(zero == 0.0, filled)


def test_a_dataset_item_is_augment_example_with_the_dataset_s_draws():
    """Chunk items: augment_example (augment_db then spec_augment) with partners drawn from the examples
    and backgrounds from ``backgrounds``, all from the one stream seeded with ``seed``."""
    ex, bgs = _chunk_examples(), np.stack([_spec(20 + i) for i in range(3)])
    ds = ExampleDataset(ex, augment=EVERYTHING, seed=4, fill_db=-30.0, backgrounds=bgs)
    got = [ds[i] for i in (0, 3)]
    rng = np.random.default_rng([4])

    def example(j: int):
        return ex.features[j].astype(np.float32), ex.targets(j)

    for (x, t), i in zip(got, (0, 3), strict=True):
        want, want_t = augment.augment_example(*example(i), EVERYTHING, rng,
                                               draw_partner=lambda: example(int(rng.integers(6))),
                                               draw_background=lambda: bgs[int(rng.integers(3))], fill=-30.0)
        np.testing.assert_array_equal(x.numpy(), want)
        np.testing.assert_array_equal(t["clip"].numpy(), want_t["clip"])
        assert not np.array_equal(x.numpy(), ex.features[i].astype(np.float32))


def test_seeded_augmentation_repeats_after_reseed_and_draws_anew_otherwise():
    for ex in (_chunk_examples(), _scene_examples()):
        aug = AugmentConfig(mix_prob=1.0, noise_prob=0.0)
        ds = ExampleDataset(ex, augment=aug, seed=4, fill_db=-30.0)
        first = [ds[i] for i in range(3)]
        nxt = ds[0]  # the next draw differs: each epoch sees a new variant
        assert not torch.equal(nxt[0], first[0][0])
        ds.reseed()
        again = [ds[i] for i in range(3)]
        other = ExampleDataset(ex, augment=aug, seed=4, fill_db=-30.0)
        same_seed = [other[i] for i in range(3)]
        for (xa, ta), (xb, tb), (xc, tc) in zip(first, again, same_seed, strict=True):
            torch.testing.assert_close(xa, xb, rtol=0, atol=0)
            torch.testing.assert_close(xa, xc, rtol=0, atol=0)
            for name in ta:
                torch.testing.assert_close(ta[name], tb[name], rtol=0, atol=0)
                torch.testing.assert_close(ta[name], tc[name], rtol=0, atol=0)
        assert not torch.equal(ExampleDataset(ex, augment=aug, seed=5, fill_db=-30.0)[0][0], first[0][0])
        assert (first[0][1]["clip"] >= torch.from_numpy(ex.clip[0])).all()  # mixing only adds labels


def test_the_random_stream_state_round_trips():
    ex = _scene_examples()
    aug = AugmentConfig(mix_prob=0.5)
    ds = ExampleDataset(ex, augment=aug, seed=2)
    assert ds.rng_state() is None  # nothing drawn yet
    ds[0]
    state = ds.rng_state()
    after = [ds[i][0] for i in range(4)]
    ds.set_rng_state(state)
    assert [torch.equal(a, ds[i][0]) for i, a in enumerate(after)] == [True] * 4
    fresh = ExampleDataset(ex, augment=aug, seed=2)  # what a resumed training run does with a new dataset
    fresh.set_rng_state(state)
    assert [torch.equal(a, fresh[i][0]) for i, a in enumerate(after)] == [True] * 4
    fresh.set_rng_state(None)  # None: from the start, as reseed()
    assert torch.equal(fresh[0][0], ExampleDataset(ex, augment=aug, seed=2)[0][0])


def test_negative_items_are_two_negatives_back_to_back_with_zero_targets():
    ex = _scene_examples(n=3, frames=50)
    negatives = np.stack([_spec(30 + i, shape=(64, 20)) - 10.0 * i for i in range(4)])  # 2 x 20 < 50 frames
    ds = ExampleDataset(ex, negatives=negatives, negative_items=5, seed=1)
    assert len(ds) == 3 + 5
    np.testing.assert_array_equal(ds[0][0].numpy(), ex.features[0])  # an example is untouched
    for i in range(3, 8):
        x, t = ds[i]
        assert x.shape == (64, 50) and set(t) == {"clip", "frames"}
        assert t["frames"].shape == (25, 5) and t["clip"].shape == (5,)
        assert float(t["frames"].sum()) == 0.0 and float(t["clip"].sum()) == 0.0
        x = x.numpy()
        first = [k for k in range(4) if np.array_equal(x[:, :20], negatives[k])]
        second = [k for k in range(4) if np.array_equal(x[:, 20:40], negatives[k])]
        assert first and second
        floor = min(negatives[first[0]].min(), negatives[second[0]].min())
        np.testing.assert_array_equal(x[:, 40:], floor)  # padded with the pair's floor
    longer = ExampleDataset(ex, negatives=np.stack([_spec(40, shape=(64, 30))] * 2), negative_items=1)
    np.testing.assert_array_equal(longer[3][0].numpy()[:, 30:], _spec(40, shape=(64, 30))[:, :20])  # cut
    chunk = ExampleDataset(_chunk_examples(), negatives=np.stack([_spec(41, shape=(64, 60))]),
                           negative_items=2)
    x, t = chunk[6]
    assert x.shape == (64, 101) and set(t) == {"clip"} and float(t["clip"].sum()) == 0.0
    with pytest.raises(ValueError, match="needs negative clips"):
        ExampleDataset(ex, negatives=None, negative_items=3)


@pytest.mark.parametrize("scene", [True, False], ids=["scene examples", "chunk examples"])
def test_the_partner_of_a_mix_is_never_a_negative_item(scene):
    # examples around -45 dB, negatives at +100 dB: a negative partner would lift an example to ~+100 dB
    ex = _scene_examples(n=2, frames=101) if scene else _chunk_examples(2)
    ex = dataclasses.replace(ex, features=np.asarray(ex.features, np.float32) - 15.0)
    negatives = np.full((3, 64, 60), 100.0, dtype=np.float32)
    ds = ExampleDataset(ex, augment=AugmentConfig(**QUIET, mix_prob=1.0), negatives=negatives,
                        negative_items=30, seed=3)
    for _epoch in range(3):
        for i in range(2):
            x, t = ds[i]
            assert float(x.max()) < 0.0
        for i in range(2, 32):  # the negative items are mixed too, with an example as the partner
            x, t = ds[i]
            assert float(x.min()) > 90.0 and float(t["clip"].sum()) >= 1.0


# ------------------------------------------------------------------------------------------------
# the data recipes on the generated demo data
# ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def demo_cfg(tmp_path_factory):
    """The demo profile's synthetic ESC-50 and DESED, generated as notebook 01 does, few scenes."""
    root = tmp_path_factory.mktemp("demo")
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("SED_DATA_ROOT", raising=False)
        mp.delenv("SED_MIRROR", raising=False)
        cfg = load_config("demo", [f"data_root={root / 'data'}", f"runs_root={root / 'runs'}",
                                   "scenes.valid=3", "models.chunk.train_scenes=2",
                                   "models.frame.train_scenes=3", "models.frame.negative_clips=2"])
        prepare_datasets(cfg, progress=False)
    return cfg


@pytest.fixture(scope="module")
def chunk_recipe(demo_cfg):
    return training_data(demo_cfg, "chunk", progress=False)


@pytest.fixture(scope="module")
def scene_recipe(demo_cfg):
    return training_data(demo_cfg, "frame", progress=False)


def test_chunk_recipe_splits_by_fold_and_adds_training_scene_segments(demo_cfg, chunk_recipe):
    cfg, d = demo_cfg, chunk_recipe
    assert d.kind == "chunk" and d.window_seconds == cfg.chunking.chunk_seconds
    assert set(d.valid) == {"chunks", "scenes"}
    table = d.train.examples.table
    chunks, scene_rows = table[table.source == "chunk"], table[table.source == "scene"]
    assert set(table.source) == {"chunk", "scene"} and len(scene_rows) == 2 * 10  # 2 scenes x 10 segments
    assert set(chunks.fold) <= set(cfg.train_folds)
    assert set(d.valid["chunks"].table.fold) == set(cfg.valid_folds)
    np.testing.assert_array_equal(d.train.examples.clip, label_matrix(table, LABELS))
    # the training scenes are mixed from the training folds only
    train_scenes = scenes.scene_set(cfg, "train", n_scenes=2, progress=False)
    assert set(scenes.load_scene_sources(Path(train_scenes.audio_dir).parent)["fold"]) <= set(cfg.train_folds)
    # validation scenes: 3 scenes x 10 segments, log-mels in dB like training, from the feature cache
    valid_table, valid_feats = segments_with_features(cfg, scenes.scene_set(cfg, "valid", progress=False),
                                                      "valid-scenes", progress=False)
    v = d.valid["scenes"]
    assert v.features.shape == (30, cfg.features.n_mels, 101) and v.features.dtype == np.float32
    np.testing.assert_array_equal(v.features, np.asarray(valid_feats, dtype=np.float32))
    np.testing.assert_array_equal(v.clip, label_matrix(valid_table, LABELS))
    assert v.clip.sum() > 0 and v.frames is None
    # statistics from the training examples only; masks fill with their mean
    mean, std = normalization_stats(d.train.examples.features)
    assert (d.mean, d.std) == pytest.approx((mean, std)) and d.train.fill_db == d.mean
    assert normalization_stats(d.valid["chunks"].features)[0] != pytest.approx(mean)
    assert d.train.augment == cfg.augment and d.train.seed == cfg.seed and d.train.negative_items == 0
    # backgrounds: the non-silent ambient chunks of the TRAINING folds
    full = build_esc50_chunks(cfg, progress=False)
    ambient = full[full.category.isin(ambient_categories(cfg.esc50_categories))
                   & full.fold.isin(cfg.train_folds) & ~full.silent]
    assert d.backgrounds is not None and len(d.backgrounds) == len(ambient) > 0
    assert d.train.backgrounds is d.backgrounds
    # the same recipe, called by name
    direct = chunk_data(cfg, kinds.settings_of(cfg, "chunk"), progress=False)
    np.testing.assert_array_equal(direct.train.examples.features, d.train.examples.features)


def test_chunk_recipe_options_and_backgrounds(demo_cfg, chunk_recipe):
    cfg = demo_cfg
    full = build_esc50_chunks(cfg, progress=False)
    off = dataclasses.replace(cfg, augment=dataclasses.replace(cfg.augment, background_prob=0.0))
    assert background_features(off, full, progress=False) is None
    with pytest.warns(UserWarning, match="no ambient chunk"):
        assert background_features(cfg, full[~full.category.isin(ambient_categories(cfg.esc50_categories))],
                                   progress=False) is None
    small_cfg = dataclasses.replace(cfg, models={**cfg.models, "chunk": dataclasses.replace(
        cfg.models["chunk"], max_train_chunks=5, train_scenes=0)})
    small = training_data(small_cfg, "chunk", progress=False)
    assert len(small.train) == 5 and set(small.train.examples.table.source) == {"chunk"}
    assert set(small.train.examples.table.filename) <= set(chunk_recipe.train.examples.table.filename)
    assert len(small.valid["chunks"]) == len(chunk_recipe.valid["chunks"])


def test_on_the_fly_items_match_the_cached_ones(demo_cfg, chunk_recipe):
    valid = chunk_recipe.valid["chunks"]
    fly = OnTheFlyDataset(demo_cfg, valid.table)
    x, t = fly[0]
    assert x.shape == (64, 101) and len(fly) == len(valid)
    cached = torch.from_numpy(np.asarray(valid.features[0], np.float32))
    torch.testing.assert_close(x, cached, atol=0.06, rtol=0)  # both in dB; the cache is float16
    np.testing.assert_array_equal(t["clip"].numpy(), valid.clip[0])


def test_scene_recipe_gives_whole_scenes_with_frame_targets(demo_cfg, scene_recipe):
    cfg, d = demo_cfg, scene_recipe
    assert d.kind == "frame" and d.window_seconds == 10.0 and set(d.valid) == {"scenes"}
    ex = d.train.examples
    assert ex.features.shape == (3, 64, 1001) and ex.frames.shape == (3, 126, 5)  # 80 ms frames
    np.testing.assert_array_equal(ex.clip, ex.frames.max(axis=1))
    # the targets are the scenes' events on the network's frame grid
    train_scenes = scenes.scene_set(cfg, "train", n_scenes=3, progress=False)
    assert list(ex.table.filename) == list(train_scenes.files)
    grid = TimeGrid.regular(LABELS, 0.08, 126)
    events = train_scenes.events
    for i, f in enumerate(train_scenes.files):
        np.testing.assert_array_equal(ex.frames[i], grid.encode(events[events.filename == f]))
    assert ex.frames.sum() > 0
    v = d.valid["scenes"]
    assert v.features.shape == (3, 64, 1001) and v.frames.shape == (3, 126, 5)
    mean, std = normalization_stats(ex.features)
    assert (d.mean, d.std) == pytest.approx((mean, std)) and d.train.fill_db == d.mean
    assert d.train.augment == cfg.augment and d.backgrounds is None and d.train.backgrounds is None
    # negative items: the training folds' clips of the other classes, never a validation or test fold
    meta = load_esc50_meta(esc50_root(cfg))
    want = negative_clips(meta, cfg.esc50_categories, tuple(cfg.train_folds))
    assert d.train.negatives.shape == (len(want), 64, 501) and len(want) > 0
    assert set(want.fold) <= set(cfg.train_folds)
    assert len(d.train) == 3 + 2
    x, t = ExampleDataset(ex, negatives=d.train.negatives, negative_items=2)[3]  # unaugmented: zero targets
    assert x.shape == (64, 1001) and float(t["frames"].sum()) == 0.0 and float(t["clip"].sum()) == 0.0
    direct = scene_data(cfg, kinds.settings_of(cfg, "frame"), 8, progress=False)
    np.testing.assert_array_equal(direct.train.examples.frames, ex.frames)
    features, categories = negative_clip_features(cfg, progress=False)
    np.testing.assert_array_equal(features, d.train.negatives)
    assert list(categories) == list(want.category) and d.other_labels == ()


def test_all_category_recipe_labels_distractors_backgrounds_and_negatives(demo_cfg, scene_recipe):
    """targets: all: one more target column per other ESC-50 category, located from the scenes'
    provenance and, for the negative clips, where the clip sounds; validation stays on the classes."""
    cfg = load_config("demo", [f"data_root={demo_cfg.data_root}", f"runs_root={demo_cfg.runs_root}",
                               "scenes.valid=3", "models.frame.train_scenes=3",
                               "models.frame.negative_clips=2", "models.frame.targets=all"])
    d = training_data(cfg, "frame", progress=False)
    meta = load_esc50_meta(esc50_root(cfg))
    others = tuple(sorted(set(meta.category) - set(cfg.esc50_categories)))
    assert d.other_labels == others and len(others) > 0
    ex = d.train.examples
    n = len(LABELS)
    assert ex.frames.shape == (3, 126, n + len(others)) and d.valid["scenes"].frames.shape == (3, 126, n)
    # the classes' columns are exactly the 5-class recipe's; the others come from sources.csv
    np.testing.assert_array_equal(ex.frames[..., :n], scene_recipe.train.examples.frames)
    train_scenes = scenes.scene_set(cfg, "train", n_scenes=3, progress=False)
    sources = scenes.load_scene_sources(train_scenes.audio_dir.parent)
    grid = TimeGrid.regular(tuple(LABELS) + others, 0.08, 126)
    for i, f in enumerate(train_scenes.files):
        rows = sources[(sources.scene == f) & sources.role.isin(["distractor", "background"])
                       & sources.category.isin(others)]
        want = grid.encode(rows.rename(columns={"scene": "filename", "category": "event_label"}))
        np.testing.assert_array_equal(ex.frames[i, :, n:], want[:, n:])
        backgrounds = rows[rows.role == "background"].category
        for c in backgrounds:  # an ambient background sounds through the whole scene (frame 126 ends past it)
            assert ex.frames[i, :125, n + others.index(c)].all()
    assert ex.frames[..., n:].sum() > 0
    # a negative item (unaugmented): each clip's own category where it sounds, never a class
    tr = d.train
    x, t = ExampleDataset(ex, negatives=tr.negatives, negative_items=2, negative_columns=tr.negative_columns,
                          negative_activity=tr.negative_activity)[3]
    assert t["frames"].shape == (126, n + len(others))
    assert float(t["frames"][:, :n].sum()) == 0.0 and float(t["frames"][:, n:].sum()) > 0
    assert set(np.flatnonzero(t["clip"].numpy())) <= {n + i for i in range(len(others))}
    # training builds a detector with the extra outputs; only the classes are reported
    det = kinds.build_detector("frame", LABELS, cfg.features, SR, 10.0, other_labels=others)
    out = det(x[None])
    assert out["frame_logits"].shape[-1] == n and out["other_frame_logits"].shape[-1] == len(others)
    loss = kinds.frame_loss(out, {k: v[None] for k, v in t.items()}, kinds.settings_of(cfg, "frame"))
    assert torch.isfinite(loss)


def test_a_clip_pool_of_all_categories_labels_the_clean_target_clips_where_they_sound(demo_cfg):
    """clip_pool: all: the clean clip pairs come from every category of the training folds; a target
    category's clip marks its class where it sounds, another category's clip marks nothing (so a clean
    recording is not a cue for "no target")."""
    cfg = load_config("demo", [f"data_root={demo_cfg.data_root}", f"runs_root={demo_cfg.runs_root}",
                               "scenes.valid=3", "models.frame.train_scenes=3",
                               "models.frame.negative_clips=4", "models.frame.clip_pool=all"])
    tr = training_data(cfg, "frame", progress=False).train
    meta = load_esc50_meta(esc50_root(cfg))
    pool = meta[meta.fold.isin(cfg.train_folds)]
    assert len(tr.negatives) == len(pool)
    columns = tr.negative_columns
    is_target = np.isin(columns, np.arange(len(LABELS)))
    assert is_target.sum() == pool.category.isin(cfg.esc50_categories).sum() > 0
    assert set(columns[~is_target]) == {-1}
    marked = []
    pairs = ExampleDataset(tr.examples, negatives=tr.negatives, negative_items=40, negative_columns=columns,
                           negative_activity=tr.negative_activity)
    for item in range(len(tr.examples), len(pairs)):
        marked.append(pairs[item][1]["frames"].sum(axis=0).numpy())
    marked = np.array(marked)
    assert (marked.sum(axis=1) > 0).any() and (marked.sum(axis=1) == 0).any()  # some pairs hold a target


def test_active_frames_marks_where_a_clip_sounds():
    x = np.full((64, 100), -80.0)
    x[:, 20:40] = 0.0
    x[:, 60:65] = -30.0  # 30 dB under the loudest frame: sounding at -35, silent at -20
    assert np.flatnonzero(active_frames(x, -35.0)).tolist() == list(range(20, 40)) + list(range(60, 65))
    assert np.flatnonzero(active_frames(x, -20.0)).tolist() == list(range(20, 40))
    assert active_frames(np.stack([x, x]), -35.0).shape == (2, 100)


def test_a_scene_kind_without_frames_is_refused(monkeypatch):
    odd = kinds.ModelKind(name="odd", network=ResNetTagger, examples="scenes", loss=kinds.clip_loss,
                          curve=kinds.window_curve)
    monkeypatch.setitem(kinds._REGISTRY, "odd", odd)
    with pytest.raises(ValueError, match="time_stride"):
        training_data(load_config("demo"), "odd", progress=False)


def test_segments_with_features_rows_match_and_cache_by_name(tmp_path, monkeypatch):
    monkeypatch.delenv("SED_DATA_ROOT", raising=False)
    make_desed(tmp_path)
    cfg = tiny_config(tmp_path)
    ds = load_test_set(cfg)
    table, feats = segments_with_features(cfg, ds, "mine", progress=False)
    pd.testing.assert_frame_equal(table, build_segments(cfg, ds))
    assert feats.shape == (30, cfg.features.n_mels, 101) and len(table) == len(feats)
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


# ------------------------------------------------------------------------------------------------
# band limit (a phone's microphone)
# ------------------------------------------------------------------------------------------------
def test_band_limit_matches_the_log_mel_of_a_filtered_recording():
    """On white noise, the log-mel band-limited by band_limit equals, band by band within 3 dB (the lowest
    within 6), the log-mel of the waveform through the same Butterworth filters (one pass, scipy),
    wherever the filtered band stays 50 dB above the floor."""
    from scipy import signal

    from sed_utils.config import MelConfig
    from sed_utils.features.logmel import build_logmel

    mel = MelConfig(reference="max")
    front = build_logmel(mel, SR)
    noise = np.random.default_rng(0).standard_normal(4 * SR).astype(np.float32) * 0.1
    filtered = noise
    for cutoff, btype in ((150.0, "highpass"), (2500.0, "lowpass")):
        filtered = signal.sosfilt(signal.butter(4, cutoff, btype, fs=SR, output="sos"), filtered)
    x = front(torch.from_numpy(noise)).numpy()
    want = front(torch.from_numpy(filtered.astype(np.float32))).numpy()
    got = augment.band_limit(x, augment.MelBands.of(mel, SR), highpass_hz=150.0, lowpass_hz=2500.0, order=4)
    assert got.shape == x.shape and got.dtype == x.dtype
    assert got.max() == x.max() and got.min() >= x.max() - mel.top_db  # the loudest bin and the floor stay
    profile_got, profile_want = got[:, 5:-5].mean(axis=1), want[:, 5:-5].mean(axis=1)
    audible = profile_want > profile_want.max() - 50
    assert audible.sum() > 30 and (~audible).sum() > 5  # the test sees both sides of the edge
    np.testing.assert_allclose(profile_got[audible][1:], profile_want[audible][1:], atol=3.0)
    # the lowest band spans three FFT bins, where the STFT window's leakage from above outweighs the filter
    assert abs(profile_got[0] - profile_want[0]) < 6.0
    assert (profile_got[~audible] < profile_got.max() - 40).all()  # and what the filter removes is gone


def test_band_limit_of_nothing_changes_nothing_and_the_draws_vary():
    from sed_utils.config import MelConfig

    x, hz = _spec(6), augment.MelBands.of(MelConfig(), SR)
    np.testing.assert_array_equal(augment.band_limit(x, hz, 0.0, 0.0), x)
    drawn = [augment.random_band_limit(x, hz, 3000.0, np.random.default_rng(s)) for s in range(20)]
    top_band = [float(d[-1].mean()) for d in drawn]
    assert len(set(np.round(top_band, 2))) >= 15 and max(top_band) < x[-1].mean()  # the top band always loses


def test_band_limit_augmentation_runs_with_its_probability_and_leaves_the_stream_alone_when_off():
    from sed_utils.config import MelConfig

    hz = augment.MelBands.of(MelConfig(), SR)
    x = _spec(7, shape=(64, 200))
    frames = _frames(25, (0, 3, 9))
    targets = {"clip": frames.max(axis=0), "frames": frames}
    quiet = AugmentConfig(**QUIET, mix_prob=0.0)
    off = augment.augment_example(x, targets, quiet, np.random.default_rng(1))[0]
    same = augment.augment_example(x, targets, quiet, np.random.default_rng(1), bands=hz)[0]
    np.testing.assert_array_equal(off, same)  # band_limit_prob 0: no draw, models trained before unchanged
    always = dataclasses.replace(quiet, band_limit_prob=1.0)
    on, t = augment.augment_example(x, targets, always, np.random.default_rng(1), bands=hz)
    assert on[-1].mean() < x[-1].mean() - 3 and np.array_equal(t["frames"], frames)
    chunk_on, _ = augment.augment_example(x, {"clip": frames.max(axis=0)}, always, np.random.default_rng(1),
                                          bands=hz)
    assert chunk_on[-1].mean() < x[-1].mean() - 3  # chunk examples too
    half = dataclasses.replace(quiet, band_limit_prob=0.5)
    changed = [not np.array_equal(augment.augment_example(x, targets, half, np.random.default_rng(s),
                                                          bands=hz)[0], x) for s in range(200)]
    assert 0.4 < np.mean(changed) < 0.6


def test_a_balanced_clip_pool_draws_half_its_clean_clips_from_the_classes(demo_cfg):
    """clip_pool: balanced: the clips of clip_pool all, drawn so that a clip is one of the classes' with
    probability 1/2 (1/10 under all, the classes' share of ESC-50)."""
    cfg = load_config("demo", [f"data_root={demo_cfg.data_root}", f"runs_root={demo_cfg.runs_root}",
                               "scenes.valid=3", "models.frame.train_scenes=3",
                               "models.frame.negative_clips=4", "models.frame.clip_pool=balanced"])
    tr = training_data(cfg, "frame", progress=False).train
    is_class = tr.negative_columns >= 0
    assert 0 < is_class.mean() < 1  # (the demo's ESC-50 has 10 categories; the real one 50)
    np.testing.assert_allclose(tr.negative_weights[is_class], 0.5 / is_class.sum())
    np.testing.assert_allclose(tr.negative_weights[~is_class], 0.5 / (~is_class).sum())
    draws = ExampleDataset(tr.examples, negatives=tr.negatives, negative_items=400,
                           negative_columns=tr.negative_columns, negative_activity=tr.negative_activity,
                           negative_weights=tr.negative_weights, seed=0)
    with_class = [float(draws[i][1]["clip"].sum()) > 0 for i in range(len(tr.examples), len(draws))]
    assert 0.65 < np.mean(with_class) < 0.85  # two clips each half the time a class's: 3/4 of the pairs
    with pytest.raises(ValueError, match="negative_weights"):
        ExampleDataset(tr.examples, negatives=tr.negatives, negative_items=4, negative_weights=np.ones(2))
