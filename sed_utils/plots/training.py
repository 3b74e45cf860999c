"""Figures of notebook 05: the training curves and the per-class validation F1 of the kept epoch."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure

from sed_utils.plots.style import label_color_list, legend_outside

__all__ = ["plot_history", "plot_class_f1"]


def plot_history(history: pd.DataFrame, selected_on: str | None = None) -> Figure:
    """Loss curves (train and validation) and validation F1 per epoch, the kept epoch marked (notebook 05).

    With a ``valid_scenes_f1`` column (validation scenes scored every epoch) the right panel shows
    both F1 curves, and marks the epoch each would pick: the clean chunks' F1 often peaks earlier
    than the scenes'. ``selected_on`` ("chunks" or "scenes", default: "scenes" when that column
    exists) says which of them picked the kept epoch.

    Returns a closed matplotlib Figure: a notebook shows it once, as the cell's result.
    """
    if history.empty:
        raise ValueError("plot_history: the history has no epochs")
    has_scenes = "valid_scenes_f1" in history and history["valid_scenes_f1"].notna().any()
    selected_on = selected_on or ("scenes" if has_scenes else "chunks")
    fig, (ax_loss, ax_f1) = plt.subplots(1, 2, figsize=(10, 3.8), layout="constrained")
    plt.close(fig)  # returned, not left open: the notebook shows it once, as the cell's result
    epochs = history["epoch"]
    columns = {"chunks": "valid_macro_f1", "scenes": "valid_scenes_f1"}
    best = int(history.loc[history[columns[selected_on]].idxmax(), "epoch"])
    ax_loss.plot(epochs, history["train_loss"], "o-", label="train")
    ax_loss.plot(epochs, history["valid_loss"], "o-", label="validation chunks")
    ax_loss.set(xlabel="epoch", ylabel="BCE loss", title="Loss")
    ax_f1.plot(epochs, history["valid_macro_f1"], "o-", color="C2",
               label="validation chunks (threshold fixed)")
    if has_scenes:
        ax_f1.plot(epochs, history["valid_scenes_f1"], "s-", color="C4",
                   label="validation scenes (thresholds chosen)")
    ax_f1.set(xlabel="epoch", ylabel="macro F1", title="Validation macro F1", ylim=(0, 1.02))
    ax_loss.axvline(best, color="grey", ls="--", lw=1, label=f"kept epoch ({best})")
    ax_f1.axvline(best, color="grey", ls="--", lw=1, label=f"kept epoch ({best}, best on {selected_on})")
    if has_scenes:
        other = "chunks" if selected_on == "scenes" else "scenes"
        other_best = int(history.loc[history[columns[other]].idxmax(), "epoch"])
        if other_best != best:
            ax_f1.axvline(other_best, color="grey", ls=":", lw=1, label=f"best on {other} ({other_best})")
    for ax in (ax_loss, ax_f1):
        ax.set_xticks(list(epochs))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=2)
    return fig


def plot_class_f1(history: pd.DataFrame, epoch: int | None = None, selected_on: str | None = None) -> Figure:
    """Bar chart of the per-class validation-chunk F1 at ``epoch`` (notebook 05).

    ``epoch`` defaults to the KEPT epoch: the best one by ``selected_on`` ("scenes" when the history
    has validation-scene scores, else "chunks"), as :func:`plot_history` marks it. (Taking the best
    chunk-F1 epoch instead would show an epoch the checkpoint does not hold.)"""
    cols = [c for c in history.columns if c.startswith("valid_f1_")]
    if history.empty or not cols:
        raise ValueError("plot_class_f1: the history has no per-class F1 columns (valid_f1_<label>)")
    if epoch is None:
        has_scenes = "valid_scenes_f1" in history and history["valid_scenes_f1"].notna().any()
        column = {"chunks": "valid_macro_f1", "scenes": "valid_scenes_f1"}[
            selected_on or ("scenes" if has_scenes else "chunks")]
        epoch = int(history.loc[history[column].idxmax(), "epoch"])
    rows = history[history["epoch"] == epoch]
    if rows.empty:
        raise ValueError(
            f"plot_class_f1: epoch {epoch} is not in the history (epochs {list(history['epoch'])})"
        )
    row = rows.iloc[0]
    names = [c.removeprefix("valid_f1_") for c in cols]
    values = [float(row[c]) for c in cols]
    fig, ax = plt.subplots(figsize=(7, 3.5), layout="constrained")
    plt.close(fig)
    bars = ax.bar(names, values, color=label_color_list(names))
    ax.bar_label(bars, fmt="%.2f", label_type="center", color="white", fontweight="bold")
    ax.axhline(
        float(row["valid_macro_f1"]), color="C3", ls="--", label=f"macro F1 {row['valid_macro_f1']:.2f}"
    )
    ax.set(ylim=(0, 1.08), ylabel="F1", title=f"Validation-chunk F1 per class, kept epoch {epoch}")
    ax.tick_params(axis="x", labelrotation=15)
    legend_outside(ax)
    return fig
