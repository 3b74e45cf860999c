"""Training any model kind: its examples, the one dataset, the one loop (notebooks 04, 05, 08).

``examples``: :class:`Examples` and :class:`ExampleDataset` (augmented on the fly); ``data``: the two
recipes (1 s chunks, whole scenes) and :func:`training_data`; ``loop``: :func:`fit_epoch`,
:func:`validate`, :func:`train` (early stopping, a checkpoint at each improvement, resume).
"""

from sed_utils.train import distributed
from sed_utils.train.data import (
    TrainingData,
    background_features,
    chunk_data,
    clip_examples,
    negative_clip_features,
    other_categories,
    scene_data,
    segments_with_features,
    training_data,
)
from sed_utils.train.examples import ExampleDataset, Examples, OnTheFlyDataset, label_matrix, time_items
from sed_utils.train.loop import EarlyStopping, TrainResult, fit_epoch, train, training_key, validate

__all__ = ["Examples", "ExampleDataset", "OnTheFlyDataset", "label_matrix", "time_items", "TrainingData",
           "training_data", "chunk_data", "scene_data", "segments_with_features", "background_features",
           "negative_clip_features", "clip_examples", "other_categories", "EarlyStopping", "TrainResult",
           "fit_epoch", "validate",
           "train", "training_key", "distributed"]
