"""One look for every figure of the series (every notebook): a colour per class that never changes
meaning, mel axes in Hz with a colour bar, labels in a lane of their own, legends beside the data.

Why a module of its own: a reader learns the colours once. In notebook 02 Dog is blue, so it is blue
in the chunk statistics of 03, the timelines of 06 and the detections of 09; "one of our five
classes" against "another class" is dark against light grey everywhere, never a class colour.
Every plot module draws spectrograms, class colours and legends through these helpers.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.image import AxesImage

from sed_utils.config import MelConfig
from sed_utils.features.logmel import mel_band_hz

__all__ = [
    "CLASS_COLORS",
    "TARGET_COLOR",
    "OTHER_COLOR",
    "label_colors",
    "label_color_list",
    "mel_band_hz",
    "set_mel_hz_axis",
    "show_logmel",
    "add_colorbar",
    "legend_outside",
    "draw_event_lanes",
]

#: The ten DESED classes, each with the colour it has in every figure of the series. Our five come
#: first (tab10's first five); grey is kept for "not one of ours".
CLASS_COLORS: dict[str, str] = {
    "Dog": "#1f77b4",
    "Cat": "#ff7f0e",
    "Alarm_bell_ringing": "#2ca02c",
    "Running_water": "#d62728",
    "Vacuum_cleaner": "#9467bd",
    "Speech": "#8c564b",
    "Frying": "#e377c2",
    "Dishes": "#bcbd22",
    "Blender": "#17becf",
    "Electric_shaver_toothbrush": "#393b79",
}
#: "One of the five target classes" against "another class" (bars, histograms): dark against light.
TARGET_COLOR = "#3a3a3a"
OTHER_COLOR = "#c4c4c4"
_EXTRA = plt.get_cmap("tab20b")


def label_colors(labels: Iterable[str]) -> dict[str, str | tuple]:
    """Colour of each label (every notebook): :data:`CLASS_COLORS` for DESED's classes; any other
    label (a user's own) gets one of tab20b's colours by its position among the unknown ones."""
    out: dict[str, str | tuple] = {}
    unknown = 0
    for lab in labels:
        if lab in CLASS_COLORS:
            out[lab] = CLASS_COLORS[lab]
        else:
            out[lab] = _EXTRA(unknown % 20)
            unknown += 1
    return out


def label_color_list(labels: Sequence[str]) -> list[str | tuple]:
    """The colour of each of ``labels``, in their order, for ``color=`` of one bar per label
    (every notebook)."""
    colors = label_colors(labels)
    return [colors[lab] for lab in labels]


HZ_TICKS = (100, 250, 500, 1000, 2000, 4000, 8000)


def set_mel_hz_axis(ax: Axes, mel: MelConfig, ticks_hz: Sequence[float] = HZ_TICKS) -> None:
    """Label the y axis of a log-mel drawn with bands ``0 .. n_mels`` in Hz (every notebook).

    The ticks sit where those frequencies fall on the mel axis (interpolated between band centres),
    so the axis stays what the model sees (equal steps in mel) and reads in Hz.

    Args:
        ax: the axes holding the log-mel.
        mel: its settings (``n_mels``, ``f_min``, ``f_max``).
        ticks_hz: the candidate ticks in Hz; those outside the band centres are left out.
    """
    centres = mel_band_hz(mel)
    ticks = [f for f in ticks_hz if centres[0] <= f <= centres[-1]]
    positions = np.interp(ticks, centres, np.arange(mel.n_mels) + 0.5)
    ax.set_yticks(positions, [f"{f / 1000:g}k" if f >= 1000 else f"{f:g}" for f in ticks])
    ax.set_ylabel("frequency (Hz)")


def show_logmel(ax: Axes, db: np.ndarray, mel: MelConfig, *, hop_seconds: float | None = None,
                seconds: float | None = None, vmin: float | None = None, vmax: float | None = None,
                cmap: str = "magma") -> AxesImage:
    """Draw a log-mel ``[n_mels, frames]`` in dB, time in s and frequency in Hz (every notebook).

    Args:
        ax: the axes to draw in.
        db: the log-mel in dB ``[n_mels, frames]``.
        mel: its settings, for the Hz axis.
        hop_seconds, seconds: one frame's hop, or the drawn length (``seconds`` wins; neither: a hop
            of 10 ms).
        vmin, vmax, cmap: the colour scale (default: the data's range) and map.

    Returns:
        The image, for :func:`add_colorbar`.
    """
    db = np.asarray(db)
    if seconds is None:
        seconds = db.shape[-1] * (hop_seconds if hop_seconds is not None else 0.01)
    im = ax.imshow(db, origin="lower", aspect="auto", cmap=cmap, vmin=vmin, vmax=vmax,
                   extent=(0, seconds, 0, db.shape[0]), interpolation="nearest")
    set_mel_hz_axis(ax, mel)
    return im


def add_colorbar(im: AxesImage, ax: Axes, label: str = "dB") -> None:
    """A colour bar for ``im`` just right of ``ax``, labelled (every notebook).

    Drawn in an inset beside the axes instead of taking width from them, so a spectrogram keeps
    the same time axis as the lanes and curves stacked under it.

    Args:
        im: the image the bar describes.
        ax: the axes it is drawn beside.
        label: the bar's label.
    """
    cax = ax.inset_axes((1.01, 0.0, 0.012, 1.0))
    ax.figure.colorbar(im, cax=cax, label=label)


def legend_outside(ax: Axes, **kwargs) -> None:
    """The legend to the right of the axes, never over the data (every notebook)."""
    kwargs.setdefault("fontsize", 8)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, **kwargs)


def draw_event_lanes(ax: Axes, events: pd.DataFrame, labels: Sequence[str], seconds: float, *,
                     hatch_labels: Iterable[str] = (), title: str = "") -> None:
    """Events as bars, one lane (row) per label, first label on top (every notebook).

    Why lanes: drawn over a spectrogram, a label box sits on some frequency band and reads as
    "the dog is at 500 Hz"; in a lane of its own it only says *when*.

    Args:
        ax: the axes to draw in.
        events: the events (``onset``, ``offset``, ``event_label``); labels not in ``labels`` are not drawn.
        labels: one lane each, top to bottom.
        seconds: where the time axis ends.
        hatch_labels: labels drawn hatched (e.g. "detected" against "reference").
        title: the axes' title; empty: none.
    """
    colors = label_colors(labels)
    hatched = set(hatch_labels)
    for k, lab in enumerate(labels):
        ev = events[events["event_label"] == lab]
        spans = [(a, b - a) for a, b in zip(ev["onset"], ev["offset"], strict=True)]
        if spans:
            ax.broken_barh(spans, (k + 0.15, 0.7), facecolor=colors[lab], edgecolor="k", lw=0.5,
                           hatch="//" if lab in hatched else None)
    ax.set_yticks(np.arange(len(labels)) + 0.5, list(labels), fontsize=8)
    ax.set_ylim(len(labels), 0)
    ax.set_xlim(0, seconds)
    ax.grid(axis="x", lw=0.3, alpha=0.5)
    if title:
        ax.set_title(title, fontsize=9)
