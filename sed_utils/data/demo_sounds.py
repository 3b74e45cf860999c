"""Synthetic sounds for the demo profile: a recipe per demo category (barks, meows, beeps, ...).

Why synthetic: the real ESC-50 (600 MB) and DESED audio take a long download and hours of CPU
training. The demo profile generates small stand-ins instead (:mod:`sed_utils.data.demo_data` lays
them out as the real archives, notebook 01 "downloads" them). The recipes are chosen to be clearly
different in a log-mel spectrogram, so a small model learns them in minutes. Numbers obtained on
this data say that the code works, NOT how well a model detects real sounds. Pure numpy: every
sound is drawn from the generator it is given, so the same seed gives the same bytes.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = ["PEAK", "SYNTH_CATEGORIES", "VOWELS", "active_extent", "synth_event"]

PEAK = 0.5  # synth_event output peak; callers scale it


# ----------------------------------------------------------------------------------------------
# Signal building blocks
# ----------------------------------------------------------------------------------------------
def _band_noise(n: int, sr: int, lo: float, hi: float, rng: np.random.Generator) -> np.ndarray:
    """White noise band-limited to [lo, hi] Hz (FFT mask), unit RMS."""
    spec = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1.0 / sr)
    spec[(freqs < lo) | (freqs > min(hi, sr / 2))] = 0
    out = np.fft.irfft(spec, n)
    return out / (np.sqrt(np.mean(out**2)) + 1e-12)


def _smooth_random(n: int, sr: int, rate_hz: float, rng: np.random.Generator) -> np.ndarray:
    """A slowly varying random curve in [0, 1] (interpolated random points ``rate_hz`` per second)."""
    k = max(2, int(n / sr * rate_hz) + 2)
    points = rng.random(k)
    return np.interp(np.linspace(0, k - 1, n), np.arange(k), points)


def _harmonic(f0: np.ndarray, sr: int, amps: Callable[[int, np.ndarray], np.ndarray], max_k: int = 40,
              rng: np.random.Generator | None = None) -> np.ndarray:
    """Sum of harmonics of a time-varying f0; ``amps(k, f_k)`` gives each harmonic's amplitude."""
    phase = 2 * np.pi * np.cumsum(f0) / sr
    if rng is not None:
        phase = phase + rng.uniform(0, 2 * np.pi)
    out = np.zeros_like(f0)
    # sin(k*phase) by the recurrence sin(k x) = 2 cos(x) sin((k-1) x) - sin((k-2) x): two sin/cos
    # calls instead of one per harmonic (generation speed matters: the demo runs on 2 cores).
    two_cos, prev, cur = 2 * np.cos(phase), np.zeros_like(phase), np.sin(phase)
    f0_max = f0.max()
    for k in range(1, max_k + 1):
        if k * f0_max >= sr / 2 * 0.95:
            break
        out += amps(k, k * f0) * cur
        prev, cur = cur, two_cos * cur - prev
    return out


