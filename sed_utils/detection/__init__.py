"""Detecting events in your own recordings with a trained model (notebook 09, ``python -m sed_utils detect``).

``recordings``: :func:`detect` (one recording: file or samples), :func:`detect_files` (files, folders,
globs; bad files listed, not fatal), the stored post-processing with the caller's overrides;
``output``: the events (or score curves) in the layouts other tools read.
"""

from sed_utils.detection.output import events_text, write_events
from sed_utils.detection.recordings import (
    AUDIO_SUFFIXES,
    Detection,
    DetectionBatch,
    detect,
    detect_files,
    detection_logmel,
    expand_inputs,
    file_names,
    find_checkpoint,
    level_note,
    load_model,
    post_processing_of,
)

__all__ = ["AUDIO_SUFFIXES", "Detection", "DetectionBatch", "detect", "detect_files", "detection_logmel",
           "expand_inputs", "file_names", "find_checkpoint", "level_note", "load_model", "post_processing_of",
           "events_text", "write_events"]
