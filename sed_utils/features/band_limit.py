"""A band-limited microphone on a log-mel: the phone-band augmentation (notebook 08's odd conditions).

A phone records roughly 100 Hz-4 kHz; a model that only heard ESC-50's full band finds half as many
sounds through it (``benchmarks/levels.py --odd``). :func:`band_limit` applies a filter's response to a
log-mel directly, band by band, so training can show the model band-limited copies of its cached
features without touching audio; :func:`random_band_limit` draws the microphone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from sed_utils.config import MelConfig

__all__ = ["MelBands", "band_limit", "random_band_limit", "BAND_LIMIT_HIGHPASS_HZ", "BAND_LIMIT_ORDERS"]

#: The band-limit augmentation draws its high-pass cutoff in [0, this] Hz (a phone's microphone
#: rolls off below ~100 Hz) and its filter order from :data:`BAND_LIMIT_ORDERS` (12-48 dB per octave).
BAND_LIMIT_HIGHPASS_HZ = 200.0
BAND_LIMIT_ORDERS = (2, 4, 8)


@dataclass(frozen=True)
class MelBands:
    """The log-mel's bands as a filter sees them (training for notebooks 05 and 08, through
    :func:`band_limit`; built by :meth:`of` from the config's mel settings).

    Args:
        weights: the mel filterbank ``[n_freqs, n_mels]`` (each band's triangle over the FFT bins).
        freqs_hz: the FFT bins' frequencies ``[n_freqs]``.
        sample_rate: the audio's rate, Hz.
        top_db: the front end's floor, in dB below each log-mel's loudest bin.
    """

    weights: np.ndarray
    freqs_hz: np.ndarray
    sample_rate: int
    top_db: float

    @classmethod
    def of(cls, mel: MelConfig, sample_rate: int) -> MelBands:
        """The bands of the series' front end (:func:`sed_utils.features.build_logmel`: HTK mel scale,
        no normalisation of the triangles)."""
        import torchaudio

        n_freqs = mel.n_fft // 2 + 1
        weights = torchaudio.functional.melscale_fbanks(n_freqs, mel.f_min, mel.f_max, mel.n_mels,
                                                        int(sample_rate), norm=None, mel_scale="htk")
        return cls(weights.numpy().astype(np.float64), np.linspace(0.0, sample_rate / 2, n_freqs),
                   int(sample_rate), float(mel.top_db))


def _butterworth_power(f: np.ndarray, cutoff: float, order: int, sample_rate: int,
                       highpass: bool) -> np.ndarray:
    """A digital Butterworth filter's power response at ``f``: the analog response at the frequencies the
    bilinear transform warps to (what ``scipy.signal.butter(..., fs=)`` designs)."""
    warp = np.tan(np.pi * np.clip(f, 1e-3, 0.4999 * sample_rate) / sample_rate)
    edge = np.tan(np.pi * cutoff / sample_rate)
    ratio = edge / warp if highpass else warp / edge
    return 1.0 / (1.0 + ratio ** (2 * order))


def band_limit(x_db: np.ndarray, bands: MelBands, highpass_hz: float, lowpass_hz: float,
               order: int = 4) -> np.ndarray:
    """What a band-limited microphone (a phone's: ~100 Hz-4 kHz) makes of a log-mel (notebooks 05 and 08:
    training, through :func:`random_band_limit`).

    Each mel band's power is multiplied by the share of a flat spectrum that the filters (the digital
    Butterworth filters :class:`sed_utils.features.Condition` runs on waveforms, one pass) let through
    its triangle; the result is shifted so that its loudest bin keeps the input's level (what the
    level-invariant front end, ``features.reference: max``, does to any input, and a make-up gain
    otherwise) and floored ``top_db`` below it, as the front end floors. Exact for a spectrum flat
    within each band; a test holds it within 3 dB of the filtered recording's log-mel.

    Args:
        x_db: a log-mel ``[n_mels, frames]`` in dB.
        bands: its bands (:class:`MelBands`).
        highpass_hz, lowpass_hz: the cutoffs (<= 0: no such filter).
        order: the filters' order (6 dB per octave each).

    Returns:
        The band-limited log-mel in dB, with ``x_db``'s shape and dtype.
    """
    x = np.asarray(x_db)
    power = np.ones_like(bands.freqs_hz)
    if lowpass_hz > 0:
        power *= _butterworth_power(bands.freqs_hz, lowpass_hz, order, bands.sample_rate, highpass=False)
    if highpass_hz > 0:
        power *= _butterworth_power(bands.freqs_hz, highpass_hz, order, bands.sample_rate, highpass=True)
    share = (power @ bands.weights) / np.maximum(bands.weights.sum(axis=0), 1e-12)
    y = x.astype(np.float64) + 10.0 * np.log10(np.maximum(share, 1e-30))[:, None]
    y += float(x.max()) - float(y.max())
    return np.maximum(y, float(x.max()) - bands.top_db).astype(x.dtype)


def random_band_limit(x_db: np.ndarray, bands: MelBands, min_lowpass_hz: float,
                      rng: np.random.Generator) -> np.ndarray:
    """:func:`band_limit` with a random microphone: a low-pass drawn log-uniformly between
    ``min_lowpass_hz`` and the top band's upper edge, a high-pass uniformly in [0,
    :data:`BAND_LIMIT_HIGHPASS_HZ`] Hz, an order from :data:`BAND_LIMIT_ORDERS` (training for
    notebooks 05 and 08, through :func:`sed_utils.features.augment.augment_example`;
    ``augment.band_limit_prob``).

    Args:
        x_db: a log-mel ``[n_mels, frames]`` in dB.
        bands: its bands (:class:`MelBands`).
        min_lowpass_hz: the lowest low-pass cutoff drawn (``augment.band_limit_min_hz``).
        rng: draws the cutoffs and the order.

    Returns:
        The band-limited log-mel in dB.
    """
    top = float(bands.freqs_hz[np.flatnonzero(bands.weights.sum(axis=1) > 0)[-1]])  # the top band's edge
    lowpass = float(np.exp(rng.uniform(np.log(min(min_lowpass_hz, top)), np.log(top))))
    highpass = float(rng.uniform(0.0, BAND_LIMIT_HIGHPASS_HZ))
    order = int(BAND_LIMIT_ORDERS[int(rng.integers(len(BAND_LIMIT_ORDERS)))])
    return band_limit(x_db, bands, highpass, lowpass, order)
