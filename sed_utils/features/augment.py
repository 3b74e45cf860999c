"""Augmentations: small pure functions on log-mel arrays (and waveforms, for listening), each seeded.

Why augment at all: ESC-50 has only 40 clips per class, so the model sees the same few dogs every
epoch. Random masks, gains, noise, shifts and mixes make each epoch's copy a little different,
which teaches the model what does *not* matter (level, position, a missing band).

Conventions: log-mel inputs are ``[n_mels, frames]`` in dB (what :mod:`sed_utils.features.logmel`
caches); every random function takes a ``numpy.random.Generator`` so a given seed always gives
the same result; inputs are never modified in place. Which augmentations run, and how strongly,
comes from ``cfg.augment`` (:class:`sed_utils.config.AugmentConfig`).

Why ``mix``: the original project trained only on single-label chunks, but a DESED segment often
holds two sounds at once (a dog barking while water runs). Summing two chunks in the power
domain, with the union of their labels as target, shows the model such overlaps during training.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from sed_utils.features.band_limit import MelBands, band_limit, random_band_limit

if TYPE_CHECKING:
    from sed_utils.config import AugmentConfig

__all__ = [
    "freq_mask",
    "time_mask",
    "gain",
    "add_noise",
    "time_shift",
    "mix",
    "add_background",
    "MelBands",
    "band_limit",
    "random_band_limit",
    "gain_waveform",
    "noise_waveform",
    "mix_waveforms",
    "augment_db",
    "spec_augment",
    "augment_example",
    "augment_examples",
]

#: A partner mixed into an example with frame targets is made up to this many dB quieter (drawn
#: uniformly): two equally loud scenes on top of each other are rarer than one under another.
MIX_PARTNER_DB = 6.0

_DB = 10.0 / np.log(10.0)  # dB per natural-log unit of power


# ------------------------------------------------------------------------------------------------
# Log-mel augmentations
# ------------------------------------------------------------------------------------------------
def _mask(x: np.ndarray, axis: int, max_width: int, rng: np.random.Generator,
          fill: float | np.ndarray) -> np.ndarray:
    out = np.array(x, copy=True)
    size = out.shape[axis]
    if max_width < 1 or size == 0:
        return out
    width = int(rng.integers(1, min(max_width, size) + 1))
    first = int(rng.integers(0, size - width + 1))
    index = [slice(None)] * out.ndim
    index[axis] = slice(first, first + width)
    # a per-mel fill ([n_mels, 1], broadcast over frames) is cut to the masked rows like the data
    out[tuple(index)] = np.broadcast_to(np.asarray(fill, dtype=out.dtype), out.shape)[tuple(index)]
    return out


def freq_mask(x: np.ndarray, max_width: int, rng: np.random.Generator,
              fill: float | np.ndarray = 0.0) -> np.ndarray:
    """SpecAugment frequency mask: set 1..max_width consecutive mel bands (axis -2) to ``fill`` (notebook 04).

    Training fills with the training mean (dB), which the model's normaliser maps to 0, so the
    masked band looks like "average" rather than like a loud or a silent band. The width is at
    least 1, so a mask that was drawn is always visible.

    Args:
        x: log-mel(s) ``[..., n_mels, frames]``.
        max_width: the widest mask, in mel bands (below 1: no mask).
        rng: draws the width and the first band.
        fill: one value, or one per band (``[n_mels, 1]``).

    Returns:
        A masked copy of ``x``.
    """
    return _mask(x, x.ndim - 2, max_width, rng, fill)


def time_mask(x: np.ndarray, max_width: int, rng: np.random.Generator,
              fill: float | np.ndarray = 0.0) -> np.ndarray:
    """SpecAugment time mask: set 1..max_width consecutive frames (last axis) to ``fill`` (notebook 04).

    Args:
        x: log-mel(s) ``[..., n_mels, frames]``.
        max_width: the widest mask, in frames (below 1: no mask).
        rng: draws the width and the first frame.
        fill: one value, or one per band (``[n_mels, 1]``).

    Returns:
        A masked copy of ``x``.
    """
    return _mask(x, x.ndim - 1, max_width, rng, fill)


def gain(x_db: np.ndarray, max_db: float, rng: np.random.Generator,
         min_db: float | None = None) -> np.ndarray:
    """Random gain in [-max_db, +max_db] dB (or [min_db, max_db] when ``min_db`` is given): on a log-mel,
    scaling the waveform by g adds 20 log10 g (notebooks 04, 05, through augment_db).

    Args:
        x_db: a log-mel in dB.
        max_db: the largest gain, in dB (and the largest cut when ``min_db`` is None).
        rng: draws the gain, one for the whole array.
        min_db: the largest cut (a gain <= 0 dB), e.g. -40 to show the model recordings far quieter
            than its training data; None: ``-max_db``.

    Returns:
        ``x_db`` plus the gain, a new array (no gain, and no draw from ``rng``, when the range is empty).
    """
    low = -max_db if min_db is None else float(min_db)
    if max_db <= 0 and low >= 0:
        return np.array(x_db, copy=True)
    return x_db + np.float32(rng.uniform(low, max_db))


def add_noise(x_db: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """Add noise to a log-mel in the power domain, at ``snr_db`` below the chunk's mean power
    (notebooks 04, 05, through augment_db and augment_examples).

    What it models: a steady broadband background. Each (band, frame) gets an independent noise
    power drawn from an exponential distribution (the distribution of a periodogram bin of
    Gaussian noise) with the same mean in every band, i.e. noise that is flat across mel bands.
    ``10 log10(10^(x/10) + noise)`` is exact for the power spectrum; the cached features were
    already clamped at (max - top_db), so the floor of very quiet chunks is approximate, which
    does not matter at the SNRs used here. For listening, :func:`noise_waveform` does the same
    on the waveform.

    Args:
        x_db: a log-mel in dB.
        snr_db: how far the noise's mean power lies below the chunk's, in dB.
        rng: draws the noise.

    Returns:
        The noisy log-mel in dB, with ``x_db``'s shape and dtype.
    """
    power = np.power(10.0, np.asarray(x_db, dtype=np.float64) / 10.0)
    noise_mean = power.mean() / (10.0 ** (snr_db / 10.0))
    noise = rng.exponential(noise_mean, size=power.shape)
    return (10.0 * np.log10(power + noise + 1e-12)).astype(np.asarray(x_db).dtype)


def time_shift(x: np.ndarray, max_share: float, rng: np.random.Generator) -> np.ndarray:
    """Circular shift along frames by up to ``max_share`` of the chunk (either direction).
    Used in notebooks 04, 05, through augment_db and augment_examples.

    A sound at 0.2 s or at 0.6 s is the same sound; the roll wraps what leaves one end back in at
    the other, so no frames have to be invented.

    Args:
        x: log-mel(s) ``[..., frames]``.
        max_share: the largest shift as a share of the frames (one that rounds below one frame: no
            shift, and no draw from ``rng``).
        rng: draws the shift.

    Returns:
        A shifted copy of ``x``.
    """
    frames = x.shape[-1]
    limit = int(round(max_share * frames))
    if limit < 1:
        return np.array(x, copy=True)
    return np.roll(x, int(rng.integers(-limit, limit + 1)), axis=-1)


def mix(x1: np.ndarray, y1: np.ndarray, x2: np.ndarray, y2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two chunks played at once: log-mel = dB of the summed power, label = union of the labels
    (notebooks 04, 05, through augment_db and augment_examples).

    ``10 log10(10^(x1/10) + 10^(x2/10))`` is what the spectrogram of the summed sounds would be if
    the two sounds did not interfere (on average true for unrelated sounds). Computed with
    ``logaddexp`` so loud values do not overflow. Label: a class is present if it is in either
    chunk (element-wise max of 0/1 vectors).

    Args:
        x1, y1: the first chunk's log-mel in dB and its 0/1 targets.
        x2, y2: the second chunk's, of the same shapes.

    Returns:
        ``(x, y)``: the mixed log-mel in dB (``x1``'s dtype) and the union of the targets.
    """
    a = np.asarray(x1, dtype=np.float64) / _DB
    b = np.asarray(x2, dtype=np.float64) / _DB
    x = (np.logaddexp(a, b) * _DB).astype(np.asarray(x1).dtype)
    return x, np.maximum(np.asarray(y1), np.asarray(y2))


