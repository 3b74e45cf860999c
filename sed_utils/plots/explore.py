"""Figures and the clip browser of notebook 02: the label statistics drawn, waveforms and log-mels.

The numbers come from :mod:`sed_utils.data.label_stats`; the spectrograms from
:func:`sed_utils.features.logmel.logmel_db`, the model's own front end, so every figure of the series
shows the same dB scale. Each ``plot_*`` returns a matplotlib Figure.
"""

from __future__ import annotations

import io

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from sed_utils.config import MelConfig
from sed_utils.data.desed import StrongLabelSet
from sed_utils.data.label_stats import (
    cooccurrence_matrix,
    esc50_class_counts,
    event_durations,
    events_per_clip,
    overlap_seconds,
)
from sed_utils.features.logmel import logmel_db
from sed_utils.io.audio import read_audio
from sed_utils.plots.style import (
    OTHER_COLOR,
    TARGET_COLOR,
    add_colorbar,
    draw_event_lanes,
    label_colors,
    legend_outside,
    show_logmel,
)

__all__ = [
    "plot_class_counts",
    "plot_esc50_class_counts",
    "plot_event_durations",
    "plot_events_per_clip",
    "plot_cooccurrence",
    "plot_waveform_and_logmel",
    "clip_browser",
]

# ----------------------------------------------------------------------------------------------
# Figures
# ----------------------------------------------------------------------------------------------
def plot_class_counts(
    counts: pd.Series, highlight: list[str] | None = None, title: str = "", xlabel: str = "count"
) -> Figure:
    """Horizontal bars of ``counts`` (index = class); classes in ``highlight`` are coloured (notebook 02).

    Used for ESC-50 clips per category (targets highlighted against the negatives) and for DESED
    events per class (our 5 highlighted among the 10).

    Args:
        counts: one value per class, indexed by class, drawn top to bottom in its order.
        highlight: the classes coloured as targets (a legend is added when some are not).
        title, xlabel: the axes' title and x label.

    Returns:
        The figure.
    """
    highlight = set(highlight or [])
    fig, ax = plt.subplots(figsize=(7, 0.3 * len(counts) + 1.2))
    colors = [TARGET_COLOR if c in highlight else OTHER_COLOR for c in counts.index]
    ax.barh([str(i) for i in counts.index], counts.values, color=colors)
    ax.invert_yaxis()
    for y, v in enumerate(counts.values):
        ax.text(v, y, f" {v:g}", va="center", fontsize=8)
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    if highlight and len(highlight) < len(counts):
        from matplotlib.patches import Patch

        handles = [Patch(color=TARGET_COLOR, label="target"), Patch(color=OTHER_COLOR, label="other")]
        legend_outside(ax, handles=handles)
    fig.tight_layout()
    return fig


def plot_esc50_class_counts(meta: pd.DataFrame, classes: dict[str, str]) -> Figure:
    """Clips per ESC-50 category, targets first and coloured, named ``category -> DESED label``
    (notebook 02)."""
    counts = esc50_class_counts(meta, classes)
    names = [f"{c} -> {lab}" if t else c for c, lab, t in
             zip(counts["category"], counts["label"], counts["is_target"], strict=True)]
    return plot_class_counts(
        pd.Series(counts["clips"].to_numpy(), index=names),
        highlight=[n for n, t in zip(names, counts["is_target"], strict=True) if t],
        title="ESC-50: clips per category (target -> DESED label)",
        xlabel="clips",
    )


def plot_event_durations(events: pd.DataFrame, labels: list[str], title: str = "Event durations") -> Figure:
    """Per class: every event's duration as a dot, over a box plot; dashed line at 1 s (a chunk).
    Used in notebook 02.

    Args:
        events: the events (``onset``, ``offset``, ``event_label``).
        labels: the classes, one row each, top to bottom.
        title: the axes' title.

    Returns:
        The figure.
    """
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(labels) + 1.5))
    dur = event_durations(events)
    data = [dur[events["event_label"] == lab].to_numpy() for lab in labels]
    ax.boxplot([d if len(d) else [np.nan] for d in data], orientation="horizontal", widths=0.6,
               showfliers=False, tick_labels=labels)
    rng = np.random.default_rng(0)
    colors = label_colors(labels)
    for i, d in enumerate(data, start=1):
        ax.scatter(d, i + rng.uniform(-0.2, 0.2, len(d)), s=8, alpha=0.5, color=colors[labels[i - 1]])
    ax.axvline(1.0, ls="--", color="k", lw=0.8, label="1 s (one model input)")
    ax.invert_yaxis()
    ax.set_xlabel("seconds")
    ax.set_title(title)
    legend_outside(ax)
    fig.tight_layout()
    return fig


def plot_events_per_clip(
    counts: pd.Series, title: str = "Events per clip", xlabel: str = "events in the clip"
) -> Figure:
    """Histogram of events per clip (from :func:`events_per_clip`); the 0 bar = clips without events
    (notebook 02).

    Args:
        counts: the number of events of each clip, one value per clip.
        title, xlabel: the axes' title and x label.

    Returns:
        The figure.
    """
    fig, ax = plt.subplots(figsize=(7, 3.2))
    values = counts.value_counts().reindex(range(int(counts.max()) + 1 if len(counts) else 1), fill_value=0)
    ax.bar(values.index, values.values, color=[OTHER_COLOR] + [TARGET_COLOR] * (len(values) - 1))
    for x, v in zip(values.index, values.values, strict=True):
        ax.text(x, v, str(v), ha="center", va="bottom", fontsize=8)
    ax.set_xticks(values.index)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("clips")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def _heatmap(ax: plt.Axes, m: pd.DataFrame, title: str, fmt: str) -> None:
    im = ax.imshow(m.values, cmap="Blues")
    ax.set_xticks(range(len(m.columns)), m.columns, rotation=45, ha="right")
    ax.set_yticks(range(len(m.index)), m.index)
    vmax = m.values.max() if m.size else 0
    widest = max((len(format(v, fmt)) for v in m.values.ravel()), default=1)
    size = 8 if widest <= 3 else 6.5 if widest <= 4 else 5.5  # long numbers must not touch
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            v = m.values[i, j]
            ax.text(j, i, format(v, fmt), ha="center", va="center", fontsize=size,
                    color="white" if vmax and v > 0.6 * vmax else "black")
    ax.set_title(title)
    plt.colorbar(im, ax=ax, fraction=0.046)


