"""Labels: how reference events become training targets, and how score curves become events again.

``chunks``: ESC-50's 1 s chunks (shifted starts, silence, negatives) and the 1 s multilabel segments
of any strongly labelled set (notebook 03). ``grid``: :class:`TimeGrid`, the time axis of a score curve,
which encodes events as frame targets and decodes scores into events and segment scores, and
:class:`PostProcessing`, the per-class choice it decodes with (notebooks 06, 08, 09). ``annotations``: label
files in the layouts other tools use (DCASE strong and weak tsv, Audacity label tracks, Raven selection
tables), read into the events table and written from it (notebook 09, ``detect --format``).
"""

from sed_utils.labels.annotations import ANNOTATION_FORMATS, Annotations, annotations_text, read_annotations
from sed_utils.labels.chunks import (
    build_esc50_chunks,
    build_segments,
    chunk_rms_db,
    chunk_starts,
    chunk_statistics,
    segment_labels,
    silent_chunks,
)
from sed_utils.labels.grid import (
    PostProcessing,
    ScoreCurves,
    TimeGrid,
    classwise_median_filter,
    clip_targets,
    curve_segment_scores,
    event_frame,
    events_of_curves,
    segments_to_events,
    smooth_curves,
)

__all__ = ["chunk_starts", "chunk_rms_db", "silent_chunks", "segment_labels", "build_esc50_chunks",
           "build_segments", "chunk_statistics", "TimeGrid", "PostProcessing", "ScoreCurves",
           "classwise_median_filter", "smooth_curves", "events_of_curves", "curve_segment_scores",
           "event_frame",
           "segments_to_events", "clip_targets", "ANNOTATION_FORMATS", "Annotations", "annotations_text",
           "read_annotations"]
