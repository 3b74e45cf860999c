"""Figures of notebook 03: what chunking keeps and drops, and what the multilabel segments hold.

The counts come from :func:`sed_utils.labels.chunks.chunk_statistics`; each ``plot_*`` returns a Figure.
"""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from sed_utils.plots.style import OTHER_COLOR, TARGET_COLOR, label_color_list, label_colors, legend_outside

__all__ = [
    "plot_chunks_per_class",
    "plot_segment_activity",
    "plot_cooccurrence",
    "plot_clip_chunks",
    "plot_silence_levels",
    "plot_desed_clip",
]


def plot_chunks_per_class(stats: dict[str, Any]) -> Figure:
    """Stacked bars per class: kept chunks, silent chunks dropped, negatives not drawn (notebook 03)."""
    df = stats["esc50_per_class"]
    fig, ax = plt.subplots(figsize=(8, 3.5))
    bottom = np.zeros(len(df))
    for col, color, hatch in (("kept", TARGET_COLOR, None), ("silent_dropped", OTHER_COLOR, None),
                              ("unused", "white", "//")):
        ax.bar(df.index, df[col], bottom=bottom, color=color, hatch=hatch, edgecolor=OTHER_COLOR,
               label=col.replace("_", " "))
        bottom += df[col].to_numpy()
    ax.set_ylabel("chunks")
    ax.set_title("ESC-50 chunks per class (negatives = the other categories)")
    legend_outside(ax)
    ax.tick_params(axis="x", rotation=20)
    fig.tight_layout()
    return fig


def plot_segment_activity(stats: dict[str, Any]) -> Figure:
    """DESED segments by number of active target classes (0 = empty, >= 2 = multilabel), and per class
    (notebook 03)."""
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.5))
    hist = stats["n_active_hist"]
    colors = [OTHER_COLOR if k == 0 else TARGET_COLOR for k in hist.index]
    ax1.bar([str(k) for k in hist.index], hist.to_numpy(), color=colors,
            hatch=["//" if k >= 2 else None for k in hist.index], edgecolor="white")
    ax1.set_xlabel("target classes active in the segment")
    ax1.set_ylabel("segments")
    ax1.set_title(
        f"empty {stats['empty_share']:.0%} of segments; multilabel {stats['multilabel_share']:.1%} "
        "of active ones",
        fontsize=9,
    )
    for x, v in enumerate(hist.to_numpy()):
        ax1.annotate(str(int(v)), (x, v), ha="center", va="bottom", fontsize=8)
    per = stats["desed_per_class"]
    ax2.barh(per.index, per.to_numpy(), color=label_color_list(per.index))
    ax2.set_xlabel("active segments")
    ax2.invert_yaxis()  # model output order, top to bottom
    ax2.set_title("active segments per class", fontsize=9)
    fig.tight_layout()
    return fig


def plot_cooccurrence(stats: dict[str, Any]) -> Figure:
    """Heat map: in how many segments two classes are active together (diagonal = all segments of a class).
    Used in notebook 03."""
    co = stats["cooccurrence"]
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    im = ax.imshow(co.to_numpy(), cmap="Blues")
    ax.set_xticks(range(len(co)), co.columns, rotation=40, ha="right")
    ax.set_yticks(range(len(co)), co.index)
    vmax = co.to_numpy().max() if co.size else 0
    for i in range(len(co)):
        for j in range(len(co)):
            v = int(co.iat[i, j])
            ax.text(
                j, i, str(v), ha="center", va="center", color="white" if v > vmax / 2 else "black", fontsize=8
            )
    ax.set_title("segments with both classes active")
    fig.colorbar(im, ax=ax, shrink=0.8)
    fig.tight_layout()
    return fig