def plot_cooccurrence(events: pd.DataFrame, labels: list[str]) -> Figure:
    """Two heatmaps: clips where two classes both occur, and seconds where they sound together
    (notebook 02)."""
    fig, axes = plt.subplots(1, 2, figsize=(13, 5.2))
    _heatmap(axes[0], cooccurrence_matrix(events, labels), "clips containing both classes", "d")
    _heatmap(axes[1], overlap_seconds(events, labels), "seconds both sound at once", ".0f")
    fig.tight_layout()
    return fig


def plot_waveform_and_logmel(
    audio: np.ndarray,
    sr: int,
    events: pd.DataFrame | None = None,
    title: str = "",
    mel: MelConfig | None = None,
    labels: list[str] | None = None,
) -> Figure:
    """Waveform, log-mel spectrogram (Hz axis, dB colour bar) and the labelled events in a lane of
    their own below, one row per label (notebook 02).

    The events are not drawn on the spectrogram: a box there would sit on some frequency band and
    read as "the dog is at 500 Hz", while a label only says when. Shaded spans on the waveform
    show the same times.

    Args:
        audio: the clip's mono samples.
        sr: their rate in Hz (the front end is built for it).
        events: the clip's events (``onset``, ``offset``, ``event_label``); None: no event lane.
        title: the waveform's title.
        mel: the log-mel settings (default: :class:`MelConfig`'s defaults).
        labels: the order of the lanes; only labels that have events get one, and the events' other
            labels follow in order of appearance.

    Returns:
        The figure.
    """
    mel = mel or MelConfig()
    spec = logmel_db(audio, sr, mel)
    seconds = len(audio) / sr
    known = list(labels or [])
    present = list(dict.fromkeys(events["event_label"])) if events is not None else []
    lanes = [lab for lab in known if lab in present] + [lab for lab in present if lab not in known]
    heights = [1, 2] + ([0.25 * len(lanes) + 0.2] if lanes else [])
    fig, axes = plt.subplots(len(heights), 1, figsize=(10, 1.6 * sum(heights) + 0.6), sharex=True,
                             height_ratios=heights)
    ax_w, ax_s = axes[0], axes[1]
    ax_w.plot(np.arange(len(audio)) / sr, audio, lw=0.4, color="k")
    ax_w.set_ylabel("amplitude")
    ax_w.set_title(title)
    add_colorbar(show_logmel(ax_s, spec, mel, seconds=seconds), ax_s)
    ax_s.set_xlim(0, seconds)
    if lanes:
        colors = label_colors(lanes)
        for e in events.itertuples(index=False):
            ax_w.axvspan(e.onset, e.offset, color=colors[e.event_label], alpha=0.25, lw=0)
        draw_event_lanes(axes[2], events, lanes, seconds)
    axes[-1].set_xlabel("time (s)")
    fig.tight_layout()
    return fig


def clip_browser(desed: StrongLabelSet, sample_rate: int, mel: MelConfig | None = None,
                 all_labels: bool = True):
    """An ipywidgets viewer: pick a clip, hear it and see its spectrogram with the labelled events
    (notebook 02).

    Args:
        desed: the clips and their labels (DESED, or scenes in its layout).
        sample_rate: the rate the clips are read and played at, in Hz.
        mel: the log-mel settings (default: :class:`MelConfig`'s defaults).
        all_labels: draw the events of all DESED classes; False: only the target labels.

    Returns:
        A ``VBox`` (display it as the last expression of a cell).
    """
    import ipywidgets as widgets
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.display import Audio, Image

    n_events = events_per_clip(desed.all_events if all_labels else desed.events, desed.files)
    options = [(f"{f}  ({n} event{'' if n == 1 else 's'})", f) for f, n in n_events.items()]
    dropdown = widgets.Dropdown(options=options, description="clip", layout=widgets.Layout(width="60%"))
    out = widgets.Output()

    def rich(obj: object) -> dict:
        data, metadata = InteractiveShell.instance().display_formatter.format(obj)
        return {"output_type": "display_data", "data": data, "metadata": metadata}

    def show(name: str) -> None:
        # The outputs are set on the widget, not captured with `with out:`: captured output makes
        # headless runners (nbclient/papermill) talk to the kernel mid-cell, which can deadlock
        # (jupyter/nbclient#312); a live notebook shows both the same way.
        audio = read_audio(desed.path(name), sample_rate)
        ev = desed.events_of(name, all_labels=all_labels)
        fig = plot_waveform_and_logmel(audio, sample_rate, ev, title=name, mel=mel, labels=desed.labels)
        png = io.BytesIO()
        fig.savefig(png, format="png", dpi=80)  # as an image: no dependence on the matplotlib backend
        plt.close(fig)
        items = [rich(Audio(audio, rate=sample_rate)), rich(Image(data=png.getvalue(), format="png"))]
        if len(ev):
            items.append(rich(ev))
        out.outputs = tuple(items)

    dropdown.observe(lambda change: show(change["new"]), names="value")
    if options:
        show(options[0][1])
    return widgets.VBox([dropdown, out])
