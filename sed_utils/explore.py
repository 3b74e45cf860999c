"""Looking at the data before training on it (notebook 02): counts, durations, overlaps, spectrograms.

Why bother: the numbers here decide later choices. How many clips per class (is the training set
balanced?), how long events last (a 1 s chunk sees a whole bark but only a slice of a vacuum
cleaner), how often classes overlap (a multilabel model is needed, not a softmax), and how many
evaluation clips contain none of our classes (the model must learn to stay silent).

The numbers are pure functions over tables (tested); the ``plot_*`` functions only draw them and
return a matplotlib Figure; :func:`clip_browser` is an ipywidgets viewer for the notebook.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from sed_utils.config import MelConfig

if TYPE_CHECKING:
    from sed_utils.desed import DesedSet

__all__ = [
    "esc50_class_counts",
    "desed_event_counts",
    "event_durations",
    "events_per_clip",
    "cooccurrence_matrix",
    "overlap_seconds",
    "logmel",
    "label_colors",
    "labels_present",
    "duration_summary",
    "plot_class_counts",
    "plot_esc50_class_counts",
    "plot_event_durations",
    "plot_events_per_clip",
    "plot_cooccurrence",
    "plot_waveform_and_logmel",
    "clip_browser",
]

TARGET_COLOR, NEGATIVE_COLOR = "tab:orange", "tab:gray"


# ----------------------------------------------------------------------------------------------
# Numbers
# ----------------------------------------------------------------------------------------------
def esc50_class_counts(meta: pd.DataFrame, classes: dict[str, str]) -> pd.DataFrame:
    """Clips per ESC-50 category: columns ``category``, ``clips``, ``is_target``, ``label``.

    ``label`` is the DESED label of a target category and "" for a negative. Sorted: targets first
    (in ``classes`` order), then negatives by name.
    """
    counts = meta["category"].value_counts()
    to_label = {cat: lab for lab, cat in classes.items()}
    rows = [(cat, int(counts.get(cat, 0)), True, lab) for lab, cat in classes.items()]
    rows += [(cat, int(counts[cat]), False, "") for cat in sorted(counts.index) if cat not in to_label]
    return pd.DataFrame(rows, columns=["category", "clips", "is_target", "label"])


def desed_event_counts(events: pd.DataFrame, labels: list[str]) -> pd.DataFrame:
    """Per label: number of events, number of clips with at least one, total seconds (index = label)."""
    g = events.groupby("event_label")
    out = pd.DataFrame(
        {
            "events": g.size(),
            "clips": g["filename"].nunique(),
            "seconds": g.apply(lambda e: float((e["offset"] - e["onset"]).sum()), include_groups=False),
        }
    )
    return out.reindex(labels).fillna(0).astype({"events": int, "clips": int})


def labels_present(events: pd.DataFrame, targets: list[str]) -> list[str]:
    """Labels to show: the targets first (their order), then the other labels found in ``events``.

    The others follow :data:`sed_utils.desed.DESED_LABELS` order when they are DESED labels.
    """
    from sed_utils.desed import DESED_LABELS

    found = set(events["event_label"])
    others = [lab for lab in DESED_LABELS if lab in found and lab not in targets]
    others += sorted(found - set(targets) - set(others))
    return list(targets) + others


def duration_summary(events: pd.DataFrame, labels: list[str]) -> pd.DataFrame:
    """Per label: event count and min / median / max duration in seconds (index = label)."""
    dur = event_durations(events)
    g = dur.groupby(events["event_label"])
    out = pd.DataFrame({"events": g.size(), "min_s": g.min(), "median_s": g.median(), "max_s": g.max()})
    return out.reindex(labels).fillna({"events": 0}).astype({"events": int})


def event_durations(events: pd.DataFrame) -> pd.Series:
    """Length in seconds of every event (``offset - onset``), same index as ``events``."""
    return (events["offset"] - events["onset"]).rename("duration")


def events_per_clip(events: pd.DataFrame, files: list[str]) -> pd.Series:
    """Number of events in each of ``files`` (zeros included: clips without events count too)."""
    return events.groupby("filename").size().reindex(files, fill_value=0).astype(int).rename("events")


def cooccurrence_matrix(events: pd.DataFrame, labels: list[str]) -> pd.DataFrame:
    """Clips in which label i AND label j both occur (anywhere in the clip).

    The diagonal is the number of clips containing the label at all. Symmetric, labels x labels.
    """
    present = pd.crosstab(events["filename"], events["event_label"]).reindex(columns=labels, fill_value=0) > 0
    m = present.astype(int).T @ present.astype(int)
    return m.reindex(index=labels, columns=labels, fill_value=0).astype(int)


def _merge(intervals: list[tuple[float, float]]) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    for a, b in sorted(intervals):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def _intersection(x: list[tuple[float, float]], y: list[tuple[float, float]]) -> float:
    total, i, j = 0.0, 0, 0
    while i < len(x) and j < len(y):
        lo, hi = max(x[i][0], y[j][0]), min(x[i][1], y[j][1])
        total += max(0.0, hi - lo)
        if x[i][1] < y[j][1]:
            i += 1
        else:
            j += 1
    return total


def overlap_seconds(events: pd.DataFrame, labels: list[str]) -> pd.DataFrame:
    """Seconds during which label i and label j sound AT THE SAME TIME (summed over clips).

    The diagonal is each label's total active time (overlapping events of one label counted once).
    Off-diagonal mass is why the model has one sigmoid per class instead of a softmax.
    """
    m = pd.DataFrame(0.0, index=labels, columns=labels)
    for _, clip in events[events["event_label"].isin(labels)].groupby("filename"):
        spans = {lab: _merge(list(zip(g["onset"], g["offset"], strict=True)))
                 for lab, g in clip.groupby("event_label")}
        for a in spans:
            for b in spans:
                m.loc[a, b] += _intersection(spans[a], spans[b])
    return m.round(6)


def logmel(audio: np.ndarray, sample_rate: int, mel: MelConfig | None = None) -> np.ndarray:
    """Log-mel spectrogram in dB (``[n_mels, frames]``), with the series' mel settings.

    Same recipe as the model's input (power mel, dB, ``top_db`` floor), computed with librosa
    here because exploring needs no torch.
    """
    import librosa

    mel = mel or MelConfig()
    power = librosa.feature.melspectrogram(
        y=np.asarray(audio, dtype=np.float32), sr=sample_rate, n_fft=mel.n_fft, win_length=mel.win_length,
        hop_length=mel.hop_length, n_mels=mel.n_mels, fmin=mel.f_min, fmax=min(mel.f_max, sample_rate / 2),
    )
    return librosa.power_to_db(power, ref=1.0, amin=1e-10, top_db=mel.top_db)


# ----------------------------------------------------------------------------------------------
# Figures
# ----------------------------------------------------------------------------------------------
def label_colors(labels: list[str]) -> dict[str, tuple]:
    """One fixed colour per label, so a class looks the same in every figure."""
    cmap = plt.get_cmap("tab10")
    return {lab: cmap(i % 10) for i, lab in enumerate(labels)}


def plot_class_counts(
    counts: pd.Series, highlight: list[str] | None = None, title: str = "", xlabel: str = "count"
) -> Figure:
    """Horizontal bars of ``counts`` (index = class); classes in ``highlight`` are coloured.

    Used for ESC-50 clips per category (targets highlighted against the negatives) and for DESED
    events per class (our 5 highlighted among the 10).
    """
    highlight = set(highlight or [])
    fig, ax = plt.subplots(figsize=(7, 0.3 * len(counts) + 1.2))
    colors = [TARGET_COLOR if c in highlight else NEGATIVE_COLOR for c in counts.index]
    ax.barh([str(i) for i in counts.index], counts.values, color=colors)
    ax.invert_yaxis()
    for y, v in enumerate(counts.values):
        ax.text(v, y, f" {v:g}", va="center", fontsize=8)
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    if highlight and len(highlight) < len(counts):
        from matplotlib.patches import Patch

        handles = [Patch(color=TARGET_COLOR, label="target"), Patch(color=NEGATIVE_COLOR, label="other")]
        ax.legend(handles=handles, loc="lower right")
    fig.tight_layout()
    return fig


def plot_esc50_class_counts(meta: pd.DataFrame, classes: dict[str, str]) -> Figure:
    """Clips per ESC-50 category, targets first and coloured, named ``category -> DESED label``."""
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
    """Per class: every event's duration as a dot, over a box plot; dashed line at 1 s (a chunk)."""
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
    ax.legend(loc="lower right")
    fig.tight_layout()
    return fig


