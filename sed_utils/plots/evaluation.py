"""Figures and a widget for notebook 06: what the evaluation numbers are made of.

Every function takes plain tables/arrays (the outputs of :mod:`sed_utils.evaluate`) and returns a
matplotlib Figure (or an ipywidgets box), so the notebook stays a sequence of one-line calls and the
figures can be saved or tested without a notebook.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from sed_utils.labels.grid import PostProcessing, ScoreCurves, TimeGrid
from sed_utils.metrics.confusion import NONE_LABEL
from sed_utils.plots.style import label_colors, legend_outside


def _num(x: Any) -> float:
    """None (NaN written to JSON as null) -> NaN, so plots treat both alike."""
    return float("nan") if x is None else float(x)


# --------------------------------------------------------------------------------------------
# Headline: the three views side by side
# --------------------------------------------------------------------------------------------
def plot_views(results: Mapping[str, Any]) -> Figure:
    """Bars of the three views (macro and micro where defined), with the published numbers marked
    (notebook 06).

    The published values (hatched) are NOT measured here: the original's 0.497 and the DCASE 2019
    baseline (other training data, 10 classes). They are drawn next to the matching view only, and
    never beside numbers measured on synthetic data (the demo profile): a synthetic 0.87 next to a
    published 0.585 would invite "we beat the baseline", which it cannot say.
    """
    m = results
    synthetic = bool(results.get("synthetic_data"))
    pub = results["published_reference_numbers"]
    ev = m["event_based"]
    collars = f"{1000 * ev['t_collar']:.0f} ms / {100 * ev['percentage_of_length']:.0f} % collars"
    seg_len = f"{m['segment_based']['segment_seconds']:g} s"
    views = [
        (f"(1) original chunk F1\nevent chunks, thr {m['reference_chunk_f1']['threshold']:g}",
         m["reference_chunk_f1"]["macro_f1"], None,
         pub["original_chunk_macro_f1"]["value"], "original (published)"),
        (f"(2) sed_eval segment-based\n{seg_len}, every segment", m["segment_based"]["macro"]["f1"],
         m["segment_based"]["overall"]["f1"], pub["dcase2019_baseline_segment_f1"]["value"],
         "DCASE19 baseline (published)"),
        (f"(3) sed_eval event-based\n{collars}", ev["macro"]["f1"],
         ev["overall"]["f1"], pub["dcase2019_baseline_event_f1"]["value"],
         "DCASE19 baseline (published)"),
    ]
    fig, ax = plt.subplots(figsize=(10, 4.2))
    x = np.arange(len(views))
    w = 0.26
    for i, (_, macro, micro, ref, ref_name) in enumerate(views):
        bars = [(x[i] - w, _num(macro), "#4c72b0", "macro F1 (ours)", None)]
        if micro is not None:
            bars.append((x[i], _num(micro), "#a1c4e8", "micro F1 (ours)", None))
        if not synthetic:
            bars.append((x[i] + w, ref, "lightgrey", ref_name, "//"))
        for pos, val, colour, name, hatch in bars:
            ax.bar(pos, 0 if np.isnan(val) else val, w, color=colour, hatch=hatch, edgecolor="black",
                   linewidth=0.5, label=name)
            ax.text(pos, (0 if np.isnan(val) else val) + 0.01, "n/a" if np.isnan(val) else f"{val:.3f}",
                    ha="center", va="bottom", fontsize=8)
    handles, names = ax.get_legend_handles_labels()
    uniq = dict(zip(names, handles, strict=True))
    legend_outside(ax, handles=list(uniq.values()), labels=list(uniq.keys()))
    ax.set_xticks(x, [v[0] for v in views], fontsize=9)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("F1")
    data = results.get("test_set_name") or ("SYNTHETIC demo data" if synthetic else "DESED public eval")
    if synthetic:
        ax.set_title(f"Three views of one model on {data}:\nSYNTHETIC sounds, a check that the code works, "
                     "not a result (published numbers left out)", color="C3", fontsize=10)
    else:
        ax.set_title(f"Three views of one model on {data} (hatched: published, not measured here)")
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------------
# Confusion
# --------------------------------------------------------------------------------------------
def plot_multilabel_confusion(table: pd.DataFrame, title: str = "") -> Figure:
    """One annotated 2x2 matrix per class (rows: reference yes/no, columns: predicted yes/no).
    Used in notebook 06.

    ``table`` is :func:`~sed_utils.metrics.multilabel_confusion` (TP/FP/FN/TN per class). The
    colour is the share of the class's segments, so classes of different sizes are comparable.
    """
    n = len(table)
    fig, axes = plt.subplots(1, n, figsize=(2.6 * n, 2.9), squeeze=False)
    for ax, (label, row) in zip(axes[0], table.iterrows(), strict=True):
        mat = np.array([[row["TP"], row["FN"]], [row["FP"], row["TN"]]], dtype=float)
        share = mat / max(mat.sum(), 1)
        ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
        for (i, j), v in np.ndenumerate(mat):
            name = [["TP", "FN"], ["FP", "TN"]][i][j]
            ax.text(j, i, f"{name}\n{int(v)}", ha="center", va="center", fontsize=9,
                    color="white" if share[i, j] > 0.55 else "black")
        ax.set_xticks([0, 1], ["pred yes", "pred no"], fontsize=8)
        ax.set_yticks([0, 1], ["ref yes", "ref no"], fontsize=8)
        ax.set_title(str(label), fontsize=10)
    fig.suptitle(title or "Per-class confusion over 1 s segments", fontsize=11)
    fig.tight_layout()
    return fig


def plot_class_confusion(
    normalised: pd.DataFrame, counts: pd.DataFrame | None = None, title: str = "", left_out: int = 0
) -> Figure:
    """Heatmap: reference class (rows, incl. "none") vs predicted class (columns, incl. "none").
    Used in notebook 06.

    Only segments with one reference class or none have a row: a segment where a dog barks over
    running water has no single "reference class". ``left_out`` (how many such multilabel segments
    there are) is written under the figure, so a reader knows what the rows do not show.

    Cells are the share of the row's segments (0-1, one fixed colour scale so rows compare), with the
    raw count underneath when ``counts`` is given. The diagonal is what we want; the "none" column
    is misses, the "none" row is false alarms on segments without any target event.

    Args:
        normalised: :func:`~sed_utils.metrics.class_confusion` with ``normalize=True`` (NaN cells,
            rows without segments, are drawn as "-").
        counts: the same table without ``normalize``; None: shares only.
        title: the figure's title (default: what the heatmap shows).
        left_out: the number of segments with two or more reference classes.

    Returns:
        The figure.
    """
    vals = normalised.to_numpy(dtype=float)
    fig, ax = plt.subplots(figsize=(1.25 * vals.shape[1] + 2.5, 0.9 * vals.shape[0] + 1.5))
    im = ax.imshow(np.nan_to_num(vals, nan=0.0), cmap="viridis", vmin=0, vmax=1)
    for (i, j), v in np.ndenumerate(vals):
        text = "-" if np.isnan(v) else f"{v:.2f}"
        if counts is not None:
            text += f"\n({int(counts.iloc[i, j])})"
        ax.text(j, i, text, ha="center", va="center", fontsize=8, color="black" if v > 0.6 else "white")
    ax.set_xticks(range(vals.shape[1]), normalised.columns, rotation=30, ha="right", fontsize=9)
    ax.set_yticks(range(vals.shape[0]), normalised.index, fontsize=9)
    ax.set_xlabel("predicted (a segment can count in several columns)")
    ax.set_ylabel("reference (single-label or empty segments)")
    if NONE_LABEL in normalised.index:
        ax.axhline(len(normalised.index) - 1.5, color="white", linewidth=1.5)
    if NONE_LABEL in normalised.columns:
        ax.axvline(len(normalised.columns) - 1.5, color="white", linewidth=1.5)
    fig.colorbar(im, ax=ax, label="share of the row's segments")
    ax.set_title(title or "Which class is predicted for each reference class")
    if left_out:
        fig.text(0.01, 0.01, f"not shown: {left_out} segments with two or more reference classes "
                 "(no single row fits them)", fontsize=8, color="C3")
    fig.tight_layout(rect=(0, 0.04 if left_out else 0, 1, 1))
    return fig


# --------------------------------------------------------------------------------------------
# Per-class precision / recall
# --------------------------------------------------------------------------------------------
def plot_precision_recall(
    segment: Mapping[str, Any], event: Mapping[str, Any], labels: Sequence[str]
) -> Figure:
    """Per-class precision, recall and F1 bars, segment-based (left) and event-based (right).
    Used in notebook 06.

    Low precision = false alarms, low recall = misses: the F1 alone does not say which.

    Args:
        segment, event: the dicts of :func:`~sed_utils.metrics.segment_metrics` and
            :func:`~sed_utils.metrics.event_metrics`; an undefined (NaN) value is drawn as "n/a".
        labels: the classes to draw, in order.

    Returns:
        The figure.
    """
    fig, axes = plt.subplots(1, 2, figsize=(12, 3.8), sharey=True)
    x = np.arange(len(labels))
    w = 0.27
    for ax, (name, met) in zip(axes, [("segment-based (1 s)", segment), ("event-based", event)], strict=True):
        for k, (key, colour) in enumerate([("precision", "tab:orange"), ("recall", "tab:green"),
                                           ("f1", "tab:blue")]):
            vals = np.array([_num(met["class_wise"][lab][key]) for lab in labels])
            ax.bar(x + (k - 1) * w, np.nan_to_num(vals), w, color=colour, label=key)
            for xi, v in zip(x + (k - 1) * w, vals, strict=True):
                if np.isnan(v):
                    ax.text(xi, 0.01, "n/a", ha="center", va="bottom", fontsize=7, rotation=90)
        ax.set_xticks(x, labels, rotation=20, ha="right", fontsize=9)
        macro, micro = _num(met["macro"]["f1"]), _num(met["overall"]["f1"])
        ax.set_title(f"{name}: macro F1 {macro:.3f}, micro F1 {micro:.3f}", fontsize=10)
        ax.set_ylim(0, 1.05)
    axes[0].set_ylabel("score")
    legend_outside(axes[1])
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------------
# Thresholds
# --------------------------------------------------------------------------------------------
def plot_f1_vs_threshold(
    curves: Mapping[str, pd.DataFrame],
    thresholds: Sequence[float] | np.ndarray,
    labels: Sequence[str],
    title: str = "",
) -> Figure:
    """F1 against threshold, one panel per class, one line per data set; the chosen threshold marked
    (notebook 06).

    ``curves`` maps a name (e.g. "ESC-50 validation (chooses)", "DESED (analysis only)") to a
    :func:`~sed_utils.metrics.f1_vs_threshold` table. The vertical line is the threshold that was
    USED - chosen on validation - so the DESED curve shows what it cost or gained, nothing more.

    Args:
        curves: the data sets' tables, as above.
        thresholds: the threshold used per class, ``[C]``.
        labels: the classes, one panel each.
        title: the figure's title (default: says what the red line is).

    Returns:
        The figure.
    """
    n = len(labels)
    fig, axes = plt.subplots(1, n, figsize=(2.9 * n, 3.2), sharey=True, squeeze=False)
    styles = ["-", "--", ":", "-."]
    for ax, lab, thr in zip(axes[0], labels, thresholds, strict=True):
        for k, (name, table) in enumerate(curves.items()):
            part = table[table["label"] == lab]
            ax.plot(part["threshold"], part["f1"], styles[k % 4], marker=".", label=name)
        ax.axvline(float(thr), color="red", linewidth=1)
        ax.text(float(thr), 1.02, f"{float(thr):.2f}", color="red", ha="center", fontsize=8)
        ax.set_title(lab, fontsize=10, pad=14)
        ax.set_xlabel("threshold")
        ax.set_ylim(0, 1.08)
    axes[0, 0].set_ylabel("F1")
    fig.legend(*axes[0, 0].get_legend_handles_labels(), loc="lower center", ncol=len(curves), fontsize=8,
               bbox_to_anchor=(0.5, -0.01))
    fig.suptitle(title or "F1 against threshold (red: the threshold used, chosen on validation)", fontsize=11)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    return fig


# --------------------------------------------------------------------------------------------
# Timelines and the threshold slider
# --------------------------------------------------------------------------------------------
def _draw_timeline(ax_events: Any, ax_scores: Any, filename: str, reference: pd.DataFrame,
                   predicted: pd.DataFrame | None, bounds: np.ndarray, scores: np.ndarray, thresholds:
                   np.ndarray,
                   labels: Sequence[str], clip_seconds: float) -> None:
    col = label_colors(labels)
    for k, lab in enumerate(labels):
        y = len(labels) - 1 - k
        ref = reference[(reference["filename"] == filename) & (reference["event_label"] == lab)]
        ax_events.broken_barh([(a, b - a) for a, b in zip(ref["onset"], ref["offset"], strict=True)],
                              (y + 0.05, 0.4), color=col[lab], alpha=0.9)
        if predicted is not None:
            pr = predicted[(predicted["filename"] == filename) & (predicted["event_label"] == lab)]
            ax_events.broken_barh([(a, b - a) for a, b in zip(pr["onset"], pr["offset"], strict=True)],
                                  (y - 0.45, 0.4), facecolor="none", edgecolor=col[lab], hatch="///")
        ax_scores.stairs(scores[:, k], bounds, color=col[lab], label=lab)
        ax_scores.axhline(float(thresholds[k]), color=col[lab], linestyle="--", linewidth=0.8)
    ax_events.set_yticks(range(len(labels)), list(reversed(labels)), fontsize=8)
    ax_events.set_ylim(-0.5, len(labels) - 0.5)
    ax_events.set_xlim(0, clip_seconds)
    ax_events.set_title(f"{filename}: reference (solid, upper) vs detected (hatched, lower)", fontsize=9)
    ax_scores.set_xlim(0, clip_seconds)
    ax_scores.set_ylim(0, 1)
    ax_scores.set_ylabel("score", fontsize=8)
    ax_scores.set_xlabel("time (s)", fontsize=8)


def plot_timelines(filenames: Sequence[str], reference: pd.DataFrame, curves: ScoreCurves,
                   post: PostProcessing,
                   *, clip_seconds: float = 10.0) -> Figure:
    """For a few clips: reference events as bars, the detected events hatched under them, and the score
    curves with the event thresholds (dashed) (notebook 06).

    Args:
        filenames: the clips; reference: their events; curves: name -> (bounds, scores).
        post: the post-processing the detections are decoded with (its thresholds are drawn).
        clip_seconds: the x axis.
    """
    n = len(filenames)
    fig, axes = plt.subplots(2 * n, 1, figsize=(10, 3.6 * n), gridspec_kw={"height_ratios": [1.1, 1] * n},
                             squeeze=False)
    thr = np.asarray(post.thresholds, dtype=float)
    for i, name in enumerate(filenames):
        bounds, scores = curves[name]
        detected = post.decode(TimeGrid(post.labels, np.asarray(bounds, dtype=float)), scores, name)
        _draw_timeline(axes[2 * i, 0], axes[2 * i + 1, 0], name, reference, detected, bounds, scores, thr,
                       post.labels, clip_seconds)
    handles = [Patch(color=c, label=lab) for lab, c in label_colors(post.labels).items()]
    fig.legend(handles=handles, fontsize=8, ncol=len(post.labels), loc="upper center")
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.35 / (3.6 * n)))
    return fig


def threshold_slider(filenames: Sequence[str], reference: pd.DataFrame, curves: ScoreCurves,
                     post: PostProcessing,
                     *, clip_seconds: float = 10.0) -> Any:
    """A clip picker and threshold sliders that redraw one clip's scores and detections (notebook 06).

    "global" mode moves one threshold for every class; "per class" gives one slider per class, starting
    at the validation-chosen thresholds. Detections are decoded with ``post``'s median filters and
    minimum durations (:meth:`~sed_utils.labels.TimeGrid.decode`), so what you see is what the
    event-based metric would score.

    Args:
        filenames: the clips the picker offers; each needs a curve in ``curves``.
        reference: their reference events.
        curves: name -> (bounds, scores).
        post: the chosen post-processing: its thresholds start the per-class sliders.
        clip_seconds: where the time axis ends.

    Returns:
        An ipywidgets VBox.
    """
    import ipywidgets as widgets

    labels = list(post.labels)
    clip = widgets.Dropdown(options=list(filenames), description="clip")
    mode = widgets.ToggleButtons(options=["per class", "global"], description="thresholds")
    slider_kw = dict(min=0.0, max=1.0, step=0.01, continuous_update=False, readout_format=".2f")
    glob = widgets.FloatSlider(value=0.5, description="all", **slider_kw)
    per = [widgets.FloatSlider(value=float(t), description=lab[:12], **slider_kw)
           for lab, t in zip(labels, post.thresholds, strict=True)]
    out = widgets.Output()

    def current() -> np.ndarray:
        if mode.value == "global":
            return np.full(len(labels), glob.value)
        return np.array([s.value for s in per])

    def redraw(*_: Any) -> None:
        thr = current()
        bounds, scores = curves[clip.value]
        grid = TimeGrid(tuple(labels), np.asarray(bounds, dtype=float))
        det = grid.decode(scores, thr, median_filters=post.median_filters, min_durations=post.min_durations,
                          filename=clip.value)
        fig, axes = plt.subplots(2, 1, figsize=(10, 4.2), gridspec_kw={"height_ratios": [1.1, 1]})
        _draw_timeline(axes[0], axes[1], clip.value, reference, det, grid.bounds, scores, thr, labels,
                       clip_seconds)
        fig.tight_layout()
        # Set the widget's outputs directly instead of capturing them with `with out:`: captured
        # output makes headless runners (nbclient/papermill) talk to the kernel mid-cell, which can
        # deadlock until the cell timeout (jupyter/nbclient#312; seen here: notebook 06 stalled 30 min).
        # explore.clip_browser does the same.
        png = io.BytesIO()
        fig.savefig(png, format="png", dpi=80)
        plt.close(fig)
        out.outputs = ({"output_type": "display_data", "data": {"image/png":
                        base64.b64encode(png.getvalue()).decode("ascii"), "text/plain": "<timeline>"},
                        "metadata": {}},)

    def on_mode(*_: Any) -> None:
        box.children = [clip, mode, glob if mode.value == "global" else widgets.VBox(per), out]
        redraw()

    for w in [clip, glob, *per]:
        w.observe(redraw, names="value")
    mode.observe(on_mode, names="value")
    box = widgets.VBox([clip, mode, widgets.VBox(per), out])
    redraw()
    return box


def plot_segment_scores(filename: str, events: pd.DataFrame, bounds: np.ndarray, scores: np.ndarray,
                        segments: pd.DataFrame, segment_scores: np.ndarray, label: str, labels: Sequence[str],
                        threshold: float | None = None) -> Figure:
    """One clip, one class: the score curve and the 1 s segment scores taken from it, against the
    reference events (notebook 06).

    Grey spans: the reference events of ``label``. Thin steps: the score curve (one step per frame or
    window slice). Thick steps: each segment's score, the highest of the curve inside it
    (:meth:`~sed_utils.labels.TimeGrid.segment_scores`). ``segments`` (filename, start, end) are the rows
    of ``segment_scores``; the dashed line is the segment threshold chosen on validation.

    Args:
        filename: the clip.
        events: reference events (only the clip's events of ``label`` are drawn).
        bounds, scores: the clip's score curve, ``[T + 1]`` seconds and ``[T, C]``.
        segments: the segment table, of any files; the clip's rows are drawn.
        segment_scores: the scores of every row of ``segments``, ``[rows, C]``.
        label: the class to draw; labels: the classes, in column order.
        threshold: the segment threshold; None: no line.

    Returns:
        The figure.

    Raises:
        ValueError: ``label`` is not one of ``labels``.
    """
    c = list(labels).index(label)
    rows = np.flatnonzero(segments["filename"].to_numpy() == filename)
    starts = segments["start"].to_numpy(float)[rows]
    ends = segments["end"].to_numpy(float)[rows]
    fig, ax = plt.subplots(figsize=(10, 3.2))
    plt.close(fig)
    for e in events[(events["filename"] == filename) & (events["event_label"] == label)].itertuples():
        ax.axvspan(e.onset, e.offset, color="0.85", zorder=0)
    ax.stairs(np.asarray(scores)[:, c], bounds, color="0.35", linewidth=1, label="score curve")
    edges = np.append(starts, ends[-1]) if len(rows) else np.zeros(1)
    ax.stairs(np.asarray(segment_scores)[rows, c], edges, color="C3", linewidth=2.2,
              label="segment score (max inside)")
    if threshold is not None:
        ax.axhline(float(threshold), color="C3", ls="--", lw=1,
                   label=f"segment threshold {float(threshold):.2f}")
    ax.set(xlabel="time (s)", ylabel="probability", ylim=(0, 1.05),
           title=f"{filename}: {label} (grey: reference events)")
    legend_outside(ax)
    fig.tight_layout()
    return fig


def plot_ablation(summary: dict[str, Any]) -> Figure:
    """Bars of the ablation (``benchmarks/results/ablation.json``): scene segment macro F1 per recipe
    (notebook 06).

    Each bar is the mean over seeds with the standard deviation as an error bar; rows that could
    not run (e.g. ImageNet weights offline) are listed in the title instead of drawn as zero.
    """
    rows = [r for r in summary["table"] if "segment_macro_f1" in r]
    skipped = [r["title"] for r in summary["table"] if "note" in r]
    fig, ax = plt.subplots(figsize=(9, 0.6 * len(rows) + 1.4))
    y = np.arange(len(rows))[::-1]
    for key, offset, color, name in [("segment_macro_f1", 0.18, "C0", "segment macro F1 (scenes)"),
                                     ("event_macro_f1", -0.18, "C1", "event macro F1 (scenes)")]:
        ax.barh(y + offset, [r[key] for r in rows], height=0.34, xerr=[r[key + "_sd"] for r in rows],
                color=color, label=name, capsize=3)
    ax.set_yticks(y, [r["title"] for r in rows], fontsize=8)
    ax.set_xlim(0, 1)
    ax.set_xlabel("F1 (mean ± sd over seeds)")
    meta = summary["meta"]
    fewer = [r["title"] for r in rows if len(r.get("seeds", meta["seeds"])) < len(meta["seeds"])]
    title = f"Cumulative improvements, held-out ESC-50 scenes, seeds {meta['seeds']}"
    if fewer:
        seeds = sorted({len(r["seeds"]) for r in rows if r["title"] in fewer})
        title += (f" ({len(fewer)} rows with {' or '.join(map(str, seeds))} "
                  f"seed{'s' if seeds != [1] else ''} only: marked *)")
        ax.set_yticks(y, [r["title"] + (" *" if r["title"] in fewer else "") for r in rows], fontsize=8)
    if skipped:
        title += "\nnot run: " + "; ".join(skipped)
    ax.set_title(title, fontsize=9)
    legend_outside(ax)
    fig.tight_layout()
    plt.close(fig)
    return fig
