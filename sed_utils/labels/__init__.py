"""Labels: how reference events become training targets and how scores become events again.

``chunks``: ESC-50's 1 s chunks (shifted starts, silence, negatives) and the 1 s multilabel segments
of any strongly labelled set (notebook 03).
"""

from sed_utils.labels.chunks import (
    build_esc50_chunks,
    build_segments,
    chunk_rms_db,
    chunk_starts,
    chunk_statistics,
    segment_labels,
    silent_chunks,
)

__all__ = ["chunk_starts", "chunk_rms_db", "silent_chunks", "segment_labels", "build_esc50_chunks",
           "build_segments", "chunk_statistics"]
