"""Derive the label statistics the DESED-like scenes follow from DESED's VALIDATION labels.

    python tools/desed_stats.py ../shared/data/desed-meta/validation.tsv

writes ``sed_utils/data/desed_validation_stats.json``: the share of clips without any of the five
target classes, how many target classes a clip holds, and per class how many events a clip holds
and how long they last (21 quantiles). Only the validation set is read: DESED public eval is the
series' test set, and nothing about it may shape the training, validation or test scenes.
The DESED labels are MIT-licensed (https://github.com/turpaultn/DESED); the JSON says so.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

TARGETS = ["Dog", "Cat", "Alarm_bell_ringing", "Running_water", "Vacuum_cleaner"]
OUT = Path(__file__).resolve().parent.parent / "sed_utils" / "data" / "desed_validation_stats.json"


def stats(tsv: Path) -> dict:
    table = pd.read_csv(tsv, sep="\t")
    if "public" in tsv.name:
        raise SystemExit(f"{tsv}: that is the TEST set's labels; use DESED's validation.tsv")
    files = table["filename"].unique()
    events = table[table["event_label"].isin(TARGETS)].assign(seconds=lambda d: d["offset"] - d["onset"])
    classes_per_clip = events.groupby("filename")["event_label"].nunique().reindex(files, fill_value=0)
    per_class = {}
    for label in TARGETS:
        mine = events[events["event_label"] == label]
        per_clip = mine.groupby("filename").size()
        if mine.empty:  # a class the labels never mention: the scenes will not draw it
            per_class[label] = {"clips": 0, "events_per_clip": {}, "duration_quantiles": []}
            continue
        per_class[label] = {
            "clips": int(per_clip.size),
            "events_per_clip": {str(k): int(v) for k, v in per_clip.value_counts().sort_index().items()},
            "duration_quantiles": [round(float(q), 3)
                                   for q in np.quantile(mine["seconds"], np.linspace(0, 1, 21))],
        }
    return {
        "source": f"DESED validation labels ({tsv.name}, {len(files)} clips), "
                  "https://github.com/turpaultn/DESED, MIT licence; derived by tools/desed_stats.py",
        "clips": int(len(files)),
        "empty_share": round(float((classes_per_clip == 0).mean()), 4),
        "classes_per_clip": {str(k): int(v) for k, v in classes_per_clip[classes_per_clip > 0]
                             .value_counts().sort_index().items()},
        "per_class": per_class,
    }


if __name__ == "__main__":
    OUT.write_text(json.dumps(stats(Path(sys.argv[1])), indent=1) + "\n")
    print(f"wrote {OUT}")
