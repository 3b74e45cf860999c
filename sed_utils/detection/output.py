"""Writing detected events (notebook 09, the command line): the DCASE table or JSON records."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from sed_utils.core import atomic
from sed_utils.detection.recordings import EVENT_COLUMNS

__all__ = ["FORMATS", "events_text", "write_events"]

FORMATS = ("tsv", "json")


def events_text(events: pd.DataFrame, fmt: str = "tsv") -> str:
    """An events table as text (notebook 09, the CLI): ``tsv`` in the DCASE layout (``filename onset
    offset event_label``, then ``score``), which sed_eval (dcase_util) reads back, or ``json`` (a list
    of records).

    Raises:
        ValueError: an unknown format.
    """
    if fmt == "tsv":
        return events[EVENT_COLUMNS].to_csv(sep="\t", index=False, float_format="%.3f")
    if fmt == "json":
        numeric = ("onset", "offset", "score")
        records = [{k: (round(float(v), 3) if k in numeric else str(v)) for k, v in r.items()}
                   for r in events[EVENT_COLUMNS].to_dict(orient="records")]
        return json.dumps(records, indent=1) + "\n"
    raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")


def write_events(path: Path, events: pd.DataFrame, fmt: str = "tsv") -> None:
    """:func:`events_text` written atomically: a reader never sees half a table (notebook 09).

    Args:
        path: the file to write (replaced if it exists).
        events: the events, with the columns of :data:`~sed_utils.detection.recordings.EVENT_COLUMNS`.
        fmt: ``"tsv"`` or ``"json"``, as in :func:`events_text`.

    Raises:
        ValueError: an unknown format (nothing is written).
    """
    atomic.write_text(Path(path), events_text(events, fmt))
