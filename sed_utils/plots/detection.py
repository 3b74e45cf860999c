"""Figures of notebook 09 "Your own recordings": the log-mel with the detected events over it, and
the score curves with the thresholds that made them.

Draws what :func:`sed_utils.detection.detect` returned; nothing here computes a score.
"""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from sed_utils.config import MelConfig
from sed_utils.plots.style import add_colorbar, label_colors, show_logmel

__all__ = ["plot_detection", "MAX_DRAWN_FRAMES"]

#: The most log-mel frames a detection figure draws; longer log-mels are max-pooled in time to fit.
MAX_DRAWN_FRAMES = 4000


def plot_detection(det: Any, logmel_db: np.ndarray | None = None, hop_seconds: float = 0.01,
                   title: str = "", reference: pd.DataFrame | None = None, mel: MelConfig | None = None
                   ) -> Figure:
    """Top: the recording's log-mel (if given; Hz axis, dB colour bar); below, one lane per class:
    its score curve (as the model gave it, before the median filter), its threshold dashed, its
    detected events shaded, and the ``reference`` events (when known) as black bars along the top
    (notebook 09, ``detect --plot``). Nothing is drawn over the spectrogram, so it stays readable.

    Args:
        det: a :class:`sed_utils.detection.Detection`.
        logmel_db: the log-mel in dB ``[n_mels, frames]`` (e.g. from
            :func:`~sed_utils.detection.recordings.detection_logmel`); None: no spectrogram panel.
        hop_seconds: the log-mel's frame hop in seconds.
        title: the figure's title (default: the file's name and its number of events).
        reference: this recording's reference events (``onset``, ``offset``, ``event_label``; the
            ``filename`` is not checked), if known.
        mel: the log-mel's settings, for the Hz axis (default: the series' defaults).

    Returns:
        The figure.
    """
    labels, colors = det.labels, label_colors(det.labels)
    n_top = 1 if logmel_db is not None else 0
    heights = [2.2] * n_top + [0.9] * len(labels)
    fig, axes = plt.subplots(n_top + len(labels), 1, figsize=(11, sum(heights) + 0.8), sharex=True,
                             gridspec_kw={"height_ratios": heights})
    axes = np.atleast_1d(axes)
    seconds = max(det.seconds, float(det.bounds[-1]) if len(det.bounds) else 0.0)
    if logmel_db is not None:
        step = -(-logmel_db.shape[-1] // MAX_DRAWN_FRAMES)  # a figure is ~1200 px wide: more frames cost
        if step > 1:                                        # memory, not detail (max keeps short sounds)
            n = logmel_db.shape[-1] // step * step
            logmel_db = logmel_db[:, :n].reshape(logmel_db.shape[0], -1, step).max(axis=-1)
            hop_seconds *= step
        add_colorbar(show_logmel(axes[0], logmel_db, mel or MelConfig(), hop_seconds=hop_seconds), axes[0])
    centres = (det.bounds[:-1] + det.bounds[1:]) / 2
    for c, (ax, label) in enumerate(zip(axes[n_top:], labels, strict=True)):
        for ev in det.events[det.events["event_label"] == label].itertuples():
            ax.axvspan(ev.onset, ev.offset, color=colors[label], alpha=0.25, lw=0)
        ax.plot(centres, det.scores[:, c], color=colors[label], lw=1)
        if reference is not None:
            ref = reference[reference["event_label"] == label]
            spans = [(a, b - a) for a, b in zip(ref["onset"], ref["offset"], strict=True)]
            ax.broken_barh(spans, (0.9, 0.08), color="k")
        ax.axhline(det.post.thresholds[c], color="k", ls="--", lw=0.8)
        ax.set_ylim(0, 1)
        ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
    axes[-1].set_xlim(0, seconds)
    axes[-1].set_xlabel("time (s)")
    key = [Line2D([], [], color="0.3", lw=1, label="score"), Patch(color="0.3", alpha=0.25, label="event"),
           Line2D([], [], color="k", ls="--", lw=0.8, label="threshold")]
    if reference is not None:
        key.append(Patch(color="k", label="reference event"))
    axes[n_top].legend(handles=key, loc="lower left", bbox_to_anchor=(1.0, 0.0), fontsize=7, frameon=False)
    fig.suptitle(title or f"{det.filename}: {len(det.events)} events")
    fig.tight_layout()
    return fig
