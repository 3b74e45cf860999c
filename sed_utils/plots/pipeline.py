"""Figures of notebook 04: a batch of model inputs, the augmentations before/after, loading speed."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

__all__ = ["plot_batch", "plot_timing", "plot_before_after"]


def plot_batch(
    x: torch.Tensor, y: torch.Tensor, labels: list[str], n: int = 8, hop_seconds: float = 0.01
) -> Figure:
    """Grid of the first ``n`` spectrograms of a batch ``x[B, 1, n_mels, frames]``, titled by label
    (notebook 04)."""
    n = min(n, len(x))
    cols = 4
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 2.3 * rows), squeeze=False)
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k >= n:
            continue
        spec = x[k, 0].numpy()
        ax.imshow(
            spec,
            origin="lower",
            aspect="auto",
            cmap="magma",
            extent=(0, spec.shape[-1] * hop_seconds, 0, spec.shape[-2]),
        )
        names = [lab for lab, v in zip(labels, y[k].tolist(), strict=True) if v > 0.5]
        ax.set_title(" + ".join(names) or "negative (none)", fontsize=8)
    fig.tight_layout()
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
) -> Figure:
    """One row per augmentation: the log-mel before (left) and after (right), same colour scale
    (notebook 04)."""
    fig, axes = plt.subplots(len(pairs), 2, figsize=(9, 2.2 * len(pairs)), squeeze=False, sharex=True)
    for row, (name, (before, after)) in enumerate(pairs.items()):
        lo = float(min(before.min(), after.min())) if vmin is None else vmin
        hi = float(max(before.max(), after.max())) if vmax is None else vmax
        for col, (data, what) in enumerate(((before, "before"), (after, "after"))):
            ax = axes[row, col]
            ax.imshow(
                data,
                origin="lower",
                aspect="auto",
                cmap="magma",
                vmin=lo,
                vmax=hi,
                extent=(0, data.shape[-1] * hop_seconds, 0, data.shape[-2]),
            )
            ax.set_title(f"{name}: {what}", fontsize=9)
            ax.set_ylabel("mel band")
    for ax in axes[-1]:
        ax.set_xlabel("time (s)")
    fig.tight_layout()
    return fig
