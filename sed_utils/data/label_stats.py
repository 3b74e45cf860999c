"""The numbers notebook 02 looks at before any training: counts, durations, overlaps.

Why bother: these numbers decide later choices. How many clips per class (is the training set
balanced?), how long events last (a 1 s chunk sees a whole bark but only a slice of a vacuum
cleaner), how often classes overlap (a multilabel model is needed, not a softmax), and how many
evaluation clips contain none of our classes (the model must learn to stay silent). Pure functions
over the label tables (tested); :mod:`sed_utils.plots.explore` draws them.
"""

from __future__ import annotations

import pandas as pd

from sed_utils.data.desed import DESED_LABELS

__all__ = [
    "esc50_class_counts",
    "desed_event_counts",
    "labels_present",
    "duration_summary",
    "event_durations",
    "events_per_clip",
    "cooccurrence_matrix",
    "overlap_seconds",
]


def esc50_class_counts(meta: pd.DataFrame, classes: dict[str, str]) -> pd.DataFrame:
    """Clips per ESC-50 category: columns ``category``, ``clips``, ``is_target``, ``label`` (notebook 02).

    ``label`` is the DESED label of a target category and "" for a negative. Sorted: targets first
    (in ``classes`` order), then negatives by name.
    """
    counts = meta["category"].value_counts()
    to_label = {cat: lab for lab, cat in classes.items()}
    rows = [(cat, int(counts.get(cat, 0)), True, lab) for lab, cat in classes.items()]
    rows += [(cat, int(counts[cat]), False, "") for cat in sorted(counts.index) if cat not in to_label]
    return pd.DataFrame(rows, columns=["category", "clips", "is_target", "label"])


def desed_event_counts(events: pd.DataFrame, labels: list[str]) -> pd.DataFrame:
    """Per label: number of events, number of clips with at least one, total seconds (index = label).
    Notebook 02's table of the test set."""
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
    """Labels to show: the targets first (their order), then the other labels found in ``events``
    (notebook 02's figures).

    The others follow :data:`sed_utils.data.desed.DESED_LABELS` order when they are DESED labels.
    """
    found = set(events["event_label"])
    others = [lab for lab in DESED_LABELS if lab in found and lab not in targets]
    others += sorted(found - set(targets) - set(others))
    return list(targets) + others


def duration_summary(events: pd.DataFrame, labels: list[str]) -> pd.DataFrame:
    """Per label: event count and min / median / max duration in seconds (index = label; notebook 02)."""
    dur = event_durations(events)
    g = dur.groupby(events["event_label"])
    out = pd.DataFrame({"events": g.size(), "min_s": g.min(), "median_s": g.median(), "max_s": g.max()})
    return out.reindex(labels).fillna({"events": 0}).astype({"events": int})


def event_durations(events: pd.DataFrame) -> pd.Series:
    """Length in seconds of every event (``offset - onset``), same index as ``events`` (notebook 02)."""
    return (events["offset"] - events["onset"]).rename("duration")


def events_per_clip(events: pd.DataFrame, files: list[str]) -> pd.Series:
    """Number of events in each of ``files`` (zeros included: clips without events count too).
    Notebook 02."""
    return events.groupby("filename").size().reindex(files, fill_value=0).astype(int).rename("events")


def cooccurrence_matrix(events: pd.DataFrame, labels: list[str]) -> pd.DataFrame:
    """Clips in which label i AND label j both occur (anywhere in the clip; notebook 02).

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
    """Seconds during which label i and label j sound AT THE SAME TIME (summed over clips; notebook 02).

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
