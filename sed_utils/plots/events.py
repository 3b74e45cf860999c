"""Figures of notebook 08 "From segments to events": timelines, frame scores, targets, PSD-ROC, the
level sweep.

Each function draws what :mod:`sed_utils.evaluate` and the frame model computed and
returns the matplotlib Figure; nothing here computes a metric.
"""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from sed_utils.plots.style import label_colors, legend_outside

__all__ = ["plot_event_timelines", "plot_frame_scores", "plot_frame_targets", "plot_psd_roc",
           "plot_metric_bars", "plot_postprocessing_grid", "plot_level_sweep", "plot_negatives_by_category"]


def plot_event_timelines(reference: pd.DataFrame, systems: Mapping[str, pd.DataFrame], filename: str,
                         labels: list[str], clip_seconds: float = 10.0) -> Figure:
    """One lane per class: the reference events on top, each system's events below (notebook 08).

    The picture of why the window classifier fails the event metric: its bars start early and
    swallow the gaps between barks that the reference marks.

    Args:
        reference: reference events (``filename, onset, offset, event_label``); the clip's are drawn.
        systems: system name -> its events, in the same columns.
        filename: the clip.
        labels: the classes, one lane each.
        clip_seconds: where the time axis ends.

    Returns:
        The figure: one panel for the reference, then one per system.
    """
    colors = label_colors(labels)
    rows = [("reference", reference)] + list(systems.items())
    fig, axes = plt.subplots(len(rows), 1, figsize=(11, 1.0 + 0.45 * len(labels) * len(rows)), sharex=True)
    axes = np.atleast_1d(axes)
    for ax, (name, table) in zip(axes, rows, strict=True):
        mine = table[table["filename"] == filename]
        for k, label in enumerate(labels):
            ev = mine[mine["event_label"] == label]
            ax.broken_barh([(on, off - on) for on, off in zip(ev["onset"], ev["offset"], strict=True)],
                           (k - 0.4, 0.8), color=colors[label])
        ax.set_yticks(range(len(labels)), labels)
        ax.set_ylim(-0.6, len(labels) - 0.4)
        ax.invert_yaxis()
        ax.set_title(name, loc="left", fontsize=10)
        ax.grid(axis="x", alpha=0.3)
    axes[-1].set_xlim(0, clip_seconds)
    axes[-1].set_xlabel("time (s)")
    fig.suptitle(filename)
    fig.tight_layout()
    return fig


def plot_frame_scores(bounds: np.ndarray, scores: np.ndarray, labels: list[str], reference: pd.DataFrame,
                      filename: str, thresholds: np.ndarray | None = None, title: str = "") -> Figure:
    """Each class's score curve over one clip, the reference events shaded behind it and the chosen
    threshold dashed (notebook 08).

    Args:
        bounds, scores: the clip's score curve, ``[T + 1]`` seconds and ``[T, C]``.
        labels: the classes, in column order.
        reference: reference events; the clip's are shaded.
        filename: the clip.
        thresholds: one per class ``[C]``; None: no threshold line.
        title: the figure's title (default: the clip's name and what the marks mean).

    Returns:
        The figure, one panel per class.
    """
    colors = label_colors(labels)
    fig, axes = plt.subplots(len(labels), 1, figsize=(11, 1.3 * len(labels)), sharex=True)
    centres = (np.asarray(bounds)[:-1] + np.asarray(bounds)[1:]) / 2
    mine = reference[reference["filename"] == filename]
    for c, (ax, label) in enumerate(zip(np.atleast_1d(axes), labels, strict=True)):
        for r in mine[mine["event_label"] == label].itertuples():
            ax.axvspan(r.onset, r.offset, color=colors[label], alpha=0.2, lw=0)
        ax.step(centres, np.asarray(scores)[:, c], where="mid", color=colors[label])
        if thresholds is not None:
            ax.axhline(float(thresholds[c]), color="k", ls="--", lw=0.8)
        ax.set_ylim(0, 1)
        ax.set_ylabel(label, rotation=0, ha="right", va="center")
    np.atleast_1d(axes)[-1].set_xlabel("time (s)")
    fig.suptitle(title or f"{filename}: scores (lines), reference events (shaded), threshold (dashed)")
    fig.tight_layout()
    return fig


def plot_frame_targets(targets: np.ndarray, labels: list[str], frame_seconds: float,
                       title: str = "") -> Figure:
    """Strong labels (one row per class, one cell per 80 ms frame) above the weak label the same clip
    would have (one cell per class for the whole clip) (notebook 08).

    Args:
        targets: 0/1 frame targets ``[T, C]``.
        labels: the classes, in column order.
        frame_seconds: one frame's length in seconds.
        title: the strong labels' title (default: the number and length of the frames).

    Returns:
        The figure.
    """
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(11, 3.2), gridspec_kw={"height_ratios": [5, 1.2]})
    n = targets.shape[0]
    top.imshow(targets.T, aspect="auto", cmap="Greys", vmin=0, vmax=1, interpolation="nearest",
               extent=(0, n * frame_seconds, len(labels) - 0.5, -0.5))
    top.set_yticks(range(len(labels)), labels)
    top.set_xlabel("time (s)")
    top.set_title(title or f"strong labels: {n} frames of {frame_seconds * 1000:.0f} ms", loc="left",
                  fontsize=10)
    weak = targets.max(axis=0)[None, :]
    bottom.imshow(weak, aspect="auto", cmap="Greys", vmin=0, vmax=1)
    bottom.set_xticks(range(len(labels)), labels)
    bottom.set_yticks([])
    bottom.set_title("weak label: is the class anywhere in the clip?", loc="left", fontsize=10)
    fig.tight_layout()
    return fig


