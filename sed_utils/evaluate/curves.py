"""Score curves of many files, cached: what every evaluation and choice reads (notebooks 06, 07, 08).

A model's curves depend on its weights and the audio only, so they are computed once per model and
set of files and kept in ``cfg.curve_cache`` (named by the digest of the weights, not of the
checkpoint file, which also holds the post-processing the evaluation writes into it). Re-running a
notebook with another collar or candidate list then costs seconds.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from sed_utils.config.settings import Config
from sed_utils.core import atomic
from sed_utils.core.keys import digest, file_identity
from sed_utils.core.progress import tqdm
from sed_utils.data.desed import StrongLabelSet
from sed_utils.io.audio import read_audio
from sed_utils.labels.grid import ScoreCurves
from sed_utils.models.checkpoint import TrainedModel
from sed_utils.models.kinds import get_kind, score_curve

if TYPE_CHECKING:
    from sed_utils.features.conditions import Condition

__all__ = ["model_curves", "set_curves"]


def model_curves(cfg: Config, trained: TrainedModel, paths: dict[str, Path], clip_seconds: float, *,
                 condition: Condition | None = None, progress: bool = True,
                 desc: str = "score curves") -> ScoreCurves:
    """Score curves of the files ``paths`` (name -> audio file), cached under a key of the model's
    weights, the files (their sizes and mtimes), the window hop, the clip length, the condition and the
    arithmetic the model is scored in (notebooks 06, 08).

    Args:
        cfg: the config (the window hop, the curve cache).
        trained: the model; paths: the files; clip_seconds: a curve ends at least here.
        condition: a change applied to each file's audio first (a level, a band limit); None, or one
            that changes nothing, scores the files as they are (and shares their cached curves).
        progress, desc: the progress bar (it must say which set is scored).
    """
    names = list(paths)
    if condition is not None and condition.changes_nothing():
        condition = None
    hop = cfg.postprocess.window_hop_seconds if get_kind(trained.kind).time_stride is None else None
    precision = trained.detector.precision  # float32 left out of the key: the curves cached before it
    key = digest("curves-v3", trained.weights_key, names, [str(paths[n]) for n in names],
                 file_identity(paths[n] for n in names), hop, clip_seconds,
                 *([condition.key()] if condition is not None else []),
                 *([precision] if precision != "float32" else []))
    cache = cfg.curve_cache / f"curves_{trained.kind}_{key}.npz"
    if cache.is_file():
        with np.load(cache) as z:
            return {n: (z[f"b{i}"], z[f"s{i}"]) for i, n in enumerate(names)}
    sr = trained.detector.sample_rate
    def audio(name: str) -> np.ndarray:
        samples = read_audio(paths[name], sr)
        return samples if condition is None else condition.apply(samples, sr)

    curves = {n: score_curve(trained.detector, audio(n), sr, hop_seconds=hop or 0.0, end_seconds=clip_seconds)
              for n in tqdm(names, desc=desc, disable=not progress)}
    atomic.save_npz(cache, **{f"{p}{i}": curves[n][j] for i, n in enumerate(names) for j,
                              p in enumerate("bs")})
    return curves


def set_curves(cfg: Config, trained: TrainedModel, ds: StrongLabelSet, *, progress: bool = True,
               desc: str = "score curves") -> ScoreCurves:
    """:func:`model_curves` of every clip of a strongly labelled set (notebooks 06, 08).

    Args:
        cfg: the config (the window hop, the curve cache).
        trained: the model.
        ds: the set; every file of ``ds.files`` is scored (those without target events too), and each
            curve ends at ``ds.clip_seconds`` at least.
        progress, desc: the progress bar (it must say which set is scored).

    Returns:
        ``{filename: (boundaries [T + 1] in seconds, probabilities [T, C])}``.
    """
    return model_curves(cfg, trained, {f: ds.path(f) for f in ds.files}, ds.clip_seconds, progress=progress,
                        desc=desc)


