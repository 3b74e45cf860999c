"""Evaluating any trained model: post-processing chosen on validation, every metric on the test set.

``choose``: thresholds, median filters and minimum durations chosen per class on the validation
scenes; ``curves``: the score curves of many files, cached; ``negatives``: false alarms on ESC-50
clips of the other classes; ``evaluation``: :func:`evaluate` (notebooks 06, 07, 08); ``robustness``:
the same model under recording conditions users have (levels, band limits; notebook 08).
"""

from sed_utils.evaluate.choose import (
           choose_event_postprocessing,
           choose_min_durations,
           choose_post_processing,
)
from sed_utils.evaluate.curves import model_curves, set_curves
from sed_utils.evaluate.evaluation import Evaluation, evaluate, heldout_scenes_config
from sed_utils.evaluate.negatives import negative_clip_paths, negative_false_alarms, negative_folds
from sed_utils.evaluate.robustness import missed_clips, robustness, target_clip_paths

__all__ = ["Evaluation", "evaluate", "heldout_scenes_config", "choose_post_processing",
           "choose_event_postprocessing", "choose_min_durations", "model_curves", "set_curves",
           "negative_folds", "negative_clip_paths", "negative_false_alarms", "missed_clips", "robustness",
           "target_clip_paths"]