def plot_psd_roc(results: Mapping[str, Mapping], setting: str = "psds1") -> Figure:
    """The PSD-ROC curve of each model (effective TPR against false alarms per hour; the area up to 100
    per hour, divided by 100, is the PSDS) (notebooks 06, 08)."""
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for name, res in results.items():
        roc = res[setting]["roc"]
        label = f"{name}: {setting.upper()} {res[setting]['value']:.3f}"
        ax.step(roc["efpr"], roc["tpr"], where="post", label=label)
    ax.set_xlim(0, 100)
    ax.set_ylim(0, 1)
    ax.set_xlabel("false alarms per hour (effective FPR)")
    ax.set_ylabel("effective true-positive rate")
    ax.set_title(f"PSD-ROC ({setting.upper()}: area / 100)")
    ax.grid(alpha=0.3)
    legend_outside(ax)
    fig.tight_layout()
    return fig


def plot_metric_bars(rows: Mapping[str, Mapping[str, float]], title: str = "") -> Figure:
    """Grouped bars: one group per metric, one bar per model (notebook 08's before/after)."""
    names = list(rows)
    metrics = list(next(iter(rows.values())))
    fig, ax = plt.subplots(figsize=(10, 3.8))
    width = 0.8 / len(names)
    for k, name in enumerate(names):
        values = [rows[name][m] for m in metrics]
        bars = ax.bar(np.arange(len(metrics)) + (k - (len(names) - 1) / 2) * width, values, width, label=name)
        ax.bar_label(bars, fmt="%.2f", fontsize=8)
    ax.set_xticks(range(len(metrics)), metrics)
    ax.set_ylim(0, 1.05)
    legend_outside(ax)
    ax.set_title(title)
    fig.tight_layout()
    return fig


def plot_postprocessing_grid(grid: pd.DataFrame, labels: list[str], chosen: Mapping[str, tuple[float, int]]
                             ) -> Figure:
    """Validation event F1 against the threshold, one line per median-filter length, one panel per class;
    the chosen pair circled (notebook 08).

    Args:
        grid: the long table of :func:`~sed_utils.evaluate.choose_event_postprocessing`
            (``filter, threshold, label, f1``).
        labels: the classes, one panel each.
        chosen: label -> the chosen ``(threshold, filter)``.

    Returns:
        The figure.
    """
    fig, axes = plt.subplots(1, len(labels), figsize=(3.0 * len(labels), 3.0), sharey=True)
    for ax, label in zip(np.atleast_1d(axes), labels, strict=True):
        part = grid[grid["label"] == label]
        for size, g in part.groupby("filter"):
            ax.plot(g["threshold"], g["f1"], marker=".", label=f"{size} frames")
        thr, size = chosen[label]
        best = part[(part["filter"] == size) & np.isclose(part["threshold"], thr)]["f1"]
        ax.plot([thr], [float(best.iloc[0]) if len(best) else 0], "o", ms=12, mfc="none", mec="k")
        ax.set_title(label, fontsize=10)
        ax.set_xlabel("threshold")
        ax.grid(alpha=0.3)
    np.atleast_1d(axes)[0].set_ylabel("event F1 (validation)")
    legend_outside(np.atleast_1d(axes)[-1], title="median filter\n(frames)", fontsize=7)
    fig.tight_layout()
    return fig


LEVEL_SWEEP_METRICS = {"event_f1": "event macro F1 (scenes)", "clips_found": "single target clips found",
                       "negatives_alarmed": "negative clips with a false alarm"}


def plot_level_sweep(tables: Mapping[str, pd.DataFrame]) -> Figure:
    """One panel per metric of :func:`sed_utils.evaluate.robustness`, against the attenuation, one line
    per model (notebook 08).

    Args:
        tables: model name -> its robustness table (one row per level condition, ``gain_db`` set).
    """
    fig, axes = plt.subplots(1, len(LEVEL_SWEEP_METRICS), figsize=(12, 3.4), sharex=True)
    for ax, (column, title) in zip(axes, LEVEL_SWEEP_METRICS.items(), strict=True):
        for name, table in tables.items():
            ax.plot(table["gain_db"], table[column], marker="o", label=name)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("level (dB below the mixer's)")
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_negatives_by_category(shares: Mapping[str, Mapping[str, float]], top: int = 15,
                               title: str = "") -> Figure:
    """Horizontal bars: the share of each negative category's clips with a false alarm, one bar per
    model, for the ``top`` categories hit most by any model (notebook 08's before/after).

    Args:
        shares: model name -> {ESC-50 category: share of its clips with any event} (the evaluation's
            ``negatives["per_category"]``, or a benchmark's mean over seeds).
        top: how many categories to show.
        title: the figure's title.
    """
    table = pd.DataFrame(shares).fillna(0.0)
    table = table.loc[table.max(axis=1).sort_values(ascending=False).index[:top]].iloc[::-1]
    fig, ax = plt.subplots(figsize=(8, 0.32 * len(table) + 1.4))
    height = 0.8 / max(len(table.columns), 1)
    for k, name in enumerate(table.columns):
        ax.barh(np.arange(len(table)) + (k - (len(table.columns) - 1) / 2) * height, table[name], height,
                label=name)
    ax.set_yticks(range(len(table)), table.index)
    ax.set_xlim(0, 1.0)
    ax.set_xlabel("share of the category's clips with a false alarm")
    ax.grid(axis="x", alpha=0.3)
    legend_outside(ax)
    ax.set_title(title)
    fig.tight_layout()
    return fig