def add_background(x_db: np.ndarray, background_db: np.ndarray, snr_db: float) -> np.ndarray:
    """Lay a background chunk (rain, an engine, ...) under ``x_db`` at ``snr_db``, in the power domain
    (notebooks 04, 05, through augment_db and augment_examples).

    Why: ESC-50 clips are mostly clean, single sounds, but the recordings we test on (DESED, the
    held-out scenes) always have something going on behind the events. A model that has only
    heard clean barks misses a bark over rain: its scores drop under any threshold chosen on
    clean chunks. Showing it the same chunk over real ambient sounds, at SNRs down to 0 dB,
    teaches it that the background does not change the label (the label stays ``y``: the
    backgrounds are not target classes).

    The SNR is the ratio of the two chunks' mean powers (over all bands and frames); the
    background is rescaled to it and the powers are summed as in :func:`mix`.

    Args:
        x_db: the chunk's log-mel in dB.
        background_db: the background's log-mel in dB, of the same shape.
        snr_db: how far the background's mean power lies below the chunk's, in dB.

    Returns:
        The log-mel of the sum in dB, with ``x_db``'s dtype.

    Raises:
        ValueError: the two shapes differ.
    """
    x = np.asarray(x_db, dtype=np.float64) / _DB  # natural-log power
    b = np.asarray(background_db, dtype=np.float64) / _DB
    if x.shape != b.shape:
        raise ValueError(f"add_background: chunk {x.shape} and background {b.shape} differ in shape")
    # log of the mean power, computed stably (dB values of loud chunks would overflow exp in float32)
    log_mean_x = np.logaddexp.reduce(x, axis=None) - np.log(x.size)
    log_mean_b = np.logaddexp.reduce(b, axis=None) - np.log(b.size)
    shift = log_mean_x - log_mean_b - float(snr_db) / _DB
    return (np.logaddexp(x, b + shift) * _DB).astype(np.asarray(x_db).dtype)


