"""Recording conditions users have: a change applied to a recording before the model hears it
(notebook 08, through :func:`sed_utils.evaluate.robustness`; ``benchmarks/levels.py``).

Every other number of the series is measured on sounds at the levels the scene mixer chose (scenes
peak-normalised to -1 dBFS). A user's recording may be 30 dB quieter (a phone across the room) or
band-limited (a phone's microphone): a :class:`Condition` is one such change.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
from scipy import signal

__all__ = ["Condition", "LEVELS_DB", "level_conditions"]

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
    """

    name: str = "as mixed"
    gain_db: float = 0.0
    highpass_hz: float = 0.0
    lowpass_hz: float = 0.0
    noise_dbfs: float | None = None

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
                out = signal.sosfiltfilt(signal.butter(4, cutoff, btype, fs=sample_rate, output="sos"), out)
        out = out * 10.0 ** (self.gain_db / 20.0)
        if self.noise_dbfs is not None:
            out = out + 10.0 ** (self.noise_dbfs / 20.0) * np.random.default_rng(0).standard_normal(len(out))
        return out.astype(np.float32)

    def key(self) -> dict[str, float]:
        """What changes the audio (not the name): part of the score-curve cache key."""
        return {k: v for k, v in dataclasses.asdict(self).items()
                if k != "name" and not (k == "noise_dbfs" and v is None)}


def level_conditions(levels_db: tuple[float, ...] = LEVELS_DB,
                     noise_dbfs: float | None = None) -> list[Condition]:
    """The level sweep: the recordings attenuated by each of ``levels_db`` dB (notebook 08), with white
    noise at ``noise_dbfs`` RMS added after the gain when given (a microphone's own noise)."""
    tag = "" if noise_dbfs is None else f", noise {noise_dbfs:.0f} dBFS"
    return [Condition((f"{g:+.0f} dB" if g else "0 dB") + tag, gain_db=float(g), noise_dbfs=noise_dbfs)
            for g in levels_db]
