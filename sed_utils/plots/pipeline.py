"""Figures of notebook 04: a batch of model inputs, the augmentations before/after, loading speed."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

from sed_utils.config import MelConfig
from sed_utils.plots.style import add_colorbar, show_logmel

__all__ = ["plot_batch", "plot_timing", "plot_before_after"]


def plot_batch(
    x: torch.Tensor, y: torch.Tensor, labels: list[str], n: int = 8, hop_seconds: float = 0.01,
    mel: MelConfig | None = None,
) -> Figure:
    """Grid of the first ``n`` spectrograms of a batch ``x[B, n_mels, frames]`` (or ``[B, 1, n_mels,
    frames]``), titled by label, on one colour scale with its colour bar; frequency in Hz on the left
    column (notebook 04).

    Args:
        x: the batch's log-mels in dB, a CPU tensor.
        y: its targets ``[B, C]``; a class above 0.5 names the panel.
        labels: the classes, in column order.
        n: how many items to draw, four per row.
        hop_seconds: the log-mels' frame hop in seconds.
        mel: their settings, for the Hz axis (default: :class:`MelConfig`'s defaults).

    Returns:
        The figure.
    """
    mel = mel or MelConfig()
    n = min(n, len(x))
    cols = 4
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3.1 * cols, 2.3 * rows), squeeze=False, sharey=True)
    specs = x[:n].reshape(n, *x.shape[-2:]).numpy()
    lo, hi = (float(specs.min()), float(specs.max())) if n else (0.0, 1.0)
    im = None
    for k, ax in enumerate(axes.flat):
        if k >= n:
            ax.axis("off")
            continue
        im = show_logmel(ax, specs[k], mel, hop_seconds=hop_seconds, vmin=lo, vmax=hi)
        names = [lab for lab, v in zip(labels, y[k].tolist(), strict=True) if v > 0.5]
        ax.set_title(" + ".join(names) or "negative (none)", fontsize=8)
        if k % cols:
            ax.set_ylabel("")
        if k // cols == rows - 1:
            ax.set_xlabel("time (s)")
    fig.tight_layout()
    if im is not None:
        fig.colorbar(im, ax=axes.ravel().tolist(), label="dB", pad=0.01, fraction=0.02)
    return fig


def plot_timing(ms_per_item: dict[str, float], batch_size: int) -> Figure:
    """Bar chart of loading time per item (and per batch of ``batch_size``, in the labels).
    Used in notebook 04."""
    fig, ax = plt.subplots(figsize=(7, 2.8))
    names = list(ms_per_item)
    values = [ms_per_item[k] for k in names]
    ax.barh(names, values, color=["tab:green", "tab:blue", "tab:red"][: len(names)])
    for i, v in enumerate(values):
        ax.annotate(
            f"{v:.2f} ms/item, {v * batch_size:.0f} ms per batch of {batch_size}",
            (v, i),
            va="center",
            fontsize=8,
            xytext=(3, 0),
            textcoords="offset points",
        )
    ax.set_xlabel("milliseconds per item (lower is faster)")
    ax.set_xlim(0, max(values) * 1.6)
    fig.tight_layout()
    return fig


def plot_before_after(
    pairs: dict[str, tuple[np.ndarray, np.ndarray]],
    hop_seconds: float = 0.01,
    vmin: float | None = None,
    vmax: float | None = None,
    mel: MelConfig | None = None,
) -> Figure:
    """One row per augmentation: the log-mel before, after (same colour scale) and the difference
    after - before in dB (notebook 04).

    Why the third column: some changes are hard to see side by side. A gain of -6 dB darkens a
    spectrogram only slightly, and a circular time shift of a steady sound looks like the sound
    itself; the difference shows the gain as one flat colour and the shift as a pattern.

    Args:
        pairs: ``{name: (before, after)}``, log-mels in dB ``[n_mels, frames]``
            (:func:`~sed_utils.features.augment.augment_examples`).
        hop_seconds: the log-mels' frame hop in seconds.
        vmin, vmax: the before/after colour scale (default: each row's own minimum and maximum).
        mel: the log-mel settings, for the Hz axis (default: :class:`MelConfig`'s defaults).

    Returns:
        The figure.
    """
    mel = mel or MelConfig()
    fig, axes = plt.subplots(len(pairs), 3, figsize=(13, 2.3 * len(pairs)), squeeze=False, sharex=True,
                             sharey=True)
    for row, (name, (before, after)) in enumerate(pairs.items()):
        lo = float(min(before.min(), after.min())) if vmin is None else vmin
        hi = float(max(before.max(), after.max())) if vmax is None else vmax
        for col, (data, what) in enumerate(((before, "before"), (after, "after"))):
            im = show_logmel(axes[row, col], data, mel, hop_seconds=hop_seconds, vmin=lo, vmax=hi)
            axes[row, col].set_title(f"{name}: {what}", fontsize=9)
        add_colorbar(im, axes[row, 1])
        diff = np.asarray(after, dtype=float) - np.asarray(before, dtype=float)
        span = max(float(np.abs(diff).max()), 1e-6)
        im_d = show_logmel(axes[row, 2], diff, mel, hop_seconds=hop_seconds, vmin=-span, vmax=span,
                           cmap="RdBu_r")
        axes[row, 2].set_title(f"{name}: after - before (mean {diff.mean():+.1f} dB)", fontsize=9)
        add_colorbar(im_d, axes[row, 2], "dB change")
        for col in (1, 2):
            axes[row, col].set_ylabel("")
    for ax in axes[-1]:
        ax.set_xlabel("time (s)")
    fig.tight_layout()
    return fig
