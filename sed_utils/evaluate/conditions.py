"""Recording conditions users have, and how a model fares under them (notebook 08; benchmarks/levels.py).

Every other number of the series is measured on sounds at the levels the scene mixer chose: scenes
peak-normalised to -1 dBFS, single clips as ESC-50 recorded them. A user's recording may be 30 dB
quieter (a phone across the room), band-limited (a phone's microphone) or hold one clean sound
with no background. A :class:`Condition` is one such change, applied to the test audio before the
model hears it; :func:`robustness` scores one trained model under each, with the post-processing
chosen on the (unchanged) validation scenes, as ``detect`` would use it:

* ``event_f1``, ``event_recall``: the test set's event-based macro F1 and recall (sed_eval);
* ``clips_found``: the share of single clips of the five target categories from the held-out fold
  (clean, no background, at ESC-50's levels) on which the detector reports their class anywhere;
* ``negatives_alarmed``: the share of the held-out fold's clips of the other 45 categories on which
  it reports any event.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import signal

from sed_utils.config.settings import Config
from sed_utils.data.esc50 import ESC50_CLIP_SECONDS, esc50_root, load_esc50_meta
from sed_utils.data.test_sets import load_test_set
from sed_utils.evaluate.curves import model_curves
from sed_utils.evaluate.evaluation import evaluate
from sed_utils.evaluate.negatives import negative_clip_paths, negative_folds
from sed_utils.metrics.f1 import event_metrics
from sed_utils.models.checkpoint import TrainedModel, load_trained

__all__ = ["Condition", "LEVELS_DB", "level_conditions", "target_clip_paths", "robustness"]

#: The attenuations of the level sweep, in dB below the mixer's levels.
LEVELS_DB = (0.0, -10.0, -20.0, -30.0, -40.0)


@dataclass(frozen=True)
class Condition:
    """One change to a recording, applied before the model hears it (notebook 08).

    Args:
        name: how tables and figures call it.
        gain_db: a gain (negative: quieter), applied last.
        highpass_hz, lowpass_hz: a 4th-order Butterworth band limit (0: none), as a phone's microphone.
    """

    name: str = "as mixed"
    gain_db: float = 0.0
    highpass_hz: float = 0.0
    lowpass_hz: float = 0.0

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
        return (out * 10.0 ** (self.gain_db / 20.0)).astype(np.float32)

    def key(self) -> dict[str, float]:
        """What changes the audio (not the name): part of the score-curve cache key."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k != "name"}


def level_conditions(levels_db: tuple[float, ...] = LEVELS_DB) -> list[Condition]:
    """The level sweep: the recordings attenuated by each of ``levels_db`` dB (notebook 08)."""
    return [Condition(f"{g:+.0f} dB" if g else "0 dB", gain_db=float(g)) for g in levels_db]


def target_clip_paths(cfg: Config, folds: tuple[int, ...]) -> dict[str, tuple[Path, str]]:
    """The ESC-50 clips of the five target categories in ``folds``: name -> (audio file, DESED label)
    (notebook 08)."""
    meta = load_esc50_meta(esc50_root(cfg))
    label_of = {cat: label for label, cat in cfg.classes.items()}
    rows = meta[meta["fold"].isin(list(folds)) & meta["category"].isin(list(label_of))]
    return {str(r.filename): (Path(r.path), label_of[r.category]) for r in rows.itertuples()}


def robustness(cfg: Config, kind: str, conditions: list[Condition], *, trained: TrainedModel | None = None,
               progress: bool = True) -> pd.DataFrame:
    """Score the trained model of ``kind`` under each condition (notebook 08; benchmarks/levels.py).

    The post-processing is the one :func:`sed_utils.evaluate.evaluate` chose on the validation scenes
    at their own levels (evaluated first when needed): a user's recording does not come with a
    validation set at its level either.

    Args:
        cfg: the config (test set, held-out fold, run folder).
        kind: the model kind.
        conditions: what to apply to the test audio, one row each.
        trained: the loaded model (default: from ``cfg.paths.checkpoint(kind)``).
        progress: progress bars.

    Returns:
        One row per condition: ``condition``, ``gain_db``, ``event_f1``, ``event_recall`` (test set,
        macro), ``clips_found`` (share of the held-out fold's single target clips whose class is
        detected), ``negatives_alarmed`` (share of its other clips with any event), ``clips``,
        ``negatives`` (how many of each).
    """
    trained = trained or load_trained(cfg.paths.checkpoint(kind))
    post = evaluate(cfg, kind, progress=progress, trained=trained).post
    labels = cfg.desed_labels
    test = load_test_set(cfg, progress=progress)
    folds = negative_folds(cfg)
    targets = target_clip_paths(cfg, folds)
    negatives = negative_clip_paths(cfg, folds)
    rows = []
    for cond in conditions:
        def curves(paths: dict[str, Path], seconds: float, what: str, cond: Condition = cond) -> pd.DataFrame:
            return post.events(model_curves(cfg, trained, paths, seconds, condition=cond, progress=progress,
                                            desc=f"{what}, {cond.name}"))
        events = curves({f: test.path(f) for f in test.files}, test.clip_seconds, "test")
        scores = event_metrics(test.events, events, test.files, labels, t_collar=cfg.eval.onset_collar,
                               percentage_of_length=cfg.eval.offset_collar_ratio)["macro"]
        found = curves({n: p for n, (p, _) in targets.items()}, ESC50_CLIP_SECONDS, "target clips")
        hits = set(zip(found["filename"], found["event_label"], strict=True))
        alarmed = curves(negatives, ESC50_CLIP_SECONDS, "negative clips")["filename"].nunique()
        rows.append({"condition": cond.name, "gain_db": cond.gain_db, "event_f1": scores["f1"],
                     "event_recall": scores["recall"],
                     "clips_found": np.mean([(n, lab) in hits for n, (_, lab) in targets.items()])
                     if targets else float("nan"),
                     "negatives_alarmed": alarmed / len(negatives) if negatives else float("nan"),
                     "clips": len(targets), "negatives": len(negatives)})
    return pd.DataFrame(rows)
