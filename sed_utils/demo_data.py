"""The demo profile's SYNTHETIC datasets, written in the real datasets' archive layouts.

Why synthetic: the real ESC-50 (600 MB) and DESED audio take a long download and hours of CPU
training. The demo profile instead generates, in a few seconds and without a network, small
stand-ins with the SAME file layout, metadata columns and label format, so every notebook runs its
real code path end to end (download through ``file://``, extraction, validation, chunking,
training, sed_eval). The sounds are simple synthetic recipes (barks, meows, beeps, ...), chosen to
be clearly different in a log-mel spectrogram so a small model learns them in minutes. Numbers
obtained on this data say that the code works, NOT how well a model detects real sounds.

Output (``make_demo_mirror``): ``cfg.data_root/mirror/`` with ``ESC-50-master.zip``,
``DESEDpublic_eval.tar.gz`` and ``SHA256SUMS``; byte-for-byte the same for the same config.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import soundfile as sf

from sed_utils import atomic

if TYPE_CHECKING:
    from sed_utils.config import Config

__all__ = [
    "ESC50_DEMO_IDS",
    "DEMO_NEGATIVES",
    "DESED_DEMO_OTHERS",
    "MIRROR_FILES",
    "SYNTH_CATEGORIES",
    "synth_event",
    "active_extent",
    "esc50_demo_files",
    "desed_demo_files",
    "make_demo_mirror",
    "mirror_dir",
    "sha256_file",
]

GENERATOR_VERSION = 3  # bump when a recipe changes, so existing mirrors are rebuilt
MIRROR_FILES = ("ESC-50-master.zip", "DESEDpublic_eval.tar.gz")
# Real ESC-50 target ids (meta/esc50.csv), so the demo csv looks like upstream's.
ESC50_DEMO_IDS = {
    "dog": 0,
    "cat": 5,
    "rain": 10,
    "chirping_birds": 14,
    "pouring_water": 17,
    "vacuum_cleaner": 36,
    "clock_alarm": 37,
    "clock_tick": 38,
    "engine": 44,
    "church_bells": 46,
}
ESC10 = {"dog", "rain", "sea_waves", "crying_baby", "clock_tick", "sneezing", "helicopter", "chainsaw",
         "rooster", "crackling_fire"}
# Negative ESC-50 categories of the demo: "none of the five" examples for the model.
DEMO_NEGATIVES = ("rain", "clock_tick", "chirping_birds", "church_bells", "engine")
# Non-target DESED classes that appear in the demo scenes (the model has to stay silent on them).
DESED_DEMO_OTHERS = ("Speech", "Dishes")
ESC50_FOLDS = (1, 2, 3, 4, 5)  # the dataset's own structure, not a training choice
ESC50_CLIPS_PER_FOLD = 3
ESC50_CLIP_SECONDS = 5.0
DESED_N_CLIPS = 24
DESED_CLIP_SECONDS = 10.0
PEAK = 0.5  # synth_event output peak; callers scale it
# (min, max) event length in seconds in the demo scenes; continuous sounds last longer.
DESED_EVENT_SECONDS = {
    "dog": (0.5, 3.0),
    "cat": (0.6, 2.5),
    "clock_alarm": (1.0, 4.0),
    "pouring_water": (2.0, 6.0),
    "vacuum_cleaner": (3.0, 8.0),
    "Speech": (0.5, 4.0),
    "Dishes": (0.3, 2.0),
}
FIXED_TIME = (1980, 1, 1, 0, 0, 0)  # zip timestamps; tar uses mtime 0: same bytes every run


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

    Measured on 10 ms frames (RMS), as an annotator marks where a sound is heard.
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

    ``category`` is an ESC-50 category of the demo (``dog``, ``rain``, ...) or a DESED non-target
    label (``Speech``, ``Dishes``); see :data:`SYNTH_CATEGORIES`. ``rng`` draws the per-clip
    variation (pitch, timing, timbre), so two calls give two different dogs.
    """
    if category not in _RECIPES:
        raise ValueError(f"no synthetic recipe for {category!r}; available: {', '.join(SYNTH_CATEGORIES)}")
    n = int(round(duration * sample_rate))
    if n <= 0:
        raise ValueError(f"duration must be positive, got {duration}")
    out = _RECIPES[category](n, sample_rate, rng)
    out = out - out.mean()
    return (out * (PEAK / (np.abs(out).max() + 1e-12))).astype(np.float32)


