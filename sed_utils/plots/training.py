"""Figures of training, for every model kind: learning curves and the per-class validation F1
(notebooks 05, 08)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure

from sed_utils.plots.style import label_color_list, legend_outside

__all__ = ["validation_sets", "plot_history", "plot_class_f1"]

_SET_NAMES = {"chunks": "validation chunks (clean)", "scenes": "validation scenes"}


def validation_sets(history: pd.DataFrame) -> list[str]:
    """The validation sets a training history scored (``valid_<set>_f1`` columns; notebooks 05, 08)."""
    return [c[len("valid_"):-len("_f1")] for c in history.columns
            if c.startswith("valid_") and c.endswith("_f1") and not c.startswith("valid_f1_")]


def _kept_epoch(history: pd.DataFrame, selected_on: str) -> int:
    return int(history.loc[history[f"valid_{selected_on}_f1"].idxmax(), "epoch"])


def plot_history(history: pd.DataFrame, selected_on: str = "scenes") -> Figure:
    """Loss curves (training and each validation set) and each validation set's macro F1 per epoch, the
    kept epoch marked (notebooks 05, 08).

    Args:
        history: ``history.csv`` of :func:`sed_utils.train.train` (``train_loss``, ``valid_<set>_loss``,
            ``valid_<set>_f1``).
        selected_on: the set that kept the epoch (dashed line); the epoch another set would have kept is
            dotted: the before/after of choosing on scenes (the clean chunks' F1 often peaks earlier).

    Returns:
        A closed matplotlib Figure: a notebook shows it once, as the cell's result.
    """
    if history.empty:
        raise ValueError("plot_history: the history has no epochs")
    fig, (ax_loss, ax_f1) = plt.subplots(1, 2, figsize=(10, 3.8), layout="constrained")
    plt.close(fig)
    epochs = history["epoch"]
    best = _kept_epoch(history, selected_on)
    ax_loss.plot(epochs, history["train_loss"], "o-", label="training")
    for k, name in enumerate(validation_sets(history)):
        label = _SET_NAMES.get(name, f"validation {name}")
        ax_loss.plot(epochs, history[f"valid_{name}_loss"], "o-", color=f"C{k + 2}", label=label)
        ax_f1.plot(epochs, history[f"valid_{name}_f1"], "s-", color=f"C{k + 2}", label=label)
        other = _kept_epoch(history, name)
        if name != selected_on and other != best:
            ax_f1.axvline(other, color="grey", ls=":", lw=1, label=f"best on {name} ({other})")
    ax_loss.set(xlabel="epoch", ylabel="loss", title="Loss")
    ax_f1.set(xlabel="epoch", ylabel="macro F1 (thresholds chosen)", title="Validation macro F1", ylim=(0,
                                                                                                        1.02))
    ax_loss.axvline(best, color="grey", ls="--", lw=1, label=f"kept epoch ({best})")
    ax_f1.axvline(best, color="grey", ls="--", lw=1, label=f"kept epoch ({best}, best on {selected_on})")
    for ax in (ax_loss, ax_f1):
        ax.set_xticks(list(epochs))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=2)
    return fig


def plot_class_f1(history: pd.DataFrame, selected_on: str = "scenes", epoch: int | None = None) -> Figure:
    """Bar chart of the per-class F1 on the selection set at ``epoch`` (default: the kept epoch, the one
    the checkpoint holds; notebook 05).

    Args:
        history: ``history.csv`` of :func:`sed_utils.train.train`; its ``valid_f1_<label>`` columns are
            the bars.
        selected_on: the set that kept the epoch; its ``valid_<set>_f1`` is the dashed macro-F1 line.
        epoch: the epoch to show; None: the one with the best ``valid_<selected_on>_f1``.

    Returns:
        A closed matplotlib Figure: a notebook shows it once, as the cell's result.

    Raises:
        ValueError: the history has no per-class F1 columns, or no row for ``epoch``.
    """
    cols = [c for c in history.columns if c.startswith("valid_f1_")]
    if history.empty or not cols:
        raise ValueError("plot_class_f1: the history has no per-class F1 columns (valid_f1_<label>)")
    epoch = _kept_epoch(history, selected_on) if epoch is None else epoch
    rows = history[history["epoch"] == epoch]
    if rows.empty:
        raise ValueError(f"plot_class_f1: epoch {epoch} is not in the history "
                         f"(epochs {list(history['epoch'])})")
    row = rows.iloc[0]
    names = [c.removeprefix("valid_f1_") for c in cols]
    fig, ax = plt.subplots(figsize=(7, 3.5), layout="constrained")
    plt.close(fig)
    bars = ax.bar(names, [float(row[c]) for c in cols], color=label_color_list(names))
    ax.bar_label(bars, fmt="%.2f", label_type="center", color="white", fontweight="bold")
    macro = float(row[f"valid_{selected_on}_f1"])
    ax.axhline(macro, color="C3", ls="--", label=f"macro F1 {macro:.2f}")
    ax.set(ylim=(0, 1.08), ylabel="F1", title=f"{_SET_NAMES.get(selected_on, selected_on)}: F1 per class, "
                                               f"kept epoch {epoch}")
    ax.tick_params(axis="x", labelrotation=15)
    legend_outside(ax)
    return fig