def plot_events_per_clip(
    counts: pd.Series, title: str = "Events per clip", xlabel: str = "events in the clip"
) -> Figure:
    """Histogram of events per clip (from :func:`events_per_clip`); the 0 bar = clips without events."""
    fig, ax = plt.subplots(figsize=(7, 3.2))
    values = counts.value_counts().reindex(range(int(counts.max()) + 1 if len(counts) else 1), fill_value=0)
    ax.bar(values.index, values.values, color=[NEGATIVE_COLOR] + [TARGET_COLOR] * (len(values) - 1))
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
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            v = m.values[i, j]
            ax.text(j, i, format(v, fmt), ha="center", va="center", fontsize=8,
                    color="white" if vmax and v > 0.6 * vmax else "black")
    ax.set_title(title)
    plt.colorbar(im, ax=ax, fraction=0.046)


def plot_cooccurrence(events: pd.DataFrame, labels: list[str]) -> Figure:
    """Two heatmaps: clips where two classes both occur, and seconds where they sound together."""
    fig, axes = plt.subplots(1, 2, figsize=(13, 5.2))
    _heatmap(axes[0], cooccurrence_matrix(events, labels), "clips containing both classes", "d")
    _heatmap(axes[1], overlap_seconds(events, labels), "seconds both sound at once", ".1f")
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
    """Waveform above its log-mel spectrogram; labelled events drawn as coloured spans.

    ``events`` (onset, offset, event_label) are drawn on both panels, one row band per label on
    the spectrogram so overlapping events stay readable.
    """
    mel = mel or MelConfig()
    spec = logmel(audio, sr, mel)
    seconds = len(audio) / sr
    fig, (ax_w, ax_s) = plt.subplots(2, 1, figsize=(10, 5), sharex=True, height_ratios=[1, 2])
    ax_w.plot(np.arange(len(audio)) / sr, audio, lw=0.4, color="k")
    ax_w.set_ylabel("amplitude")
    ax_w.set_title(title)
    ax_s.imshow(spec, origin="lower", aspect="auto", extent=(0, seconds, 0, spec.shape[0]), cmap="magma")
    ax_s.set_ylabel("mel bin")
    ax_s.set_xlabel("time (s)")
    ax_s.set_xlim(0, seconds)
    if events is not None and len(events):
        known = list(labels or [])
        present = list(dict.fromkeys(events["event_label"]))
        order = [lab for lab in known if lab in present] + [lab for lab in present if lab not in known]
        colors = label_colors(known + [lab for lab in present if lab not in known])
        band = spec.shape[0] / max(len(order), 1)
        for e in events.itertuples(index=False):
            k = order.index(e.event_label)
            c = colors[e.event_label]
            ax_w.axvspan(e.onset, e.offset, color=c, alpha=0.25)
            box = plt.Rectangle((e.onset, k * band), e.offset - e.onset, band, fill=False, ec=c, lw=2)
            ax_s.add_patch(box)
            ax_s.text(e.onset, k * band + band - 1, f" {e.event_label}", color=c, fontsize=8, va="top",
                      fontweight="bold", clip_on=True,
                      bbox={"facecolor": "white", "alpha": 0.75, "pad": 1, "edgecolor": "none"})
    fig.tight_layout()
    return fig


def clip_browser(desed: DesedSet, sample_rate: int, mel: MelConfig | None = None, all_labels: bool = True):
    """An ipywidgets viewer: pick a clip, hear it and see its spectrogram with the labelled events.

    Returns a ``VBox`` (display it as the last expression of a cell). Events of all DESED classes
    are drawn unless ``all_labels`` is False (then only the target labels).
    """
    import ipywidgets as widgets
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.display import Audio, Image

    from sed_utils.audio import read_audio

    n_events = events_per_clip(desed.all_events if all_labels else desed.events, desed.files)
    options = [(f"{f}  ({n} events)", f) for f, n in n_events.items()]
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