def plot_clip_chunks(audio: np.ndarray, sample_rate: int, chunks: pd.DataFrame, title: str = "") -> Figure:
    """A clip's waveform with its chunk windows (rows with start, end, silent, rms_db) drawn as brackets
    (notebook 03).

    Non-silent windows are coloured (the legend's "kept"), silent ones grey, so the reader sees what
    silence dropping removes; ``kept`` itself is not read (a negative clip's non-silent windows are
    coloured whether or not they were drawn).

    Args:
        audio: the clip's mono samples.
        sample_rate: their rate in Hz.
        chunks: the clip's rows of the chunk table (``start``, ``end`` in seconds, ``silent``), one bar each.
        title: the waveform's title.

    Returns:
        The figure: the waveform with the windows shaded, and one bar per window below it.
    """
    t = np.arange(len(audio)) / sample_rate
    fig, (ax, axw) = plt.subplots(2, 1, figsize=(10, 4), sharex=True, gridspec_kw={"height_ratios": [2, 1.3]})
    ax.plot(t, audio, lw=0.5, color="black")
    ax.set_ylabel("amplitude")
    ax.set_title(title)
    for i, row in enumerate(chunks.itertuples(index=False)):
        color = OTHER_COLOR if row.silent else TARGET_COLOR
        ax.axvspan(row.start, row.end, color=color, alpha=0.06 if not row.silent else 0.25, lw=0)
        axw.plot([row.start, row.end], [i, i], color=color, lw=4, solid_capstyle="butt")
    axw.set_yticks([])
    axw.set_ylabel("chunks")
    axw.set_xlabel("time (s)")
    legend_outside(axw, handles=[Line2D([], [], color=TARGET_COLOR, lw=4, label="kept"),
                                 Line2D([], [], color=OTHER_COLOR, lw=4, label="silent: dropped")])
    fig.tight_layout()
    return fig


def plot_desed_clip(
    events: pd.DataFrame, segments: pd.DataFrame, labels: list[str], clip_seconds: float, title: str = ""
) -> Figure:
    """One DESED clip: its events as horizontal bars (top) and the segment label matrix they give (bottom).
    Used in notebook 03.

    Args:
        events: the clip's events (``onset``, ``offset``, ``event_label``); those of other classes are
            drawn grey, in rows below the targets.
        segments: the clip's rows of the segment table (``start``, ``end``, one 0/1 column per label).
        labels: the target classes, top to bottom.
        clip_seconds: where the time axis ends.
        title: the events' title (default: says what grey means).
    """
    fig, (ax, axm) = plt.subplots(2, 1, figsize=(10, 4.5), sharex=True)
    all_labels = list(dict.fromkeys([*labels, *sorted(set(events["event_label"]) - set(labels))]))
    colors = label_colors(labels)
    for row in events.itertuples(index=False):
        y = all_labels.index(row.event_label)
        color = colors.get(row.event_label, OTHER_COLOR)
        ax.plot([row.onset, row.offset], [y, y], lw=6, color=color, solid_capstyle="butt")
    ax.set_yticks(range(len(all_labels)), all_labels, fontsize=8)
    ax.set_ylim(-0.7, len(all_labels) - 0.3)
    ax.invert_yaxis()
    ax.set_title(title or "events (grey: not one of our target classes)")
    for b in np.unique(np.concatenate([segments["start"].to_numpy(), segments["end"].to_numpy()])):
        ax.axvline(b, color="k", lw=0.3, ls=":")
    y = segments[labels].to_numpy().T
    seg = float((segments["end"] - segments["start"]).max()) if len(segments) else 1.0
    axm.imshow(
        y,
        aspect="auto",
        cmap="Greys",
        vmin=0,
        vmax=1.25,
        interpolation="nearest",
        extent=(0, seg * y.shape[1], len(labels) - 0.5, -0.5),
    )
    axm.set_yticks(range(len(labels)), labels, fontsize=8)
    axm.set_xlabel("time (s)")
    axm.set_title("segment labels (dark = active)", fontsize=9)
    axm.set_xlim(0, clip_seconds)
    fig.tight_layout()
    return fig


def plot_silence_levels(esc_table: pd.DataFrame, silence_db: float) -> Figure:
    """Histogram of each chunk's level relative to its clip's loudest chunk, with the silence threshold
    (notebook 03).

    Digital silence (-inf) is drawn at the left edge so it is counted, not lost.
    """
    loudest = esc_table.groupby("filename")["rms_db"].transform("max")
    rel = (esc_table["rms_db"] - loudest).to_numpy()
    floor = -100.0
    rel = np.where(np.isfinite(rel), np.maximum(rel, floor), floor)
    fig, ax = plt.subplots(figsize=(8, 3))
    bins = np.linspace(floor, 0, 51)
    for mask, label, color in (
        (esc_table["is_target"].to_numpy(), "target classes", TARGET_COLOR),
        (~esc_table["is_target"].to_numpy(), "other classes", OTHER_COLOR),
    ):
        ax.hist(rel[mask], bins=bins, alpha=0.6, label=label, color=color)
    ax.axvline(-abs(silence_db), color="k", ls="--", label=f"threshold ({-abs(silence_db):g} dB)")
    ax.set_yscale("log")
    ax.set_xlabel(f"chunk RMS relative to the clip's loudest chunk (dB; digital silence at {floor:g})")
    ax.set_ylabel("chunks")
    legend_outside(ax)
    fig.tight_layout()
    return fig