# ----------------------------------------------------------------------------------------------
# Datasets
# ----------------------------------------------------------------------------------------------
def _wav_bytes(audio: np.ndarray, sr: int) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, np.clip(audio, -1, 1).astype(np.float32), sr, subtype="PCM_16", format="WAV")
    return buf.getvalue()


def _check_categories(cfg: Config) -> None:
    missing = [c for c in cfg.esc50_categories if c not in ESC50_DEMO_IDS]
    if missing:
        raise ValueError(
            f"config.yml classes {missing} have no synthetic demo recipe; the demo generator knows "
            f"{', '.join(c for c in ESC50_DEMO_IDS if c not in DEMO_NEGATIVES)}"
        )


def _esc50_clip(category: str, sr: int, rng: np.random.Generator, partial: bool) -> np.ndarray:
    n = int(ESC50_CLIP_SECONDS * sr)
    gain = 10 ** (rng.uniform(-9, 0) / 20)
    if not partial:
        return synth_event(category, ESC50_CLIP_SECONDS, sr, rng) * gain
    # Like many real ESC-50 clips: the sound in part of the clip, padded with digital silence or
    # very quiet noise; chunking's silence dropping has something to drop.
    dur = rng.uniform(1.0, 3.0)
    start = int(rng.uniform(0, ESC50_CLIP_SECONDS - dur) * sr)
    quiet = rng.random() < 0.5
    clip = (rng.standard_normal(n) * 1e-4).astype(np.float32) if quiet else np.zeros(n, np.float32)
    ev = synth_event(category, dur, sr, rng) * gain
    clip[start:start + len(ev)] += ev[: n - start]
    return clip


def esc50_demo_files(cfg: Config) -> dict[str, bytes]:
    """All files of the demo ``ESC-50-master.zip`` (archive path -> bytes), in archive order."""
    _check_categories(cfg)
    sr = cfg.audio.sample_rate
    categories = list(cfg.esc50_categories) + [c for c in DEMO_NEGATIVES if c not in cfg.esc50_categories]
    rows, audio = [], {}
    for category in categories:
        target = ESC50_DEMO_IDS[category]
        for fold in ESC50_FOLDS:
            src = 900000 + target * 100 + fold  # one source recording per (category, fold), like upstream
            for j in range(ESC50_CLIPS_PER_FOLD):
                take = "ABC"[j]
                name = f"{fold}-{src}-{take}-{target}.wav"
                rng = np.random.default_rng([cfg.seed, GENERATOR_VERSION, target, fold, j])
                audio[name] = _wav_bytes(_esc50_clip(category, sr, rng, partial=(j == 2)), sr)
                rows.append((name, fold, target, category, str(category in ESC10), str(src), take))
    rows.sort()
    csv = "filename,fold,target,category,esc10,src_file,take\n" + "".join(
        ",".join(str(v) for v in row) + "\n" for row in rows
    )
    files = {"ESC-50-master/LICENSE": _LICENSE.encode(), "ESC-50-master/meta/esc50.csv": csv.encode()}
    for name in sorted(audio):
        files[f"ESC-50-master/audio/{name}"] = audio[name]
    return files


@dataclass(frozen=True)
class _Event:
    onset: float
    offset: float
    label: str  # DESED label
    category: str  # synth recipe


