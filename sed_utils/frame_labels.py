"""Strong labels as frame targets: which output frames of a clip each event covers (notebook 08).

Why a rule of its own: the frame-level model predicts one probability per 80 ms frame, and its
training targets must say, frame by frame, whether a class sounds. The rule, in plain words:
output frame ``j`` covers ``[j, j + 1) * frame_seconds``; it is active for a class when an event
of that class covers at least half of it, and an event shorter than half a frame still marks the
frame holding its midpoint (a 40 ms click must not vanish from the targets). Example, with 80 ms
frames: an event from 0.23 s to 0.71 s marks frames 3-8 (0.24-0.72 s): frame 2 (0.16-0.24 s)
holds only 10 ms of it, frame 8 (0.64-0.72 s) holds 70 ms.

The scenes of :mod:`sed_utils.data.scenes` know their events' timings exactly (they were placed
there), so every frame of a training scene gets a target: these are *strong* labels. A clip-level
(*weak*) label is simply "any frame active" (:func:`clip_targets`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["TIME_STRIDE", "output_frames", "frame_targets", "clip_targets", "frame_targets_of_files"]

#: How many mel frames one output frame spans (conv1 2 x maxpool 2 x layer2 2; layer3/4 keep time).
TIME_STRIDE = 8


def output_frames(mel_frames: int) -> int:
    """Output frames of the frame model (:class:`sed_utils.frame_model.FrameResNet`) for
    ``mel_frames`` input frames (notebook 08). The grid lives here, beside the targets drawn on it.

    Three stride-2 steps over time (conv1 with padding 3 and kernel 7, the max pool with padding 1
    and kernel 3, layer2's 3x3 conv with padding 1), each ``floor((n - 1) / 2) + 1``.
    """
    n = int(mel_frames)
    for _ in range(3):
        n = (n - 1) // 2 + 1
    return n


def frame_targets(events: pd.DataFrame, labels: list[str], n_frames: int, frame_seconds: float) -> np.ndarray:
    """``[n_frames, len(labels)]`` 0/1 targets of ONE clip's events (notebook 08).

    ``events`` has ``onset``, ``offset`` (seconds) and ``event_label``; labels not in ``labels``
    are ignored (a DESED clip's non-target classes). Events past the last frame are cut.
    """
    if frame_seconds <= 0:
        raise ValueError(f"frame_seconds must be positive, got {frame_seconds}")
    out = np.zeros((int(n_frames), len(labels)), dtype=np.float32)
    index = {lab: c for c, lab in enumerate(labels)}
    starts = np.arange(n_frames) * frame_seconds
    ends = starts + frame_seconds
    for row in events.itertuples(index=False):
        c = index.get(row.event_label)
        if c is None or not row.offset > row.onset:
            continue
        covered = np.minimum(ends, row.offset) - np.maximum(starts, row.onset)
        active = covered >= 0.5 * frame_seconds - 1e-9
        mid = int((row.onset + row.offset) / 2 // frame_seconds)
        if not active.any() and 0 <= mid < n_frames:
            active[mid] = True
        out[active, c] = 1.0
    return out


def clip_targets(frames: np.ndarray) -> np.ndarray:
    """Weak labels ``[..., C]`` from frame targets ``[..., T, C]``: a class is in the clip when any
    frame has it (notebook 08)."""
    return np.asarray(frames).max(axis=-2)


def frame_targets_of_files(events: pd.DataFrame, files: list[str], labels: list[str], n_frames: int,
                           frame_seconds: float) -> np.ndarray:
    """:func:`frame_targets` of every file of ``files``, stacked ``[len(files), n_frames, C]``
    (notebook 08: the training and validation scenes)."""
    groups = {name: part for name, part in events.groupby("filename", sort=False)}
    empty = events.iloc[:0]
    return np.stack([frame_targets(groups.get(name, empty), labels, n_frames, frame_seconds)
                     for name in files]) if files else np.zeros((0, n_frames, len(labels)), np.float32)