def _ramp(n: int, sr: int, attack: float, release: float) -> np.ndarray:
    """Linear fade-in/out envelope (avoids clicks at unit edges)."""
    env = np.ones(n)
    a, r = min(n // 2, int(attack * sr)), min(n // 2, int(release * sr))
    if a > 0:
        env[:a] = np.linspace(0, 1, a, endpoint=False)
    if r > 0:
        env[n - r:] = np.linspace(1, 0, r)
    return env


def _fill(n: int, sr: int, rng: np.random.Generator, unit: Callable[[np.random.Generator], np.ndarray],
          gap: tuple[float, float]) -> np.ndarray:
    """Repeat ``unit`` sounds from t=0 with random gaps until ``n`` samples are filled.

    The first unit starts at sample 0, so an event's label onset is where its sound starts.
    A unit cut at the end gets a short fade-out.
    """
    out = np.zeros(n)
    pos = 0
    while pos < n:
        u = unit(rng)
        if pos > 0 and n - pos < 0.4 * len(u):
            break  # a sliver of a unit would only be a click at the end: stop instead
        m = min(len(u), n - pos)
        piece = u[:m]
        if m < len(u):
            piece = piece * _ramp(m, sr, 0.0, 0.01)
        out[pos:pos + m] += piece
        pos += len(u) + int(rng.uniform(*gap) * sr)
    return out


def _formant_gain(freqs: np.ndarray | float, formants: list[tuple[float, float]]) -> np.ndarray:
    return sum(np.exp(-0.5 * ((freqs - f) / bw) ** 2) for f, bw in formants) + 0.05


# ----------------------------------------------------------------------------------------------
# One recipe per sound (``n`` samples at ``sr``)
# ----------------------------------------------------------------------------------------------
def _dog(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    f_start, formant = rng.uniform(350, 600), rng.uniform(800, 1300)

    def bark(r: np.random.Generator) -> np.ndarray:
        m = int(r.uniform(0.12, 0.25) * sr)
        t = np.arange(m) / sr
        f0 = f_start * r.uniform(0.9, 1.1) * np.linspace(1.0, 0.7, m)
        tone = _harmonic(f0, sr, lambda k, fk: _formant_gain(fk.mean(), [(formant, 350.0)]) / k, rng=r)
        noise = _band_noise(m, sr, 400, 2500, r) * 0.4
        env = np.exp(-t / (m / sr / 3)) * _ramp(m, sr, 0.008, 0.01)
        return (tone / (np.abs(tone).max() + 1e-9) + noise * 0.5) * env

    return _fill(n, sr, rng, bark, (0.12, 0.45))


def _cat(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    base = rng.uniform(450, 700)

    def meow(r: np.random.Generator) -> np.ndarray:
        m = int(min(r.uniform(0.6, 1.0), n / sr) * sr)
        t = np.linspace(0, 1, m)
        f0 = base * r.uniform(0.9, 1.1) * (1 + r.uniform(0.4, 0.7) * np.sin(np.pi * t ** r.uniform(0.7, 1.3)))
        f0 = f0 * (1 + 0.01 * np.sin(2 * np.pi * 6 * t * m / sr))
        tone = _harmonic(f0, sr, lambda k, fk: 0.65 ** k * np.ones_like(fk), max_k=8, rng=r)
        return tone * np.sin(np.pi * t) ** 0.6

    return _fill(n, sr, rng, meow, (0.2, 0.6))


def _clock_alarm(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    carrier = rng.uniform(2000, 4000)
    on, off = rng.uniform(0.06, 0.12), rng.uniform(0.04, 0.10)

    def beep(r: np.random.Generator) -> np.ndarray:
        m = int(on * sr)
        t = np.arange(m) / sr
        tone = np.sin(2 * np.pi * carrier * t) + 0.3 * np.sin(2 * np.pi * 2 * carrier * t)
        return tone * _ramp(m, sr, 0.003, 0.003)

    return _fill(n, sr, rng, beep, (off, off * 1.05))


def _pouring_water(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    centre = rng.uniform(700, 1500)
    noise = _band_noise(n, sr, centre * 0.5, centre * 2.5, rng)
    flutter = 0.4 + 0.6 * _smooth_random(n, sr, rng.uniform(8, 15), rng)
    # a narrow resonance rising in pitch as the container fills
    f = centre * np.linspace(1.0, rng.uniform(1.3, 1.8), n)
    res = np.sin(2 * np.pi * np.cumsum(f) / sr) * _smooth_random(n, sr, 20, rng)
    return (noise * flutter + 0.5 * res) * _ramp(n, sr, 0.05, 0.05)


def _vacuum_cleaner(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    f0 = rng.uniform(120, 200) * (1 + 0.01 * (_smooth_random(n, sr, 1, rng) - 0.5))
    hum = _harmonic(f0, sr, lambda k, fk: k ** -0.7 * np.ones_like(fk), max_k=30, rng=rng)
    hum = hum / (np.abs(hum).max() + 1e-9)
    hiss = _band_noise(n, sr, 1500, 7000, rng) * 0.35
    return (hum + hiss) * _ramp(n, sr, 0.08, 0.08)


def _rain(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    noise = _band_noise(n, sr, 200, 7500, rng) * 0.3
    drops = (rng.random(n) < 300 / sr) * rng.uniform(-1, 1, n) * 3
    drops = np.convolve(drops, np.exp(-np.arange(int(0.002 * sr)) / (0.0005 * sr)), mode="same")
    return (noise + drops) * _ramp(n, sr, 0.02, 0.02)


def _clock_tick(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    period, res = rng.uniform(0.45, 0.55), (rng.uniform(2000, 3500), rng.uniform(4000, 6000))
    count = [0]

    def tick(r: np.random.Generator) -> np.ndarray:
        m = int(0.02 * sr)
        t = np.arange(m) / sr
        count[0] += 1
        return np.sin(2 * np.pi * res[count[0] % 2] * t) * np.exp(-t / 0.003)

    return _fill(n, sr, rng, tick, (period - 0.02, period - 0.02 + 0.005))


def _chirping_birds(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    def chirp(r: np.random.Generator) -> np.ndarray:
        m = int(r.uniform(0.04, 0.10) * sr)
        f = np.linspace(r.uniform(3000, 4500), r.uniform(5000, 7000), m)
        return np.sin(2 * np.pi * np.cumsum(f) / sr) * np.hanning(m)

    return _fill(n, sr, rng, chirp, (0.03, 0.35))


def _church_bells(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    base = rng.uniform(250, 500)
    ratios = np.array([0.5, 1.0, 1.19, 1.5, 2.0, 2.51, 2.66, 3.01])

    def strike(r: np.random.Generator) -> np.ndarray:
        m = int(r.uniform(1.0, 2.0) * sr)
        t = np.arange(m) / sr
        out = np.zeros(m)
        for i, ratio in enumerate(ratios):
            tau = r.uniform(0.8, 2.0) / (1 + 0.3 * i)
            out += np.sin(2 * np.pi * base * ratio * t + r.uniform(0, 6.3)) * np.exp(-t / tau) / (1 + 0.2 * i)
        return out * _ramp(m, sr, 0.002, 0.01)

    return _fill(n, sr, rng, strike, (0.0, 0.01))


def _engine(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    f0 = rng.uniform(25, 45) * (1 + 0.05 * (_smooth_random(n, sr, 0.5, rng) - 0.5))
    tone = _harmonic(f0, sr, lambda k, fk: np.ones_like(fk) / k, max_k=12, rng=rng)
    tone = tone / (np.abs(tone).max() + 1e-9)
    rumble = _band_noise(n, sr, 20, 400, rng) * 0.3
    am = 1 + 0.3 * np.sin(2 * np.pi * np.cumsum(f0 / 2) / sr)
    return (tone + rumble) * am * _ramp(n, sr, 0.05, 0.05)


VOWELS = [(700, 1200, 2500), (400, 2000, 2600), (300, 850, 2250), (500, 1500, 2500), (600, 1000, 2400)]


def _speech(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    pitch = rng.uniform(100, 220)

    def syllable(r: np.random.Generator) -> np.ndarray:
        m = int(r.uniform(0.12, 0.3) * sr)
        t = np.linspace(0, 1, m)
        f0 = pitch * r.uniform(0.9, 1.15) * (1 + r.uniform(-0.15, 0.15) * t)
        formants = [(f, 80 + f * 0.05) for f in VOWELS[int(r.integers(len(VOWELS)))]]
        tone = _harmonic(f0, sr, lambda k, fk: _formant_gain(fk.mean(), formants), max_k=40, rng=r)
        return tone * np.sin(np.pi * t) ** 0.5

    return _fill(n, sr, rng, syllable, (0.03, 0.25))


def _dishes(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    def clink(r: np.random.Generator) -> np.ndarray:
        m = int(0.25 * sr)
        t = np.arange(m) / sr
        out = np.zeros(m)
        for _ in range(4):
            out += np.sin(2 * np.pi * r.uniform(2000, 7000) * t) * np.exp(-t / r.uniform(0.02, 0.08))
        return out * _ramp(m, sr, 0.001, 0.01)

    return _fill(n, sr, rng, clink, (0.05, 0.5))


_RECIPES: dict[str, Callable[[int, int, np.random.Generator], np.ndarray]] = {
    "dog": _dog,
    "cat": _cat,
    "clock_alarm": _clock_alarm,
    "pouring_water": _pouring_water,
    "vacuum_cleaner": _vacuum_cleaner,
    "rain": _rain,
    "clock_tick": _clock_tick,
    "chirping_birds": _chirping_birds,
    "church_bells": _church_bells,
    "engine": _engine,
    "Speech": _speech,
    "Dishes": _dishes,
}
SYNTH_CATEGORIES = tuple(_RECIPES)


def active_extent(audio: np.ndarray, sr: int, below_peak_db: float = 30.0) -> tuple[float, float]:
    """Start and end (seconds) of the part of ``audio`` louder than ``below_peak_db`` under its peak.

    Measured on 10 ms frames (RMS), as an annotator marks where a sound is heard: the demo DESED
    labels of notebook 01's generated data come from it.

    Args:
        audio: mono samples [N].
        sr: their sample rate in Hz.
        below_peak_db: how far under the loudest frame's RMS a frame still counts as heard, in dB.

    Returns:
        ``(start, end)`` in seconds: the start of the first heard frame and the end of the last one
        (the samples after the last whole 10 ms frame are not measured).
    """
    hop = max(1, sr // 100)
    frames = audio[: len(audio) // hop * hop].reshape(-1, hop) if len(audio) >= hop else audio[None, :]
    rms = np.sqrt((frames.astype(np.float64) ** 2).mean(axis=1))
    loud = np.flatnonzero(rms >= rms.max() * 10 ** (-below_peak_db / 20))
    if not len(loud):
        return 0.0, len(audio) / sr
    return loud[0] * hop / sr, min(len(audio), (loud[-1] + 1) * hop) / sr


def synth_event(category: str, duration: float, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """Render one synthetic sound of ``category`` lasting ``duration`` seconds (float32, peak 0.5).

    Notebook 01 generates the demo datasets with it.

    Args:
        category: an ESC-50 category of the demo (``dog``, ``rain``, ...) or a DESED non-target
            label (``Speech``, ``Dishes``); see :data:`SYNTH_CATEGORIES`.
        duration, sample_rate: the sound's length in seconds and its rate in Hz.
        rng: draws the per-clip variation (pitch, timing, timbre), so two calls give two different dogs.

    Returns:
        Mono float32 samples [round(duration * sample_rate)], zero mean, peak 0.5.

    Raises:
        ValueError: ``category`` has no recipe, or ``duration`` rounds to no sample.
    """
    if category not in _RECIPES:
        raise ValueError(f"no synthetic recipe for {category!r}; available: {', '.join(SYNTH_CATEGORIES)}")
    n = int(round(duration * sample_rate))
    if n <= 0:
        raise ValueError(f"duration must be positive, got {duration}")
    out = _RECIPES[category](n, sample_rate, rng)
    out = out - out.mean()
    return (out * (PEAK / (np.abs(out).max() + 1e-12))).astype(np.float32)
