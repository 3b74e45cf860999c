"""Audio -> model input: the one log-mel front end, its cache and normaliser, and the augmentations.

``logmel``: :class:`LogMel` (the front end of every model, cache and figure), :func:`feature_cache`,
:class:`Normaliser`, the window cutter. ``augment``: the augmentations on dB log-mels every training
set uses (notebook 04). ``conditions``: a change to a recording before the model hears it (a gain, a
band limit: the level sweep of notebook 08).
"""

from sed_utils.features.conditions import LEVELS_DB, Condition, level_conditions, odd_conditions
from sed_utils.features.logmel import (
    LogMel,
    Normaliser,
    active_frames,
    build_logmel,
    chunk_waveforms,
    cut_samples,
    cut_windows,
    feature_cache,
    feature_key,
    logmel_db,
    mel_band_hz,
    mel_extractor,
    n_frames,
    normalization_stats,
    window_starts,
)

__all__ = ["active_frames", "mel_band_hz", "LogMel", "Normaliser", "build_logmel", "logmel_db",
           "mel_extractor", "cut_windows",
           "window_starts", "feature_key", "feature_cache", "normalization_stats", "n_frames", "cut_samples",
           "chunk_waveforms", "Condition", "LEVELS_DB", "level_conditions",
           "odd_conditions"]