def _scene_events(index: int, cfg: Config, rng: np.random.Generator) -> list[_Event]:
    """Events of demo scene ``index``: 0 = silent, 1-3 = only Speech/Dishes, others 1-4 targets."""
    labels = cfg.desed_labels
    if index == 0:
        return []
    picks: list[str] = []
    if index <= 3:
        picks = [DESED_DEMO_OTHERS[i % 2] for i in range(index, index + int(rng.integers(1, 3)))]
    else:
        n_targets = int(rng.integers(1, 5))
        picks = [labels[index % len(labels)]] + [labels[int(rng.integers(len(labels)))] for _ in
                                                  range(n_targets - 1)]
        if rng.random() < 0.5:
            picks.append(DESED_DEMO_OTHERS[int(rng.integers(2))])
    events: list[_Event] = []
    for label in picks:
        category = cfg.classes.get(label, label)
        lo, hi = DESED_EVENT_SECONDS.get(category, (0.3, 5.0))
        for _ in range(20):  # events of one class never overlap (DESED annotates them as one event)
            dur = round(rng.uniform(lo, hi), 3)
            onset = round(rng.uniform(0, DESED_CLIP_SECONDS - dur), 3)
            ev = _Event(onset, round(onset + dur, 3), label, category)
            if not any(e.label == label and e.onset < ev.offset and ev.onset < e.offset for e in events):
                events.append(ev)
                break
    return sorted(events, key=lambda e: (e.onset, e.label))


def desed_demo_files(cfg: Config) -> dict[str, bytes]:
    """All files of the demo ``DESEDpublic_eval.tar.gz`` (archive path -> bytes), in archive order.

    The tsv follows DESED exactly: tab separated, header ``filename onset offset event_label``,
    times with 3 decimals. The silent clip is not listed in it (as in DESED's public.tsv, a clip
    without events simply has no rows): the loader finds it in the audio folder.
    """
    _check_categories(cfg)
    sr = cfg.audio.sample_rate
    n = int(DESED_CLIP_SECONDS * sr)
    lines = ["filename\tonset\toffset\tevent_label"]
    audio = {}
    for i in range(DESED_N_CLIPS):
        name = f"synthetic_{i:03d}_0_10.wav"
        rng = np.random.default_rng([cfg.seed, GENERATOR_VERSION, 1000 + i])
        scene = (_band_noise(n, sr, 50, 4000, rng) * 0.002).astype(np.float32)  # room noise, ~-54 dBFS
        rows = []
        for ev in _scene_events(i, cfg, rng):
            start = int(round(ev.onset * sr))
            sound = synth_event(ev.category, ev.offset - ev.onset, sr, rng) * 10 ** (rng.uniform(-8, 0) / 20)
            scene[start:start + len(sound)] += sound[: n - start]
            # label what is audible: a bark train drawn for 2 s may fall silent at 1.7 s
            first, last = active_extent(sound, sr)
            rows.append((round(ev.onset + first, 3), round(ev.onset + last, 3), ev.label))
        lines += [f"{name}\t{a:.3f}\t{b:.3f}\t{lab}" for a, b, lab in sorted(rows)]
        peak = np.abs(scene).max()
        if peak > 0.99:
            scene *= 0.99 / peak
        audio[name] = _wav_bytes(scene, sr)
    files = {"dataset/metadata/eval/public.tsv": ("\n".join(lines) + "\n").encode(),
             "dataset/LICENSE": _LICENSE.encode()}
    for name in sorted(audio):
        files[f"dataset/audio/eval/public/{name}"] = audio[name]
    return files


_LICENSE = """SYNTHETIC DEMO DATA - not the real dataset.

Generated by sed_utils/demo_data.py of the sed-tutorial series for its `demo` profile: simple
synthetic sounds (barks, meows, beeps, ...) laid out like the real ESC-50 / DESED archives so the
notebooks can run end to end offline. No real recordings are included. Results obtained on this
data only show that the code runs; they say nothing about real sound event detection.
Public domain (CC0 1.0).
"""


