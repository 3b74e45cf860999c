"""Recording conditions users have: a change applied to a recording before the model hears it
(notebook 08, through :func:`sed_utils.evaluate.robustness`; ``benchmarks/levels.py``).

Every other number of the series is measured on sounds at the levels the scene mixer chose (scenes
peak-normalised to -1 dBFS). A user's recording may be 30 dB quieter (a phone across the room),
band-limited (a phone's microphone), a second long (a clip cut around the sound) or clipped (a
recorder's gain set too high): a :class:`Condition` is one such change.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

__all__ = ["Condition", "LEVELS_DB", "level_conditions", "odd_conditions"]

#: The attenuations of the level sweep, in dB below the mixer's levels.
LEVELS_DB = (0.0, -10.0, -20.0, -30.0, -40.0)


@dataclass(frozen=True)
class Condition:
    """One change to a recording, applied before the model hears it (notebook 08).

    Args:
        name: how tables and figures call it.
        gain_db: a gain (negative: quieter), applied last.
        highpass_hz, lowpass_hz: a 4th-order Butterworth band limit (0: none), as a phone's microphone.
        noise_dbfs: white noise of this RMS level (dBFS) added after the gain (None: none): the
            microphone's own noise, which stays where it is when the sound is further away. The same
            noise (seed 0) for every recording, so the change is repeatable.
        seconds: keep only this many seconds, centred on the recording's loudest 25 ms (0: all): a
            short clip cut around its sound, as users record them.
        overdrive_db: scale the peak this many dB above full scale, then clip at +-1 (0: none): a
            recording made with the gain too high.

    Applied in this order: band limit, cut, overdrive, gain, noise.
    """

    name: str = "as mixed"
    gain_db: float = 0.0
    highpass_hz: float = 0.0
    lowpass_hz: float = 0.0
    noise_dbfs: float | None = None
    seconds: float = 0.0
    overdrive_db: float = 0.0

    def apply(self, audio: np.ndarray, sample_rate: int) -> np.ndarray:
        """The changed copy of ``audio`` (mono float samples at ``sample_rate``), float32.

        Raises:
            ValueError: a band edge at or above the Nyquist frequency.
        """
        out = np.asarray(audio, dtype=np.float64)
        for cutoff, btype in ((self.highpass_hz, "highpass"), (self.lowpass_hz, "lowpass")):
            if cutoff <= 0:
                continue
            if cutoff >= sample_rate / 2:
                raise ValueError(f"condition {self.name!r}: {btype} {cutoff} Hz is not below the Nyquist "
                                 f"frequency of {sample_rate} Hz audio")
            if len(out) > 30:  # sosfiltfilt needs a few samples more than its padding
                from scipy import signal  # here: importing it costs every notebook half a second

                out = signal.sosfiltfilt(signal.butter(4, cutoff, btype, fs=sample_rate, output="sos"), out)
        if self.seconds > 0:
            out = _around_loudest(out, int(round(self.seconds * sample_rate)), sample_rate)
        if self.overdrive_db > 0:
            peak = float(np.max(np.abs(out))) if len(out) else 0.0
            if peak > 0:
                out = np.clip(out / peak * 10.0 ** (self.overdrive_db / 20.0), -1.0, 1.0)
        out = out * 10.0 ** (self.gain_db / 20.0)
        if self.noise_dbfs is not None:
            out = out + 10.0 ** (self.noise_dbfs / 20.0) * np.random.default_rng(0).standard_normal(len(out))
        return out.astype(np.float32)

    def changes_nothing(self) -> bool:
        """True when :meth:`apply` returns the recording as it is: its score curves are the plain ones."""
        return self.key() == Condition().key()

    def key(self) -> dict[str, float]:
        """What changes the audio (not the name): part of the score-curve cache key. Fields added after
        curves were cached leave the key while they change nothing, so those caches stay valid."""
        return {k: v for k, v in dataclasses.asdict(self).items()
                if k != "name" and not (k in _ADDED and v == _ADDED[k])}


#: Condition fields added after the first cached curves, at the value that changes nothing.
_ADDED = {"noise_dbfs": None, "seconds": 0.0, "overdrive_db": 0.0}


def _around_loudest(audio: np.ndarray, n: int, sample_rate: int) -> np.ndarray:
    """``n`` samples of ``audio`` centred on its loudest 25 ms (inside the recording; all if shorter)."""
    if len(audio) <= n:
        return audio
    frame = max(1, int(0.025 * sample_rate))
    energy = np.convolve(audio ** 2, np.ones(frame), mode="same")
    start = int(np.clip(int(np.argmax(energy)) - n // 2, 0, len(audio) - n))
    return audio[start:start + n]


def level_conditions(levels_db: tuple[float, ...] = LEVELS_DB,
                     noise_dbfs: float | None = None) -> list[Condition]:
    """The level sweep: the recordings attenuated by each of ``levels_db`` dB (notebook 08), with white
    noise at ``noise_dbfs`` RMS added after the gain when given (a microphone's own noise)."""
    tag = "" if noise_dbfs is None else f", noise {noise_dbfs:.0f} dBFS"
    return [Condition((f"{g:+.0f} dB" if g else "0 dB") + tag, gain_db=float(g), noise_dbfs=noise_dbfs)
            for g in levels_db]


def odd_conditions(noise_dbfs: float | None = None) -> list[Condition]:
    """Recordings unlike the mixer's (notebook 08; ``benchmarks/levels.py --odd``): as mixed, a phone's
    band (100 Hz-4 kHz and 100 Hz-6 kHz), short clips cut around their sound (4, 2 and 1 s), and
    clipped ones (peak driven 6 and 20 dB over full scale); white noise at ``noise_dbfs`` added to
    each when given."""
    tag = "" if noise_dbfs is None else f", noise {noise_dbfs:.0f} dBFS"
    changes = [("as mixed", {}), ("phone band 100-4000 Hz", {"highpass_hz": 100.0, "lowpass_hz": 4000.0}),
               ("phone band 100-6000 Hz", {"highpass_hz": 100.0, "lowpass_hz": 6000.0}),
               ("cut to 4 s", {"seconds": 4.0}), ("cut to 2 s", {"seconds": 2.0}),
               ("cut to 1 s", {"seconds": 1.0}), ("clipped, +6 dB", {"overdrive_db": 6.0}),
               ("clipped, +20 dB", {"overdrive_db": 20.0})]
    return [Condition(name + tag, noise_dbfs=noise_dbfs, **fields) for name, fields in changes]