# ------------------------------------------------------------------------------------------------
# Waveform versions (for listening in notebook 04)
# ------------------------------------------------------------------------------------------------
def gain_waveform(wave: np.ndarray, db: float) -> np.ndarray:
    """Multiply by 10^(db/20): the waveform counterpart of :func:`gain` (notebook 04, for listening)."""
    return (np.asarray(wave) * 10.0 ** (db / 20.0)).astype(np.float32)


def noise_waveform(wave: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """Add white Gaussian noise ``snr_db`` below the waveform's mean power (notebook 04, for listening).

    Args:
        wave: the samples.
        snr_db: how far the noise's power lies below the waveform's mean power, in dB.
        rng: draws the noise.

    Returns:
        The noisy samples, float32, of ``wave``'s shape.
    """
    wave = np.asarray(wave, dtype=np.float64)
    noise_power = float(np.mean(wave * wave)) / (10.0 ** (snr_db / 10.0))
    return (wave + rng.normal(0.0, np.sqrt(noise_power), size=wave.shape)).astype(np.float32)


def mix_waveforms(w1: np.ndarray, w2: np.ndarray) -> np.ndarray:
    """Sum two equally long waveforms (what :func:`mix` approximates on log-mels; notebook 04, for
    listening)."""
    return (np.asarray(w1, dtype=np.float32) + np.asarray(w2, dtype=np.float32)).astype(np.float32)


# ------------------------------------------------------------------------------------------------
# The training pipeline
# ------------------------------------------------------------------------------------------------
def augment_db(
    x_db: np.ndarray,
    y: np.ndarray,
    aug: AugmentConfig,
    rng: np.random.Generator,
    draw_partner: Callable[[], tuple[np.ndarray, np.ndarray]] | None = None,
    draw_background: Callable[[], np.ndarray] | None = None,
    bands: MelBands | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Augmentations that act on dB values, in this order: mix, background, gain, band limit, noise,
    time shift (notebooks 04, 05: every training item, through ChunkDataset).

    Mixing happens with probability ``aug.mix_prob`` when ``draw_partner`` (returns another
    example's ``(x_db, y)``) is given; a background (``draw_background`` returns an ambient
    chunk's dB values) with probability ``aug.background_prob`` at an SNR drawn in
    ``[background_snr_db, background_snr_db + 20]`` dB; noise with probability ``aug.noise_prob``
    at an SNR drawn in ``[noise_snr_db, noise_snr_db + 20]`` dB (never louder than
    ``noise_snr_db`` says); gain and shift every time (their size is random, a size of 0 switches them off);
    a band limit (:func:`random_band_limit`) with probability ``aug.band_limit_prob`` when ``bands``
    is given.

    Args:
        x_db, y: a log-mel ``[n_mels, frames]`` in dB and its clip targets ``[C]``.
        aug: which augmentations run, and how strongly.
        rng: every random draw.
        draw_partner, draw_background: as above; None: no mix, no background.
        bands: the log-mel's bands (:class:`MelBands`); None: no band limit.

    Returns:
        ``(x_db, y)`` augmented (``y`` changes only by a mix); the inputs are not modified.
    """
    x, y = np.asarray(x_db), np.asarray(y)
    if draw_partner is not None and aug.mix_prob > 0 and rng.random() < aug.mix_prob:
        x2, y2 = draw_partner()
        x, y = mix(x, y, x2, y2)
    if draw_background is not None and aug.background_prob > 0 and rng.random() < aug.background_prob:
        snr = float(rng.uniform(aug.background_snr_db, aug.background_snr_db + 20.0))
        x = add_background(x, draw_background(), snr)
    if aug.gain_db > 0 or aug.gain_min_db:
        x = gain(x, aug.gain_db, rng, aug.gain_min_db)
    x = _maybe_band_limit(x, aug, rng, bands)
    if aug.noise_prob > 0 and rng.random() < aug.noise_prob:
        x = add_noise(x, float(rng.uniform(aug.noise_snr_db, aug.noise_snr_db + 20.0)), rng)
    if aug.time_shift > 0:
        x = time_shift(x, aug.time_shift, rng)
    return x, y


def _maybe_band_limit(x: np.ndarray, aug: AugmentConfig, rng: np.random.Generator,
                      bands: MelBands | None) -> np.ndarray:
    if bands is None or aug.band_limit_prob <= 0 or rng.random() >= aug.band_limit_prob:
        return x
    return random_band_limit(x, bands, aug.band_limit_min_hz, rng)


def spec_augment(x_db: np.ndarray, aug: AugmentConfig, rng: np.random.Generator,
                 fill: float | np.ndarray = 0.0) -> np.ndarray:
    """SpecAugment: one frequency and one time mask filled with ``fill`` (the training mean; notebook 04).

    Args:
        x_db: a log-mel ``[..., n_mels, frames]`` in dB.
        aug: ``specaugment`` switches the masks on; ``freq_mask`` and ``time_mask`` are their widest
            widths (bands, frames).
        rng: draws the masks.
        fill: one value, or one per band (``[n_mels, 1]``).

    Returns:
        A masked copy of ``x_db``, or ``x_db`` itself when ``aug.specaugment`` is off.
    """
    if not aug.specaugment:
        return x_db
    x = freq_mask(x_db, aug.freq_mask, rng, fill)
    return time_mask(x, aug.time_mask, rng, fill)


def augment_example(
    x_db: np.ndarray,
    targets: dict[str, np.ndarray],
    aug: AugmentConfig,
    rng: np.random.Generator,
    *,
    draw_partner: Callable[[], tuple[np.ndarray, dict[str, np.ndarray]]] | None = None,
    draw_background: Callable[[], np.ndarray] | None = None,
    fill: float | np.ndarray = 0.0,
    bands: MelBands | None = None,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """One training example augmented, for every kind of example (notebooks 04, 05, 08: every
    training item, through :class:`sed_utils.train.ExampleDataset`).

    ``targets`` holds ``"clip"`` ``[C]`` and, for an example with strong labels, ``"frames"``
    ``[T', C]``. A chunk example (clip targets only) gets :func:`augment_db` then :func:`spec_augment`.
    An example with frame targets gets only what keeps every labelled frame where it is: a mix with a
    partner up to :data:`MIX_PARTNER_DB` dB quieter (frame targets OR-ed), a gain, a band limit, and a
    frequency mask; no time mask or shift (they would hide or move labelled frames), and no background or
    noise (a scene already has its background).

    Args:
        x_db: a log-mel ``[n_mels, frames]`` in dB.
        targets: ``"clip"`` ``[C]`` and, with strong labels, ``"frames"`` ``[T', C]``.
        aug: which augmentations run, and how strongly.
        rng: every random draw.
        draw_partner: returns another example's ``(x_db, targets)``; None: no mix.
        draw_background: returns an ambient chunk's dB values (chunk examples only); None: no background.
        fill: the masks' value, the training mean (one value, or one per band ``[n_mels, 1]``).
        bands: the log-mel's bands, for the band limit (``aug.band_limit_prob``); None: none.

    Returns:
        ``(x_db, targets)`` augmented; the inputs are not modified. With frame targets, ``"clip"`` is
        recomputed as their maximum over frames.
    """
    if "frames" not in targets:
        partner = None
        if draw_partner is not None:
            def partner() -> tuple[np.ndarray, np.ndarray]:
                x2, t2 = draw_partner()
                return x2, t2["clip"]
        x, clip = augment_db(x_db, targets["clip"], aug, rng, partner, draw_background, bands)
        return spec_augment(x, aug, rng, fill=fill), {"clip": clip}
    x, frames = np.asarray(x_db), np.asarray(targets["frames"])
    if draw_partner is not None and aug.mix_prob > 0 and rng.random() < aug.mix_prob:
        x2, t2 = draw_partner()
        x, frames = mix(x, frames, np.asarray(x2) + np.float32(rng.uniform(-MIX_PARTNER_DB, 0.0)),
                        t2["frames"])
    if aug.gain_db > 0 or aug.gain_min_db:
        x = gain(x, aug.gain_db, rng, aug.gain_min_db)
    x = _maybe_band_limit(x, aug, rng, bands)
    if aug.specaugment and aug.freq_mask > 0:
        x = freq_mask(x, aug.freq_mask, rng, fill)
    return x, {"clip": frames.max(axis=0), "frames": frames}


def augment_examples(
    x_db: np.ndarray,
    y: np.ndarray,
    partner_db: np.ndarray,
    partner_y: np.ndarray,
    aug: AugmentConfig,
    mean: float,
    seed: int = 0,
    background_db: np.ndarray | None = None,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Each augmentation applied alone to one chunk, as ``{name: (before, after)}`` in dB (notebook 04).

    The masks are filled with the training ``mean``, as in training. Uses the strengths of ``aug`` (a noise
    example at exactly ``noise_snr_db``; gain at the full ``gain_db``, sign drawn from ``seed``;
    the largest time shift ``time_shift`` allows (at least 5 %); the partner mixed in at its own level;
    a background, when ``background_db`` is given, at the hardest SNR ``background_snr_db``).

    Args:
        x_db, y: the chunk's log-mel ``[n_mels, frames]`` in dB and its 0/1 targets ``[C]``.
        partner_db, partner_y: the chunk mixed in, of the same shapes.
        aug: the strengths.
        mean: the training mean in dB, the masks' fill.
        seed: seeds every random draw.
        background_db: an ambient chunk's log-mel in dB, of ``x_db``'s shape; None: no background example.

    Returns:
        ``{title: (before, after)}``, both in dB; each title names the augmentation and its strength.
    """
    rng = np.random.default_rng(seed)
    x = np.asarray(x_db, dtype=np.float32)
    mixed, mixed_y = mix(x, y, partner_db, partner_y)
    sign = 1.0 if rng.random() < 0.5 else -1.0
    shift = max(1, int(round(max(aug.time_shift, 0.05) * x.shape[-1])))  # the largest: visible in a figure
    pairs = {
        "frequency mask": (x, freq_mask(x, aug.freq_mask, rng, fill=mean)),
        "time mask": (x, time_mask(x, aug.time_mask, rng, fill=mean)),
        f"gain {sign * aug.gain_db:+g} dB": (x, x + np.float32(sign * aug.gain_db)),
        f"noise at {aug.noise_snr_db:g} dB SNR": (x, add_noise(x, aug.noise_snr_db, rng)),
        f"time shift by {shift} frames (the largest)": (x, np.roll(x, shift, axis=-1)),
        f"mix, label {y.astype(int).tolist()} -> {mixed_y.astype(int).tolist()}": (x, mixed),
    }
    if background_db is not None:
        pairs[f"background at {aug.background_snr_db:g} dB SNR"] = (
            x, add_background(x, np.asarray(background_db, dtype=np.float32), aug.background_snr_db))
    return pairs