# ----------------------------------------------------------------------------------------------
# Archives and the mirror
# ----------------------------------------------------------------------------------------------
def _zip_bytes(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        dirs: set[str] = set()
        for path in files:
            parts = path.split("/")[:-1]
            for k in range(1, len(parts) + 1):
                d = "/".join(parts[:k]) + "/"
                if d not in dirs:  # directory entries, like upstream's GitHub zip
                    dirs.add(d)
                    info = zipfile.ZipInfo(d, date_time=FIXED_TIME)
                    info.external_attr = (0o40755 << 16) | 0x10
                    zf.writestr(info, b"")
            info = zipfile.ZipInfo(path, date_time=FIXED_TIME)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, files[path])
    return buf.getvalue()


def _tar_gz_bytes(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=1) as gz:
        with tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for path, data in files.items():
                info = tarfile.TarInfo(path)
                info.size, info.mtime, info.mode = len(data), 0, 0o644
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, streamed: the same digest the download code verifies mirrors with."""
    from sed_utils.download import file_digests  # imported here: download imports this module lazily too

    return file_digests(path)["sha256"]


def mirror_dir(cfg: Config) -> Path:
    """Where the demo archives are written (``cfg.data_root / "mirror"``)."""
    return cfg.data_root / "mirror"


def _params(cfg: Config) -> dict:
    return {"generator_version": GENERATOR_VERSION, "seed": cfg.seed, "sample_rate": cfg.audio.sample_rate,
            "classes": cfg.classes}




def _valid_archives(out: Path, params: dict) -> set[str]:
    """Archives in ``out`` that were made with ``params`` and still match ``SHA256SUMS``."""
    sums, meta = out / "SHA256SUMS", out / "GENERATOR.json"
    if not (sums.is_file() and meta.is_file()):
        return set()
    try:
        if json.loads(meta.read_text()) != params:
            return set()
    except ValueError:
        return set()
    valid = set()
    for line in sums.read_text().splitlines():
        digest, _, name = line.partition("  ")
        if name in MIRROR_FILES and (out / name).is_file() and sha256_file(out / name) == digest:
            valid.add(name)
    return valid


def make_demo_mirror(cfg: Config) -> Path:
    """Write the SYNTHETIC demo archives and ``SHA256SUMS`` to :func:`mirror_dir`; return the folder.

    Skips the work when the archives are there, match ``SHA256SUMS`` and were made with the same
    parameters (``GENERATOR.json``: seed, sample rate, classes, recipe version); a damaged archive
    alone is rebuilt. Same config, same bytes: zip/tar timestamps, owners and member order are
    fixed, so the checksums are stable and the download code can verify the "download" exactly as
    it verifies upstream files.
    """
    out = mirror_dir(cfg)
    params = _params(cfg)
    valid = _valid_archives(out, params)
    if valid == set(MIRROR_FILES):
        return out
    out.mkdir(parents=True, exist_ok=True)
    (out / "SHA256SUMS").unlink(missing_ok=True)  # written last: its presence marks a complete mirror
    builders = {
        "ESC-50-master.zip": lambda: _zip_bytes(esc50_demo_files(cfg)),
        "DESEDpublic_eval.tar.gz": lambda: _tar_gz_bytes(desed_demo_files(cfg)),
    }
    lines = []
    for name in MIRROR_FILES:
        if name in valid:
            digest = sha256_file(out / name)
        else:
            data = builders[name]()
            atomic.write_bytes(out / name, data)
            digest = hashlib.sha256(data).hexdigest()
        lines.append(f"{digest}  {name}")
    atomic.write_bytes(out / "GENERATOR.json", (json.dumps(params, indent=1, sort_keys=True) + "\n").encode())
    atomic.write_bytes(out / "SHA256SUMS", ("\n".join(lines) + "\n").encode())
    return out
