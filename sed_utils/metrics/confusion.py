"""Confusion counts of segment decisions (notebook 06): per class on its own, and which class is
predicted for segments of each reference class. Pure, like :mod:`sed_utils.metrics.f1`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from sed_utils.metrics.f1 import _check_pair

__all__ = ["NONE_LABEL", "multilabel_confusion", "class_confusion"]

#: The row and column of segments without a target class.
NONE_LABEL = "none"


def multilabel_confusion(y_true: np.ndarray, y_pred: np.ndarray, labels: list[str]) -> pd.DataFrame:
    """TP/FP/FN/TN per class (each class judged on its own: present or not), one row per class
    (notebook 06).

    Args:
        y_true, y_pred: 0/1 reference and decisions ``[N, C]`` (above 0: predicted); labels: the rows.

    Raises:
        ValueError: the arrays are not 2-D of one shape.
    """
    from sklearn.metrics import multilabel_confusion_matrix

    y_true, y_pred = _check_pair(y_true, y_pred, "multilabel_confusion")
    mcm = multilabel_confusion_matrix(y_true.astype(int), (y_pred > 0).astype(int))
    return pd.DataFrame(
        {"TP": mcm[:, 1, 1], "FP": mcm[:, 0, 1], "FN": mcm[:, 1, 0], "TN": mcm[:, 0, 0]},
        index=pd.Index(labels, name="label"),
    )


def class_confusion(
    y_true: np.ndarray, y_pred: np.ndarray, labels: list[str], *, normalize: bool = False
) -> pd.DataFrame:
    """Which class is predicted for segments of each reference class ("none" = no target event).
    Used in notebook 06.

    Only segments with exactly one reference class or none are used (a segment with two reference
    classes has no single row). Rows = reference class or "none"; columns = predicted class or
    "none". A segment predicting several classes counts once in each predicted column; predicting
    nothing counts in the "none" column. With ``normalize`` each row is divided by its number of
    SEGMENTS (not by the row sum), so a cell reads "share of this row's segments where that class
    was predicted" (a row can sum to more than 1 when segments get several predictions).

    Args:
        y_true, y_pred: 0/1 reference and decisions ``[N, C]`` per segment (above 0: predicted).
        labels: the classes, in column order.

    Returns:
        ``[C + 1, C + 1]`` counts (floats with ``normalize``: NaN in a row without segments).

    Raises:
        ValueError: the arrays are not 2-D of one shape, or ``labels`` does not fit their columns.
    """
    y_true, y_pred = _check_pair(y_true, y_pred, "class_confusion")
    if y_true.shape[1] != len(labels):
        raise ValueError(f"class_confusion: {y_true.shape[1]} columns but {len(labels)} labels")
    names = list(labels) + [NONE_LABEL]
    counts = pd.DataFrame(0, index=pd.Index(names, name="reference"),
                          columns=pd.Index(names, name="predicted"), dtype=np.int64)
    n_rows = pd.Series(0, index=names, dtype=np.int64)
    n_ref = y_true.sum(axis=1)
    pred = y_pred > 0
    for i in np.flatnonzero(n_ref <= 1):
        row = names[int(np.argmax(y_true[i]))] if n_ref[i] == 1 else NONE_LABEL
        n_rows[row] += 1
        cols = [names[c] for c in np.flatnonzero(pred[i])] or [NONE_LABEL]
        for col in cols:
            counts.loc[row, col] += 1
    if not normalize:
        return counts
    denom = n_rows.replace(0, np.nan).astype(float)
    return counts.astype(float).div(denom, axis=0)
