"""Figures of notebook 07: one scene's spectrogram above its labels, and the scenes' label statistics."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib.pyplot as plt

from sed_utils.data.scene_mixing import SCENE_SECONDS
from sed_utils.data.scenes import label_statistics, load_scene_sources, load_scenes
from sed_utils.features.logmel import logmel_db
from sed_utils.io.audio import read_audio
from sed_utils.plots.style import (
    OTHER_COLOR,
    TARGET_COLOR,
    add_colorbar,
    label_color_list,
    label_colors,
    show_logmel,
)

if TYPE_CHECKING:
    from sed_utils.config import Config

__all__ = ["plot_scene", "plot_label_statistics"]


def plot_scene(cfg: Config, out_dir: Path, filename: str, ax=None):
    """Log-mel spectrogram of one scene above its labels, its unlabelled distractors and background
    (notebook 07).

    The distractor lane shows what the model hears but must NOT report; the labels' edges sit on
    the sounds' edges because of the energy trim (see :mod:`sed_utils.data.scene_mixing`).

    Args:
        cfg: the sample rate, the log-mel settings and the classes.
        out_dir: the scene folder (:func:`~sed_utils.data.scenes.build_scenes`).
        filename: the scene's file name, e.g. ``scene_0003.wav``.
        ax: two axes to draw into, ``(spectrogram, labels)``; None: a new figure.

    Returns:
        The figure (that of ``ax`` when given).
    """
    out_dir = Path(out_dir)
    sr = cfg.audio.sample_rate
    audio = read_audio(out_dir / "audio" / filename, sr)
    db = logmel_db(audio, sr, cfg.features)
    ds = load_scenes(cfg, out_dir)
    labels = ds.events_of(filename)
    src = load_scene_sources(out_dir)
    src = src[src["scene"] == filename]
    distractors = src[src["role"] == "distractor"]
    background = ", ".join(src[src["role"] == "background"]["category"].fillna("").replace("", "pink noise"))

    lanes = [lab for lab in cfg.desed_labels if lab in set(labels["event_label"])] + ["distractor (no label)"]
    if ax is None:
        fig, (ax_spec, ax_lab) = plt.subplots(
            2, 1, figsize=(10, 4.5), sharex=True, gridspec_kw={"height_ratios": [3, 0.4 + 0.35 * len(lanes)]}
        )
    else:
        ax_spec, ax_lab = ax
        fig = ax_spec.figure
    add_colorbar(show_logmel(ax_spec, db, cfg.features, seconds=len(audio) / sr), ax_spec)
    ax_spec.set_title(f"{filename} - background: {background}")
    colors = label_colors(lanes)
    for row in labels.itertuples():
        k = lanes.index(row.event_label)
        ax_lab.broken_barh([(row.onset, row.offset - row.onset)], (k + 0.1, 0.8),
                           color=colors[row.event_label])
        for x in (row.onset, row.offset):
            ax_spec.axvline(x, color="white", lw=1.0, ls="--")
    for row in distractors.itertuples():
        ax_lab.broken_barh([(row.onset, row.offset - row.onset)], (len(lanes) - 0.9, 0.8),
                           facecolor=OTHER_COLOR, edgecolor="grey", hatch="//")
        ax_lab.text(row.onset, len(lanes) - 0.5, f" {row.category}", va="center", fontsize=8)
    ax_lab.set_yticks([k + 0.5 for k in range(len(lanes))], lanes)
    ax_lab.set_ylim(len(lanes), 0)  # first label on top, as in the legend order
    ax_lab.set_xlim(0, SCENE_SECONDS)
    ax_lab.set_xlabel("time (s)")
    fig.tight_layout()
    return fig


def plot_label_statistics(cfg: Config, out_dir: Path):
    """Three panels: events per class, event durations per class, target events per scene (notebook 07)."""
    ds = load_scenes(cfg, out_dir)
    stats = label_statistics(cfg, out_dir)
    ev = ds.events.assign(seconds=ds.events["offset"] - ds.events["onset"])
    per_scene = ev.groupby("filename").size().reindex(ds.files, fill_value=0)
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    axes[0].barh(stats["event_label"], stats["events"],
                 color=label_color_list(stats["event_label"]))
    axes[0].set_xlabel("labelled events")
    axes[0].invert_yaxis()
    present = [lab for lab in cfg.desed_labels if (ev["event_label"] == lab).any()]
    if present:
        axes[1].boxplot([ev.loc[ev["event_label"] == lab, "seconds"] for lab in present], vert=False)
        axes[1].set_yticks(range(1, len(present) + 1), present)
        axes[1].invert_yaxis()
    axes[1].set_xlabel("event duration (s)")
    counts = per_scene.value_counts().sort_index()
    axes[2].bar(counts.index.astype(str), counts.values,
                color=[OTHER_COLOR if k == 0 else TARGET_COLOR for k in counts.index])
    axes[2].set_xlabel("labelled events in a scene")
    axes[2].set_ylabel("scenes")
    fig.suptitle(f"{len(ds.files)} scenes, {len(ev)} labelled events")
    fig.tight_layout()
    return fig

