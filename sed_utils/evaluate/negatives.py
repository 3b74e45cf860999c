"""False alarms on real negatives: ESC-50 clips of the other 45 classes (notebooks 06, 08).

A user's recording holds mostly other sounds. A clip of rain or a door knock holds none of the five
classes, so any event the detector reports there is a false alarm a user would see. The clips come
from the test set's held-out fold with ``test_set: scenes``; with DESED as the test set there is no
held-out ESC-50 fold, and the validation fold's clips are used (``held_out`` says so, and is false
too when those clips took part in the choice of the post-processing).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from sed_utils.config.settings import Config
from sed_utils.data.esc50 import ESC50_CLIP_SECONDS, esc50_root, load_esc50_meta, negative_clips
from sed_utils.evaluate.curves import model_curves
from sed_utils.labels.grid import PostProcessing
from sed_utils.models.checkpoint import TrainedModel

__all__ = ["negative_folds", "negative_clip_paths", "negative_false_alarms"]


def negative_folds(cfg: Config) -> tuple[int, ...]:
    """The folds whose negatives are counted: the scenes' test fold, or (DESED as test) the validation
    fold(s) (notebooks 06, 08)."""
    return tuple(cfg.folds.scenes_test) if cfg.test_set == "scenes" else tuple(cfg.valid_folds)


def _negatives(cfg: Config, folds: tuple[int, ...]) -> pd.DataFrame:
    return negative_clips(load_esc50_meta(esc50_root(cfg)), cfg.esc50_categories, folds)


def negative_clip_paths(cfg: Config, folds: tuple[int, ...]) -> dict[str, Path]:
    """The ESC-50 clips of the NON-target classes in ``folds``, name -> audio file (notebook 08)."""
    return {str(r.filename): Path(r.path) for r in _negatives(cfg, folds).itertuples()}


def negative_false_alarms(cfg: Config, trained: TrainedModel, post: PostProcessing, *,
                          folds: tuple[int, ...] | None = None, progress: bool = True) -> dict[str, Any]:
    """Share of real ESC-50 clips of the non-target classes on which the detector reports any event
    under ``post`` (notebooks 06, 08).

    Args:
        cfg: the config; trained: the model; post: its post-processing.
        folds: whose clips (default :func:`negative_folds`).
        progress: a progress bar.

    Returns:
        ``clips``, ``with_false_alarm``, ``share``, ``folds``, ``held_out`` (no part in any choice),
        ``per_category`` (share of each category's clips hit, every category), ``worst_categories``
        (the top 5 of those above 0) and ``events_per_label``.
    """
    folds = negative_folds(cfg) if folds is None else tuple(folds)
    neg = _negatives(cfg, folds)
    held_out = not (set(folds) & set(cfg.valid_folds))
    if neg.empty:
        return {"clips": 0, "with_false_alarm": 0, "share": float("nan"), "folds": list(folds),
                "held_out": held_out}
    paths = {str(r.filename): Path(r.path) for r in neg.itertuples()}
    events = post.events(model_curves(cfg, trained, paths, ESC50_CLIP_SECONDS, progress=progress,
                                      desc="negative clips"))
    hit = set(events["filename"])
    per_category = neg.assign(hit=neg["filename"].isin(hit)).groupby("category")["hit"].mean()
    return {"clips": len(neg), "with_false_alarm": len(hit), "share": len(hit) / len(neg),
            "folds": list(folds),
            "held_out": held_out,
            "per_category": per_category.astype(float).round(3).sort_index().to_dict(),
            "worst_categories": per_category[per_category > 0].sort_values(ascending=False).head(5)
                                .round(3).to_dict(),
            "events_per_label": events["event_label"].value_counts().to_dict()}
